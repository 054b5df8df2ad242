//! MadGraph's one-weight lines, `<wgt id='ID'> VALUE </wgt>`, read without the general tag
//! scanner.
//!
//! A file writes the line of a given weight the same way in every event: only the value
//! changes. [`simple_wgt_line`] reads any such line; [`WgtLineShape`] remembers the text
//! around the value of one weight, so that its later lines are recognised by comparing a
//! few machine words and reading the number. A line that does not match its shape goes
//! back to [`simple_wgt_line`], and anything that one does not recognise to the general
//! scanner: the shape only makes the common case cheaper, never changes what is read.

use crate::fields::{parse_fixed_layout, FieldCursor};

/// The bytes before a value a shape can hold (`<wgt id='mg_reweight_123'> ` is 27).
const PREFIX_WORDS: usize = 4;
/// The bytes after a value a shape can hold (` </wgt>` is 7).
const SUFFIX_WORDS: usize = 2;

/// A recognised `<wgt>` line: the id, the value and where the value's text lies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct WgtLine<'a> {
    pub(crate) id: &'a [u8],
    pub(crate) value: f64,
    pub(crate) value_start: usize,
    pub(crate) value_end: usize,
}

/// A line that is exactly `<wgt id='ID'> VALUE </wgt>` (either quote, any blanks), as
/// MadGraph writes them; `None` for anything else, which the general scanner then reads.
/// `window` is the line followed by its terminator and more bytes (see
/// [`FieldCursor::padded`]).
#[inline(always)]
pub(crate) fn simple_wgt_line<'a>(line: &'a [u8], window: &'a [u8]) -> Option<WgtLine<'a>> {
    let indent = line.iter().position(|b| !b.is_ascii_whitespace())?;
    // One 8-byte comparison (the window has room past the line; a match ends inside it).
    let tag = window.get(indent..indent + 8)?;
    if u64::from_le_bytes(tag.try_into().ok()?) != u64::from_le_bytes(*b"<wgt id=") {
        return None;
    }
    let rest = &line[indent + 8..];
    let (&quote, rest) = rest.split_first()?;
    if quote != b'\'' && quote != b'"' {
        return None;
    }
    // Ids are short: a plain loop beats a call to a vectorised search.
    let id_len = rest.iter().position(|&b| b == quote)?;
    let (id, rest) = rest.split_at(id_len);
    if rest.get(1) != Some(&b'>') {
        return None;
    }
    let rest = &rest[2..];
    let value_at = line.len() - rest.len();
    let value_start = value_at + rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let mut cursor = FieldCursor::padded_from(line, window, value_start);
    let value = cursor.f64().ok()?;
    // As `trim_ascii` would, inline: usually one blank, then `</wgt>` ends the line.
    let rest = cursor.rest();
    let value_end = line.len() - rest.len();
    let close_at = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let close: [u8; 6] = rest.get(close_at..close_at + 6)?.try_into().ok()?;
    if close != *b"</wgt>" {
        return None;
    }
    let after = &rest[close_at + 6..];
    after
        .iter()
        .all(u8::is_ascii_whitespace)
        .then_some(WgtLine {
            id,
            value,
            value_start,
            value_end,
        })
}

/// The text of one weight's line around its value: the line is `prefix VALUE suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WgtLineShape {
    prefix: Masked<PREFIX_WORDS>,
    suffix: Masked<SUFFIX_WORDS>,
}

impl WgtLineShape {
    /// The shape of `line`, whose value [`simple_wgt_line`] found at
    /// `line[value_start..value_end]`; `None` if the text around it is too long to hold.
    pub(crate) fn of(line: &[u8], value_start: usize, value_end: usize) -> Option<Self> {
        Some(WgtLineShape {
            prefix: Masked::of(line.get(..value_start)?)?,
            suffix: Masked::of(line.get(value_end..)?)?,
        })
    }

    /// The value of `line` if it has this shape, else `None`. `window` is the line
    /// followed by at least 64 readable bytes, the first a terminator (see
    /// [`crate::line_source::LineSource::current_padded`]).
    #[inline(always)]
    pub(crate) fn value(&self, line: &[u8], window: &[u8]) -> Option<f64> {
        // The line must hold the prefix, a value of at least one byte, and the suffix.
        let value_end = line.len().checked_sub(self.suffix.len)?;
        if value_end <= self.prefix.len
            || !self.prefix.matches(window, 0)
            || !self.suffix.matches(window, value_end)
        {
            return None;
        }
        // The number must end exactly where the suffix begins (the suffix starts with a
        // blank whenever this can match: the fixed-layout reader stops at one).
        match parse_fixed_layout(window, self.prefix.len)? {
            (value, end) if end == value_end => Some(value),
            _ => None,
        }
    }
}

/// Up to `8 * N` bytes of text as little-endian words, with a mask of the bytes that count.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Masked<const N: usize> {
    words: [u64; N],
    masks: [u64; N],
    len: usize,
}

