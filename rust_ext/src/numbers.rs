//! Number parsing for the whitespace-separated fields of LHE records.
//!
//! Generators write floats in every dialect Fortran and C allow: `1.0E+03`, Fortran's
//! `1.0D+03`, a leading dot `.5`, an explicit plus `+1.0`, no exponent, `NaN`, `Inf`.

/// Parses a float field; `None` if the bytes are not a number.
#[inline]
pub fn parse_f64(field: &[u8]) -> Option<f64> {
    if let Some(v) = parse_simple_f64(field) {
        return Some(v);
    }
    match fast_float2::parse::<f64, _>(field) {
        Ok(v) => Some(v),
        Err(_) => parse_fortran_f64(field),
    }
}

/// Slow path: Fortran `D`/`d` exponent markers, rewritten to `e` in a stack buffer.
#[cold]
fn parse_fortran_f64(field: &[u8]) -> Option<f64> {
    let mut buf = [0u8; 64];
    if field.len() > buf.len() || !field.iter().any(|&b| b == b'D' || b == b'd') {
        return None;
    }
    let mut n_markers = 0;
    for (dst, &src) in buf.iter_mut().zip(field) {
        *dst = if src == b'D' || src == b'd' {
            n_markers += 1;
            b'e'
        } else {
            src
        };
    }
    if n_markers != 1 {
        return None;
    }
    fast_float2::parse::<f64, _>(&buf[..field.len()]).ok()
}

/// Exact powers of ten representable in an f64.
pub(crate) const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Fast path for the shape LHE writers use (`-1.2345678901e+02`): a mantissa below 2^53
/// and a power of ten up to 22, where one multiplication or division by an exact power of
/// ten is correctly rounded (Clinger's fast path). Anything else returns `None` and goes
/// to the general parser.
#[inline]
fn parse_simple_f64(field: &[u8]) -> Option<f64> {
    match parse_simple_f64_prefix(field) {
        Some((v, used)) if used == field.len() => Some(v),
        _ => None,
    }
}

/// High bit set in each byte of the 8 (little-endian) that is not an ASCII digit.
#[inline]
fn non_digit_mask(v: u64) -> u64 {
    let a = v.wrapping_add(0x4646_4646_4646_4646);
    let b = v.wrapping_sub(0x3030_3030_3030_3030);
    (a | b) & 0x8080_8080_8080_8080
}

/// The value of 8 ASCII digits loaded little-endian (SWAR).
#[inline]
fn eight_digits(v: u64) -> u64 {
    eight_digit_values(v.wrapping_sub(0x3030_3030_3030_3030))
}

/// The value of 8 bytes holding digit values 0..=9 (byte 0 the most significant digit).
#[inline]
pub(crate) fn eight_digit_values(v: u64) -> u64 {
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    const MUL1: u64 = 0x000F_4240_0000_0064; // 100 + (1000000 << 32)
    const MUL2: u64 = 0x0000_2710_0000_0001; // 1 + (10000 << 32)
    let v = (v * 10) + (v >> 8);
    (((v & MASK).wrapping_mul(MUL1)) + (((v >> 16) & MASK).wrapping_mul(MUL2))) >> 32
}

/// The value of the first `n` (0..=7) ASCII digits of 8 bytes loaded little-endian.
#[inline]
fn leading_digits(v: u64, n: usize) -> u64 {
    if n == 0 {
        return 0;
    }
    // Digit values of the first n bytes moved to the top; zeros (leading 0 digits) below.
    let values = v.wrapping_sub(0x3030_3030_3030_3030) << (8 * (8 - n));
    eight_digit_values(values)
}

/// Fast path for the fixed layout of MadGraph and other Fortran writers: an optional sign,
/// one digit, a point, up to 15 fraction digits, then either nothing more or `e`/`E`, the
/// exponent's sign and two digits (`-0.10775103667E+01`, `+2.7789711e-03`, `-1.`).
/// How an unsigned float is written in the MadGraph layout `D.F...F[eE][+-]DD`: the number
/// of fraction digits (at most 13) and whether an exponent follows. Learned from one
/// number, it reads others written alike without searching for their parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FixedFloatShape {
    frac: usize,
    exponent: bool,
}

