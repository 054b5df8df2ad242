//! SSE2 fast path for the decimal numbers of LHE files (SSE2 is part of every x86_64 CPU,
//! so no run-time detection is needed).
//!
//! For a number like `-8.7320595557e+02` with at most 15 mantissa characters and at least
//! 16 readable bytes, the digits are classified and converted with a handful of vector
//! instructions instead of a loop per digit. The mantissa digits, with the integer part
//! moved one byte to close the gap of the decimal point, form a 16-digit integer
//! `M' = M * 10^(16 - end)` that is exactly representable as an f64 (it is below 2^54 and
//! even, or below 2^53), so one multiplication or division by an exact power of ten gives
//! the correctly rounded value (Clinger's fast path). Everything else returns `None` and
//! goes to the scalar parsers.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_cvtsi128_si32,
    _mm_loadu_si128, _mm_madd_epi16, _mm_movemask_epi8, _mm_or_si128, _mm_packs_epi32,
    _mm_set1_epi8, _mm_set_epi16, _mm_setr_epi8, _mm_setzero_si128, _mm_shuffle_epi32,
    _mm_slli_si128, _mm_sub_epi8, _mm_unpackhi_epi8, _mm_unpacklo_epi8, _mm_xor_si128,
};

#[cfg(target_arch = "x86_64")]
use crate::numbers::POW10;

/// Parses the number at the start of `field` (sign, mantissa, optional exponent); returns
/// the value and the bytes used, or `None` to ask the scalar parser.
#[inline]
pub fn parse_prefix(field: &[u8]) -> Option<(f64, usize)> {
    #[cfg(target_arch = "x86_64")]
    {
        let (negative, start) = match field.first()? {
            b'-' => (true, 1),
            b'+' => (false, 1),
            _ => (false, 0),
        };
        // Near the end of a line, pad a copy with blanks (they end the mantissa).
        let mut padded = [b' '; 16];
        let chunk: &[u8; 16] = match field.get(start..start + 16) {
            Some(bytes) => bytes.try_into().ok()?,
            None => {
                let rest = field.get(start..)?;
                padded[..rest.len()].copy_from_slice(rest);
                &padded
            }
        };
        // SAFETY: SSE2 is baseline on x86_64; the load reads exactly the 16 bytes of `chunk`.
        let (mantissa, end, point) = unsafe { mantissa16(chunk)? };
        let (exponent, used) = exponent_at(field, start + end)?;
        let e = exponent + point as i32 - 15;
        let power = *POW10.get(e.unsigned_abs() as usize)?;
        let m = mantissa as f64; // exact, see the module documentation
        let value = if e >= 0 { m * power } else { m / power };
        Some((if negative { -value } else { value }, start + end + used))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = field;
        None
    }
}

/// The optional exponent at `field[at..]`: its value and length (0 if there is none).
#[cfg(target_arch = "x86_64")]
#[inline]
fn exponent_at(field: &[u8], at: usize) -> Option<(i32, usize)> {
    match field.get(at) {
        Some(b'e' | b'E') => {}
        _ => return Some((0, 0)),
    }
    let (negative, digits_at) = match field.get(at + 1)? {
        b'-' => (true, at + 2),
        b'+' => (false, at + 2),
        _ => (false, at + 1),
    };
    let mut value: i32 = 0;
    let mut i = digits_at;
    while let Some(&b) = field.get(i) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        if i - digits_at >= 4 {
            return None; // exponents beyond 9999 are not for the fast path
        }
        value = value * 10 + i32::from(d);
        i += 1;
    }
    if i == digits_at {
        return None;
    }
    Some((if negative { -value } else { value }, i - at))
}

/// Classifies 16 bytes: the mantissa `M'` (see the module documentation), the length of
/// the mantissa text (`end`, < 16) and the position of its decimal point (`end` if none).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "sse2")]
unsafe fn mantissa16(chunk: &[u8; 16]) -> Option<(u64, usize, usize)> {
    let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
    let digits = _mm_sub_epi8(v, _mm_set1_epi8(b'0' as i8));
    // Unsigned digit < 10 as a signed compare after flipping the sign bit.
    let is_digit = _mm_cmplt_epi8(
        _mm_xor_si128(digits, _mm_set1_epi8(i8::MIN)),
        _mm_set1_epi8((10u8 ^ 0x80) as i8),
    );
    let is_point = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'.' as i8));
    let digit_bits = _mm_movemask_epi8(is_digit) as u32;
    let point_bits = _mm_movemask_epi8(is_point) as u32;
    let end = (!(digit_bits | point_bits) | 0x1_0000).trailing_zeros() as usize;
    if end >= 16 {
        return None;
    }
    let points = point_bits & ((1 << end) - 1);
    if points.count_ones() > 1 {
        return None;
    }
    let point = if points == 0 {
        end
    } else {
        points.trailing_zeros() as usize
    };
    if end - usize::from(points != 0) == 0 {
        return None; // no digit at all
    }
    let lanes = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let before_point = _mm_cmplt_epi8(lanes, _mm_set1_epi8(point as i8));
    let before_end = _mm_cmplt_epi8(lanes, _mm_set1_epi8(end as i8));
    let after_point = _mm_cmplt_epi8(_mm_set1_epi8(point as i8), lanes);
    let integer = _mm_and_si128(digits, before_point);
    let fraction = _mm_and_si128(digits, _mm_and_si128(after_point, before_end));
    // Move the integer digits one lane down to close the gap of the point.
    let joined = _mm_or_si128(_mm_slli_si128::<1>(integer), fraction);
    Some((sixteen_digits(joined), end, point))
}

