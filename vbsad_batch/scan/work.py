"""The work of the scan, cut into items that MPI ranks share: per model, score column and
operator the point estimate (limits, interval, curves) and chunks of bootstrap replicas, per
operator pair with a MIX sample a contour, per operator the best single cut; and the worker
that computes an item from the score files (and the datasets, for the cut).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vbsad_batch.config import ScanConfig
from vbsad_batch.runtime.progress import ProgressCallback, ProgressEvent
from vbsad_batch.scan.baseline import CUT_MODEL, best_single_cut, observable_samples, sm_orders
from vbsad_batch.scan.bootstrap import bootstrap_limits
from vbsad_batch.scan.contours import PairScan, contour_2d, pair_region, scan_pair, sigma_2d
from vbsad_batch.scan.likelihood import interval_95cl
from vbsad_batch.scan.scores import ModelScores, ScoreColumns, load_columns, score_samples
from vbsad_batch.scan.sm_column import SMColumn
from vbsad_batch.scan.statistics import (
    Admissibility,
    CoefficientLimit,
    IntArray,
    LimitPoint,
    ScoreSample,
    Statistic,
    ThresholdScan,
    quote_limit,
    sigma_curve,
    solve_asimov,
    solve_proxy,
)
from vbsad_batch.scan.tables import (
    SIGMA_CURVE_COLUMNS,
    ContourResult,
    CutResult,
    PointResult,
)

__all__ = [
    "CONTOUR_ANGLES",
    "CONTOUR_GRID_POINTS",
    "SIGMA_CURVE_POINTS",
    "SIGMA_CURVE_RANGE",
    "CutInputs",
    "WorkItem",
    "Worker",
    "mix_name",
    "mix_pairs",
    "table_rows",
    "work_items",
]

_STAGE = "scan"


SIGMA_CURVE_POINTS = 401
"""Points of the c grid of sigma_curves.parquet (odd: c = 0 is one of them)."""


SIGMA_CURVE_RANGE = 1.5
"""The c grids span +-SIGMA_CURVE_RANGE x the largest |c| of the limits (or contour points)."""


CONTOUR_ANGLES = 720
"""Rays (points) per contour in contours.parquet: every 0.5 degree, the axes included."""


CONTOUR_GRID_POINTS = 101
"""Points per axis of the grid of contour_grid.parquet (odd: the axes are on it)."""


_REGION_FIELDS = (
    "threshold",
    "sm_yield",
    "lin_yield",
    "quad_yield",
    "sm_mc_events",
    "sm_efficiency",
)


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One unit of distributed work.

    Attributes:
        model: model directory name.
        score: score column.
        operator: the EFT operator.
        replicas: None: the point estimate (scan, limits, interval, curve); (start, stop): the
            bootstrap replicas start..stop-1.
        partner: None, or the second operator b of a contour (then `operator` is a and
            `replicas` None).
    """

    model: str
    score: str
    operator: str
    replicas: tuple[int, int] | None = None
    partner: str | None = None


def _number(value: Any) -> float | None:
    """A finite float, or None (not reached, undefined)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _region(point: LimitPoint | None) -> dict[str, Any]:
    if point is None:
        return dict.fromkeys(_REGION_FIELDS)
    out = {name: _number(getattr(point, name)) for name in _REGION_FIELDS}
    out["sm_mc_events"] = int(point.sm_mc_events)
    return out


def _limit_dict(limit: CoefficientLimit) -> dict[str, Any]:
    """A limit of `vbsad_batch.scan.statistics` as the table's nested dict (plain floats, None)."""
    return {
        "c_minus": _number(limit.c_minus),
        "c_plus": _number(limit.c_plus),
        "minus": _region(limit.minus),
        "plus": _region(limit.plus),
    }


def _thinned(n: int, points: int, keep: Sequence[int]) -> np.ndarray:
    """Indices of `points` thresholds evenly spaced in rank, plus `keep` (0: all)."""
    if points == 0 or n <= points:
        return np.arange(n)
    even = np.round(np.linspace(0.0, n - 1.0, points)).astype(np.int64)
    extra = np.asarray([k for k in keep if 0 <= k < n], dtype=np.int64)
    return np.unique(np.concatenate([even, extra]))