impl FixedFloatShape {
    /// The shape of `text` (no sign), or `None` if it is not in the MadGraph layout.
    pub(crate) fn of(text: &[u8]) -> Option<Self> {
        if text.len() < 2 || !text[0].is_ascii_digit() || text[1] != b'.' {
            return None;
        }
        let frac = text[2..].iter().take_while(|b| b.is_ascii_digit()).count();
        if frac > 13 {
            return None;
        }
        let exponent = match &text[2 + frac..] {
            [] => false,
            [letter, sign, d1, d2]
                if matches!(letter, b'e' | b'E')
                    && matches!(sign, b'+' | b'-')
                    && d1.is_ascii_digit()
                    && d2.is_ascii_digit() =>
            {
                true
            }
            _ => return None,
        };
        Some(FixedFloatShape { frac, exponent })
    }

    /// Bytes of a number of this shape.
    pub(crate) fn len(self) -> usize {
        2 + self.frac + 4 * usize::from(self.exponent)
    }

    /// The value of the number of this shape at `window[at..]` (no sign; ended by a byte
    /// <= b' '), or `None` if the bytes are anything else or the value is not exact this
    /// way. 24 bytes must be readable from `at`.
    #[inline(always)]
    pub(crate) fn read(self, window: &[u8], at: usize) -> Option<f64> {
        #[cfg(target_arch = "x86_64")]
        {
            crate::simd_float::parse_madgraph_known(window, at, self.frac, self.exponent)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            if !window.get(at).is_some_and(u8::is_ascii_digit) {
                return None; // no sign here
            }
            let (value, end) = parse_fixed_layout(window, at)?;
            (end == at + self.len()).then_some(value)
        }
    }
}

/// The number at `window[pos..]` in a fixed layout: MadGraph's through SSE2 where there is
/// SSE2, else (or when that declines) [`parse_fixed_layout`]. Same contract as the latter.
#[inline(always)]
pub(crate) fn parse_fixed_layout_fast(window: &[u8], pos: usize) -> Option<(f64, usize)> {
    #[cfg(target_arch = "x86_64")]
    if let Some(parsed) = crate::simd_float::parse_madgraph(window, pos) {
        return Some(parsed);
    }
    parse_fixed_layout(window, pos)
}

/// Reads the number at `window[pos..]`; 18 bytes must follow its sign (else `None`), and
/// the bytes before `pos` may be read too. Returns the value and the end of the number if
/// it ends there (end of `window` or a byte <= b' '); exact by Clinger's fast path
/// (mantissa <= 2^53, power of ten <= 22), else `None`.
#[inline(always)]
pub(crate) fn parse_fixed_layout(window: &[u8], pos: usize) -> Option<(f64, usize)> {
    let (negative, s) = match window.get(pos)? {
        b'-' => (true, pos + 1),
        b'+' => (false, pos + 1),
        _ => (false, pos),
    };
    let head: &[u8; 18] = window.get(s..s + 18)?.try_into().ok()?;
    let d0 = head[0].wrapping_sub(b'0');
    if d0 > 9 || head[1] != b'.' {
        return None;
    }
    let (n_frac, fraction) = fraction_digits(window, s + 2)?;
    let at = s + 2 + n_frac;
    // n_frac <= 15: the mantissa is below 10^16 and fits; exactness needs <= 2^53.
    let mantissa = u64::from(d0) * POW10_U64_16[n_frac] + fraction;
    if mantissa > (1 << 53) {
        return None;
    }
    if window.get(at).is_none_or(|&b| b <= b' ') {
        // No exponent (`0.`, `-1.`, `0.25`).
        return finish_simple(mantissa, -(n_frac as i32), negative, at);
    }
    let &[letter, sign, e1, e2] = window.get(at..at + 4)?.try_into().ok()?;
    let (e1, e2) = (e1.wrapping_sub(b'0'), e2.wrapping_sub(b'0'));
    if !matches!(letter, b'e' | b'E') || !matches!(sign, b'+' | b'-') || e1 > 9 || e2 > 9 {
        return None;
    }
    let used = at + 4;
    if window.get(used).is_some_and(|&b| b > b' ') {
        return None;
    }
    let e = i32::from(e1 * 10 + e2);
    let exponent = if sign == b'-' { -e } else { e } - n_frac as i32;
    finish_simple(mantissa, exponent, negative, used)
}

