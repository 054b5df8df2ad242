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
`cpu.cfs_period_us`). The cgroup's directory is found from /proc/self/cgroup (its path in the
hierarchy) and /proc/self/mountinfo (where the hierarchy is mounted, and which of its cgroups
is the mount's root: a container without a cgroup namespace mounts its own cgroup there).
Whatever cannot be read (not Linux, no cpu controller, no permission) means no quota.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

__all__ = ["MOUNTINFO", "PROC_CGROUP", "cpu_quota", "usable_cores", "usable_cpus"]

PROC_CGROUP = Path("/proc/self/cgroup")
"""This process's cgroups, one line per hierarchy: ``id:controllers:path``."""
MOUNTINFO = Path("/proc/self/mountinfo")
"""This process's mounts (proc(5)): the cgroup file systems among them."""


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


def _unescaped(field: str) -> str:
    """A mountinfo path field: spaces, tabs, newlines and backslashes are written in octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _cpu_mounts(mountinfo: str) -> Iterator[tuple[int, PurePosixPath, Path]]:
    """(cgroup version, the hierarchy's cgroup at the mount's root, mount point) of each
    cgroup v2 mount and each v1 mount of the cpu controller."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        tail = fields[fields.index("-", 6) + 1 :]
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, point = PurePosixPath(_unescaped(fields[3])), Path(_unescaped(fields[4]))
        if tail[0] == "cgroup2":
            yield 2, root, point
        elif tail[0] == "cgroup" and "cpu" in tail[2].split(","):
            yield 1, root, point


def _directories(path: PurePosixPath, root: PurePosixPath, point: Path) -> Iterator[Path]:
    """The directories under `point` (which shows the cgroup `root`) of the cgroup `path` and
    its parents, down to `point`; only `point` when `path` is not under `root` (a cgroup
    namespace or a container shows its own cgroup at the mount's root)."""
    try:
        relative = path.relative_to(root)
    except ValueError:
        yield point
        return
    for directory in (relative, *relative.parents):
        yield point / directory


def cpu_quota(*, proc_cgroup: Path = PROC_CGROUP, mountinfo: Path = MOUNTINFO) -> float | None:
    """The CPU quota of this process's cgroup, in cores (e.g. 1.5): the smallest set on its
    cgroup or any parent, in the cgroup v1 or v2 hierarchy; None: no quota, or nothing
    readable.

    Args:
        proc_cgroup: the process's cgroups (the format of /proc/self/cgroup).
        mountinfo: the process's mounts (the format of /proc/self/mountinfo).
    """
    try:
        lines = proc_cgroup.read_text(encoding="utf-8").splitlines()
        mounts = list(_cpu_mounts(mountinfo.read_text(encoding="utf-8")))
    except (OSError, ValueError):  # not Linux, no permission, not UTF-8
        return None
    quotas: list[float] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            version = 2
        elif "cpu" in controllers.split(","):
            version = 1
        else:
            continue
        for mounted, root, point in mounts:
            if mounted != version:
                continue
            for directory in _directories(PurePosixPath(path), root, point):
                quota = _quota_file(directory, version)
                if quota is not None:
                    quotas.append(quota)
    return min(quotas) if quotas else None
