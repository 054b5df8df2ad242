"""The datasets the models train and are evaluated on, as Parquet files with a manifest.

`build_datasets(config)` writes into `<config.output_dir>/datasets/`:

- `sm_train.parquet`, `sm_validation.parquet`, `sm_test.parquet`: SM events of each split;
- `mixed_train_<op>.parquet` and `mixed_validation_<op>.parquet` for each training operator of
  the config (`training_operator` or `training_operators`): SM events of the split
  (`label` 0) and EFT events of the split (`label` 1): the rows of the operator's LIN
  component with yield c * LIN and the rows of its QUAD component with yield c^2 * QUAD, at
  c = 1 unless `training_coefficient` says otherwise. For a reweighted sample LIN and QUAD rows
  are the same events twice; since a weighted loss is linear in the weights, two rows with equal
  features and label are equivalent to one row with the summed weight c LIN + c^2 QUAD. Column
  `component` says which part a row is ("sm", "lin", "quad");
- per operator `lin_test_<op>.parquet` and `quad_test_<op>.parquet` (and `mix_test_<op1>_<op2>`
  for MIX samples): the test split of that component, and likewise `lin_validation_<op>` ...:
  its validation split (the scan may choose its regions there and quote them on the test);
- `manifest.json`, written last: inputs (path, size, SHA-256), the config, the options, the
  tool version, and per dataset its file, rows, SHA-256 and sum of yields.

Every dataset holds the events that pass `config.selection`, with the columns: the config's
`features` (GeV, radians; not log-transformed: that is the model's preprocessing), `w` (the
component's event weight, pb for MadGraph), `yield`, `event` (index in the input file) and
`input_sha256`. The `yield` of an event is its expected count at `config.luminosity_fb`
fb^-1 scaled up for its split, so that every split of a component estimates the component's
whole expected yield after the selection: per sample component (SM, each LIN, QUAD and MIX)
and per sign of the weights, the events of a split are scaled by T / S, with S the sum of their
yields and T that of the component's selected events of every split. A split's yields thus add
up exactly to the component's selected yield (where 1 / (split fraction) would miss it by the
random fluctuation of which events fell into the split: -25% to +29% for the LIN term of cHW
on the real samples), and positive and negative (LIN, MIX) weights keep their sign and their
balance. The factors are recorded in the manifest (`split_scales`). A split without events of
one sign while the component has some cannot keep that part of the total: a warning, in the
log and the manifest (`warnings`), says so (tiny samples; more Monte Carlo events, or larger
split fractions, mend it). LIN (and MIX) weights and yields can be negative; they are kept.

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

from vbsad_batch.config import AnalysisConfig, selection_expr
from vbsad_batch.ingest.normalisation import normalisation_summary
from vbsad_batch.runtime.progress import ProgressCallback, ProgressEvent
from vbsad_batch.runtime.provenance import jsonable, tool_version
from vbsad_batch.runtime.stage import (
    FileRecord,
    StageOutputs,
    StageResult,
    StageUnit,
    command,
    fingerprint,
)
from vbsad_batch.weighting.split import SPLIT_COLUMN, SPLITS, split_labels
from vbsad_batch.weighting.yields import YIELD_COLUMN, ComponentFrame, component_frames

__all__ = [
    "DATASETS_DIR_NAME",
    "DATASETS_FORMAT_VERSION",
    "DatasetInfo",
    "DatasetsResult",
    "build_datasets",
    "current_datasets",
    "datasets_unit",
    "split_scales",
]

logger = logging.getLogger(__name__)

DATASETS_DIR_NAME = "datasets"
DATASETS_FORMAT_VERSION = 3
"""Version of the datasets layout and manifest; bump when either changes."""

MANIFEST_KIND = "vbsad_batch.datasets"
PARQUET_COMPRESSION: Literal["zstd"] = "zstd"
_STAGE = "datasets"
_ID_COLUMNS = ("w", YIELD_COLUMN, "event", "input_sha256")


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


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetsResult(StageResult):
    """What `build_datasets` did (see `StageResult`); `datasets`: the datasets, in writing
    order."""

    datasets: tuple[DatasetInfo, ...]


@dataclass(frozen=True)
class _Plan:
    name: str
    frame: pl.LazyFrame


def _input_files(config: AnalysisConfig) -> list[Path]:
    files = [path for sample in config.samples for path in sample.files]
    files += [path for rw in config.reweighted for path in rw.files]
    return files


def datasets_unit(config: AnalysisConfig) -> StageUnit:
    """The datasets of `config` as a unit of the stage contract."""
    return StageUnit(
        stage=_STAGE,
        name="datasets",
        kind=MANIFEST_KIND,
        directory=config.output_dir / DATASETS_DIR_NAME,
        remake=command("datasets", config.path),
    )


def _settings(config: AnalysisConfig) -> dict[str, Any]:
    """Every setting of `config` the datasets depend on (not the training or scan settings,
    not where the config or the outputs are)."""
    samples = [
        {
            "name": s.name,
            "component": s.component,
            "operators": list(s.operators),
            "xsec_pb": s.xsec_pb,
        }
        for s in config.samples
    ]
    reweighted = [
        {
            "name": r.name,
            "xsec_pb": r.xsec_pb,
            "sm_weight": r.sm_weight,
            "points": jsonable(r.points),
        }
        for r in config.reweighted
    ]
    return {
        "luminosity_fb": config.luminosity_fb,
        "selection": config.selection,
        "features": list(config.features),
        "split": jsonable(config.split),
        "training_operators": list(config.grid.training_operators),
        "samples": samples,
        "reweighted": reweighted,
    }


def _input_records(config: AnalysisConfig, unit: StageUnit) -> list[FileRecord]:
    known = unit.known_inputs()
    return [fingerprint(path, known=known.get(str(path))) for path in _input_files(config)]


def _key(config: AnalysisConfig, inputs: Sequence[FileRecord], c: float) -> dict[str, Any]:
    return {
        "format_version": DATASETS_FORMAT_VERSION,
        "tool_version": tool_version(),
        "config": _settings(config),
        "inputs": [{"path": r.path, "sha256": r.sha256} for r in inputs],
        "options": {"training_coefficient": c},
    }


def current_datasets(config: AnalysisConfig) -> dict[str, DatasetInfo]:
    """The datasets of `config` as inputs of a later stage, by name, after checking them:
    complete, made from the config's current inputs and settings, unmodified since
    (`StageUnit.require_current`; the `--training-coefficient` they were made with is taken
    as it is).

    Raises:
        StaleInputError: naming the file at fault and the command that remakes it.
    """
    unit = datasets_unit(config)
    key = _key(config, _input_records(config, unit), 1.0)
    manifest = unit.require_current(key, ignore=("options",))
    return {info.name: info for info in _infos(manifest, unit.directory)}


def _infos(manifest: dict[str, Any], directory: Path) -> tuple[DatasetInfo, ...]:
    return tuple(
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


def _selected(comp: ComponentFrame, config: AnalysisConfig) -> pl.LazyFrame:
    """`comp`'s events that pass the selection, with their split label."""
    labelled = split_labels(comp.frame, config.split.seed, config.split)
    return labelled.filter(selection_expr(config.selection).fill_null(False))


