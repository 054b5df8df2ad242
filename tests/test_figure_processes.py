"""How many processes draw the report's figures: the cores that other work leaves idle,
measured from /proc/stat while the report's process sleeps."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from vbsad_batch.report.figure_processes import default_processes, idle_cores

pytestmark = pytest.mark.skipif(
    not (os.path.exists("/proc/stat") and hasattr(os, "sched_getaffinity")),
    reason="needs Linux's /proc/stat and CPU affinity",
)


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def test_idle_cores_are_between_none_and_all() -> None:
    cpus = _cpus()
    idle = idle_cores(cpus, 0.2)
    assert idle is not None
    assert 0.0 <= idle <= len(cpus) + 1e-9


def test_an_unknown_cpu_gives_no_measure() -> None:
    assert idle_cores([*_cpus(), 1_000_000], 0.01) is None


def test_cores_kept_busy_by_other_processes_leave_the_figures_to_one_process() -> None:
    cpus = _cpus()
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in cpus]
    try:
        time.sleep(0.5)  # the loops running
        idle = idle_cores(cpus, 0.3)
        assert idle is not None
        assert idle < 0.5
        assert default_processes() == 1
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
