"""The datasets the models train and are evaluated on, as Parquet files with a manifest.

`build_datasets(config)` writes into `<config.output_dir>/datasets/`:

- `sm_train.parquet`, `sm_validation.parquet`, `sm_test.parquet`: SM events of each split;
- `mixed_train_<op>.parquet` for `config.training_operator`: SM events of the train split
  (`label` 0) and EFT events of the train split (`label` 1): the rows of the operator's LIN
  component with yield c * LIN and the rows of its QUAD component with yield c^2 * QUAD, at
  c = 1 unless `training_coefficient` says otherwise. For a reweighted sample LIN and QUAD rows
  are the same events twice; since a weighted loss is linear in the weights, two rows with equal
  features and label are equivalent to one row with the summed weight c LIN + c^2 QUAD. Column
  `component` says which part a row is ("sm", "lin", "quad");
- per operator `lin_test_<op>.parquet` and `quad_test_<op>.parquet` (and `mix_test_<op1>_<op2>`
  for MIX samples): the test split of that component;
- `manifest.json`, written last: inputs (path, size, SHA-256), the config, the options, the
  tool version, and per dataset its file, rows, SHA-256 and sum of yields.

Every dataset holds the events that pass `config.selection`, with the columns: the config's
`features` (GeV, radians; not log-transformed: that is the model's preprocessing), `w` (the
component's event weight, pb for MadGraph), `yield`, `event` (index in the input file) and
`input_sha256`. The `yield` of an event is its expected count at `config.luminosity_fb`
fb^-1 divided by the fraction of its split (e.g. 0.2 for test), so that the sum of a dataset's
yields estimates the component's whole expected yield after the selection. LIN (and MIX)
weights and yields can be negative; they are kept.

Splits follow `vbsad_batch.weighting.split_labels` (a hash of input SHA-256, event index and
`config.split.seed`), so they are the same on every machine and with any number of workers.
Files are written atomically (temporary file, then rename). A re-run whose inputs (by SHA-256),
config, options and tool version equal the manifest's, and whose files are all still there
with their recorded sizes, does nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

from vbsad_batch.config import AnalysisConfig, TrainingConfig, selection_expr
from vbsad_batch.ingest.normalisation import normalisation_summary
from vbsad_batch.runtime.atomic_write import atomic_path, remove_stale_temp_files
from vbsad_batch.runtime.progress import ProgressCallback, ProgressEvent
from vbsad_batch.runtime.provenance import (
    MANIFEST_NAME,
    fingerprint_file,
    jsonable,
    manifest_up_to_date,
    read_manifest,
    runtime_provenance,
    sha256_file,
    tool_version,
    write_manifest,
)
from vbsad_batch.weighting.split import SPLIT_COLUMN, split_labels
from vbsad_batch.weighting.yields import YIELD_COLUMN, ComponentFrame, component_frames

__all__ = [
    "DATASETS_DIR_NAME",
    "DATASETS_FORMAT_VERSION",
    "DatasetInfo",
    "DatasetsResult",
    "build_datasets",
]

logger = logging.getLogger(__name__)

DATASETS_DIR_NAME = "datasets"
DATASETS_FORMAT_VERSION = 1
"""Version of the datasets layout and manifest; bump when either changes."""

MANIFEST_KIND = "vbsad_batch.datasets"
PARQUET_COMPRESSION: Literal["zstd"] = "zstd"
_STAGE = "datasets"
_ID_COLUMNS = ("w", YIELD_COLUMN, "event", "input_sha256")

DatasetsStatus = Literal["written", "skipped"]


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """One dataset file.

    Attributes:
        name: e.g. "sm_train", "lin_test_cW".
        path: the Parquet file.
        n_rows: events in it.
        sum_yield: sum of its `yield` column: expected events at the luminosity (split
            fraction corrected).
        sha256: hex SHA-256 of the file.
        size_bytes: file size, bytes.
    """

    name: str
    path: Path
    n_rows: int
    sum_yield: float
    sha256: str
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; `path` as the file name (relative to the manifest)."""
        data = dataclasses.asdict(self)
        data["path"] = self.path.name
        return data


@dataclass(frozen=True, slots=True)
class DatasetsResult:
    """What `build_datasets` did.

    Attributes:
        status: "written" or "skipped" (everything was up to date).
        reason: why it was (re)written, or "up to date".
        directory: the datasets directory.
        manifest: its manifest file.
        datasets: the datasets, in writing order.
    """

    status: DatasetsStatus
    reason: str
    directory: Path
    manifest: Path
    datasets: tuple[DatasetInfo, ...]


