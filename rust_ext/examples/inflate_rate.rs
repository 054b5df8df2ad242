//! Inflates gzip files with the decoder the reader uses (flate2's `MultiGzDecoder` on its
//! configured backend, zlib-rs) and prints one JSON line per file: decompressed bytes, their
//! CRC-32 (to compare outputs with other inflaters; 0 with `--no-crc`, which times inflating
//! alone) and seconds of wall time.
//! `cargo run --release --example inflate_rate -- [--no-crc] FILE.gz...`;
//! `benchmarks/inflate.py` runs it.

use std::fs::File;
use std::io::{BufReader, Read};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let crc_wanted = !args.iter().any(|a| a == "--no-crc");
    for path in args.iter().filter(|a| *a != "--no-crc") {
        let start = Instant::now();
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{path}: {e}");
                std::process::exit(1);
            }
        };
        // As `line_source`: 1 MiB reads of the compressed file, 1 MiB chunks of text.
        let mut decoder =
            flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, file));
        let mut buf = vec![0u8; 1 << 20];
        let mut crc = flate2::Crc::new();
        let mut bytes: u64 = 0;
        loop {
            match decoder.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if crc_wanted {
                        crc.update(&buf[..n]);
                    }
                    bytes += n as u64;
                }
                Err(e) => {
                    eprintln!("{path}: {e}");
                    std::process::exit(1);
                }
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "{{\"backend\": \"flate2/zlib-rs\", \"bytes\": {}, \"crc32\": {}, \"seconds\": {seconds:.6}}}",
            bytes,
            crc.sum()
        );
    }
}