SplitScales = dict[str, tuple[float, float]]
"""split -> (factor of the events of positive weight, of negative weight)."""


def split_scales(
    config: AnalysisConfig, comps: Sequence[ComponentFrame], warnings: list[str]
) -> list[SplitScales]:
    """Per component, the factors that make each split's yields add up, per sign of the weight,
    to the component's whole selected yield (see the module docstring); one pass per component
    over its selected events' split labels and yields (`_split_sums`).
    A split with no events of one sign while the component has some cannot keep that part of
    the total: said in `warnings` (and the log).

    Raises:
        ValueError: the selection leaves no event of a component (naming the selection, the
            components and their event counts before and after it).
    """
    # Each split's sums of each sign are exact (math.fsum of the selected yields): a parallel
    # sum's rounding depends on how the engine cut the events into chunks, which changed the
    # last bits of the scales (and of every yield after them) from one run to another.
    sums_of = [_split_sums(comp, config) for comp in comps]
    _require_selected_events(config, comps, [sum(n for _, _, n in s.values()) for s in sums_of])
    out: list[SplitScales] = []
    for comp, sums in zip(comps, sums_of, strict=True):
        by_split = {split: (pos, neg) for split, (pos, neg, _) in sums.items()}
        totals = [math.fsum(by_split[s][i] for s in SPLITS if s in by_split) for i in (0, 1)]
        scales: SplitScales = {}
        for split in SPLITS:
            part = by_split.get(split, (0.0, 0.0))
            factors = []
            for sign, total, value in zip(("positive", "negative"), totals, part, strict=True):
                if total == 0.0:
                    factors.append(1.0)
                elif value == 0.0:
                    if getattr(config.split, split) > 0:
                        message = (
                            f"sample {comp.sample!r} ({comp.component} "
                            f"{comp.operator_label}): the {split} split has no selected event "
                            f"of {sign} weight while the sample's add up to {total:.6g} events: "
                            f"its {split} yields miss them (generate more events or enlarge "
                            "the split fractions)"
                        )
                        logger.warning("%s", message)
                        warnings.append(message)
                    factors.append(1.0)
                else:
                    factors.append(total / value)
            scales[split] = (factors[0], factors[1])
        out.append(scales)
    return out


