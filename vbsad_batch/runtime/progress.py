"""Progress as data: stages emit `ProgressEvent`s through a callback; reporters display them.

Stages never print. The CLI picks a reporter: a rich progress bar when stderr is a terminal,
plain timestamped log lines (through `logging`) otherwise, e.g. in Slurm log files.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Protocol, TextIO

if TYPE_CHECKING:  # rich is imported only when a terminal progress bar is shown
    from rich.console import Console
    from rich.progress import Progress, TaskID

__all__ = [
    "LogProgressReporter",
    "NullProgressReporter",
    "ProgressCallback",
    "ProgressEvent",
    "ProgressKind",
    "ProgressReporter",
    "RichProgressReporter",
    "make_progress_reporter",
]

logger = logging.getLogger(__name__)

ProgressKind = Literal[
    "run_started",
    "item_started",
    "item_advanced",
    "item_finished",
    "item_skipped",
    "item_failed",
    "run_finished",
]


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One step of a stage's progress.

    Attributes:
        stage: the stage reporting, e.g. "preprocess".
        kind: what happened; "item_*" kinds concern `item`.
        item: the unit of work (for preprocess: the input file path).
        total_items: number of items in the run.
        rows: rows written so far for `item` (final count for "item_finished").
        events: events read so far for `item`.
        message: human-readable detail (skip reason, error message, output path).
        seconds: wall time spent on `item`, s (for "item_finished"; 0 otherwise).
    """

    stage: str
    kind: ProgressKind
    item: str | None = None
    total_items: int = 0
    rows: int = 0
    events: int = 0
    message: str = ""
    seconds: float = 0.0


ProgressCallback = Callable[[ProgressEvent], None]


class ProgressReporter(Protocol):
    """A progress callback usable as a context manager (to set up and tear down a display)."""

    def __call__(self, event: ProgressEvent) -> None: ...

    def __enter__(self) -> ProgressReporter: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def _item_name(event: ProgressEvent) -> str:
    return event.item or "?"


class NullProgressReporter:
    """Discards every event (`--quiet`)."""

    def __call__(self, event: ProgressEvent) -> None:
        pass

    def __enter__(self) -> NullProgressReporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pass


class LogProgressReporter:
    """Reports through `logging` (INFO), one line per item start/end, and at most one line per
    `interval_s` seconds (default 30) per running item while it advances."""

    def __init__(self, log: logging.Logger | None = None, *, interval_s: float = 30.0) -> None:
        self._log = log or logger
        self._interval_s = interval_s
        self._last_line: dict[str, float] = {}
        self._started: dict[str, float] = {}
        self._done = 0

    def __enter__(self) -> LogProgressReporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pass

    def __call__(self, event: ProgressEvent) -> None:
        name = _item_name(event)
        now = time.monotonic()
        if event.kind == "run_started":
            self._done = 0  # a reporter may serve several stages in turn (`vbsad run`)
            self._log.info("%s: %d item(s) to do", event.stage, event.total_items)
        elif event.kind == "item_started":
            self._started[name] = now
            self._last_line[name] = now
            self._log.info("%s: started %s", event.stage, name)
        elif event.kind == "item_advanced":
            if now - self._last_line.get(name, 0.0) >= self._interval_s:
                self._last_line[name] = now
                self._log.info(
                    "%s: %s: %d events read, %d rows written",
                    event.stage,
                    name,
                    event.events,
                    event.rows,
                )
        elif event.kind in ("item_finished", "item_skipped", "item_failed"):
            self._done += 1
            # The item's own timing when given: events from worker processes arrive late.
            elapsed = event.seconds or now - self._started.pop(name, now)
            self._started.pop(name, None)
            self._last_line.pop(name, None)
            progress = f"[{self._done}/{event.total_items}]"
            if event.kind == "item_finished":
                self._log.info(
                    "%s: %s finished %s: %d events, %d rows in %.1f s%s",
                    event.stage,
                    progress,
                    name,
                    event.events,
                    event.rows,
                    elapsed,
                    f" -> {event.message}" if event.message else "",
                )
            elif event.kind == "item_skipped":
                self._log.info("%s: %s skipped %s: %s", event.stage, progress, name, event.message)
            else:
                self._log.error("%s: %s failed %s: %s", event.stage, progress, name, event.message)
        elif event.kind == "run_finished":
            self._log.info("%s: done (%s)", event.stage, event.message or f"{self._done} items")


class RichProgressReporter:
    """A terminal progress bar: one bar over the items plus a live line per running item."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console
        self._progress: Progress | None = None
        self._overall: TaskID | None = None
        self._items: dict[str, TaskID] = {}
        self._done = 0

    def __enter__(self) -> RichProgressReporter:
        from rich.progress import (  # noqa: PLC0415 - rich only for a terminal
            BarColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self._console,
            transient=False,
        )
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __call__(self, event: ProgressEvent) -> None:
        progress = self._progress
        if progress is None:
            return
        name = _item_name(event)
        short = Path(name).name
        if event.kind == "run_started":
            self._done = 0  # a reporter may serve several stages in turn (`vbsad run`)
            self._overall = progress.add_task(
                event.stage, total=event.total_items, status=f"0/{event.total_items}"
            )
        elif event.kind == "item_started":
            self._items[name] = progress.add_task(f"  {short}", total=None, status="")
        elif event.kind == "item_advanced":
            task = self._items.get(name)
            if task is not None:
                progress.update(task, status=f"{event.events:,} events")
        elif event.kind in ("item_finished", "item_skipped", "item_failed"):
            task = self._items.pop(name, None)
            if task is not None:
                progress.remove_task(task)
            self._done += 1
            if self._overall is not None:
                progress.update(
                    self._overall,
                    advance=1,
                    status=f"{self._done}/{event.total_items}",
                )
            if event.kind == "item_finished":
                count = f"{event.rows:,} rows" if event.rows else f"{event.events:,} events"
                progress.console.print(f"[green]done[/] {short}: {count}")
            elif event.kind == "item_skipped":
                progress.console.print(f"[cyan]skipped[/] {short}: {event.message}")
            else:
                progress.console.print(f"[red]failed[/] {short}: {event.message}")


def make_progress_reporter(
    *,
    quiet: bool = False,
    stream: TextIO | None = None,
    console: Console | None = None,
) -> ProgressReporter:
    """The reporter for the current environment.

    `quiet` -> nothing; `stream` (default stderr) is a terminal -> `RichProgressReporter`
    (on `console` if given); otherwise -> `LogProgressReporter`.
    """
    if quiet:
        return NullProgressReporter()
    out = stream if stream is not None else sys.stderr
    if out.isatty():
        return RichProgressReporter(console)
    return LogProgressReporter()
