"""Data-parallel training of one model over the MPI ranks (`[training] data_parallel = true`).

The split. Every rank streams the whole training data (its own row caches) and knows the same
global batches in the same order (`vbsad_batch.models.training_data`: the epoch's order is a
function of the seed and the epoch). Of each global batch of `batch_size` events (and, for a
VAE+NN, of the mixed batch paired with it) rank r cuts only the contiguous rows
`shard(n, r, N)`
(`rank_training_pipeline`): with n = q N + s, ranks 0..s-1 take q + 1 events and the others q,
so an uneven batch (the epoch's last, or a `batch_size` that N does not divide) is split as
evenly as possible and a rank may get none (n < N). The loss stays that of the GLOBAL batch:
each rank differentiates its part (`vae_loss_share`, `vae_nn_loss_share`: its sum of per-event
losses over the global batch's event count, its sum of w * bce over the global mixed batch's
sum |w|, which the pipeline gives every rank), and its sampling noise is its rows of the global
batch's (`Sampling`'s `noise_rows`). The parts of all ranks sum to the 1-rank loss and
gradient.

The gradient exchange. Per step, each rank flattens its gradient (every trainable variable, in
order) and its loss part into ONE float32 NumPy buffer, and one `MPI_Allreduce(SUM)` on that
buffer (`vbsad_batch.runtime.mpi.allreduce_sum`, mpi4py's buffer API, no pickling) makes the
gradient of the global batch on every rank; every rank then makes the same optimizer update.
The Allreduce runs inside the compiled step loop (`tf.numpy_function`), so a chunk of steps is
still one call of a `tf.function`. The result equals the 1-rank step up to float rounding (the
batch sums are added in another order), so the weights after some epochs agree with a 1-rank
training to ~1e-5 relative, not bit for bit.

Who does what (`TrainingRanks`). Rank 0 runs the stage contract (checks, manifest) and writes
every file (checkpoint, model directory); the others write nothing. The weights start identical:
rank 0 builds the model (and restores a checkpoint on `--resume`) and broadcasts every model
and optimizer variable and the loop state. At the end of each epoch rank 0 alone validates,
decides (early stopping, best weights) and checkpoints, then broadcasts the loop state, so
every rank takes the same decisions. An error on rank 0 outside the steps reaches every rank
(`RankFailure`); an error inside the steps, where the other ranks wait in an Allreduce, or on a
rank other than 0, ends every rank with MPI_Abort: nothing hangs.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import numpy as np
import tensorflow as tf

from vbsad_batch.config import ModelKind, TrainingConfig
from vbsad_batch.models.checkpoints import TrainingState, assign_variables
from vbsad_batch.models.networks import vae_loss_share, vae_nn_loss_share, weight_normaliser
from vbsad_batch.models.training_step import fused_adam, graph_loop
from vbsad_batch.runtime.mpi import (
    Communicator,
    RankFailure,
    SingleProcess,
    abort,
    allreduce_sum,
    run_on_root,
)

__all__ = ["DataParallelEpochRunner", "TrainingRanks", "restore_snapshot", "snapshot"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class TrainingRanks:
    """The ranks that train one model together, and the messages rank 0 sends them.

    With one rank (no communicator, a world of one, or `data_parallel` off) every method is
    the plain local operation: `exchange(tag, fn)` is `fn()`. With N ranks, rank 0 runs the
    training's bookkeeping and the others follow; the messages are tagged ("start", "epoch",
    "done") so that a rank never takes one message for another:

    - "start": rank 0's dataset paths and starting state (`snapshot`); or "done" at once when
      rank 0 found the model up to date, or failed before training;
    - "epoch", after each epoch: the loop state after rank 0's validation and decisions;
    - "done": rank 0's result, or its error.

    Attributes:
        comm: the communicator (`SingleProcess` for one rank).
        rank, size: this rank and the number of ranks.
    """

    def __init__(self, comm: Communicator | None) -> None:
        self.comm: Communicator = comm if comm is not None and comm.size > 1 else SingleProcess()
        self.rank = self.comm.rank
        self.size = self.comm.size
        self._others_gone = False  # rank 0: an error was shared, the other ranks have left
        self._in_steps = False  # rank 0: the other ranks may be waiting in an Allreduce

    @property
    def is_root(self) -> bool:
        """Whether this rank keeps the books and writes (rank 0, or the only one)."""
        return self.rank == 0

    def exchange(self, tag: str, fn: Callable[[], T]) -> T:
        """Collective: `fn()` on rank 0, its result on every rank (an error of `fn` is raised on
        rank 0 and as `RankFailure` on the others)."""
        if self.size == 1:
            return fn()
        if self.is_root:
            return self._share(tag, fn)
        value: T = self.receive(tag)[1]
        return value

    def _share(self, tag: str, fn: Callable[[], T]) -> T:
        try:
            tagged: tuple[str, T] = run_on_root(lambda: (tag, fn()), comm=self.comm)
        except Exception:
            self._others_gone = True  # they raised RankFailure and left the training
            raise
        return tagged[1]

    def receive(self, *tags: str) -> tuple[str, Any]:
        """Not rank 0: the next message of rank 0, one of `tags`.

        Raises:
            RankFailure: rank 0 failed (its error).
            RuntimeError: rank 0 sent another message than expected.
        """
        tag, value = run_on_root(lambda: ("", None), comm=self.comm)
        if tag not in tags:
            raise RuntimeError(f"rank {self.rank}: rank 0 sent {tag!r}, expected one of {tags}")
        return tag, value

    def steps_started(self) -> None:
        """Rank 0 from here on may be in the steps with the other ranks in an Allreduce."""
        self._in_steps = True

    def steps_ended(self) -> None:
        """Rank 0 has left the training loop: the other ranks wait for "done"."""
        self._in_steps = False

    def finish(self, result: T) -> T:
        """Rank 0: send "done" with `result` to the other ranks; return it."""
        if self.size == 1:
            return result
        return self._share("done", lambda: result)

    def fail(self, error: BaseException) -> None:
        """Rank 0, `error` raised: tell the other ranks, so that none waits forever. Before or
        after the training loop they wait for a message: they get `error` as "done". Inside the
        loop they may wait in an Allreduce, and a `BaseException` (interrupt) is not shared:
        then every rank is ended (MPI_Abort)."""
        if self.size == 1 or self._others_gone:
            return
        if self._in_steps or not isinstance(error, Exception):
            self.abort(error)

        def raise_error() -> NoReturn:
            raise error

        try:
            self._share("done", raise_error)
        except Exception as shared:
            if shared is not error:
                raise

    def abort(self, error: BaseException) -> NoReturn:
        """End every rank (MPI_Abort) after logging `error`: for an error that the other ranks
        cannot be told about (they may be waiting in an Allreduce)."""
        logger.error(
            "rank %d of a data-parallel training: %s: %s; ending every rank (MPI_Abort). The "
            "checkpoint of the last complete epoch is kept: continue with --resume under the "
            "same number of ranks",
            self.rank,
            type(error).__name__,
            error,
        )
        abort(self.comm, 1)

    def follow(self, body: Callable[[], T]) -> T:
        """Not rank 0: run `body`; a `RankFailure` (rank 0's error) is raised, any other error
        ends every rank (rank 0 does not know of it and may wait in an Allreduce)."""
        try:
            return body()
        except RankFailure:
            raise
        except BaseException as exc:
            self.abort(exc)


def snapshot(model: Any, optimizer: Any, state: TrainingState) -> dict[str, Any]:
    """Everything a rank needs to continue a training where rank 0 stands: the loop state and
    every model variable (the sampling's generator state included) and optimizer variable
    (iteration count, Adam moments). Broadcast once per training (pickled: it is small)."""
    return {
        "state": dataclasses.asdict(state),
        "model": [v.numpy() for v in model.variables],
        "optimizer": [v.numpy() for v in optimizer.variables],
    }


def restore_snapshot(model: Any, optimizer: Any, values: dict[str, Any]) -> TrainingState:
    """Assign a `snapshot` to `model` and `optimizer` (built alike); return the loop state."""
    assign_variables(model.variables, values["model"], "model")
    assign_variables(optimizer.variables, values["optimizer"], "optimizer")
    return TrainingState(**values["state"])


class DataParallelEpochRunner:
    """One epoch of data-parallel training on this rank: as `EpochRunner` (a `tf.function`
    running the steps of a chunk in a graph loop), fed by `rank_training_pipeline` (this rank's
    rows of each global batch); per step this rank differentiates its part of the loss, and
    the flat gradient buffer goes through one Allreduce (SUM) before the update (see the module
    docstring).

    Attributes:
        buffer_size: floats per Allreduce (every trainable weight, plus the loss).
    """

    def __init__(
        self,
        model: Any,
        optimizer: Any,
        kind: ModelKind,
        training: TrainingConfig,
        comm: Communicator,
    ) -> None:
        beta = float(training.beta)
        bce_weight = float(training.bce_weight)
        variables = list(model.trainable_variables)
        sizes = [int(np.prod(v.shape)) for v in variables]
        self.buffer_size = sum(sizes) + 1
        self._allreduce_seconds = 0.0
        self._allreduce_calls = 0
        self._sums = tf.Variable(tf.zeros(2, tf.float32), trainable=False)  # (sum loss*n, n)
        sums = self._sums
        fused = fused_adam(optimizer)

        def allreduce(flat: np.ndarray) -> np.ndarray:
            buffer = np.array(flat, dtype=np.float32, copy=True, order="C")
            start = time.perf_counter()
            allreduce_sum(buffer, comm=comm)
            self._allreduce_seconds += time.perf_counter() - start
            self._allreduce_calls += 1
            return buffer

        def update(loss_fn: Callable[[], Any], n_sm: Any) -> None:
            with tf.GradientTape() as tape:
                loss = loss_fn()
            grads = tape.gradient(loss, variables)
            parts = [
                tf.reshape(tf.zeros_like(v) if g is None else g, [-1])
                for g, v in zip(grads, variables, strict=True)
            ]
            flat = tf.concat([*parts, tf.reshape(loss, [1])], axis=0)
            total = tf.numpy_function(allreduce, [flat], tf.float32, stateful=True)
            total = tf.ensure_shape(total, [self.buffer_size])
            summed = [
                tf.reshape(part, v.shape)
                for part, v in zip(tf.split(total[:-1], sizes), variables, strict=True)
            ]
            if fused is not None:
                fused(summed, variables)
            else:
                optimizer.apply_gradients(zip(summed, variables, strict=True))
            sums.assign_add(tf.stack([total[-1] * n_sm, n_sm]))

        def vae_step(x: Any, rows: Any) -> None:
            n_sm = tf.cast(rows[1], tf.float32)  # the global batch's events
            update(lambda: vae_loss_share(model, x, (rows[0], rows[1]), n_sm, beta=beta), n_sm)

        def vae_nn_step(
            x: Any, rows: Any, mixed: tuple[Any, Any, Any], mix_rows: Any, w: Any
        ) -> None:
            n_sm = tf.cast(rows[1], tf.float32)
            normaliser = weight_normaliser(w)  # of the GLOBAL mixed batch's weights

            def loss() -> Any:
                return vae_nn_loss_share(
                    model,
                    x,
                    (rows[0], rows[1]),
                    n_sm,
                    mixed=mixed,
                    mix_rows=(mix_rows[0], mix_rows[1]),
                    mix_normaliser=normaliser,
                    beta=beta,
                    bce_weight=bce_weight,
                )

            update(loss, n_sm)

        def vae_steps(xs: Any, rows: Any) -> None:
            graph_loop(tf.shape(xs)[0], lambda i: vae_step(xs[i], rows))

        def vae_nn_steps(  # noqa: PLR0917 - the pipeline's chunk, flattened
            xs: Any, rows: Any, xs_mix: Any, labels: Any, weights: Any, mix_rows: Any, w: Any
        ) -> None:
            graph_loop(
                tf.shape(xs)[0],
                lambda i: vae_nn_step(
                    xs[i], rows, (xs_mix[i], labels[i], weights[i]), mix_rows, w[i]
                ),
            )

        features = tf.TensorSpec((None, None, int(model.n_features)), tf.float32)
        per_event = tf.TensorSpec((None, None), tf.float32)
        rows_spec = tf.TensorSpec((2,), tf.int32)  # (offset, global batch size)
        self._kind = kind
        self._vae_steps = tf.function(
            vae_steps, input_signature=[features, rows_spec], autograph=False
        )
        self._vae_nn_steps = tf.function(
            vae_nn_steps,
            input_signature=[
                features,
                rows_spec,
                features,
                per_event,
                per_event,
                rows_spec,
                per_event,
            ],
            autograph=False,
        )

    def __call__(self, chunks: Iterator[Any], n_chunks: int) -> float:
        """Train on the next `n_chunks` chunks of the iterator `chunks` of
        `rank_training_pipeline` (one epoch); return the event-weighted mean training loss of
        the global batches (the same on every rank)."""
        self._sums.assign(tf.zeros(2, tf.float32))
        for _ in range(n_chunks):
            if self._kind == "vae":
                self._vae_steps(*next(chunks))
            else:
                (xs, rows), mixed = next(chunks)
                self._vae_nn_steps(xs, rows, *mixed)
        total, count = self._sums.numpy()
        return float(total / count)

    def take_allreduce_stats(self) -> tuple[int, float]:
        """(Allreduce calls, their wall time in s, waits for the slowest rank included) since
        the last call; the counters restart."""
        stats = (self._allreduce_calls, self._allreduce_seconds)
        self._allreduce_calls, self._allreduce_seconds = 0, 0.0
        return stats
