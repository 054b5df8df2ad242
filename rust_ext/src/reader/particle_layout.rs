//! Particle lines in the fixed layout that Fortran writers (MadGraph among them) use,
//! read through a layout learned from an earlier line.
//!
//! Such a writer prints every particle line of a file with one format: each integer column
//! ends at the same byte, each float has the same number of fraction digits, so lines of
//! equal length look alike but for their digits and signs. Once a line has been read the
//! long way, its [`ParticleLayout`] (where each field ends, the shape of each float) reads
//! later lines of the same length with one mask comparison for the whole line and no
//! search per field. A line the layout does not fit exactly gives `None` and is read the
//! long way: a layout never changes what is read, it only makes the common case cheaper.
//!
//! The check: the bytes that end a field (the first blank after it) are the layout's,
//! which fixes how many fields there are and where each ends; each field is then checked
//! where it starts and in every byte (digits, point, exponent, sign).

use crate::event::Particle;
use crate::fields::{eight_digit_values, fields, FixedFloatShape};

/// Words of the field-end mask: lines up to `64 * WORDS - 1` bytes have a layout.
const WORDS: usize = 3;
/// Longest line with a layout (the byte after the line must be in the mask too).
const MAX_LINE: usize = 64 * WORDS - 1;
/// Layouts kept at once (lines of different lengths: a negative spin adds a byte).
const MAX_LAYOUTS: usize = 4;
/// Lines read the long way that may teach a layout; after that many, no more are learned
/// (a file whose lines have none does not pay for trying on every line).
const LEARNING_BUDGET: u32 = 64;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// An integer column: the field ends at `end` and is read from the 8 bytes before it.
#[derive(Debug, Clone, Copy)]
struct IntColumn {
    end: usize,
    /// High bit of each of those 8 bytes that belongs to the column (after the field
    /// before it); the lowest, the column's first byte there, must be a blank.
    column: u64,
}

/// A float column `[+-]D.F...F[eE][+-]DD` whose leading digit is at `digit_at`.
#[derive(Debug, Clone, Copy)]
struct FloatColumn {
    digit_at: usize,
    shape: FixedFloatShape,
}

/// Where the fields of a particle line of one length are, and how each is written.
#[derive(Debug, Clone)]
pub(crate) struct ParticleLayout {
    len: usize,
    /// Bit `i` of word `w`: byte `64 w + i` is the first blank after a field.
    ends: [u64; WORDS],
    ints: [IntColumn; 6],
    floats: [FloatColumn; 7],
}

impl ParticleLayout {
    /// The layout of `line` if it has one: 13 fields, six integers of at most 7 digits
    /// after an optional minus, each ending at least 8 bytes into the line, then seven
    /// floats in the MadGraph layout (at most 13 fraction digits).
    fn of(line: &[u8]) -> Option<Self> {
        if line.len() > MAX_LINE {
            return None;
        }
        // Each field as `start..end` in the line (a field is a subslice of it).
        let fields: Vec<(usize, usize)> = fields(line)
            .map(|field| {
                let start = field.as_ptr() as usize - line.as_ptr() as usize;
                (start, start + field.len())
            })
            .collect();
        if fields.len() != 13 {
            return None;
        }
        let mut ints = [IntColumn { end: 0, column: 0 }; 6];
        let mut previous_end = 0;
        for (slot, &(start, end)) in ints.iter_mut().zip(&fields[..6]) {
            let text = &line[start..end];
            let digits = text.strip_prefix(b"-").unwrap_or(text);
            if !(1..=7).contains(&digits.len()) || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            // The 8 bytes before `end` must hold the field and a blank before it.
            let window_start = end.checked_sub(8)?;
            if start <= window_start {
                return None;
            }
            let first = previous_end.max(window_start) - window_start; // 0..8
            *slot = IntColumn {
                end,
                column: HIGH_BITS << (8 * first),
            };
            previous_end = end;
        }
        let mut floats = Vec::with_capacity(7);
        for &(start, end) in &fields[6..] {
            let text = &line[start..end];
            let unsigned = match text[0] {
                b'+' | b'-' => &text[1..],
                _ => text,
            };
            let shape = FixedFloatShape::of(unsigned)?;
            let digit_at = end - unsigned.len();
            if digit_at == 0 {
                return None; // no room for a sign before it
            }
            floats.push(FloatColumn { digit_at, shape });
        }
        let floats: [FloatColumn; 7] = floats.try_into().ok()?;
        let mut window = line.to_vec();
        window.resize(line.len() + 64, b' ');
        Some(ParticleLayout {
            len: line.len(),
            ends: field_ends(line.len(), &window)?,
            ints,
            floats,
        })
    }

