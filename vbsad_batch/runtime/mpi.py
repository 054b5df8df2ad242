"""Work split across MPI ranks (mpi4py), with a one-process fallback.

`world()` is the communicator of the run: MPI's COMM_WORLD when the process was started by an
MPI launcher (`mpiexec -n N`, `srun --mpi=pmi2`), otherwise a size-1 stand-in, so the same
code runs on a laptop without MPI and on a cluster under mpiexec. mpi4py is imported only in
the first case.

`map_work(items, fn)` runs `fn` on every item, items split round-robin over the ranks (rank r
takes items r, r + size, r + 2 size, ...: static, so that which rank computes what does not
depend on timing). Rank 0 gets the results in item order; the other ranks get None. Results and
failures travel in one collective `gather` of pickled ``(ok, result | failure)`` records, never
in point-to-point messages that a failed rank would leave unanswered: a rank whose `fn` raises
reports the error in the gather like any result, rank 0 broadcasts the verdict, and every rank
raises `RankFailure` naming the failing rank and item, so that all ranks exit non-zero and none
waits forever. `run_on_root(fn)` runs `fn` on rank 0 only and broadcasts its result, or its
error, to every rank in the same way. Errors outside these two on a single rank cannot be made
collective: callers end such a run with `abort(comm)` (MPI_Abort ends every rank).

For data-parallel work (`vbsad_batch.models.data_parallel`): `shard(n, rank, size)` is a rank's
contiguous share of n items, `allreduce_sum(buffer)` sums a NumPy buffer over the ranks in place
with one MPI_Allreduce on the buffer (no pickling), and `ranks_on_node()` counts the ranks that
share this node's cores (to size each rank's thread pools).
"""

from __future__ import annotations

import logging
import os
import pickle
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar, cast

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "LAUNCHER_ENV_VARS",
    "Communicator",
    "RankFailure",
    "SingleProcess",
    "abort",
    "allreduce_sum",
    "launched_by_mpi",
    "map_work",
    "ranks_on_node",
    "run_on_root",
    "shard",
    "world",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

LAUNCHER_ENV_VARS: tuple[str, ...] = (
    "PMI_SIZE",  # MPICH's hydra (mpiexec), Slurm's srun --mpi=pmi2, Cray PMI
    "PMI_RANK",
    "PMIX_RANK",  # PMIx launchers (OpenMPI 5 prterun, srun --mpi=pmix)
    "OMPI_COMM_WORLD_SIZE",  # OpenMPI's mpirun
)
"""Environment variables set by MPI launchers: their presence means "started under MPI"."""

_ITEM_REPR_CHARS = 200


class Communicator(Protocol):
    """What this package uses of an MPI communicator (mpi4py's `Comm` provides it)."""

    @property
    def rank(self) -> int: ...

    @property
    def size(self) -> int: ...

    def gather(self, sendobj: Any, root: int = 0) -> list[Any] | None: ...

    def bcast(self, obj: Any, root: int = 0) -> Any: ...

    def Abort(self, errorcode: int = 0) -> NoReturn: ...  # noqa: N802 - mpi4py's name


class SingleProcess:
    """A communicator of one rank: the run without MPI."""

    @property
    def rank(self) -> int:
        return 0

    @property
    def size(self) -> int:
        return 1

    def gather(self, sendobj: Any, root: int = 0) -> list[Any] | None:
        return [sendobj]

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return obj

    def Abort(self, errorcode: int = 0) -> NoReturn:  # noqa: N802 - mpi4py's name
        os._exit(errorcode or 1)


class RankFailure(RuntimeError):  # noqa: N818 - "failure" reads better than "error" here
    """A work item raised on some rank; raised on every rank by `map_work`.

    Attributes:
        rank: the rank whose item failed (the first failing item in item order).
        item_index: index of that item in `items`.
        item: repr of the item (shortened).
        remote_traceback: the formatted traceback from the failing rank.
        failures: number of items that failed (each rank stops at its first failure).
    """

    def __init__(
        self,
        rank: int,
        item_index: int,
        *,
        item: str,
        error: str,
        remote_traceback: str,
        failures: int,
    ) -> None:
        more = f" (and {failures - 1} more failure(s))" if failures > 1 else ""
        super().__init__(f"rank {rank} failed on work item {item_index} {item}: {error}{more}")
        self.rank = rank
        self.item_index = item_index
        self.item = item
        self.remote_traceback = remote_traceback
        self.failures = failures