impl<const N: usize> Masked<N> {
    /// `None` if `bytes` is longer than `8 * N`.
    fn of(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > 8 * N {
            return None;
        }
        let mut padded = [0u8; 64];
        padded[..bytes.len()].copy_from_slice(bytes);
        let word = |k: usize| u64::from_le_bytes(padded[8 * k..8 * k + 8].try_into().expect("8"));
        let mask = |k: usize| match bytes.len().saturating_sub(8 * k).min(8) {
            8 => u64::MAX,
            n => (1u64 << (8 * n)) - 1,
        };
        Some(Masked {
            words: std::array::from_fn(word),
            masks: std::array::from_fn(mask),
            len: bytes.len(),
        })
    }

    /// Whether `window[at..at + len]` is this text; reads `8 * N` bytes from `at` (false if
    /// the window is shorter).
    #[inline(always)]
    fn matches(&self, window: &[u8], at: usize) -> bool {
        let Some(block) = window.get(at..at + 8 * N) else {
            return false;
        };
        let mut differ = 0u64;
        for (k, chunk) in block.chunks_exact(8).enumerate() {
            let have = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            differ |= (have ^ self.words[k]) & self.masks[k];
        }
        differ == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line and its window: the line, a newline and 64 more bytes.
    fn padded(line: &str) -> (Vec<u8>, usize) {
        let mut window = line.as_bytes().to_vec();
        window.push(b'\n');
        window.extend_from_slice(&[b' '; 64]);
        (window, line.len())
    }

    fn shape_of(line: &str) -> WgtLineShape {
        let (window, len) = padded(line);
        let wgt = simple_wgt_line(&window[..len], &window).expect("a <wgt> line");
        WgtLineShape::of(&window[..len], wgt.value_start, wgt.value_end).expect("a shape")
    }

    fn value(shape: &WgtLineShape, line: &str) -> Option<f64> {
        let (window, len) = padded(line);
        shape.value(&window[..len], &window)
    }

    #[test]
    fn simple_lines_with_their_value_positions() {
        let (window, len) = padded("  <wgt id='17'> +2.6432317e-03 </wgt>");
        let wgt = simple_wgt_line(&window[..len], &window).unwrap();
        assert_eq!(wgt.id, b"17");
        assert_eq!(wgt.value, 2.6432317e-03);
        assert_eq!(&window[wgt.value_start..wgt.value_end], b"+2.6432317e-03");
        for other in [
            "<wgt id=17> 1.0 </wgt>",
            "<wgt id='1'> 1.0 </wgt> x",
            "<wgt id='1'> 1.0 </wgtx>",
            "<weight id='1'> 1.0 </weight>",
            "<wgt id='1'> abc </wgt>",
        ] {
            let (window, len) = padded(other);
            assert_eq!(simple_wgt_line(&window[..len], &window), None, "{other}");
        }
    }

    #[test]
    fn a_shape_reads_the_same_line_with_other_values() {
        let shape = shape_of("<wgt id='17'> +2.6432317e-03 </wgt>");
        assert_eq!(
            value(&shape, "<wgt id='17'> -1.5000000e+02 </wgt>"),
            Some(-150.0)
        );
        assert_eq!(value(&shape, "<wgt id='17'> 7.25 </wgt>"), Some(7.25));
        assert_eq!(
            value(&shape, "<wgt id='17'> -0.0000000e+00 </wgt>").map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
        // Anything else is left to the general readers.
        for other in [
            "<wgt id='18'> +2.6432317e-03 </wgt>",
            "<wgt id='1'> +2.6432317e-03 </wgt>",
            "<wgt id=\"17\"> +2.6432317e-03 </wgt>",
            "<wgt id='17'>  +2.6432317e-03 </wgt>",
            "<wgt id='17'> +2.6432317e-03 </wgt> ",
            "<wgt id='17'> +2.6432317e-03 </wgt",
            "<wgt id='17'> +2.6432317e-03x </wgt>",
            "<wgt id='17'> 1.0D+03 </wgt>",
            "<wgt id='17'> *2.6432317e-03 </wgt>",
            "<wgt id='17'> +2.64323170-03 </wgt>",
            "<wgt id='17'> +2.6432317e-0x </wgt>",
            "<wgt id='17'> +2.6432317e+99 </wgt>",
            "<wgt id='17'>  </wgt>",
            "<wgt id='17'> </wgt>",
            "<wgt id='17'></wgt>",
            "",
        ] {
            assert_eq!(value(&shape, other), None, "{other:?}");
        }
    }

    #[test]
    fn long_ids_have_no_shape() {
        let id = "x".repeat(40);
        let line = format!("<wgt id='{id}'> 1.0 </wgt>");
        let (window, len) = padded(&line);
        let wgt = simple_wgt_line(&window[..len], &window).unwrap();
        assert_eq!(
            WgtLineShape::of(&window[..len], wgt.value_start, wgt.value_end),
            None
        );
    }
}