/// The run of digits at `window[at..]` read with two 16-byte loads: `Some(Some((n, value)))`
/// for a run of n <= 15 digits, `Some(None)` for a longer one, and `None` when the run
/// cannot be read this way (fewer than 16 bytes ahead of `at`, or fewer than 16 before
/// its end) and the caller must use the portable reader.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::option_option)]
pub(crate) fn digit_run16(window: &[u8], at: usize) -> Option<Option<(usize, u64)>> {
    let ahead: &[u8; 16] = window.get(at..at + 16)?.try_into().ok()?;
    // SAFETY: SSE2 is baseline on x86_64; each load reads exactly the 16 bytes of a
    // checked 16-byte array.
    unsafe {
        let v = _mm_loadu_si128(ahead.as_ptr().cast::<__m128i>());
        let n = (!digit_bits(v)).trailing_zeros() as usize; // 16 if all are digits
        if n == 0 {
            return Some(Some((0, 0)));
        }
        if n == 16 {
            return Some(None);
        }
        // Load again so that the run ends at lane 15, then clear the lanes before it.
        let end = at + n;
        let block: &[u8; 16] = window.get(end.checked_sub(16)?..end)?.try_into().ok()?;
        let w = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let digits = _mm_sub_epi8(w, _mm_set1_epi8(b'0' as i8));
        let lanes = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let keep = _mm_cmpgt_epi8(lanes, _mm_set1_epi8((15 - n) as i8));
        Some(Some((n, sixteen_digits(_mm_and_si128(digits, keep)))))
    }
}

/// One bit per byte of `v` that is an ASCII digit.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn digit_bits(v: __m128i) -> u32 {
    // SAFETY: SSE2 is baseline on x86_64 (register-only operations).
    unsafe {
        let digits = _mm_sub_epi8(v, _mm_set1_epi8(b'0' as i8));
        // Unsigned digit < 10 as a signed compare after flipping the sign bit.
        let is_digit = _mm_cmplt_epi8(
            _mm_xor_si128(digits, _mm_set1_epi8(i8::MIN)),
            _mm_set1_epi8((10u8 ^ 0x80) as i8),
        );
        _mm_movemask_epi8(is_digit) as u32
    }
}

/// The 16-digit decimal number whose digit values are the 16 bytes (lane 0 most significant).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "sse2")]
fn sixteen_digits(d: __m128i) -> u64 {
    let zero = _mm_setzero_si128();
    let tens = _mm_set_epi16(1, 10, 1, 10, 1, 10, 1, 10);
    let pairs_lo = _mm_madd_epi16(_mm_unpacklo_epi8(d, zero), tens);
    let pairs_hi = _mm_madd_epi16(_mm_unpackhi_epi8(d, zero), tens);
    let pairs = _mm_packs_epi32(pairs_lo, pairs_hi); // 8 two-digit values
    let quads = _mm_madd_epi16(pairs, _mm_set_epi16(1, 100, 1, 100, 1, 100, 1, 100));
    let quads = _mm_packs_epi32(quads, quads); // 4 four-digit values, twice
    let octs = _mm_madd_epi16(quads, _mm_set_epi16(1, 10000, 1, 10000, 1, 10000, 1, 10000));
    let high = _mm_cvtsi128_si32(octs) as u32;
    let low = _mm_cvtsi128_si32(_mm_shuffle_epi32::<1>(octs)) as u32;
    u64::from(high) * 100_000_000 + u64::from(low)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    fn parse(text: &str) -> Option<(f64, usize)> {
        let mut padded = text.as_bytes().to_vec();
        padded.extend_from_slice(b"                ");
        parse_prefix(&padded)
    }

    #[test]
    fn typical_lhe_numbers() {
        assert_eq!(parse("+8.7320595557e+02"), Some((873.20595557, 17)));
        assert_eq!(parse("0.58437780464E+02"), Some((58.437780464, 17)));
        assert_eq!(parse("-1.0000e+00"), Some((-1.0, 11)));
        assert_eq!(parse("0.00000000000E+00"), Some((0.0, 17)));
        assert_eq!(parse(".5"), Some((0.5, 2)));
        assert_eq!(parse("5."), Some((5.0, 2)));
        assert_eq!(parse("501"), Some((501.0, 3)));
        assert_eq!(parse("2.640032e-03"), Some((2.640032e-03, 12)));
    }

    #[test]
    fn short_fields_at_the_end_of_a_line() {
        assert_eq!(parse_prefix(b"1.5"), Some((1.5, 3)));
        assert_eq!(parse_prefix(b"-1."), Some((-1.0, 3)));
        assert_eq!(
            parse_prefix(b"0.1234567890123"),
            Some((0.1234567890123, 15))
        );
        assert_eq!(parse_prefix(b""), None);
        assert_eq!(parse_prefix(b"-"), None);
    }

    #[test]
    fn declines_what_it_cannot_do_exactly() {
        assert_eq!(parse("."), None);
        assert_eq!(parse("1.2.3"), None);
        assert_eq!(parse("1234567890123456"), None); // 16 mantissa characters
        assert_eq!(parse("1.5e"), None);
        assert_eq!(parse("1e400"), None);
    }
}