/// The run of 0 to 15 digits at `window[at..]` (16 bytes must be readable there): its
/// length and value; `None` for 16 digits or more.
#[inline(always)]
fn fraction_digits(window: &[u8], at: usize) -> Option<(usize, u64)> {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(found) = crate::simd_float::digit_run16(window, at) {
            return found;
        }
    }
    fraction_digits_swar(window, at)
}

/// [`fraction_digits`] 8 bytes at a time in general-purpose registers.
#[inline(always)]
fn fraction_digits_swar(window: &[u8], at: usize) -> Option<(usize, u64)> {
    let ahead: &[u8; 16] = window.get(at..at + 16)?.try_into().ok()?;
    let lo = u64::from_le_bytes(ahead[..8].try_into().expect("8 bytes"));
    let hi = u64::from_le_bytes(ahead[8..].try_into().expect("8 bytes"));
    let (lo_end, hi_end) = (non_digit_mask(lo), non_digit_mask(hi));
    if lo_end != 0 {
        let n = (lo_end.trailing_zeros() / 8) as usize;
        Some((n, leading_digits(lo, n)))
    } else if hi_end != 0 {
        let n = (hi_end.trailing_zeros() / 8) as usize;
        Some((
            8 + n,
            eight_digits(lo) * POW10_U64[n] + leading_digits(hi, n),
        ))
    } else {
        None
    }
}

/// 10^k for k in 0..16, exact in u64.
const POW10_U64_16: [u64; 16] = {
    let mut table = [1u64; 16];
    let mut k = 1;
    while k < 16 {
        table[k] = table[k - 1] * 10;
        k += 1;
    }
    table
};

const POW10_U64: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// Appends the decimal digits at `field[i..]` to `mantissa`; returns the new index and
/// how many digits were read. Eight bytes at a time while the line has them: the run of
/// leading digits is found with a bit mask and left-padded with '0' to use one SWAR step.
#[inline]
fn eat_digits(field: &[u8], mut i: usize, mantissa: &mut u64) -> (usize, u32) {
    let mut n = 0u32;
    while let Some(chunk) = field.get(i..i + 8) {
        let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let mask = non_digit_mask(v);
        let run = (mask.trailing_zeros() / 8) as usize; // leading digits, 0..=8
        if run == 0 {
            return (i, n);
        }
        let padded = if run == 8 {
            v
        } else {
            (v << (8 * (8 - run))) | (0x3030_3030_3030_3030 >> (8 * run))
        };
        *mantissa = mantissa
            .wrapping_mul(POW10_U64[run])
            .wrapping_add(eight_digits(padded));
        i += run;
        n += run as u32;
        if run < 8 || n > 16 {
            return (i, n); // the caller rejects more than 19 digits
        }
    }
    while let Some(&b) = field.get(i) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        *mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
        n += 1;
    }
    (i, n)
}

