//! Values and endings that used to pass silently: weights, momenta and energies that are NaN
//! or infinite are malformed events (an error naming file, line and event, or skipped), so
//! sums of weights stay finite; a file whose text ends early is an error, or with
//! `OnError::Skip` a `truncated` summary with its own warning.

use std::io::Write;
use std::path::{Path, PathBuf};

use vbsad_lhe::{scan_summary, FileSummary, LheError, LheReader, OnError, ParseError};

/// Non-finite spellings the float parsers accept (overflow becomes an infinity).
const NON_FINITE: [&str; 6] = ["nan", "NaN", "inf", "-Inf", "+Infinity", "1.0E+999"];

const HEAD: &str = "<LesHouchesEvents version=\"3.0\">\n<header>\n<initrwgt>\n\
<weight id='a'>A</weight>\n<weight id='b'>B</weight>\n</initrwgt>\n</header>\n<init>\n\
2212 2212 6500 6500 0 0 0 0 3 1\n1 0.1 1 1\n</init>\n";

/// Particle lines in MadGraph's fixed layout, so that the first event teaches the reader
/// a layout and the later ones are read through it where they fit.
const PARTICLES: [&str; 4] = [
    "        2   -1    0    0  501    0  0.00000000000E+00  0.00000000000E+00  0.58437780464E+02  0.58437780464E+02  0.00000000000E+00 0. -1.",
    "       -2   -1    0    0    0  501  0.00000000000E+00  0.00000000000E+00 -0.34889445674E+02  0.34889445674E+02  0.00000000000E+00 0.  1.",
    "      -11    1    3    3    0    0 -0.10775103667E+01 -0.43162329701E+02  0.25434093995E+02  0.50110287080E+02  0.00000000000E+00 0. -1.",
    "       11    1    3    3    0    0  0.10775103667E+01  0.43162329701E+02 -0.18857592050E+01  0.43216939059E+02  0.00000000000E+00 0.  1.",
];

/// One event with weight `xwgtup` and the named weights after its particles (`tail`).
fn event(xwgtup: &str, particles: &[String], tail: &str) -> String {
    let mut text = format!(
        "<event>\n {}   1  {xwgtup}  0.9118800E+02  0.7546771E-02  0.1179815E+00\n",
        particles.len()
    );
    for p in particles {
        text.push_str(p);
        text.push('\n');
    }
    text.push_str(tail);
    text.push_str("</event>\n");
    text
}

fn particles() -> Vec<String> {
    PARTICLES.iter().map(|p| (*p).to_owned()).collect()
}

fn rwgt(a: &str, b: &str) -> String {
    format!("<rwgt>\n<wgt id='a'> {a} </wgt>\n<wgt id='b'> {b} </wgt>\n</rwgt>\n")
}

/// Three events, the middle one with the `bad` parts; weights 1, 2 and 4.
fn document(bad_xwgtup: &str, bad_particles: &[String], bad_tail: &str) -> String {
    let good = |w: &str| event(w, &particles(), &rwgt("+1.0000000e+00", "+2.0000000e+00"));
    format!(
        "{HEAD}{}{}{}</LesHouchesEvents>\n",
        good("0.1000000E+01"),
        event(bad_xwgtup, bad_particles, bad_tail),
        good("0.4000000E+01"),
    )
}

struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, bytes: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!("vbsad-{}-{name}", std::process::id()));
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(bytes))
            .unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn summary(path: &Path, on_error: OnError) -> Result<FileSummary, LheError> {
    LheReader::open(path, on_error).and_then(scan_summary)
}

fn parse_error(result: Result<FileSummary, LheError>) -> ParseError {
    match result {
        Err(LheError::Parse(e)) => e,
        other => panic!("expected a parse error, got {other:?}"),
    }
}

/// 1-based line of the first line of `text` that contains `marker` after `after`.
fn line_of(text: &str, marker: &str, after: &str) -> u64 {
    let from = text.find(after).unwrap();
    let at = from + text[from..].find(marker).unwrap();
    text[..at].matches('\n').count() as u64 + 1
}

