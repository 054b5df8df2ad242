//! Reading a real plain LHE file in byte ranges ([`plan_split`], [`LheReader::open_range`])
//! gives the events of reading it whole: the same events with the same indices, in order,
//! split between the ranges as planned, each range ending where the next one starts.
//! (The joined Parquet shards and metadata are checked in the Python suite.)

use std::path::{Path, PathBuf};

use vbsad_lhe::{plan_split, scan_summary, LheReader, OnError};

fn shared_testdata() -> PathBuf {
    match std::env::var_os("VBSAD_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir).join("testdata"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"),
    }
}

fn plain_files() -> Vec<PathBuf> {
    let dir = shared_testdata().join("lhe");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "lhe"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the plain files of testdata/lhe");
    files
}

#[test]
fn ranges_of_real_files_hold_the_events_of_the_whole_file() {
    for path in plain_files() {
        let size = std::fs::metadata(&path).unwrap().len();
        let mut whole = Vec::new();
        let mut reader = LheReader::open(&path, OnError::Skip).unwrap();
        while let Some(event) = reader.next_event().unwrap() {
            whole.push(event.clone());
        }
        let ranges = plan_split(&path, 4, size / 4).unwrap();
        if whole.len() >= 10 {
            assert!(ranges.len() > 1, "{}: not cut", path.display());
        }
        assert_eq!(ranges.last().unwrap().end, size);
        let mut joined = Vec::new();
        for (k, range) in ranges.iter().enumerate() {
            assert_eq!(range.last, k + 1 == ranges.len());
            if k > 0 {
                assert_eq!(range.start, ranges[k - 1].end);
            }
            let mut reader = LheReader::open_range(&path, OnError::Skip, range).unwrap();
            let before = joined.len();
            while let Some(event) = reader.next_event().unwrap() {
                joined.push(event.clone());
            }
            let summary =
                scan_summary(LheReader::open_range(&path, OnError::Skip, range).unwrap()).unwrap();
            assert_eq!(summary.n_events as usize, joined.len() - before);
            let counted = summary.range.expect("a range reader reports its counts");
            assert_eq!(counted.first_event, range.events_before);
            if let Some(next) = ranges.get(k + 1) {
                assert!(counted.ended_at_range_end, "{}", path.display());
                assert_eq!(counted.next_event, next.events_before);
            }
        }
        assert_eq!(joined, whole, "{}", path.display());
    }
}

#[test]
fn a_gzip_file_is_one_range() {
    let path = shared_testdata().join("ssww").join("ssww_SM.lhe.gz");
    let ranges = plan_split(&path, 8, 1).unwrap();
    assert_eq!(ranges.len(), 1);
    assert!(ranges[0].last);
    assert_eq!(ranges[0].start, 0);
}
