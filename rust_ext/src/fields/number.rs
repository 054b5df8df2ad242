//! One number field on its own: floats in every dialect generators write, and integers.
//!
//! Generators write floats in every dialect Fortran and C allow: `1.0E+03`, Fortran's
//! `1.0D+03`, a leading dot `.5`, an explicit plus `+1.0`, no exponent, `NaN`, `Inf`. NaN
//! and infinities are numbers here; the reader refuses them where a value must be finite
//! (weights, momenta, energies and masses).

/// Parses a float field; `None` if the bytes are not a number.
#[inline]
pub(crate) fn parse_f64(field: &[u8]) -> Option<f64> {
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

/// High bit set in each byte of the 8 (little-endian) that is not an ASCII digit.
#[inline]
pub(super) fn non_digit_mask(v: u64) -> u64 {
    let a = v.wrapping_add(0x4646_4646_4646_4646);
    let b = v.wrapping_sub(0x3030_3030_3030_3030);
    (a | b) & 0x8080_8080_8080_8080
}

/// The value of 8 ASCII digits loaded little-endian (SWAR).
#[inline]
pub(super) fn eight_digits(v: u64) -> u64 {
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
pub(super) fn leading_digits(v: u64, n: usize) -> u64 {
    if n == 0 {
        return 0;
    }
    // Digit values of the first n bytes moved to the top; zeros (leading 0 digits) below.
    let values = v.wrapping_sub(0x3030_3030_3030_3030) << (8 * (8 - n));
    eight_digit_values(values)
}

/// 10^k for k in 0..16, exact in u64.
pub(super) const POW10_U64_16: [u64; 16] = {
    let mut table = [1u64; 16];
    let mut k = 1;
    while k < 16 {
        table[k] = table[k - 1] * 10;
        k += 1;
    }
    table
};

pub(super) const POW10_U64: [u64; 9] = [
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

/// mantissa * 10^exponent, exact when mantissa <= 2^53 and |exponent| <= 22.
#[inline]
pub(super) fn finish_simple(
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
pub(crate) fn parse_i64(field: &[u8]) -> Option<i64> {
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
pub(crate) fn parse_i32(field: &[u8]) -> Option<i32> {
    parse_i64(field).and_then(|v| i32::try_from(v).ok())
}
#[cfg(test)]
mod tests {
    use super::*;

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
}