@dataclass(frozen=True)
class _Plan:
    name: str
    frame: pl.LazyFrame


def _input_files(config: AnalysisConfig) -> list[Path]:
    files = [path for sample in config.samples for path in sample.files]
    files += [path for rw in config.reweighted for path in rw.files]
    return files


def _key(config: AnalysisConfig, inputs: Sequence[dict[str, Any]], c: float) -> dict[str, Any]:
    return {
        "format_version": DATASETS_FORMAT_VERSION,
        "tool_version": tool_version(),
        # The training settings do not change the datasets: editing them must not rebuild.
        "config": jsonable(dataclasses.replace(config, training=TrainingConfig())),
        "inputs": [{"path": i["path"], "sha256": i["sha256"]} for i in inputs],
        "options": {"training_coefficient": c},
    }


def _up_to_date(
    manifest: dict[str, Any] | None, key: dict[str, Any], directory: Path
) -> tuple[bool, str]:
    return manifest_up_to_date(
        manifest, kind=MANIFEST_KIND, key=key, directory=directory, outputs_field="datasets"
    )


def _result_from_manifest(
    manifest: dict[str, Any], directory: Path, status: DatasetsStatus, reason: str
) -> DatasetsResult:
    infos = tuple(
        DatasetInfo(
            name=str(e["name"]),
            path=directory / e["path"],
            n_rows=int(e["n_rows"]),
            sum_yield=float(e["sum_yield"]),
            sha256=str(e["sha256"]),
            size_bytes=int(e["size_bytes"]),
        )
        for e in manifest["datasets"]
    )
    return DatasetsResult(status, reason, directory, directory / MANIFEST_NAME, infos)


def _columns(comp: ComponentFrame, features: Sequence[str]) -> list[str]:
    available = comp.frame.collect_schema().names()
    wanted = [*features, *_ID_COLUMNS]
    missing = [name for name in wanted if name not in available]
    if missing:
        raise ValueError(
            f"sample {comp.sample!r}: column(s) {', '.join(missing)} missing in its events "
            f"(files: {', '.join(str(n.path) for n in comp.normalisations)})"
        )
    return wanted


def _part(
    comp: ComponentFrame,
    config: AnalysisConfig,
    split: str,
    fraction: float,
    factor: float = 1.0,
) -> pl.LazyFrame:
    """`comp`'s selected events of one split, yields scaled by factor / fraction."""
    columns = _columns(comp, config.features)
    labelled = split_labels(comp.frame, config.split.seed, config.split)
    return (
        labelled.filter(selection_expr(config.selection).fill_null(False))
        .filter(pl.col(SPLIT_COLUMN) == split)
        .select(columns)
        .with_columns((pl.col(YIELD_COLUMN) * (factor / fraction)).alias(YIELD_COLUMN))
    )


def _plans(config: AnalysisConfig, comps: Sequence[ComponentFrame], c: float) -> list[_Plan]:
    fractions = {
        "train": config.split.train,
        "validation": config.split.validation,
        "test": config.split.test,
    }
    sm = [comp for comp in comps if comp.component == "sm"]
    if len(sm) != 1:
        raise ValueError(f"{config.path}: need exactly one SM source, found {len(sm)}")
    plans: list[_Plan] = []
    for split, fraction in fractions.items():
        if fraction > 0:
            plans.append(_Plan(f"sm_{split}", _part(sm[0], config, split, fraction)))
        else:
            logger.info("split fraction of %s is 0: no sm_%s dataset", split, split)

    op = config.training_operator
    if op is not None:
        parts = [
            _part(sm[0], config, "train", fractions["train"]).with_columns(
                pl.lit(0, dtype=pl.Int8).alias("label"), pl.lit("sm").alias("component")
            )
        ]
        for comp in comps:
            if comp.operators == (op,) and comp.component in ("lin", "quad"):
                factor = c if comp.component == "lin" else c * c
                parts.append(
                    _part(comp, config, "train", fractions["train"], factor).with_columns(
                        pl.lit(1, dtype=pl.Int8).alias("label"),
                        pl.lit(comp.component).alias("component"),
                    )
                )
        if len(parts) != 3:
            raise ValueError(
                f"{config.path}: training_operator {op!r} needs both its LIN and QUAD components"
            )
        plans.append(_Plan(f"mixed_train_{op}", pl.concat(parts, how="diagonal_relaxed")))

    if fractions["test"] > 0:
        for comp in sorted(comps, key=lambda x: (x.operators, x.component)):
            if comp.component == "sm":
                continue
            name = f"{comp.component}_test_{'_'.join(comp.operators)}"
            plans.append(_Plan(name, _part(comp, config, "test", fractions["test"])))
    else:
        logger.warning("test fraction is 0: no LIN/QUAD test datasets are written")
    return plans


