"""Sensitivity of an anomaly score to one EFT operator: exact threshold scans (numpy + scipy).

Pure functions of per-event scores and yields: no MPI, no I/O, deterministic.

Conventions (used everywhere below):

- A *region* is ``score >= t`` for a threshold ``t``. Every distinct score value of the three
  samples (SM, LIN, QUAD) is a threshold, so every region a cut on the score can make is
  scanned; thresholds are sorted ascending (the first one selects every event).
- Yields are expected numbers of events at the configured luminosity (the ``yield`` column of
  the scores); ``S(t)``, ``L(t)``, ``Q(t)`` are the summed SM, LIN and QUAD yields in the
  region. LIN yields (and, from reweighting, occasional QUAD yields) may be negative: they are
  summed as they are, never dropped or made positive. The EFT prediction for a coefficient
  ``c`` (Lambda = 1 TeV) is ``S + s(c)`` with ``s(c) = c L + c^2 Q``.
- *Proxy* significance (the reference paper's): ``sigma(c, t) = |c L + c^2 Q| / sqrt(S)``.
  ``sigma = z`` means ``Q c^2 + L c = +z sqrt(S)`` or ``= -z sqrt(S)``; both quadratics are
  solved exactly (the numerically stable form of the quadratic formula, a linear equation
  when ``Q = 0``).
- *Asimov* significance: ``Z(s, b) = sqrt(q0)``, ``q0 = 2((s + b) ln(1 + s/b) - s)`` with
  ``b = S``, the likelihood-ratio statistic of SM-only against Asimov data ``n = S + s``.
  It is used two-sided: a deficit (``s < 0``, e.g. destructive interference) is a deviation
  just as an excess is, and ``Z >= 0`` for either sign. ``q0`` grows with ``|s|`` on each
  side; for ``s -> -b`` (no events expected) it tends to ``2 b``. A prediction ``s <= -b``
  (zero or negative total yield: outside the validity of the EFT expansion) gets that limit,
  ``Z = sqrt(2 b)``, so ``Z`` is continuous in ``c``; a deficit can therefore reach ``z`` only
  if ``b > z^2 / 2``.
- For each side, the limit is the *first crossing*: the smallest ``c > 0`` (largest ``c < 0``)
  where the significance reaches ``z`` at some admissible threshold, so ``c_minus < 0 <
  c_plus``. Among thresholds giving the same ``|c|``, the lowest threshold is reported.
- A region is *admissible* when it holds at least ``min_sm_mc_events`` SM Monte Carlo events
  and an SM yield ``S >= min_sm_yield`` (events) with ``S > 0``: a region without SM
  expectation has no meaningful significance and is never used.
- The SM efficiency of a region is ``S(t) / S_total`` (yield-weighted), ``S_total`` the SM
  yield of the whole sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from vbsad_batch.scan.asimov import asimov_signals, asimov_z

__all__ = [
    "Admissibility",
    "CoefficientLimit",
    "LimitPoint",
    "ScoreSample",
    "Statistic",
    "ThresholdScan",
    "asimov_z",
    "check_significance",
    "check_sm_order",
    "first_crossings",
    "quote_limit",
    "scan_thresholds",
    "sigma_curve",
    "solve_asimov",
    "solve_proxy",
    "stable_order",
    "sums_above",
    "threshold_coefficients",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Statistic = Literal["proxy", "asimov"]
SignalSource = Callable[[IntArray], tuple[FloatArray, FloatArray]]
"""Threshold indices -> the Asimov signals (s_plus, s_minus) there (`threshold_coefficients`)."""

_CHUNK = 1 << 15  # thresholds solved at a time


# --- inputs --------------------------------------------------------------------------------------


def _float_vector(name: str, values: Any) -> FloatArray:
    array = np.ascontiguousarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array


@dataclass(frozen=True, eq=False)
class ScoreSample:
    """One component's events (SM, LIN or QUAD of one operator): score and yield per event.

    Attributes:
        score: anomaly score per event (any real scale; larger = more anomalous), float64.
        yield_: expected number of events at the configured luminosity, per event (events);
            may be negative for LIN.
        event_id: optional identity of each event (any sortable dtype, e.g. a string
            ``"<input sha256>:<event>"``). When all three samples given to `bootstrap_limits`
            carry ids, events with equal ids (the same Monte Carlo event, e.g. the SM, LIN and
            QUAD weights of a reweighted sample) get the same bootstrap weight.
    """

    score: FloatArray
    yield_: FloatArray
    event_id: npt.NDArray[Any] | None = None

    def __post_init__(self) -> None:
        score = _float_vector("score", self.score)
        yield_ = _float_vector("yield_", self.yield_)
        if score.shape != yield_.shape:
            raise ValueError(f"score has {score.size} events but yield_ has {yield_.size}")
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "yield_", yield_)
        if self.event_id is not None:
            ids = np.asarray(self.event_id)
            if ids.shape != score.shape:
                raise ValueError(f"event_id has shape {ids.shape}, expected {score.shape}")
            object.__setattr__(self, "event_id", ids)

    def __len__(self) -> int:
        return int(self.score.size)


@dataclass(frozen=True)
class Admissibility:
    """Which regions may give a limit.

    Attributes:
        min_sm_mc_events: minimum number of SM Monte Carlo events in the region (>= 0).
        min_sm_yield: minimum SM yield in the region, events at the luminosity (>= 0); a region
            also needs ``S > 0`` whatever this is.
    """

    min_sm_mc_events: int
    min_sm_yield: float

    def __post_init__(self) -> None:
        if isinstance(self.min_sm_mc_events, bool) or int(self.min_sm_mc_events) < 0:
            raise ValueError(f"min_sm_mc_events must be >= 0, got {self.min_sm_mc_events}")
        if not (math.isfinite(self.min_sm_yield) and self.min_sm_yield >= 0):
            raise ValueError(f"min_sm_yield must be finite and >= 0, got {self.min_sm_yield}")


@dataclass(frozen=True, eq=False)
class ThresholdScan:
    """Yields above every distinct threshold (region ``score >= threshold``), sorted by threshold.

    Attributes (arrays of equal length, one entry per threshold):
        threshold: the distinct score values, ascending.
        sm_yield: S, SM yield in the region (events).
        lin_yield: L, LIN yield in the region (events at c = 1; may be negative).
        quad_yield: Q, QUAD yield in the region (events at c = 1).
        sm_mc_events: number of SM Monte Carlo events in the region.
        sm_efficiency: S / (SM yield of the whole sample); NaN if that total is not positive.
    """

    threshold: FloatArray
    sm_yield: FloatArray
    lin_yield: FloatArray
    quad_yield: FloatArray
    sm_mc_events: IntArray
    sm_efficiency: FloatArray

    def __len__(self) -> int:
        return int(self.threshold.size)

    def admissible(self, admissible: Admissibility) -> npt.NDArray[np.bool_]:
        """Mask of the admissible regions (see the module docstring)."""
        return (
            (self.sm_mc_events >= admissible.min_sm_mc_events)
            & (self.sm_yield >= admissible.min_sm_yield)
            & (self.sm_yield > 0)
        )


# --- the threshold scan --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Sort orders and, per threshold, the first sorted position of each sample in the region."""

    threshold: FloatArray
    orders: tuple[IntArray, IntArray, IntArray]
    starts: tuple[IntArray, IntArray, IntArray]


