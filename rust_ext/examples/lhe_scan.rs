//! Reads LHE files through the observables stream and prints rows, rate and summary:
//! `cargo run --release --example lhe_scan -- FILE...` (handy for profiling the reader).

use std::time::Instant;

use vbsad_lhe::{LheBatches, LheReader, OnError, View};

fn main() {
    for path in std::env::args().skip(1) {
        let start = Instant::now();
        let reader = match LheReader::open(path.as_ref(), OnError::Fail) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        let batches = LheBatches::new(reader, View::Observables, 65536);
        let summary = batches.summary_handle();
        let mut rows = 0;
        for batch in batches {
            match batch {
                Ok(b) => rows += b.num_rows(),
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let s = summary.lock().expect("summary").clone();
        println!(
            "{path}: {} events, {rows} rows, {:.1} MB of text in {seconds:.3} s = {:.0} MB/s",
            s.n_events,
            s.bytes_read as f64 / 1e6,
            s.bytes_read as f64 / 1e6 / seconds
        );
    }
}
