//! One number field on its own: floats in every dialect generators write, and integers.
//!
//! Generators write floats in every dialect Fortran and C allow: `1.0E+03`, Fortran's
//! `1.0D+03`, a leading dot `.5`, an explicit plus `+1.0`, no exponent, `NaN`, `Inf`.

/// Parses a float field; `None` if the bytes are not a number.
#[inline]
pub(crate) fn parse_f64(field: &[u8]) -> Option<f64> {
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
pub(super) fn parse_simple_f64_prefix(field: &[u8]) -> Option<(f64, usize)> {
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
}
