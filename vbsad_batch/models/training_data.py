"""The training data: SM training and validation events (and, for the VAE+NN, the mixed
SM+EFT sets) streamed from their Parquet datasets into float32 row caches on disk
(`vbsad_batch.models.row_cache`), cut into the batches of each epoch and fed through one
tf.data pipeline. The memory of a training does not grow with its number of events.

Loading (`load_training_data`) reads each dataset in batches, only the columns it needs
(`vbsad_batch.models.parquet_batches`): a first pass over `sm_train` fits the preprocessing
(min-max: exact in any batching), a first pass over a mixed set sums the yields of each class;
a second pass writes the model inputs (and, mixed, the label and class-balanced weight) to the
caches.

The data order of an epoch (`epoch_windows`, `epoch_order`) is a pure function of (seed,
epoch, stream, number of events), so that a resumed training needs no random-number-generator
state to continue the same sequence. It is a two-level shuffle over fixed blocks of
`BLOCK_ROWS` consecutive rows: the blocks in a random order, taken `WINDOW_ROWS // BLOCK_ROWS`
at a time into a window whose rows are put in a random order. A dataset of at most
`WINDOW_ROWS` events is one window: a uniformly random permutation, as a full shuffle; a
larger one gets every window from blocks drawn across the whole file, and holds one window in
memory at a time.

A rank of a data-parallel training (`vbsad_batch.models.data_parallel`) cuts the same global
batches and keeps only its rows of each (`rank_epoch_chunks`, `rank_training_pipeline`), with
where they sit in the global batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from vbsad_batch.config import AnalysisConfig, ModelSpec
from vbsad_batch.models.parquet_batches import dataset_rows, read_batches
from vbsad_batch.models.preprocessing import Preprocessing
from vbsad_batch.models.row_cache import RowCache
from vbsad_batch.runtime.mpi import shard
from vbsad_batch.runtime.stage import command
from vbsad_batch.weighting.yields import YIELD_COLUMN

__all__ = [
    "BLOCK_ROWS",
    "LABEL_COLUMN",
    "PREFETCH_CHUNKS",
    "STEP_CHUNK_EVENTS",
    "WINDOW_ROWS",
    "TrainingData",
    "chunks_per_epoch",
    "epoch_chunks",
    "epoch_order",
    "epoch_windows",
    "load_training_data",
    "rank_epoch_chunks",
    "rank_training_pipeline",
    "training_pipeline",
]

LABEL_COLUMN = "label"
"""Column of the mixed training set: 0 SM, 1 EFT."""

STEP_CHUNK_EVENTS = 32768
"""Training events per call of the compiled training function: the steps of one call run in a
graph loop, so that the per-call host overhead (~1 ms) is paid once per chunk, not per step."""

BLOCK_ROWS = 256
"""Consecutive rows of a dataset that stay together in the first level of an epoch's shuffle."""

WINDOW_ROWS = 1 << 16
"""Rows shuffled together (65536 = 256 blocks, a multiple of `BLOCK_ROWS`): a window of 14
features plus a label and a weight is 4 MB of float32. Every buffer of a training is capped by
this or a like constant (`STEP_CHUNK_EVENTS`, `EVAL_BATCH_SIZE`, `READ_BATCH_ROWS`, the
datasets' row groups), so its memory stops growing once the datasets fill them."""

PREFETCH_CHUNKS = 4
"""Chunks the tf.data pipeline cuts ahead of the training (bounded: memory does not grow with
the number of events)."""


@dataclass
class TrainingData:
    """The model inputs of a training (preprocessed, float32), in row caches on disk.

    Attributes:
        train: SM training events (n, features).
        val: SM validation events.
        mix: for a VAE+NN, the mixed training set (n, features + 2): the features, the label
            (0 SM, 1 EFT) and the per-event classifier weight (class-balanced yields).
        val_mix: the mixed validation set likewise (early stopping watches its loss too).
        n_features: model inputs per event.
    """

    train: RowCache
    val: RowCache
    mix: RowCache | None
    val_mix: RowCache | None
    n_features: int

    @classmethod
    def from_arrays(
        cls,
        x_train: np.ndarray,
        x_val: np.ndarray,
        x_mix: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        *,
        x_val_mix: np.ndarray | None = None,
        labels_val: np.ndarray | None = None,
        weights_val: np.ndarray | None = None,
        directory: Path | None = None,
    ) -> TrainingData:
        """Training data from arrays (the mixed parts all given or all None)."""

        def mixed(x: Any, labels: Any, weights: Any) -> RowCache | None:
            if x is None or labels is None or weights is None:
                return None
            return RowCache.from_array(np.column_stack([x, labels, weights]), directory)

        return cls(
            RowCache.from_array(x_train, directory),
            RowCache.from_array(x_val, directory),
            mixed(x_mix, labels, weights),
            mixed(x_val_mix, labels_val, weights_val),
            int(x_train.shape[1]),
        )

    @property
    def n_train(self) -> int:
        """SM training events."""
        return self.train.rows

    def close(self) -> None:
        """Free the caches' files."""
        for cache in (self.train, self.val, self.mix, self.val_mix):
            if cache is not None:
                cache.close()