    /// The particle of `line` if it has exactly this layout, else `None`. `window` is the
    /// line followed by at least 64 readable bytes (see
    /// [`crate::line_source::LineSource::current_padded`]).
    #[inline(always)]
    fn read(&self, line: &[u8], window: &[u8]) -> Option<Particle> {
        if field_ends(line.len(), window)? != self.ends {
            return None;
        }
        let mut ints = [0i32; 6];
        for (slot, column) in ints.iter_mut().zip(&self.ints) {
            *slot = read_int(window, column)?;
        }
        let mut floats = [0f64; 7];
        for (slot, column) in floats.iter_mut().zip(&self.floats) {
            *slot = read_float(window, column)?;
        }
        Some(Particle::from_columns(ints, floats))
    }
}

/// The layouts of a file's particle lines, learned as lines are read.
pub(crate) struct ParticleLayouts {
    layouts: Vec<ParticleLayout>,
    budget: u32,
}

impl Default for ParticleLayouts {
    fn default() -> Self {
        ParticleLayouts {
            layouts: Vec::with_capacity(MAX_LAYOUTS),
            budget: LEARNING_BUDGET,
        }
    }
}

impl ParticleLayouts {
    /// The particle of `line` through the layout of its length, if there is one and it fits.
    #[inline(always)]
    pub(crate) fn read(&self, line: &[u8], window: &[u8]) -> Option<Particle> {
        self.layouts
            .iter()
            .find(|layout| layout.len == line.len())?
            .read(line, window)
    }

    /// Learns the layout of `line`, a particle line that was read the long way.
    #[cold]
    pub(crate) fn learn(&mut self, line: &[u8]) {
        if self.budget == 0 || self.layouts.len() == MAX_LAYOUTS {
            return;
        }
        self.budget -= 1;
        if self.layouts.iter().any(|layout| layout.len == line.len()) {
            return; // a line of that length that its layout does not fit
        }
        if let Some(layout) = ParticleLayout::of(line) {
            self.layouts.push(layout);
        }
    }
}

/// The integer of an [`IntColumn`]: blanks, an optional minus, 1 to 7 digits.
#[inline(always)]
fn read_int(window: &[u8], column: &IntColumn) -> Option<i32> {
    let v = u64::from_le_bytes(window.get(column.end - 8..column.end)?.try_into().ok()?);
    // High bit per byte > b' ', and per ASCII digit; carry-free (every byte stays below
    // 0x100), so a blank never disturbs the digit after it.
    let low = v & 0x7f7f_7f7f_7f7f_7f7f;
    let text = ((low + 0x5f5f_5f5f_5f5f_5f5f) | v) & column.column;
    let at_least_0 = low + 0x5050_5050_5050_5050;
    let above_9 = low + 0x4646_4646_4646_4646;
    let digits = at_least_0 & !above_9 & !v & column.column;
    // The last byte is a digit, the column's first a blank; a non-digit may only be a
    // minus that starts the field (the field is one run of text: the field ends match).
    let lead = column.column & column.column.wrapping_neg();
    if digits >> 63 == 0 || text & lead != 0 {
        return None;
    }
    let other = text ^ digits;
    let negative = other != 0;
    if negative
        && (other != text & text.wrapping_neg()
            || (v >> (other.trailing_zeros() - 7)) as u8 != b'-')
    {
        return None;
    }
    // Digit values in place, zeros elsewhere (leading zeros of the number).
    let keep = (digits >> 7) * 0xff;
    let value = eight_digit_values(v & 0x0f0f_0f0f_0f0f_0f0f & keep) as i32;
    Some(if negative { -value } else { value })
}

