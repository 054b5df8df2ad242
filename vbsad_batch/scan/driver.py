"""The sensitivity table of every scored model: load scores, scan, distribute, gather, write.

`run_scan(config)` reads the per-event scores of `vbsad score`
(`<output_dir>/scores/<model>/{sm_test,lin_test_<op>,quad_test_<op>}.parquet`, columns `yield`
in events at the config's luminosity and the scores `mse`, `kld` and, for a VAE+NN, `score`),
and for every model, score column (`[scan] vae_scores`, `vae_nn_scores`: by default the MSE of
a VAE, as in the reference paper, and the classifier output of a VAE+NN) and operator computes
with `vbsad_batch.scan.statistics`:

- the proxy limits: the smallest c- < 0 < c+ at which some admissible region score >= t has
  sigma = |c L + c^2 Q| / sqrt(S) = z, with the region's threshold, S, L, Q (events) and SM
  efficiency;
- the same with the Asimov discovery significance Z;
- the expected 95% CL interval on c from the binned likelihood of the score distribution;
- the bootstrap uncertainty of the proxy limits (standard deviation over replicas of the
  Monte Carlo events resampled with their yields).

The work items (operator x model x score column x {the point estimate, chunks of bootstrap
replicas}) are split over the MPI ranks with `vbsad_batch.runtime.mpi.map_work`; rank 0 gathers
the results in item order and writes, atomically, into `<output_dir>/scan/`:

- `table.json`, `table.csv`, `table.md`: the reference paper's Table 1 layout, models as rows
  and operators as columns (see `TABLE_FIELDS` for the quantities per operator);
- `curves.parquet`: per model, score column and operator the scan over thresholds (threshold,
  S, L, Q, SM Monte Carlo events, SM efficiency, admissible), thinned to `[scan] curve_points`
  rows per curve (evenly spaced in threshold rank, plus the thresholds of the limits);
- `sigma_curves.parquet` (`SIGMA_CURVE_COLUMNS`): per model, score column and operator the
  sensitivity curves sigma(c) in the fixed region of each limit: for each statistic ("proxy":
  |c L + c^2 Q| / sqrt(S); "asimov": the two-sided Asimov Z) and side ("minus", "plus") whose
  limit is reached, that statistic at the threshold of that limit, on one grid of c per
  operator: `SIGMA_CURVE_POINTS` points evenly spaced on [-C, C], symmetric around 0 (which it
  contains), C = `SIGMA_CURVE_RANGE` x the largest |c| of the reached limits (both statistics,
  both sides). An operator with no limit reached has no rows;
- `contours.parquet` (`CONTOUR_COLUMNS`): for every pair of operators a, b (in the table's
  column order) with a MIX sample (`mix_test_<a>_<b>` scores, operators sorted in the name),
  per model and score column, the proxy contour sigma(c_a, c_b) = |c_a L_a + c_b L_b +
  c_a^2 Q_a + c_b^2 Q_b + c_a c_b M| / sqrt(S) = z in one region: the admissible threshold
  where the pair's 1D proxy limits are jointly best (`vbsad_batch.scan.contours.pair_region`: the
  smallest worst ratio |c_side(t)| / |c_side limit| over the four sides). One row per angle
  (`CONTOUR_ANGLES` angles 2 pi k / n, k = 0..n-1): the exact first crossing of sigma = z
  along the ray from (0, 0) (`vbsad_batch.scan.contours.contour_2d`), c_a and c_b null where the ray
  never reaches it; the region's threshold and yields repeated on every row. A pair with no
  such region has no rows;
- `contour_grid.parquet` (`CONTOUR_GRID_COLUMNS`): in the same regions, sigma(c_a, c_b) on a
  `CONTOUR_GRID_POINTS` x `CONTOUR_GRID_POINTS` grid, each axis evenly spaced on [-C, C] with C =
  `SIGMA_CURVE_RANGE` x the largest |c| of that axis over the contour's points (no rows when
  the contour has none), rows c_a-major;
- `manifest.json`, written last: the score files' SHA-256, the settings, the tool version.

Every number comes from deterministic functions of the same inputs, the bootstrap is seeded per
replica, and nothing depends on timing, the host or the number of ranks: the outputs are
byte-identical for 1 and N ranks. A re-run with the same inputs, settings and tool version
whose outputs are all still there does nothing.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vbsad_batch.config import AnalysisConfig, ScanConfig
from vbsad_batch.models.scoring import current_scores
from vbsad_batch.runtime.mpi import Communicator, map_work, run_on_root, world
from vbsad_batch.runtime.progress import ProgressCallback, ProgressEvent
from vbsad_batch.runtime.provenance import (
    tool_version,
)
from vbsad_batch.runtime.stage import StageOutputs, StageResult, StageRun, StageUnit, command
from vbsad_batch.scan.contours import PairScan, contour_2d, pair_region, scan_pair, sigma_2d
from vbsad_batch.scan.likelihood import interval_95cl
from vbsad_batch.scan.scores import (
    ModelScores,
    ScoreColumns,
    discover_models,
    load_columns,
    operator_order,
    score_samples,
)
from vbsad_batch.scan.statistics import (
    Admissibility,
    CoefficientLimit,
    LimitPoint,
    ScoreSample,
    Statistic,
    ThresholdScan,
    bootstrap_limits,
    scan_thresholds,
    sigma_curve,
    solve_asimov,
    solve_proxy,
)
from vbsad_batch.scan.tables import (
    OUTPUT_NAMES,
    SIGMA_CURVE_COLUMNS,
    TABLE_FIELDS,
    ContourResult,
    PointResult,
    contour_tables,
    csv_text,
    curves_table,
    json_ready,
    markdown_text,
    sigma_curves_table,
)

__all__ = [
    "CONTOUR_ANGLES",
    "CONTOUR_GRID_POINTS",
    "MANIFEST_KIND",
    "SCAN_DIR_NAME",
    "SCAN_FORMAT_VERSION",
    "SIGMA_CURVE_POINTS",
    "SIGMA_CURVE_RANGE",
    "ScanResult",
    "WorkItem",
    "current_scan",
    "run_scan",
    "scan_directory",
    "scan_unit",
]

logger = logging.getLogger(__name__)

SCAN_DIR_NAME = "scan"
SCAN_FORMAT_VERSION = 2
"""Version of the scan outputs' layout; bump when it changes."""