# --- loading ---------------------------------------------------------------------------------


def load_training_data(
    paths: dict[str, Path],
    config: AnalysisConfig,
    spec: ModelSpec,
    *,
    scratch: Path | None = None,
) -> tuple[Preprocessing, TrainingData]:
    """The preprocessing fitted on `sm_train` and the model inputs of the model `spec`, from
    the datasets `paths` (name -> file), streamed in batches into row caches whose files live
    in `scratch` (default: the system's temporary directory)."""
    remake = command("datasets", config.path)
    n_train = dataset_rows(paths["sm_train"], remake=remake)
    n_val = dataset_rows(paths["sm_validation"], remake=remake)
    batch = int(config.training.batch_size)
    if n_train < batch or n_val == 0:
        raise ValueError(
            f"{paths['sm_train'].parent}: the selection {config.selection!r} leaves "
            f"{n_train} SM training and {n_val} SM validation events, fewer than "
            f"one batch ([training] batch_size = {batch}) or none: loosen the selection, add "
            "SM events, or lower batch_size"
        )
    features = list(config.features)
    prep = _with_path(
        paths["sm_train"],
        lambda: Preprocessing.fit_batches(
            read_batches(paths["sm_train"], features, remake=remake),
            config.features,
            config.log_features,
        ),
    )
    caches: list[RowCache] = []
    try:
        for name in ("sm_train", "sm_validation"):
            caches.append(_features_cache(paths[name], prep, remake, scratch))
        if spec.training_operator is not None:
            for split in ("train", "validation"):
                path = paths[f"mixed_{split}_{spec.training_operator}"]
                caches.append(_mixed_cache(path, prep, remake, scratch))
    except BaseException:
        for cache in caches:
            cache.close()
        raise
    mixed = caches[2:] if len(caches) == 4 else [None, None]
    return prep, TrainingData(caches[0], caches[1], mixed[0], mixed[1], len(prep.features))


def _with_path(path: Path, fn: Callable[[], Any]) -> Any:
    """`fn()`, a ValueError of it naming `path` (unless it does already)."""
    try:
        return fn()
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path}: {exc}") from exc


def _filled(cache: RowCache, path: Path, fill: Callable[[RowCache], None]) -> RowCache:
    """`cache` after `fill(cache)` (errors naming `path`, see `_with_path`); closed if that
    fails, so that no cache outlives an error."""
    try:
        _with_path(path, lambda: fill(cache))
    except BaseException:
        cache.close()
        raise
    return cache


def _features_cache(path: Path, prep: Preprocessing, remake: str, scratch: Path | None) -> RowCache:
    """The model inputs of a dataset's events, in a row cache."""

    def fill(cache: RowCache) -> None:
        for frame in read_batches(path, prep.features, remake=remake):
            cache.append(prep.transform(frame))

    return _filled(RowCache(len(prep.features), scratch), path, fill)


def _mixed_cache(path: Path, prep: Preprocessing, remake: str, scratch: Path | None) -> RowCache:
    """A mixed SM+EFT dataset's rows (model inputs, label, class-balanced weight) in a row
    cache. The weights are the events' yields scaled per class so that each class sums to
    n / 2 (a first pass sums the yields of each class)."""
    totals = np.zeros(2, dtype=np.float64)
    counts = np.zeros(2, dtype=np.int64)
    for frame in read_batches(path, [LABEL_COLUMN, YIELD_COLUMN], remake=remake):
        labels = frame[LABEL_COLUMN].to_numpy()
        yields = frame[YIELD_COLUMN].to_numpy().astype(np.float64)
        for label in (0, 1):
            mask = labels == label
            totals[label] += float(yields[mask].sum())
            counts[label] += int(mask.sum())
    n = int(counts.sum())
    for label in (0, 1):
        total = float(totals[label])
        if counts[label] == 0 or not math.isfinite(total) or total <= 0:
            raise ValueError(
                f"{path}: mixed set: the yields of label {label} sum to {total} (need > 0)"
            )
    scale = (n / 2) / totals

    def fill(cache: RowCache) -> None:
        columns = [*prep.features, LABEL_COLUMN, YIELD_COLUMN]
        for frame in read_batches(path, columns, remake=remake):
            labels = frame[LABEL_COLUMN].to_numpy().astype(np.int64)
            weights = frame[YIELD_COLUMN].to_numpy().astype(np.float64) * scale[labels]
            cache.append(
                np.column_stack(
                    [
                        prep.transform(frame),
                        labels.astype(np.float32),
                        weights.astype(np.float32),
                    ]
                )
            )

    return _filled(RowCache(len(prep.features) + 2, scratch), path, fill)


