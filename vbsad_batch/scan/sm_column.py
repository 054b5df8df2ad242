"""What depends only on the SM events of one score column, computed once for every operator.

The SM sample of a score column is the same for every operator: its sort order, its suffix
sums (the SM yield S above every threshold, events), its Monte Carlo counts and, above all, the
Asimov signals s(S) at which the significance of S reaches z (a root solve per threshold) are
functions of the SM events alone. `SMColumn` computes them once and scans each operator's LIN
and QUAD samples against them. Every number equals what `scan_thresholds` and `solve_asimov`
compute from scratch, bit for bit (the same operations on the same values).
"""

from __future__ import annotations

import numpy as np

from vbsad_batch.scan.asimov import asimov_signals
from vbsad_batch.scan.statistics import (
    FloatArray,
    IntArray,
    ScoreSample,
    SignalSource,
    ThresholdScan,
    _distinct_sorted,
    _Layout,
    _layout,
    check_sm_order,
    stable_order,
    sums_above,
)

__all__ = ["OperatorScan", "SMColumn"]


class OperatorScan:
    """The scan of one operator against an `SMColumn`.

    Attributes:
        scan: S, L, Q above every threshold (as `scan_thresholds` gives).
        sm_position: per threshold, the number of SM events (sorted by score) below it: S is
            the SM suffix sum from there.
    """

    __slots__ = ("scan", "sm_position")

    def __init__(self, scan: ThresholdScan, sm_position: IntArray) -> None:
        self.scan = scan
        self.sm_position = sm_position


class SMColumn:
    """The SM events of one score column, sorted once, with their sums and Asimov signals."""

    def __init__(self, sm: ScoreSample, *, order: IntArray | None = None) -> None:
        """`order`: the stable argsort of the SM scores when already known, e.g. sorted by
        several ranks together (`vbsad_batch.scan.sm_sharing`); it must be exactly that."""
        self.sample = sm
        if order is None:
            order = stable_order(sm.score)
        else:
            check_sm_order(order, sm)
        self._order = order
        self._sorted_scores: FloatArray | None = None  # made again only if needed
        self._threshold, self._starts = _distinct_sorted(sm.score[order])
        n = self._order.size
        self._suffix = np.zeros(n + 1)  # SM yield from each sorted position on (events)
        if n:  # summed from the top, written in place (the same sums as cumsum then a copy)
            np.cumsum(sm.yield_[self._order][::-1], out=self._suffix[n - 1 :: -1])
        self._total = float(np.sum(sm.yield_))
        self._shared: tuple[FloatArray, IntArray, FloatArray] | None = None
        # Asimov signals per SM position (n + 1 of them), solved on demand, per significance
        self._signals: dict[float, tuple[FloatArray, FloatArray, np.ndarray]] = {}

    def __len__(self) -> int:
        return int(self._order.size)

    @property
    def _sorted(self) -> FloatArray:
        """The SM scores in sort order (made when first needed: an operator scored on other
        events than the SM's)."""
        if self._sorted_scores is None:
            self._sorted_scores = self.sample.score[self._order]
        return self._sorted_scores

    def scan(self, lin: ScoreSample, quad: ScoreSample) -> OperatorScan:
        """`scan_thresholds(sm, lin, quad)`, reusing the SM side."""
        sm = self.sample.score
        if all(s.score is sm or np.array_equal(s.score, sm) for s in (lin, quad)):
            # the SM events with other yields (a reweighted sample): the SM's own thresholds
            layout = _Layout(self._threshold, (self._order,) * 3, (self._starts,) * 3)
        else:
            layout = _layout(self.sample, lin, quad, sm_sorted=(self._order, self._sorted))
        position = layout.starts[0]
        if position is self._starts or (
            layout.threshold.size == self._threshold.size and np.array_equal(position, self._starts)
        ):  # the thresholds are the SM's own: S, counts and efficiency as for any operator
            if self._shared is None:
                self._shared = self._sm_side(self._starts)
            threshold = self._threshold
            sm_yield, mc_events, efficiency = self._shared
        else:
            threshold = layout.threshold
            sm_yield, mc_events, efficiency = self._sm_side(position)
        lin_yield = sums_above(lin.yield_[layout.orders[1]], layout.starts[1], overwrite=True)
        quad_yield = sums_above(quad.yield_[layout.orders[2]], layout.starts[2], overwrite=True)
        scan = ThresholdScan(
            threshold=threshold,
            sm_yield=sm_yield,
            lin_yield=lin_yield,
            quad_yield=quad_yield,
            sm_mc_events=mc_events,
            sm_efficiency=efficiency,
        )
        return OperatorScan(scan, position)

    def _sm_side(self, position: IntArray) -> tuple[FloatArray, IntArray, FloatArray]:
        """(S, SM Monte Carlo events, SM efficiency) above the thresholds at `position`."""
        sm_yield = self._suffix[position]
        mc_events = (self._order.size - position).astype(np.int64, copy=False)
        with np.errstate(all="ignore"):
            efficiency = (
                sm_yield / self._total if self._total > 0 else np.full(sm_yield.size, np.nan)
            )
        return sm_yield, mc_events, efficiency

    def asimov_signals(self, operator: OperatorScan, significance: float) -> SignalSource:
        """For `solve_asimov`: threshold indices of `operator` -> (s_plus, s_minus), the signals
        (events) at which the Asimov Z of their S reaches `significance` (as `asimov_signals`).
        Each SM position is solved once, when first asked for, whatever the operator."""
        key = float(significance)
        n = self._order.size
        if key not in self._signals:
            # written (so resident in memory) only where solved: the thresholds asked for
            self._signals[key] = (np.empty(n + 1), np.empty(n + 1), np.zeros(n + 1, dtype=bool))
        s_plus, s_minus, solved = self._signals[key]

        def at(rows: IntArray) -> tuple[FloatArray, FloatArray]:
            wanted = operator.sm_position[rows]
            missing = np.unique(wanted[~solved[wanted]])
            if missing.size:
                plus, minus = asimov_signals(self._suffix[missing], key)
                s_plus[missing], s_minus[missing] = plus, minus
                solved[missing] = True
            return s_plus[wanted], s_minus[wanted]

        return at