def _split_sums(
    comp: ComponentFrame, config: AnalysisConfig
) -> dict[str, tuple[float, float, int]]:
    """Per split with selected events of `comp`: (exact sum of the positive yields, of the
    negative ones, number of events). Reads the split (as its index in `SPLITS`, one byte) and
    the yield of the selected events only: 9 bytes per event, for the time of the sums (the
    labels as Python strings took ~90)."""
    code = pl.col(SPLIT_COLUMN).cast(pl.Enum(SPLITS)).to_physical().cast(pl.UInt8)
    frame = (
        _selected(comp, config)
        .select(code.alias(SPLIT_COLUMN), pl.col(YIELD_COLUMN).cast(pl.Float64))
        .collect(engine="streaming")
    )
    labels = frame[SPLIT_COLUMN].to_numpy()
    yields = frame[YIELD_COLUMN].to_numpy()
    sums: dict[str, tuple[float, float, int]] = {}
    for k, split in enumerate(SPLITS):
        mine = yields[labels == k]
        if mine.size:
            sums[split] = (math.fsum(mine[mine >= 0]), math.fsum(mine[mine < 0]), int(mine.size))
    return sums


def _require_selected_events(
    config: AnalysisConfig, comps: Sequence[ComponentFrame], selected: Sequence[int]
) -> None:
    """Every component keeps at least one event after the selection (else: ValueError)."""
    empty = [comp for comp, n in zip(comps, selected, strict=True) if n == 0]
    if not empty:
        return
    counts = pl.collect_all([comp.frame.select(pl.len()) for comp in empty])
    named = ", ".join(
        f"{comp.sample!r} ({comp.component} {comp.operator_label}: 0 of {int(n.item())} events)"
        for comp, n in zip(empty, counts, strict=True)
    )
    raise ValueError(
        f"{config.path}: the selection {config.selection!r} leaves no event of {named}; "
        "loosen the selection or check the samples"
    )


def _part(
    comp: ComponentFrame,
    config: AnalysisConfig,
    split: str,
    scales: SplitScales,
    factor: float = 1.0,
) -> pl.LazyFrame:
    """`comp`'s selected events of one split, yields scaled so that the split keeps the
    component's total (`scales`), times `factor`."""
    columns = _columns(comp, config.features)
    positive, negative = scales[split]
    y = pl.col(YIELD_COLUMN)
    scaled = pl.when(y >= 0).then(y * (factor * positive)).otherwise(y * (factor * negative))
    return (
        _selected(comp, config)
        .filter(pl.col(SPLIT_COLUMN) == split)
        .select(columns)
        .with_columns(scaled.alias(YIELD_COLUMN))
    )


def _mixed_plan(
    config: AnalysisConfig,
    comps: Sequence[ComponentFrame],
    scale_of: dict[int, SplitScales],
    *,
    op: str,
    split: str,
    c: float,
) -> _Plan:
    """`mixed_<split>_<op>`: the split's SM events (label 0) and the LIN (yield c LIN) and QUAD
    (c^2 QUAD) events of `op` (label 1)."""
    (sm,) = [comp for comp in comps if comp.component == "sm"]
    parts = [
        _part(sm, config, split, scale_of[id(sm)]).with_columns(
            pl.lit(0, dtype=pl.Int8).alias("label"), pl.lit("sm").alias("component")
        )
    ]
    for comp in comps:
        if comp.operators == (op,) and comp.component in ("lin", "quad"):
            factor = c if comp.component == "lin" else c * c
            parts.append(
                _part(comp, config, split, scale_of[id(comp)], factor).with_columns(
                    pl.lit(1, dtype=pl.Int8).alias("label"),
                    pl.lit(comp.component).alias("component"),
                )
            )
    if len(parts) != 3:
        raise ValueError(
            f"{config.path}: training operator {op!r} needs both its LIN and QUAD components"
        )
    return _Plan(f"mixed_{split}_{op}", pl.concat(parts, how="diagonal_relaxed"))


