"""The CPUs this process may run on: the CPU set of its Slurm allocation or container
(`os.sched_getaffinity`), else every CPU of the machine."""

from __future__ import annotations

import os

__all__ = ["usable_cpus"]


def usable_cpus() -> list[int]:
    """The numbers of the CPUs this process may run on, ascending (at least one)."""
    if hasattr(os, "sched_getaffinity"):  # the CPU set of a Slurm allocation
        cpus = sorted(os.sched_getaffinity(0))
    else:
        cpus = list(range(os.cpu_count() or 1))
    return cpus or [0]
