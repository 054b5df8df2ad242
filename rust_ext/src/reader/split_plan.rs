//! Byte ranges of one big plain LHE file, each starting at an event, for reading the file
//! in several processes at once (`vbsad preprocess --jobs N`).
//!
//! One pass over the text (line by line, as the reader sees it) finds split points near
//! equal shares of the file and counts the lines and events before each, so that every
//! range's reader numbers its lines and events as reading the whole file would. A split
//! point is an `<event>` line outside comments whose previous non-blank line ends with
//! `</event>`: the event before it is closed, so no event straddles two ranges. The counts
//! assume the events are well formed; a caller checks them against what each range's reader
//! counted (see [`crate::FileSummary::range`]) and reads the file in one piece if they
//! disagree. Gzip text cannot be split: it yields one range.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use super::markup::{comment_state_after, is_open_tag};
use crate::line_source::{open_text, LineSource};

/// Bytes `[start, end)` of a plain LHE file, read after the file's header by one reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// Offset of the range's first byte (0, or the start of an `<event>` line).
    pub start: u64,
    /// Offset just past the range (the file size for the last range).
    pub end: u64,
    /// Lines of the file before `start`.
    pub lines_before: u64,
    /// Events of the file begun before `start` (the range's first event index).
    pub events_before: u64,
    /// The range ends where the file ends (so an end without `</LesHouchesEvents>` there
    /// is a truncation, as in the whole file).
    pub last: bool,
}

/// At most `parts` ranges of `path`, each of at least about `min_part_bytes` bytes; one
/// range (the whole file) for a gzip file, a small file or `parts <= 1`.
pub fn plan_split(path: &Path, parts: usize, min_part_bytes: u64) -> io::Result<Vec<ByteRange>> {
    let size = std::fs::metadata(path)?.len();
    let whole = vec![ByteRange {
        start: 0,
        end: size,
        lines_before: 0,
        events_before: 0,
        last: true,
    }];
    let (text, is_gzip) = open_text(path)?;
    let wanted = usize::try_from(size / min_part_bytes.max(1))
        .unwrap_or(usize::MAX)
        .min(parts);
    if is_gzip || wanted <= 1 {
        return Ok(whole);
    }
    let targets: Vec<u64> = (1..wanted as u64)
        .map(|k| size / wanted as u64 * k)
        .collect();
    let mut lines = LineSource::new(text);
    let mut splits: Vec<(u64, u64, u64)> = Vec::new();
    let mut events = 0u64;
    let mut in_comment = false;
    let mut previous_closes_event = false;
    loop {
        let offset = lines.bytes_consumed();
        let Some((n, line)) = lines.next_line()? else {
            break;
        };
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        let was_in_comment = in_comment;
        // Comment marks are rare: look for them only on lines that may have one (`<!--`
        // has a `!`, `-->` a `>`; the numbers of particle lines have neither).
        if was_in_comment || memchr::memchr2(b'!', b'>', line).is_some() {
            in_comment = comment_state_after(line, was_in_comment);
        }
        if !was_in_comment && is_open_tag(trimmed, b"event") {
            if previous_closes_event
                && splits.len() < targets.len()
                && offset >= targets[splits.len()]
            {
                splits.push((offset, n - 1, events));
            }
            events += 1;
        } else if !was_in_comment && trimmed.starts_with(b"</LesHouchesEvents") {
            break;
        }
        previous_closes_event = !was_in_comment && trimmed.ends_with(b"</event>");
    }
    if splits.is_empty() {
        return Ok(whole);
    }
    let mut ranges = Vec::with_capacity(splits.len() + 1);
    let mut start = (0, 0, 0);
    for &split in &splits {
        ranges.push(ByteRange {
            start: start.0,
            end: split.0,
            lines_before: start.1,
            events_before: start.2,
            last: false,
        });
        start = split;
    }
    ranges.push(ByteRange {
        start: start.0,
        end: size,
        lines_before: start.1,
        events_before: start.2,
        last: true,
    });
    Ok(ranges)
}

/// The bytes of `range` of a plain file.
pub(crate) fn open_range_text(path: &Path, range: &ByteRange) -> io::Result<Box<dyn Read + Send>> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(range.start))?;
    Ok(Box::new(file.take(range.end - range.start)))
}