@dataclass(frozen=True, slots=True)
class _Failure:
    rank: int
    item_index: int
    item: str
    error: str
    traceback: str


def launched_by_mpi() -> bool:
    """Whether an MPI launcher started this process (one of `LAUNCHER_ENV_VARS` is set)."""
    return any(name in os.environ for name in LAUNCHER_ENV_VARS)


_WORLD: Communicator | None = None


def world() -> Communicator:
    """The communicator of the run: MPI COMM_WORLD under an MPI launcher, else `SingleProcess`.

    Raises:
        RuntimeError: started by an MPI launcher with more than one rank but mpi4py cannot be
            imported, or its MPI sees a world of one rank (an mpi4py built for another MPI than
            the launcher's): every rank would otherwise redo the whole run alone.
    """
    global _WORLD  # noqa: PLW0603 - one world per process, like MPI's own
    if _WORLD is not None:
        return _WORLD
    if not launched_by_mpi():
        _WORLD = SingleProcess()
        return _WORLD
    size = os.environ.get("PMI_SIZE") or os.environ.get("OMPI_COMM_WORLD_SIZE") or "?"
    try:
        from mpi4py import MPI  # noqa: PLC0415 - only under an MPI launcher
    except ImportError as exc:
        if size == "1":
            _WORLD = SingleProcess()
            return _WORLD
        raise RuntimeError(
            f"started by an MPI launcher ({size} ranks) but mpi4py cannot be imported ({exc}); "
            "install the 'mpi' extra (pip install 'vbsad_batch[mpi]') or run without mpiexec"
        ) from exc
    comm: Communicator = MPI.COMM_WORLD
    if comm.size == 1 and size.isdigit() and int(size) > 1:
        raise RuntimeError(
            f"the MPI launcher started {size} ranks but MPI sees a world of 1: mpi4py is built "
            "for another MPI than the launcher's (use the mpiexec of the same MPI, e.g. the "
            "mpich wheel's, or 'srun --mpi=pmi2' for MPICH)"
        )
    _WORLD = comm
    return comm


def abort(comm: Communicator, code: int = 1) -> NoReturn:
    """End every rank of `comm` now (MPI_Abort); for errors that only one rank sees."""
    comm.Abort(code)


def _short_repr(item: object) -> str:
    text = repr(item)
    if len(text) > _ITEM_REPR_CHARS:
        text = text[: _ITEM_REPR_CHARS - 3] + "..."
    return text


def _run_share(
    items: Sequence[T], fn: Callable[[T], R], rank: int, size: int
) -> tuple[bool, list[R] | _Failure]:
    results: list[R] = []
    for index in range(rank, len(items), size):
        try:
            results.append(fn(items[index]))
        except Exception as exc:
            return False, _Failure(
                rank=rank,
                item_index=index,
                item=_short_repr(items[index]),
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
            )
    return True, results


