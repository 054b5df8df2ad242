//! Streaming reader of Les Houches Event files (LHEF 1.0, 2.0 and 3.0).
//!
//! The reader walks the text line by line in bounded memory. It reads the header and the
//! `<init>` block when opened, then hands out one [`Event`] at a time. Malformed input is an
//! error naming the file, line and event; with [`OnError::Skip`] the bad event is recorded
//! and skipped and reading resumes at the next event. Nothing is dropped silently.

use std::path::Path;

use super::event_body::EventBody;
use super::event_lines::Resync;
use super::header::{lossy, parse_init_numbers, scan_declarations, FileHeader};
use super::markup::{comment_state_after, is_open_tag};
use super::split_plan::{open_range_text, ByteRange};
use super::weights::{undeclared_weight, usable_weight_id};
use super::xml_scan::{attr, find_closing, next_tag};
use crate::error::{LheError, ParseError, Result, Truncation};
use crate::event::Event;
use crate::line_source::{open_text, LineSource};
use crate::summary::RangeReport;

/// What to do with a malformed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Stop at the first error (the default: nothing is lost without the user knowing).
    Fail,
    /// Skip the bad event, record it, and go on with the next one.
    Skip,
}

/// Header text larger than this is not an LHE header.
const MAX_HEADER_BYTES: usize = 256 << 20;

pub struct LheReader {
    path: String,
    lines: LineSource,
    header: FileHeader,
    /// The event being read and what reading events needs from one to the next.
    body: EventBody,
    on_error: OnError,
    next_index: u64,
    pending_event_start: bool,
    in_comment: bool,
    finished: bool,
    /// `self.body.event` holds a parsed event not yet handed out.
    buffered: bool,
    skipped: Vec<ParseError>,
    /// Where the text ended or stopped being readable before `</LesHouchesEvents>`.
    truncation: Option<Truncation>,
    is_gzip: bool,
    /// Reading one byte range of the file (see [`LheReader::open_range`]).
    range: Option<RangeState>,
}

/// What a reader of one byte range keeps of it.
#[derive(Debug, Clone, Copy)]
struct RangeState {
    first_event: u64,
    /// The file goes on after the range: its end is where reading stops, not a truncation.
    continues: bool,
    ended_at_range_end: bool,
}

impl LheReader {
    /// Opens a plain or gzip LHE file and reads its header, `<init>` and first event.
    pub fn open(path: &Path, on_error: OnError) -> Result<Self> {
        let display = path.display().to_string();
        let (text, is_gzip) = open_text(path).map_err(|source| LheError::Io {
            path: display.clone(),
            source,
        })?;
        Self::from_text(display, text, is_gzip, on_error)
    }

    /// Opens the events of one byte range of a plain LHE file (from [`super::plan_split`]):
    /// the header, `<init>` and the weight columns are those of the whole file (read from
    /// its start, the columns learned from its first event), then the events of the range
    /// are read with the lines and events numbered as in the whole file. Skipped events
    /// and truncations are those of the range; where the file goes on after the range, its
    /// end is simply the end of the events.
    pub fn open_range(path: &Path, on_error: OnError, range: &ByteRange) -> Result<Self> {
        let display = path.display().to_string();
        let io_error = |source| LheError::Io {
            path: display.clone(),
            source,
        };
        let state = RangeState {
            first_event: range.events_before,
            continues: !range.last,
            ended_at_range_end: false,
        };
        if range.start == 0 {
            let text = open_range_text(path, range).map_err(io_error)?;
            let mut reader = LheReader {
                range: Some(state),
                ..Self::unopened(display.clone(), text, false, on_error)
            };
            reader.read_header_and_first_event()?;
            return Ok(reader);
        }
        let mut reader = Self::open(path, on_error)?;
        let text = open_range_text(path, range).map_err(io_error)?;
        reader.lines = LineSource::new(text).starting_at(range.lines_before, range.start);
        reader.next_index = range.events_before;
        reader.pending_event_start = false;
        reader.in_comment = false;
        reader.finished = false;
        reader.buffered = false;
        reader.skipped.clear();
        reader.truncation = None;
        reader.range = Some(state);
        reader.buffered = reader.advance()?;
        Ok(reader)
    }

