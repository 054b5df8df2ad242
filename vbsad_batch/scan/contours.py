"""Two operators at once: the threshold scan of a pair of operators with their MIX term, the
region where both 1D limits are jointly best, sigma(c_a, c_b) and its sigma = z contour.

Same conventions as `vbsad_batch.scan.statistics` (regions ``score >= t``, yields in events,
the proxy significance), with ``s(c_a, c_b) = c_a L_a + c_b L_b + c_a^2 Q_a + c_b^2 Q_b +
c_a c_b M``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from vbsad_batch.scan.statistics import (
    Admissibility,
    FloatArray,
    IntArray,
    ScoreSample,
    ThresholdScan,
    check_significance,
    first_crossings,
    sums_above,
    threshold_coefficients,
)

__all__ = ["PairScan", "contour_2d", "pair_region", "scan_pair", "sigma_2d"]


# --- two operators: regions, sigma(c_a, c_b) and the sigma = z contour ---------------------------


@dataclass(frozen=True, eq=False)
class PairScan:
    """Yields of two operators a, b and their MIX term above every distinct threshold.

    The EFT prediction of a region is ``S + c_a L_a + c_b L_b + c_a^2 Q_a + c_b^2 Q_b +
    c_a c_b M`` (M: the yield of the MIX sample at c_a = c_b = 1). Attributes: arrays of equal
    length, one entry per threshold (the distinct score values of all six samples, ascending).
    """

    threshold: FloatArray
    sm_yield: FloatArray
    lin_a: FloatArray
    quad_a: FloatArray
    lin_b: FloatArray
    quad_b: FloatArray
    mix_yield: FloatArray
    sm_mc_events: IntArray
    sm_efficiency: FloatArray

    def __len__(self) -> int:
        return int(self.threshold.size)

    def single(self, which: Literal["a", "b"]) -> ThresholdScan:
        """The `ThresholdScan` of operator a or b alone on these thresholds (its limits are
        those of `scan_thresholds`: the extra thresholds repeat regions it already has)."""
        lin, quad = (self.lin_a, self.quad_a) if which == "a" else (self.lin_b, self.quad_b)
        return ThresholdScan(
            threshold=self.threshold,
            sm_yield=self.sm_yield,
            lin_yield=lin,
            quad_yield=quad,
            sm_mc_events=self.sm_mc_events,
            sm_efficiency=self.sm_efficiency,
        )


def scan_pair(
    sm: ScoreSample,
    *,
    lin_a: ScoreSample,
    quad_a: ScoreSample,
    lin_b: ScoreSample,
    quad_b: ScoreSample,
    mix: ScoreSample,
) -> PairScan:
    """S, L_a, Q_a, L_b, Q_b, M above every distinct score value of the six samples."""
    samples = (sm, lin_a, quad_a, lin_b, quad_b, mix)
    threshold = np.unique(np.concatenate([s.score for s in samples]))
    sums: list[FloatArray] = []
    sm_starts = np.zeros(0, dtype=np.int64)
    for k, sample in enumerate(samples):
        order = np.argsort(sample.score, kind="stable")
        starts = np.searchsorted(sample.score[order], threshold, side="left").astype(np.int64)
        sums.append(sums_above(sample.yield_[order], starts))
        if k == 0:
            sm_starts = starts
    total = float(np.sum(sm.yield_))
    with np.errstate(all="ignore"):
        efficiency = sums[0] / total if total > 0 else np.full(threshold.size, np.nan)
    return PairScan(
        threshold=threshold,
        sm_yield=sums[0],
        lin_a=sums[1],
        quad_a=sums[2],
        lin_b=sums[3],
        quad_b=sums[4],
        mix_yield=sums[5],
        sm_mc_events=(len(sm) - sm_starts).astype(np.int64),
        sm_efficiency=efficiency,
    )


def pair_region(pair: PairScan, significance: float, admissible: Admissibility) -> int | None:
    """The threshold index of the region where the 1D proxy limits of a and b are jointly best.

    For each of the four sides (c_a < 0, c_a > 0, c_b < 0, c_b > 0) reached at some admissible
    threshold, ``|c_side(t)| / min_t |c_side(t)|`` (>= 1; 1 at that side's own limit) measures
    how far the region t is from that side's best; the region chosen minimizes the largest of
    these ratios (the lowest threshold among ties). A region where a side reached elsewhere is
    not reached counts as infinitely far. None: no side is reached, or no region reaches every
    side that is reached somewhere.
    """
    ratios: list[FloatArray] = []
    for single in (pair.single("a"), pair.single("b")):
        for values in threshold_coefficients(single, significance, admissible):
            if bool(np.any(np.isfinite(values))):
                best = float(np.nanmin(np.abs(values)))
                ratios.append(np.where(np.isfinite(values), np.abs(values) / best, np.inf))
    if not ratios:
        return None
    worst = np.max(np.vstack(ratios), axis=0)
    index = int(np.argmin(worst))
    return index if math.isfinite(float(worst[index])) else None


def sigma_2d(
    pair: PairScan, threshold_index: int, c_a: npt.ArrayLike, c_b: npt.ArrayLike
) -> FloatArray:
    """Proxy ``|c_a L_a + c_b L_b + c_a^2 Q_a + c_b^2 Q_b + c_a c_b M| / sqrt(S)`` in one region,
    elementwise over broadcast c_a, c_b (inf where S <= 0 and the signal is not 0)."""
    i = threshold_index
    a = np.asarray(c_a, dtype=np.float64)
    b = np.asarray(c_b, dtype=np.float64)
    signal = (
        a * float(pair.lin_a[i])
        + b * float(pair.lin_b[i])
        + a * a * float(pair.quad_a[i])
        + b * b * float(pair.quad_b[i])
        + a * b * float(pair.mix_yield[i])
    )
    s_yield = float(pair.sm_yield[i])
    with np.errstate(all="ignore"):
        out: FloatArray = np.abs(signal) / (math.sqrt(s_yield) if s_yield > 0 else 0.0)
    return out


def contour_2d(
    pair: PairScan, threshold_index: int, significance: float, angles: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Points (c_a, c_b) of the proxy contour sigma = significance in one region, one per angle.

    Along the ray ``(c_a, c_b) = r (cos angle, sin angle)``, r > 0, the signal is
    ``A r^2 + B r`` with ``A = Q_a cos^2 + Q_b sin^2 + M cos sin`` and ``B = L_a cos + L_b sin``;
    the point is the smallest r > 0 with ``A r^2 + B r = +-z sqrt(S)``, solved exactly (the
    first crossing from c = 0 outwards: the boundary of the region sigma < z around the SM as
    seen from the origin). NaN where the ray never reaches z. On the axes (angle a multiple of
    pi/2, where cos and sin are snapped to exact 0 / +-1) the points are the 1D limits of that
    region.
    """
    check_significance(significance)
    i = threshold_index
    theta = np.asarray(angles, dtype=np.float64)
    u, v = np.cos(theta), np.sin(theta)
    u = np.where(np.abs(u) < 1e-15, 0.0, np.where(np.abs(np.abs(u) - 1) < 1e-15, np.sign(u), u))
    v = np.where(np.abs(v) < 1e-15, 0.0, np.where(np.abs(np.abs(v) - 1) < 1e-15, np.sign(v), v))
    quad = float(pair.quad_a[i]) * u * u + float(pair.quad_b[i]) * v * v
    quad = quad + float(pair.mix_yield[i]) * u * v
    lin = float(pair.lin_a[i]) * u + float(pair.lin_b[i]) * v
    s_yield = float(pair.sm_yield[i])
    if not s_yield > 0:
        nan = np.full(theta.shape, np.nan)
        return nan, nan.copy()
    k = np.full(theta.shape, significance * math.sqrt(s_yield))
    _, r = first_crossings(quad, lin, k, -k)
    return r * u, r * v