def _distinct_sorted(sorted_values: FloatArray) -> tuple[FloatArray, IntArray]:
    """(distinct values, index of their first occurrence) of an ascending array."""
    if sorted_values.size == 0:
        return sorted_values, np.zeros(0, dtype=np.int64)
    first = np.empty(sorted_values.size, dtype=bool)
    first[0] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=first[1:])
    starts = np.flatnonzero(first).astype(np.int64)
    return sorted_values[starts], starts


def stable_order(values: FloatArray) -> IntArray:
    """The stable argsort of `values`: equal values in event order, on any platform."""
    order: IntArray = np.argsort(values, kind="stable").astype(np.int64, copy=False)
    return order


def check_sm_order(order: IntArray, sm: ScoreSample) -> None:
    """A sort order of the SM events given from elsewhere holds one entry per SM event (else:
    ValueError)."""
    if order.size != sm.score.size:
        raise ValueError(f"a sort order of {order.size} events for {sm.score.size} SM events")


def _layout(
    sm: ScoreSample,
    lin: ScoreSample,
    quad: ScoreSample,
    sm_sorted: tuple[IntArray, FloatArray] | None = None,
) -> _Layout:
    """The sort orders and threshold positions of three samples; `sm_sorted`: the SM sample's
    argsort and sorted scores when already known (the same arrays this would compute)."""
    samples = (sm, lin, quad)
    orders: list[IntArray] = []
    sorted_scores: list[FloatArray] = []
    for i, sample in enumerate(samples):
        if i == 0 and sm_sorted is not None:
            orders.append(sm_sorted[0])
            sorted_scores.append(sm_sorted[1])
            continue
        reuse = next(
            (
                j
                for j in range(i)
                if samples[j].score is sample.score
                or np.array_equal(samples[j].score, sample.score)
            ),
            None,
        )
        if reuse is None:  # stable: equal scores in event order, on any platform
            order = stable_order(sample.score)
            orders.append(order)
            sorted_scores.append(sample.score[order])
        else:  # the same events (e.g. one reweighted sample): sort once
            orders.append(orders[reuse])
            sorted_scores.append(sorted_scores[reuse])
    distinct = {id(s): s for s in sorted_scores}
    if len(distinct) == 1:
        threshold, sm_starts = _distinct_sorted(sorted_scores[0])
        starts = (sm_starts, sm_starts, sm_starts)
    else:  # merge the sorted runs (timsort: linear), then one threshold per distinct value
        merged = np.sort(np.concatenate(list(distinct.values())), kind="stable")
        threshold, _ = _distinct_sorted(merged)
        found = {
            key: np.searchsorted(s, threshold, side="left").astype(np.int64)
            for key, s in distinct.items()
        }
        starts = (
            found[id(sorted_scores[0])],
            found[id(sorted_scores[1])],
            found[id(sorted_scores[2])],
        )
    return _Layout(threshold, (orders[0], orders[1], orders[2]), starts)