def map_work(
    items: Sequence[T], fn: Callable[[T], R], *, comm: Communicator | None = None
) -> list[R] | None:
    """Run `fn` on every item, split round-robin over the ranks of `comm` (collective call).

    Every rank must call it with the same `items` (in the same order). `fn`'s results must be
    picklable; they are sent to rank 0 once, at the end.

    Args:
        items: the work items.
        fn: the work on one item; a rank stops at its first item that raises.
        comm: the communicator (default `world()`).

    Returns:
        on rank 0, `[fn(item) for item in items]` in item order; None on the other ranks.

    Raises:
        RankFailure: on every rank, when `fn` raised on any rank (or a result could not be
            pickled); it names the rank and the item that failed first in item order.
    """
    comm = world() if comm is None else comm
    rank, size = comm.rank, comm.size
    ok, share = _run_share(items, fn, rank, size)
    try:
        payload = pickle.dumps((ok, share), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # an unpicklable result must not break the collective
        failure = _Failure(
            rank=rank,
            item_index=rank,
            item="(results of this rank)",
            error=f"cannot send the results to rank 0: {type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )
        payload = pickle.dumps((False, failure), protocol=pickle.HIGHEST_PROTOCOL)
    gathered = comm.gather(payload, root=0)

    verdict: _Failure | None = None
    failures = 0
    ordered: list[R] = []
    if rank == 0:
        assert gathered is not None
        shares: list[list[R]] = []
        for blob in gathered:
            rank_ok, rank_share = pickle.loads(blob)
            if rank_ok:
                shares.append(rank_share)
                continue
            failures += 1
            if verdict is None or rank_share.item_index < verdict.item_index:
                verdict = rank_share
            shares.append([])
        if verdict is None:
            ordered = [shares[i % size][i // size] for i in range(len(items))]
    verdict, failures = comm.bcast((verdict, failures), root=0)
    if verdict is not None:
        if rank == 0:
            logger.debug("traceback of rank %d:\n%s", verdict.rank, verdict.traceback)
        raise RankFailure(
            verdict.rank,
            verdict.item_index,
            item=verdict.item,
            error=verdict.error,
            remote_traceback=verdict.traceback,
            failures=failures,
        )
    return ordered if rank == 0 else None


def run_on_root(fn: Callable[[], R], *, comm: Communicator | None = None) -> R:
    """Run `fn` on rank 0 only and return its result on every rank (collective call).

    The result must be picklable (it is broadcast).

    Raises:
        Exception: on rank 0, what `fn` raised.
        RankFailure: on the other ranks, when `fn` raised on rank 0.
    """
    comm = world() if comm is None else comm
    payload: bytes | None = None
    error: BaseException | None = None
    if comm.rank == 0:
        try:
            payload = pickle.dumps((True, fn()), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            error = exc
            failure = _Failure(
                rank=0,
                item_index=0,
                item=_short_repr(getattr(fn, "__name__", fn)),
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
            )
            payload = pickle.dumps((False, failure), protocol=pickle.HIGHEST_PROTOCOL)
    ok, value = pickle.loads(comm.bcast(payload, root=0))
    if error is not None:
        raise error
    if not ok:
        raise RankFailure(
            0,
            0,
            item=value.item,
            error=value.error,
            remote_traceback=value.traceback,
            failures=1,
        )
    result: R = value
    return result


def shard(n: int, rank: int, size: int) -> tuple[int, int]:
    """(offset, count): the contiguous share of rank `rank` of n items split over `size` ranks.

    Items are split as evenly as possible in rank order: with n = q * size + r, ranks 0..r-1
    take q + 1 items and the others q (a rank may get none when n < size); offsets follow
    rank order, so the shares of ranks 0..size-1 concatenate to items 0..n-1.
    """
    if size < 1 or not 0 <= rank < size or n < 0:
        raise ValueError(f"need 0 <= rank < size and n >= 0, got n={n}, rank={rank}, size={size}")
    q, r = divmod(n, size)
    return rank * q + min(rank, r), q + (1 if rank < r else 0)


def allreduce_sum(buffer: np.ndarray, *, comm: Communicator | None = None) -> None:
    """Replace `buffer` on every rank by the element-wise sum of the buffers of all ranks
    (collective call): one MPI_Allreduce with MPI_SUM, in place, through mpi4py's buffer API
    (`Comm.Allreduce` on the NumPy array's memory: no pickling). Nothing to do with one rank.

    Args:
        buffer: a C-contiguous, writable NumPy array of the same shape and dtype on every rank.
        comm: the communicator (default `world()`).
    """
    comm = world() if comm is None else comm
    if comm.size == 1:
        return
    from mpi4py import MPI  # noqa: PLC0415 - only under an MPI launcher

    cast(Any, comm).Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)


def ranks_on_node(comm: Communicator | None = None) -> int:
    """The number of ranks of `comm` on this node, this one included (collective call: every
    rank must call it): the ranks that share this node's cores. 1 without MPI."""
    comm = world() if comm is None else comm
    if comm.size == 1:
        return 1
    from mpi4py import MPI  # noqa: PLC0415 - only under an MPI launcher

    local = cast(Any, comm).Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return int(local.size)
    finally:
        local.Free()
