//! The whitespace-separated numeric fields of one line, read in one pass.

use super::fixed_layout::parse_fixed_layout;
use super::number::{parse_f64, parse_i32};

/// Reads the whitespace-separated numeric fields of a line in one pass: tokenising and
/// number parsing together, with the general parsers only for unusual spellings.
pub(crate) struct FieldCursor<'a> {
    line: &'a [u8],
    /// `line`, or `line` followed by more readable bytes starting with one <= b' '
    /// (see [`FieldCursor::padded`]): the fast paths read it in fixed-size pieces.
    window: &'a [u8],
    pos: usize,
}

/// Why a field could not be read: it is missing, or it is this text.
#[derive(Debug, PartialEq)]
pub(crate) enum FieldError<'a> {
    Missing,
    NotANumber(&'a [u8]),
}

impl<'a> FieldCursor<'a> {
    pub(crate) fn new(line: &'a [u8]) -> Self {
        FieldCursor {
            line,
            window: line,
            pos: 0,
        }
    }

    /// [`FieldCursor::padded`] that starts reading at `line[pos..]`.
    #[inline(always)]
    pub(crate) fn padded_from(line: &'a [u8], window: &'a [u8], pos: usize) -> Self {
        let mut cursor = FieldCursor::padded(line, window);
        cursor.pos = pos.min(line.len());
        cursor
    }

    /// A cursor over `line` that may read ahead in `window`: `line` followed by more bytes,
    /// the first of which is a terminator (<= b' '), as
    /// [`crate::line_source::LineSource::current_padded`] gives. Every field stops at the
    /// terminator, so what is read is the same as with [`FieldCursor::new`], only faster
    /// near the end of the line.
    #[inline(always)]
    pub(crate) fn padded(line: &'a [u8], window: &'a [u8]) -> Self {
        debug_assert!(window.starts_with(line));
        debug_assert!(window.get(line.len()).is_none_or(|&b| b <= b' '));
        FieldCursor {
            line,
            window,
            pos: 0,
        }
    }

    #[inline(always)]
    fn skip_blanks(&mut self) -> bool {
        while let Some(&b) = self.line.get(self.pos) {
            if b > b' ' {
                return true;
            }
            self.pos += 1;
        }
        false
    }

    #[inline]
    fn at_delimiter(&self, at: usize) -> bool {
        self.line.get(at).is_none_or(|&b| b <= b' ')
    }

    #[inline]
    fn token(&mut self) -> &'a [u8] {
        let start = self.pos;
        while !self.at_delimiter(self.pos) {
            self.pos += 1;
        }
        &self.line[start..self.pos]
    }

    /// The next field as a float. The fixed layout of MadGraph and most Fortran writers
    /// is parsed inline; every other spelling goes to [`Self::f64_general`].
    #[inline(always)]
    pub(crate) fn f64(&mut self) -> Result<f64, FieldError<'a>> {
        if !self.skip_blanks() {
            return Err(FieldError::Missing);
        }
        if let Some((v, end)) = parse_fixed_layout(self.window, self.pos) {
            self.pos = end;
            debug_assert!(self.pos <= self.line.len());
            return Ok(v);
        }
        self.f64_general()
    }

    #[inline(never)]
    fn f64_general(&mut self) -> Result<f64, FieldError<'a>> {
        let token = self.token();
        parse_f64(token).ok_or(FieldError::NotANumber(token))
    }

    /// The next field as a 32-bit integer: up to 9 plain digits with an optional minus
    /// sign are read inline, anything else by the general parser.
    #[inline]
    pub(crate) fn i32(&mut self) -> Result<i32, FieldError<'a>> {
        if !self.skip_blanks() {
            return Err(FieldError::Missing);
        }
        // Up to 9 plain digits with an optional minus sign, then the general parser.
        let start = self.pos;
        let negative = self.line[start] == b'-';
        let first_digit = start + usize::from(negative);
        let mut i = first_digit;
        let mut value: i32 = 0;
        while let Some(&b) = self.line.get(i) {
            let d = b.wrapping_sub(b'0');
            if d > 9 || i - first_digit == 9 {
                break;
            }
            value = value * 10 + i32::from(d);
            i += 1;
        }
        if i > first_digit && self.at_delimiter(i) {
            self.pos = i;
            return Ok(if negative { -value } else { value });
        }
        let token = self.token();
        parse_i32(token).ok_or(FieldError::NotANumber(token))
    }

    /// The part of the line not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.line[self.pos..]
    }

    /// Whether only blanks are left on the line (skips them).
    #[inline(always)]
    pub(crate) fn at_end(&mut self) -> bool {
        !self.skip_blanks()
    }

    /// Number of fields left on the line (consumes them).
    pub(crate) fn count_rest(&mut self) -> usize {
        let mut n = 0;
        while self.skip_blanks() {
            self.token();
            n += 1;
        }
        n
    }
}

