"""The Asimov discovery significance and its inverse (numpy): ``Z(s, b)`` of a signal s over a
background b, and the signals s (both signs) at which Z reaches a target, for many b at once.

Conventions as in `vbsad_batch.scan.statistics` (its module docstring): ``q0 = 2 b g(s/b)`` with
``g(x) = (1 + x) ln(1 + x) - x``, two-sided, ``Z = sqrt(2 b)`` for ``s <= -b``. s and b are
expected numbers of events.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["asimov_signals", "asimov_z"]

FloatArray = npt.NDArray[np.float64]

_EPS = float(np.finfo(np.float64).eps)


def _g_and_slope(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``g(x) = (1 + x) ln(1 + x) - x`` for x >= -1 (a series near 0, the limit 1 for x <= -1)
    and its derivative ``g'(x) = ln(1 + x)``; elementwise (no value depends on the others)."""
    shape = np.shape(x)
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    with np.errstate(all="ignore"):
        slope = np.log1p(x)
        out = (1.0 + x) * slope - x
        small = np.flatnonzero(np.abs(x) < 1e-2)
        if small.size:
            # sum_{n>=2} (-1)^n x^n / (n (n-1)): error < |x|^10 / 90 relative to x^2/2 at
            # |x| < 1e-2; summed only where it is used
            xs = x[small]
            series = np.zeros_like(xs)
            power = xs * xs
            for n in range(2, 11):
                series = series + (1.0 if n % 2 == 0 else -1.0) * power / (n * (n - 1))
                power = power * xs
            out[small] = series
    return np.where(x <= -1.0, 1.0, out).reshape(shape), slope.reshape(shape)


def _g(x: FloatArray) -> FloatArray:
    """``(1 + x) ln(1 + x) - x`` for x >= -1 (a series near 0, the limit 1 for x <= -1)."""
    return _g_and_slope(x)[0]


def asimov_z(s: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """Asimov significance ``Z = sqrt(2((s+b) ln(1+s/b) - s))`` of a signal s over a background b.

    Both in events; b > 0 (NaN otherwise). Two-sided: ``Z >= 0`` for s < 0 too (a deficit); for
    ``s <= -b`` the limit ``sqrt(2 b)`` (see the module docstring).
    """
    s_arr = np.asarray(s, dtype=np.float64)
    b_arr = np.asarray(b, dtype=np.float64)
    with np.errstate(all="ignore"):
        x = np.where(b_arr > 0, s_arr / b_arr, np.nan)
        q0 = 2.0 * b_arr * _g(np.maximum(x, -1.0))
        out: FloatArray = np.sqrt(np.maximum(q0, 0.0))
    return np.where(b_arr > 0, out, np.nan)


def _solve_g(target: FloatArray, lo: FloatArray, hi: FloatArray) -> FloatArray:
    """x in the bracket [lo, hi] (either order) with ``g(x) = target``; g is monotone and convex
    on the bracket and g - target changes sign across it. Vectorized Newton steps from the end
    where g > target, replaced by bisection whenever a step would leave the current bracket
    (e.g. at x = -1 where g' is infinite); to ~machine precision.

    Each element stops at its own convergence and only the elements not yet converged are
    iterated, so an element's root does not depend on the others in the array (any chunking,
    any subset gives the same bits) and the cost is the sum, not the maximum, of the
    iterations."""
    lo = np.array(lo, dtype=np.float64)
    hi = np.array(hi, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    f_lo = _g(lo) - target
    sign_lo = np.sign(f_lo)
    # start at the end where g > target: on a convex function Newton steps from there converge
    # monotonically (quadratically) without leaving the bracket
    x = np.where(f_lo >= 0, lo, hi)
    out = x.copy()
    active = np.arange(x.size)
    for _ in range(200):
        g, slope = _g_and_slope(x)
        f = g - target
        same = np.sign(f) == sign_lo
        lo = np.where(same, x, lo)
        hi = np.where(same, hi, x)
        with np.errstate(all="ignore"):
            newton = x - f / slope
        low, high = np.minimum(lo, hi), np.maximum(lo, hi)
        inside = np.isfinite(newton) & (newton > low) & (newton < high)
        x_new = np.where(f == 0, x, np.where(inside, newton, 0.5 * (lo + hi)))
        done = (np.abs(x_new - x) <= 32 * _EPS * np.abs(x)) | ~np.isfinite(x_new)
        out[active] = x_new
        if bool(np.all(done)):
            break
        going = ~done
        active = active[going]
        x, lo, hi = x_new[going], lo[going], hi[going]
        target, sign_lo = target[going], sign_lo[going]
    return out


def asimov_signals(sm_yield: FloatArray, significance: float) -> tuple[FloatArray, FloatArray]:
    """Per b = S > 0: (s_plus > 0, s_minus in [-b, 0) or NaN) with ``Z(s, b) = significance``.

    With x = s/b, ``q0 = 2 b g(x)``, so g(x) = r = z^2 / (2 b). Brackets, exact: for x > 0,
    ``x^2 / (2 (1 + x/3)) <= g(x) <= x^2 / 2`` (Bennett), so the root lies in
    [sqrt(2 r), r/3 + sqrt(r^2/9 + 2 r)]; for -1 <= x < 0, ``x^2 / 2 <= g(x) <= x^2`` and
    g(-1) = 1, so a root exists iff r <= 1 and lies in [max(-sqrt(2 r), -1), -sqrt(r)].
    """
    b = sm_yield
    with np.errstate(all="ignore"):
        r = np.where(b > 0, significance**2 / (2.0 * b), np.nan)
        x_plus = _solve_g(r, np.sqrt(2 * r), r / 3 + np.sqrt(r * r / 9 + 2 * r))
        reach = r <= 1.0
        r_minus = np.where(reach, r, 0.25)  # placeholder where unreachable, masked below
        x_minus = _solve_g(r_minus, np.maximum(-np.sqrt(2 * r_minus), -1.0), -np.sqrt(r_minus))
    return x_plus * b, np.where(reach, x_minus * b, np.nan)
