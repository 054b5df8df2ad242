"""Training of the VAE and VAE+NN models: tf.data pipelines, a tf.function step, early stopping,
checkpoints every epoch, exact resume.

`train(config, kind=...)` reads the datasets of `vbsad_batch.weighting.datasets` (`sm_train`,
`sm_validation` and, for "vae_nn", `mixed_train_<training_operator>`) from
`<output_dir>/datasets/` and writes the model directory
`<output_dir>/models/<kind>_latent<k>` (`..._<op>` for "vae_nn", trained on operator `op`):

- the Keras model file (`vbsad_batch.model.save_model`), with the best weights (lowest
  validation loss);
- `preprocessing.json`: log10 features and min-max parameters fitted on `sm_train`;
- `config.toml`: a copy of the analysis config file;
- `history.csv`: one row per epoch run: epoch (1-based), train_loss, val_loss (dimensionless,
  the model's loss), seconds (wall time of the epoch, s), events_per_s;
- `metrics.json`: best epoch and validation loss, epochs run, early stop, event counts,
  validation means of the per-event mse and kld, throughput;
- `manifest.json`, written last: the key (datasets by SHA-256, training settings, features,
  tool version) and every output file with its size and SHA-256.

Every file is written atomically (temporary file, then rename).

Training. Hyperparameters come from `config.training`. The SM training events are shuffled every
epoch by a permutation that is a pure function of (seed, epoch), cut into batches and fed
through one tf.data pipeline (built once per training, prefetching up to an epoch ahead) in
chunks of up to `STEP_CHUNK_EVENTS` events; one tf.function runs the steps of a chunk (forward,
loss of `vbsad_batch.models.networks`, gradient, optimizer update) in a graph loop, so that the host
overhead is paid per chunk, not per step. For a plain Adam the update is Keras' Adam arithmetic
on Keras' own optimizer variables, in one fused kernel per model variable (`fused_adam`): a
third less time per step and per trace than `apply_gradients`. For "vae_nn" each SM batch is paired
with a batch of the mixed set (its own permutation, batch size ceil(n_mixed / steps) so that
every mixed event is seen at least once per epoch) with labels 0 (SM) / 1 (EFT) and weights =
the events' yields scaled per class so that each class has total weight n_mixed / 2 (balanced
classes; LIN yields may be negative and are kept). The validation loss, on which early stopping
acts, is the VAE loss (mse + beta kld, per-event mean) on `sm_validation`, for both kinds: the
datasets stage has no mixed validation set. Training stops when it has not improved for
`patience` epochs; the weights of the best epoch are restored before saving.

Large batches. The paper's recipe (batch 32, Adam 5e-4) makes ~1700 small steps per epoch of
55k events; on CPU a step costs about the same up to batches of hundreds, so a large batch
trains far more events per second, but makes fewer updates per epoch: with the paper's learning
rate it needs many more epochs. With a large batch, raise the learning rate with it, roughly as
sqrt(batch / 32) from 5e-4: `batch_size = 2048, learning_rate = 0.007` (what
`benchmarks/training.py` runs by default) or `batch_size = 4096, learning_rate = 0.01`.
Measured on the demo data (55k SM training events, seed 0): the paper's recipe's validation
loss after 8 epochs in ~12-17x less time at 2048 / 0.007, ~8-10x at 4096 / 0.01; higher
rates (0.012 at 4096, 0.01 or more at 8192) stalled on a plateau of the loss (~0.020, which
the paper's recipe itself does not leave in 8 epochs with seed 1), and decaying the rate
(cosine) made it stall earlier.

Determinism and resume. `tf.config.experimental.enable_op_determinism()` is switched on and
every random source is seeded from `config.training.seed`: weight initialisation (Keras global
seed), the sampling of the reparameterisation (a Keras seed generator whose state is a model
variable), the data order (the per-epoch permutations). After every epoch, `checkpoint.npz` is
replaced atomically: all model variables (seed generator state included), all optimizer
variables (Adam moments, iteration count), the best weights so far, the epoch, the best
validation loss, the early-stopping counter and the history. A run killed at any moment
(SIGKILL, or SIGTERM through `vbsad`) and continued with `resume=True` ends with the same
weights as an uninterrupted run: same checkpointed state, same permutations, same ops.

Re-runs. A model directory whose manifest matches (same datasets by SHA-256, same training
settings, features and tool version, output files present with their sizes) is skipped.
Otherwise: with `force=True` the skip is bypassed; with `resume=True` a checkpoint made with
the same key is continued (one with another key is an error: continuing it would mix two
trainings), without a checkpoint the training starts afresh; with `resume=False` the training
starts afresh and an old checkpoint is discarded. The checkpoint is deleted once the manifest
is written.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vbsad_batch.config import LATENT_DIM_RANGE, AnalysisConfig, ModelKind, TrainingConfig
from vbsad_batch.models.checkpoints import (
    CheckpointMismatchError,
    TrainingState,
    assign_variables,
    read_checkpoint,
    save_checkpoint,
)
from vbsad_batch.models.networks import build_model, save_model
from vbsad_batch.models.paths import (
    CHECKPOINT_NAME,
    CONFIG_COPY_NAME,
    HISTORY_NAME,
    METRICS_NAME,
    PREPROCESSING_FILE_NAME,
    model_directory,
)
from vbsad_batch.models.training_data import (
    chunks_per_epoch,
    load_training_data,
    training_pipeline,
)
from vbsad_batch.models.training_step import (
    EpochRunner,
    enable_determinism,
    make_optimizer,
    validation_function,
)
from vbsad_batch.runtime.atomic_write import (
    remove_stale_temp_files,
    write_bytes_atomic,
    write_text_atomic,
)
from vbsad_batch.runtime.progress import ProgressCallback, ProgressEvent
from vbsad_batch.runtime.provenance import (
    MANIFEST_NAME,
    jsonable,
    manifest_up_to_date,
    read_manifest,
    runtime_provenance,
    sha256_file,
    tool_version,
    write_manifest,
)
from vbsad_batch.weighting.datasets import DATASETS_DIR_NAME

__all__ = [
    "TrainingResult",
    "TrainingStatus",
    "train",
]

logger = logging.getLogger(__name__)


TRAINING_FORMAT_VERSION = 1
"""Version of the model directory layout and checkpoint; bump when either changes."""

MANIFEST_KIND = "vbsad_batch.model"
HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "seconds", "events_per_s")

_STAGE = "train"

TrainingStatus = Literal["trained", "resumed", "skipped"]


@dataclass(frozen=True, slots=True)
class TrainingResult:
    """What `train` did.

    Attributes:
        status: "trained" (from scratch), "resumed" (continued from a checkpoint) or "skipped"
            (the model directory was up to date).
        reason: why it was (re)trained, or "up to date".
        model_dir: the model directory.
        epochs_run: epochs in the history (all runs of a resumed training).
        best_epoch: 1-based epoch of the kept weights.
        best_val_loss: validation loss of the kept weights (dimensionless).
        stopped_early: whether early stopping ended the training before `epochs`.
        seconds: wall time of this call, s.
    """

    status: TrainingStatus
    reason: str
    model_dir: Path
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    seconds: float


def _dataset_names(config: AnalysisConfig, kind: ModelKind) -> list[str]:
    names = ["sm_train", "sm_validation"]
    if kind == "vae_nn":
        names.append(f"mixed_train_{config.training_operator}")
    return names


def _key(
    config: AnalysisConfig, kind: ModelKind, training: TrainingConfig, datasets: dict[str, str]
) -> dict[str, Any]:
    return {
        "format_version": TRAINING_FORMAT_VERSION,
        "tool_version": tool_version(),
        "kind": kind,
        "training": jsonable(training),
        "features": list(config.features),
        "log_features": list(config.log_features),
        "training_operator": config.training_operator if kind == "vae_nn" else None,
        "datasets": datasets,
    }


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _digest(value: Any) -> str:
    return hashlib.sha256(_canonical(value).encode()).hexdigest()


def _up_to_date(
    manifest: dict[str, Any] | None, key: dict[str, Any], directory: Path
) -> tuple[bool, str]:
    return manifest_up_to_date(
        manifest, kind=MANIFEST_KIND, key=key, directory=directory, outputs_field="outputs"
    )


def _write_history(path: Path, history: Sequence[dict[str, Any]]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({name: row[name] for name in HISTORY_COLUMNS})
    write_text_atomic(path, text.getvalue())


def _result_from_metrics(
    directory: Path, status: TrainingStatus, reason: str, seconds: float
) -> TrainingResult:
    metrics = json.loads((directory / METRICS_NAME).read_text(encoding="utf-8"))
    return TrainingResult(
        status=status,
        reason=reason,
        model_dir=directory,
        epochs_run=int(metrics["epochs_run"]),
        best_epoch=int(metrics["best_epoch"]),
        best_val_loss=float(metrics["best_val_loss"]),
        stopped_early=bool(metrics["stopped_early"]),
        seconds=seconds,
    )


def train(
    config: AnalysisConfig,
    *,
    kind: ModelKind = "vae",
    latent_dim: int | None = None,
    resume: bool = False,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> TrainingResult:
    """Train a model on the datasets of `config` and write its model directory (see the module
    docstring for the outputs, the training and the re-run rules).

    Args:
        config: the analysis configuration; hyperparameters from `config.training`.
        kind: "vae" or "vae_nn" (the latter on `config.training_operator`'s mixed set).
        latent_dim: latent size; default `config.training.latent_dim`.
        resume: continue from the checkpoint of an interrupted run with the same key.
        force: retrain even when the model directory is up to date.
        progress: called with `ProgressEvent`s (stage "train", one item: the model directory;
            "item_advanced" after each epoch with `events` = training events processed).

    Raises:
        FileNotFoundError: a dataset is missing (run `vbsad datasets` first).
        ValueError: bad settings, empty datasets, or `resume` with a checkpoint of another
            training.
    """
    start = time.monotonic()
    emit = progress or (lambda event: None)
    training = config.training
    if latent_dim is not None:
        low, high = LATENT_DIM_RANGE
        if not low <= latent_dim <= high:
            raise ValueError(f"latent_dim must be in {low}..{high}, got {latent_dim}")
        training = dataclasses.replace(training, latent_dim=latent_dim)
    directory = model_directory(config, kind, training.latent_dim)
    item = directory.name

    datasets_dir = config.output_dir / DATASETS_DIR_NAME
    paths = {name: datasets_dir / f"{name}.parquet" for name in _dataset_names(config, kind)}
    for path in paths.values():
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: dataset missing; write the datasets first: vbsad datasets {config.path}"
            )
    checksums = {name: sha256_file(path) for name, path in paths.items()}
    key = _key(config, kind, training, checksums)
    key_digest = _digest(key)

    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / MANIFEST_NAME
    checkpoint_path = directory / CHECKPOINT_NAME
    fresh, reason = _up_to_date(read_manifest(manifest_path), key, directory)
    emit(ProgressEvent(_STAGE, "run_started", total_items=1))
    if fresh and not force:
        emit(ProgressEvent(_STAGE, "item_skipped", item=item, total_items=1, message=reason))
        emit(ProgressEvent(_STAGE, "run_finished", message="up to date"))
        return _result_from_metrics(directory, "skipped", reason, time.monotonic() - start)
    if force:
        reason = "forced"

    # The manifest marks completion: drop it first, so that a failed run leaves no stale claim.
    manifest_path.unlink(missing_ok=True)
    remove_stale_temp_files(directory)
    checkpoint = read_checkpoint(checkpoint_path) if resume else None
    if checkpoint is not None and checkpoint[0].get("key_digest") != key_digest:
        raise CheckpointMismatchError(
            f"{checkpoint_path}: checkpoint of another training (datasets or settings changed); "
            "delete it or run without --resume to start afresh"
        )
    if checkpoint is None:
        if checkpoint_path.exists():
            logger.info("%s: discarding the checkpoint of an earlier run", checkpoint_path)
        checkpoint_path.unlink(missing_ok=True)

    emit(ProgressEvent(_STAGE, "item_started", item=item, total_items=1))
    seed = int(training.seed)
    enable_determinism(seed)
    prep, data = load_training_data(paths, config, kind)
    n_features = data.x_train.shape[1]
    model = build_model(kind, n_features, training)
    optimizer = make_optimizer(training)
    optimizer.build(model.trainable_variables)

    state = TrainingState()
    best: list[np.ndarray] = [v.numpy() for v in model.variables]
    status: TrainingStatus = "trained"
    if checkpoint is not None:
        meta, groups = checkpoint
        state = TrainingState(**meta["state"])
        assign_variables(model.variables, groups["model"], "model")
        assign_variables(optimizer.variables, groups["optimizer"], "optimizer")
        best = groups["best"]
        status = "resumed"
        reason = f"resumed after epoch {state.next_epoch}"
        logger.info("%s: resuming after epoch %d", directory, state.next_epoch)

    run_epoch = EpochRunner(model, optimizer, kind, training)
    evaluate = validation_function(model, training)
    epochs = int(training.epochs)
    patience = int(training.patience)
    batch_size = int(training.batch_size)
    events_done = 0
    train_seconds = 0.0
    chunks = iter(training_pipeline(data, seed, state.next_epoch, epochs, batch_size))
    n_chunks = chunks_per_epoch(len(data.x_train), batch_size)
    while not state.finished and state.next_epoch < epochs:
        epoch = state.next_epoch
        epoch_start = time.perf_counter()
        train_loss = run_epoch(chunks, n_chunks)
        seconds = time.perf_counter() - epoch_start
        val_loss = evaluate(data.x_val)[0]
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise ValueError(
                f"{directory}: loss is not finite at epoch {epoch + 1} (train {train_loss}, "
                f"validation {val_loss}); lower the learning rate"
            )
        events_done += len(data.x_train)
        train_seconds += seconds
        state.history.append(
            {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "seconds": round(seconds, 6),
                "events_per_s": round(len(data.x_train) / seconds, 1),
            }
        )
        if val_loss < state.best_val_loss:
            state.best_val_loss = val_loss
            state.best_epoch = epoch + 1
            state.wait = 0
            best = [v.numpy() for v in model.variables]
        else:
            state.wait += 1
        state.next_epoch = epoch + 1
        state.stopped_early = state.wait >= patience and state.next_epoch < epochs
        state.finished = state.stopped_early or state.next_epoch >= epochs
        save_checkpoint(
            checkpoint_path,
            key_digest=key_digest,
            state=state,
            model=model,
            optimizer=optimizer,
            best=best,
        )
        logger.info(
            "%s: epoch %d/%d: loss %.6g, val_loss %.6g, %.0f events/s",
            item,
            epoch + 1,
            epochs,
            train_loss,
            val_loss,
            len(data.x_train) / seconds,
        )
        emit(
            ProgressEvent(
                _STAGE,
                "item_advanced",
                item=item,
                total_items=1,
                events=events_done,
                rows=epoch + 1,
                message=f"epoch {epoch + 1}/{epochs} val_loss {val_loss:.6g}",
            )
        )

    assign_variables(model.variables, best, "best")
    _, val_mse, val_kld = evaluate(data.x_val)
    outputs = [save_model(model, directory)]
    outputs.append(directory / PREPROCESSING_FILE_NAME)
    write_text_atomic(outputs[-1], prep.to_json())
    outputs.append(directory / CONFIG_COPY_NAME)
    write_bytes_atomic(outputs[-1], config.path.read_bytes())
    outputs.append(directory / HISTORY_NAME)
    _write_history(outputs[-1], state.history)
    metrics = {
        "kind": kind,
        "latent_dim": training.latent_dim,
        "training_operator": key["training_operator"],
        "epochs": epochs,
        "epochs_run": len(state.history),
        "best_epoch": state.best_epoch,
        "best_val_loss": state.best_val_loss,
        "stopped_early": state.stopped_early,
        "validation_mse_mean": val_mse,
        "validation_kld_mean": val_kld,
        "n_train": len(data.x_train),
        "n_validation": len(data.x_val),
        "n_mixed": 0 if data.x_mix is None else len(data.x_mix),
        "seed": seed,
        "train_events_per_s": round(events_done / train_seconds, 1) if train_seconds else None,
    }
    outputs.append(directory / METRICS_NAME)
    write_text_atomic(outputs[-1], json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    manifest = {
        "kind": MANIFEST_KIND,
        "key": key,
        "datasets": [
            {"name": name, "path": str(path), "sha256": checksums[name]}
            for name, path in paths.items()
        ],
        "outputs": [
            {"path": p.name, "size_bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for p in outputs
        ],
        "status": status,
        "provenance": runtime_provenance(),
        "seconds": round(time.monotonic() - start, 3),
    }
    write_manifest(manifest_path, manifest)
    checkpoint_path.unlink(missing_ok=True)
    emit(
        ProgressEvent(
            _STAGE,
            "item_finished",
            item=item,
            total_items=1,
            events=events_done,
            rows=len(state.history),
            message=str(directory),
            seconds=time.monotonic() - start,
        )
    )
    emit(ProgressEvent(_STAGE, "run_finished", message=f"{status}: {directory}"))
    return TrainingResult(
        status=status,
        reason=reason,
        model_dir=directory,
        epochs_run=len(state.history),
        best_epoch=state.best_epoch,
        best_val_loss=state.best_val_loss,
        stopped_early=state.stopped_early,
        seconds=time.monotonic() - start,
    )