/// The middle event is refused with `Fail` (at `line`, with `message`) and skipped with
/// `Skip`, the sums covering the other two events only.
fn assert_malformed(name: &str, text: &str, line: u64, message: &str) {
    let file = TempFile::new(name, text.as_bytes());
    let error = parse_error(summary(&file.0, OnError::Fail));
    assert_eq!(error.path, file.0.display().to_string(), "{text}");
    assert_eq!(
        (error.line, error.event),
        (line, Some(1)),
        "{error}\n{text}"
    );
    assert!(error.message.contains(message), "{error}\n{text}");
    assert!(error.to_string().contains(name), "{error}");

    let s = summary(&file.0, OnError::Skip).unwrap();
    assert_eq!(s.n_events, 2, "{text}");
    assert_eq!(s.n_skipped, 1);
    assert_eq!(s.skipped, vec![error]);
    assert_eq!(s.sum_weights["w"], 5.0);
    assert_eq!(s.sum_weights["a"], 2.0);
    assert_eq!(s.sum_weights["b"], 4.0);
    assert!(s.sum_weights.values().all(|v| v.is_finite()));
    assert_eq!(s.truncated, None);
    // serde_json writes a NaN as null: every sum must stay a number in the JSON.
    let json = serde_json::to_value(&s).unwrap();
    let sums = json["sum_weights"].as_object().unwrap();
    assert!(sums.values().all(serde_json::Value::is_f64), "{sums:?}");
}

#[test]
fn a_non_finite_nominal_weight_is_a_malformed_event() {
    for value in NON_FINITE {
        let text = document(value, &particles(), &rwgt("1.0", "2.0"));
        let line = line_of(&text, value, "</event>");
        let message =
            format!("event information field 3 (XWGTUP) is not a finite number: {value:?}");
        assert_malformed("xwgtup.lhe", &text, line, &message);
    }
}

#[test]
fn a_non_finite_named_weight_is_a_malformed_event_in_every_spelling_of_weights() {
    for value in NON_FINITE {
        // (tail, the text the error quotes, whether the event is over when it is found)
        let tails = [
            // The lines of earlier events, read through their shape or as a simple line.
            rwgt("+1.0000000e+00", value),
            // A comment sends the lines to the general tag scanner.
            format!(
                "<rwgt> <!-- c -->\n<wgt id='a'>1.0</wgt>\n<wgt id='b'>{value}</wgt>\n</rwgt>\n"
            ),
            // LHEF 2.0 weights by name.
            format!("<weight name='a'>1.0</weight>\n<weight name='b'> {value} </weight>\n"),
            // Compact weights, in the declared order.
            format!("<weights> 1.0 {value} </weights>\n"),
        ];
        for tail in tails {
            let text = document("0.2000000E+01", &particles(), &tail);
            let marker = if tail.contains("<weights>") {
                "<weights>"
            } else {
                value
            };
            let line = line_of(&text, marker, "</event>");
            let what = if tail.contains("<weights>") {
                "<weights> value 2".to_owned()
            } else {
                "weight \"b\"".to_owned()
            };
            let message = format!("{what} is not a finite number: {value:?}");
            assert_malformed("weight.lhe", &text, line, &message);
        }
    }
}

#[test]
fn non_finite_momenta_energies_and_masses_are_malformed_through_every_reader() {
    let names = ["px", "py", "pz", "E", "M"];
    for value in NON_FINITE {
        for (k, name) in names.iter().enumerate() {
            for padded in [true, false] {
                // Padded to the column's width the line has the layout of the others (whose
                // reader declines it); unpadded it is read the general way from the start.
                let field = PARTICLES[2].split_whitespace().nth(6 + k).unwrap();
                let replacement = if padded {
                    format!("{value:>width$}", width = field.len())
                } else {
                    value.to_owned()
                };
                let mut lines = particles();
                lines[2] = PARTICLES[2].replacen(field, &replacement, 1);
                let text = document("0.2000000E+01", &lines, &rwgt("1.0", "2.0"));
                let line = line_of(&text, &lines[2], "</event>");
                let message = format!(
                    "particle line 3 of 4: field {} ({name}) is not a finite number: {value:?}",
                    7 + k
                );
                assert_malformed("momentum.lhe", &text, line, &message);
            }
        }
    }
}

