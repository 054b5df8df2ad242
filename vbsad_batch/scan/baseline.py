"""The cut baseline of the sensitivity table: the best single-observable region.

For each operator, every observable the models see (the config's `features`) is used as the
score in turn, in both directions (region ``x >= t`` or ``x <= t``, both scanned from one
sort of each sample: `vbsad_batch.scan.both_directions`), with the machinery and the rules of
the models' limits: every distinct value a threshold, the same admissibility, the same
significance, and regions chosen where the models' are (`[scan] region_from`: on the
validation events and quoted on the test events, or on the test events). Per side (c < 0,
c > 0), the observable and direction with the smallest |c| where the regions are chosen is the
baseline, quoted like a model's limit. A model that does not beat it has not earned its keep.

The values come from the datasets (`vbsad_batch.weighting.datasets`): the same events, in the
same order, with the same yields as the score files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from vbsad_batch.runtime.file_errors import reading
from vbsad_batch.scan.both_directions import negated, scan_both_directions
from vbsad_batch.scan.statistics import (
    Admissibility,
    CoefficientLimit,
    IntArray,
    LimitPoint,
    ScoreSample,
    quote_limit,
    scan_thresholds,
    solve_proxy,
    stable_order,
)

__all__ = ["CUT_MODEL", "CutChoice", "best_single_cut", "observable_samples", "sm_orders"]

CUT_MODEL = "best single cut"
"""The name of the baseline's row in the tables."""


@dataclass(frozen=True, slots=True)
class CutChoice:
    """One side of the baseline: the region's observable and direction, and its limit.

    Attributes:
        observable: the observable, e.g. "ptl1".
        direction: ">=" (region x >= t) or "<=" (x <= t).
        point: the limit on that side in the region (its threshold in units of the score
            used: the observable, or minus it for "<="); None: not reached where quoted.
    """

    observable: str
    direction: str
    point: LimitPoint | None

    @property
    def cut(self) -> str | None:
        """The region as text, e.g. "ptl1 >= 312.5" (GeV or radians), None if not reached."""
        if self.point is None:
            return None
        value = self.point.threshold if self.direction == ">=" else -self.point.threshold
        return f"{self.observable} {self.direction} {value:.4g}"


def observable_samples(
    paths: Sequence[Path], features: Sequence[str]
) -> dict[str, tuple[ScoreSample, ...]]:
    """Per observable, ScoreSamples (score = the observable) of the datasets `paths` (SM, LIN,
    QUAD, in that order), read once each."""
    tables = []
    for path in paths:
        with reading(path, what="dataset (Parquet)"):
            tables.append(pq.read_table(path, columns=[*features, "yield"]))
    out: dict[str, tuple[ScoreSample, ...]] = {}
    for name in features:
        out[name] = tuple(
            ScoreSample(
                score=table.column(name).to_numpy().astype(np.float64),
                yield_=table.column("yield").to_numpy().astype(np.float64),
            )
            for table in tables
        )
    return out


def sm_orders(samples: Mapping[str, tuple[ScoreSample, ...]]) -> dict[str, IntArray]:
    """Per observable, the stable argsort of the SM sample of `samples` (`observable_samples`):
    what `best_single_cut` can be given for the samples it chooses the regions on, when several
    operators share that SM sample (a rank keeps them: one sort per observable, not one per
    operator; 8 bytes per SM event per observable)."""
    return {name: stable_order(group[0].score) for name, group in samples.items()}


def _negated(samples: tuple[ScoreSample, ...]) -> tuple[ScoreSample, ...]:
    return tuple(negated(s) for s in samples)


def best_single_cut(
    quoted: Mapping[str, tuple[ScoreSample, ...]],
    chosen_on: Mapping[str, tuple[ScoreSample, ...]] | None,
    *,
    significance: float,
    admissible: Admissibility,
    orders: Mapping[str, IntArray] | None = None,
) -> tuple[CutChoice | None, CutChoice | None]:
    """(c < 0 side, c > 0 side) of the best single-observable region (see the module
    docstring); None for a side no observable reaches where the regions are chosen.

    Args:
        quoted: per observable, (SM, LIN, QUAD) of the events that quote the limit (test).
        chosen_on: the same of the events the regions are chosen on (validation), or None:
            chosen on `quoted`.
        significance: z of the limits.
        admissible: the admissibility of a region.
        orders: `sm_orders` of the samples the regions are chosen on, when already known
            (the same limits, without sorting their SM events again).
    """
    best: list[tuple[float, str, str, CoefficientLimit] | None] = [None, None]
    for name, samples in quoted.items():
        choice = samples if chosen_on is None else chosen_on[name]
        sm, lin, quad = choice
        order = None if orders is None else orders[name]
        scans = dict(
            zip((">=", "<="), scan_both_directions(sm, lin, quad, sm_order=order), strict=True)
        )
        for direction, scan in scans.items():
            chosen = solve_proxy(scan, significance, admissible)
            for side, point in enumerate((chosen.minus, chosen.plus)):
                if point is None:
                    continue
                current = best[side]
                if current is None or abs(point.c) < current[0]:
                    best[side] = (abs(point.c), name, direction, chosen)
    out: list[CutChoice | None] = []
    for side, entry in enumerate(best):
        if entry is None:
            out.append(None)
            continue
        _, name, direction, chosen = entry
        transform = _identity if direction == ">=" else _negated
        limit = chosen
        if chosen_on is not None:
            limit = quote_limit(scan_thresholds(*transform(quoted[name])), chosen, admissible)
        point = limit.minus if side == 0 else limit.plus
        out.append(CutChoice(name, direction, point if _reached(point) else None))
    return out[0], out[1]


def _identity(samples: tuple[ScoreSample, ...]) -> tuple[ScoreSample, ...]:
    return samples


def _reached(point: LimitPoint | None) -> bool:
    return point is not None and math.isfinite(point.c)