/// Splits a line into whitespace-separated fields (space, tab, CR, other ASCII controls).
#[inline]
pub(crate) fn fields(line: &[u8]) -> Fields<'_> {
    Fields { rest: line }
}

pub(crate) struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let start = self.rest.iter().position(|&b| b > b' ')?;
        let rest = &self.rest[start..];
        let len = rest.iter().position(|&b| b <= b' ').unwrap_or(rest.len());
        self.rest = &rest[len..];
        Some(&rest[..len])
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

        /// The fast paths give the bits of the general, correctly rounded parser.
        #[test]
        fn fast_paths_are_exact(x in any::<f64>().prop_filter("finite", |v| v.is_finite()),
                                precision in 0usize..19, scientific in any::<bool>()) {
            let text = if scientific { format!("{x:+.precision$e}") } else { format!("{x:.precision$}") };
            let general: f64 = fast_float2::parse(text.as_bytes()).unwrap();
            prop_assert_eq!(parse_f64(text.as_bytes()).unwrap().to_bits(), general.to_bits(), "{}", text);
            let mut cursor = FieldCursor::new(text.as_bytes());
            prop_assert_eq!(cursor.f64().unwrap().to_bits(), general.to_bits(), "{}", text);
            // Room to read 16 bytes: the vector path takes over where it can.
            let padded = format!("{text}                 7");
            let mut cursor = FieldCursor::new(padded.as_bytes());
            prop_assert_eq!(cursor.f64().unwrap().to_bits(), general.to_bits(), "{}", text);
            prop_assert_eq!(cursor.f64(), Ok(7.0));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

        /// Fortran-style spellings (`0.12345E+02`, `-1.5D-3` aside): sign, integer digits,
        /// point, fraction digits, exponent letter and width as generators write them.
        #[test]
        fn lhe_spellings_are_exact(sign in prop_oneof![Just(""), Just("+"), Just("-")],
                                   int_digits in "[0-9]{0,6}", frac in "[0-9]{0,14}",
                                   point in any::<bool>(), letter in prop_oneof![Just("e"), Just("E")],
                                   exp in -40i32..40, width in 1usize..4, has_exp in any::<bool>()) {
            let int_digits = if int_digits.is_empty() && (frac.is_empty() || !point) { "0".to_owned() } else { int_digits };
            let mantissa = if point { format!("{int_digits}.{frac}") } else { int_digits.clone() };
            let exponent = if has_exp {
                format!("{letter}{}{:0width$}", if exp < 0 { "-" } else { "+" }, exp.unsigned_abs())
            } else {
                String::new()
            };
            let text = format!("{sign}{mantissa}{exponent}");
            let general: f64 = fast_float2::parse(text.as_bytes()).unwrap();
            let padded = format!("{text}                 ");
            let mut cursor = FieldCursor::new(padded.as_bytes());
            prop_assert_eq!(cursor.f64().unwrap().to_bits(), general.to_bits(), "{}", text);
        }
    }

    #[test]
    fn cursor_reads_fields_in_one_pass() {
        let mut c = FieldCursor::new(b" -11\t1 +8.7e+02 1.0D+03 .5 *** 7x");
        assert_eq!(c.i32(), Ok(-11));
        assert_eq!(c.i32(), Ok(1));
        assert_eq!(c.f64(), Ok(870.0));
        assert_eq!(c.f64(), Ok(1000.0));
        assert_eq!(c.f64(), Ok(0.5));
        assert_eq!(c.f64(), Err(FieldError::NotANumber(b"***")));
        assert_eq!(c.f64(), Err(FieldError::NotANumber(b"7x")));
        assert_eq!(c.f64(), Err(FieldError::Missing));
        let mut c = FieldCursor::new(b"-2147483648 2147483648 +7 - 0012 1234567890");
        assert_eq!(c.i32(), Ok(i32::MIN));
        assert_eq!(c.i32(), Err(FieldError::NotANumber(b"2147483648")));
        assert_eq!(c.i32(), Ok(7));
        assert_eq!(c.i32(), Err(FieldError::NotANumber(b"-")));
        assert_eq!(c.i32(), Ok(12));
        assert_eq!(c.i32(), Ok(1_234_567_890));
        // Every width of the inline path and beyond, with and without a sign.
        for digits in 1..=10usize {
            let text = "9".repeat(digits);
            let line = format!("{text} -{text}         ");
            let mut c = FieldCursor::new(line.as_bytes());
            let expected: Option<i32> = text.parse().ok();
            assert_eq!(c.i32().ok(), expected, "{line}");
            assert_eq!(c.i32().ok(), expected.map(|v| -v), "{line}");
        }
        let mut c = FieldCursor::new(b"12345678 1234567x        -0 +5      ");
        assert_eq!(c.i32(), Ok(12_345_678));
        assert_eq!(c.i32(), Err(FieldError::NotANumber(b"1234567x")));
        assert_eq!(c.i32(), Ok(0));
        assert_eq!(c.i32(), Ok(5));
        // A padded window gives the same fields as the bare line.
        let window = b" 7 -1.5 0.25e+01 1.\n2 3.0e+00 4 5 6 7 8 9 10 11 12";
        let line = &window[..19];
        let mut bare = FieldCursor::new(line);
        let mut padded = FieldCursor::padded(line, window);
        assert_eq!((bare.i32(), padded.i32()), (Ok(7), Ok(7)));
        for expected in [-1.5, 2.5, 1.0] {
            assert_eq!((bare.f64(), padded.f64()), (Ok(expected), Ok(expected)));
        }
        assert_eq!(
            (bare.f64(), padded.f64()),
            (Err(FieldError::Missing), Err(FieldError::Missing))
        );
        let mut c = FieldCursor::new(b"1 2 3");
        assert_eq!(c.i32(), Ok(1));
        assert_eq!(c.count_rest(), 2);
    }

    #[test]
    fn blanks_are_skipped_in_any_width_and_control_bytes_count_as_blanks() {
        for width in 0..20 {
            for filler in [b' ', b'\t', b'\r', 0u8, 0x1f] {
                let mut line = vec![filler; width];
                line.extend_from_slice(b"-12 \xa0");
                let mut c = FieldCursor::new(&line);
                assert_eq!(c.i32(), Ok(-12), "width {width}");
                // A non-ASCII byte is not a blank.
                assert_eq!(c.i32(), Err(FieldError::NotANumber(b"\xa0")));
            }
        }
    }

    #[test]
    fn field_splitting() {
        let got: Vec<&[u8]> = fields(b" \t1  -2\t+3.5\r").collect();
        assert_eq!(got, vec![&b"1"[..], b"-2", b"+3.5"]);
        assert_eq!(fields(b"   ").count(), 0);
    }
}
