"""The CPUs this process may use.

Two limits apply, and a batch job can meet either:

- the CPU set (`os.sched_getaffinity`): which CPUs the process may run on. Slurm with
  `ConstrainCores`, `taskset` and `docker --cpuset-cpus` set it;
- the CPU quota of its control group (cgroup): how much CPU time it may use per period, in
  cores. `docker --cpus`, Kubernetes CPU limits and some grid sites set only this: the CPU set
  then still lists every core of the node, and a process that counts those starts more workers
  than it may run at once.

`usable_cores` takes the smaller: the CPU set's size, capped at the quota rounded up. The quota
is read from the process's own cgroup and every parent (the smallest wins, as the kernel
enforces it), in the cgroup v2 format (`cpu.max`) or v1 (`cpu.cfs_quota_us` over
`cpu.cfs_period_us`). Without a readable cgroup (not Linux, or no cpu controller) there is no
quota.
"""

from __future__ import annotations

import math
import os
from pathlib import Path, PurePosixPath

__all__ = ["CGROUP_ROOT", "PROC_CGROUP", "cpu_quota", "usable_cores", "usable_cpus"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
"""Where the cgroup file systems are mounted."""
PROC_CGROUP = Path("/proc/self/cgroup")
"""This process's cgroups, one line per hierarchy: ``id:controllers:path``."""


def usable_cpus() -> list[int]:
    """The numbers of the CPUs this process may run on, ascending (at least one)."""
    if hasattr(os, "sched_getaffinity"):  # the CPU set of a Slurm allocation
        cpus = sorted(os.sched_getaffinity(0))
    else:
        cpus = list(range(os.cpu_count() or 1))
    return cpus or [0]


def usable_cores() -> int:
    """How many processes (or threads) this process can keep running at once: the CPUs it may
    run on (`usable_cpus`), at most its cgroup CPU quota rounded up (`cpu_quota`); >= 1."""
    cores = len(usable_cpus())
    quota = cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota - 1e-9)))
    return cores


def _quota_file(directory: Path, version: int) -> float | None:
    """The quota (cores) set in one cgroup directory; None: none set, or not readable."""
    try:
        if version == 2:
            fields = (directory / "cpu.max").read_text(encoding="ascii").split()
            if len(fields) != 2 or fields[0] == "max":
                return None
            quota, period = int(fields[0]), int(fields[1])
        else:
            quota = int((directory / "cpu.cfs_quota_us").read_text(encoding="ascii"))
            period = int((directory / "cpu.cfs_period_us").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:  # v1 writes -1 for no quota
        return None
    return quota / period


def _cpu_hierarchy(line: str, root: Path) -> tuple[Path, PurePosixPath, int] | None:
    """(mount, path in it, cgroup version) of the cpu controller's line of /proc/self/cgroup;
    None for another controller's line."""
    parts = line.split(":", 2)
    if len(parts) != 3:
        return None
    hierarchy, controllers, path = parts
    if hierarchy == "0" and controllers == "":
        return root, PurePosixPath(path), 2
    names = controllers.split(",")
    if "cpu" not in names:
        return None
    for mount in (root / "cpu", root / controllers):  # "cpu", or "cpu,cpuacct" unlinked
        if mount.is_dir():
            return mount, PurePosixPath(path), 1
    return None


def cpu_quota(*, proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroup, in cores (e.g. 1.5): the smallest set on its
    cgroup or any parent, in the cgroup v1 or v2 hierarchy; None: no quota (or no readable
    cgroup).

    Args:
        proc_cgroup: the process's cgroup list (the file's format: ``id:controllers:path``).
        root: where the cgroup file systems are mounted.
    """
    try:
        lines = proc_cgroup.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in lines:
        found = _cpu_hierarchy(line, root)
        if found is None:
            continue
        mount, path, version = found
        if version == 2 and not (mount / "cgroup.controllers").is_file():
            continue  # a v1 system's empty unified line: no cgroup v2 mounted here
        # The path may name a cgroup outside this mount (a container sees its own cgroup at
        # the mount's root): parents that are not there are skipped; the root is always read.
        for directory in (path, *path.parents):
            relative = str(directory).lstrip("/")
            quota = _quota_file(mount / relative if relative else mount, version)
            if quota is not None:
                quotas.append(quota)
    return min(quotas) if quotas else None
