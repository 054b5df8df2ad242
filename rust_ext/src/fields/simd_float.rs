//! SSE2 helpers for the decimal numbers of LHE files (SSE2 is part of every x86_64 CPU, so
//! no run-time detection is needed): digits classified and converted with a handful of
//! vector instructions instead of a loop per digit, exact by Clinger's fast path (an
//! integer mantissa exactly representable as an f64, times or divided by an exact power
//! of ten). Everything else returns `None` and goes to the scalar parsers.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m128i, _mm_and_si128, _mm_cmplt_epi8, _mm_cvtsi128_si32, _mm_loadu_si128, _mm_madd_epi16,
    _mm_movemask_epi8, _mm_packs_epi32, _mm_set1_epi8, _mm_set_epi16, _mm_setzero_si128,
    _mm_shuffle_epi32, _mm_sub_epi8, _mm_unpackhi_epi8, _mm_unpacklo_epi8, _mm_xor_si128,
};

#[cfg(target_arch = "x86_64")]
use super::number::POW10;

/// The unsigned MadGraph layout `D.F...F` with exactly `frac` (<= 13) fraction digits, then
/// `[eE][+-]DD` if `exponent`, at `window[at..]` and ended by a byte <= b' ': its value,
/// or `None` if the bytes are anything else. For layouts known in advance (see
/// `reader::particle_layout`); 16 bytes must be readable from `at` (8 more past the
/// fraction with an exponent).
///
/// One 16-byte load reads the digits: read as if the integer digit stood in the lane of
/// the point, they form the 16-digit integer `M' = M * 10^(14 - n)` for a mantissa `M`
/// with `n` fraction digits, so the value is `M' * 10^(e - 14)` whatever `n` is. `M' < 10^15`
/// is exact as an f64 and one multiplication or division by an exact power of ten
/// (|e - 14| <= 22) is correctly rounded (Clinger's fast path).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn parse_madgraph_known(
    window: &[u8],
    at: usize,
    frac: usize,
    exponent: bool,
) -> Option<f64> {
    let chunk: &[u8; 16] = window.get(at..at + 16)?.try_into().ok()?;
    // SAFETY: SSE2 is baseline on x86_64; the load reads exactly the 16 bytes of `chunk`.
    let v = unsafe { _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>()) };
    let want = *MADGRAPH_DIGIT_BITS.get(frac)?;
    if digit_bits(v) & want != want || chunk[1] != b'.' {
        return None;
    }
    // Without an exponent the fraction must end there (with one, its reader checks).
    if !exponent && chunk[2 + frac] > b' ' {
        return None;
    }
    Some(madgraph_magnitude(window, at, v, frac, exponent)?.0)
}

/// The magnitude and end of `D.F...F[eE±DD]` at `window[s..]`, whose first 16 bytes are
/// `v`, with its digit, point and `n` (<= 13) fraction digits already checked; the
/// exponent, if `has_exponent`, is checked here.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn madgraph_magnitude(
    window: &[u8],
    s: usize,
    v: __m128i,
    n: usize,
    has_exponent: bool,
) -> Option<(f64, usize)> {
    // SAFETY: SSE2 is baseline on x86_64; the mask load reads one 16-byte table row.
    let m = unsafe {
        let digits = _mm_sub_epi8(v, _mm_set1_epi8(b'0' as i8));
        let keep = _mm_loadu_si128(MADGRAPH_DIGITS.get(n)?.as_ptr().cast::<__m128i>());
        mantissa_without_point(_mm_and_si128(digits, keep))
    };
    let at = s + 2 + n;
    let (scale_at, end) = if has_exponent {
        let ahead: &[u8; 8] = window.get(at..at + 8)?.try_into().ok()?;
        (exponent_index(u64::from_le_bytes(*ahead))?, at + 4)
    } else {
        (0, at) // no exponent: as `E+00`
    };
    let scale = MADGRAPH_SCALE[scale_at];
    let m = m as f64; // exact: below 10^15
    let value = if scale > 0.0 {
        m * scale
    } else if scale < 0.0 {
        m / -scale
    } else {
        return None; // |e - 14| > 22: not exact this way
    };
    Some((value, end))
}

/// Row `n`: the digit bits (see [`digit_bits`]) of the MadGraph layout with `n` fraction
/// digits: bit 0, the integer digit, and bits 2..2 + n.
#[cfg(target_arch = "x86_64")]
static MADGRAPH_DIGIT_BITS: [u32; 14] = {
    let mut table = [0u32; 14];
    let mut n = 0;
    while n < 14 {
        table[n] = 1 | (((1u32 << n) - 1) << 2);
        n += 1;
    }
    table
};

/// `M' * 10^(e - 14)` as one exact operation, by [`exponent_index`] (`e` or `100 + |e|`):
/// `10^k` to multiply by, `-10^k` to divide by, 0 where `10^|e - 14|` is not exact.
#[cfg(target_arch = "x86_64")]
static MADGRAPH_SCALE: [f64; 200] = {
    let mut table = [0.0f64; 200];
    let mut i = 0;
    while i < 200 {
        let e = if i < 100 { i as i32 } else { -(i as i32 - 100) };
        let k = e - 14;
        if k >= 0 && k <= 22 {
            table[i] = POW10[k as usize];
        } else if k < 0 && k >= -22 {
            table[i] = -POW10[(-k) as usize];
        }
        i += 1;
    }
    table
};

