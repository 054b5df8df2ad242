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

/// Exact powers of ten representable in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Fast path for the shape LHE writers use (`-1.2345678901e+02`): at most 15 significant
/// digits and a small exponent, where one multiplication or division by an exact power of
/// ten is correctly rounded (Clinger's fast path). Anything else returns `None` and goes
/// to the general parser.
#[inline]
fn parse_simple_f64(field: &[u8]) -> Option<f64> {
    let (negative, mut i) = match field.first()? {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    let mut mantissa: u64 = 0;
    let mut digits = 0u32;
    let mut exponent: i32 = 0;
    let mut seen_digit = false;
    while let Some(&b) = field.get(i) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        mantissa = mantissa * 10 + u64::from(d);
        digits += u32::from(mantissa != 0);
        seen_digit = true;
        i += 1;
        if digits > 15 {
            return None;
        }
    }
    if field.get(i) == Some(&b'.') {
        i += 1;
        while let Some(&b) = field.get(i) {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            mantissa = mantissa * 10 + u64::from(d);
            digits += u32::from(mantissa != 0);
            exponent -= 1;
            seen_digit = true;
            i += 1;
            if digits > 15 {
                return None;
            }
        }
    }
    if !seen_digit {
        return None;
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
            if d > 9 || e > 10_000 {
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
    if i != field.len() {
        return None;
    }
    let m = mantissa as f64; // exact: at most 15 digits
    let value = if exponent >= 0 {
        m * *POW10.get(usize::try_from(exponent).ok()?)?
    } else {
        m / *POW10.get(usize::try_from(-exponent).ok()?)?
    };
    Some(if negative { -value } else { value })
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
        let cases: [&[u8]; 12] = [
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
    fn field_splitting() {
        let got: Vec<&[u8]> = fields(b" \t1  -2\t+3.5\r").collect();
        assert_eq!(got, vec![&b"1"[..], b"-2", b"+3.5"]);
        assert_eq!(fields(b"   ").count(), 0);
    }
}
