"""The expected 95% CL interval on a Wilson coefficient from a binned likelihood of the score.

Same conventions as `vbsad_batch.scan.statistics`. scipy is imported when an interval is
computed, not with the module: the scan driver imports this module, and the report and
`vbsad status` import the driver only to check a scan's manifest (~0.6 s of scipy's imports
per process saved).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vbsad_batch.scan.statistics import FloatArray, ScoreSample

__all__ = ["interval_95cl"]

_EPS = float(np.finfo(np.float64).eps)


# --- expected interval from a binned likelihood --------------------------------------------------


def _deviance(n: FloatArray, mu: FloatArray) -> FloatArray:
    """Poisson deviance ``2 (mu - n + n ln(n / mu))`` per bin (n >= 0; inf where mu <= 0 < n
    or mu < 0), computed stably as ``2 n (y - ln(1 + y))`` with ``mu = n (1 + y)``."""
    with np.errstate(all="ignore"):
        y = (mu - n) / n
        small = np.abs(y) < 1e-2
        series = np.zeros_like(y)
        power = y * y
        for k in range(2, 12):  # y - ln(1+y) = sum_{k>=2} (-1)^k y^k / k
            series = series + (1.0 if k % 2 == 0 else -1.0) * power / k
            power = power * y
        h = np.where(small, series, y - np.log1p(y))
        out = np.where(
            n > 0, np.where(y <= -1, np.inf, 2 * n * h), np.where(mu >= 0, 2 * mu, np.inf)
        )
    return out


def interval_95cl(
    sm: ScoreSample,
    lin: ScoreSample,
    quad: ScoreSample,
    *,
    bins: int | Sequence[float] | FloatArray = 20,
    cl: float = 0.95,
    grid_points: int = 1201,
) -> tuple[float, float]:
    """Expected interval on c at confidence level `cl` from a binned likelihood of the score.

    Bins: an int n makes n bins with equal numbers of SM Monte Carlo events (quantiles of the SM
    scores; duplicate edges merged), the outer edges -inf and +inf so that every event counts;
    or explicit ascending edges (events outside them are ignored). Bin i is
    ``edges[i] <= score < edges[i+1]``. With ``b, l, q`` the SM, LIN, QUAD yields per bin
    (events), the expected yield at c is ``mu(c) = b + c l + c^2 q``; the data are the SM Asimov
    data ``n = b`` (the expected result if the SM is true). The test statistic is the Poisson
    deviance ``t(c) = sum 2 (mu - n + n ln(n / mu))`` (its minimum is t(0) = 0), infinite if
    some bin predicts a negative yield. The interval is ``{c : t(c) < chi2_1 quantile(cl)}``
    (3.84 for 95%): its ends are the first crossings from c = 0 outwards, located on a
    log-spaced grid of `grid_points` per side spanning six decades around the Gaussian scale
    of c, then solved with `scipy.optimize.brentq`. Returns (c_low < 0, c_high > 0), -inf/inf on
    a side that stays below the level over the grid (or when nothing depends on c).

    Raises:
        ValueError: a bin with a negative SM yield, bad bins or cl.
    """
    if not 0 < cl < 1:
        raise ValueError(f"cl must be in (0, 1), got {cl}")
    if isinstance(bins, int | np.integer):
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        inner = np.quantile(sm.score, np.arange(1, int(bins)) / int(bins))
        edges = np.unique(np.concatenate([[-np.inf], np.asarray(inner, np.float64), [np.inf]]))
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or not bool(np.all(np.diff(edges) > 0)):
            raise ValueError("bins: expected at least two strictly increasing edges")
    n_bins = edges.size - 1

    def histogram(sample: ScoreSample) -> FloatArray:
        index = np.searchsorted(edges, sample.score, side="right") - 1
        keep = (index >= 0) & (index < n_bins)
        counts: FloatArray = np.bincount(
            index[keep], weights=sample.yield_[keep], minlength=n_bins
        ).astype(np.float64)
        return counts

    b, lin_b, quad_b = histogram(sm), histogram(lin), histogram(quad)
    if bool(np.any(b < 0)):
        raise ValueError("a bin has a negative SM yield; use other bins")
    from scipy import stats  # noqa: PLC0415 - see the module docstring

    level = float(stats.chi2.ppf(cl, 1))

    def statistic(c: FloatArray) -> FloatArray:
        c2 = np.asarray(c, dtype=np.float64)[..., None]
        mu = b + c2 * lin_b + c2 * c2 * quad_b
        out: FloatArray = np.sum(_deviance(b, mu), axis=-1)
        return out

    used = b > 0
    curv2 = float(np.sum(lin_b[used] ** 2 / b[used]))
    curv4 = float(np.sum(quad_b[used] ** 2 / b[used]))
    if curv2 > 0:
        scale = math.sqrt(level / curv2)
    elif curv4 > 0:
        scale = (level / curv4) ** 0.25
    elif bool(np.any(lin_b[~used] != 0) or np.any(quad_b[~used] != 0)):
        scale = 1.0
    else:
        return (-math.inf, math.inf)
    grid = scale * np.logspace(-3.0, 3.0, grid_points)

    def end(sign: float) -> float:
        points = sign * grid
        values = statistic(points)
        above = np.flatnonzero(values >= level)
        if above.size == 0:
            return sign * math.inf
        i = int(above[0])
        left = 0.0 if i == 0 else float(points[i - 1])
        right = float(points[i])
        if not math.isfinite(float(values[i])):  # crossing into an unphysical (mu < 0) region:
            lo, hi = left, right  # shrink to where the statistic is finite
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                if math.isfinite(float(statistic(np.array(mid)))):
                    lo = mid
                else:
                    hi = mid
            if float(statistic(np.array(lo))) < level:
                return hi
            right = lo

        def f(c: float) -> float:
            return float(statistic(np.array(c))) - level

        from scipy import optimize  # noqa: PLC0415 - see the module docstring

        return float(optimize.brentq(f, left, right, xtol=1e-14, rtol=4 * _EPS, maxiter=500))

    return (end(-1.0), end(+1.0))