/// Row `n`: the lanes that hold digits of the MadGraph layout with `n` fraction digits
/// (lane 0, the integer digit, and lanes 2..2 + n; lane 1 is the point).
#[cfg(target_arch = "x86_64")]
static MADGRAPH_DIGITS: [[u8; 16]; 14] = {
    let mut table = [[0u8; 16]; 14];
    let mut n = 0;
    while n < 14 {
        table[n][0] = 0xff;
        let mut lane = 2;
        while lane < 2 + n {
            table[n][lane] = 0xff;
            lane += 1;
        }
        n += 1;
    }
    table
};

/// The exponent `[eE][+-]DD` in the low 4 of 8 bytes loaded little-endian, with a byte
/// <= b' ' after it (the fifth), as an index: its value `e` if positive, `100 + e` if
/// negative; `None` otherwise. Branch-free checks on one register.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn exponent_index(x: u64) -> Option<usize> {
    let negative = (x >> 8) as u8 == b'-';
    // `e`, the sign seen, '0', '0' ('+' ^ '-' == 6); the letter is made lower case.
    let expected: u64 = 0x3030_2b65 ^ (u64::from(negative) * 0x0600);
    let w = ((x | 0x20) ^ expected) & 0xffff_ffff;
    // Bytes 0 and 1 must be 0, bytes 2 and 3 at most 9 (adding 6 keeps the high nibble 0).
    if (w | (w + 0x0606_0000)) & 0xf0f0_ffff != 0 || (x >> 32) as u8 > b' ' {
        return None;
    }
    let e = ((w >> 16) & 0xff) as usize * 10 + (w >> 24) as usize;
    Some(if negative { 100 + e } else { e })
}

/// The 16-digit decimal number whose digit values are the 16 bytes of `d` (lane 0 most
/// significant), for the MadGraph layout: lane 0 counts as lane 1 (weight 1 in its
/// pair) and lane 1, the point, counts for nothing.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "sse2")]
fn mantissa_without_point(d: __m128i) -> u64 {
    let zero = _mm_setzero_si128();
    let pairs_lo = _mm_madd_epi16(
        _mm_unpacklo_epi8(d, zero),
        _mm_set_epi16(1, 10, 1, 10, 1, 10, 0, 1),
    );
    let pairs_hi = _mm_madd_epi16(
        _mm_unpackhi_epi8(d, zero),
        _mm_set_epi16(1, 10, 1, 10, 1, 10, 1, 10),
    );
    combine_pairs(_mm_packs_epi32(pairs_lo, pairs_hi))
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

/// The 16-digit number from 8 two-digit values (lane 0 most significant).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "sse2")]
fn combine_pairs(pairs: __m128i) -> u64 {
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 20000, ..Default::default() })]

        /// The known-layout reader gives the bits of the general parser or declines, on
        /// random digits, widths, exponents and what follows the number.
        #[test]
        fn known_madgraph_layout_is_exact_or_declines(
            d0 in 0u8..10, frac in "[0-9]{0,15}",
            exponent in proptest::option::of(("[eEdx]", "[+-]", 0u32..100)),
            after in "[ \t\nx.+-]", lead in 0usize..20) {
            let exp = exponent.as_ref().map_or(String::new(), |(l, s, e)| format!("{l}{s}{e:02}"));
            let number = format!("{d0}.{frac}{exp}");
            let text = format!("{}{number}{after}                        ", " ".repeat(lead));
            let general = fast_float2::parse::<f64, _>(number.as_bytes()).ok();
            let got = parse_madgraph_known(text.as_bytes(), lead, frac.len(), exponent.is_some());
            if let Some(v) = got {
                proptest::prop_assert!(after.as_bytes()[0] <= b' ', "{}", text);
                proptest::prop_assert_eq!(Some(v.to_bits()), general.map(f64::to_bits), "{}", text);
            } else {
                let e = exponent.as_ref().map_or(Some(0i64), |(l, s, e)| {
                    (l == "e" || l == "E").then(|| if s == "-" { -i64::from(*e) } else { i64::from(*e) })
                });
                let fits = after.as_bytes()[0] <= b' ' && frac.len() <= 13
                    && e.is_some_and(|e| (e - 14).abs() <= 22);
                proptest::prop_assert!(!fits, "declined {}", text);
            }
        }
    }

    #[test]
    fn exponent_index_checks_every_byte() {
        for letter in 0..=255u8 {
            for sign in [b'+', b'-', b',', b'/', b')', b'0', b'e'] {
                for (d1, d2) in [
                    (b'0', b'0'),
                    (b'9', b'9'),
                    (b'1', b'4'),
                    (b'/', b'1'),
                    (b'1', b':'),
                    (0xfa, b'1'),
                    (b'1', 0xff),
                ] {
                    for after in [b' ', b'\n', 0, b'!', b'0', 0xff] {
                        let x = u64::from_le_bytes([letter, sign, d1, d2, after, b'7', b'7', b'7']);
                        let valid = matches!(letter, b'e' | b'E')
                            && matches!(sign, b'+' | b'-')
                            && d1.is_ascii_digit()
                            && d2.is_ascii_digit()
                            && after <= b' ';
                        let e = usize::from(d1.wrapping_sub(b'0')) * 10
                            + usize::from(d2.wrapping_sub(b'0'));
                        let expected = valid.then_some(if sign == b'-' { 100 + e } else { e });
                        assert_eq!(
                            exponent_index(x),
                            expected,
                            "{:?}",
                            [letter, sign, d1, d2, after]
                        );
                    }
                }
            }
        }
    }
}
