"""The report's figures drawn by several processes at once.

Drawing is matplotlib's pure Python work (the constrained layout, ticks, text), ~0.2-3 s of
one core per figure: with more cores, extra worker processes draw some of the figures while
the report's own process draws the others. Each worker plans the same figures from the same
stage outputs (`figure_tasks`) and draws the ones it is given by file name; the report's
process takes, in order, every figure that no worker has started yet, so that the work is
shared whatever the speed of each. The PNG bytes do not depend on the process that drew them.

Workers are started with "spawn" (a fresh interpreter: safe with the threads of the parent,
polars' and the progress display's) and cost ~1.5 s of imports each, so they are used only
when there are enough figures (`FIGURES_PER_WORKER` per extra process) and idle cores
(`default_processes`, measured over `IDLE_SAMPLE_S`).
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vbsad_batch.config import AnalysisConfig
from vbsad_batch.runtime.cpus import usable_cores, usable_cpus

if TYPE_CHECKING:
    from vbsad_batch.report.figures import FigureTask

__all__ = [
    "FIGURES_PER_WORKER",
    "IDLE_SAMPLE_S",
    "MAX_WORKERS",
    "default_processes",
    "idle_cores",
    "rendered_figures",
]

IDLE_SAMPLE_S = 0.2
"""Seconds over which `default_processes` measures the idle cores."""
FIGURES_PER_WORKER = 6
"""Figures an extra process must have to draw for its start-up (~1.5 s) to pay off."""
MAX_WORKERS = 7
"""At most this many extra processes."""

_TASKS: dict[str, FigureTask] = {}
"""A worker's figures, by file name (set by `_start_worker`)."""


def default_processes() -> int:
    """The processes that may draw figures: this one, and one more per further core that
    other work leaves idle.

    The cores are those this process may run on (`os.sched_getaffinity`: the CPU set of a Slurm
    allocation), at most its cgroup's CPU quota (`vbsad_batch.runtime.cpus`). Their idle time is
    measured over `IDLE_SAMPLE_S` while this process sleeps (`idle_cores`), so this process's
    own earlier work does not count: the 1-minute load average that it replaces still held the
    stages `vbsad run` had just run, and on 2 idle cores it left the demo's report to one
    process (measured in `vbsad run`: the report stage 13.0-13.2 s with it, 8.0-8.3 s with
    `idle_cores`). Without /proc/stat, the load average decides. On a busy machine a worker only
    adds its start-up and competes with this process: measured on 2 busy cores (load ~3), two
    processes took 17% longer than one."""
    cores = usable_cores()  # at most the cgroup's CPU quota
    if cores == 1:
        return 1  # nothing to measure
    cpus = usable_cpus()
    idle = idle_cores(cpus, IDLE_SAMPLE_S)
    if idle is None:
        try:
            idle = cores - os.getloadavg()[0]
        except OSError:  # not available: assume the cores are ours
            idle = float(cores)
        return max(1, min(cores, math.floor(idle) + 1))
    return max(1, min(cores, math.floor(idle + 0.25)))


def _cpu_jiffies(cpus: Sequence[int]) -> dict[int, tuple[int, int]] | None:
    """(idle, total) clock ticks of each of `cpus` so far, from /proc/stat (None: not
    readable, or a CPU not listed)."""
    try:
        lines = Path("/proc/stat").read_text(encoding="ascii").splitlines()
    except OSError:
        return None
    wanted = set(cpus)
    out: dict[int, tuple[int, int]] = {}
    for line in lines:
        name, _, rest = line.partition(" ")
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in wanted):
            continue
        ticks = [int(field) for field in rest.split()[:8]]  # user .. steal (guest is in user)
        if len(ticks) < 4:
            return None
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
        out[int(name[3:])] = (idle, sum(ticks))
    return out if len(out) == len(wanted) else None


def idle_cores(cpus: Sequence[int], seconds: float) -> float | None:
    """How many of `cpus` were idle, summed over them (0 to len(cpus)), measured over
    `seconds` while this thread sleeps; None where /proc/stat cannot tell (not Linux)."""
    before = _cpu_jiffies(cpus)
    if before is None:
        return None
    time.sleep(seconds)
    after = _cpu_jiffies(cpus)
    if after is None:
        return None
    idle = 0.0
    for cpu in cpus:
        elapsed = after[cpu][1] - before[cpu][1]
        idle += (after[cpu][0] - before[cpu][0]) / elapsed if elapsed > 0 else 1.0
    return idle


def _start_worker(config: AnalysisConfig) -> None:
    """In a worker: plan the report's figures as the report's process planned them."""
    from vbsad_batch.report.figures import figure_tasks  # noqa: PLC0415 - in the worker
    from vbsad_batch.report.inputs import find_report_inputs  # noqa: PLC0415

    _TASKS.update((task.file_name, task) for task in figure_tasks(find_report_inputs(config)))


def _render_in_worker(file_name: str) -> tuple[bytes, float]:
    """In a worker: the PNG bytes of one figure and the seconds it took."""
    start = time.monotonic()
    return _TASKS[file_name].render(), time.monotonic() - start


def _render_here(task: FigureTask) -> tuple[bytes, float]:
    start = time.monotonic()
    return task.render(), time.monotonic() - start


def rendered_figures(
    config: AnalysisConfig, tasks: Sequence[FigureTask], *, processes: int | None = None
) -> Iterator[tuple[FigureTask, bytes, float]]:
    """(task, PNG bytes, seconds) of every task, in the order of `tasks`, drawn by up to
    `processes` processes (this one included; None: `default_processes()`), as the module
    docstring says.

    Args:
        config: the analysis config the tasks were planned from (`figure_tasks` of
            `find_report_inputs(config)`): the workers plan the same.
        tasks: the figures.
        processes: processes that may draw, this one included (1: only this one).

    Raises:
        whatever drawing a figure raised, in this process or a worker.
    """
    wanted = default_processes() if processes is None else processes
    workers = min(wanted - 1, MAX_WORKERS, len(tasks) // FIGURES_PER_WORKER)
    if workers < 1:
        for task in tasks:
            yield (task, *_render_here(task))
        return
    pool = cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(config,),
    )
    try:
        futures = [pool.submit(_render_in_worker, task.file_name) for task in tasks]
        here: dict[int, tuple[bytes, float]] = {}  # drawn in this process, not yet yielded

        def result(i: int) -> tuple[FigureTask, bytes, float]:
            png, seconds = here.pop(i) if i in here else futures[i].result()
            return tasks[i], png, seconds

        shown = 0
        for i, task in enumerate(tasks):
            if futures[i].cancel():  # no worker has taken it: draw it here
                here[i] = _render_here(task)
            while shown < len(tasks) and (shown in here or futures[shown].done()):
                yield result(shown)
                shown += 1
        for i in range(shown, len(tasks)):
            yield result(i)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