# --- the data order of an epoch ----------------------------------------------------------------


def epoch_windows(
    n: int, seed: int, epoch: int, stream: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The data order of one epoch of `n` events, window by window: (blocks, permutation)
    with `blocks` the indices of the window's blocks of `BLOCK_ROWS` rows (block b: rows
    b * BLOCK_ROWS up to the next block or n) in the order their rows are put side by side,
    and `permutation` the order of those rows in the epoch. A pure function of (n, seed,
    epoch, stream)."""
    rng = np.random.default_rng([seed, epoch, stream])
    n_blocks = math.ceil(n / BLOCK_ROWS)
    order = rng.permutation(n_blocks)
    per_window = WINDOW_ROWS // BLOCK_ROWS
    for start in range(0, n_blocks, per_window):
        blocks = order[start : start + per_window]
        rows = int(np.minimum(BLOCK_ROWS, n - blocks * BLOCK_ROWS).sum())
        yield blocks, rng.permutation(rows)


def epoch_order(n: int, seed: int, epoch: int, stream: int) -> np.ndarray:
    """The event indices of one epoch in order (`epoch_windows` as one array: for checks; the
    training never builds it)."""
    parts = []
    for blocks, permutation in epoch_windows(n, seed, epoch, stream):
        rows = [np.arange(b * BLOCK_ROWS, min((b + 1) * BLOCK_ROWS, n)) for b in blocks]
        parts.append(np.concatenate(rows)[permutation])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _epoch_rows(cache: RowCache, seed: int, epoch: int, stream: int) -> Iterator[np.ndarray]:
    """The rows of `cache` in the order of the epoch, a window at a time."""
    buffer = np.empty((min(WINDOW_ROWS, cache.rows), cache.width), dtype=np.float32)
    for blocks, permutation in epoch_windows(cache.rows, seed, epoch, stream):
        filled = 0
        for b in blocks:
            start = int(b) * BLOCK_ROWS
            got = cache.read(start, start + BLOCK_ROWS, out=buffer[filled:])
            filled += len(got)
        yield buffer[:filled][permutation]


class _RowStream:
    """Consecutive rows of a sequence of row arrays, `take(k)` at a time."""

    def __init__(self, parts: Iterator[np.ndarray]) -> None:
        self._parts = parts
        self._current = np.zeros((0, 0), dtype=np.float32)
        self._at = 0

    def take(self, k: int) -> np.ndarray:
        pieces = []
        while k > 0:
            if self._at == len(self._current):
                self._current, self._at = next(self._parts), 0
            piece = self._current[self._at : self._at + k]
            pieces.append(piece)
            self._at += len(piece)
            k -= len(piece)
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


def _repeated(cache: RowCache, seed: int, epoch: int, stream: int) -> Iterator[np.ndarray]:
    """The epoch's order of `cache`, again and again (as `Dataset.repeat`)."""
    while True:
        yield from _epoch_rows(cache, seed, epoch, stream)