/// The float of a [`FloatColumn`], with the sign in the byte before its leading digit.
#[inline(always)]
fn read_float(window: &[u8], column: &FloatColumn) -> Option<f64> {
    let at = column.digit_at;
    let negative = match window[at - 1] {
        b'-' => true,
        b'+' => false,
        b if b <= b' ' => return column.shape.read(window, at),
        _ => return None,
    };
    // The sign starts the field: a blank (or the line's start) before it.
    if at >= 2 && window[at - 2] > b' ' {
        return None;
    }
    let value = column.shape.read(window, at)?;
    Some(if negative { -value } else { value })
}

/// The field-end mask of a line of `len` bytes at the start of `window` (which has at least
/// 64 bytes past the line), or `None` for a longer line than a layout covers.
#[inline(always)]
fn field_ends(len: usize, window: &[u8]) -> Option<[u64; WORDS]> {
    if len > MAX_LINE || window.len() < len + 64 {
        return None;
    }
    let mut ends = [0u64; WORDS];
    let mut carry = 0u64; // text bit of the byte before the word
    for (w, slot) in ends.iter_mut().enumerate().take(len / 64 + 1) {
        let block: &[u8; 64] = window[64 * w..64 * w + 64].try_into().ok()?;
        let mut text = text_mask(block);
        // Bytes past the line are blanks, whatever the window holds there.
        let in_line = len - 64 * w;
        if in_line < 64 {
            text &= (1u64 << in_line) - 1;
        }
        *slot = !text & ((text << 1) | carry);
        carry = text >> 63;
    }
    Some(ends)
}

/// One bit per byte of `block` that is not a blank (> b' ').
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn text_mask(block: &[u8; 64]) -> u64 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_set1_epi8,
    };
    let mut mask = 0u64;
    for (k, chunk) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is baseline on x86_64; the load reads the 16 bytes of `chunk`.
        let blanks = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            let space = _mm_set1_epi8(b' ' as i8);
            // v <= b' ' (unsigned) exactly where max(v, b' ') == b' '.
            _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(v, space), space)) as u32
        };
        mask |= u64::from(!blanks & 0xffff) << (16 * k);
    }
    mask
}

