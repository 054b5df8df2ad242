"""The threshold scans of the regions ``x >= t`` and ``x <= t`` from one sort.

The best-single-cut baseline (`vbsad_batch.scan.baseline`) scans every observable in both
directions; the region ``x <= t`` is scanned as ``-x >= -t``. Sorting ``-x`` again is not
needed: the stable order of ``-x`` is the stable order of ``x`` reversed, with each run of
equal values put back in event order, and the regions' first positions follow from those of
``x`` (no value of a sample lies strictly between two neighbouring thresholds). The scans are
element for element those of `scan_thresholds` on ``x`` and on ``-x``: the same orders, so
the same sums in the same order. (Scores are finite: `ScoreSample` checks.) Samples holding a
zero, whose sign a threshold of ``-x`` would have to keep, are scanned the plain way.
"""

from __future__ import annotations

import numpy as np

from vbsad_batch.scan.statistics import (
    IntArray,
    ScoreSample,
    ThresholdScan,
    _Layout,
    _layout,
    _scan_with,
    check_sm_order,
)

__all__ = ["mirrored_order", "negated", "scan_both_directions"]


def mirrored_order(order: IntArray, sorted_values: np.ndarray) -> IntArray:
    """The stable argsort of ``-x``, given the stable argsort `order` of ``x`` and
    ``sorted_values = x[order]`` (finite values)."""
    n = order.size
    reverse = order[::-1]
    if n == 0:
        return np.ascontiguousarray(reverse, dtype=np.int64)
    descending = sorted_values[::-1]
    first = np.empty(n, dtype=bool)
    first[0] = True
    np.not_equal(descending[1:], descending[:-1], out=first[1:])
    if bool(first.all()):  # no two equal: the reversed order is the stable one
        return np.ascontiguousarray(reverse, dtype=np.int64)
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], n)
    group = np.cumsum(first) - 1
    # reversed, a run of equal values is in descending event order: turn each run around
    target = starts[group] + ends[group] - 1 - np.arange(n)
    out = np.empty(n, dtype=np.int64)
    out[target] = reverse
    return out


def _plain(samples: tuple[ScoreSample, ScoreSample, ScoreSample]) -> bool:
    """Whether a sample needs the plain scan of ``-x`` (NaN, or a zero)."""
    return any(bool(np.isnan(s.score).any()) or bool((s.score == 0.0).any()) for s in samples)


def negated(sample: ScoreSample) -> ScoreSample:
    """The sample with its scores negated: its region ``-x >= t`` is ``x <= -t``."""
    return ScoreSample(score=-sample.score, yield_=sample.yield_)


def scan_both_directions(
    sm: ScoreSample, lin: ScoreSample, quad: ScoreSample, *, sm_order: IntArray | None = None
) -> tuple[ThresholdScan, ThresholdScan]:
    """(the scan of ``x >= t``, the scan of ``-x >= t``) of the three samples: equal to
    `scan_thresholds(sm, lin, quad)` and `scan_thresholds` of the negated samples.

    `sm_order`: `stable_order(sm.score)` when already known (the SM sample is the same for
    every operator: the baseline sorts it once per observable); it must be exactly that.

    Raises:
        ValueError: `sm_order` does not have one entry per SM event.
    """
    samples = (sm, lin, quad)
    yields = (sm.yield_, lin.yield_, quad.yield_)
    if sm_order is None:
        layout = _layout(sm, lin, quad)
    else:
        check_sm_order(sm_order, sm)
        layout = _layout(sm, lin, quad, sm_sorted=(sm_order, sm.score[sm_order]))
    up = _scan_with(layout, yields, None)
    if _plain(samples):
        down_layout = _layout(negated(sm), negated(lin), negated(quad))
        return up, _scan_with(down_layout, yields, None)
    mirrored: dict[int, IntArray] = {}  # one per distinct order (shared by equal samples)
    orders = []
    starts = []
    for sample, order, start in zip(samples, layout.orders, layout.starts, strict=True):
        if id(order) not in mirrored:
            mirrored[id(order)] = mirrored_order(order, sample.score[order])
        orders.append(mirrored[id(order)])
        n = order.size
        # first position of -x >= -threshold[k] = events with x > threshold[k]
        starts.append(n - np.append(start, n)[:0:-1])
    down_layout = _Layout(
        threshold=-layout.threshold[::-1],
        orders=(orders[0], orders[1], orders[2]),
        starts=(starts[0], starts[1], starts[2]),
    )
    return up, _scan_with(down_layout, yields, None)
