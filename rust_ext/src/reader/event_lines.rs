//! The lines inside an event: the next one, the next one with content, and where the
//! line cursor stands after an error, so that skipping a bad event resumes in the right
//! place.

use super::header::lossy;
use super::markup::{comment_state_after, is_open_tag};
use super::xml_scan::find_closing;
use crate::line_source::{LineSource, PaddedLine};

/// Where the line cursor stands after an error inside an event, so that skipping resumes
/// at the right place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resync {
    /// Still inside the bad event: skip to its `</event>`.
    SkipToEventEnd,
    /// The bad event's `</event>` has been consumed.
    AtEventEnd,
    /// The line just read opens the next event.
    AtNextEvent,
    /// `</LesHouchesEvents>` has been read.
    AtRootEnd,
    /// The text ends here.
    AtEof,
    /// The text cannot be read further (a corrupt or truncated gzip stream, an I/O error).
    Unreadable,
}

pub(super) struct EventFailure {
    pub(super) line: u64,
    pub(super) message: String,
    pub(super) resync: Resync,
}

pub(super) fn fail<T>(
    line: u64,
    resync: Resync,
    message: impl Into<String>,
) -> Result<T, EventFailure> {
    Err(EventFailure {
        line,
        message: message.into(),
        resync,
    })
}

/// "`what` is not a finite number: `text`": NaN, an infinity, or a number too large for
/// a double, where a value must be finite.
#[cold]
pub(super) fn not_finite(what: &str, text: Option<&[u8]>) -> String {
    format!(
        "{what} is not a finite number: {:?}",
        lossy(text.unwrap_or_default())
    )
}

/// The next line inside an event: its number, the line and its padded window (see
/// [`LineSource::next_line_padded`]); the end of the text here is an unterminated event.
/// A function of the line source alone, so that the line may be held while other parts
/// of the reader change.
#[inline(always)]
pub(super) fn event_line(lines: &mut LineSource) -> Result<PaddedLine<'_>, EventFailure> {
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
            Resync::Unreadable,
            format!("cannot read further (truncated or corrupt file?): {e}"),
        ),
    }
}

/// Advances to the next line inside an event and returns its number (the line is
/// `lines.current()`); the end of the text here is an unterminated event.
#[inline(always)]
fn next_event_line(lines: &mut LineSource) -> Result<u64, EventFailure> {
    Ok(event_line(lines)?.0)
}

/// Like [`next_event_line`], skipping blank lines, `#` lines and XML comments.
pub(super) fn next_content_line(lines: &mut LineSource) -> Result<u64, EventFailure> {
    let n = next_event_line(lines)?;
    content_line_from_current(lines, n)
}

/// The current line (number `n`) if it has content, else the next line that has.
pub(super) fn content_line_from_current(
    lines: &mut LineSource,
    mut n: u64,
) -> Result<u64, EventFailure> {
    let mut in_comment = false;
    loop {
        let line = lines.current();
        if in_comment {
            // Inside a comment that began on an earlier line: this line is part of it
            // (and whatever follows its `-->` too).
            in_comment = comment_state_after(line, true);
            n = next_event_line(lines)?;
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
        n = next_event_line(lines)?;
    }
}

/// A line inside an event that starts with a tag ends the numeric part; says where we are.
pub(super) fn tag_line_resync(line: &[u8]) -> Option<Resync> {
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