/// [`parse_simple_f64`] on the start of `field`: the value and the bytes it used.
#[inline]
fn parse_simple_f64_prefix(field: &[u8]) -> Option<(f64, usize)> {
    let (negative, i) = match field.first()? {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    let mut mantissa: u64 = 0;
    // Most LHE numbers have one digit before the point (`0.123E+02`, `-1.5e-03`).
    let (mut i, int_digits) = match field.get(i..i + 2) {
        Some(&[d, b'.']) if d.is_ascii_digit() => {
            mantissa = u64::from(d - b'0');
            (i + 1, 1)
        }
        _ => eat_digits(field, i, &mut mantissa),
    };
    let mut frac_digits = 0;
    if field.get(i) == Some(&b'.') {
        (i, frac_digits) = eat_digits(field, i + 1, &mut mantissa);
    }
    // At most 19 digits cannot overflow u64; exactness needs mantissa <= 2^53.
    let n_digits = int_digits + frac_digits;
    if n_digits == 0 || n_digits > 19 || mantissa > (1 << 53) {
        return None;
    }
    let mut exponent = -(frac_digits as i32);
    // Fast path for the usual two-digit exponent `E+02` / `e-03` ending the number.
    if let Some(&[b'e' | b'E', sign @ (b'+' | b'-'), d1, d2]) = field.get(i..i + 4) {
        let (d1, d2) = (d1.wrapping_sub(b'0'), d2.wrapping_sub(b'0'));
        let ends = field.get(i + 4).is_none_or(|b| !b.is_ascii_digit());
        if d1 <= 9 && d2 <= 9 && ends {
            let e = i32::from(d1 * 10 + d2);
            exponent += if sign == b'-' { -e } else { e };
            i += 4;
            return finish_simple(mantissa, exponent, negative, i);
        }
    }
    if let Some(&(b'e' | b'E')) = field.get(i) {
        i += 1;
        let (exp_negative, start) = match field.get(i)? {
            b'-' => (true, i + 1),
            b'+' => (false, i + 1),
            _ => (false, i),
        };
        i = start;
        let mut e: i32 = 0;
        while let Some(&b) = field.get(i) {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            if e > 10_000 {
                return None;
            }
            e = e * 10 + i32::from(d);
            i += 1;
        }
        if i == start {
            return None;
        }
        exponent += if exp_negative { -e } else { e };
    }
    finish_simple(mantissa, exponent, negative, i)
}

/// mantissa * 10^exponent, exact when mantissa <= 2^53 and |exponent| <= 22.
#[inline]
fn finish_simple(
    mantissa: u64,
    exponent: i32,
    negative: bool,
    used: usize,
) -> Option<(f64, usize)> {
    let m = mantissa as f64; // exact: mantissa <= 2^53
    let power = *POW10.get(exponent.unsigned_abs() as usize)?;
    let value = if exponent >= 0 { m * power } else { m / power };
    Some((if negative { -value } else { value }, used))
}

/// Parses a signed decimal integer field (optional `+`/`-`), rejecting overflow.
#[inline]
pub fn parse_i64(field: &[u8]) -> Option<i64> {
    let (negative, digits) = match field.first()? {
        b'-' => (true, &field[1..]),
        b'+' => (false, &field[1..]),
        _ => (false, field),
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: i64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        value = value.checked_mul(10)?.checked_sub(i64::from(d))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

/// Parses an integer field that must fit in 32 bits.
#[inline]
pub fn parse_i32(field: &[u8]) -> Option<i32> {
    parse_i64(field).and_then(|v| i32::try_from(v).ok())
}

/// Reads the whitespace-separated numeric fields of a line in one pass: tokenising and
/// number parsing together, with the general parsers only for unusual spellings.
pub struct FieldCursor<'a> {
    line: &'a [u8],
    /// `line`, or `line` followed by more readable bytes starting with one <= b' '
    /// (see [`FieldCursor::padded`]): the fast paths read it in fixed-size pieces.
    window: &'a [u8],
    pos: usize,
}

/// Why a field could not be read: it is missing, or it is this text.
#[derive(Debug, PartialEq)]
pub enum FieldError<'a> {
    Missing,
    NotANumber(&'a [u8]),
}

impl<'a> FieldCursor<'a> {
    pub fn new(line: &'a [u8]) -> Self {
        FieldCursor {
            line,
            window: line,
            pos: 0,
        }
    }

    /// [`FieldCursor::padded`] that starts reading at `line[pos..]`.
    #[inline(always)]
    pub fn padded_from(line: &'a [u8], window: &'a [u8], pos: usize) -> Self {
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
    pub fn padded(line: &'a [u8], window: &'a [u8]) -> Self {
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
        // Eight bytes at a time through the wide columns of LHE files.
        while let Some(chunk) = self.line.get(self.pos..self.pos + 8) {
            let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            // High bit of each byte > b' ' (carry-free: each byte stays below 0x100).
            let above_blank =
                (((v & 0x7f7f_7f7f_7f7f_7f7f) + 0x5f5f_5f5f_5f5f_5f5f) | v) & 0x8080_8080_8080_8080;
            if above_blank != 0 {
                self.pos += (above_blank.trailing_zeros() / 8) as usize;
                return true;
            }
            self.pos += 8;
        }
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
    pub fn f64(&mut self) -> Result<f64, FieldError<'a>> {
        if !self.skip_blanks() {
            return Err(FieldError::Missing);
        }
        #[cfg(target_arch = "x86_64")]
        if let Some((v, end)) = crate::simd_float::parse_madgraph(self.window, self.pos) {
            self.pos = end;
            debug_assert!(self.pos <= self.line.len());
            return Ok(v);
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
        let rest = &self.line[self.pos..];
        if let Some((v, used)) =
            crate::simd_float::parse_prefix(rest).or_else(|| parse_simple_f64_prefix(rest))
        {
            if self.at_delimiter(self.pos + used) {
                self.pos += used;
                return Ok(v);
            }
        }
        let token = self.token();
        parse_f64(token).ok_or(FieldError::NotANumber(token))
    }

    /// The next field as a 32-bit integer: up to 7 digits with an optional minus sign
    /// are read 8 bytes at a time inline, anything else by [`Self::i32_general`].
    #[inline(always)]
    pub fn i32(&mut self) -> Result<i32, FieldError<'a>> {
        if !self.skip_blanks() {
            return Err(FieldError::Missing);
        }
        let negative = self.line[self.pos] == b'-';
        let first_digit = self.pos + usize::from(negative);
        if let Some(chunk) = self.window.get(first_digit..first_digit + 8) {
            let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            let n = (non_digit_mask(v).trailing_zeros() / 8) as usize; // 8 if all digits
                                                                       // 1 to 7 digits followed by a blank: the byte after them is in `v`.
            if (1..8).contains(&n) && (v >> (8 * n)) as u8 <= b' ' {
                let value = leading_digits(v, n) as i32; // below 10^7
                self.pos = first_digit + n;
                return Ok(if negative { -value } else { value });
            }
        }
        self.i32_general()
    }

    #[inline(never)]
    fn i32_general(&mut self) -> Result<i32, FieldError<'a>> {
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
    pub fn rest(&self) -> &'a [u8] {
        &self.line[self.pos..]
    }

    /// Whether only blanks are left on the line (skips them).
    #[inline(always)]
    pub fn at_end(&mut self) -> bool {
        !self.skip_blanks()
    }

    /// Number of fields left on the line (consumes them).
    pub fn count_rest(&mut self) -> usize {
        let mut n = 0;
        while self.skip_blanks() {
            self.token();
            n += 1;
        }
        n
    }
}

/// The fast paths of [`FieldCursor`] alone, for lines in the usual layouts: each read
/// gives `None` where the cursor would take a general path or report an error, and the
/// caller then reads the whole line again with a [`FieldCursor`]. Nothing here calls out
/// of line, so the position stays in a register across the fields of a line.
pub struct FastFields<'a> {
    /// The line followed by its terminator (<= b' ') and more bytes.
    window: &'a [u8],
    len: usize,
    pos: usize,
}

impl<'a> FastFields<'a> {
    /// Reads `line`, which `window` extends as for [`FieldCursor::padded`].
    #[inline(always)]
    pub fn new(line: &'a [u8], window: &'a [u8]) -> Self {
        debug_assert!(window.starts_with(line));
        debug_assert!(window.get(line.len()).is_none_or(|&b| b <= b' '));
        FastFields {
            window,
            len: line.len(),
            pos: 0,
        }
    }

    /// Moves to the next field; `false` at the end of the line or where the window ends.
    #[inline(always)]
    fn skip_blanks(&mut self) -> bool {
        loop {
            let Some(chunk) = self.window.get(self.pos..self.pos + 8) else {
                return false;
            };
            let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            // High bit of each byte > b' ' (carry-free: each byte stays below 0x100).
            let above_blank =
                (((v & 0x7f7f_7f7f_7f7f_7f7f) + 0x5f5f_5f5f_5f5f_5f5f) | v) & 0x8080_8080_8080_8080;
            if above_blank != 0 {
                self.pos += (above_blank.trailing_zeros() / 8) as usize;
                // Blanks up to the terminator and beyond: the line has no field left.
                return self.pos < self.len;
            }
            self.pos += 8;
        }
    }

    /// The next field as a float in the fixed layouts [`parse_fixed_layout`] reads.
    #[inline(always)]
    pub fn f64(&mut self) -> Option<f64> {
        if !self.skip_blanks() {
            return None;
        }
        let (v, end) = parse_fixed_layout_fast(self.window, self.pos)?;
        self.pos = end;
        Some(v)
    }

    /// The next field as an integer of 1 to 7 digits with an optional minus sign.
    #[inline(always)]
    pub fn i32(&mut self) -> Option<i32> {
        if !self.skip_blanks() {
            return None;
        }
        let negative = self.window[self.pos] == b'-';
        let first_digit = self.pos + usize::from(negative);
        let chunk = self.window.get(first_digit..first_digit + 8)?;
        let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let n = (non_digit_mask(v).trailing_zeros() / 8) as usize; // 8 if all digits
                                                                   // 1 to 7 digits followed by a blank: the byte after them is in `v`.
        if !(1..8).contains(&n) || (v >> (8 * n)) as u8 > b' ' {
            return None;
        }
        let value = leading_digits(v, n) as i32; // below 10^7
        self.pos = first_digit + n;
        Some(if negative { -value } else { value })
    }

    /// Whether only blanks are left on the line.
    #[inline(always)]
    pub fn at_end(&mut self) -> bool {
        !self.skip_blanks() && self.pos >= self.len
    }
}

/// Splits a line into whitespace-separated fields (space, tab, CR, other ASCII controls).
#[inline]
pub fn fields(line: &[u8]) -> Fields<'_> {
    Fields { rest: line }
}

