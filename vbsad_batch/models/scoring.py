"""Per-event anomaly scores of a trained model on every test dataset, as Parquet with a manifest.

`score_datasets(config, model_dir)` reads the model directory (`model.keras` and
`preprocessing.json`, see `vbsad_batch.models.networks`) and the test datasets of `vbsad datasets`
(`sm_test`, `lin_test_<op>`, `quad_test_<op>`, `mix_test_<op1>_<op2>`), and writes into
`<config.output_dir>/scores/<model dir name>/`:

- `<dataset>.parquet` per test dataset, one row per event in the dataset's order, columns
  `event`, `input_sha256`, `yield` (copied: they identify the event and give its expected
  count at the config's luminosity) and the scores `mse`, `kld` (float32, see
  `vbsad_batch.models.networks`) and, for a VAE+NN, `score` (classifier output in [0, 1]);
- `manifest.json`, written last: the model files' SHA-256 and a checksum of the model
  directory, each dataset's SHA-256 (checked against the datasets manifest), and per output
  its rows and SHA-256.

Datasets are read and scored in batches of `batch_rows` events, so memory does not grow with
the dataset size; each output is written atomically. A re-run whose model, datasets and tool
version equal the manifest's, and whose outputs are all still there with their recorded
sizes, does nothing. TensorFlow is imported only when something has to be scored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from vbsad_batch.config import AnalysisConfig
from vbsad_batch.models.paths import MODEL_FILE_NAME, PREPROCESSING_FILE_NAME
from vbsad_batch.models.preprocessing import Preprocessing
from vbsad_batch.runtime.atomic_write import atomic_path, remove_stale_temp_files
from vbsad_batch.runtime.progress import ProgressCallback, ProgressEvent
from vbsad_batch.runtime.provenance import (
    MANIFEST_NAME,
    read_manifest,
    runtime_provenance,
    sha256_file,
    tool_version,
    write_manifest,
)
from vbsad_batch.weighting.datasets import DATASETS_DIR_NAME

__all__ = [
    "ID_COLUMNS",
    "SCORES_DIR_NAME",
    "SCORES_FORMAT_VERSION",
    "SCORE_BATCH_ROWS",
    "is_test_dataset",
    "model_checksum",
    "score_datasets",
    "scores_directory",
]

logger = logging.getLogger(__name__)

SCORES_DIR_NAME = "scores"
SCORES_FORMAT_VERSION = 1
"""Version of the scores layout and manifest; bump when either changes."""

SCORE_BATCH_ROWS = 1 << 18
"""Events read, scored and written at a time (262144: ~30 MB of features)."""

ID_COLUMNS: tuple[str, ...] = ("event", "input_sha256", "yield")
"""Columns copied from the dataset into the scores."""

MANIFEST_KIND = "vbsad_batch.scores"
_STAGE = "score"
_TEST_DATASET = re.compile(r"sm_test|(lin|quad|mix)_test_.+")
_MODEL_FILES = (MODEL_FILE_NAME, PREPROCESSING_FILE_NAME)  # the files that define the scores


def is_test_dataset(name: str) -> bool:
    """Whether a dataset of `vbsad datasets` is one that gets scored."""
    return _TEST_DATASET.fullmatch(name) is not None


def scores_directory(config: AnalysisConfig, model_dir: Path) -> Path:
    """Where the scores of the model in `model_dir` go: <output_dir>/scores/<model dir name>."""
    return config.output_dir / SCORES_DIR_NAME / Path(model_dir).resolve().name


def model_checksum(model_dir: Path) -> tuple[str, dict[str, str]]:
    """(checksum of the model directory, SHA-256 per model file).

    The checksum is the SHA-256 of the lines "<file name> <file SHA-256>" of the files that
    define the scores (`model.keras`, `preprocessing.json`), in that order.

    Raises:
        FileNotFoundError: a model file is missing.
    """
    files: dict[str, str] = {}
    for name in _MODEL_FILES:
        path = Path(model_dir) / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; train a model first (vbsad train)")
        files[name] = sha256_file(path)
    text = "".join(f"{name} {digest}\n" for name, digest in files.items())
    return hashlib.sha256(text.encode()).hexdigest(), files


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _up_to_date(manifest: dict[str, Any] | None, key: dict[str, Any], directory: Path) -> bool:
    if manifest is None or manifest.get("kind") != MANIFEST_KIND:
        return False
    try:
        if not _same(manifest["key"], key):
            return False
        for entry in manifest["outputs"]:
            path = directory / entry["path"]
            if not path.is_file() or path.stat().st_size != entry["size_bytes"]:
                return False
    except (KeyError, TypeError, AttributeError):
        return False
    return True


def _test_datasets(config: AnalysisConfig) -> list[dict[str, Any]]:
    """The test datasets' manifest entries, each with its SHA-256 checked against the file."""
    directory = config.output_dir / DATASETS_DIR_NAME
    manifest = read_manifest(directory / MANIFEST_NAME)
    if manifest is None:
        raise FileNotFoundError(
            f"{directory / MANIFEST_NAME}: no datasets; run `vbsad datasets` first"
        )
    entries: list[dict[str, Any]] = []
    for entry in manifest.get("datasets", []):
        name = str(entry["name"])
        if not is_test_dataset(name):
            continue
        path = directory / str(entry["path"])
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            raise ValueError(
                f"{path}: SHA-256 differs from the datasets manifest (modified since "
                "`vbsad datasets` wrote it); run `vbsad datasets` again"
            )
        entries.append({"name": name, "path": path, "sha256": digest})
    if not entries:
        raise ValueError(f"{directory}: no test datasets (is the split's test fraction 0?)")
    return entries