def _write(plan: _Plan, directory: Path) -> DatasetInfo:
    dest = directory / f"{plan.name}.parquet"
    with atomic_path(dest) as tmp:
        plan.frame.sink_parquet(tmp, compression=PARQUET_COMPRESSION)
        stats = (
            pl.scan_parquet(tmp)
            .select(pl.len().alias("n"), pl.col(YIELD_COLUMN).sum().alias("s"))
            .collect()
        )
        size = tmp.stat().st_size
        digest = sha256_file(tmp)
    n_rows = int(stats["n"][0])
    sum_yield = float(stats["s"][0] or 0.0)
    if not math.isfinite(sum_yield):
        raise ValueError(f"{dest}: sum of yields is {sum_yield}")
    return DatasetInfo(plan.name, dest, n_rows, sum_yield, digest, size)


def build_datasets(
    config: AnalysisConfig,
    *,
    progress: ProgressCallback | None = None,
    force: bool = False,
    training_coefficient: float = 1.0,
) -> DatasetsResult:
    """Write the datasets of `config` (see the module docstring) and their manifest.

    Args:
        config: the analysis configuration.
        progress: called with `ProgressEvent`s (stage "datasets", one item per dataset).
        force: rewrite even when everything is up to date.
        training_coefficient: Wilson coefficient c of the EFT part of the mixed training set
            (yields c LIN + c^2 QUAD); default 1.

    Raises:
        ValueError: missing columns or components, a sample that cannot be normalised,
            or a non-finite `training_coefficient`.
        FileNotFoundError: an input file is missing.
    """
    c = float(training_coefficient)
    if not math.isfinite(c):
        raise ValueError(f"training_coefficient must be finite, got {training_coefficient!r}")
    emit = progress or (lambda event: None)
    directory = config.output_dir / DATASETS_DIR_NAME
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / MANIFEST_NAME

    inputs = [fingerprint_file(path).to_dict() for path in _input_files(config)]
    key = _key(config, inputs, c)
    old = read_manifest(manifest_path)
    fresh, reason = _up_to_date(old, key, directory)
    if force:
        reason = "forced"
    elif fresh and old is not None:
        emit(ProgressEvent(_STAGE, "run_finished", message="up to date"))
        return _result_from_manifest(old, directory, "skipped", reason)

    start = time.monotonic()
    # The manifest marks completion: drop it first, so that a failed run leaves no stale claim.
    manifest_path.unlink(missing_ok=True)
    remove_stale_temp_files(directory)
    comps = component_frames(config)
    plans = _plans(config, comps, c)
    emit(ProgressEvent(_STAGE, "run_started", total_items=len(plans)))
    infos: list[DatasetInfo] = []
    for plan in plans:
        item_start = time.monotonic()
        emit(ProgressEvent(_STAGE, "item_started", item=plan.name, total_items=len(plans)))
        info = _write(plan, directory)
        infos.append(info)
        emit(
            ProgressEvent(
                _STAGE,
                "item_finished",
                item=plan.name,
                total_items=len(plans),
                rows=info.n_rows,
                message=str(info.path),
                seconds=time.monotonic() - item_start,
            )
        )
    written = {info.path.name for info in infos}
    if old is not None:  # datasets of an earlier config that this one no longer makes
        for entry in old.get("datasets", []):
            name = entry.get("path") if isinstance(entry, dict) else None
            if isinstance(name, str) and name not in written and "/" not in name:
                (directory / name).unlink(missing_ok=True)

    normalisations = [
        {
            "sample": comp.sample,
            "component": comp.component,
            "operators": list(comp.operators),
            "files": [normalisation_summary(n) for n in comp.normalisations],
        }
        for comp in comps
    ]
    manifest = {
        "kind": MANIFEST_KIND,
        "key": key,
        "inputs": inputs,
        "luminosity_fb": config.luminosity_fb,
        "yield_unit": f"events at {config.luminosity_fb:g} fb^-1, divided by the split fraction",
        "normalisations": normalisations,
        "datasets": [info.to_dict() for info in infos],
        "provenance": runtime_provenance(),
        "seconds": round(time.monotonic() - start, 3),
    }
    write_manifest(manifest_path, manifest)
    emit(ProgressEvent(_STAGE, "run_finished", message=f"{len(infos)} dataset(s)"))
    return DatasetsResult("written", reason, directory, manifest_path, tuple(infos))
