"""Training of the VAE and VAE+NN models: tf.data pipelines, a tf.function step, early stopping,
checkpoints every epoch, exact resume.

`train(config, kind=...)` reads the datasets of `vbsad_batch.datasets` (`sm_train`,
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
loss of `vbsad_batch.model`, gradient, optimizer update) in a graph loop, so that the host
overhead is paid per chunk, not per step. For a plain Adam the update is Keras' Adam arithmetic
on Keras' own optimizer variables, in one fused kernel per model variable (`_fused_adam`): a
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import tensorflow as tf

from vbsad_batch.atomic_write import remove_stale_temp_files, write_bytes_atomic, write_text_atomic
from vbsad_batch.config import LATENT_DIM_RANGE, AnalysisConfig, TrainingConfig
from vbsad_batch.datasets import DATASETS_DIR_NAME
from vbsad_batch.model import (
    PREPROCESSING_FILE_NAME,
    ModelKind,
    Preprocessing,
    build_model,
    per_event_losses,
    save_model,
    vae_loss,
    vae_nn_loss,
)
from vbsad_batch.model_paths import MODELS_DIR_NAME, model_directory
from vbsad_batch.progress import ProgressCallback, ProgressEvent
from vbsad_batch.provenance import (
    jsonable,
    manifest_up_to_date,
    read_manifest,
    runtime_provenance,
    sha256_file,
    tool_version,
    write_manifest,
)
from vbsad_batch.weighting import YIELD_COLUMN

__all__ = [
    "CHECKPOINT_NAME",
    "MODELS_DIR_NAME",
    "CheckpointMismatchError",
    "TrainingResult",
    "TrainingStatus",
    "checkpoint_state",
    "enable_determinism",
    "model_directory",
    "train",
]

logger = logging.getLogger(__name__)


class CheckpointMismatchError(ValueError):
    """`resume` found a checkpoint of another training (its datasets or settings differ)."""


TRAINING_FORMAT_VERSION = 1
"""Version of the model directory layout and checkpoint; bump when either changes."""

MANIFEST_NAME = "manifest.json"
MANIFEST_KIND = "vbsad_batch.model"
CHECKPOINT_NAME = "checkpoint.npz"
PREPROCESSING_NAME = PREPROCESSING_FILE_NAME
CONFIG_COPY_NAME = "config.toml"
HISTORY_NAME = "history.csv"
METRICS_NAME = "metrics.json"
HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "seconds", "events_per_s")
EVAL_BATCH_SIZE = 65536
"""Events per batch when evaluating the validation loss (memory bound only)."""

_STAGE = "train"
_LABEL_COLUMN = "label"

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


@dataclass
class _State:
    """Everything of a training in progress that is not a TensorFlow variable."""

    next_epoch: int = 0  # 0-based index of the next epoch to run
    best_epoch: int = 0  # 1-based; 0 = none yet
    best_val_loss: float = math.inf
    wait: int = 0  # epochs since the last improvement
    finished: bool = False
    stopped_early: bool = False
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class _Data:
    x_train: np.ndarray
    x_val: np.ndarray
    x_mix: np.ndarray | None
    labels: np.ndarray | None
    weights: np.ndarray | None


# --- paths, keys, manifests ---------------------------------------------------------------------


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


# --- determinism --------------------------------------------------------------------------------


def enable_determinism(seed: int) -> None:
    """Deterministic TensorFlow ops, and the Python, NumPy, TensorFlow and Keras global seeds
    set to `seed`. Op determinism is process-wide and stays on."""
    tf.config.experimental.enable_op_determinism()
    tf.keras.utils.set_random_seed(seed)


def _permutation(n: int, seed: int, epoch: int, stream: int) -> np.ndarray:
    """The data order of one epoch: a pure function of (seed, epoch, stream), so that a resumed
    run needs no random-number-generator state to continue the same sequence."""
    return np.random.default_rng([seed, epoch, stream]).permutation(n)


# --- data ---------------------------------------------------------------------------------------


def _balanced_weights(labels: np.ndarray, yields: np.ndarray) -> np.ndarray:
    """Per-event classifier weights: yields scaled so that each class sums to n / 2."""
    weights = yields.astype(np.float64)
    n = len(labels)
    for label in (0, 1):
        mask = labels == label
        total = float(weights[mask].sum())
        if not mask.any() or not math.isfinite(total) or total <= 0:
            raise ValueError(
                f"mixed training set: the yields of label {label} sum to {total} (need > 0)"
            )
        weights[mask] *= (n / 2) / total
    return weights.astype(np.float32)


def _load_data(
    paths: dict[str, Path], config: AnalysisConfig, kind: ModelKind
) -> tuple[Preprocessing, _Data]:
    sm_train = pl.read_parquet(paths["sm_train"])
    sm_val = pl.read_parquet(paths["sm_validation"])
    if sm_train.height == 0 or sm_val.height == 0:
        raise ValueError(
            f"empty SM training ({sm_train.height} events) or validation ({sm_val.height} "
            "events) set: nothing to train on"
        )
    prep = Preprocessing.fit(sm_train, config.features, config.log_features)
    x_mix = labels = weights = None
    if kind == "vae_nn":
        mixed = pl.read_parquet(paths[f"mixed_train_{config.training_operator}"])
        x_mix = prep.transform(mixed)
        labels = mixed[_LABEL_COLUMN].to_numpy().astype(np.float32)
        weights = _balanced_weights(labels, mixed[YIELD_COLUMN].to_numpy())
    data = _Data(prep.transform(sm_train), prep.transform(sm_val), x_mix, labels, weights)
    return prep, data


STEP_CHUNK_EVENTS = 32768
"""Training events per call of the compiled training function: the steps of one call run in a
graph loop, so that the per-call host overhead (~1 ms) is paid once per chunk, not per step."""


def _chunked(batches: np.ndarray, steps_per_chunk: int) -> list[np.ndarray]:
    """Split (steps, batch, ...) into chunks of at most `steps_per_chunk` steps."""
    return [batches[i : i + steps_per_chunk] for i in range(0, len(batches), steps_per_chunk)]


def _epoch_chunks(data: _Data, seed: int, epoch: int, batch_size: int) -> list[Any]:
    """The batches of one epoch, grouped in chunks of steps.

    Each element is a chunk (steps, batch, features) (for "vae_nn" with the matching mixed
    batches, labels and weights, each (steps, mixed batch, ...)). The batches are cut in NumPy
    from the epoch's permutation (the same batches as `Dataset.batch` would give: consecutive
    slices, a smaller last one alone in its chunk), which avoids tf.data's per-event slicing.
    Every epoch has the same number of chunks (`_chunks_per_epoch`).
    """
    n = len(data.x_train)
    steps = math.ceil(n / batch_size)
    full = n // batch_size
    chunk = max(1, STEP_CHUNK_EVENTS // batch_size)
    x = data.x_train[_permutation(n, seed, epoch, 0)]
    sm = _chunked(x[: full * batch_size].reshape(full, batch_size, x.shape[1]), chunk)
    if full < steps:
        sm.append(x[None, full * batch_size :])
    if data.x_mix is None or data.labels is None or data.weights is None:
        return sm
    n_mix = len(data.x_mix)
    mix_batch = math.ceil(n_mix / steps)
    # As Dataset.repeat().batch(mix_batch): consecutive slices of the repeated permutation.
    order = _permutation(n_mix, seed, epoch, 1)[np.arange(steps * mix_batch) % n_mix]
    mixed = [
        _chunked(a[order].reshape(steps, mix_batch, *a.shape[1:]), chunk)
        for a in (data.x_mix, data.labels, data.weights)
    ]
    if full < steps:  # the last, smaller SM batch is alone in its chunk: split the mixed likewise
        for m in mixed:
            m[-1:] = [m[-1][:-1], m[-1][-1:]] if len(m[-1]) > 1 else m[-1:]
    return [(s, (a, b, c)) for s, a, b, c in zip(sm, *mixed, strict=True)]


def _chunks_per_epoch(n: int, batch_size: int) -> int:
    """Number of elements of `_epoch_chunks` for n training events."""
    full = n // batch_size
    return math.ceil(full / max(1, STEP_CHUNK_EVENTS // batch_size)) + (full * batch_size < n)


def _training_pipeline(
    data: _Data, seed: int, first_epoch: int, epochs: int, batch_size: int
) -> tf.data.Dataset:
    """The chunks of epochs first_epoch..epochs-1, in order, as one tf.data pipeline.

    Built once per training, not per epoch (building and starting a pipeline costs tens of ms,
    as much as an epoch of a small sample). The chunks are cut in NumPy by a generator; the
    prefetch buffer holds up to one epoch, so that the next epoch's batches are cut while the
    current one trains or is validated.
    """
    n_features = data.x_train.shape[1]
    features = tf.TensorSpec((None, None, n_features), tf.float32)
    per_event = tf.TensorSpec((None, None), tf.float32)
    signature: Any = features
    if data.x_mix is not None:
        signature = (features, (features, per_event, per_event))

    def chunks() -> Iterator[Any]:
        for epoch in range(first_epoch, epochs):
            yield from _epoch_chunks(data, seed, epoch, batch_size)

    pipeline = tf.data.Dataset.from_generator(chunks, output_signature=signature)
    return pipeline.prefetch(_chunks_per_epoch(len(data.x_train), batch_size))


# --- checkpoints --------------------------------------------------------------------------------


def _save_checkpoint(
    path: Path,
    *,
    key_digest: str,
    state: _State,
    model: Any,
    optimizer: Any,
    best: Sequence[np.ndarray],
) -> None:
    arrays: dict[str, Any] = {}  # Any: np.savez's stubs type **kwds loosely
    for i, var in enumerate(model.variables):
        arrays[f"model/{i:04d}"] = var.numpy()
    for i, var in enumerate(optimizer.variables):
        arrays[f"optimizer/{i:04d}"] = var.numpy()
    for i, value in enumerate(best):
        arrays[f"best/{i:04d}"] = value
    meta = {"key_digest": key_digest, "state": dataclasses.asdict(state)}
    arrays["meta"] = np.array(json.dumps(meta))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def _read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, list[np.ndarray]]] | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            groups: dict[str, list[np.ndarray]] = {"model": [], "optimizer": [], "best": []}
            for name in sorted(npz.files):
                group, _, _ = name.partition("/")
                if group in groups:
                    groups[group].append(npz[name])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("ignoring unreadable checkpoint %s: %s", path, exc)
        return None
    return meta, groups


def checkpoint_state(model_dir: Path) -> dict[str, Any] | None:
    """The training state of the checkpoint in `model_dir` (keys as `_State`: `next_epoch` =
    epochs completed, `best_epoch`, `best_val_loss`, `wait`, `finished`, `stopped_early`,
    `history`), or None if there is no readable checkpoint."""
    loaded = _read_checkpoint(model_dir / CHECKPOINT_NAME)
    if loaded is None:
        return None
    state: dict[str, Any] = loaded[0]["state"]
    return state


def _assign(variables: Sequence[Any], values: Sequence[np.ndarray], what: str) -> None:
    if len(variables) != len(values):
        raise ValueError(
            f"checkpoint holds {len(values)} {what} variables, the model has {len(variables)}"
        )
    for var, value in zip(variables, values, strict=True):
        if tuple(var.shape) != value.shape:
            raise ValueError(f"checkpoint {what} variable {var.path}: shape {value.shape}")
        var.assign(value)


# --- the training loop --------------------------------------------------------------------------


def _make_optimizer(training: TrainingConfig) -> Any:
    return tf.keras.optimizers.get(
        {"class_name": training.optimizer, "config": {"learning_rate": training.learning_rate}}
    )


def _fused_adam(optimizer: Any) -> Any | None:
    """For a plain Keras Adam (no amsgrad, weight decay, clipping, EMA or gradient
    accumulation): a function (grads, variables) -> None making the same update as
    `optimizer.apply_gradients` on the optimizer's own variables (iteration count, first and
    second moments), with one fused `ResourceApplyAdam` kernel per model variable instead of
    Keras' ~10 element-wise ops each: fewer ops per step and a graph that traces in a fraction
    of the time. The arithmetic is Keras' (alpha = lr sqrt(1 - beta2^t) / (1 - beta1^t),
    m += (g - m)(1 - beta1), v += (g^2 - v)(1 - beta2), w -= alpha m / (sqrt(v) + epsilon),
    t = iterations + 1), up to float rounding. None for any other optimizer: use
    `apply_gradients`."""
    plain = (
        isinstance(optimizer, tf.keras.optimizers.Adam)
        and not optimizer.amsgrad
        and not optimizer.weight_decay
        and optimizer.clipnorm is None
        and optimizer.clipvalue is None
        and optimizer.global_clipnorm is None
        and not optimizer.use_ema
        and not getattr(optimizer, "gradient_accumulation_steps", None)
        and all(hasattr(optimizer, a) for a in ("_momentums", "_velocities", "_get_variable_index"))
    )
    if not plain:
        return None
    beta_1 = tf.constant(float(optimizer.beta_1), tf.float32)
    beta_2 = tf.constant(float(optimizer.beta_2), tf.float32)
    epsilon = tf.constant(float(optimizer.epsilon), tf.float32)

    def apply(grads: Sequence[Any], variables: Sequence[Any]) -> None:
        step = tf.cast(optimizer.iterations + 1, tf.float32)
        beta_1_power = tf.pow(beta_1, step)
        beta_2_power = tf.pow(beta_2, step)
        lr = tf.cast(optimizer.learning_rate, tf.float32)
        for grad, var in zip(grads, variables, strict=True):
            index = optimizer._get_variable_index(var)  # Keras private API: its own moments
            tf.raw_ops.ResourceApplyAdam(
                var=var.value.handle,
                m=optimizer._momentums[index].value.handle,
                v=optimizer._velocities[index].value.handle,
                beta1_power=beta_1_power,
                beta2_power=beta_2_power,
                lr=lr,
                beta1=beta_1,
                beta2=beta_2,
                epsilon=epsilon,
                grad=tf.convert_to_tensor(grad, tf.float32),
            )
        optimizer.iterations.assign_add(1)

    return apply


def _graph_loop(n: Any, body: Callable[[Any], None]) -> None:
    """In a traced function: body(i) for i = 0..n-1, in order, as one `tf.while_loop` (the
    variable updates of each iteration are control dependencies of the next)."""

    def step(i: Any) -> tuple[Any]:
        body(i)
        return (i + 1,)

    tf.while_loop(lambda i: i < n, step, (tf.constant(0),))


class _Epoch:
    """One epoch of training: a `tf.function` (traced once, fixed input signature) that runs the
    steps of a chunk of batches in a graph loop (per step: forward pass, loss of
    `vbsad_batch.model`, gradient, optimizer update), called for each chunk of the epoch's
    tf.data pipeline (`_training_pipeline`). Looping in the graph saves a host round trip per step;
    chunks rather than the whole epoch keep the pipeline streaming. (Iterating a tf.data
    dataset inside the graph instead costs ~0.3 s per call here to set up its iterator.)"""

    def __init__(
        self, model: Any, optimizer: Any, kind: ModelKind, training: TrainingConfig
    ) -> None:
        beta = float(training.beta)
        bce_weight = float(training.bce_weight)
        n_features = int(model.n_features)
        self._sums = tf.Variable(tf.zeros(2, tf.float32), trainable=False)  # (sum loss*n, n)
        sums = self._sums
        features = tf.TensorSpec((None, None, n_features), tf.float32)
        per_event = tf.TensorSpec((None, None), tf.float32)

        fused = _fused_adam(optimizer)

        def update(loss_fn: Any, x: Any) -> None:
            with tf.GradientTape() as tape:
                loss = loss_fn()
            grads = tape.gradient(loss, model.trainable_variables)
            if fused is not None:
                fused(grads, model.trainable_variables)
            else:
                optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            n = tf.cast(tf.shape(x)[0], tf.float32)
            sums.assign_add(tf.stack([loss * n, n]))

        def vae_step(x: Any) -> None:
            update(lambda: vae_loss(model, x, training=True, beta=beta), x)

        def vae_nn_step(x: Any, x_mix: Any, labels: Any, weights: Any) -> None:
            update(
                lambda: vae_nn_loss(
                    model,
                    x,
                    x_mix,
                    labels,
                    weights,
                    training=True,
                    beta=beta,
                    bce_weight=bce_weight,
                ),
                x,
            )

        def vae_steps(xs: Any) -> None:
            _graph_loop(tf.shape(xs)[0], lambda i: vae_step(xs[i]))

        def vae_nn_steps(xs: Any, xs_mix: Any, labels: Any, weights: Any) -> None:
            _graph_loop(
                tf.shape(xs)[0], lambda i: vae_nn_step(xs[i], xs_mix[i], labels[i], weights[i])
            )

        # tf.function as a call, not a decorator: TensorFlow is untyped (mypy --strict).
        # No autograph: the loop is an explicit tf.while_loop and the rest has no Python
        # control flow on tensors; converting the code would triple the trace time.
        self._kind = kind
        self._vae_steps = tf.function(vae_steps, input_signature=[features], autograph=False)
        self._vae_nn_steps = tf.function(
            vae_nn_steps,
            input_signature=[features, features, per_event, per_event],
            autograph=False,
        )

    def __call__(self, chunks: Iterator[Any], n_chunks: int) -> float:
        """Train on the next `n_chunks` chunks of the pipeline iterator `chunks` (one epoch);
        return the event-weighted mean training loss."""
        self._sums.assign(tf.zeros(2, tf.float32))
        for _ in range(n_chunks):
            if self._kind == "vae":
                self._vae_steps(next(chunks))
            else:
                xs, (xs_mix, labels, weights) = next(chunks)
                self._vae_nn_steps(xs, xs_mix, labels, weights)
        total, count = self._sums.numpy()
        return float(total / count)


def _validation_function(model: Any, training: TrainingConfig) -> Any:
    """(loss, mean mse, mean kld) of a model-input array, in inference mode; loss = the VAE
    loss mse + beta * kld averaged over the events."""
    beta = float(training.beta)

    def batch_sums(x: Any) -> Any:
        mse, kld = per_event_losses(model, x, training=False)
        return tf.stack([tf.reduce_sum(mse), tf.reduce_sum(kld)])

    sums = tf.function(
        batch_sums, input_signature=[tf.TensorSpec((None, int(model.n_features)), tf.float32)]
    )

    def evaluate(x: np.ndarray) -> tuple[float, float, float]:
        total = np.zeros(2, dtype=np.float64)
        for start in range(0, len(x), EVAL_BATCH_SIZE):
            total += sums(x[start : start + EVAL_BATCH_SIZE]).numpy()
        mse, kld = total / len(x)
        return float(mse + beta * kld), float(mse), float(kld)

    return evaluate


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
    checkpoint = _read_checkpoint(checkpoint_path) if resume else None
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
    prep, data = _load_data(paths, config, kind)
    n_features = data.x_train.shape[1]
    model = build_model(kind, n_features, training)
    optimizer = _make_optimizer(training)
    optimizer.build(model.trainable_variables)

    state = _State()
    best: list[np.ndarray] = [v.numpy() for v in model.variables]
    status: TrainingStatus = "trained"
    if checkpoint is not None:
        meta, groups = checkpoint
        state = _State(**meta["state"])
        _assign(model.variables, groups["model"], "model")
        _assign(optimizer.variables, groups["optimizer"], "optimizer")
        best = groups["best"]
        status = "resumed"
        reason = f"resumed after epoch {state.next_epoch}"
        logger.info("%s: resuming after epoch %d", directory, state.next_epoch)

    run_epoch = _Epoch(model, optimizer, kind, training)
    evaluate = _validation_function(model, training)
    epochs = int(training.epochs)
    patience = int(training.patience)
    batch_size = int(training.batch_size)
    events_done = 0
    train_seconds = 0.0
    chunks = iter(_training_pipeline(data, seed, state.next_epoch, epochs, batch_size))
    n_chunks = _chunks_per_epoch(len(data.x_train), batch_size)
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
        _save_checkpoint(
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

    _assign(model.variables, best, "best")
    _, val_mse, val_kld = evaluate(data.x_val)
    outputs = [save_model(model, directory)]
    outputs.append(directory / PREPROCESSING_NAME)
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
