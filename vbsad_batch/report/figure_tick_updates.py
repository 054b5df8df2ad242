"""An axis's ticks worked out once per state of the axis while a figure is laid out and painted.

matplotlib works out an axis's ticks (locations, labels, the tick artists placed) each time
some part of the drawing asks for them (`Axis._update_ticks`): the constrained layout's two
passes ask for each axes' tight box, which asks each of its axes once for the box and once more
for its label, and each of the four spines; painting asks again. In the demo's 29 figures that
is ~2,500 updates for ~470 distinct states (each layout pass moves the axes), and a sixth of the
CPU time of drawing them.

Inside `ticks_updated_once()`, an update of an axis whose state is the one of its last update
returns the ticks that update placed. The state is all that the ticks depend on while a
figure is drawn: the view interval, the axes' box in pixels (its position, the figure's size
and dpi), the scale, and the locators and formatters with the view interval and box of the
axis they work for (a shared axis's may be another axes'). The pixels are the same; the report's
tests compare every figure with `savefig`'s, byte for byte.

`Axis._update_ticks` is matplotlib's own (private) method: it is replaced only inside the
context and put back on leaving it; where a matplotlib version has no such method, nothing is
replaced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from matplotlib.axis import Axis

__all__ = ["TickUpdates", "ticks_updated_once"]

_ORIGINAL: Callable[[Any], list[Any]] | None = getattr(Axis, "_update_ticks", None)


@dataclass
class TickUpdates:
    """What `ticks_updated_once` saved.

    Attributes:
        worked_out: updates that matplotlib made (a new state of the axis).
        repeated: updates answered with the ticks of the same state.
    """

    worked_out: int = 0
    repeated: int = 0


def _ticker(ticker: Any, axis: Any) -> tuple[Any, ...]:
    """A locator or formatter, and the state of the axis it works for: axes that share an axis
    (`sharex`, `sharey`) share its locators and formatters, which then work out the ticks
    from the axis they were last set on, whose size need not be this axis's. The object
    itself, not its id(): it stays alive, so another object cannot take its place."""
    owner = getattr(ticker, "axis", None)
    if owner is None or owner is axis or not hasattr(owner, "axes"):
        return (ticker,)  # its own axis: already in the state
    return (ticker, tuple(owner.get_view_interval()), tuple(owner.axes.bbox.bounds))


def _state(axis: Any) -> tuple[Any, ...]:
    """What an axis's ticks depend on while its figure is drawn."""
    return (
        tuple(axis.get_view_interval()),
        tuple(axis.axes.bbox.bounds),
        axis.get_scale(),
        _ticker(axis.major.locator, axis),
        _ticker(axis.minor.locator, axis),
        _ticker(axis.major.formatter, axis),
        _ticker(axis.minor.formatter, axis),
    )


@contextlib.contextmanager
def ticks_updated_once() -> Iterator[TickUpdates]:
    """Within: each axis's ticks are worked out once per state (see the module docstring).
    Nested, or without matplotlib's method, it changes nothing (its counts stay 0)."""
    counts = TickUpdates()
    original = _ORIGINAL
    if original is None or Axis.__dict__.get("_update_ticks") is not original:
        yield counts
        return
    work_out: Callable[[Any], list[Any]] = cast("Callable[[Any], list[Any]]", original)
    last: dict[Any, tuple[tuple[Any, ...], list[Any]]] = {}

    def update_ticks(axis: Any) -> list[Any]:
        state = _state(axis)
        kept = last.get(axis)
        if kept is not None and kept[0] == state:
            counts.repeated += 1
            return list(kept[1])
        ticks = work_out(axis)  # a new list, the caller's
        last[axis] = (state, list(ticks))
        counts.worked_out += 1
        return ticks

    setattr(Axis, "_update_ticks", update_ticks)  # noqa: B010 - private: not in the stubs
    try:
        yield counts
    finally:
        setattr(Axis, "_update_ticks", original)  # noqa: B010