    fn from_text(
        path: String,
        text: Box<dyn std::io::Read + Send>,
        is_gzip: bool,
        on_error: OnError,
    ) -> Result<Self> {
        let mut reader = Self::unopened(path, text, is_gzip, on_error);
        reader.read_header_and_first_event()?;
        Ok(reader)
    }

    fn read_header_and_first_event(&mut self) -> Result<()> {
        self.read_preamble()?;
        self.buffered = self.advance()?;
        self.body.weights.stop_learning();
        Ok(())
    }

    fn unopened(
        path: String,
        text: Box<dyn std::io::Read + Send>,
        is_gzip: bool,
        on_error: OnError,
    ) -> Self {
        LheReader {
            path,
            lines: LineSource::new(text),
            header: FileHeader::default(),
            body: EventBody::default(),
            on_error,
            next_index: 0,
            pending_event_start: false,
            in_comment: false,
            finished: false,
            buffered: false,
            skipped: Vec::new(),
            truncation: None,
            is_gzip,
            range: None,
        }
    }

    /// For a reader of a byte range: its first event index, the next one (after the
    /// events read so far) and whether the reading stopped at the range's end.
    pub(crate) fn range_report(&self) -> Option<RangeReport> {
        self.range.map(|r| RangeReport {
            first_event: r.first_event,
            next_event: self.next_index,
            ended_at_range_end: r.ended_at_range_end,
        })
    }

    /// The text of a range that the file continues after has ended: the end of the events.
    fn at_range_end(&mut self) -> bool {
        match &mut self.range {
            Some(r) if r.continues => {
                r.ended_at_range_end = true;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    pub(crate) fn header(&self) -> &FileHeader {
        &self.header
    }

    pub(crate) fn is_gzip(&self) -> bool {
        self.is_gzip
    }

    /// Ids of the named weights, in column order (declared first, then any the first
    /// event added).
    pub(crate) fn weight_ids(&self) -> &[String] {
        self.body.weights.ids()
    }

    /// Events skipped (with [`OnError::Skip`]) and other recorded problems, in file order.
    pub(crate) fn skipped(&self) -> &[ParseError] {
        &self.skipped
    }

    /// Where the text ended, or stopped being readable, before `</LesHouchesEvents>`
    /// (known once the reading got there).
    pub(crate) fn truncation(&self) -> Option<&Truncation> {
        self.truncation.as_ref()
    }

    /// Bytes of (decompressed) text read so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.lines.bytes_consumed()
    }

    /// The next event, or `None` after the last.
    pub fn next_event(&mut self) -> Result<Option<&Event>> {
        if self.buffered {
            self.buffered = false;
            return Ok(Some(&self.body.event));
        }
        if self.advance()? {
            Ok(Some(&self.body.event))
        } else {
            Ok(None)
        }
    }

    fn parse_error(&self, line: u64, event: Option<u64>, message: impl Into<String>) -> LheError {
        LheError::parse(&self.path, line, event, message)
    }

    // ---------------------------------------------------------------- header and init

    fn read_preamble(&mut self) -> Result<()> {
        self.read_root_tag()?;
        let mut header_text = Vec::new();
        let mut in_comment = false;
        let (init_line, first_init_text) = loop {
            let (n, line) = match self.lines.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => {
                    let n = self.lines.line_no();
                    return Err(self.parse_error(n, None, "file ends before the <init> block"));
                }
                Err(e) => return Err(self.read_failure(None, &e)),
            };
            let trimmed = line.trim_ascii_start();
            if !in_comment && is_open_tag(trimmed, b"init") {
                let after = trimmed
                    .iter()
                    .position(|&b| b == b'>')
                    .map_or(&b""[..], |i| &trimmed[i + 1..]);
                break (n, after.to_vec());
            }
            if !in_comment && is_open_tag(trimmed, b"event") {
                return Err(LheError::parse(
                    &self.path,
                    n,
                    None,
                    "<event> before the <init> block",
                ));
            }
            in_comment = comment_state_after(line, in_comment);
            if header_text.len() + line.len() > MAX_HEADER_BYTES {
                return Err(LheError::parse(
                    &self.path,
                    n,
                    None,
                    "header larger than 256 MiB without an <init> block: not an LHE file",
                ));
            }
            header_text.extend_from_slice(line);
            header_text.push(b'\n');
        };

        // Collect <init> up to </init>; it is small.
        let mut init_lines: Vec<Vec<u8>> = Vec::new();
        let mut rest = first_init_text;
        let mut first_line_no = init_line;
        if rest.trim_ascii().is_empty() {
            first_line_no = init_line + 1;
        } else if let Some(end) = memchr::memmem::find(&rest, b"</init>") {
            rest.truncate(end);
            init_lines.push(rest);
            return self.finish_init(&header_text, &init_lines, first_line_no);
        } else {
            init_lines.push(rest);
        }
        loop {
            let (n, line) = match self.lines.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => {
                    return Err(LheError::parse(
                        &self.path,
                        self.lines.line_no(),
                        None,
                        "unterminated <init> block",
                    ));
                }
                Err(e) => return Err(self.read_failure(None, &e)),
            };
            if let Some(end) = memchr::memmem::find(line, b"</init>") {
                init_lines.push(line[..end].to_vec());
                break;
            }
            if is_open_tag(line.trim_ascii_start(), b"event") {
                return Err(LheError::parse(
                    &self.path,
                    n,
                    None,
                    "unterminated <init> block",
                ));
            }
            init_lines.push(line.to_vec());
        }
        self.finish_init(&header_text, &init_lines, first_line_no)
    }