/// One bit per byte of `block` that is not a blank (> b' ').
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn text_mask(block: &[u8; 64]) -> u64 {
    let mut mask = 0u64;
    for (i, &b) in block.iter().enumerate() {
        mask |= u64::from(b > b' ') << i;
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::{parse_f64, parse_i32};
    use proptest::prelude::*;

    /// The particle of a line by splitting it and parsing each field on its own: the
    /// reference a layout must agree with.
    fn reference(line: &[u8]) -> Option<Particle> {
        let f: Vec<&[u8]> = fields(line).collect();
        if f.len() != 13 {
            return None;
        }
        let mut ints = [0i32; 6];
        for (slot, text) in ints.iter_mut().zip(&f[..6]) {
            *slot = parse_i32(text)?;
        }
        let mut floats = [0f64; 7];
        for (slot, text) in floats.iter_mut().zip(&f[6..]) {
            *slot = parse_f64(text)?;
        }
        Some(Particle::from_columns(ints, floats))
    }

    /// Reads `line` through `layout` with the padded window the reader provides.
    fn read(layout: &ParticleLayout, line: &[u8]) -> Option<Particle> {
        let mut window = line.to_vec();
        window.push(b'\n');
        window.resize(line.len() + 80, b'7');
        layout.read(line, &window)
    }

    /// Bitwise equality (a layout must give -0.0 where the reference does).
    fn same(a: Option<Particle>, b: Option<Particle>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => {
                let fa = [a.px, a.py, a.pz, a.e, a.m, a.lifetime, a.spin];
                let fb = [b.px, b.py, b.pz, b.e, b.m, b.lifetime, b.spin];
                a.pid == b.pid
                    && a.status == b.status
                    && a.mothers == b.mothers
                    && a.colors == b.colors
                    && fa.iter().zip(&fb).all(|(x, y)| x.to_bits() == y.to_bits())
            }
            (None, None) => true,
            _ => false,
        }
    }

    const ZMLM: &str = "       -2   -1    0    0    0  501  0.00000000000E+00  0.00000000000E+00  0.10358873558E+02  0.10358873558E+02  0.00000000000E+00 0.  1.";
    const ZMLM_2: &str = "      -11    1    3    3    0    0 -0.16108972234E+02 -0.13408642850E+02 -0.12391429034E+03  0.12567434917E+03  0.00000000000E+00 0. -1.";
    const SSWW: &str = "      -11  1    4    4    0    0 +3.8683356207e+01 -7.4160385155e+01 +2.6837701330e+02 2.8110920661e+02 0.0000000000e+00 0.0000e+00 1.0000e+00";
    const SSWW_2: &str = "        2 -1    0    0  502    0 -0.0000000000e+00 +0.0000000000e+00 +8.7320595557e+02 8.7320595557e+02 0.0000000000e+00 0.0000e+00 9.0000e+00";

    #[test]
    fn real_layouts_read_other_lines_as_the_reference_does() {
        for (first, other) in [(ZMLM, ZMLM_2), (SSWW, SSWW_2)] {
            let layout = ParticleLayout::of(first.as_bytes()).expect("a layout");
            for line in [first, other] {
                let got = read(&layout, line.as_bytes());
                assert!(got.is_some(), "{line}");
                assert!(same(got, reference(line.as_bytes())), "{line}");
            }
        }
    }

    #[test]
    fn lines_that_do_not_fit_are_declined() {
        let layout = ParticleLayout::of(ZMLM.as_bytes()).unwrap();
        let swap = |at: usize, to: &str| {
            let mut line = ZMLM.to_owned();
            line.replace_range(at..at + to.len(), to);
            line
        };
        for line in [
            swap(7, "-2-"),                   // a minus inside a field
            swap(5, "1"),                     // a field longer than its column
            swap(8, "x"),                     // not a digit
            swap(33, " "),                    // a field split in two
            swap(36, "x"),                    // junk before a float
            swap(37, "1.0"),                  // not the layout of the column
            swap(50, "E"),                    // a digit replaced by a letter
            swap(ZMLM.len() - 2, "1 "),       // the spin without its point
            swap(ZMLM.len() - 3, "+-"),       // two signs
            ZMLM.replace("E+02", "D+02"),     // Fortran D: the general parser reads it
            ZMLM.replace("0.  1.", "0. 1.0"), // more fraction digits than the column
        ]
        .into_iter()
        // Not a number or not finite, in the column's width: the general reader refuses it.
        .chain(
            ["nan", "-Inf", "Infinity", "1.0E+999"]
                .map(|text| ZMLM.replacen(" 0.10358873558E+02", &format!("{text:>18}"), 1)),
        ) {
            assert_eq!(line.len(), ZMLM.len(), "{line}");
            assert!(read(&layout, line.as_bytes()).is_none(), "{line}");
        }
        // A different length has no layout here; one without 13 fields has none at all.
        assert!(ParticleLayout::of(b"1 2 3").is_none());
        assert!(ParticleLayout::of(format!("{ZMLM} 1.").as_bytes()).is_none());
    }

    #[test]
    fn learning_keeps_one_layout_per_length_and_stops() {
        let mut layouts = ParticleLayouts::default();
        for _ in 0..3 {
            layouts.learn(ZMLM.as_bytes());
        }
        layouts.learn(SSWW.as_bytes());
        assert_eq!(layouts.layouts.len(), 2);
        let mut window = ZMLM_2.as_bytes().to_vec();
        window.resize(ZMLM_2.len() + 64, b' ');
        assert!(same(
            layouts.read(ZMLM_2.as_bytes(), &window),
            reference(ZMLM_2.as_bytes())
        ));
        for _ in 0..2 * LEARNING_BUDGET {
            layouts.learn(b"not a particle line");
        }
        assert_eq!(layouts.budget, 0);
    }

    /// A Fortran-style float: `[sign]D.F...F` with `frac` digits and `E+DD` if `exponent`.
    fn fortran(x: f64, frac: usize, exponent: bool, signed: bool) -> String {
        let sign = if x.is_sign_negative() {
            "-"
        } else if signed {
            "+"
        } else {
            ""
        };
        let point = if frac == 0 { "." } else { "" };
        if !exponent {
            return format!("{sign}{:.frac$}{point}", x.abs());
        }
        let text = format!("{:.frac$e}", x.abs());
        let (mantissa, exp) = text.split_once('e').unwrap();
        let exp: i32 = exp.parse().unwrap();
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}{point}E{exp_sign}{:02}", exp.abs())
    }

    /// A particle line in MadGraph's column layout (`%9d` and five ` %4d`, then floats).
    fn line_of(ints: &[i32; 6], floats: &[f64; 7], shape: &(usize, bool, bool, i32)) -> String {
        let (frac, exponent, signed, scale) = *shape;
        let mut line = format!("{:>9}", ints[0]);
        for i in &ints[1..] {
            line.push_str(&format!(" {i:>4}"));
        }
        for &x in floats {
            let x = if exponent { x * 10f64.powi(scale) } else { x };
            let text = fortran(x, frac, exponent, signed);
            line.push_str(&format!(" {text:>w$}", w = frac + 8));
        }
        line
    }

    /// 0 or a magnitude in [1, 9.4), either sign: one digit before the point, and with the
    /// scales below an exponent the fast path reads exactly.
    fn mantissa() -> impl Strategy<Value = f64> {
        (prop_oneof![1 => Just(0.0), 4 => 1.0f64..9.4], any::<bool>()).prop_map(|(m, negative)| {
            if negative {
                -m
            } else {
                m
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        /// A layout learned from one line reads other lines of the same format and length
        /// as the reference does, and a random byte changed in them gives the reference's
        /// reading or none.
        #[test]
        fn layouts_agree_with_the_reference_or_decline(
            first_ints in proptest::array::uniform6(-999i32..10_000),
            ints in proptest::array::uniform6(-999i32..10_000),
            first_floats in proptest::array::uniform7(mantissa()),
            floats in proptest::array::uniform7(mantissa()),
            frac in 0usize..=12, exponent in any::<bool>(), signed in any::<bool>(),
            scale in -6i32..6,
            at in any::<proptest::sample::Index>(),
            byte in prop_oneof![Just(b' '), Just(b'-'), Just(b'+'), Just(b'.'), Just(b'E'),
                                Just(b'\t'), Just(b'0'), Just(b'9'), Just(b'x'), Just(0xe9u8)],
        ) {
            let shape = (frac, exponent, signed, scale);
            let first = line_of(&first_ints, &first_floats, &shape);
            let layout = ParticleLayout::of(first.as_bytes());
            prop_assert!(layout.is_some(), "{}", first);
            let layout = layout.unwrap();
            let line = line_of(&ints, &floats, &shape);
            let got = read(&layout, line.as_bytes());
            if line.len() == first.len() {
                prop_assert!(got.is_some(), "{}\n{}", first, line);
            }
            prop_assert!(got.is_none() || same(got, reference(line.as_bytes())), "{}", line);
            let mut mutated = line.into_bytes();
            let i = at.index(mutated.len());
            mutated[i] = byte;
            let got = read(&layout, &mutated);
            prop_assert!(got.is_none() || same(got, reference(&mutated)),
                         "{}", String::from_utf8_lossy(&mutated));
        }
    }
}