def _plans(
    config: AnalysisConfig,
    comps: Sequence[ComponentFrame],
    scales: Sequence[SplitScales],
    c: float,
) -> list[_Plan]:
    fractions = {
        "train": config.split.train,
        "validation": config.split.validation,
        "test": config.split.test,
    }
    scale_of = {id(comp): s for comp, s in zip(comps, scales, strict=True)}
    sm = [comp for comp in comps if comp.component == "sm"]
    if len(sm) != 1:
        raise ValueError(f"{config.path}: need exactly one SM source, found {len(sm)}")
    sm_scales = scale_of[id(sm[0])]
    plans: list[_Plan] = []
    for split, fraction in fractions.items():
        if fraction > 0:
            plans.append(_Plan(f"sm_{split}", _part(sm[0], config, split, sm_scales)))
        else:
            logger.info("split fraction of %s is 0: no sm_%s dataset", split, split)

    for op in config.grid.training_operators:
        for split in ("train", "validation"):
            if fractions[split] > 0:
                plans.append(_mixed_plan(config, comps, scale_of, op=op, split=split, c=c))

    eft = [
        c for c in sorted(comps, key=lambda x: (x.operators, x.component)) if c.component != "sm"
    ]
    for split in ("validation", "test"):
        if fractions[split] == 0:
            logger.warning("%s fraction is 0: no LIN/QUAD %s datasets are written", split, split)
            continue
        for comp in eft:
            name = f"{comp.component}_{split}_{'_'.join(comp.operators)}"
            plans.append(_Plan(name, _part(comp, config, split, scale_of[id(comp)])))
    return plans


def _write(plan: _Plan, out: StageOutputs) -> DatasetInfo:
    name = f"{plan.name}.parquet"
    with out.path(name) as tmp:
        plan.frame.sink_parquet(tmp, compression=PARQUET_COMPRESSION)
        stats = (
            pl.scan_parquet(tmp)
            .select(pl.len().alias("n"), pl.col(YIELD_COLUMN).sum().alias("s"))
            .collect()
        )
    n_rows = int(stats["n"][0])
    sum_yield = float(stats["s"][0] or 0.0)
    dest = out.directory / name
    if not math.isfinite(sum_yield):
        raise ValueError(f"{dest}: sum of yields is {sum_yield}")
    (record,) = [e for e in out.entries() if e["path"] == name]
    return DatasetInfo(plan.name, dest, n_rows, sum_yield, record["sha256"], record["size_bytes"])


def _write_datasets(
    config: AnalysisConfig, c: float, inputs: Sequence[FileRecord], out: StageOutputs
) -> tuple[DatasetInfo, ...]:
    comps = component_frames(config)
    warnings: list[str] = []
    scales = split_scales(config, comps, warnings)
    plans = _plans(config, comps, scales, c)
    out.emit(ProgressEvent(_STAGE, "run_started", total_items=len(plans)))
    infos: list[DatasetInfo] = []
    for plan in plans:
        item_start = time.monotonic()
        out.emit(ProgressEvent(_STAGE, "item_started", item=plan.name, total_items=len(plans)))
        info = _write(plan, out)
        infos.append(info)
        out.emit(
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
    for record in inputs:
        out.record_input(record)
    out.manifest.update(
        {
            "luminosity_fb": config.luminosity_fb,
            "yield_unit": (
                f"events at {config.luminosity_fb:g} fb^-1, scaled so that each split of a "
                "component adds up to its whole selected yield (per sign of the weights: "
                "split_scales)"
            ),
            "warnings": warnings,
            "split_scales": [
                {
                    "sample": comp.sample,
                    "component": comp.component,
                    "operators": list(comp.operators),
                    "positive": {split: s[split][0] for split in SPLITS},
                    "negative": {split: s[split][1] for split in SPLITS},
                }
                for comp, s in zip(comps, scales, strict=True)
            ],
            "normalisations": [
                {
                    "sample": comp.sample,
                    "component": comp.component,
                    "operators": list(comp.operators),
                    "files": [normalisation_summary(n) for n in comp.normalisations],
                }
                for comp in comps
            ],
            "datasets": [info.to_dict() for info in infos],
        }
    )
    out.summary = f"{len(infos)} dataset(s)"
    return tuple(infos)


def build_datasets(
    config: AnalysisConfig,
    *,
    progress: ProgressCallback | None = None,
    force: bool = False,
    training_coefficient: float = 1.0,
) -> DatasetsResult:
    """Write the datasets of `config` (see the module docstring) and their manifest, through
    the stage contract (`vbsad_batch.runtime.stage`).

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
    unit = datasets_unit(config)
    inputs = _input_records(config, unit)
    run = unit.run(
        _key(config, inputs, c),
        lambda out, _: _write_datasets(config, c, inputs, out),
        force=force,
        progress=progress,
    )
    infos = run.value if run.value is not None else _infos(run.manifest, unit.directory)
    return DatasetsResult(**run.fields(f"{len(infos)} dataset(s)"), datasets=infos)