def sums_above(
    sorted_values: FloatArray, starts: IntArray, *, overwrite: bool = False
) -> FloatArray:
    """Sum of sorted_values[start:] for every start (summed from the top, so small regions at
    high thresholds are summed with the smallest rounding error). `overwrite`: the cumulative
    sums may be written over `sorted_values` (a temporary of the caller's: no second array
    of its size; the same sums)."""
    n = sorted_values.size
    if n and starts.size and int(starts[-1]) < n and int(starts[0]) >= 0:  # no empty region
        if overwrite and sorted_values.flags.writeable:
            top_down = sorted_values[::-1]
            np.cumsum(top_down, out=top_down)
            out: FloatArray = sorted_values[starts]
        else:
            out = np.cumsum(sorted_values[::-1])[::-1][starts]
        return out
    suffix = np.zeros(n + 1, dtype=np.float64)
    if n:
        suffix[:n] = np.cumsum(sorted_values[::-1])[::-1]
    return suffix[starts]


def _scan_with(
    layout: _Layout,
    yields: tuple[FloatArray, FloatArray, FloatArray],
    sm_counts: IntArray | None,
) -> ThresholdScan:
    sums = [
        sums_above(y[order], start, overwrite=True)
        for y, order, start in zip(yields, layout.orders, layout.starts, strict=True)
    ]
    n_sm = layout.orders[0].size
    if sm_counts is None:
        mc_events = (n_sm - layout.starts[0]).astype(np.int64)
    else:
        counts = np.zeros(n_sm + 1, dtype=np.int64)
        counts[:n_sm] = np.cumsum(sm_counts[layout.orders[0]][::-1])[::-1]
        mc_events = counts[layout.starts[0]]
    total = float(np.sum(yields[0]))
    with np.errstate(all="ignore"):
        efficiency = sums[0] / total if total > 0 else np.full(sums[0].size, np.nan)
    return ThresholdScan(
        threshold=layout.threshold,
        sm_yield=sums[0],
        lin_yield=sums[1],
        quad_yield=sums[2],
        sm_mc_events=mc_events,
        sm_efficiency=efficiency,
    )