def _score_one(
    dataset: Path,
    dest: Path,
    *,
    model: Any,
    preprocessing: Any,
    batch_rows: int,
    emit: ProgressCallback,
    name: str,
    n_items: int,
) -> int:
    """Score one dataset into `dest` (atomically); return the number of rows."""
    from vbsad_batch.models.networks import scores  # noqa: PLC0415 - TensorFlow only when scoring

    source = pq.ParquetFile(dataset)
    have = source.schema_arrow
    missing = [c for c in (*preprocessing.features, *ID_COLUMNS) if c not in have.names]
    if missing:
        raise ValueError(f"{dataset}: column(s) {', '.join(missing)} missing")
    score_names = ["mse", "kld"] + (["score"] if model.kind == "vae_nn" else [])
    schema = pa.schema(
        [have.field(c) for c in ID_COLUMNS] + [pa.field(n, pa.float32()) for n in score_names]
    )
    rows = 0
    with atomic_path(dest) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        columns = list(dict.fromkeys([*preprocessing.features, *ID_COLUMNS]))
        for batch in source.iter_batches(batch_size=batch_rows, columns=columns):
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            result = scores(model, preprocessing.transform(frame))
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
    return rows


def score_datasets(
    config: AnalysisConfig,
    model_dir: Path,
    *,
    progress: ProgressCallback | None = None,
    batch_rows: int = SCORE_BATCH_ROWS,
    force: bool = False,
) -> list[Path]:
    """Score every test dataset with the model in `model_dir` (see the module docstring).

    Args:
        config: the analysis configuration (its output_dir holds the datasets).
        model_dir: a model directory of `vbsad train` (model.keras, preprocessing.json).
        progress: called with `ProgressEvent`s (stage "score", one item per dataset).
        batch_rows: events per batch.
        force: rescore even when everything is up to date.

    Returns:
        the score files, in the datasets manifest's order.

    Raises:
        FileNotFoundError: no datasets manifest, or a model file is missing.
        ValueError: a dataset was modified after its manifest was written, lacks a column, or
            has a feature value the preprocessing cannot take (e.g. log10 of a value <= 0).
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    emit = progress or (lambda event: None)
    model_dir = Path(model_dir).resolve()
    checksum, model_files = model_checksum(model_dir)
    datasets = _test_datasets(config)
    directory = scores_directory(config, model_dir)
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / MANIFEST_NAME
    key = {
        "format_version": SCORES_FORMAT_VERSION,
        "tool_version": tool_version(),
        "model": {"checksum": checksum, "files": model_files},
        "datasets": [{"name": d["name"], "sha256": d["sha256"]} for d in datasets],
    }
    outputs = [directory / f"{d['name']}.parquet" for d in datasets]
    if not force and _up_to_date(read_manifest(manifest_path), key, directory):
        emit(ProgressEvent(_STAGE, "run_finished", message="up to date"))
        return outputs

    from vbsad_batch.models.networks import load_model  # noqa: PLC0415 - TensorFlow only when scoring

    start = time.monotonic()
    manifest_path.unlink(missing_ok=True)  # the manifest marks completion
    remove_stale_temp_files(directory)
    model = load_model(model_dir)
    preprocessing = Preprocessing.from_json(
        (model_dir / PREPROCESSING_FILE_NAME).read_text(encoding="utf-8")
    )
    emit(ProgressEvent(_STAGE, "run_started", total_items=len(datasets)))
    entries: list[dict[str, Any]] = []
    for dataset, dest in zip(datasets, outputs, strict=True):
        item_start = time.monotonic()
        name = dataset["name"]
        emit(ProgressEvent(_STAGE, "item_started", item=name, total_items=len(datasets)))
        rows = _score_one(
            dataset["path"],
            dest,
            model=model,
            preprocessing=preprocessing,
            batch_rows=batch_rows,
            emit=emit,
            name=name,
            n_items=len(datasets),
        )
        entries.append(
            {
                "name": name,
                "path": dest.name,
                "rows": rows,
                "sha256": sha256_file(dest),
                "size_bytes": dest.stat().st_size,
            }
        )
        emit(
            ProgressEvent(
                _STAGE,
                "item_finished",
                item=name,
                total_items=len(datasets),
                rows=rows,
                events=rows,
                message=str(dest),
                seconds=time.monotonic() - item_start,
            )
        )
    manifest = {
        "kind": MANIFEST_KIND,
        "key": key,
        "model_dir": str(model_dir),
        "model_kind": model.kind,
        "datasets": [
            {"name": d["name"], "path": str(d["path"]), "sha256": d["sha256"]} for d in datasets
        ],
        "outputs": entries,
        "provenance": runtime_provenance(),
        "seconds": round(time.monotonic() - start, 3),
    }
    write_manifest(manifest_path, manifest)
    emit(ProgressEvent(_STAGE, "run_finished", message=f"{len(entries)} dataset(s)"))
    return outputs
