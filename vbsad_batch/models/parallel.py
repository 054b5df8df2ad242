"""The model stages over MPI ranks: the models of a grid trained and scored round-robin over the
ranks (task parallel), or each trained on all of them (data parallel), and TensorFlow's
thread pools sized for the ranks that share a node.

Task parallel (the default; `[training] data_parallel = false`): the models (`ModelSpec`s, in
the grid's order) are split over the ranks by `vbsad_batch.runtime.mpi.map_work` (rank r trains
models r, r + N, ...: static, not by timing), each trained by one process exactly as alone, so
that each model's outputs are those of a 1-rank run (the weights bit for bit; see
`train_models`). Rank 0 gathers the results; a model that fails on any rank fails the call on
every rank (`RankFailure`, naming the rank and the model), without a hang. Scoring is always
task parallel: one model's scores per rank at a time (`score_models`, defined in
`vbsad_batch.models.scoring`, which does not import TensorFlow).

Data parallel (`[training] data_parallel = true`, N > 1 ranks): the models are trained one
after the other, each on all ranks (`vbsad_batch.models.data_parallel`).

Threads: TensorFlow sizes its intra-op and inter-op pools to every core of the machine in every
process, so k ranks on a node would run k times as many threads as cores, time-slicing each
other's matrix products. `configure_threads` gives each rank floor(cores / k) threads of each
kind (at least 1): with 2 ranks on 2 cores, 1 each. The cores are those of the CPU set, at most
the cgroup's CPU quota (`vbsad_batch.runtime.cpus`), which also sizes one rank's pools. The
thread count does not change the numbers here (the small Dense layers compute the same bits with
1 or 2 threads: checked on the tests' models), so a model trained on a rank with 1 thread equals
one trained alone with 2.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from vbsad_batch.config import AnalysisConfig, ModelSpec
from vbsad_batch.models.scoring import score_models  # re-exported: scoring needs no TensorFlow
from vbsad_batch.models.training import TrainingResult, train
from vbsad_batch.runtime.cpus import usable_cores, usable_cpus
from vbsad_batch.runtime.mpi import Communicator, map_work, ranks_on_node, world
from vbsad_batch.runtime.progress import ProgressCallback

__all__ = [
    "THREAD_ENV_VARS",
    "configure_threads",
    "score_models",
    "threads_per_rank",
    "train_models",
]

logger = logging.getLogger(__name__)

THREAD_ENV_VARS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
"""TensorFlow's own settings of its thread pools: when either is set, `configure_threads` leaves
the pools alone."""


def threads_per_rank(ranks: int, cpus: int) -> int:
    """Threads of each pool for one of `ranks` ranks sharing `cpus` cores: floor(cpus / ranks),
    at least 1."""
    return max(1, cpus // max(1, ranks))


def configure_threads(comm: Communicator | None = None) -> int | None:
    """Size TensorFlow's intra-op and inter-op thread pools for the ranks of `comm` on this
    node (collective call: every rank calls it, before TensorFlow runs anything).

    Returns the threads per pool set, or None when nothing was set: one rank that may use
    every core of its CPU set (TensorFlow's default, every core of the set, is right),
    `THREAD_ENV_VARS` set (the user's choice), or TensorFlow already started (its pools are
    then fixed; a warning says so). One rank under a cgroup CPU quota smaller than its CPU set
    (`docker --cpus`, Kubernetes limits) gets as many threads as the quota's cores: TensorFlow
    counts the CPU set and would run more threads than the quota lets run at once.
    """
    comm = world() if comm is None else comm
    cpus = usable_cores()  # the CPU set, at most the cgroup CPU quota
    if comm.size == 1 and cpus == len(usable_cpus()):
        return None
    # collective: before any early return that differs by rank
    ranks = ranks_on_node(comm) if comm.size > 1 else 1
    if any(os.environ.get(name) for name in THREAD_ENV_VARS):
        return None
    import tensorflow as tf  # noqa: PLC0415 - only when the model stages run

    threads = threads_per_rank(ranks, cpus)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as exc:  # TensorFlow has started: its pools are fixed
        # Under MPI the ranks may time-slice each other: say so. One process (e.g. a second
        # `run_analysis` in a notebook under a quota) only keeps TensorFlow's own sizes.
        level = logging.WARNING if comm.size > 1 else logging.DEBUG
        logger.log(level, "cannot size TensorFlow's thread pools for %d rank(s): %s", ranks, exc)
        return None
    logger.debug("%d rank(s) on this node, %d core(s): %d thread(s) each", ranks, cpus, threads)
    return threads


def train_models(
    config: AnalysisConfig,
    specs: Sequence[ModelSpec],
    *,
    comm: Communicator | None = None,
    resume: bool = False,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> list[TrainingResult] | None:
    """Train the models `specs` over the ranks of `comm` (collective call: every rank calls it
    with the same arguments); see the module docstring for the task- and data-parallel
    split. Every model goes through `train` (the stage contract: an up-to-date model is
    skipped, `resume` continues a checkpoint).

    Args:
        config: the analysis configuration.
        specs: the models, in the grid's order.
        comm: the communicator (default `world()`).
        resume, force: as `train`.
        progress: called on rank 0 with the `ProgressEvent`s of the models rank 0 trains.

    Returns:
        on rank 0, the results in the order of `specs`; None on the other ranks.

    Raises:
        RankFailure: on every rank, a model failed on some rank (task parallel), or on the
            ranks other than 0 (data parallel, where rank 0 raises the error itself). With one
            rank: the error itself.
    """
    comm = world() if comm is None else comm
    mine = progress if comm.rank == 0 else None

    def one(spec: ModelSpec, *, comm: Communicator | None = None) -> TrainingResult:
        return train(
            config,
            kind=spec.kind,
            latent_dim=spec.latent_dim,
            seed=spec.seed,
            training_operator=spec.training_operator,
            resume=resume,
            force=force,
            progress=mine,
            comm=comm,
        )

    if comm.size == 1:  # alone: each model's own errors, unwrapped
        return [one(spec) for spec in specs]
    if config.training.data_parallel:
        results = [one(spec, comm=comm) for spec in specs]
        return results if comm.rank == 0 else None
    return map_work(list(specs), one, comm=comm)
