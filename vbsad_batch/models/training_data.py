"""The training data: SM training and validation events (and, for the VAE+NN, the mixed
SM+EFT set) in memory, cut into the batches of each epoch and fed through one tf.data pipeline.

The data order of an epoch is a permutation that is a pure function of (seed, epoch), so that a
resumed training needs no random-number-generator state to continue the same sequence.

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
import polars as pl
import tensorflow as tf

from vbsad_batch.config import AnalysisConfig, ModelSpec
from vbsad_batch.models.preprocessing import Preprocessing
from vbsad_batch.runtime.file_errors import reading
from vbsad_batch.runtime.mpi import shard
from vbsad_batch.runtime.stage import command
from vbsad_batch.weighting.yields import YIELD_COLUMN

__all__ = [
    "LABEL_COLUMN",
    "STEP_CHUNK_EVENTS",
    "TrainingData",
    "chunks_per_epoch",
    "epoch_chunks",
    "epoch_permutation",
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


@dataclass(frozen=True)
class TrainingData:
    """The model inputs of a training (preprocessed, float32): SM training and validation
    events; for the VAE+NN the mixed training set with its labels and per-event classifier
    weights, and the mixed validation set likewise (early stopping watches its loss too)."""

    x_train: np.ndarray
    x_val: np.ndarray
    x_mix: np.ndarray | None
    labels: np.ndarray | None
    weights: np.ndarray | None
    x_val_mix: np.ndarray | None = None
    labels_val: np.ndarray | None = None
    weights_val: np.ndarray | None = None


def epoch_permutation(n: int, seed: int, epoch: int, stream: int) -> np.ndarray:
    """The data order of one epoch: a pure function of (seed, epoch, stream), so that a resumed
    run needs no random-number-generator state to continue the same sequence."""
    return np.random.default_rng([seed, epoch, stream]).permutation(n)


def _balanced_weights(labels: np.ndarray, yields: np.ndarray) -> np.ndarray:
    """Per-event classifier weights: yields scaled so that each class sums to n / 2."""
    weights = yields.astype(np.float64)
    n = len(labels)
    for label in (0, 1):
        mask = labels == label
        total = float(weights[mask].sum())
        if not mask.any() or not math.isfinite(total) or total <= 0:
            raise ValueError(f"mixed set: the yields of label {label} sum to {total} (need > 0)")
        weights[mask] *= (n / 2) / total
    return weights.astype(np.float32)


def load_training_data(
    paths: dict[str, Path], config: AnalysisConfig, spec: ModelSpec
) -> tuple[Preprocessing, TrainingData]:
    """The preprocessing fitted on `sm_train` and the model inputs of the model `spec`, from
    the datasets `paths` (name -> file)."""
    remake = command("datasets", config.path)
    sm_train = _read(paths["sm_train"], remake)
    sm_val = _read(paths["sm_validation"], remake)
    batch = int(config.training.batch_size)
    if sm_train.height < batch or sm_val.height == 0:
        raise ValueError(
            f"{paths['sm_train'].parent}: the selection {config.selection!r} leaves "
            f"{sm_train.height} SM training and {sm_val.height} SM validation events, fewer than "
            f"one batch ([training] batch_size = {batch}) or none: loosen the selection, add "
            "SM events, or lower batch_size"
        )
    prep = Preprocessing.fit(sm_train, config.features, config.log_features)
    data = TrainingData(prep.transform(sm_train), prep.transform(sm_val), None, None, None)
    if spec.training_operator is not None:
        mixed = [
            _mixed_set(paths[f"mixed_{split}_{spec.training_operator}"], prep, remake)
            for split in ("train", "validation")
        ]
        data = TrainingData(data.x_train, data.x_val, *mixed[0], *mixed[1])
    return prep, data


def _read(path: Path, remake: str) -> pl.DataFrame:
    """A dataset, or an error naming it and the command that remakes it."""
    with reading(path, what="dataset (Parquet)", remake=remake):
        return pl.read_parquet(path)


def _mixed_set(
    path: Path, prep: Preprocessing, remake: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(model inputs, labels, class-balanced weights) of a mixed SM+EFT dataset."""
    mixed = _read(path, remake)
    labels = mixed[LABEL_COLUMN].to_numpy().astype(np.float32)
    try:
        weights = _balanced_weights(labels, mixed[YIELD_COLUMN].to_numpy())
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return prep.transform(mixed), labels, weights


def _chunked(batches: np.ndarray, steps_per_chunk: int) -> list[np.ndarray]:
    """Split (steps, batch, ...) into chunks of at most `steps_per_chunk` steps."""
    return [batches[i : i + steps_per_chunk] for i in range(0, len(batches), steps_per_chunk)]


