"""The inputs of the scan: the scored models of an analysis and their score columns.

`discover_models` finds the models whose `vbsad score` run completed (a scores manifest);
`load_columns` reads one score column with the yields and event identities of a score file;
`score_samples` turns SM, LIN and QUAD columns into `ScoreSample`s whose event ids agree for
the same Monte Carlo event (so that the bootstrap gives it one weight).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vbsad_batch.config import AnalysisConfig
from vbsad_batch.models.scoring import MANIFEST_KIND as SCORES_MANIFEST_KIND, SCORES_DIR_NAME
from vbsad_batch.runtime.file_errors import reading
from vbsad_batch.runtime.provenance import MANIFEST_NAME, read_manifest
from vbsad_batch.scan.statistics import ScoreSample

__all__ = [
    "ModelScores",
    "ScoreColumns",
    "discover_models",
    "load_columns",
    "operator_order",
    "score_samples",
]


_KIND_ORDER = {"vae": 0, "vae_nn": 1}


@dataclass(frozen=True, slots=True)
class ModelScores:
    """The scores of one model, as found under <output_dir>/scores/.

    Attributes:
        name: the model directory name, e.g. "vae_latent3" or "vae_nn_latent3_cW".
        kind: "vae" or "vae_nn".
        directory: the scores directory.
        files: dataset name -> (score file, its SHA-256 recorded by `vbsad score`).
    """

    name: str
    kind: str
    directory: Path
    files: dict[str, tuple[Path, str]]


def operator_order(config: AnalysisConfig) -> tuple[str, ...]:
    """Declared operators in file order, then any others sorted (the table's column order)."""
    declared = config.declared_operators
    return declared + tuple(op for op in config.operators() if op not in declared)


def discover_models(
    config: AnalysisConfig, models: Sequence[str] | None = None
) -> list[ModelScores]:
    """The scored models under <output_dir>/scores/ (those whose `vbsad score` run completed).

    Args:
        config: the analysis configuration.
        models: model directory names to keep (default: every scored model).

    Returns:
        the models, VAEs first, then by name.

    Raises:
        FileNotFoundError: no scores, or a model of `models` has none.
        ValueError: a model lacks the scores of a test dataset of an operator.
    """
    root = config.output_dir / SCORES_DIR_NAME
    found: dict[str, ModelScores] = {}
    incomplete: list[str] = []
    candidates = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for directory in candidates:
        manifest = read_manifest(directory / MANIFEST_NAME)
        if manifest is None or manifest.get("kind") != SCORES_MANIFEST_KIND:
            incomplete.append(directory.name)
            continue
        kind = str(manifest.get("model_kind", ""))
        if kind not in _KIND_ORDER:
            raise ValueError(
                f"{directory / MANIFEST_NAME}: unknown model kind {kind!r} (expected "
                "'vae' or 'vae_nn')"
            )
        files = {
            str(entry["name"]): (directory / str(entry["path"]), str(entry["sha256"]))
            for entry in manifest.get("outputs", [])
        }
        found[directory.name] = ModelScores(directory.name, kind, directory, files)
    if models:
        missing = [name for name in models if name not in found]
        if missing:
            known = ", ".join(found) or "none"
            unfinished = f"; without a complete scoring run: {', '.join(incomplete)}"
            raise FileNotFoundError(
                f"{root}: no scores of model(s) {', '.join(missing)} (scored models: {known}"
                f"{unfinished if incomplete else ''}); run `vbsad score` first"
            )
        selected = [found[name] for name in dict.fromkeys(models)]
    else:
        selected = list(found.values())
    if not selected:
        raise FileNotFoundError(f"{root}: no scored model; run `vbsad score` first")
    splits = ["test"] + (["validation"] if config.scan.region_from == "validation" else [])
    for model in selected:
        for op in operator_order(config):
            for split in splits:
                for dataset in (f"sm_{split}", f"lin_{split}_{op}", f"quad_{split}_{op}"):
                    if dataset not in model.files:
                        hint = "" if split == "test" else ' (or [scan] region_from = "test")'
                        raise ValueError(
                            f"{model.directory}: no scores of {dataset} (operator {op}); run "
                            f"`vbsad datasets` and `vbsad score` again{hint}"
                        )
    return sorted(selected, key=lambda m: (_KIND_ORDER[m.kind], m.name))


@dataclass(frozen=True, slots=True)
class ScoreColumns:
    """One score column of a score file with what identifies its events."""

    score: np.ndarray  # float64
    yield_: np.ndarray  # float64, events
    event: np.ndarray  # int64, event number in its input file
    input_index: np.ndarray  # int64, index into `inputs`
    inputs: tuple[str, ...]  # SHA-256 of the input files


_EVENT_BITS = 40  # event numbers below 2^40 (10^12); the input file's code above


def load_columns(path: Path, column: str, *, remake: str = "") -> ScoreColumns:
    """One score column, the yields (events) and the event identities of a score file (one
    that cannot be read: an error naming it and `remake`, the command that makes it)."""
    with reading(path, what="score file (Parquet)", remake=remake):
        schema = pq.read_schema(path)
    for name in ("yield", "event", "input_sha256", column):
        if name not in schema.names:
            raise ValueError(f"{path}: column {name!r} missing (columns: {schema.names})")
    with reading(path, what="score file (Parquet)", remake=remake):
        table = pq.read_table(path, columns=["yield", "event", "input_sha256", column])
    score = table.column(column).to_numpy().astype(np.float64)
    weights = table.column("yield").to_numpy().astype(np.float64)
    for name, values in ((column, score), ("yield", weights)):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ValueError(
                f"{path}: {bad.size} non-finite value(s) in column {name!r} (first at row "
                f"{int(bad[0])})"
            )
    event = table.column("event").to_numpy().astype(np.int64)
    if event.size and (int(event.min()) < 0 or int(event.max()) >= 1 << _EVENT_BITS):
        raise ValueError(f"{path}: event numbers outside [0, 2^{_EVENT_BITS})")
    encoded = pc.dictionary_encode(table.column("input_sha256")).combine_chunks()
    return ScoreColumns(
        score=score,
        yield_=weights,
        event=event,
        input_index=encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
        inputs=tuple(str(v) for v in encoded.dictionary.to_pylist()),
    )


def score_samples(parts: Sequence[ScoreColumns]) -> tuple[ScoreSample, ...]:
    """SM, LIN, QUAD samples whose event ids are equal for the same Monte Carlo event (the same
    input file and event number, as in a reweighted sample), so that the bootstrap gives them
    one weight. The ids depend only on the inputs' SHA-256 (sorted), not on the reading order."""
    codes = {sha: i for i, sha in enumerate(sorted({sha for p in parts for sha in p.inputs}))}
    samples = []
    for part in parts:
        table = np.asarray([codes[sha] for sha in part.inputs], dtype=np.int64)
        ids = (table[part.input_index] << _EVENT_BITS) | part.event if part.inputs else part.event
        samples.append(ScoreSample(score=part.score, yield_=part.yield_, event_id=ids))
    return tuple(samples)