MANIFEST_KIND = "vbsad_batch.scan"


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


_STAGE = "scan"


def scan_directory(config: AnalysisConfig) -> Path:
    """Where `run_scan` writes: <output_dir>/scan."""
    return config.output_dir / SCAN_DIR_NAME


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


class _Worker:
    """Computes work items; keeps the score files this rank has read."""

    def __init__(
        self,
        models: Mapping[str, ModelScores],
        settings: ScanConfig,
        emit: ProgressCallback,
        n_items: int,
    ) -> None:
        self._models = models
        self._settings = settings
        self._admissible = Admissibility(
            min_sm_mc_events=settings.min_sm_mc_events, min_sm_yield=settings.min_sm_yield
        )
        self._emit = emit
        self._n_items = n_items
        self._cache: dict[tuple[str, str, str], ScoreColumns] = {}

    def _columns(self, model: str, dataset: str, column: str) -> ScoreColumns:
        key = (model, dataset, column)
        if key not in self._cache:
            path, _ = self._models[model].files[dataset]
            self._cache[key] = load_columns(path, column)
        return self._cache[key]

    def __call__(self, item: WorkItem) -> PointResult | ContourResult | np.ndarray:
        start_time = time.monotonic()  # for progress reports only, never in the outputs
        datasets = ("sm_test", f"lin_test_{item.operator}", f"quad_test_{item.operator}")
        sm, lin, quad = score_samples([self._columns(item.model, d, item.score) for d in datasets])
        settings = self._settings
        result: PointResult | ContourResult | np.ndarray
        if item.partner is not None:
            b = item.partner
            names = (f"lin_test_{b}", f"quad_test_{b}", _mix_name(item.operator, b))
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
                ),
                dtype=np.float64,
            ).reshape(stop - start, 2)
        else:
            result = self._point(sm, lin, quad)
        self._emit(
            ProgressEvent(
                _STAGE,
                "item_finished",
                item=_item_label(item),
                total_items=self._n_items,
                events=len(sm) + len(lin) + len(quad),
                seconds=time.monotonic() - start_time,
            )
        )
        return result

    def _point(self, sm: ScoreSample, lin: ScoreSample, quad: ScoreSample) -> PointResult:
        settings = self._settings
        scan = scan_thresholds(sm, lin, quad)
        proxy = solve_proxy(scan, settings.significance, self._admissible)
        asimov = solve_asimov(scan, settings.significance, self._admissible)
        low, high = interval_95cl(sm, lin, quad, bins=settings.interval_bins)
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
            "admissible": np.asarray(scan.admissible(self._admissible), dtype=bool)[index],
        }
        return PointResult(
            proxy=_limit_dict(proxy),
            asimov=_limit_dict(asimov),
            interval=(_number(low), _number(high)),
            curve=curve,
            sigma_curves=_sigma_curves(scan, proxy, asimov),
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


def _mix_name(a: str, b: str) -> str:
    """The dataset of the MIX sample of operators a and b (names sorted, as `vbsad datasets`)."""
    return "mix_test_" + "_".join(sorted((a, b)))


def _mix_pairs(model: ModelScores, operators: Sequence[str]) -> list[tuple[str, str]]:
    """The operator pairs (a, b), in column order, with MIX scores for `model`."""
    return [
        (a, b)
        for i, a in enumerate(operators)
        for b in operators[i + 1 :]
        if _mix_name(a, b) in model.files
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


def _rows(models: Sequence[ModelScores], settings: ScanConfig) -> list[tuple[str, str, str]]:
    """(model, kind, score column) per table row, in row order."""
    return [(m.name, m.kind, col) for m in models for col in settings.score_columns(m.kind)]


def _work_items(
    rows: Sequence[tuple[str, str, str]],
    operators: Sequence[str],
    settings: ScanConfig,
    pairs: Mapping[str, Sequence[tuple[str, str]]],
) -> list[WorkItem]:
    items: list[WorkItem] = []
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


def _bootstrap_summary(limits: np.ndarray) -> dict[str, float | None]:
    """Standard deviation (ddof 1) of c- and c+ over the replicas that reached the limit."""
    out: dict[str, float | None] = {}
    for column, side in enumerate(("minus", "plus")):
        values = limits[:, column] if limits.size else np.empty(0)
        reached = values[np.isfinite(values)]
        out[f"c_{side}_error"] = float(np.std(reached, ddof=1)) if reached.size >= 2 else None
        out[f"bootstrap_reached_{side}"] = reached.size / values.size if values.size else None
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanResult(StageResult):
    """What `run_scan` did, on rank 0 (see `StageResult`).

    Attributes:
        table: the content of table.json.
        items: number of work items computed (0 when up to date).
        ranks: number of MPI ranks of the run.
    """

    table: dict[str, Any]
    items: int
    ranks: int


def scan_unit(config: AnalysisConfig) -> StageUnit:
    """The scan of `config` as a unit of the stage contract."""
    return StageUnit(
        stage=_STAGE,
        name="scan",
        kind=MANIFEST_KIND,
        directory=scan_directory(config),
        remake=command("scan", config.path),
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    models: tuple[ModelScores, ...]
    key: dict[str, Any]
    up_to_date: bool
    reason: str
    previous: dict[str, Any] | None


def _plan(config: AnalysisConfig, models: Sequence[str] | None, force: bool) -> _Plan:
    """Find the models, check their scores (complete, current, unmodified: the stage
    contract), decide whether to run (rank 0)."""
    found = discover_models(config, models)
    operators = operator_order(config)
    inputs: list[dict[str, Any]] = []
    for model in found:
        records = {
            str(entry["name"]): str(entry["sha256"])
            for entry in current_scores(config, model.name)["outputs"]
        }
        names = ["sm_test"] + [f"{c}_test_{op}" for op in operators for c in ("lin", "quad")]
        names += [_mix_name(a, b) for a, b in _mix_pairs(model, operators)]
        files = [
            {"name": name, "path": model.files[name][0].name, "sha256": records[name]}
            for name in names
        ]
        inputs.append({"model": model.name, "kind": model.kind, "files": files})
    key = {
        "format_version": SCAN_FORMAT_VERSION,
        "tool_version": tool_version(),
        "luminosity_fb": config.luminosity_fb,
        "operators": list(operators),
        "settings": config.scan.output_settings(),
        "inputs": inputs,
    }
    fresh = scan_unit(config).check(key)
    reason = "forced" if force else fresh.reason
    return _Plan(tuple(found), key, fresh.up_to_date and not force, reason, fresh.manifest)


def current_scan(config: AnalysisConfig) -> dict[str, Any]:
    """The manifest of the scan of `config`, checked for use by a later stage (the report):
    complete, made from the scores that are current now with the config's current settings,
    unmodified since.

    Raises:
        StaleInputError: naming the file at fault and the command that remakes it.
    """
    unit = scan_unit(config)
    manifest = unit.require_current()
    models = [str(entry["model"]) for entry in manifest["key"]["inputs"]]
    return unit.require_current(_plan(config, models, force=False).key)


def _document(
    config: AnalysisConfig,
    rows: Sequence[tuple[str, str, str]],
    operators: Sequence[str],
    points: Mapping[tuple[str, str, str], PointResult],
    boots: Mapping[tuple[str, str, str], np.ndarray],
) -> dict[str, Any]:
    s = config.scan
    table_rows = []
    for model, kind, column in rows:
        per_op: dict[str, Any] = {}
        for op in operators:
            point = points[(model, column, op)]
            proxy = dict(point.proxy)
            proxy.update(_bootstrap_summary(boots[(model, column, op)]))
            per_op[op] = {
                "proxy": proxy,
                "asimov": point.asimov,
                "interval_95cl": {"low": point.interval[0], "high": point.interval[1]},
            }
        table_rows.append({"model": model, "kind": kind, "score": column, "operators": per_op})
    return {
        "format_version": SCAN_FORMAT_VERSION,
        "luminosity_fb": config.luminosity_fb,
        "significance": s.significance,
        "admissibility": {
            "min_sm_mc_events": s.min_sm_mc_events,
            "min_sm_yield": s.min_sm_yield,
        },
        "bootstrap": {"replicas": s.bootstrap_replicas, "seed": s.seed},
        "interval_95cl": {"bins": s.interval_bins},
        "fields": list(TABLE_FIELDS),
        "operators": list(operators),
        "rows": table_rows,
    }


def _write_outputs(
    out: StageOutputs, document: dict[str, Any], parquet: Mapping[str, pa.Table]
) -> None:
    clean = json_ready(document)
    texts = {
        "table.json": json.dumps(clean, indent=2, allow_nan=False) + "\n",
        "table.csv": csv_text(clean),
        "table.md": markdown_text(clean),
    }
    for name in OUTPUT_NAMES:
        if name in texts:
            out.write_text(name, texts[name])
        else:
            with out.path(name) as tmp:
                pq.write_table(parquet[name], tmp, compression="zstd")


def run_scan(
    config: AnalysisConfig,
    *,
    models: Sequence[str] | None = None,
    comm: Communicator | None = None,
    progress: ProgressCallback | None = None,
    force: bool = False,
) -> ScanResult | None:
    """Scan every scored model and operator and write the tables (see the module docstring).

    A collective call: under MPI every rank calls it with the same arguments.

    Args:
        config: the analysis configuration (its `[scan]` section holds the settings).
        models: model directory names under <output_dir>/scores/ (default: every scored model).
        comm: the communicator (default `vbsad_batch.runtime.mpi.world()`).
        progress: called on rank 0 with `ProgressEvent`s (stage "scan"; rank 0's items only).
        force: recompute even when the outputs are up to date.

    Returns:
        on rank 0 what was done; None on the other ranks.

    Raises:
        FileNotFoundError: no scores (on rank 0; `RankFailure` on the others).
        ValueError: a score file was modified after `vbsad score`, lacks a column or holds a
            non-finite value.
        RankFailure: a work item failed on some rank (on every rank).
    """
    started = time.monotonic()
    comm = world() if comm is None else comm
    rank = comm.rank
    emit = progress if progress is not None and rank == 0 else (lambda event: None)
    unit = scan_unit(config)
    plan = run_on_root(lambda: _plan(config, models, force), comm=comm)
    if plan.up_to_date:
        if rank != 0 or plan.previous is None:
            return None
        emit(ProgressEvent(_STAGE, "run_finished", message="up to date"))
        document = json.loads((unit.directory / "table.json").read_text(encoding="utf-8"))
        ran: StageRun[None] = StageRun(
            unit, "skipped", "up to date", plan.previous, _outputs(unit), started, None
        )
        return ScanResult(**ran.fields(), table=document, items=0, ranks=comm.size)

    operators = operator_order(config)
    rows = _rows(plan.models, config.scan)
    pairs = {m.name: _mix_pairs(m, operators) for m in plan.models}
    items = _work_items(rows, operators, config.scan, pairs)
    mine = len(range(rank, len(items), comm.size))
    emit(ProgressEvent(_STAGE, "run_started", total_items=mine))
    worker = _Worker({m.name: m for m in plan.models}, config.scan, emit, mine)
    results = map_work(items, worker, comm=comm)
    if results is None:
        return None

    points: dict[tuple[str, str, str], PointResult] = {}
    chunks: dict[tuple[str, str, str], list[np.ndarray]] = {}
    contours: dict[tuple[str, str, str, str], ContourResult] = {}
    for item, result in zip(items, results, strict=True):
        key = (item.model, item.score, item.operator)
        if isinstance(result, ContourResult):
            contours[(*key, str(item.partner))] = result
        elif isinstance(result, PointResult):
            points[key] = result
        else:
            chunks.setdefault(key, []).append(result)
    boots = {
        key: np.concatenate(chunks[key]) if key in chunks else np.empty((0, 2)) for key in points
    }
    document = _document(config, rows, operators, points, boots)
    contour_table, grid_table = contour_tables(contours)
    parquet = {
        "curves.parquet": curves_table(rows, operators, points),
        "sigma_curves.parquet": sigma_curves_table(rows, operators, points),
        "contours.parquet": contour_table,
        "contour_grid.parquet": grid_table,
    }
    # No host, time or rank count in the manifest: equal for any run of the same inputs.
    provenance = {
        "tool": "vbsad_batch",
        "tool_version": tool_version(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    with unit.writing(plan.key, previous=plan.previous, provenance=provenance) as out:
        _write_outputs(out, document, parquet)
    summary = f"{len(items)} work item(s)"
    emit(ProgressEvent(_STAGE, "run_finished", message=summary))
    manifest = unit.manifest() or {}
    ran = StageRun[None](
        unit, "written", plan.reason, manifest, _outputs(unit), started, None, summary
    )
    clean: dict[str, Any] = json_ready(document)
    return ScanResult(**ran.fields(), table=clean, items=len(items), ranks=comm.size)


def _outputs(unit: StageUnit) -> tuple[Path, ...]:
    return tuple(unit.directory / name for name in OUTPUT_NAMES)