#[test]
fn lifetime_and_spin_are_kept_as_written() {
    let mut lines = particles();
    lines[2] = lines[2].replace(" 0. -1.", " NaN Inf");
    let text = document("0.2000000E+01", &lines, &rwgt("1.0", "2.0"));
    let file = TempFile::new("spin.lhe", text.as_bytes());
    let s = summary(&file.0, OnError::Fail).unwrap();
    assert_eq!((s.n_events, s.sum_weights["w"]), (3, 7.0));
}

// --- truncated files ------------------------------------------------------------------

/// The complete text of three good events.
fn complete() -> String {
    document("0.2000000E+01", &particles(), &rwgt("1.0", "2.0"))
}

fn gzip(text: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text).unwrap();
    encoder.finish().unwrap()
}

/// Reads `bytes` both ways: `Fail` is an error at `line`; `Skip` keeps the events before,
/// and its summary says where the text ends, with that warning as its last.
fn assert_truncated(name: &str, bytes: &[u8], line: u64, n_events: u64, place: &str) {
    let file = TempFile::new(name, bytes);
    let error = parse_error(summary(&file.0, OnError::Fail));
    assert_eq!(error.line, line, "{error}");

    let s = summary(&file.0, OnError::Skip).unwrap();
    assert_eq!(s.n_events, n_events);
    let truncated = s.truncated.clone().expect("a truncated file");
    assert_eq!(truncated.line, line, "{truncated:?}");
    let at = format!("{}:{line}: ", file.0.display());
    assert!(truncated.message.starts_with(&at), "{truncated:?}");
    assert!(truncated.message.contains("truncated"), "{truncated:?}");
    assert!(truncated.message.contains(place), "{truncated:?}");
    assert!(!truncated.message.contains('\n'));
    assert_eq!(s.header.warnings.last(), Some(&truncated.message));
    let json: serde_json::Value = serde_json::to_value(&s).unwrap();
    assert_eq!(json["truncated"]["line"], line);
    assert_eq!(json["warnings"].as_array().unwrap().len(), 1);
}

#[test]
fn a_complete_file_is_not_truncated() {
    let file = TempFile::new("complete.lhe", complete().as_bytes());
    let s = summary(&file.0, OnError::Skip).unwrap();
    assert_eq!(
        (s.n_events, s.truncated, s.header.warnings.len()),
        (3, None, 0)
    );
}

#[test]
fn a_file_cut_between_events_is_truncated() {
    let text = complete();
    let cut = &text[..text.find("</LesHouchesEvents>").unwrap()];
    let lines = cut.matches('\n').count() as u64;
    for (name, bytes) in [
        ("between.lhe", cut.as_bytes().to_vec()),
        ("between.lhe.gz", gzip(cut.as_bytes())),
    ] {
        assert_truncated(name, &bytes, lines, 3, "after 3 events");
    }
}

#[test]
fn a_file_cut_inside_an_event_is_truncated() {
    let text = complete();
    let last = text.rfind("<event>").unwrap();
    // After a whole particle line, inside one, and inside the weights of the last event:
    // the text ends on the last whole line, or on the line it cuts.
    for (marker, offset) in [
        ("      -11", 0),
        ("0.25434093995E+02", 4),
        ("<wgt id='b'>", 4),
    ] {
        let at = last + text[last..].find(marker).unwrap() + offset;
        let cut = &text[..at];
        let lines = cut.matches('\n').count() as u64 + u64::from(offset > 0);
        for (name, bytes) in [
            ("inside.lhe", cut.as_bytes().to_vec()),
            ("inside.lhe.gz", gzip(cut.as_bytes())),
        ] {
            assert_truncated(name, &bytes, lines, 2, "inside event 2");
        }
    }
}

#[test]
fn a_gzip_stream_cut_short_is_truncated_or_corrupt() {
    let text = complete();
    let compressed = gzip(text.as_bytes());
    let cut = &compressed[..compressed.len() - 40];
    let file = TempFile::new("cut.lhe.gz", cut);
    assert!(matches!(
        summary(&file.0, OnError::Fail),
        Err(LheError::Parse(_))
    ));
    let s = summary(&file.0, OnError::Skip).unwrap();
    let truncated = s.truncated.expect("a truncated file");
    assert!(truncated.message.contains("truncated"), "{truncated:?}");
    assert!(s.n_events < 3);
    assert_eq!(s.header.warnings, vec![truncated.message]);
}
