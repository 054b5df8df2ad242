//! Streaming reader of Les Houches Event files (LHEF 1.0, 2.0 and 3.0).
//!
//! The reader walks the text line by line in bounded memory. It reads the header and the
//! `<init>` block when opened, then hands out one [`Event`] at a time. Malformed input is an
//! error naming the file, line and event; with [`OnError::Skip`] the bad event is recorded
//! and skipped and reading resumes at the next event. Nothing is dropped silently.

use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;

use crate::error::{LheError, ParseError, Result};
use crate::event::{Event, Particle};
use crate::fields::{fields, parse_f64, parse_i64, FastFields, FieldCursor, FieldError};
use crate::header::{lossy, parse_init_numbers, scan_declarations, FileHeader};
use crate::line_source::{byte_mask, open_text, LineSource, PaddedLine};
use crate::particle_layout::ParticleLayouts;
use crate::wgt_lines::{simple_wgt_line, WgtLine, WgtLineShape};
use crate::xml_scan::{attr, find_closing, next_tag, text_until_close};

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
/// More particles than this in one event is a corrupt NUP, not physics.
const MAX_PARTICLES: i64 = 100_000;
const PARTICLE_FIELDS: usize = 13;
const PARTICLE_FIELD_NAMES: [&str; PARTICLE_FIELDS] = [
    "IDUP", "ISTUP", "MOTHUP1", "MOTHUP2", "ICOLUP1", "ICOLUP2", "px", "py", "pz", "E", "M",
    "VTIMUP", "SPINUP",
];
const EVENT_INFO_FIELD_NAMES: [&str; 6] = ["NUP", "IDPRUP", "XWGTUP", "SCALUP", "AQEDUP", "AQCDUP"];

/// Where the line cursor stands after an error inside an event, so that skipping resumes
/// at the right place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resync {
    /// Still inside the bad event: skip to its `</event>`.
    SkipToEventEnd,
    /// The bad event's `</event>` has been consumed.
    AtEventEnd,
    /// The line just read opens the next event.
    AtNextEvent,
    /// `</LesHouchesEvents>` has been read.
    AtRootEnd,
    /// The text cannot be read further.
    AtEof,
}

struct EventFailure {
    line: u64,
    message: String,
    resync: Resync,
}

fn fail<T>(
    line: u64,
    resync: Resync,
    message: impl Into<String>,
) -> std::result::Result<T, EventFailure> {
    Err(EventFailure {
        line,
        message: message.into(),
        resync,
    })
}

pub struct LheReader {
    path: String,
    lines: LineSource,
    header: FileHeader,
    weights: WeightColumns,
    /// Layouts of the particle lines seen so far.
    particle_layouts: ParticleLayouts,
    /// Which weight each value of a compact `<weights>` block is, in order.
    compact_weight_slots: Vec<usize>,
    on_error: OnError,
    event: Event,
    next_index: u64,
    pending_event_start: bool,
    in_comment: bool,
    finished: bool,
    /// `self.event` holds a parsed event not yet handed out.
    buffered: bool,
    /// While the first event is read, weights it names that the header did not declare
    /// become columns; afterwards the set of weights is fixed.
    learning_weights: bool,
    tail: Vec<u8>,
    skipped: Vec<ParseError>,
    is_gzip: bool,
}

