//! Sums of floating-point numbers that do not depend on the order of the terms: the sum is
//! kept exactly, as a few non-overlapping partial sums (Shewchuk's algorithm, as in Python's
//! `math.fsum`), and rounded once at the end. So the sums of weights of a file read in one
//! piece and of the same file read in byte ranges (whose partials are summed again, by
//! `math.fsum`) are the same number to the last bit.

/// An exact running sum of finite `f64` terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ExactSum {
    /// Non-overlapping partial sums, increasing in magnitude; their exact sum is the sum.
    partials: Vec<f64>,
}

impl ExactSum {
    /// Adds one term (finite; the reader refuses weights that are not).
    #[inline]
    pub(crate) fn add(&mut self, term: f64) {
        let mut x = term;
        let mut kept = 0;
        let n = self.partials.len();
        for j in 0..n {
            let y = self.partials[j];
            // Knuth's two-sum: hi + lo == x + y exactly, without comparing magnitudes
            // (no branch to mispredict on weights of either sign).
            let hi = x + y;
            let y_part = hi - x;
            let lo = (x - (hi - y_part)) + (y - y_part);
            if lo != 0.0 {
                self.partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        if kept < n {
            self.partials[kept] = x;
            self.partials.truncate(kept + 1);
        } else {
            self.partials.push(x);
        }
    }

    /// The partial sums: their exact sum is the sum so far.
    pub(crate) fn partials(&self) -> &[f64] {
        &self.partials
    }

    /// The exact sum correctly rounded to the nearest `f64` (ties to even).
    pub(crate) fn value(&self) -> f64 {
        let p = &self.partials;
        let mut n = p.len();
        if n == 0 {
            return 0.0;
        }
        n -= 1;
        let mut hi = p[n];
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = p[n];
            hi = x + y;
            lo = y - (hi - x);
            if lo != 0.0 {
                break;
            }
        }
        // Half-way case: the rest of the partials decides the rounding of hi + lo.
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
        hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(terms: &[f64]) -> f64 {
        let mut s = ExactSum::default();
        for &t in terms {
            s.add(t);
        }
        s.value()
    }

    #[test]
    fn sums_that_naive_addition_gets_wrong() {
        assert_eq!(exact(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(exact(&[0.1; 10]), 1.0);
        assert_ne!([0.1f64; 10].iter().sum::<f64>(), 1.0);
        // Rounding of a half-way exact sum decided by a tiny last partial.
        let (half_ulp, tiny) = (2f64.powi(-53), 2f64.powi(-80));
        assert_eq!(1.0 + half_ulp + tiny, 1.0);
        assert_eq!(exact(&[1.0, half_ulp, tiny]), 1.0 + 2.0 * half_ulp);
        assert_eq!(exact(&[1.0, half_ulp, -tiny]), 1.0);
        assert_eq!(exact(&[]), 0.0);
    }

    #[test]
    fn order_and_grouping_do_not_matter() {
        let terms: Vec<f64> = (0..2000)
            .map(|i| {
                let x = ((i * 7919) % 1000) as f64 * 1.234_567e-4;
                if i % 3 == 0 {
                    -x
                } else {
                    x * 1.0e3
                }
            })
            .collect();
        let whole = exact(&terms);
        let mut reversed = terms.clone();
        reversed.reverse();
        assert_eq!(exact(&reversed), whole);
        // In pieces, the pieces' partials summed again: as a split file is merged.
        let mut merged = ExactSum::default();
        for piece in terms.chunks(333) {
            let mut s = ExactSum::default();
            for &t in piece {
                s.add(t);
            }
            for &p in s.partials() {
                merged.add(p);
            }
        }
        assert_eq!(merged.value(), whole);
    }
}