    fn read_root_tag(&mut self) -> Result<()> {
        let mut in_comment = false;
        loop {
            let (n, line) = match self.lines.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => {
                    let n = self.lines.line_no().max(1);
                    return Err(self.parse_error(n, None, "empty file: no <LesHouchesEvents> tag"));
                }
                Err(e) => return Err(self.read_failure(None, &e)),
            };
            let trimmed = line.trim_ascii();
            let was_in_comment = in_comment;
            in_comment = comment_state_after(line, in_comment);
            if trimmed.is_empty()
                || was_in_comment
                || trimmed.starts_with(b"<?")
                || trimmed.starts_with(b"<!--")
            {
                continue;
            }
            if let Some(tag) =
                next_tag(trimmed, 0).filter(|t| t.start == 0 && t.name == b"LesHouchesEvents")
            {
                let version =
                    attr(tag.attrs, b"version").map(|v| String::from_utf8_lossy(v).into_owned());
                self.header.lhef_version = version.unwrap_or_default();
                return Ok(());
            }
            return Err(LheError::parse(
                &self.path,
                n,
                None,
                format!(
                    "not an LHE file: expected <LesHouchesEvents>, found {:?}",
                    lossy(trimmed)
                ),
            ));
        }
    }

    fn finish_init(
        &mut self,
        header_text: &[u8],
        init_lines: &[Vec<u8>],
        first_line_no: u64,
    ) -> Result<()> {
        let views: Vec<&[u8]> = init_lines.iter().map(Vec::as_slice).collect();
        let after_numbers = parse_init_numbers(&views, &mut self.header)
            .map_err(|(i, msg)| LheError::parse(&self.path, first_line_no + i as u64, None, msg))?;
        let mut weightinfo = Vec::new();
        scan_declarations(header_text, &mut self.header, &mut weightinfo);
        let init_rest = init_lines[after_numbers..].join(&b'\n');
        scan_declarations(&init_rest, &mut self.header, &mut weightinfo);
        if self.header.weights.is_empty() {
            self.header.weights = weightinfo;
        }
        for decl in self.header.weights.clone() {
            if !usable_weight_id(decl.id.as_bytes()) {
                return Err(LheError::parse(
                    &self.path,
                    first_line_no,
                    None,
                    format!("header: {}", undeclared_weight(decl.id.as_bytes())),
                ));
            }
            self.body.weights.declare(decl.id.as_bytes());
        }
        self.body.weights.end_declarations();
        Ok(())
    }

    /// A read error (corrupt or truncated gzip, I/O) located at the line reached.
    fn read_failure(&self, event: Option<u64>, e: &std::io::Error) -> LheError {
        let line = self.lines.line_no() + 1;
        self.parse_error(
            line,
            event,
            format!("cannot read further (truncated or corrupt file?): {e}"),
        )
    }

    // ---------------------------------------------------------------- events

    /// Parses the next good event into `self.event`; `false` at the end.
    fn advance(&mut self) -> Result<bool> {
        loop {
            if self.finished || !self.find_event_start()? {
                return Ok(false);
            }
            let index = self.next_index;
            self.next_index += 1;
            match self.body.parse(&mut self.lines, index) {
                Ok(()) => return Ok(true),
                Err(failure) => {
                    let error = ParseError {
                        path: self.path.clone(),
                        line: failure.line,
                        event: Some(index),
                        message: failure.message,
                    };
                    match failure.resync {
                        Resync::AtEof | Resync::Unreadable => {
                            self.finished = true;
                            let unreadable = failure.resync == Resync::Unreadable;
                            self.note_truncation(failure.line, Some(index), unreadable);
                        }
                        Resync::AtRootEnd => self.finished = true,
                        _ => {}
                    }
                    match self.on_error {
                        OnError::Fail => {
                            self.finished = true;
                            return Err(LheError::Parse(error));
                        }
                        OnError::Skip => {
                            self.skipped.push(error);
                            self.resync(failure.resync)?;
                        }
                    }
                }
            }
        }
    }

    /// Reads up to the next `<event>`; `false` at `</LesHouchesEvents>`.
    fn find_event_start(&mut self) -> Result<bool> {
        if self.pending_event_start {
            self.pending_event_start = false;
            return Ok(true);
        }
        loop {
            let (_, line) = match self.lines.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => {
                    self.finished = true;
                    if self.at_range_end() {
                        return Ok(false);
                    }
                    self.note_truncation(self.lines.line_no(), None, false);
                    let error = ParseError {
                        path: self.path.clone(),
                        line: self.lines.line_no(),
                        event: None,
                        message: format!(
                            "file ends after {} events without </LesHouchesEvents>: truncated?",
                            self.next_index
                        ),
                    };
                    return self.record_or_fail(error).map(|()| false);
                }
                Err(e) => {
                    self.finished = true;
                    let LheError::Parse(error) = self.read_failure(None, &e) else {
                        unreachable!()
                    };
                    self.note_truncation(error.line, None, true);
                    return self.record_or_fail(error).map(|()| false);
                }
            };
            let trimmed = line.trim_ascii_start();
            if self.in_comment {
                self.in_comment = comment_state_after(line, true);
                continue;
            }
            if is_open_tag(trimmed, b"event") {
                return Ok(true);
            }
            if trimmed.starts_with(b"</LesHouchesEvents") {
                self.finished = true;
                return Ok(false);
            }
            self.in_comment = comment_state_after(line, false);
        }
    }

    /// Records that the text ends (or, if `unreadable`, cannot be read further) at `line`,
    /// inside event `inside` or else after the events begun so far; the first place where
    /// that was noticed is kept.
    #[cold]
    fn note_truncation(&mut self, line: u64, inside: Option<u64>, unreadable: bool) {
        if self.truncation.is_some() {
            return;
        }
        let n = self.next_index;
        let what = match (unreadable, inside) {
            (false, Some(index)) => format!(
                "truncated file: the text ends inside event {index}, before \
                 </LesHouchesEvents>: that event is cut off and any later ones are missing"
            ),
            (false, None) => format!(
                "truncated file: the text ends after {n} events, before </LesHouchesEvents>: \
                 any later events are missing"
            ),
            (true, Some(index)) => format!(
                "truncated or corrupt file: the text cannot be read past this line, inside \
                 event {index}: that event is cut off and any later ones are missing"
            ),
            (true, None) => format!(
                "truncated or corrupt file: the text cannot be read past this line, after {n} \
                 events: any later events are missing"
            ),
        };
        self.truncation = Some(Truncation {
            line,
            message: format!("{}:{line}: {what}", self.path),
        });
    }

    fn record_or_fail(&mut self, error: ParseError) -> Result<()> {
        match self.on_error {
            OnError::Fail => Err(LheError::Parse(error)),
            OnError::Skip => {
                self.skipped.push(error);
                Ok(())
            }
        }
    }

    fn resync(&mut self, resync: Resync) -> Result<()> {
        match resync {
            Resync::AtEventEnd | Resync::AtEof | Resync::Unreadable | Resync::AtRootEnd => Ok(()),
            Resync::AtNextEvent => {
                self.pending_event_start = true;
                Ok(())
            }
            Resync::SkipToEventEnd => loop {
                let line = match self.lines.next_line() {
                    Ok(Some((_, l))) => l,
                    // The bad event is cut off: find_event_start reports the end of the text
                    // on the next call, the truncation is noted here where it is known.
                    // At the end of a range the file goes on after: find_event_start ends
                    // the events there.
                    Ok(None) if self.range.is_some_and(|r| r.continues) => return Ok(()),
                    end => {
                        let (line, unreadable) = match end {
                            Err(_) => (self.lines.line_no() + 1, true),
                            _ => (self.lines.line_no(), false),
                        };
                        let index = self.next_index - 1;
                        self.note_truncation(line, Some(index), unreadable);
                        return Ok(());
                    }
                };
                if find_closing(line, b"</event>").is_some() {
                    return Ok(());
                }
                let trimmed = line.trim_ascii_start();
                if is_open_tag(trimmed, b"event") {
                    self.pending_event_start = true;
                    return Ok(());
                }
                if trimmed.starts_with(b"</LesHouchesEvents") {
                    self.finished = true;
                    return Ok(());
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, text: &str) -> (Result<Vec<Event>>, Vec<ParseError>) {
        let path = std::env::temp_dir().join(format!("vbsad-{name}-{}.lhe", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let mut skipped = Vec::new();
        let result = LheReader::open(&path, OnError::Skip).and_then(|mut r| {
            let mut events = Vec::new();
            while let Some(e) = r.next_event()? {
                events.push(e.clone());
            }
            skipped = r.skipped().to_vec();
            Ok(events)
        });
        std::fs::remove_file(&path).unwrap();
        (result, skipped)
    }

    const HEAD: &str = "<LesHouchesEvents version=\"3.0\">\n<init>\n2212 2212 6500 6500 0 0 0 0 3 1\n1 0.1 1 1\n</init>\n";
    const EVENT_START: &str = "<event>\n1 1 1.0 91 0.0078 0.118\n11 1 0 0 0 0 1 2 3 4 0 0 9\n";

    #[test]
    fn weight_ids_with_control_characters_are_refused() {
        let text = format!(
            "{HEAD}{EVENT_START}<rwgt>\n<wgt id='a\u{0}b'> 1.0 </wgt>\n</rwgt>\n</event>\n</LesHouchesEvents>\n"
        );
        let (events, skipped) = read("control", &text);
        assert!(events.unwrap().is_empty());
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].line, 10, "the <wgt> line");
        assert!(
            skipped[0].message.contains("control character"),
            "{}",
            skipped[0].message
        );
    }

    #[test]
    fn comments_over_several_lines_inside_an_event() {
        let plain = format!("{HEAD}{EVENT_START}</event>\n</LesHouchesEvents>\n");
        let (expected, _) = read("plain", &plain);
        let expected = expected.unwrap();
        for comment in [
            "<!-- a\nb -->\n",
            "<!-- a\nb\nc -->\n",
            "<!--\n\n-->\n# x\n",
        ] {
            // Before the event information line and before a particle line.
            let before_info = EVENT_START.replacen("\n", &format!("\n{comment}"), 1);
            let before_particle = format!("{}{comment}{}", &EVENT_START[..32], &EVENT_START[32..]);
            for start in [before_info, before_particle] {
                let text = format!("{HEAD}{start}</event>\n</LesHouchesEvents>\n");
                let (events, skipped) = read("comment", &text);
                assert!(skipped.is_empty(), "{text}\n{skipped:?}");
                assert_eq!(events.unwrap(), expected, "{text}");
            }
        }
    }

    #[test]
    fn fast_and_general_weight_paths_agree() {
        let weights = "<wgt id='a'> 1.5 </wgt>\n<wgt id=\"b\">2.5e0</wgt> <!-- c -->\n<wgt id='c'>\n 3.5\n</wgt>\n";
        let text =
            format!("{HEAD}{EVENT_START}<rwgt>\n{weights}</rwgt>\n</event>\n</LesHouchesEvents>\n");
        let (events, skipped) = read("paths", &text);
        assert!(skipped.is_empty(), "{skipped:?}");
        let events = events.unwrap();
        assert_eq!(events[0].weights, vec![Some(1.5), Some(2.5), Some(3.5)]);
    }
}