def _epoch_indices(
    data: TrainingData, seed: int, epoch: int, batch_size: int
) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """The event indices of one epoch's chunks: SM (steps, batch) per chunk and, for "vae_nn",
    the matching mixed (steps, mixed batch) per chunk (see `epoch_chunks`)."""
    n = len(data.x_train)
    steps = math.ceil(n / batch_size)
    full = n // batch_size
    chunk = max(1, STEP_CHUNK_EVENTS // batch_size)
    order = epoch_permutation(n, seed, epoch, 0)
    sm = _chunked(order[: full * batch_size].reshape(full, batch_size), chunk)
    if full < steps:
        sm.append(order[None, full * batch_size :])
    if data.x_mix is None or data.labels is None or data.weights is None:
        return sm, None
    n_mix = len(data.x_mix)
    mix_batch = math.ceil(n_mix / steps)
    # As Dataset.repeat().batch(mix_batch): consecutive slices of the repeated permutation.
    mix_order = epoch_permutation(n_mix, seed, epoch, 1)[np.arange(steps * mix_batch) % n_mix]
    mixed = _chunked(mix_order.reshape(steps, mix_batch), chunk)
    if full < steps and len(mixed[-1]) > 1:  # the last, smaller SM batch is alone in its chunk
        mixed[-1:] = [mixed[-1][:-1], mixed[-1][-1:]]
    return sm, mixed


def epoch_chunks(data: TrainingData, seed: int, epoch: int, batch_size: int) -> list[Any]:
    """The batches of one epoch, grouped in chunks of steps.

    Each element is a chunk (steps, batch, features) (for "vae_nn" with the matching mixed
    batches, labels and weights, each (steps, mixed batch, ...)). The batches are cut in NumPy
    from the epoch's permutation (the same batches as `Dataset.batch` would give: consecutive
    slices, a smaller last one alone in its chunk), which avoids tf.data's per-event slicing.
    Every epoch has the same number of chunks (`chunks_per_epoch`).
    """
    sm, mixed = _epoch_indices(data, seed, epoch, batch_size)
    xs = [data.x_train[index] for index in sm]
    if mixed is None or data.x_mix is None or data.labels is None or data.weights is None:
        return xs
    return [
        (x, (data.x_mix[index], data.labels[index], data.weights[index]))
        for x, index in zip(xs, mixed, strict=True)
    ]


def rank_epoch_chunks(
    data: TrainingData, seed: int, epoch: int, batch_size: int, *, rank: int, size: int
) -> list[Any]:
    """The chunks of `epoch_chunks` as rank `rank` of `size` data-parallel ranks sees them: of
    each global batch only its rows `shard(batch, rank, size)` are cut (a rank may get none),
    with `rows` = (offset, global batch size) as int32 (equal for the steps of a chunk, whose
    global batches have one size).

    Each element is (x (steps, rows, features), rows); for "vae_nn" ((x, rows), (x_mix, labels,
    weights, mix_rows, global_weights)) with the mixed batches likewise and the weights of the
    whole global mixed batches (steps, mixed batch), whose sum |w| normalises every rank's part
    of the cross-entropy.
    """
    sm, mixed = _epoch_indices(data, seed, epoch, batch_size)

    def mine(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        offset, count = shard(index.shape[1], rank, size)
        rows = np.array([offset, index.shape[1]], dtype=np.int32)
        return index[:, offset : offset + count], rows

    xs = []
    for index in sm:
        own, rows = mine(index)
        xs.append((data.x_train[own], rows))
    if mixed is None or data.x_mix is None or data.labels is None or data.weights is None:
        return xs
    chunks = []
    for x, index in zip(xs, mixed, strict=True):
        own, rows = mine(index)
        local = (data.x_mix[own], data.labels[own], data.weights[own])
        chunks.append((x, (*local, rows, data.weights[index])))
    return chunks


def chunks_per_epoch(n: int, batch_size: int) -> int:
    """Number of elements of `epoch_chunks` for n training events."""
    full = n // batch_size
    return math.ceil(full / max(1, STEP_CHUNK_EVENTS // batch_size)) + (full * batch_size < n)


def training_pipeline(
    data: TrainingData, seed: int, first_epoch: int, epochs: int, batch_size: int
) -> tf.data.Dataset:
    """The chunks of epochs first_epoch..epochs-1, in order, as one tf.data pipeline.

    Built once per training, not per epoch (building and starting a pipeline costs tens of ms,
    as much as an epoch of a small sample). The chunks are cut in NumPy by a generator; the
    prefetch buffer holds up to one epoch, so that the next epoch's batches are cut while the
    current one trains or is validated.
    """
    features = tf.TensorSpec((None, None, data.x_train.shape[1]), tf.float32)
    per_event = tf.TensorSpec((None, None), tf.float32)
    signature: Any = features
    if data.x_mix is not None:
        signature = (features, (features, per_event, per_event))

    def chunks() -> Iterator[Any]:
        for epoch in range(first_epoch, epochs):
            yield from epoch_chunks(data, seed, epoch, batch_size)

    return _pipeline(chunks, signature, chunks_per_epoch(len(data.x_train), batch_size))


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
    features = tf.TensorSpec((None, None, data.x_train.shape[1]), tf.float32)
    per_event = tf.TensorSpec((None, None), tf.float32)
    rows = tf.TensorSpec((2,), tf.int32)
    signature: Any = (features, rows)
    if data.x_mix is not None:
        signature = ((features, rows), (features, per_event, per_event, rows, per_event))

    def chunks() -> Iterator[Any]:
        for epoch in range(first_epoch, epochs):
            yield from rank_epoch_chunks(data, seed, epoch, batch_size, rank=rank, size=size)

    return _pipeline(chunks, signature, chunks_per_epoch(len(data.x_train), batch_size))


def _pipeline(
    chunks: Callable[[], Iterator[Any]], signature: Any, prefetch: int
) -> tf.data.Dataset:
    pipeline = tf.data.Dataset.from_generator(chunks, output_signature=signature)
    return pipeline.prefetch(prefetch)
