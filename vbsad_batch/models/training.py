"""Training of the VAE and VAE+NN models: tf.data pipelines, a tf.function step, early stopping,
checkpoints every epoch, exact resume.

`train(config, kind=...)` reads the datasets of `vbsad_batch.weighting.datasets` (`sm_train`,
`sm_validation` and, for "vae_nn", `mixed_train_<training_operator>`) from
`<output_dir>/datasets/` and writes the model directory
`<output_dir>/models/<kind>_latent<k>` (`..._<op>` for "vae_nn", trained on operator `op`):

- the Keras model file (`vbsad_batch.models.networks.save_model`), with the best weights (lowest
  validation loss), and `network.npz`, the same weights for the NumPy forward pass of scoring
  and the report (`vbsad_batch.models.network_export`);
- `preprocessing.json`: log10 features and min-max parameters fitted on `sm_train`;
- `config.toml`: a copy of the analysis config file;
- `history.csv`: one row per epoch run: epoch (1-based), train_loss, val_loss (dimensionless,
  the model's loss), its two terms val_vae_loss (mse + beta kld of the SM validation events)
  and val_bce_term (VAE+NN: bce_weight times the classifier's class-balanced BCE on the mixed
  validation set; 0 for a VAE), seconds (wall time of the epoch, s), events_per_s;
- `metrics.json`: best epoch and validation loss, epochs run, early stop, event counts,
  validation means of the per-event mse and kld, throughput (and, data parallel, the ranks and
  the Allreduce time per step);
- `manifest.json`, written last: the key (datasets by SHA-256, training settings, features,
  tool version) and every output file with its size and SHA-256.

Every file is written atomically (temporary file, then rename). Equal trainings give equal
weights bit for bit, and byte-identical `preprocessing.json` and `config.toml` (for the same
config file); the other files record times: the model file its save time (Keras'
`date_saved`, and the zip entry's time), `history.csv` the `seconds` and `events_per_s` of each
epoch (its losses are reproducible), `metrics.json` the `train_events_per_s`, the manifest its
provenance and durations.

MPI (`vbsad_batch.models.parallel`). The models of a grid are trained round-robin over the
ranks, each by one process as if alone (the same bits). With `[training] data_parallel = true`
a model is instead trained by all ranks together (`comm`; `vbsad_batch.models.data_parallel`):
the same training up to float rounding, rank 0 writing.

Training. Hyperparameters come from `config.training`. The datasets are streamed, never held in
memory: read in batches, only the columns the model needs, into float32 row caches on disk
(`vbsad_batch.models.training_data`), so that the memory of a training does not grow with its
number of events. The SM training events are shuffled every epoch in an order that is a pure
function of (seed, epoch) (blocks of rows in a random order, rows shuffled within windows of
`WINDOW_ROWS`: a full shuffle up to that many events), cut into batches and fed through one
tf.data pipeline (built once per training, a few chunks ahead) in chunks of up to
`STEP_CHUNK_EVENTS` events; one tf.function runs the steps of a chunk (forward,
loss of `vbsad_batch.models.networks`, gradient, optimizer update) in a graph loop, so that the host
overhead is paid per chunk, not per step. For a plain Adam the update is Keras' Adam arithmetic
on Keras' own optimizer variables, in one fused kernel per model variable (`fused_adam`): a
third less time per step and per trace than `apply_gradients`. For "vae_nn" each SM batch is paired
with a batch of the mixed set (its own order, batch size ceil(n_mixed / steps) so that
every mixed event is seen at least once per epoch) with labels 0 (SM) / 1 (EFT) and weights =
the events' yields scaled per class so that each class has total weight n_mixed / 2 (balanced
classes; LIN yields may be negative and are kept). The validation loss, on which early stopping
acts, is the training loss on the validation sets: the VAE loss (mse + beta kld, per-event
mean) on `sm_validation`, and for "vae_nn" plus `bce_weight` times the classifier's
cross-entropy on `mixed_validation_<op>` (so that early stopping watches what the VAE+NN is
trained for). Training stops when it has not improved for `patience` epochs; the weights of the
best epoch are restored before saving. When the best epoch is within `patience` of the
`epochs` cap the training had not converged: a warning says so (log, metrics.json and the
manifest's `converged` and `warnings`, the report).

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
variable), the data order (the per-epoch orders). After every epoch, `checkpoint.npz` is
replaced atomically: all model variables (seed generator state included), all optimizer
variables (Adam moments, iteration count), the best weights so far, the epoch, the best
validation loss, the early-stopping counter and the history. A run killed at any moment
(SIGKILL, or SIGTERM through `vbsad`) and continued with `resume=True` ends with the same
weights as an uninterrupted run: same checkpointed state, same data orders, same ops. A
data-parallel checkpoint records its number of ranks, and resumes under the same number only.

Re-runs (the stage contract, `vbsad_batch.runtime.stage`). The datasets must be current for
the config and unmodified (`vbsad_batch.weighting.datasets.current_datasets`), else a
`StaleInputError` says to run `vbsad datasets` again. A model directory whose manifest matches
(same datasets by SHA-256, same training settings, features and tool version, every output
with its recorded SHA-256) is skipped.
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from vbsad_batch.config import AnalysisConfig, ModelKind, ModelSpec, TrainingConfig
from vbsad_batch.models.checkpoints import (
    CheckpointCorruptError,
    CheckpointMismatchError,
    TrainingState,
    assign_variables,
    read_checkpoint,
    save_checkpoint,
    set_aside,
    variables_mismatch,
)
from vbsad_batch.models.data_parallel import (
    DataParallelEpochRunner,
    TrainingRanks,
    restore_snapshot,
    snapshot,
)
from vbsad_batch.models.model_unit import model_key, model_training, model_unit, training_datasets
from vbsad_batch.models.networks import build_model, save_model
from vbsad_batch.models.paths import (
    CHECKPOINT_NAME,
    CONFIG_COPY_NAME,
    HISTORY_NAME,
    METRICS_NAME,
    MODEL_FILE_NAME,
    NETWORK_FILE_NAME,
    PREPROCESSING_FILE_NAME,
)
from vbsad_batch.models.preprocessing import Preprocessing
from vbsad_batch.models.training_data import (
    TrainingData,
    chunks_per_epoch,
    load_training_data,
    rank_training_pipeline,
    training_pipeline,
)
from vbsad_batch.models.training_step import (
    EpochRunner,
    enable_determinism,
    make_optimizer,
    validation_function,
)
from vbsad_batch.runtime.mpi import Communicator
from vbsad_batch.runtime.progress import ProgressCallback, ProgressEvent
from vbsad_batch.runtime.stage import StageOutputs, StageResult
from vbsad_batch.weighting.datasets import current_datasets

__all__ = ["TrainingResult", "train"]

logger = logging.getLogger(__name__)

HISTORY_COLUMNS = (
    "epoch",
    "train_loss",
    "val_loss",
    "val_vae_loss",
    "val_bce_term",
    "seconds",
    "events_per_s",
)

_STAGE = "train"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingResult(StageResult):
    """What `train` did (see `StageResult`; status "resumed": continued from a checkpoint).

    Attributes:
        epochs_run: epochs in the history (all runs of a resumed training).
        best_epoch: 1-based epoch of the kept weights.
        best_val_loss: validation loss of the kept weights (dimensionless).
        stopped_early: whether early stopping ended the training before `epochs`.
        converged: whether the best epoch is more than `patience` epochs before the cap (if
            not, the training was still improving when it stopped: a warning says so).
    """

    epochs_run: int
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    converged: bool

    @property
    def model_dir(self) -> Path:
        """The model directory."""
        return self.directory


@dataclass
class _Training:
    """One training in progress: what it fits, with what, and where it stands."""

    config: AnalysisConfig
    spec: ModelSpec
    training: TrainingConfig
    item: str
    prep: Preprocessing
    data: TrainingData
    model: Any
    optimizer: Any
    state: TrainingState
    best: list[np.ndarray]
    events_done: int = 0
    train_seconds: float = 0.0
    ranks: int = 1  # data parallel: the number of ranks
    # data parallel: per epoch of this run, (Allreduce calls, their wall time on this rank, s)
    allreduce: list[tuple[int, float]] = dataclasses.field(default_factory=list)


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _history_csv(history: Sequence[dict[str, Any]]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({name: row[name] for name in HISTORY_COLUMNS})
    return text.getvalue()


# --- resume, fit, write ---------------------------------------------------------------------------


def _checkpoint_to_resume(
    path: Path, key_digest: str, resume: bool, ranks: int
) -> tuple[dict[str, Any], dict[str, list[np.ndarray]]] | None:
    """The checkpoint to continue, or None to start afresh (an old one is then discarded).

    Raises:
        CheckpointMismatchError: `resume` with a checkpoint of another training, or of a
            data-parallel training on another number of ranks than `ranks`.
    """
    try:
        checkpoint = read_checkpoint(path) if resume else None
    except CheckpointCorruptError as exc:
        _unusable_checkpoint(exc)
        checkpoint = None
    if checkpoint is not None and checkpoint[0].get("key_digest") != key_digest:
        raise CheckpointMismatchError(
            f"{path}: checkpoint of another training (datasets or settings changed); "
            "delete it or run without --resume to start afresh"
        )
    made_on = int(checkpoint[0].get("ranks", 1)) if checkpoint is not None else ranks
    if made_on != ranks:
        raise CheckpointMismatchError(
            f"{path}: checkpoint of a training on {made_on} rank(s), resumed on {ranks}: "
            f"resume it under the same number of ranks (mpiexec -n {made_on}, [training] "
            "data_parallel as then), or run without --resume to start afresh"
        )
    if checkpoint is None:
        if path.exists():
            logger.info("%s: discarding the checkpoint of an earlier run", path)
        path.unlink(missing_ok=True)
    return checkpoint


def _unusable_checkpoint(exc: CheckpointCorruptError) -> None:
    """Move an unusable checkpoint aside, loudly: the training starts afresh."""
    aside = set_aside(exc.path)
    logger.warning("%s; moved aside to %s, training starts afresh", exc, aside.name)


def _start(
    config: AnalysisConfig,
    spec: ModelSpec,
    training: TrainingConfig,
    *,
    directory: Path,
    paths: dict[str, Path],
    checkpoint: tuple[dict[str, Any], dict[str, list[np.ndarray]]] | None,
) -> _Training:
    """Load the datasets `paths` (name -> file), build the model and optimizer, and restore
    the checkpoint if any."""
    enable_determinism(int(training.seed))
    # The caches' anonymous files: beside the model (rank 0's directory exists, and holds the
    # space of the outputs anyway), else in the system's temporary directory.
    scratch = directory if directory.is_dir() else None
    prep, data = load_training_data(paths, config, spec, scratch=scratch)
    model = build_model(spec.kind, data.n_features, training)
    optimizer = make_optimizer(training)
    optimizer.build(model.trainable_variables)
    state = TrainingState()
    best: list[np.ndarray] = [v.numpy() for v in model.variables]
    if checkpoint is not None:
        meta, groups = checkpoint
        problem = (
            variables_mismatch(model.variables, groups["model"])
            or variables_mismatch(optimizer.variables, groups["optimizer"])
            or variables_mismatch(model.variables, groups["best"])
        )
        if problem is not None:
            _unusable_checkpoint(CheckpointCorruptError(directory / CHECKPOINT_NAME, problem))
            checkpoint = None
    if checkpoint is not None:
        meta, groups = checkpoint
        state = TrainingState(**meta["state"])
        assign_variables(model.variables, groups["model"], "model")
        assign_variables(optimizer.variables, groups["optimizer"], "optimizer")
        best = groups["best"]
        logger.info("%s: resuming after epoch %d", directory, state.next_epoch)
    return _Training(
        config, spec, training, directory.name, prep, data, model, optimizer, state, best
    )


def _fit(
    run: _Training,
    ranks: TrainingRanks,
    checkpoint_path: Path | None,
    key_digest: str,
    emit: ProgressCallback,
) -> None:
    """Train epoch by epoch until early stopping or the epoch cap, checkpointing each epoch.

    With several ranks (data parallel) every rank runs the steps on its share of each batch;
    rank 0 alone validates, decides and checkpoints (`_end_epoch`), and the others continue
    with the loop state it broadcasts."""
    training, data = run.training, run.data
    run_epoch: EpochRunner | DataParallelEpochRunner
    if ranks.size == 1:
        run_epoch = EpochRunner(run.model, run.optimizer, run.spec.kind, training)
    else:
        run_epoch = DataParallelEpochRunner(
            run.model, run.optimizer, run.spec.kind, training, ranks.comm
        )
    evaluate = validation_function(run.model, training) if ranks.is_root else None
    seed, epochs, batch_size = int(training.seed), int(training.epochs), int(training.batch_size)
    first = run.state.next_epoch
    if ranks.size == 1:
        pipeline = training_pipeline(data, seed, first, epochs, batch_size)
    else:
        pipeline = rank_training_pipeline(
            data, seed, first, epochs, batch_size, rank=ranks.rank, size=ranks.size
        )
    chunks: Iterator[Any] = iter(pipeline)
    n_chunks = chunks_per_epoch(data.n_train, batch_size)
    run.ranks = ranks.size
    while not run.state.finished and run.state.next_epoch < epochs:
        epoch_start = time.perf_counter()
        train_loss = run_epoch(chunks, n_chunks)
        seconds = time.perf_counter() - epoch_start
        if isinstance(run_epoch, DataParallelEpochRunner):
            run.allreduce.append(run_epoch.take_allreduce_stats())
        end = partial(
            _end_epoch,
            run,
            evaluate=evaluate,
            train_loss=train_loss,
            seconds=seconds,
            checkpoint_path=checkpoint_path,
            key_digest=key_digest,
            emit=emit,
            ranks=ranks.size,
        )
        run.state = ranks.exchange("epoch", end)


def _end_epoch(
    run: _Training,
    *,
    evaluate: Any,
    train_loss: float,
    seconds: float,
    checkpoint_path: Path | None,
    key_digest: str,
    emit: ProgressCallback,
    ranks: int,
) -> TrainingState:
    """After an epoch (rank 0): validate, record, keep the best weights, decide on early
    stopping, checkpoint, report; return the loop state."""
    training, data, state = run.training, run.data, run.state
    assert evaluate is not None  # rank 0 has both
    assert checkpoint_path is not None
    epoch, epochs, patience = state.next_epoch, int(training.epochs), int(training.patience)
    val_loss, val_mse, val_kld = evaluate(data)
    val_vae_loss = val_mse + float(training.beta) * val_kld
    if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
        raise ValueError(
            f"{checkpoint_path.parent}: loss is not finite at epoch {epoch + 1} (train "
            f"{train_loss}, validation {val_loss}); lower the learning rate"
        )
    run.events_done += data.n_train
    run.train_seconds += seconds
    state.history.append(
        {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_vae_loss": val_vae_loss,
            "val_bce_term": val_loss - val_vae_loss,
            "seconds": round(seconds, 6),
            "events_per_s": round(data.n_train / seconds, 1),
        }
    )
    if val_loss < state.best_val_loss:
        state.best_val_loss = val_loss
        state.best_epoch = epoch + 1
        state.wait = 0
        run.best = [v.numpy() for v in run.model.variables]
    else:
        state.wait += 1
    state.next_epoch = epoch + 1
    state.stopped_early = state.wait >= patience and state.next_epoch < epochs
    state.finished = state.stopped_early or state.next_epoch >= epochs
    save_checkpoint(
        checkpoint_path,
        key_digest=key_digest,
        state=state,
        model=run.model,
        optimizer=run.optimizer,
        best=run.best,
        ranks=ranks,
    )
    logger.info(
        "%s: epoch %d/%d: loss %.6g, val_loss %.6g, %.0f events/s",
        run.item,
        epoch + 1,
        epochs,
        train_loss,
        val_loss,
        data.n_train / seconds,
    )
    emit(
        ProgressEvent(
            _STAGE,
            "item_advanced",
            item=run.item,
            total_items=1,
            events=run.events_done,
            rows=epoch + 1,
            message=f"epoch {epoch + 1}/{epochs} val_loss {val_loss:.6g}",
        )
    )
    return state


def _exchange_metrics(run: _Training) -> dict[str, Any]:
    """How the gradient exchange of a data-parallel training did, as rank 0 saw it: ranks,
    Allreduce calls (steps) per epoch, and the mean wall time per call (its waits for the
    slower ranks included), s, over this run's epochs after its first (in which the ranks
    trace their graphs at different speeds; all of them if there is one)."""
    steady = run.allreduce[1:] or run.allreduce
    calls = sum(c for c, _ in steady)
    return {
        "ranks": run.ranks,
        "allreduce_calls_per_epoch": run.allreduce[0][0] if run.allreduce else 0,
        "allreduce_seconds_per_call": (
            round(sum(s for _, s in steady) / calls, 9) if calls else None
        ),
    }


def _converged(state: TrainingState, training: TrainingConfig) -> bool:
    """Whether the training found its minimum: the best epoch is more than `patience` epochs
    before the `epochs` cap (so early stopping would have stopped it, or did)."""
    return state.best_epoch <= int(training.epochs) - int(training.patience)


def _not_converged_warning(name: str, metrics: dict[str, Any], training: TrainingConfig) -> str:
    return (
        f"model {name} did not converge: its best validation loss is at epoch "
        f"{metrics['best_epoch']} of at most {training.epochs}, within the patience "
        f"({training.patience}) of the cap: it was still improving when it stopped; raise "
        "[training] epochs (or the learning rate) and train again"
    )


def _write_model(run: _Training, out: StageOutputs) -> dict[str, Any]:
    """Restore the best weights and write the model directory's files; return the metrics."""
    assign_variables(run.model.variables, run.best, "best")
    _, val_mse, val_kld = validation_function(run.model, run.training)(run.data)
    save_model(run.model, out.directory)
    out.add(MODEL_FILE_NAME)
    out.add(NETWORK_FILE_NAME)  # written by save_model: the network for NumPy scoring
    out.write_text(PREPROCESSING_FILE_NAME, run.prep.to_json())
    out.write_bytes(CONFIG_COPY_NAME, run.config.path.read_bytes())
    out.write_text(HISTORY_NAME, _history_csv(run.state.history))
    state, data = run.state, run.data
    metrics = {
        "kind": run.spec.kind,
        "latent_dim": run.spec.latent_dim,
        "training_operator": run.spec.training_operator,
        "epochs": int(run.training.epochs),
        "epochs_run": len(state.history),
        "best_epoch": state.best_epoch,
        "best_val_loss": state.best_val_loss,
        "stopped_early": state.stopped_early,
        "validation_mse_mean": val_mse,
        "validation_kld_mean": val_kld,
        "n_train": data.n_train,
        "n_validation": data.val.rows,
        "n_mixed": 0 if data.mix is None else data.mix.rows,
        "seed": int(run.training.seed),
        "converged": _converged(state, run.training),
        "train_events_per_s": (
            round(run.events_done / run.train_seconds, 1) if run.train_seconds else None
        ),
    }
    if run.ranks > 1:
        metrics["data_parallel"] = _exchange_metrics(run)
    out.write_text(METRICS_NAME, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def train(
    config: AnalysisConfig,
    *,
    kind: ModelKind = "vae",
    latent_dim: int | None = None,
    seed: int | None = None,
    training_operator: str | None = None,
    resume: bool = False,
    force: bool = False,
    progress: ProgressCallback | None = None,
    comm: Communicator | None = None,
) -> TrainingResult:
    """Train a model on the datasets of `config` and write its model directory, through the
    stage contract (see the module docstring for the outputs, the training and the re-run
    rules).

    With `comm` of N > 1 ranks and `[training] data_parallel = true`, a collective call: every
    rank calls it with the same arguments, the model is trained data parallel on all of them
    (`vbsad_batch.models.data_parallel`), rank 0 alone writes, and every rank returns rank 0's
    result. Otherwise `comm` is not used: this process trains the model alone.

    Args:
        config: the analysis configuration; hyperparameters from `config.training`.
        kind: "vae" or "vae_nn" (the latter on its training operator's mixed set).
        latent_dim: latent size; default `config.training.latent_dim` (the grid's first).
        seed: training seed; default `config.training.seed` (the grid's first).
        training_operator: the VAE+NN's operator; default the config's (first) one.
        resume: continue from the checkpoint of an interrupted run with the same key.
        force: retrain even when the model directory is up to date.
        progress: called with `ProgressEvent`s (stage "train", one item: the model directory;
            "item_advanced" after each epoch with `events` = training events processed); on
            rank 0 only.
        comm: the MPI communicator of a data-parallel training (see above).

    Raises:
        StaleInputError: the datasets are missing, incomplete, stale for the config or
            modified (run `vbsad datasets` again).
        ValueError: bad settings, empty datasets, or `resume` with a checkpoint of another
            training or of another number of ranks (`CheckpointMismatchError`).
        RankFailure: data parallel, on the ranks other than 0: rank 0 raised (its error).
    """
    spec = config.model_spec(kind, latent_dim, seed, training_operator)
    training = model_training(config, spec)
    ranks = TrainingRanks(comm if training.data_parallel else None)
    if not ranks.is_root:
        return ranks.follow(partial(_follow, config, spec, training, ranks))
    try:
        result = _train_here(
            config, spec, training, ranks, resume=resume, force=force, progress=progress
        )
    except BaseException as exc:
        ranks.fail(exc)
        raise
    return ranks.finish(result)


def _follow(
    config: AnalysisConfig, spec: ModelSpec, training: TrainingConfig, ranks: TrainingRanks
) -> TrainingResult:
    """A rank other than 0 of a data-parallel training: start from rank 0's state, run the
    steps on this rank's shares, follow rank 0's decisions; return rank 0's result."""
    tag, message = ranks.receive("start", "done")
    if tag == "done":  # up to date: rank 0 did not train
        done: TrainingResult = message
        return done
    paths, values = message
    directory = model_unit(config, spec).directory
    run = _start(config, spec, training, directory=directory, paths=paths, checkpoint=None)
    try:
        run.state = restore_snapshot(run.model, run.optimizer, values)
        _fit(run, ranks, None, "", lambda event: None)
    finally:
        run.data.close()
    result: TrainingResult = ranks.receive("done")[1]
    return result


def _train_here(
    config: AnalysisConfig,
    spec: ModelSpec,
    training: TrainingConfig,
    ranks: TrainingRanks,
    *,
    resume: bool,
    force: bool,
    progress: ProgressCallback | None,
) -> TrainingResult:
    """`train` in this process, or on rank 0 of a data-parallel training: the stage contract,
    the training, the outputs."""
    unit = model_unit(config, spec)
    datasets = current_datasets(config)
    key = model_key(config, spec, datasets)
    paths = {name: datasets[name].path for name in training_datasets(spec)}
    key_digest = _digest(key)
    emit = progress or (lambda event: None)

    def write(out: StageOutputs, reason: str) -> dict[str, Any]:
        checkpoint_path = unit.directory / CHECKPOINT_NAME
        checkpoint = _checkpoint_to_resume(checkpoint_path, key_digest, resume, ranks.size)
        emit(ProgressEvent(_STAGE, "run_started", total_items=1))
        emit(ProgressEvent(_STAGE, "item_started", item=unit.name, total_items=1))
        start = time.monotonic()
        run = _start(
            config, spec, training, directory=unit.directory, paths=paths, checkpoint=checkpoint
        )
        if checkpoint is not None:
            out.status = "resumed"
            out.reason = f"resumed after epoch {run.state.next_epoch}"
        try:
            if ranks.size > 1:  # every rank starts from this state
                state = snapshot(run.model, run.optimizer, run.state)
                ranks.exchange("start", lambda: (paths, state))
                ranks.steps_started()
            _fit(run, ranks, checkpoint_path, key_digest, emit)
            ranks.steps_ended()
            metrics = _write_model(run, out)
        finally:
            run.data.close()
        out.manifest["data_parallel_ranks"] = ranks.size
        out.manifest["datasets"] = [
            {"name": name, "sha256": sha} for name, sha in key["datasets"].items()
        ]
        out.manifest["converged"] = metrics["converged"]
        out.manifest["warnings"] = (
            [] if metrics["converged"] else [_not_converged_warning(unit.name, metrics, training)]
        )
        out.summary = (
            f"best epoch {metrics['best_epoch']}, validation loss {metrics['best_val_loss']:.4g}"
        )
        emit(
            ProgressEvent(
                _STAGE,
                "item_finished",
                item=unit.name,
                total_items=1,
                events=run.events_done,
                rows=len(run.state.history),
                message=str(unit.directory),
                seconds=time.monotonic() - start,
            )
        )
        return metrics

    ran = unit.run(key, write, force=force, progress=progress)
    if ran.value is None:  # up to date: the metrics of the finished training
        metrics = json.loads((unit.directory / METRICS_NAME).read_text(encoding="utf-8"))
    else:
        metrics = ran.value
        (unit.directory / CHECKPOINT_NAME).unlink(missing_ok=True)
    summary = f"best epoch {metrics['best_epoch']}, validation loss {metrics['best_val_loss']:.4g}"
    converged = bool(metrics["converged"])
    if not converged:
        logger.warning("%s", _not_converged_warning(unit.name, metrics, training))
        summary += " (NOT converged)"
    return TrainingResult(
        **ran.fields(summary),
        epochs_run=int(metrics["epochs_run"]),
        best_epoch=int(metrics["best_epoch"]),
        best_val_loss=float(metrics["best_val_loss"]),
        stopped_early=bool(metrics["stopped_early"]),
        converged=converged,
    )
