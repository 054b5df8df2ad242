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
replicas}) are split over the MPI ranks with `vbsad_batch.runtime.mpi.map_work`, each rank
computing one contiguous block of them (`vbsad_batch.scan.schedule`: it reads only the score
files of its own items; the ranks whose blocks share a score column sort its SM events
together first, `vbsad_batch.scan.sm_sharing`); rank 0 gathers the results in item order and
writes, atomically, into `<output_dir>/scan/`:

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
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vbsad_batch.config import AnalysisConfig
from vbsad_batch.errors import MissingInputError
from vbsad_batch.models.scoring import current_scores
from vbsad_batch.runtime.mpi import Communicator, run_on_root, world
from vbsad_batch.runtime.progress import ProgressCallback, ProgressEvent
from vbsad_batch.runtime.provenance import (
    tool_version,
)
from vbsad_batch.runtime.stage import StageOutputs, StageResult, StageRun, StageUnit, command
from vbsad_batch.scan.document import SCAN_FORMAT_VERSION, build_document
from vbsad_batch.scan.schedule import blocks, map_in_blocks, shared_sorts
from vbsad_batch.scan.scores import (
    ModelScores,
    discover_models,
    operator_order,
)
from vbsad_batch.scan.sm_sharing import build_shared_columns
from vbsad_batch.scan.tables import (
    OUTPUT_NAMES,
    ContourResult,
    CutResult,
    PointResult,
    contour_tables,
    csv_text,
    curves_table,
    json_ready,
    markdown_text,
    sigma_curves_table,
)
from vbsad_batch.scan.work import (
    CutInputs,
    Worker,
    mix_name,
    mix_pairs,
    table_rows,
    work_items,
)
from vbsad_batch.weighting.datasets import current_datasets

__all__ = [
    "MANIFEST_KIND",
    "SCAN_DIR_NAME",
    "SCAN_FORMAT_VERSION",
    "ScanResult",
    "current_scan",
    "run_scan",
    "scan_directory",
    "scan_unit",
]


logger = logging.getLogger(__name__)


SCAN_DIR_NAME = "scan"


MANIFEST_KIND = "vbsad_batch.scan"


_STAGE = "scan"


def scan_directory(config: AnalysisConfig) -> Path:
    """Where `run_scan` writes: <output_dir>/scan."""
    return config.output_dir / SCAN_DIR_NAME


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
    cut_inputs: CutInputs | None


def _scored(names: Sequence[str], operators: Sequence[str], split: str) -> list[str]:
    """The score files of one split (those of the validation split may be absent)."""
    wanted = [f"sm_{split}"] + [f"{c}_{split}_{op}" for op in operators for c in ("lin", "quad")]
    return [name for name in wanted if name in names]


def _cut_inputs(config: AnalysisConfig, operators: Sequence[str]) -> CutInputs | None:
    """The datasets of the best single cut, checked current; None without any datasets (scores
    made elsewhere): the table then says there is no baseline."""
    try:
        datasets = current_datasets(config)
    except MissingInputError:
        return None
    splits = ["test", "validation"] if config.scan.region_from == "validation" else ["test"]
    names = [
        name
        for split in splits
        for name in [f"sm_{split}"]
        + [f"{c}_{split}_{op}" for op in operators for c in ("lin", "quad")]
    ]
    missing = [name for name in names if name not in datasets]
    if missing:
        raise ValueError(
            f"{config.output_dir}: no dataset(s) {', '.join(missing)} for the best single cut; "
            f"run `{command('datasets', config.path)}` again"
        )
    return CutInputs(
        files={name: datasets[name].path for name in names},
        features=tuple(config.features),
        checksums={name: datasets[name].sha256 for name in names},
    )


def _plan(config: AnalysisConfig, models: Sequence[str] | None, force: bool) -> _Plan:
    """Find the models, check their scores and the datasets of the cut baseline (complete,
    current, unmodified: the stage contract), decide whether to run (rank 0)."""
    found = discover_models(config, models)
    operators = operator_order(config)
    inputs: list[dict[str, Any]] = []
    for model in found:
        records = {
            str(entry["name"]): str(entry["sha256"])
            for entry in current_scores(config, model.name)["outputs"]
        }
        names = _scored(list(model.files), operators, "test")
        names += _scored(list(model.files), operators, "validation")
        names += [mix_name(a, b) for a, b in mix_pairs(model, operators)]
        files = [
            {"name": name, "path": model.files[name][0].name, "sha256": records[name]}
            for name in names
        ]
        inputs.append({"model": model.name, "kind": model.kind, "files": files})
    cut_inputs = _cut_inputs(config, operators)
    key = {
        "format_version": SCAN_FORMAT_VERSION,
        "tool_version": tool_version(),
        "luminosity_fb": config.luminosity_fb,
        "operators": list(operators),
        "settings": config.scan.output_settings(),
        "inputs": inputs,
        "best_cut": None
        if cut_inputs is None
        else {"features": list(cut_inputs.features), "datasets": cut_inputs.checksums},
    }
    fresh = scan_unit(config).check(key)
    reason = "forced" if force else fresh.reason
    return _Plan(
        tuple(found), key, fresh.up_to_date and not force, reason, fresh.manifest, cut_inputs
    )


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
    rows = table_rows(plan.models, config.scan)
    pairs = {m.name: mix_pairs(m, operators) for m in plan.models}
    items = work_items(rows, operators, config.scan, pairs, cuts=plan.cut_inputs is not None)
    # each rank computes one contiguous block of items (by model, score column, operator):
    # it reads only the score files of its block and holds one operator's data at a time
    mine = len(blocks(items, comm.size)[rank])
    emit(ProgressEvent(_STAGE, "run_started", total_items=mine))
    by_name = {m.name: m for m in plan.models}
    worker = Worker(by_name, config.scan, plan.cut_inputs, emit, mine)
    # the SM sort of a score column that several ranks need is split between them
    shared = shared_sorts(items, comm.size, worker.sm_columns_of)
    worker.adopt(build_shared_columns(shared, comm, worker.sm_sample))
    results = map_in_blocks(items, worker, comm=comm)
    worker.release(None)
    if results is None:
        return None

    points: dict[tuple[str, str, str], PointResult] = {}
    chunks: dict[tuple[str, str, str], list[np.ndarray]] = {}
    contours: dict[tuple[str, str, str, str], ContourResult] = {}
    cuts: dict[str, CutResult] = {}
    for item, result in zip(items, results, strict=True):
        key = (item.model, item.score, item.operator)
        if isinstance(result, CutResult):
            cuts[item.operator] = result
        elif isinstance(result, ContourResult):
            contours[(*key, str(item.partner))] = result
        elif isinstance(result, PointResult):
            points[key] = result
        else:
            chunks.setdefault(key, []).append(result)
    boots = {
        key: np.concatenate(chunks[key]) if key in chunks else np.empty((0, 2)) for key in points
    }
    document = build_document(
        config,
        rows=rows,
        operators=operators,
        points=points,
        boots=boots,
        cuts=cuts if plan.cut_inputs is not None else None,
    )
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
