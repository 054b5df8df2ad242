//! The reader on the real LHE files of `../shared/testdata`, and random mutations of them.
//!
//! Exact agreement with an independent reader (pylhe) is checked in the Python suite;
//! here: every real file reads to the end, events are counted as the file says, no
//! mutation of a real file makes the reader panic, and blank lines, `#` lines and comments
//! put between the lines of real events change nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use vbsad_lhe::{scan_summary, LheBatches, LheError, LheReader, OnError, View};

fn shared_testdata() -> PathBuf {
    match std::env::var_os("VBSAD_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir).join("testdata"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"),
    }
}

fn real_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for sub in ["lhe", "ssww"] {
        let dir = shared_testdata().join(sub);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.to_string_lossy().contains(".lhe") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert_eq!(files.len(), 21, "expected the 18 + 3 real LHE files");
    files
}

fn count_event_tags(path: &Path) -> u64 {
    let mut text = Vec::new();
    let file = std::fs::File::open(path).unwrap();
    let mut magic = [0u8; 2];
    std::io::Read::read_exact(&mut std::fs::File::open(path).unwrap(), &mut magic).unwrap();
    if magic == [0x1f, 0x8b] {
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(file), &mut text)
            .unwrap();
    } else {
        std::io::Read::read_to_end(&mut { file }, &mut text).unwrap();
    }
    String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with("<event>") || t.starts_with("<event ")
        })
        .count() as u64
}

#[test]
fn every_real_file_reads_completely() {
    for path in real_files() {
        let summary = scan_summary(LheReader::open(&path, OnError::Fail).unwrap())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(summary.complete, "{}", path.display());
        assert_eq!(
            summary.n_events,
            count_event_tags(&path),
            "{}",
            path.display()
        );
        assert!(summary.skipped.is_empty());
        let rejected: u64 = summary.rejected.values().sum();
        assert_eq!(summary.n_rows + rejected, summary.n_events);
        // GiBUU's file declares processes it does not list: that must be said, not hidden.
        assert!(
            summary.header.processes.len() as i64 == summary.header.beams.nprup
                || summary.header.warnings.iter().any(|w| w.contains("NPRUP")),
            "{}",
            path.display()
        );
    }
}

#[test]
fn ssww_samples_have_rows_and_banner_info() {
    let path = shared_testdata().join("ssww/ssww_cW_LIN.lhe.gz");
    let reader = LheReader::open(&path, OnError::Fail).unwrap();
    let mut rows = 0;
    let mut negative = 0;
    let batches = LheBatches::new(reader, View::Observables, 500);
    let summary = batches.summary_handle();
    for batch in batches {
        let batch = batch.unwrap();
        assert!(batch.num_rows() <= 500);
        rows += batch.num_rows();
        let w = batch
            .column_by_name("w")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::Float64Array>()
            .unwrap();
        negative += w.values().iter().filter(|v| **v < 0.0).count();
    }
    assert_eq!(rows, 2000);
    assert_eq!(
        negative, 862,
        "the README of the sample counts 862 negative weights"
    );
    let s = summary.lock().unwrap();
    let mg = s.header.mg_generation_info.as_ref().unwrap();
    assert_eq!(mg.n_events, Some(2000));
    assert!((mg.integrated_weight_pb.unwrap() - 1.184e-4).abs() < 1e-6);
}

fn read_all(path: &Path, on_error: OnError) -> Result<(), LheError> {
    for view in [View::Observables, View::Particles] {
        let reader = LheReader::open(path, on_error)?;
        for batch in LheBatches::new(reader, view, 7) {
            if let Err(e) = batch {
                return match e {
                    arrow_schema::ArrowError::ExternalError(inner) => {
                        match inner.downcast::<LheError>() {
                            Ok(lhe) => Err(*lhe),
                            Err(other) => panic!("unexpected error type: {other}"),
                        }
                    }
                    other => panic!("unexpected arrow error: {other}"),
                };
            }
        }
    }
    Ok(())
}

/// A small real file with weights, comments and several blocks, as the mutation seed.
fn seed_text() -> Vec<u8> {
    std::fs::read(shared_testdata().join("lhe/pylhe-testlhef3.lhe")).unwrap()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Truncate(usize),
}

