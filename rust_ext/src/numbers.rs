//! Number parsing for the whitespace-separated fields of LHE records.
//!
//! Generators write floats in every dialect Fortran and C allow: `1.0E+03`, Fortran's
//! `1.0D+03`, a leading dot `.5`, an explicit plus `+1.0`, no exponent, `NaN`, `Inf`.

/// Parses a float field; `None` if the bytes are not a number.
#[inline]
pub fn parse_f64(field: &[u8]) -> Option<f64> {
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