def _chunk_steps(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(steps, batch) of each chunk of an epoch of n events: the full batches in chunks of up
    to `STEP_CHUNK_EVENTS` events, then a smaller last batch alone in its chunk."""
    full = n // batch_size
    per_chunk = max(1, STEP_CHUNK_EVENTS // batch_size)
    shapes = [(min(per_chunk, full - i), batch_size) for i in range(0, full, per_chunk)]
    if full * batch_size < n:
        shapes.append((1, n - full * batch_size))
    return shapes


def epoch_chunks(data: TrainingData, seed: int, epoch: int, batch_size: int) -> Iterator[Any]:
    """The batches of one epoch, grouped in chunks of steps, cut as they are needed.

    Each element is a chunk (steps, batch, features) (for "vae_nn" with the matching mixed
    batches, labels and weights, each (steps, mixed batch, ...)): consecutive slices of the
    epoch's order of the SM events (stream 0), a smaller last batch alone in its chunk. For
    "vae_nn" each SM batch is paired with the next ceil(n_mixed / steps) events of the
    epoch's order of the mixed set (stream 1), repeated, so that every mixed event is seen at
    least once per epoch. Every epoch has the same number of chunks (`chunks_per_epoch`).
    """
    n, width = data.n_train, data.n_features
    shapes = _chunk_steps(n, batch_size)
    sm = _RowStream(_epoch_rows(data.train, seed, epoch, 0))
    mix = None if data.mix is None else _RowStream(_repeated(data.mix, seed, epoch, 1))
    mix_batch = 0 if data.mix is None else math.ceil(data.mix.rows / math.ceil(n / batch_size))
    for steps, size in shapes:
        x = sm.take(steps * size).reshape(steps, size, width)
        if mix is None:
            yield x
            continue
        rows = mix.take(steps * mix_batch).reshape(steps, mix_batch, width + 2)
        # Contiguous parts: tf.data converts them several times faster than strided views.
        parts = (rows[..., :width], rows[..., width], rows[..., width + 1])
        yield x, tuple(np.ascontiguousarray(part) for part in parts)


def rank_epoch_chunks(
    data: TrainingData, seed: int, epoch: int, batch_size: int, *, rank: int, size: int
) -> Iterator[Any]:
    """The chunks of `epoch_chunks` as rank `rank` of `size` data-parallel ranks sees them: of
    each global batch only its rows `shard(batch, rank, size)` (a rank may get none), with
    `rows` = (offset, global batch size) as int32 (equal for the steps of a chunk, whose
    global batches have one size).

    Each element is (x (steps, rows, features), rows); for "vae_nn" ((x, rows), (x_mix, labels,
    weights, mix_rows, global_weights)) with the mixed batches likewise and the weights of the
    whole global mixed batches (steps, mixed batch), whose sum |w| normalises every rank's part
    of the cross-entropy.
    """

    def mine(batches: np.ndarray) -> tuple[slice, np.ndarray]:
        offset, count = shard(batches.shape[1], rank, size)
        return slice(offset, offset + count), np.array([offset, batches.shape[1]], np.int32)

    for chunk in epoch_chunks(data, seed, epoch, batch_size):
        if data.mix is None:
            own, rows = mine(chunk)
            yield chunk[:, own], rows
            continue
        x, (x_mix, labels, weights) = chunk
        own, rows = mine(x)
        mix_own, mix_rows = mine(x_mix)
        local = (x_mix[:, mix_own], labels[:, mix_own], weights[:, mix_own])
        yield (x[:, own], rows), (*local, mix_rows, weights)


def chunks_per_epoch(n: int, batch_size: int) -> int:
    """Number of elements of `epoch_chunks` for n training events."""
    return len(_chunk_steps(n, batch_size))


def training_pipeline(
    data: TrainingData, seed: int, first_epoch: int, epochs: int, batch_size: int
) -> tf.data.Dataset:
    """The chunks of epochs first_epoch..epochs-1, in order, as one tf.data pipeline.

    Built once per training, not per epoch (building and starting a pipeline costs tens of ms,
    as much as an epoch of a small sample). The chunks are cut in NumPy by a generator, up to
    `PREFETCH_CHUNKS` ahead of the training (so that the next batches are cut while the
    current ones train or the epoch is validated).
    """
    features = tf.TensorSpec((None, None, data.n_features), tf.float32)
    per_event = tf.TensorSpec((None, None), tf.float32)
    signature: Any = features
    if data.mix is not None:
        signature = (features, (features, per_event, per_event))

    def chunks() -> Iterator[Any]:
        for epoch in range(first_epoch, epochs):
            yield from epoch_chunks(data, seed, epoch, batch_size)

    return _pipeline(chunks, signature)


def rank_training_pipeline(
    data: TrainingData,
    seed: int,
    first_epoch: int,
    epochs: int,
    batch_size: int,
    *,
    rank: int,
    size: int,
) -> tf.data.Dataset:
    """`training_pipeline` of the `rank_epoch_chunks` of one data-parallel rank."""
    features = tf.TensorSpec((None, None, data.n_features), tf.float32)
    per_event = tf.TensorSpec((None, None), tf.float32)
    rows = tf.TensorSpec((2,), tf.int32)
    signature: Any = (features, rows)
    if data.mix is not None:
        signature = ((features, rows), (features, per_event, per_event, rows, per_event))

    def chunks() -> Iterator[Any]:
        for epoch in range(first_epoch, epochs):
            yield from rank_epoch_chunks(data, seed, epoch, batch_size, rank=rank, size=size)

    return _pipeline(chunks, signature)


def _pipeline(chunks: Callable[[], Iterator[Any]], signature: Any) -> tf.data.Dataset:
    pipeline = tf.data.Dataset.from_generator(chunks, output_signature=signature)
    return pipeline.prefetch(PREFETCH_CHUNKS)