class Worker:
    """Computes work items; keeps the files this rank has read."""

    def __init__(
        self,
        models: Mapping[str, ModelScores],
        settings: ScanConfig,
        cut_inputs: CutInputs | None,
        emit: ProgressCallback,
        n_items: int,
    ) -> None:
        self._models = models
        self._settings = settings
        self._cut_inputs = cut_inputs
        self._admissible = Admissibility(
            min_sm_mc_events=settings.min_sm_mc_events, min_sm_yield=settings.min_sm_yield
        )
        self._emit = emit
        self._n_items = n_items
        self._cache: dict[tuple[str, str, str], ScoreColumns] = {}
        self._sm_columns: dict[tuple[str, str, str], SMColumn] = {}
        # the baseline's SM sort orders per observable, by SM dataset (shared by the operators)
        self._cut_orders: dict[Path, dict[str, IntArray]] = {}
        # (model, score column) of SM columns built ahead of their items (`adopt`)
        self._ahead: set[tuple[str, str]] = set()

    def _columns(self, model: str, dataset: str, column: str) -> ScoreColumns:
        key = (model, dataset, column)
        if key not in self._cache:
            path, _ = self._models[model].files[dataset]
            self._cache[key] = load_columns(path, column)
        return self._cache[key]

    def _sm_column(self, item: WorkItem, sm: ScoreSample, split: str) -> SMColumn:
        """What depends on the SM events of the item's score column only (kept for the
        operators that follow)."""
        key = (item.model, f"sm_{split}", item.score)
        if key not in self._sm_columns:
            self._sm_columns[key] = SMColumn(sm)
        return self._sm_columns[key]

    def sm_columns_of(self, item: WorkItem) -> list[tuple[str, str, str]]:
        """The (model, SM dataset, score column) of the `SMColumn`s that `item` uses."""
        if item.model == CUT_MODEL or item.partner is not None or item.replicas is not None:
            return []
        splits = ["test"]
        if self._settings.region_from == "validation" or self._has_validation(item):
            splits.append("validation")
        return [(item.model, f"sm_{split}", item.score) for split in splits]

    def sm_sample(self, key: tuple[str, str, str]) -> ScoreSample:
        """The SM events of (model, SM dataset, score column), read once for the items."""
        columns = self._columns(*key)
        return ScoreSample(score=columns.score, yield_=columns.yield_)

    def adopt(self, columns: Mapping[tuple[str, str, str], SMColumn]) -> None:
        """Keep `SMColumn`s built ahead (with other ranks, `vbsad_batch.scan.sm_sharing`), and
        the score columns they were read from, until this rank's items of them have run."""
        self._sm_columns.update(columns)
        self._ahead.update((model, score) for model, _, score in columns)

    def release(self, keep: WorkItem | None) -> None:
        """Forget the score columns (and SM sides) that `keep` does not use: items come grouped
        by model, score column and operator, so a rank holds one group's data at a time (and
        those built ahead of their items, until then)."""
        if keep is None:
            self._ahead.clear()
        else:
            self._ahead.discard((keep.model, keep.score))
        if keep is None or keep.model == CUT_MODEL:
            for key in list(self._cache):
                if (key[0], key[2]) not in self._ahead:
                    del self._cache[key]
            for key in list(self._sm_columns):
                if (key[0], key[2]) not in self._ahead:
                    del self._sm_columns[key]
            return
        needed = {
            f"{kind}_{split}_{op}"
            for kind in ("lin", "quad")
            for split in ("test", "validation")
            for op in (keep.operator, keep.partner)
            if op is not None
        }
        needed |= {"sm_test", "sm_validation"}
        if keep.partner is not None:
            needed.add(mix_name(keep.operator, keep.partner))
        for key in list(self._cache):
            if (key[0], key[2]) in self._ahead:
                continue
            if key[0] != keep.model or key[2] != keep.score or key[1] not in needed:
                del self._cache[key]
        for key in list(self._sm_columns):
            if (key[0], key[2]) not in self._ahead and (key[0], key[2]) != (
                keep.model,
                keep.score,
            ):
                del self._sm_columns[key]

    def _samples(self, item: WorkItem, split: str) -> tuple[ScoreSample, ScoreSample, ScoreSample]:
        op = item.operator
        names = (f"sm_{split}", f"lin_{split}_{op}", f"quad_{split}_{op}")
        sm, lin, quad = score_samples([self._columns(item.model, d, item.score) for d in names])
        return sm, lin, quad

    def __call__(self, item: WorkItem) -> PointResult | ContourResult | CutResult | np.ndarray:
        start_time = time.monotonic()  # for progress reports only, never in the outputs
        settings = self._settings
        self.release(item)
        result: PointResult | ContourResult | CutResult | np.ndarray
        if item.model == CUT_MODEL:
            result = self._cut(item.operator)
            self._finished(item, start_time, 0)
            return result
        sm, lin, quad = self._samples(item, "test")
        choice = self._samples(item, "validation") if settings.region_from == "validation" else None
        if item.partner is not None:
            b = item.partner
            names = (f"lin_test_{b}", f"quad_test_{b}", mix_name(item.operator, b))
            lin_b, quad_b, mix = (
                ScoreSample(score=c.score, yield_=c.yield_)
                for c in (self._columns(item.model, d, item.score) for d in names)
            )
            result = self._contour(
                scan_pair(sm, lin_a=lin, quad_a=quad, lin_b=lin_b, quad_b=quad_b, mix=mix)
            )
        elif item.replicas is not None:
            start, stop = item.replicas
            result = np.asarray(
                bootstrap_limits(
                    sm,
                    lin,
                    quad,
                    replicas=settings.bootstrap_replicas,
                    seed=settings.seed,
                    significance=settings.significance,
                    admissible=self._admissible,
                    replica_indices=range(start, stop),
                    regions_from=choice,
                ),
                dtype=np.float64,
            ).reshape(stop - start, 2)
        else:
            result = self._point((sm, lin, quad), choice, item)
        self._finished(item, start_time, len(sm) + len(lin) + len(quad))
        return result

    def _finished(self, item: WorkItem, start_time: float, events: int) -> None:
        self._emit(
            ProgressEvent(
                _STAGE,
                "item_finished",
                item=_item_label(item),
                total_items=self._n_items,
                events=events,
                seconds=time.monotonic() - start_time,
            )
        )

    def _point(
        self,
        test: tuple[ScoreSample, ScoreSample, ScoreSample],
        choice: tuple[ScoreSample, ScoreSample, ScoreSample] | None,
        item: WorkItem,
    ) -> PointResult:
        settings = self._settings
        z, admissible = settings.significance, self._admissible
        test_sm = self._sm_column(item, test[0], "test")
        tested = test_sm.scan(test[1], test[2])
        scan = tested.scan
        on_test = solve_proxy(scan, z, admissible)
        other: CoefficientLimit | None = None
        if choice is None:
            signals = test_sm.asimov_signals(tested, z)
            proxy, asimov = on_test, solve_asimov(scan, z, admissible, signals=signals)
            if self._has_validation(item):
                validation = self._samples(item, "validation")
                chosen = self._sm_column(item, validation[0], "validation").scan(*validation[1:])
                other = quote_limit(scan, solve_proxy(chosen.scan, z, admissible), admissible)
        else:
            choice_sm = self._sm_column(item, choice[0], "validation")
            chosen = choice_sm.scan(choice[1], choice[2])
            signals = choice_sm.asimov_signals(chosen, z)
            proxy = quote_limit(scan, solve_proxy(chosen.scan, z, admissible), admissible)
            asimov = quote_limit(
                scan, solve_asimov(chosen.scan, z, admissible, signals=signals), admissible
            )
            other = on_test
        low, high = interval_95cl(*test, bins=settings.interval_bins)
        thresholds = np.asarray(scan.threshold, dtype=np.float64)
        keep = [
            point.threshold_index
            for limit in (proxy, asimov)
            for point in (limit.minus, limit.plus)
            if point is not None
        ]
        index = _thinned(thresholds.size, settings.curve_points, keep)
        curve = {
            "threshold": thresholds[index],
            "sm_yield": np.asarray(scan.sm_yield, dtype=np.float64)[index],
            "lin_yield": np.asarray(scan.lin_yield, dtype=np.float64)[index],
            "quad_yield": np.asarray(scan.quad_yield, dtype=np.float64)[index],
            "sm_mc_events": np.asarray(scan.sm_mc_events, dtype=np.int64)[index],
            "sm_efficiency": np.asarray(scan.sm_efficiency, dtype=np.float64)[index],
            "admissible": np.asarray(scan.admissible(admissible), dtype=bool)[index],
        }
        return PointResult(
            proxy=_limit_dict(proxy),
            asimov=_limit_dict(asimov),
            interval=(_number(low), _number(high)),
            curve=curve,
            sigma_curves=_sigma_curves(scan, proxy, asimov),
            other=None
            if other is None
            else {
                "c_minus": _number(other.c_minus),
                "c_plus": _number(other.c_plus),
            },
        )

    def _contour(self, pair: PairScan) -> ContourResult:
        z = self._settings.significance
        index = pair_region(pair, z, self._admissible)
        empty = np.empty(0, dtype=np.float64)
        if index is None:
            return ContourResult({}, {"angle": empty, "c_a": empty, "c_b": empty}, {})
        region = {
            "threshold": float(pair.threshold[index]),
            "sm_yield": float(pair.sm_yield[index]),
            "lin_a": float(pair.lin_a[index]),
            "quad_a": float(pair.quad_a[index]),
            "lin_b": float(pair.lin_b[index]),
            "quad_b": float(pair.quad_b[index]),
            "mix_yield": float(pair.mix_yield[index]),
            "sm_mc_events": int(pair.sm_mc_events[index]),
        }
        angle = 2.0 * np.pi * np.arange(CONTOUR_ANGLES) / CONTOUR_ANGLES
        c_a, c_b = contour_2d(pair, index, z, angle)
        grid = {"c_a": empty, "c_b": empty, "sigma": empty}
        reached = np.isfinite(c_a)
        if bool(np.any(reached)):
            axes = []
            for values in (c_a, c_b):
                extent = SIGMA_CURVE_RANGE * float(np.max(np.abs(values[reached])))
                if extent == 0.0:  # every point on the other axis
                    extent = SIGMA_CURVE_RANGE * float(np.max(np.abs(np.hypot(c_a, c_b)[reached])))
                axes.append(np.linspace(-extent, extent, CONTOUR_GRID_POINTS))
            grid_a, grid_b = np.meshgrid(axes[0], axes[1], indexing="ij")
            grid = {
                "c_a": grid_a.ravel(),
                "c_b": grid_b.ravel(),
                "sigma": sigma_2d(pair, index, grid_a, grid_b).ravel(),
            }
        return ContourResult(region, {"angle": angle, "c_a": c_a, "c_b": c_b}, grid)

    def _has_validation(self, item: WorkItem) -> bool:
        files = self._models[item.model].files
        op = item.operator
        return all(
            n in files for n in ("sm_validation", f"lin_validation_{op}", f"quad_validation_{op}")
        )

    def _cut(self, op: str) -> CutResult:
        assert self._cut_inputs is not None  # no cut items without them
        inputs, settings = self._cut_inputs, self._settings
        quoted = observable_samples(inputs.paths("test", op), inputs.features)
        chosen_on, split = None, "test"
        if settings.region_from == "validation":
            split = "validation"
            chosen_on = observable_samples(inputs.paths(split, op), inputs.features)
        sm_path = inputs.paths(split, op)[0]  # the same SM dataset for every operator
        if sm_path not in self._cut_orders:
            self._cut_orders[sm_path] = sm_orders(quoted if chosen_on is None else chosen_on)
        minus, plus = best_single_cut(
            quoted,
            chosen_on,
            significance=settings.significance,
            admissible=self._admissible,
            orders=self._cut_orders[sm_path],
        )
        sides = {}
        for name, choice in (("minus", minus), ("plus", plus)):
            point = None if choice is None else choice.point
            sides[name] = {**_region(point), "cut": None if choice is None else choice.cut}
        return CutResult(
            proxy={
                "c_minus": _number(None if minus is None or minus.point is None else minus.point.c),
                "c_plus": _number(None if plus is None or plus.point is None else plus.point.c),
                **sides,
            }
        )


