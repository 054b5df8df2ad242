"""Per-event anomaly scores of a trained model on every test and validation dataset, as Parquet
with a manifest.

`score_datasets(config, model_dir)` reads the model directory (`network.npz`, the trained
network's dense layers, and `preprocessing.json`) and the test and validation datasets of
`vbsad datasets` (`sm_test`, `lin_test_<op>`, `quad_test_<op>`, `mix_test_<op1>_<op2>`, and the
same `_validation_` ones: the scan may choose its regions on the validation events), and writes
into `<config.output_dir>/scores/<model dir name>/`:

- `<dataset>.parquet` per dataset, one row per event in the dataset's order, columns
  `event`, `input_sha256`, `yield` (copied: they identify the event and give its expected
  count at the config's luminosity) and the scores `mse`, `kld` (float32, see
  `vbsad_batch.models.numpy_networks`) and, for a VAE+NN, `score` (classifier output in
  [0, 1]);
- `manifest.json`, written last: the model files' SHA-256 and a checksum of the model
  directory, each dataset's SHA-256 (checked against the datasets manifest), and per output
  its rows and SHA-256.

Datasets are read and scored in batches of `batch_rows` events, so memory does not grow with
the dataset size; each output is written atomically. A re-run whose model, datasets and tool
version equal the manifest's, and whose outputs are all still there with their recorded
contents, does nothing (the stage contract).

No TensorFlow: the network is evaluated in NumPy (`vbsad_batch.models.numpy_networks`), with
TensorFlow's inference-mode scores to float32 rounding (relative differences ~1e-6). A model
directory without `network.npz` (saved before the export existed) is an error that names the
command that trains it again; for a model of `vbsad train` the stage contract already says so,
its format version having changed.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from vbsad_batch.config import AnalysisConfig, ModelSpec
from vbsad_batch.errors import StaleInputError
from vbsad_batch.models.model_unit import current_model
from vbsad_batch.models.numpy_networks import NumpyNetwork, load_network
from vbsad_batch.models.paths import (
    CHECKPOINT_NAME,
    CONFIG_COPY_NAME,
    HISTORY_NAME,
    METRICS_NAME,
    MODEL_FILE_NAME,
    MODELS_DIR_NAME,
    NETWORK_FILE_NAME,
    PREPROCESSING_FILE_NAME,
)
from vbsad_batch.models.preprocessing import Preprocessing
from vbsad_batch.runtime.file_errors import reading
from vbsad_batch.runtime.mpi import Communicator, map_work, world
from vbsad_batch.runtime.progress import ProgressCallback, ProgressEvent
from vbsad_batch.runtime.provenance import MANIFEST_NAME, sha256_file, tool_version
from vbsad_batch.runtime.stage import StageOutputs, StageResult, StageUnit, command
from vbsad_batch.weighting.datasets import DATASETS_DIR_NAME, DatasetInfo, current_datasets

__all__ = [
    "ID_COLUMNS",
    "SCORES_DIR_NAME",
    "SCORES_FORMAT_VERSION",
    "SCORE_BATCH_ROWS",
    "ScoringResult",
    "current_scores",
    "is_scored_dataset",
    "model_checksum",
    "score_datasets",
    "score_models",
    "scores_directory",
    "scores_unit",
]

logger = logging.getLogger(__name__)

SCORES_DIR_NAME = "scores"
SCORES_FORMAT_VERSION = 3
"""Version of the scores layout and manifest; bump when either changes."""

SCORE_BATCH_ROWS = 1 << 18
"""Events read, scored and written at a time (262144: ~30 MB of features)."""

ID_COLUMNS: tuple[str, ...] = ("event", "input_sha256", "yield")
"""Columns copied from the dataset into the scores."""

MANIFEST_KIND = "vbsad_batch.scores"
_STAGE = "score"
_SCORED_DATASET = re.compile(r"sm_(test|validation)|(lin|quad|mix)_(test|validation)_.+")
_MODEL_FILES = (NETWORK_FILE_NAME, PREPROCESSING_FILE_NAME)  # the files that define the scores
_TRAIN_ONLY_FILES = (MANIFEST_NAME, CHECKPOINT_NAME, CONFIG_COPY_NAME, HISTORY_NAME, METRICS_NAME)


def is_scored_dataset(name: str) -> bool:
    """Whether a dataset of `vbsad datasets` is one that gets scored: the test and validation
    datasets of the SM and of every LIN, QUAD and MIX component."""
    return _SCORED_DATASET.fullmatch(name) is not None


def scores_directory(config: AnalysisConfig, model_dir: Path) -> Path:
    """Where the scores of the model in `model_dir` go: <output_dir>/scores/<model dir name>."""
    return config.output_dir / SCORES_DIR_NAME / Path(model_dir).resolve().name


def model_checksum(model_dir: Path, *, remake: str = "vbsad train") -> tuple[str, dict[str, str]]:
    """(checksum of the model directory, SHA-256 per model file).

    The checksum is the SHA-256 of the lines "<file name> <file SHA-256>" of the files that
    define the scores (`network.npz`, `preprocessing.json`), in that order.

    Args:
        model_dir: the model directory.
        remake: the command that trains the model, for the error message.

    Raises:
        FileNotFoundError: a model file is missing (its message names `remake`).
    """
    files: dict[str, str] = {}
    for name in _MODEL_FILES:
        path = Path(model_dir) / name
        if not path.is_file():
            why = (
                " (a model saved before scoring without TensorFlow existed)"
                if name == NETWORK_FILE_NAME and (Path(model_dir) / MODEL_FILE_NAME).is_file()
                else ""
            )
            raise FileNotFoundError(f"{path}: missing{why}; train the model again: `{remake}`")
        files[name] = sha256_file(path)
    text = "".join(f"{name} {digest}\n" for name, digest in files.items())
    return hashlib.sha256(text.encode()).hexdigest(), files


def scores_unit(config: AnalysisConfig, model_name: str) -> StageUnit:
    """The scores of the model directory `model_name` as a unit of the stage contract."""
    return StageUnit(
        stage=_STAGE,
        name=model_name,
        kind=MANIFEST_KIND,
        directory=config.output_dir / SCORES_DIR_NAME / model_name,
        remake=command("score", config.path, *_model_options(model_name)),
    )


def _model_options(model_name: str) -> list[str]:
    """`--model K --latent N --seed S [--operator OP]` of a model directory name."""
    spec = ModelSpec.from_name(model_name)
    if spec is None:
        return []
    options = ["--model", spec.kind, "--latent", str(spec.latent_dim), "--seed", str(spec.seed)]
    if spec.training_operator is not None:
        options += ["--operator", spec.training_operator]
    return options


def _trained_by_vbsad(model_dir: Path) -> bool:
    """Whether `model_dir` is (or was being made) a model directory of `vbsad train`: it has
    files that only the train stage writes. A directory with just the model and its
    preprocessing was made by other means (e.g. a Keras `fit` in a benchmark)."""
    return any((model_dir / name).exists() for name in _TRAIN_ONLY_FILES)


def _model_key(config: AnalysisConfig, model_dir: Path) -> dict[str, Any]:
    """The model part of the scores' key: the checksum of the files that define the scores,
    after checking, for a model of `vbsad train`, that it is complete and current."""
    if _trained_by_vbsad(model_dir):
        current_model(config, model_dir)
    remake = command("train", config.path, *_model_options(model_dir.name))
    checksum, files = model_checksum(model_dir, remake=remake)
    return {"checksum": checksum, "files": files}


def _scored_datasets(config: AnalysisConfig) -> list[DatasetInfo]:
    """The current test and validation datasets (checked against the datasets manifest)."""
    datasets = [info for info in current_datasets(config).values() if is_scored_dataset(info.name)]
    if not datasets:
        raise ValueError(
            f"{config.output_dir / DATASETS_DIR_NAME}: no test datasets (is the split's test "
            "fraction 0?)"
        )
    return datasets


def _key(model: dict[str, Any], datasets: Sequence[DatasetInfo]) -> dict[str, Any]:
    return {
        "format_version": SCORES_FORMAT_VERSION,
        "tool_version": tool_version(),
        "model": model,
        "datasets": [{"name": d.name, "sha256": d.sha256} for d in datasets],
    }


def current_scores(config: AnalysisConfig, model_name: str) -> dict[str, Any]:
    """The manifest of the scores of `model_name`, checked for use by a later stage: complete,
    unmodified since, and, when `vbsad score` made them (the manifest names the model
    directory), made by that model as it is now and from the datasets that are current now.

    Raises:
        StaleInputError: naming the file at fault and the command that remakes it.
    """
    unit = scores_unit(config, model_name)
    manifest = unit.manifest()
    if manifest is None or "model_dir" not in manifest:
        return unit.require_current()  # incomplete, or scores made by other means
    model_dir = config.output_dir / MODELS_DIR_NAME / model_name
    if not model_dir.is_dir():  # a model kept elsewhere (scored with `score_datasets`)
        model_dir = Path(str(manifest["model_dir"]))
    try:
        model = _model_key(config, model_dir)
    except FileNotFoundError as exc:
        raise StaleInputError(
            f"{exc}; the scores in {unit.directory} have no model any more; run `{unit.remake}`",
            path=model_dir,
            remake=unit.remake,
        ) from exc
    return unit.require_current(_key(model, _scored_datasets(config)))


def _score_one(
    dataset: Path,
    out: StageOutputs,
    *,
    model: NumpyNetwork,
    preprocessing: Preprocessing,
    batch_rows: int,
    emit: ProgressCallback,
    name: str,
    n_items: int,
    remake: str,
) -> int:
    """Score one dataset into the output `<name>.parquet`; return the number of rows (a
    dataset that cannot be read: an error naming it and `remake`, the command that makes it)."""
    with reading(dataset, what="dataset (Parquet)", remake=remake):
        source = pq.ParquetFile(dataset)
        have = source.schema_arrow
    missing = [c for c in (*preprocessing.features, *ID_COLUMNS) if c not in have.names]
    if missing:
        raise ValueError(f"{dataset}: column(s) {', '.join(missing)} missing")
    score_names = model.score_names()
    schema = pa.schema(
        [have.field(c) for c in ID_COLUMNS] + [pa.field(n, pa.float32()) for n in score_names]
    )
    rows = 0
    with (
        out.path(f"{name}.parquet", name=name) as tmp,
        pq.ParquetWriter(tmp, schema, compression="zstd") as writer,
    ):
        columns = list(dict.fromkeys([*preprocessing.features, *ID_COLUMNS]))
        batches = source.iter_batches(batch_size=batch_rows, columns=columns)
        while True:
            with reading(dataset, what="dataset (Parquet)", remake=remake):
                batch = next(batches, None)
            if batch is None:
                break
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            result = model.scores(preprocessing.transform(frame))
            arrays = [batch.column(c) for c in ID_COLUMNS]
            arrays += [pa.array(result[n], type=pa.float32()) for n in score_names]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            rows += batch.num_rows
            emit(
                ProgressEvent(
                    _STAGE,
                    "item_advanced",
                    item=name,
                    total_items=n_items,
                    rows=rows,
                    events=rows,
                )
            )
    out.describe(f"{name}.parquet", rows=rows)
    return rows


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoringResult(StageResult):
    """What `score_datasets` did (see `StageResult`; `outputs`: the score files, in the
    datasets manifest's order); `model_kind`: "vae" or "vae_nn"."""

    model_kind: str


def score_datasets(
    config: AnalysisConfig,
    model_dir: Path,
    *,
    progress: ProgressCallback | None = None,
    batch_rows: int = SCORE_BATCH_ROWS,
    force: bool = False,
) -> ScoringResult:
    """Score every test dataset with the model in `model_dir` (see the module docstring),
    through the stage contract.

    Args:
        config: the analysis configuration (its output_dir holds the datasets).
        model_dir: a model directory of `vbsad train` (or any directory with a `network.npz`
            and its `preprocessing.json`, as `networks.save_model` and `Preprocessing.to_json`
            write them).
        progress: called with `ProgressEvent`s (stage "score", one item per dataset).
        batch_rows: events per batch.
        force: rescore even when everything is up to date.

    Raises:
        StaleInputError: the datasets, or a model of `vbsad train`, are missing, incomplete,
            stale for the config or modified.
        FileNotFoundError: a model file is missing.
        ValueError: a dataset lacks a column, or has a feature value the preprocessing cannot
            take (e.g. log10 of a value <= 0).
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    emit = progress or (lambda event: None)
    model_dir = Path(model_dir).resolve()
    model_files = _model_key(config, model_dir)
    datasets = _scored_datasets(config)
    unit = scores_unit(config, model_dir.name)

    def write(out: StageOutputs, reason: str) -> str:
        model_remake = command("train", config.path)
        with reading(model_dir / NETWORK_FILE_NAME, what="network (NumPy)", remake=model_remake):
            model = load_network(model_dir)
        preprocessing_file = model_dir / PREPROCESSING_FILE_NAME
        with reading(preprocessing_file, what="preprocessing (JSON)", remake=model_remake):
            preprocessing = Preprocessing.from_json(preprocessing_file.read_text(encoding="utf-8"))
        emit(ProgressEvent(_STAGE, "run_started", total_items=len(datasets)))
        for dataset in datasets:
            item_start = time.monotonic()
            emit(
                ProgressEvent(_STAGE, "item_started", item=dataset.name, total_items=len(datasets))
            )
            rows = _score_one(
                dataset.path,
                out,
                model=model,
                preprocessing=preprocessing,
                batch_rows=batch_rows,
                emit=emit,
                name=dataset.name,
                n_items=len(datasets),
                remake=command("datasets", config.path),
            )
            emit(
                ProgressEvent(
                    _STAGE,
                    "item_finished",
                    item=dataset.name,
                    total_items=len(datasets),
                    rows=rows,
                    events=rows,
                    message=str(unit.directory / f"{dataset.name}.parquet"),
                    seconds=time.monotonic() - item_start,
                )
            )
        out.manifest.update(
            {
                "model_dir": str(model_dir),
                "model_kind": model.kind,
                "datasets": [
                    {"name": d.name, "path": str(d.path), "sha256": d.sha256} for d in datasets
                ],
            }
        )
        out.summary = f"{len(datasets)} dataset(s)"
        return str(model.kind)

    ran = unit.run(_key(model_files, datasets), write, force=force, progress=progress)
    kind = ran.value if ran.value is not None else str(ran.manifest.get("model_kind", ""))
    return ScoringResult(**ran.fields(f"{len(datasets)} dataset(s)"), model_kind=kind)


def score_models(
    config: AnalysisConfig,
    model_dirs: Sequence[Path],
    *,
    comm: Communicator | None = None,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> list[ScoringResult] | None:
    """Score the models in `model_dirs` round-robin over the ranks of `comm` (collective call:
    every rank calls it with the same arguments), each with `score_datasets`.

    Returns:
        on rank 0, the results in the order of `model_dirs`; None on the other ranks.

    Raises:
        RankFailure: on every rank, scoring failed on some rank (with one rank: the error
            itself).
    """
    comm = world() if comm is None else comm
    mine = progress if comm.rank == 0 else None

    def one(model_dir: Path) -> ScoringResult:
        return score_datasets(config, model_dir, progress=mine, force=force)

    if comm.size == 1:  # alone: each model's own errors, unwrapped
        return [one(model_dir) for model_dir in model_dirs]
    return map_work(list(model_dirs), one, comm=comm)