def scan_thresholds(sm: ScoreSample, lin: ScoreSample, quad: ScoreSample) -> ThresholdScan:
    """S, L, Q above every distinct score value of the three samples (sort + cumulative sums).

    Cost O(n log n) in the number of events; the three samples are sorted once each (once in
    all when they have equal scores, as for a reweighted sample). The sort is stable: events
    of equal score are summed in their order in the sample, so every sum is the same on any
    platform and however the sort is split (`vbsad_batch.scan.sm_sharing`).
    """
    layout = _layout(sm, lin, quad)
    return _scan_with(layout, (sm.yield_, lin.yield_, quad.yield_), None)


# --- exact roots ---------------------------------------------------------------------------------


def _nearest_roots(a: FloatArray, b: FloatArray, d: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Elementwise real roots of ``a c^2 + b c + d = 0``: (smallest positive, largest negative),
    NaN where there is none. Stable: ``q = -(b + sign(b) sqrt(b^2 - 4 a d)) / 2``, roots ``q/a``
    and ``d/q`` (no subtraction of nearly equal numbers); ``a = 0``: ``c = -d / b``."""
    with np.errstate(all="ignore"):
        root = np.sqrt(b * b - 4.0 * a * d)  # NaN where there is no real root
        q = -0.5 * (b + np.copysign(root, b))
        # a = 0: q = -b, so d / q = -d / b is the root of the linear equation and q / a is
        # infinite; a = b = 0: both infinite or NaN. Non-finite values are no roots.
        r1 = q / a
        r2 = d / q
        pos = np.fmin(np.where(r1 > 0, r1, np.inf), np.where(r2 > 0, r2, np.inf))
        neg = np.fmax(np.where(r1 < 0, r1, -np.inf), np.where(r2 < 0, r2, -np.inf))
    return np.where(pos < np.inf, pos, np.nan), np.where(neg > -np.inf, neg, np.nan)


def first_crossings(
    quad: FloatArray, lin: FloatArray, s_plus: FloatArray, s_minus: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """(largest c < 0, smallest c > 0) with ``Q c^2 + L c`` equal to s_plus (> 0) or s_minus
    (< 0, NaN: not reachable), NaN where none."""
    pos1, neg1 = _nearest_roots(quad, lin, -s_plus)
    pos2, neg2 = _nearest_roots(quad, lin, np.where(np.isnan(s_minus), np.nan, -s_minus))
    c_plus = np.fmin(pos1, pos2)
    c_minus = np.fmax(neg1, neg2)
    return c_minus, c_plus


# --- limits --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LimitPoint:
    """Where one side of the limit is reached.

    Attributes:
        c: the Wilson coefficient (Lambda = 1 TeV) at which the significance is reached.
        threshold: the score threshold of the region (score >= threshold).
        threshold_index: its index in the `ThresholdScan`.
        sm_yield, lin_yield, quad_yield: S, L, Q in the region (events).
        sm_mc_events: SM Monte Carlo events in the region.
        sm_efficiency: S / S_total.
    """

    c: float
    threshold: float
    threshold_index: int
    sm_yield: float
    lin_yield: float
    quad_yield: float
    sm_mc_events: int
    sm_efficiency: float


@dataclass(frozen=True)
class CoefficientLimit:
    """Smallest |c| on each side reaching the significance; None: not reached on that side.

    Attributes:
        minus: the c < 0 side, or None.
        plus: the c > 0 side, or None.
        significance: the target z.
        statistic: "proxy" (|cL + c^2 Q| / sqrt(S)) or "asimov".
    """

    minus: LimitPoint | None
    plus: LimitPoint | None
    significance: float
    statistic: Statistic

    @property
    def c_minus(self) -> float | None:
        return None if self.minus is None else self.minus.c

    @property
    def c_plus(self) -> float | None:
        return None if self.plus is None else self.plus.c

    @property
    def threshold_minus(self) -> float | None:
        return None if self.minus is None else self.minus.threshold

    @property
    def threshold_plus(self) -> float | None:
        return None if self.plus is None else self.plus.threshold


def check_significance(significance: float) -> None:
    """Raise ValueError unless `significance` (z) is finite and > 0."""
    if not (math.isfinite(significance) and significance > 0):
        raise ValueError(f"significance must be finite and > 0, got {significance}")


def threshold_coefficients(
    scan: ThresholdScan,
    significance: float,
    admissible: Admissibility,
    *,
    statistic: Statistic = "proxy",
    signals: SignalSource | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Per threshold, (c_minus, c_plus): the first crossings of the significance on each side;
    NaN where the region is inadmissible or the significance is never reached.

    `signals` (Asimov only): given threshold indices of `scan` (admissible ones), the signals
    (s_plus, s_minus) at which the Asimov Z of their SM yields reaches `significance` (as
    `asimov_signals` of ``scan.sm_yield[indices]``), e.g. from
    `vbsad_batch.scan.sm_column.SMColumn`, which solves each once for every operator."""
    check_significance(significance)
    if statistic not in ("proxy", "asimov"):
        raise ValueError(f"unknown statistic {statistic!r}")
    ok = np.flatnonzero(scan.admissible(admissible))
    c_minus = np.full(len(scan), np.nan)
    c_plus = np.full(len(scan), np.nan)
    for start in range(0, ok.size, _CHUNK):  # blocks that stay in cache: ~3x faster than whole
        rows = ok[start : start + _CHUNK]
        s = scan.sm_yield[rows]
        if statistic == "proxy":
            k = significance * np.sqrt(s)
            s_plus, s_minus = k, -k
        elif signals is not None:
            s_plus, s_minus = signals(rows)
        else:
            s_plus, s_minus = asimov_signals(s, significance)
        c_minus[rows], c_plus[rows] = first_crossings(
            scan.quad_yield[rows], scan.lin_yield[rows], s_plus, s_minus
        )
    return c_minus, c_plus


def _point(
    scan: ThresholdScan, values: FloatArray, rows: IntArray | None = None
) -> LimitPoint | None:
    """The threshold of smallest |c| (the first among equal ones); `rows`: the ascending
    threshold indices of `values` (default: every threshold)."""
    if not bool(np.any(np.isfinite(values))):
        return None
    at = int(np.nanargmin(np.abs(values)))  # first (lowest threshold) among equal |c|
    index = at if rows is None else int(rows[at])
    return LimitPoint(
        c=float(values[at]),
        threshold=float(scan.threshold[index]),
        threshold_index=index,
        sm_yield=float(scan.sm_yield[index]),
        lin_yield=float(scan.lin_yield[index]),
        quad_yield=float(scan.quad_yield[index]),
        sm_mc_events=int(scan.sm_mc_events[index]),
        sm_efficiency=float(scan.sm_efficiency[index]),
    )


_BLOCK = 256  # consecutive admissible thresholds bounded together
_FIRST = 4  # blocks of smallest bound per side solved first


def _block_rows(blocks: IntArray, n: int) -> IntArray:
    """Positions (in 0..n-1) of the thresholds of the given blocks, ascending."""
    rows = (np.sort(blocks)[:, None] * _BLOCK + np.arange(_BLOCK)).ravel()
    return rows[rows < n]


def _solve(
    scan: ThresholdScan,
    significance: float,
    admissible: Admissibility,
    statistic: Statistic,
    signals: SignalSource | None = None,
) -> CoefficientLimit:
    """The limits, solving only the blocks of thresholds that can hold them.

    A crossing on the c > 0 side is of a level s >= k+ or s <= -k- by ``L c + Q c^2``, where
    k+ = k- = z sqrt(S) for the proxy and k+ = s_plus(S), k- = |s_minus(S)| (>= z^2 / 2) for
    Asimov (`asimov_signals`, both growing with S). The first crossing of a level comes no later
    for a polynomial
    that is larger (for +k) or smaller (for -k) on that side, and for a lower level: so over a
    block of `_BLOCK` consecutive admissible thresholds, |c| is at least the first crossing of
    +k+(min S) by the block's largest L and Q and of -k-(min S) by its smallest (c < 0: L's
    extremes swapped). The `_FIRST` blocks of smallest bound per side are solved, then every
    block whose bound is within 1e-6 of the best |c| found on that side. The others cannot
    hold a limit (nor tie with one): the result is that of solving every threshold, bit for
    bit (a threshold's roots do not depend on the others')."""
    check_significance(significance)
    z = significance
    mask = scan.admissible(admissible)
    count = int(np.count_nonzero(mask))
    first = int(np.argmax(mask)) if count else 0
    ok: IntArray | slice
    if bool(np.all(mask[first : first + count])):  # one run, the usual case: views
        ok = slice(first, first + count)
    else:
        ok = np.flatnonzero(mask)
    starts = np.arange(0, count, _BLOCK)
    found: list[tuple[IntArray, FloatArray, FloatArray]] = []
    if count:
        lin, quad, sm = scan.lin_yield[ok], scan.quad_yield[ok], scan.sm_yield[ok]
        lin_max, lin_min = np.maximum.reduceat(lin, starts), np.minimum.reduceat(lin, starts)
        quad_max, quad_min = np.maximum.reduceat(quad, starts), np.minimum.reduceat(quad, starts)
        s = np.minimum.reduceat(sm, starts)
        if statistic == "proxy":
            k_up = k_down = z * np.sqrt(s)
        else:  # the Asimov signals grow with S; a deficit needs S >= z^2 / 2, then |s| >= that
            s_plus, s_minus = asimov_signals(s, z)
            k_up = s_plus * (1.0 - 1e-12)
            k_down = np.fmax(-s_minus, 0.5 * z * z) * (1.0 - 1e-12)
        # the first crossings of the block's most favourable polynomial on each side
        up_plus, _ = _nearest_roots(quad_max, lin_max, -k_up)
        down_plus, _ = _nearest_roots(quad_min, lin_min, k_down)
        _, up_minus = _nearest_roots(quad_max, lin_min, -k_up)
        _, down_minus = _nearest_roots(quad_min, lin_max, k_down)
        bounds = (  # per block: |c| on the c < 0 side, on the c > 0 side (inf: unreachable)
            np.nan_to_num(-np.fmax(up_minus, down_minus), nan=np.inf),
            np.nan_to_num(np.fmin(up_plus, down_plus), nan=np.inf),
        )
        solved = np.zeros(starts.size, dtype=bool)

        def solve_blocks(chosen: IntArray) -> None:
            chosen = chosen[~solved[chosen]]
            if chosen.size == 0:
                return
            solved[chosen] = True
            rows = _block_rows(chosen, count)
            index = rows + first if isinstance(ok, slice) else ok[rows]
            source = None if signals is None else (lambda r: signals(index[r]))
            found.append(
                (
                    index,
                    *threshold_coefficients(
                        _rows(scan, index), z, admissible, statistic=statistic, signals=source
                    ),
                )
            )

        for bound in bounds:
            solve_blocks(np.argsort(bound, kind="stable")[:_FIRST])
        margin = 1.0 + 1e-6
        best = [
            min(float(np.nanmin(np.abs(f[side]), initial=np.inf)) for f in found) * margin
            for side in (1, 2)
        ]
        solve_blocks(np.flatnonzero((bounds[0] <= best[0]) | (bounds[1] <= best[1])))
    rows = np.concatenate([f[0] for f in found]) if found else np.zeros(0, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    rows = rows[order]
    c_minus, c_plus = (
        np.concatenate([f[side] for f in found])[order] if found else np.zeros(0) for side in (1, 2)
    )
    return CoefficientLimit(
        minus=_point(scan, c_minus, rows),
        plus=_point(scan, c_plus, rows),
        significance=float(significance),
        statistic=statistic,
    )


def solve_proxy(
    scan: ThresholdScan, significance: float, admissible: Admissibility
) -> CoefficientLimit:
    """Smallest |c| per side with ``|c L + c^2 Q| / sqrt(S) = significance`` at an admissible
    threshold: the roots of ``Q c^2 + L c -+ z sqrt(S) = 0``, exactly, over all thresholds."""
    return _solve(scan, significance, admissible, "proxy")


def solve_asimov(
    scan: ThresholdScan,
    significance: float,
    admissible: Admissibility,
    *,
    signals: SignalSource | None = None,
) -> CoefficientLimit:
    """As `solve_proxy` with the two-sided Asimov significance ``Z(c L + c^2 Q, S)``.

    Per threshold, ``Z = z`` is first solved for the signal s (both signs; exact brackets,
    vectorized bracketed Newton, see `vbsad_batch.scan.asimov.asimov_signals`), then
    ``Q c^2 + L c = s`` exactly. `signals`: those s when already known (see
    `threshold_coefficients`).
    """
    return _solve(scan, significance, admissible, "asimov", signals)


def _rows(scan: ThresholdScan, index: IntArray) -> ThresholdScan:
    """The thresholds `index` of `scan` alone."""
    return ThresholdScan(
        threshold=scan.threshold[index],
        sm_yield=scan.sm_yield[index],
        lin_yield=scan.lin_yield[index],
        quad_yield=scan.quad_yield[index],
        sm_mc_events=scan.sm_mc_events[index],
        sm_efficiency=scan.sm_efficiency[index],
    )


def quote_limit(
    scan: ThresholdScan, chosen: CoefficientLimit, admissible: Admissibility
) -> CoefficientLimit:
    """The limits of regions chosen on other events, quoted with the yields of `scan`.

    `chosen` holds, per side, a region (score >= its threshold) found on one set of events,
    e.g. the validation split; here each side is solved again, for the same statistic and
    significance, with the S, L, Q of `scan` (e.g. the test split) in that same region: the
    first crossing on that side, or not reached (region empty, inadmissible, or never reaching
    the significance on these events). The reported threshold is the chosen one; its index
    points into `scan` (the first threshold of `scan` at or above it: the same region).
    Only those (at most two) regions are solved: every threshold's roots are independent of
    the others', so this equals solving the whole scan and picking them.
    """
    points = (chosen.minus, chosen.plus)
    index = np.asarray(
        [
            len(scan)
            if point is None
            else int(np.searchsorted(scan.threshold, point.threshold, side="left"))
            for point in points
        ],
        dtype=np.int64,
    )
    present = index < len(scan)
    c_minus, c_plus = threshold_coefficients(
        _rows(scan, index[present]), chosen.significance, admissible, statistic=chosen.statistic
    )
    values = (np.full(2, np.nan), np.full(2, np.nan))
    values[0][present], values[1][present] = c_minus, c_plus

    def side(k: int) -> LimitPoint | None:
        point, at = points[k], int(index[k])
        value = float(values[k][k])
        if point is None or at >= len(scan) or not math.isfinite(value):
            return None
        return LimitPoint(
            c=value,
            threshold=point.threshold,
            threshold_index=at,
            sm_yield=float(scan.sm_yield[at]),
            lin_yield=float(scan.lin_yield[at]),
            quad_yield=float(scan.quad_yield[at]),
            sm_mc_events=int(scan.sm_mc_events[at]),
            sm_efficiency=float(scan.sm_efficiency[at]),
        )

    return CoefficientLimit(
        minus=side(0),
        plus=side(1),
        significance=chosen.significance,
        statistic=chosen.statistic,
    )


def sigma_curve(
    scan: ThresholdScan,
    threshold_index: int,
    coefficients: npt.ArrayLike,
    *,
    statistic: Statistic = "proxy",
) -> FloatArray:
    """Significance at one threshold for each coefficient c: the proxy ``|cL + c^2 Q| / sqrt(S)``
    (inf where S <= 0 and the signal is not 0, NaN where both are 0) or the Asimov Z (NaN
    where S <= 0)."""
    c = np.asarray(coefficients, dtype=np.float64)
    s_yield = float(scan.sm_yield[threshold_index])
    signal = c * float(scan.lin_yield[threshold_index]) + c * c * float(
        scan.quad_yield[threshold_index]
    )
    if statistic == "asimov":
        return asimov_z(signal, np.full(c.shape, s_yield))
    if statistic != "proxy":
        raise ValueError(f"unknown statistic {statistic!r}")
    with np.errstate(all="ignore"):
        root = math.sqrt(s_yield) if s_yield > 0 else 0.0
        out: FloatArray = np.abs(signal) / root
    return out