impl LheReader {
    /// Opens a plain or gzip LHE file and reads its header, `<init>` and first event.
    pub fn open(path: &Path, on_error: OnError) -> Result<Self> {
        let display = path.display().to_string();
        let (text, is_gzip) = open_text(path).map_err(|source| LheError::Io {
            path: display.clone(),
            source,
        })?;
        let mut reader = LheReader {
            path: display,
            lines: LineSource::new(text),
            header: FileHeader::default(),
            weights: WeightColumns::default(),
            particle_layouts: ParticleLayouts::default(),
            compact_weight_slots: Vec::new(),
            on_error,
            event: Event::default(),
            next_index: 0,
            pending_event_start: false,
            in_comment: false,
            finished: false,
            buffered: false,
            learning_weights: true,
            tail: Vec::new(),
            skipped: Vec::new(),
            is_gzip,
        };
        reader.read_preamble()?;
        reader.buffered = reader.advance()?;
        reader.learning_weights = false;
        Ok(reader)
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    pub fn is_gzip(&self) -> bool {
        self.is_gzip
    }

    /// Ids of the named weights, in column order (declared first, then any the first
    /// event added).
    pub fn weight_ids(&self) -> &[String] {
        &self.weights.ids
    }

    /// Events skipped (with [`OnError::Skip`]) and other recorded problems, in file order.
    pub fn skipped(&self) -> &[ParseError] {
        &self.skipped
    }

    /// Bytes of (decompressed) text read so far.
    pub fn bytes_read(&self) -> u64 {
        self.lines.bytes_consumed()
    }

    /// Number of events started so far, good or skipped.
    pub fn events_seen(&self) -> u64 {
        self.next_index
    }

    /// The next event, or `None` after the last.
    pub fn next_event(&mut self) -> Result<Option<&Event>> {
        if self.buffered {
            self.buffered = false;
            return Ok(Some(&self.event));
        }
        if self.advance()? {
            Ok(Some(&self.event))
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
            self.weights.add(decl.id.as_bytes());
        }
        self.compact_weight_slots = (0..self.weights.ids.len()).collect();
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
            match self.parse_event_body(index) {
                Ok(()) => return Ok(true),
                Err(failure) => {
                    let error = ParseError {
                        path: self.path.clone(),
                        line: failure.line,
                        event: Some(index),
                        message: failure.message,
                    };
                    if failure.resync == Resync::AtEof || failure.resync == Resync::AtRootEnd {
                        self.finished = true;
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
            Resync::AtEventEnd | Resync::AtEof | Resync::AtRootEnd => Ok(()),
            Resync::AtNextEvent => {
                self.pending_event_start = true;
                Ok(())
            }
            Resync::SkipToEventEnd => loop {
                let line = match self.lines.next_line() {
                    Ok(Some((_, l))) => l,
                    // find_event_start reports the end of the text on the next call.
                    Ok(None) | Err(_) => return Ok(()),
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

    /// Advances to the next line inside an event and returns its number (the line is
    /// `self.lines.current()`); the end of the text here is an unterminated event.
    #[inline(always)]
    fn next_event_line(&mut self) -> std::result::Result<u64, EventFailure> {
        Ok(event_line(&mut self.lines)?.0)
    }

    /// Like [`Self::next_event_line`], skipping blank lines, `#` lines and XML comments.
    fn next_content_line(&mut self) -> std::result::Result<u64, EventFailure> {
        let n = self.next_event_line()?;
        self.content_line_from_current(n)
    }

    /// The current line (number `n`) if it has content, else the next line that has.
    fn content_line_from_current(&mut self, mut n: u64) -> std::result::Result<u64, EventFailure> {
        let mut in_comment = false;
        loop {
            let line = self.lines.current();
            if in_comment {
                // Inside a comment that began on an earlier line: this line is part of it
                // (and whatever follows its `-->` too).
                in_comment = comment_state_after(line, true);
                n = self.next_event_line()?;
                continue;
            }
            match line.iter().position(|&b| b > b' ') {
                None => {}
                Some(i) if line[i] == b'#' => {}
                Some(i) if line[i..].starts_with(b"<!--") => {
                    in_comment = comment_state_after(line, false);
                }
                Some(_) => return Ok(n),
            }
            n = self.next_event_line()?;
        }
    }

    fn parse_event_body(&mut self, index: u64) -> std::result::Result<(), EventFailure> {
        self.event.index = index;
        self.event.particles.clear();
        self.event.weights.clear();
        self.event.weights.resize(self.weights.ids.len(), None);

        // Event information line: NUP IDPRUP XWGTUP SCALUP AQEDUP AQCDUP.
        let n = self.next_content_line()?;
        let line = self.lines.current();
        if let Some(resync) = tag_line_resync(line) {
            return fail(
                n,
                resync,
                "missing the event information line (NUP IDPRUP XWGTUP ...)",
            );
        }
        let (line, window) = self.lines.current_padded();
        if let Some((nup, idprup, info)) = parse_info_line(line, window) {
            self.event.idprup = idprup;
            self.event.xwgtup = info[0];
            self.event.scalup = info[1];
            self.event.aqedup = info[2];
            self.event.aqcdup = info[3];
            return self.parse_particles_and_tail(nup);
        }
        let mut f = fields(line);
        let mut info = [0.0f64; 6];
        let mut nup = 0i64;
        let mut idprup = 0i64;
        for (k, name) in EVENT_INFO_FIELD_NAMES.iter().enumerate() {
            let Some(field) = f.next() else {
                return fail(
                    n,
                    Resync::SkipToEventEnd,
                    format!("event information line has {k} fields, expected 6"),
                );
            };
            let ok = match k {
                0 => parse_i64(field).map(|v| nup = v).is_some(),
                1 => parse_i64(field).map(|v| idprup = v).is_some(),
                _ => parse_f64(field).map(|v| info[k] = v).is_some(),
            };
            if !ok {
                return fail(
                    n,
                    Resync::SkipToEventEnd,
                    format!(
                        "event information field {} ({name}) is not a number: {:?}",
                        k + 1,
                        lossy(field)
                    ),
                );
            }
        }
        if let Some(extra) = f.next() {
            return fail(
                n,
                Resync::SkipToEventEnd,
                format!(
                    "event information line has more than 6 fields (extra {:?})",
                    lossy(extra)
                ),
            );
        }
        if !(0..=MAX_PARTICLES).contains(&nup) {
            return fail(
                n,
                Resync::SkipToEventEnd,
                format!("NUP = {nup} is not a particle count"),
            );
        }
        self.event.idprup = idprup;
        self.event.xwgtup = info[2];
        self.event.scalup = info[3];
        self.event.aqedup = info[4];
        self.event.aqcdup = info[5];
        self.parse_particles_and_tail(nup)
    }

    fn parse_particles_and_tail(&mut self, nup: i64) -> std::result::Result<(), EventFailure> {
        for k in 0..nup {
            let (n, line, window) = event_line(&mut self.lines)?;
            // A line that parses as a particle is neither blank nor a `#` line nor a
            // comment, and no comment is open before it: take it without those checks.
            if let Some(particle) = self.particle_layouts.read(line, window) {
                self.event.particles.push(particle);
                continue;
            }
            if let Some(particle) = parse_particle_line(line, window) {
                self.particle_layouts.learn(line);
                self.event.particles.push(particle);
                continue;
            }
            let n = self.content_line_from_current(n)?;
            let line = self.lines.current();
            // Parse first; only a line that fails is asked whether it is a tag (the end of
            // the particle block), which keeps the check off the hot path.
            let particle = match parse_particle(line) {
                Ok(particle) => particle,
                Err(message) => {
                    return match tag_line_resync(line) {
                        Some(resync) => fail(
                            n,
                            resync,
                            format!("NUP = {nup} but the event has only {k} particle lines"),
                        ),
                        None => fail(
                            n,
                            Resync::SkipToEventEnd,
                            format!("particle line {} of {nup}: {message}", k + 1),
                        ),
                    };
                }
            };
            self.event.particles.push(particle);
        }

        // Everything after the particles up to </event>: weights, scales, comments, info.
        self.tail.clear();
        let mut tail_first_line = None;
        let mut tail_has_comment = false;
        let mut tail_has_weight_tag = false;
        let mut expected_slot = 0usize;
        loop {
            let (n, line, window) = event_line(&mut self.lines)?;
            // MadGraph's one-weight lines take a fast path; any line it does not recognise
            // (and every line after an XML comment opens) goes to the general tag scanner.
            if !tail_has_comment {
                // The line of the weight that usually comes next, written as before.
                if let Some(value) = self.weights.shaped_value(expected_slot, line, window) {
                    set_weight(&mut self.event.weights, expected_slot, value);
                    expected_slot += 1;
                    continue;
                }
                if let Some(wgt) = simple_wgt_line(line, window) {
                    let Some(slot) =
                        self.weights
                            .slot(wgt.id, &mut expected_slot, self.learning_weights)
                    else {
                        return fail(n, Resync::SkipToEventEnd, undeclared_weight(wgt.id));
                    };
                    self.weights.learn_shape(slot, line, &wgt);
                    set_weight(&mut self.event.weights, slot, wgt.value);
                    continue;
                }
            }
            tail_first_line.get_or_insert(n);
            let (event_end, opens_comment, weight_tag) = tail_line_marks(line, window);
            tail_has_comment |= opens_comment;
            tail_has_weight_tag |= weight_tag;
            if let Some(end) = event_end {
                self.tail.extend_from_slice(&line[..end]);
                break;
            }
            let trimmed = line.trim_ascii_start();
            if is_open_tag(trimmed, b"event") {
                return fail(
                    n,
                    Resync::AtNextEvent,
                    "unterminated event: <event> begins before </event>",
                );
            }
            if trimmed.starts_with(b"</LesHouchesEvents") {
                return fail(
                    n,
                    Resync::AtRootEnd,
                    "unterminated event: </LesHouchesEvents> before </event>",
                );
            }
            self.tail.extend_from_slice(line);
            self.tail.push(b'\n');
        }
        // The general scanner looks only at tags named `w...` (and past comments): a tail
        // with neither, such as `<scales>`, `<clustering>` or `#` lines, has nothing for it.
        if tail_has_weight_tag || tail_has_comment {
            let first = tail_first_line.unwrap_or(0);
            self.parse_weights(first, tail_has_comment)?;
        }
        Ok(())
    }

    /// Reads `<rwgt><wgt id>`, compact `<weights>` and LHEF 2.0 `<weight name|id>` values.
    fn parse_weights(
        &mut self,
        first_line: u64,
        has_comment: bool,
    ) -> std::result::Result<(), EventFailure> {
        let tail = std::mem::take(&mut self.tail);
        let result = self.parse_weights_in(&tail, first_line, has_comment);
        self.tail = tail;
        result
    }

    fn parse_weights_in(
        &mut self,
        tail: &[u8],
        first_line: u64,
        has_comment: bool,
    ) -> std::result::Result<(), EventFailure> {
        let line_at =
            |offset: usize| first_line + memchr::memchr_iter(b'\n', &tail[..offset]).count() as u64;
        let mut pos = 0;
        let mut expected_slot = 0usize;
        loop {
            // Only tags named w... matter. Without comments, jump straight to them past
            // <clustering>, <mgrwt>, <scales> and the like.
            if !has_comment {
                match WEIGHT_TAG_START.find(&tail[pos..]) {
                    Some(i) => pos += i,
                    None => break,
                }
            }
            let Some(tag) = next_tag(tail, pos) else {
                break;
            };
            pos = tag.end;
            if tag.closing {
                continue;
            }
            match tag.name {
                b"wgt" | b"weight" => {
                    let id = if tag.name == b"wgt" {
                        attr(tag.attrs, b"id")
                    } else {
                        attr(tag.attrs, b"name").or_else(|| attr(tag.attrs, b"id"))
                    };
                    let tag_name = if tag.name == b"wgt" { "wgt" } else { "weight" };
                    let Some(id) = id else {
                        return fail(
                            line_at(tag.start),
                            Resync::AtEventEnd,
                            format!("<{tag_name}> without an id"),
                        );
                    };
                    let Some((body, after)) = text_until_close(tail, tag.end, tag.name) else {
                        return fail(
                            line_at(tag.start),
                            Resync::AtEventEnd,
                            format!("<{tag_name}> without </{tag_name}>"),
                        );
                    };
                    pos = after;
                    let Some(value) = parse_f64(body.trim_ascii()) else {
                        return fail(
                            line_at(tag.start),
                            Resync::AtEventEnd,
                            format!(
                                "weight {:?} is not a number: {:?}",
                                lossy(id),
                                lossy(body.trim_ascii())
                            ),
                        );
                    };
                    let Some(slot) =
                        self.weights
                            .slot(id, &mut expected_slot, self.learning_weights)
                    else {
                        return fail(
                            line_at(tag.start),
                            Resync::AtEventEnd,
                            undeclared_weight(id),
                        );
                    };
                    set_weight(&mut self.event.weights, slot, value);
                    expected_slot = slot + 1;
                }
                b"weights" => {
                    let Some((body, after)) = text_until_close(tail, tag.end, b"weights") else {
                        return fail(
                            line_at(tag.start),
                            Resync::AtEventEnd,
                            "<weights> without </weights>",
                        );
                    };
                    pos = after;
                    for (k, field) in fields(body).enumerate() {
                        let Some(&slot) = self.compact_weight_slots.get(k) else {
                            return fail(
                                line_at(tag.start),
                                Resync::AtEventEnd,
                                format!(
                                    "<weights> has more than the {} values declared in <initrwgt>",
                                    self.compact_weight_slots.len()
                                ),
                            );
                        };
                        let Some(value) = parse_f64(field) else {
                            return fail(
                                line_at(tag.start),
                                Resync::AtEventEnd,
                                format!(
                                    "<weights> value {} is not a number: {:?}",
                                    k + 1,
                                    lossy(field)
                                ),
                            );
                        };
                        // Explicit <wgt id> values win over positional ones, in either order.
                        self.event.weights[slot].get_or_insert(value);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The next line inside an event: its number, the line and its padded window (see
/// [`LineSource::next_line_padded`]); the end of the text here is an unterminated event.
/// A function of the line source alone, so that the line may be held while other parts
/// of the reader change.
#[inline(always)]
fn event_line(lines: &mut LineSource) -> std::result::Result<PaddedLine<'_>, EventFailure> {
    let line_no = lines.line_no();
    match lines.next_line_padded() {
        Ok(Some(next)) => Ok(next),
        Ok(None) => fail(
            line_no,
            Resync::AtEof,
            "unterminated event: the file ends inside it",
        ),
        Err(e) => fail(
            line_no + 1,
            Resync::AtEof,
            format!("cannot read further (truncated or corrupt file?): {e}"),
        ),
    }
}

/// The named-weight columns: ids in column order and a map from id to column.
#[derive(Default)]
struct WeightColumns {
    ids: Vec<String>,
    lookup: HashMap<Box<[u8]>, usize>,
    /// Per column, the shape of its last `<wgt>` line read the long way.
    shapes: Vec<Option<WgtLineShape>>,
}

impl WeightColumns {
    fn add(&mut self, id: &[u8]) -> usize {
        if let Some(&slot) = self.lookup.get(id) {
            return slot;
        }
        let slot = self.ids.len();
        self.ids.push(String::from_utf8_lossy(id).into_owned());
        self.lookup.insert(id.into(), slot);
        self.shapes.push(None);
        slot
    }

    /// The value of `line` if it is the `<wgt>` line of column `slot` in the shape seen
    /// before.
    #[inline(always)]
    fn shaped_value(&self, slot: usize, line: &[u8], window: &[u8]) -> Option<f64> {
        self.shapes.get(slot)?.as_ref()?.value(line, window)
    }

    /// Remembers the shape of the `<wgt>` line of column `slot` (the latest one wins).
    fn learn_shape(&mut self, slot: usize, line: &[u8], wgt: &WgtLine<'_>) {
        if let Some(shape) = self.shapes.get_mut(slot) {
            *shape = WgtLineShape::of(line, wgt.value_start, wgt.value_end);
        }
    }

    /// The column of weight `id`. Weights come in the same order in every event, so the
    /// column after the previous one is tried before the hash map. While `learning` (the
    /// first event), an undeclared id becomes a new column; afterwards it is `None`.
    #[inline]
    fn slot(&mut self, id: &[u8], expected_slot: &mut usize, learning: bool) -> Option<usize> {
        let slot = match self.ids.get(*expected_slot) {
            Some(expected) if same_short_bytes(expected.as_bytes(), id) => *expected_slot,
            _ => match self.lookup.get(id) {
                Some(&slot) => slot,
                None if learning && usable_weight_id(id) => self.add(id),
                None => return None,
            },
        };
        *expected_slot = slot + 1;
        Some(slot)
    }
}

/// `a == b` for the short weight ids, without a call to `memcmp`.
#[inline(always)]
fn same_short_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Stores a weight value, growing the row when the first event added a column.
#[inline]
fn set_weight(weights: &mut Vec<Option<f64>>, slot: usize, value: f64) {
    if slot >= weights.len() {
        weights.resize(slot + 1, None);
    }
    weights[slot] = Some(value);
}

/// Where a tag named `w...` (`<wgt`, `<weight`, `<weights`) may start.
static WEIGHT_TAG_START: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"<w"));

/// A weight id becomes a column name `w_<id>`: no control characters (Arrow refuses a
/// NUL in a name, and none belongs in an id).
fn usable_weight_id(id: &[u8]) -> bool {
    !id.is_empty() && id.iter().all(|&b| b >= b' ' && b != 0x7f)
}

#[cold]
fn undeclared_weight(id: &[u8]) -> String {
    if usable_weight_id(id) {
        format!(
            "weight id {:?} is neither declared in <initrwgt> nor present in the first event",
            lossy(id)
        )
    } else {
        format!(
            "weight id {:?} is empty or contains a control character",
            lossy(id)
        )
    }
}

/// In one pass over the `<` of a line after the particles: where `</event>` starts,
/// whether an XML comment opens before it, and whether a tag named `w...` (`<wgt`,
/// `<weight`, `<weights`) starts before it: a tail without one has no weights to read.
/// `window` is the line followed by more readable bytes (at least 64 in all, see
/// [`LineSource::current_padded`]), or just the line.
#[inline]
fn tail_line_marks(line: &[u8], window: &[u8]) -> (Option<usize>, bool, bool) {
    let mut opens_comment = false;
    let mut weight_tag = false;
    // Most such lines are short tags (`</rwgt>`, `</event>`): look at each `<` of the
    // first 64 bytes through a bit mask, and search only the rest of a longer line.
    let head = &line[..line.len().min(64)];
    let mut mask = match window.get(..64) {
        Some(block) => {
            // Bits for bytes past the line's end are cleared.
            let in_line = u64::MAX >> (64 - head.len().max(1));
            let in_line = if head.is_empty() { 0 } else { in_line };
            byte_mask(block, b'<') & in_line
        }
        None => byte_mask(head, b'<'),
    };
    let rest_positions = memchr::memchr_iter(b'<', &line[head.len()..]).map(|i| i + head.len());
    let head_positions = std::iter::from_fn(|| {
        (mask != 0).then(|| {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            i
        })
    });
    for i in head_positions.chain(rest_positions) {
        let rest = &line[i..];
        if rest.starts_with(b"</event>") {
            return (Some(i), opens_comment, weight_tag);
        }
        opens_comment |= rest.starts_with(b"<!--");
        weight_tag |= rest.get(1) == Some(&b'w');
    }
    (None, opens_comment, weight_tag)
}

/// A well-formed event information line (`NUP IDPRUP XWGTUP SCALUP AQEDUP AQCDUP`) with a
/// particle count in range; `None` sends the line to the general path, which reads it the
/// same way or explains what is wrong.
#[inline]
fn parse_info_line(line: &[u8], window: &[u8]) -> Option<(i64, i64, [f64; 4])> {
    let mut cursor = FieldCursor::padded(line, window);
    let nup = i64::from(cursor.i32().ok()?);
    let idprup = i64::from(cursor.i32().ok()?);
    let mut info = [0.0f64; 4];
    for slot in &mut info {
        *slot = cursor.f64().ok()?;
    }
    (cursor.at_end() && (0..=MAX_PARTICLES).contains(&nup)).then_some((nup, idprup, info))
}

/// A well-formed particle line, parsed inline; `None` sends the line to the general
/// path, which reads it the same way or explains what is wrong. The usual layouts take
/// [`FastFields`]; others the cursor's fast paths.
#[inline(always)]
fn parse_particle_line(line: &[u8], window: &[u8]) -> Option<Particle> {
    parse_particle_line_fast(line, window).or_else(|| parse_particle_line_cursor(line, window))
}

/// [`parse_particle_line`] through [`FastFields`]: every field in a fixed layout.
#[inline(always)]
fn parse_particle_line_fast(line: &[u8], window: &[u8]) -> Option<Particle> {
    let mut fields = FastFields::new(line, window);
    let mut ints = [0i32; 6];
    let mut floats = [0f64; 7];
    for slot in &mut ints {
        *slot = fields.i32()?;
    }
    for slot in &mut floats {
        *slot = fields.f64()?;
    }
    if !fields.at_end() {
        return None;
    }
    Some(Particle::from_columns(ints, floats))
}

/// [`parse_particle_line`] through the fast paths of [`FieldCursor`].
#[inline(never)]
fn parse_particle_line_cursor(line: &[u8], window: &[u8]) -> Option<Particle> {
    let mut cursor = FieldCursor::padded(line, window);
    let mut ints = [0i32; 6];
    let mut floats = [0f64; 7];
    for slot in &mut ints {
        *slot = cursor.i32().ok()?;
    }
    for slot in &mut floats {
        *slot = cursor.f64().ok()?;
    }
    if !cursor.at_end() {
        return None;
    }
    Some(Particle::from_columns(ints, floats))
}

#[cold]
fn parse_particle(line: &[u8]) -> std::result::Result<Particle, String> {
    let mut cursor = FieldCursor::new(line);
    let mut ints = [0i32; 6];
    let mut floats = [0f64; 7];
    for (k, slot) in ints.iter_mut().enumerate() {
        *slot = cursor.i32().map_err(|e| field_error(k, e, "an integer"))?;
    }
    for (k, slot) in floats.iter_mut().enumerate() {
        *slot = cursor
            .f64()
            .map_err(|e| field_error(6 + k, e, "a number"))?;
    }
    let extra = cursor.count_rest();
    if extra > 0 {
        return Err(format!(
            "expected {PARTICLE_FIELDS} fields, found {}",
            PARTICLE_FIELDS + extra
        ));
    }
    Ok(Particle::from_columns(ints, floats))
}

#[cold]
fn field_error(index: usize, error: FieldError<'_>, what: &str) -> String {
    match error {
        FieldError::Missing => format!("expected {PARTICLE_FIELDS} fields, found {index}"),
        FieldError::NotANumber(field) => bad_field(index, field, what),
    }
}

#[cold]
fn bad_field(index: usize, field: &[u8], what: &str) -> String {
    format!(
        "field {} ({}) is not {what}: {:?}",
        index + 1,
        PARTICLE_FIELD_NAMES[index],
        lossy(field)
    )
}

/// A line inside an event that starts with a tag ends the numeric part; says where we are.
fn tag_line_resync(line: &[u8]) -> Option<Resync> {
    let trimmed = line.trim_ascii_start();
    if !trimmed.starts_with(b"<") {
        return None;
    }
    Some(if find_closing(trimmed, b"</event>").is_some() {
        Resync::AtEventEnd
    } else if is_open_tag(trimmed, b"event") {
        Resync::AtNextEvent
    } else if trimmed.starts_with(b"</LesHouchesEvents") {
        Resync::AtRootEnd
    } else {
        Resync::SkipToEventEnd
    })
}

/// `<name>` or `<name attr...>` at the start of `trimmed` (not `<name_longer>`).
fn is_open_tag(trimmed: &[u8], name: &[u8]) -> bool {
    trimmed.len() > name.len()
        && trimmed[0] == b'<'
        && trimmed[1..].starts_with(name)
        && matches!(
            trimmed.get(1 + name.len()),
            Some(b'>' | b' ' | b'\t' | b'/') | None
        )
}

/// Whether an XML comment is still open after `line`, given whether one was open before.
fn comment_state_after(line: &[u8], mut in_comment: bool) -> bool {
    let mut rest = line;
    loop {
        if in_comment {
            match memchr::memmem::find(rest, b"-->") {
                Some(i) => {
                    in_comment = false;
                    rest = &rest[i + 3..];
                }
                None => return true,
            }
        } else {
            match memchr::memmem::find(rest, b"<!--") {
                Some(i) => {
                    in_comment = true;
                    rest = &rest[i + 4..];
                }
                None => return false,
            }
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
    fn tail_marks_in_short_and_long_lines() {
        assert_eq!(
            tail_line_marks(b"</event>", b"</event>"),
            (Some(0), false, false)
        );
        assert_eq!(tail_line_marks(b"<rwgt>", b"<rwgt>"), (None, false, false));
        assert_eq!(
            tail_line_marks(b" <wgt id='1'>", b" <wgt id='1'>"),
            (None, false, true)
        );
        assert_eq!(
            tail_line_marks(b"</wgt> </event> <w", b""),
            (Some(7), false, false)
        );
        assert_eq!(
            tail_line_marks(b"<!-- x --> </event>", b""),
            (Some(11), true, false)
        );
        let long = format!("{}<!--{}</event>", "a".repeat(70), "b".repeat(10));
        assert_eq!(
            tail_line_marks(long.as_bytes(), long.as_bytes()),
            (Some(84), true, false)
        );
        // A tag that starts in the first 64 bytes and ends after them.
        let across = format!("{}</event>", " ".repeat(60));
        assert_eq!(
            tail_line_marks(across.as_bytes(), across.as_bytes()),
            (Some(60), false, false)
        );
        let late = format!("{}<!-- {}</event>", " ".repeat(62), "c".repeat(3));
        assert_eq!(
            tail_line_marks(late.as_bytes(), late.as_bytes()),
            (Some(70), true, false)
        );
        // Through a padded window: a '<' past the line's end is not seen.
        let window = format!("</rwgt>\n</event>{}", " ".repeat(64));
        assert_eq!(
            tail_line_marks(&window.as_bytes()[..7], window.as_bytes()),
            (None, false, false)
        );
        assert_eq!(
            tail_line_marks(b"", window.as_bytes()),
            (None, false, false)
        );
        let window = format!("</event>\n<!--{}", " ".repeat(64));
        assert_eq!(
            tail_line_marks(&window.as_bytes()[..8], window.as_bytes()),
            (Some(0), false, false)
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
