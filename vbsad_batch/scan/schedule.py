"""Which rank computes which work item: contiguous blocks of similar cost, so that a rank reads
only the score files of its own items.

`vbsad_batch.runtime.mpi.map_work` deals items round-robin (item i to rank i mod size). Dealt
that way, every rank gets items of every model, score column and operator and so reads every
score file. `dealt_in_blocks` reorders the items (padding with None) so that the same
round-robin gives rank r the r-th of `size` contiguous blocks of the items in their locality
order (model, score column, operator, as `work_items` makes them), the blocks cut at equal
estimated cost; `in_item_order` puts the results back in item order. Which rank computes an
item never changes its result: the outputs are the same for any number of ranks.

A score column whose point items fall in the blocks of several ranks is needed by each of
them; `shared_sorts` lists those columns, whose SM events those ranks then sort together
(`vbsad_batch.scan.sm_sharing`) instead of each sorting all of them.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

from vbsad_batch.runtime.mpi import Communicator, RankFailure, map_work
from vbsad_batch.scan.baseline import CUT_MODEL
from vbsad_batch.scan.sm_sharing import SharedSort
from vbsad_batch.scan.work import WorkItem

__all__ = [
    "blocks",
    "dealt_in_blocks",
    "estimated_cost",
    "in_item_order",
    "map_in_blocks",
    "shared_sorts",
]

R = TypeVar("R")
K = TypeVar("K", bound=Hashable)

# Relative cost of the kinds of items (one bootstrap replica = 1): measured on the synthetic
# scan of benchmarks/scan.py, order of magnitude only (the split needs no more).
_POINT_COST = 6.0
_CONTOUR_COST = 3.0
_CUT_COST = 6.0


def estimated_cost(item: WorkItem) -> float:
    """Relative cost of an item (one bootstrap replica = 1; no unit)."""
    if item.model == CUT_MODEL:
        return _CUT_COST
    if item.partner is not None:
        return _CONTOUR_COST
    if item.replicas is not None:
        return float(max(item.replicas[1] - item.replicas[0], 1))
    return _POINT_COST


def blocks(items: Sequence[WorkItem], size: int) -> list[range]:
    """`size` contiguous ranges of item indices (some maybe empty) whose estimated costs are
    as equal as contiguity allows: boundary r is where the running cost comes nearest to
    r / size of the total."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    running = list(itertools.accumulate((estimated_cost(item) for item in items), initial=0.0))
    total = running[-1]
    bounds = [0]
    for r in range(1, size):
        share = total * r / size
        i = bisect.bisect_left(running, share)
        if i > 0 and (i >= len(running) or share - running[i - 1] <= running[i] - share):
            i -= 1
        bounds.append(max(i, bounds[-1]))
    bounds.append(len(items))
    return [range(bounds[r], bounds[r + 1]) for r in range(size)]


def shared_sorts(
    items: Sequence[WorkItem], size: int, needs: Callable[[WorkItem], Sequence[K]]
) -> list[SharedSort[K]]:
    """The SM columns (`needs(item)`: the keys of those an item uses) that more than one rank
    of `blocks(items, size)` needs, in order of first use, each sorted in equal shares by
    those ranks (equal: no rank can go on before the whole sort is done)."""
    users: dict[K, list[int]] = {}
    for rank, part in enumerate(blocks(items, size)):
        for i in part:
            for key in needs(items[i]):
                ranks = users.setdefault(key, [])
                if rank not in ranks:
                    ranks.append(rank)
    return [SharedSort(key, tuple(ranks)) for key, ranks in users.items() if len(ranks) > 1]


def dealt_in_blocks(items: Sequence[WorkItem], size: int) -> list[int | None]:
    """Item indices (None: padding) in the order to hand to a round-robin over `size` ranks so
    that rank r computes exactly block r of `blocks(items, size)`."""
    parts = blocks(items, size)
    rounds = max((len(part) for part in parts), default=0)
    order: list[int | None] = []
    for k in range(rounds):
        for part in parts:
            order.append(part[k] if k < len(part) else None)
    return order


def in_item_order(order: Sequence[int | None], results: Sequence[R], n_items: int) -> list[R]:
    """Results computed in `order` (from `dealt_in_blocks`), in item order."""
    slots: list[R | None] = [None] * n_items
    filled = [False] * n_items
    for index, result in zip(order, results, strict=True):
        if index is not None:
            slots[index] = result
            filled[index] = True
    if not all(filled):
        raise ValueError(f"{filled.count(False)} item(s) without a result")
    return cast("list[R]", slots)


@dataclass(frozen=True, slots=True)
class _Dealt:
    """An item with its index in item order (its repr: the item's, for error messages)."""

    index: int
    item: WorkItem

    def __repr__(self) -> str:
        return repr(self.item)


def map_in_blocks(
    items: Sequence[WorkItem], fn: Callable[[WorkItem], R], *, comm: Communicator
) -> list[R] | None:
    """`map_work(items, fn, comm=comm)` with rank r computing block r of `blocks(items, size)`
    (collective call).

    Returns:
        on rank 0 the results in item order; None on the other ranks.

    Raises:
        RankFailure: as `map_work`, with the index of the failing item in `items`.
    """
    order = dealt_in_blocks(items, comm.size)
    dealt = [None if index is None else _Dealt(index, items[index]) for index in order]

    def run(entry: _Dealt | None) -> R | None:
        return None if entry is None else fn(entry.item)

    try:
        results = map_work(dealt, run, comm=comm)
    except RankFailure as failure:
        index = order[failure.item_index]
        prefix = f"rank {failure.rank} failed on work item {failure.item_index} {failure.item}: "
        more = f" (and {failure.failures - 1} more failure(s))" if failure.failures > 1 else ""
        error = str(failure).removeprefix(prefix).removesuffix(more)
        raise RankFailure(
            failure.rank,
            failure.item_index if index is None else index,
            item=failure.item,
            error=error,
            remote_traceback=failure.remote_traceback,
            failures=failure.failures,
        ) from None
    if results is None:
        return None
    return cast("list[R]", in_item_order(order, results, len(items)))