pub struct Fields<'a> {
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
        #![proptest_config(ProptestConfig { cases: 20000, ..ProptestConfig::default() })]

        /// The fixed-layout path (`[+-]D.FFFF[eE][+-]DD`) is exact or declines, on random
        /// digits, widths and what follows the number.
        #[test]
        fn fixed_layout_is_exact_or_declines(sign in prop_oneof![Just(""), Just("+"), Just("-")],
                                             d0 in 0u8..10, frac in "[0-9]{0,17}",
                                             letter in prop_oneof![Just("e"), Just("E"), Just("D")],
                                             exp_sign in prop_oneof![Just("+"), Just("-")],
                                             exp in 0u32..100,
                                             after in prop_oneof![Just(""), Just(" 1.0 2.0 3.0 4.0 5.0"),
                                                                  Just("\t                    "),
                                                                  Just("x                    ")]) {
            let number = format!("{sign}{d0}.{frac}{letter}{exp_sign}{exp:02}");
            let text = format!("{number}{after}");
            let reference = parse_f64(number.as_bytes());
            match parse_fixed_layout(text.as_bytes(), 0) {
                Some((v, used)) => {
                    prop_assert_eq!(used, number.len(), "{}", text);
                    prop_assert!(!after.starts_with('x'), "{}", text);
                    prop_assert_eq!(Some(v.to_bits()), reference.map(f64::to_bits), "{}", text);
                }
                None => {
                    // Declines only what it cannot do: not its layout, too many digits,
                    // too large an exponent, too little room, or no delimiter after.
                    let fits = letter != "D" && frac.len() <= 15 && !after.starts_with('x')
                        && text.len() >= sign.len() + 18
                        && ((if exp_sign == "-" { -i64::from(exp) } else { i64::from(exp) })
                            - frac.len() as i64).abs() <= 22
                        && format!("{d0}{frac}").parse::<u64>().unwrap() <= 1 << 53;
                    prop_assert!(!fits, "declined {}", text);
                }
            }
            // Whatever path it takes, the cursor gives the reference value.
            let mut cursor = FieldCursor::new(text.as_bytes());
            match reference {
                Some(r) if !after.starts_with('x') => prop_assert_eq!(cursor.f64().map(f64::to_bits), Ok(r.to_bits()), "{}", text),
                _ => prop_assert!(cursor.f64().is_err(), "{}", text),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

        /// The vector and the portable digit-run readers agree, wherever the run starts.
        #[test]
        fn digit_run_readers_agree(lead in "[ 0-9.+-]{0,20}", digits in "[0-9]{0,18}",
                                   after in "[ eE+x.-]{1,3}") {
            let text = format!("{lead}{digits}{after}                  ");
            let at = lead.len();
            let expected = (digits.len() < 16).then(|| (digits.len(), digits.parse::<u64>().unwrap_or(0)));
            prop_assert_eq!(fraction_digits_swar(text.as_bytes(), at), expected, "{}", text);
            prop_assert_eq!(fraction_digits(text.as_bytes(), at), expected, "{}", text);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

        /// Where the fast field reader gives a value, it is the cursor's value, field by
        /// field, on lines of random integers, floats, junk and blanks.
        #[test]
        fn fast_fields_agree_with_the_cursor(
            fields in proptest::collection::vec(prop_oneof![
                "-?[0-9]{1,9}",
                "[+-]?[0-9]\\.[0-9]{0,16}([eE][+-][0-9]{2})?",
                "[0-9.eE+x-]{1,6}",
            ], 0..8),
            blanks in "[ \t]{1,3}", ints in proptest::collection::vec(any::<bool>(), 8),
            next_line in "[ \n]?[0-9 ]{0,70}") {
            let line = fields.join(&blanks);
            let window = format!("{line}\n{next_line}{}", " ".repeat(64));
            let (line, window) = (line.as_bytes(), window.as_bytes());
            let mut fast = FastFields::new(line, window);
            let mut cursor = FieldCursor::padded(line, window);
            for &int in ints.iter().take(fields.len()) {
                if int {
                    let expected = cursor.i32();
                    if let Some(v) = fast.i32() {
                        prop_assert_eq!(Ok(v), expected);
                    } else {
                        return Ok(());
                    }
                } else {
                    let expected = cursor.f64().map(f64::to_bits);
                    if let Some(v) = fast.f64() {
                        prop_assert_eq!(Ok(v.to_bits()), expected);
                    } else {
                        return Ok(());
                    }
                }
            }
            if fields.len() <= ints.len() {
                prop_assert_eq!(fast.at_end(), cursor.at_end());
            }
        }
    }

    #[test]
    fn fast_fields_stop_at_the_end_of_the_line() {
        let window = b"  1 -2.5E+01  \n 3 4.0E+00                                                                ";
        let line = &window[..14];
        let mut fast = FastFields::new(line, window);
        assert_eq!(fast.i32(), Some(1));
        assert_eq!(fast.f64(), Some(-25.0));
        assert!(fast.at_end());
        assert_eq!(fast.i32(), None); // the next line is not read
        let mut fast = FastFields::new(line, window);
        assert_eq!(fast.i32(), Some(1));
        assert_eq!(fast.i32(), None); // a float is not an integer
    }

    #[test]
    fn fixed_layout_cases() {
        type Case = (&'static [u8], Option<(f64, usize)>);
        let cases: [Case; 12] = [
            (b"-0.10775103667E+01 0.4", Some((-1.0775103667, 18))),
            (b"0. -1.                    ", Some((0.0, 2))),
            (b"-1.\n                      ", Some((-1.0, 3))),
            (b"+0.25\r\n                   ", Some((0.25, 5))),
            (b"0.25x                     ", None),
            (b"+2.7789711e-03 </wgt>     ", Some((2.7789711e-03, 14))),
            (b"0.0000000000e+00          ", Some((0.0, 16))),
            (b"1.E+02                    ", Some((100.0, 6))),
            (b"1.5E+02x                  ", None),
            (b"1.5E+2                    ", None),
            (b"12.5E+02                  ", None),
            (b"1.5E+02", None), // too short to read 16 fraction bytes
        ];
        for (text, expected) in cases {
            assert_eq!(
                parse_fixed_layout(text, 0),
                expected,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        let (v, _) = parse_fixed_layout(b"-0.0000000000e+00          ", 0).unwrap();
        // Read further into a line, where the vector path can look back 16 bytes.
        let line = b"        -11  1 0.58437780464E+02 0.25 -1.                  ";
        assert_eq!(parse_fixed_layout(line, 15), Some((58.437780464, 32)));
        assert_eq!(parse_fixed_layout(line, 33), Some((0.25, 37)));
        assert_eq!(parse_fixed_layout(line, 38), Some((-1.0, 41)));
        assert!(v == 0.0 && v.is_sign_negative());
    }

    #[test]
    fn floats_in_every_dialect() {
        assert_eq!(parse_f64(b"1.0E+03"), Some(1000.0));
        assert_eq!(parse_f64(b"1.0D+03"), Some(1000.0));
        assert_eq!(parse_f64(b"-2.5d-1"), Some(-0.25));
        assert_eq!(parse_f64(b".5"), Some(0.5));
        assert_eq!(parse_f64(b"+1.0"), Some(1.0));
        assert_eq!(parse_f64(b"-0.0"), Some(-0.0));
        assert_eq!(parse_f64(b"7"), Some(7.0));
        assert!(parse_f64(b"NaN").unwrap().is_nan());
        assert_eq!(parse_f64(b"Inf"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"*****"), None);
        assert_eq!(parse_f64(b"1.0D+03D"), None);
        assert_eq!(parse_f64(b""), None);
        assert_eq!(parse_f64(b"1.0x"), None);
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
    fn fast_path_agrees_with_the_general_parser() {
        let cases: [&[u8]; 21] = [
            b"1.5E+022",
            b"1.5e-2",
            b"1.5e+99",
            b"-7.e-05",
            b"0.58437780464E+02",
            b"9007199254740993",
            b"9007199254740992e-3",
            b"0.000000000000000000123",
            b"12345678.87654321e-5",
            b"+8.7320595557e+02",
            b"-1.4144585570e+02",
            b"0.0000000000e+00",
            b"-0.0000000000e+00",
            b"2.640032e-03",
            b"1.2345678901234e-300",
            b"123456789012345",
            b"1234567890123456789",
            b"9.999999999999999e22",
            b"1e23",
            b"0.1",
            b"5.",
        ];
        for c in cases {
            let general: f64 = fast_float2::parse(c).unwrap();
            let got = parse_f64(c).unwrap();
            assert_eq!(
                got.to_bits(),
                general.to_bits(),
                "{}",
                String::from_utf8_lossy(c)
            );
        }
        assert_eq!(parse_simple_f64(b"1e"), None);
        assert_eq!(parse_simple_f64(b"."), None);
        assert_eq!(parse_simple_f64(b"-"), None);
    }

    #[test]
    fn integers() {
        assert_eq!(parse_i64(b"-11"), Some(-11));
        assert_eq!(parse_i64(b"+24"), Some(24));
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"1.0"), None);
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_i32(b"3000000000"), None);
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