fn apply(text: &mut Vec<u8>, m: &Mutation) {
    let n = text.len();
    match *m {
        Mutation::Flip(at, b) => text[at % n] = b,
        Mutation::Insert(at, b) => text.insert(at % n, b),
        Mutation::Delete(at, len) => {
            let start = at % n;
            text.drain(start..(start + len).min(n));
        }
        Mutation::Truncate(at) => text.truncate(at % n),
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![
        Just(b'<'),
        Just(b'>'),
        Just(b'\n'),
        Just(b'*'),
        Just(b'/'),
        Just(b' '),
        any::<u8>()
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(a, b)| Mutation::Flip(a, b)),
        (any::<usize>(), byte).prop_map(|(a, b)| Mutation::Insert(a, b)),
        (any::<usize>(), 1usize..200).prop_map(|(a, l)| Mutation::Delete(a, l)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Random mutations of a real file, plain and gzip, never panic: they read or give
    /// a located parse error, in both error modes.
    #[test]
    fn mutations_never_panic(mutations in proptest::collection::vec(mutation(), 1..6), gzip in any::<bool>()) {
        let mut text = seed_text();
        for m in &mutations {
            if text.is_empty() { break; }
            apply(&mut text, m);
        }
        let dir = std::env::temp_dir().join(format!("vbsad-proptest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mutated.lhe");
        if gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&text).unwrap();
            std::fs::write(&path, enc.finish().unwrap()).unwrap();
        } else {
            std::fs::write(&path, &text).unwrap();
        }
        for on_error in [OnError::Fail, OnError::Skip] {
            match read_all(&path, on_error) {
                Ok(()) => {}
                Err(LheError::Parse(e)) => prop_assert!(e.line >= 1 || text.is_empty(), "{e}"),
                Err(LheError::Io { .. }) => {}
            }
        }
    }
}

/// The first `n` events of the real MadGraph 5 file with 145 `<wgt>` per event, as text.
fn madgraph_events(n: usize) -> String {
    let path = shared_testdata().join("lhe/pylhe-testfile-madgraph5-3.5.8-pp_to_jj.lhe.gz");
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap()),
        &mut text,
    )
    .unwrap();
    let mut end = 0;
    for _ in 0..n {
        end += text[end..].find("</event>").unwrap() + "</event>\n".len();
    }
    format!("{}</LesHouchesEvents>\n", &text[..end])
}

fn events_of(name: &str, text: &str) -> Vec<vbsad_lhe::event::Event> {
    let dir = std::env::temp_dir().join(format!("vbsad-inserts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let mut reader = LheReader::open(&path, OnError::Fail).unwrap();
    let mut events = Vec::new();
    while let Some(event) = reader
        .next_event()
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
    {
        events.push(event.clone());
    }
    events
}

/// What may stand between the lines of an event without changing it.
const FILLERS: [&str; 8] = [
    "",
    "   ",
    "\t",
    "# a comment line",
    "<!-- a comment -->",
    "<!-- a comment\nover two lines -->",
    "<!--\na comment\nover four lines\n-->",
    "  <!-- a --> <!-- b -->  ",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Blank lines, `#` lines and XML comments (one or several lines) before the event
    /// information line, between particle lines and before the weights change nothing:
    /// the events read are those of the file without them.
    #[test]
    fn blank_lines_and_comments_inside_events_change_nothing(
        inserts in proptest::collection::vec((0usize..40, any::<proptest::sample::Index>(), 0usize..FILLERS.len()), 1..6)
    ) {
        let text = madgraph_events(40);
        let expected = events_of("plain.lhe", &text);
        prop_assert_eq!(expected.len(), 40);
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let starts: Vec<usize> = lines.iter().enumerate()
            .filter(|(_, l)| l.starts_with("<event"))
            .map(|(i, _)| i)
            .collect();
        // Where each insert goes: before the information line (after `<event>`), before a
        // particle line, or before the first line after the particles.
        let mut at: Vec<(usize, &str)> = inserts.iter().map(|&(event, place, filler)| {
            let start = starts[event];
            let nup: usize = lines[start + 1].split_whitespace().next().unwrap().parse().unwrap();
            (start + 1 + place.index(nup + 2), FILLERS[filler])
        }).collect();
        at.sort_by_key(|a| std::cmp::Reverse(a.0));
        for (line, filler) in &at {
            lines.insert(*line, (*filler).to_owned());
        }
        let changed = lines.join("\n") + "\n";
        let events = events_of("filled.lhe", &changed);
        prop_assert!(events == expected, "{:?}", at);
    }
}
