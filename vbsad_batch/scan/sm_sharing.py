"""The SM side of a score column built by the MPI ranks that need it, together.

Every rank that scans an operator of a score column needs that column's `SMColumn`; most of
its cost is the stable sort of the SM events (10^7 of them). `shared_sm_column` splits that
sort between the ranks of a communicator without changing a bit of the result:

- the events are cut into value ranges of the score, at quantiles of a strided subsample, in
  proportion to `shares` (equal by default; all events of one score value in one range);
- rank k takes the events of range k in event order and sorts them stably: that is exactly the
  slice of the stable argsort of all events that holds range k (stable: ties in event order);
- one Allgatherv concatenates the ranges' orders, in rank order, on every rank.

What follows is computed by every rank: the distinct scores (their ranges could be found per
rank too, but sending them cost more than finding them, measured) and the SM yields' suffix
sums (one sequential cumulative sum: split, its rounding would change).

`build_shared_columns` runs this for each score column that several ranks need
(`vbsad_batch.scan.schedule.shared_sorts`), on a communicator of those ranks only, in one
order on every rank (so no rank waits on another in a different collective).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import numpy as np

from vbsad_batch.runtime.mpi import Communicator
from vbsad_batch.scan.sm_column import SMColumn
from vbsad_batch.scan.statistics import FloatArray, IntArray, ScoreSample

__all__ = ["SharedSort", "build_shared_columns", "range_order", "shared_sm_column", "value_bounds"]

K = TypeVar("K", bound=Hashable)

_SAMPLE = 1 << 16  # events of the strided subsample that places the range bounds
_POLL_S = 0.001  # seconds between tests of a pending MPI operation


@dataclass(frozen=True, slots=True)
class SharedSort(Generic[K]):
    """A score column whose SM events several ranks sort together.

    Attributes:
        key: what names the column (e.g. model, SM dataset, score column).
        ranks: the ranks that need it, ascending (they sort equal shares of its events).
    """

    key: K
    ranks: tuple[int, ...]


def value_bounds(score: FloatArray, shares: Sequence[float]) -> FloatArray:
    """The len(shares) - 1 score values that cut `score` into ranges holding about `shares`
    (relative, >= 0) of the events: range k is bounds[k-1] <= score < bounds[k] (the first
    range unbounded below; the last holds every score not below its bound, NaN included)."""
    weights = np.asarray(shares, dtype=np.float64)
    if weights.size == 0 or not np.all(weights >= 0) or not weights.sum() > 0:
        raise ValueError(f"shares must be >= 0 with a positive sum, got {list(shares)}")
    step = max(1, score.size // _SAMPLE)
    sample = np.sort(score[::step])
    sample = sample[~np.isnan(sample)]
    if sample.size == 0:
        return np.full(weights.size - 1, np.inf)
    cut = np.cumsum(weights)[:-1] / weights.sum()
    index = np.minimum((cut * sample.size).astype(np.int64), sample.size - 1)
    bounds: FloatArray = sample[index]
    return bounds


def range_order(score: FloatArray, k: int, bounds: FloatArray) -> IntArray:
    """The indices of the events of range k of `bounds` (`value_bounds`), in the order of the
    stable argsort of `score`."""
    if bounds.size == 0:
        mask = np.ones(score.size, dtype=bool)
    elif k == 0:
        mask = score < bounds[0]
    elif k == bounds.size:
        mask = ~(score < bounds[-1])
    else:
        mask = (score >= bounds[k - 1]) & (score < bounds[k])
    index = np.flatnonzero(mask)
    return index[np.argsort(score[index], kind="stable")].astype(np.int64)


def _waited(request: Any) -> None:
    """Wait for a non-blocking MPI operation, sleeping between tests: a rank that waits for
    another leaves the core to it (ranks may share cores) instead of spinning."""
    while not request.Test():
        time.sleep(_POLL_S)


def _concatenated(comm: Any, part: IntArray, counts: IntArray) -> IntArray:
    """The parts of the ranks of `comm` (`counts` elements each), concatenated in rank order
    on every rank (one Allgatherv)."""
    from mpi4py import MPI  # noqa: PLC0415 - only with several ranks

    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    out = np.empty(int(counts.sum()), dtype=part.dtype)
    request = comm.Iallgatherv(
        np.ascontiguousarray(part), [out, counts.tolist(), offsets.tolist(), MPI.INT64_T]
    )
    _waited(request)
    return out


def shared_sm_column(
    sm: ScoreSample, comm: Communicator, shares: Sequence[float] | None = None
) -> SMColumn:
    """`SMColumn(sm)`, its sort split between the ranks of `comm` (collective call: every rank
    calls it with the same SM events), rank k sorting about shares[k] of them (default equal
    shares). The result is that of one rank, bit for bit.

    Raises:
        ValueError: `shares` does not have one entry per rank.
        RuntimeError: the ranks' events differ (their ranges do not make up the sample).
    """
    size = comm.size
    if shares is None:
        shares = [1.0] * size
    if len(shares) != size:
        raise ValueError(f"{len(shares)} share(s) for {size} rank(s)")
    if size == 1:
        return SMColumn(sm)
    from mpi4py import MPI  # noqa: PLC0415 - only with several ranks

    score = sm.score
    part = range_order(score, comm.rank, value_bounds(score, shares))
    mpi = cast(Any, comm)
    sizes = np.empty(size, dtype=np.int64)
    _waited(mpi.Iallgather(np.array([part.size], dtype=np.int64), [sizes, MPI.INT64_T]))
    if int(sizes.sum()) != score.size:
        raise RuntimeError(
            f"the ranks' value ranges hold {int(sizes.sum())} events, not {score.size}: "
            "the ranks sort different SM events"
        )
    return SMColumn(sm, order=_concatenated(mpi, part, sizes))


def build_shared_columns(
    shared: Sequence[SharedSort[K]],
    comm: Communicator,
    load: Callable[[K], ScoreSample | None],
) -> dict[K, SMColumn]:
    """The `SMColumn`s of this rank among `shared`, each built by its ranks together
    (collective call on `comm`: every rank calls it with the same `shared`).

    `load(key)` gives the SM events of a column (None: they cannot be read). When any rank of
    a column fails to load it, that column is left out (the work items that need it then raise
    the error, reported as any item's)."""
    built: dict[K, SMColumn] = {}
    if comm.size == 1 or not shared:
        return built
    from mpi4py import MPI  # noqa: PLC0415 - only with several ranks

    mpi = cast(Any, comm)
    for group in shared:
        member = comm.rank in group.ranks
        sub = mpi.Split(0 if member else MPI.UNDEFINED, comm.rank)
        if not member:
            continue
        try:
            try:
                sample = load(group.key)
            except Exception:  # the items that need it report it
                sample = None
            loaded = np.empty(sub.Get_size(), dtype=np.int64)
            _waited(sub.Iallgather(np.array([sample is not None], dtype=np.int64), loaded))
            if bool(np.all(loaded == 1)):
                assert sample is not None
                built[group.key] = shared_sm_column(sample, sub)
        finally:
            sub.Free()
    return built