@dataclass(frozen=True, slots=True)
class CutInputs:
    """The datasets the cut baseline reads (checked current): name -> file; the features."""

    files: dict[str, Path]
    features: tuple[str, ...]
    checksums: dict[str, str]

    def paths(self, split: str, op: str) -> list[Path]:
        return [self.files[n] for n in (f"sm_{split}", f"lin_{split}_{op}", f"quad_{split}_{op}")]


def mix_name(a: str, b: str) -> str:
    """The dataset of the MIX sample of operators a and b (names sorted, as `vbsad datasets`)."""
    return "mix_test_" + "_".join(sorted((a, b)))


def mix_pairs(model: ModelScores, operators: Sequence[str]) -> list[tuple[str, str]]:
    """The operator pairs (a, b), in column order, with MIX scores for `model`."""
    return [
        (a, b)
        for i, a in enumerate(operators)
        for b in operators[i + 1 :]
        if mix_name(a, b) in model.files
    ]


def _sigma_curves(
    scan: ThresholdScan, proxy: CoefficientLimit, asimov: CoefficientLimit
) -> dict[str, np.ndarray]:
    """sigma(c) at the region of every reached limit (see the module docstring)."""
    limits: tuple[tuple[Statistic, CoefficientLimit], ...] = (("proxy", proxy), ("asimov", asimov))
    reached = [
        (statistic, side, point)
        for statistic, limit in limits
        for side, point in (("minus", limit.minus), ("plus", limit.plus))
        if point is not None
    ]
    parts: dict[str, list[np.ndarray]] = {n: [] for n in SIGMA_CURVE_COLUMNS[3:]}
    if reached:
        extent = SIGMA_CURVE_RANGE * max(abs(point.c) for _, _, point in reached)
        grid = np.linspace(-extent, extent, SIGMA_CURVE_POINTS)
        grid[SIGMA_CURVE_POINTS // 2] = 0.0
        for statistic, side, point in reached:
            sigma = sigma_curve(scan, point.threshold_index, grid, statistic=statistic)
            parts["statistic"].append(np.full(grid.size, statistic, dtype=object))
            parts["side"].append(np.full(grid.size, side, dtype=object))
            parts["threshold"].append(np.full(grid.size, point.threshold))
            parts["c"].append(grid)
            parts["sigma"].append(np.asarray(sigma, dtype=np.float64))
    return {
        name: np.concatenate(values) if values else np.empty(0, dtype=object)
        for name, values in parts.items()
    }


def _item_label(item: WorkItem) -> str:
    if item.partner is not None:
        return f"{item.model}:{item.score}:{item.operator},{item.partner} contour"
    what = (
        "limits" if item.replicas is None else f"bootstrap {item.replicas[0]}..{item.replicas[1]}"
    )
    return f"{item.model}:{item.score}:{item.operator} {what}"


def table_rows(models: Sequence[ModelScores], settings: ScanConfig) -> list[tuple[str, str, str]]:
    """(model, kind, score column) per table row, in row order."""
    return [(m.name, m.kind, col) for m in models for col in settings.score_columns(m.kind)]


def work_items(
    rows: Sequence[tuple[str, str, str]],
    operators: Sequence[str],
    settings: ScanConfig,
    pairs: Mapping[str, Sequence[tuple[str, str]]],
    *,
    cuts: bool,
) -> list[WorkItem]:
    items: list[WorkItem] = []
    if cuts:
        items += [WorkItem(CUT_MODEL, "", op) for op in operators]
    replicas, chunk = settings.bootstrap_replicas, settings.bootstrap_chunk
    for model, _, column in rows:
        for op in operators:
            items.append(WorkItem(model, column, op))
            items.extend(
                WorkItem(model, column, op, (start, min(start + chunk, replicas)))
                for start in range(0, replicas, chunk)
            )
        items.extend(WorkItem(model, column, a, None, b) for a, b in pairs.get(model, ()))
    return items
