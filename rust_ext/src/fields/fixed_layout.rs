//! Floats in the fixed layout of MadGraph and other Fortran writers, read from a padded
//! window in fixed-size pieces.

use super::number::{
    eight_digits, finish_simple, leading_digits, non_digit_mask, POW10_U64, POW10_U64_16,
};

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

    /// Bytes of a number of this shape (the portable reader checks where it ends).
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    fn len(self) -> usize {
        2 + self.frac + 4 * usize::from(self.exponent)
    }

    /// The value of the number of this shape at `window[at..]` (no sign; ended by a byte
    /// <= b' '), or `None` if the bytes are anything else or the value is not exact this
    /// way. 24 bytes must be readable from `at`.
    #[inline(always)]
    pub(crate) fn read(self, window: &[u8], at: usize) -> Option<f64> {
        #[cfg(target_arch = "x86_64")]
        {
            super::simd_float::parse_madgraph_known(window, at, self.frac, self.exponent)
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

/// Reads the number at `window[pos..]` in the fixed layout of MadGraph and other Fortran
/// writers: an optional sign, one digit, a point, up to 15 fraction digits, then either
/// nothing more or `e`/`E`, the exponent's sign and two digits (`-0.10775103667E+01`,
/// `+2.7789711e-03`, `-1.`). 18 bytes must follow its sign (else `None`), and the bytes
/// before `pos` may be read too. Returns the value and the end of the number if
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
/// Read 8 bytes at a time in general-purpose registers.
#[inline(always)]
fn fraction_digits(window: &[u8], at: usize) -> Option<(usize, u64)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::cursor::FieldCursor;
    use crate::fields::number::parse_f64;
    use proptest::prelude::*;

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

        /// The digit-run reader gives the run's length and value, wherever the run starts.
        #[test]
        fn digit_run_reader_reads_the_run(lead in "[ 0-9.+-]{0,20}", digits in "[0-9]{0,18}",
                                   after in "[ eE+x.-]{1,3}") {
            let text = format!("{lead}{digits}{after}                  ");
            let at = lead.len();
            let expected = (digits.len() < 16).then(|| (digits.len(), digits.parse::<u64>().unwrap_or(0)));
            prop_assert_eq!(fraction_digits(text.as_bytes(), at), expected, "{}", text);
        }
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
}
