//! Throughput of the whole observables stream (`LheReader::open` + `LheBatches` over
//! `View::Observables`, as the `lhe_scan` example reads), in bytes of LHE text per second,
//! on the two inputs of the project's ingest benchmark, built here from real files:
//!
//! - `zmlm`: the MadGraph 2.2.1 Z+jets MLM file (`pylhe-testfile-madgraph-2.2.1-Z-mlm`),
//!   header and `<init>` once, its events repeated to ~25 MB, then `</LesHouchesEvents>`;
//! - `wgt145`: the MadGraph5 3.5.8 pp > jj file with 145 `<wgt>` lines per event
//!   (`pylhe-testfile-madgraph5-3.5.8-pp_to_jj`), built the same way. The SSWW samples of
//!   `shared/testdata/ssww` carry no `<wgt>` lines, so this is the real file with many.
//!
//! The shared data directory is `$VBSAD_SHARED_DIR`, else `../../shared` from this crate.
//! Run: `cargo bench --bench observables_stream`.
//!
//! Every parser fast path was measured on and off with this bench and with callgrind
//! (instructions of `lhe_scan` on the same inputs built as files); one that gained under
//! ~5% on both inputs was removed (the commits that removed them give their figures).
//! What each kept one costs when switched off, measured on the tree where it stays
//! (instructions / time, `zmlm` then `wgt145`):
//!
//! | fast path | zmlm | wgt145 |
//! |---|---|---|
//! | particle lines through a learned layout (`reader::particle_layout`) | +35.6% / +23.6% | +4.0% / +3.5% |
//! | layout floats via SSE2 (`FixedFloatShape::read`, `parse_madgraph_known`) | +10.7% / +6.8% | +5.9% / +4.1% |
//! | event information line through the padded cursor (`parse_info_line`) | +8.6% / +4.8% | +1.6% / +4.9% |
//! | MadGraph-layout floats in the cursor (`parse_fixed_layout`) | +8.2% / +5.8% | +1.8% / +1.5% |
//! | no weight scan for a tail without `<w` or a comment | +23.5% / +17.5% | +8.1% / +8.7% |
//! | `<wgt>` lines without the tag scanner (`simple_wgt_line`) | -1.1% / -1.6% | +404% / +379% |
//! | `<wgt>` lines matched by their remembered shape (`WgtLineShape`) | -1.0% / -0.4% | +94.1% / +86.6% |
//! | newlines found 64 bytes at a time (`LineSource`) | +3.2% / +9.6% | +13.3% / +11.6% |

use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vbsad_lhe::{LheBatches, LheReader, OnError, View};

/// Size each input is grown to, in bytes of text.
const TARGET_BYTES: usize = 25_000_000;

fn shared_dir() -> PathBuf {
    match std::env::var_os("VBSAD_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

/// The text of a gzip LHE file.
fn gunzip(path: &Path) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(file)
        .read_to_end(&mut text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text
}

/// The file's header and `<init>` once, its events repeated until the text reaches
/// `TARGET_BYTES`, then the closing tag.
fn repeated_events(text: &[u8]) -> Vec<u8> {
    let find = |needle: &[u8]| memchr::memmem::find(text, needle).expect("an event");
    let start = find(b"<event");
    let end = memchr::memmem::rfind(text, b"</event>").expect("an event") + b"</event>\n".len();
    let (preamble, events) = (&text[..start], &text[start..end]);
    let copies = TARGET_BYTES
        .saturating_sub(preamble.len())
        .div_ceil(events.len())
        .max(1);
    let mut out = Vec::with_capacity(preamble.len() + copies * events.len() + 32);
    out.extend_from_slice(preamble);
    for _ in 0..copies {
        out.extend_from_slice(events);
    }
    out.extend_from_slice(b"</LesHouchesEvents>\n");
    out
}

/// Reads the whole observables stream of `path`; returns the rows.
fn read_observables(path: &Path) -> usize {
    let reader = LheReader::open(path, OnError::Fail).expect("a readable LHE file");
    LheBatches::new(reader, View::Observables, 65536)
        .map(|batch| batch.expect("a good batch").num_rows())
        .sum()
}

fn observables_stream(c: &mut Criterion) {
    let lhe = shared_dir().join("testdata/lhe");
    let dir = std::env::temp_dir().join(format!("vbsad-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let inputs = [
        ("zmlm", "pylhe-testfile-madgraph-2.2.1-Z-mlm.lhe.gz"),
        ("wgt145", "pylhe-testfile-madgraph5-3.5.8-pp_to_jj.lhe.gz"),
    ];
    let mut group = c.benchmark_group("observables_stream");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, source) in inputs {
        let text = repeated_events(&gunzip(&lhe.join(source)));
        let path = dir.join(format!("{name}.lhe"));
        std::fs::write(&path, &text).expect("room for the input");
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| b.iter(|| black_box(read_observables(&path))));
    }
    group.finish();
    std::fs::remove_dir_all(&dir).expect("the temporary directory removed");
}

criterion_group!(benches, observables_stream);
criterion_main!(benches);
