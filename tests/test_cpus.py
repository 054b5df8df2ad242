"""The cores a process may use: its CPU set, at most its cgroup's CPU quota.

The quota is tested in a real cgroup (v1, the hierarchy of this machine kind: a child process
moves itself into a cgroup made here with a quota of half a core) and, for the v2 file format
and the path rules, on directory trees written in the kernel's formats."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vbsad_batch.runtime.cpus import cpu_quota, usable_cores, usable_cpus

V1_CPU = Path("/sys/fs/cgroup/cpu")

_PROBE = """
import json, os, sys
with open(sys.argv[1], "w") as procs:
    procs.write(str(os.getpid()))
from vbsad_batch.cli.preprocess import _available_cpus
from vbsad_batch.report.figure_processes import default_processes
from vbsad_batch.runtime.cpus import cpu_quota, usable_cores, usable_cpus
print(json.dumps({"quota": cpu_quota(), "cores": usable_cores(), "cpus": usable_cpus(),
                  "jobs": _available_cpus(), "figure_processes": default_processes()}))
"""


_TENSORFLOW_PROBE = """
import json, os, sys
with open(sys.argv[1], "w") as procs:
    procs.write(str(os.getpid()))
from vbsad_batch.models.tensorflow_import import import_tensorflow_quietly
import_tensorflow_quietly()
import tensorflow as tf
from vbsad_batch.models.parallel import configure_threads
from vbsad_batch.runtime.mpi import SingleProcess
print(json.dumps({"set": configure_threads(SingleProcess()),
                  "intra": tf.config.threading.get_intra_op_parallelism_threads(),
                  "inter": tf.config.threading.get_inter_op_parallelism_threads()}))
"""


def _probe_in(cgroup: Path, probe: str = _PROBE) -> dict[str, object]:
    """What a fresh process sees once it has moved itself into `cgroup`."""
    done = subprocess.run(
        [sys.executable, "-c", probe, str(cgroup / "cgroup.procs")],
        env={k: v for k, v in os.environ.items() if not k.startswith("TF_NUM_")},  # TF's pools
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _remove_cgroup(path: Path) -> None:
    """Remove a test cgroup and its children (each once empty), whatever fails."""
    for child in [*sorted(path.glob("*/"), reverse=True), path]:
        if (child / "cgroup.procs").is_file():
            with contextlib.suppress(OSError):
                child.rmdir()


@pytest.fixture
def v1_cgroup() -> Iterator[Path]:
    """A fresh cgroup under the v1 cpu controller (removed afterwards, with any left by a
    killed earlier run)."""
    if not (V1_CPU / "cpu.cfs_quota_us").is_file() or not os.access(V1_CPU, os.W_OK):
        pytest.skip("needs a writable cgroup v1 cpu hierarchy (root)")
    if cpu_quota() is not None:
        pytest.skip("this process runs under a CPU quota already")
    for stale in V1_CPU.glob("vbsad-test-*"):
        _remove_cgroup(stale)
    path = V1_CPU / f"vbsad-test-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        yield path
    finally:
        _remove_cgroup(path)


def test_without_a_quota_every_cpu_of_the_set_counts() -> None:
    assert usable_cores() <= len(usable_cpus())
    if cpu_quota() is None:
        assert usable_cores() == len(usable_cpus())


def test_a_quota_of_half_a_core_on_a_parent_cgroup_leaves_one_core(v1_cgroup: Path) -> None:
    if len(usable_cpus()) < 2:
        pytest.skip("needs 2 CPUs to see the quota cap them")
    (v1_cgroup / "cpu.cfs_period_us").write_text("100000")
    (v1_cgroup / "cpu.cfs_quota_us").write_text("50000")
    child = v1_cgroup / "step"  # the quota is on the parent, as Slurm or systemd nest them
    child.mkdir()
    seen = _probe_in(child)
    assert seen["quota"] == pytest.approx(0.5)
    assert seen["cpus"] == usable_cpus()  # the CPU set still lists every core
    assert seen["cores"] == 1
    assert seen["jobs"] == 1  # preprocess --jobs 0
    assert seen["figure_processes"] == 1  # the report draws in one process


def test_a_cgroup_without_a_quota_leaves_the_cpu_set(v1_cgroup: Path) -> None:
    seen = _probe_in(v1_cgroup)
    assert seen["quota"] is None
    assert seen["cores"] == len(usable_cpus())


_STARTED_TENSORFLOW_PROBE = """
import json, logging, os, sys
with open(sys.argv[1], "w") as procs:
    procs.write(str(os.getpid()))
logging.basicConfig(level=logging.WARNING)
from vbsad_batch.models.tensorflow_import import import_tensorflow_quietly
import_tensorflow_quietly()
import tensorflow as tf
tf.constant(1.0) + 1.0  # TensorFlow has started: its pools are fixed
from vbsad_batch.models.parallel import configure_threads
from vbsad_batch.runtime.mpi import SingleProcess
print(json.dumps({"set": configure_threads(SingleProcess())}))
"""


def test_one_process_whose_tensorflow_has_started_keeps_its_pools_quietly(
    v1_cgroup: Path,
) -> None:
    """Under a quota, TensorFlow already started in this process (a second analysis in a
    notebook): its pools stay as they are, without a warning on every run."""
    if len(usable_cpus()) < 2:
        pytest.skip("needs 2 CPUs to see the quota cap them")
    (v1_cgroup / "cpu.cfs_period_us").write_text("100000")
    (v1_cgroup / "cpu.cfs_quota_us").write_text("50000")
    done = subprocess.run(
        [sys.executable, "-c", _STARTED_TENSORFLOW_PROBE, str(v1_cgroup / "cgroup.procs")],
        env={k: v for k, v in os.environ.items() if not k.startswith("TF_NUM_")},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"set": None}
    assert "cannot size TensorFlow's thread pools" not in done.stderr


@pytest.mark.parametrize("quota_us", [50_000, None])
def test_one_process_under_a_quota_sizes_tensorflow_to_it(
    v1_cgroup: Path, quota_us: int | None
) -> None:
    """TensorFlow sizes its thread pools to the CPU set; under a quota of half a core one
    process (`vbsad train`, `vbsad run`) sets them to 1 thread each. Without a quota it leaves
    TensorFlow's default (0: every core of the set)."""
    if len(usable_cpus()) < 2:
        pytest.skip("needs 2 CPUs to see the quota cap them")
    if quota_us is not None:
        (v1_cgroup / "cpu.cfs_period_us").write_text("100000")
        (v1_cgroup / "cpu.cfs_quota_us").write_text(str(quota_us))
    seen = _probe_in(v1_cgroup, _TENSORFLOW_PROBE)
    if quota_us is None:
        assert seen == {"set": None, "intra": 0, "inter": 0}
    else:
        assert seen == {"set": 1, "intra": 1, "inter": 1}


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _mountinfo(path: Path, *mounts: tuple[str, Path, str, str]) -> Path:
    """A mountinfo file (proc(5)) of (cgroup at the mount's root, mount point, type, super
    options) mounts, after an unrelated one."""
    lines = ["22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw"]
    for i, (root, point, kind, options) in enumerate(mounts):
        escaped = str(point).replace(" ", "\\040")
        lines.append(f"{30 + i} 22 0:{40 + i} {root} {escaped} rw,nosuid - {kind} {kind} {options}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cgroup_v2_the_smallest_quota_of_the_cgroup_and_its_parents(tmp_path: Path) -> None:
    point = tmp_path / "cgroup v2"  # a space, written \040 in mountinfo
    _tree(
        point,
        {
            "cpu.max": "max 100000\n",
            "job/cpu.max": "250000 100000\n",
            "job/step/cpu.max": "max 100000\n",
            "job/step/task/cpu.max": "300000 100000\n",
        },
    )
    mounts = _mountinfo(tmp_path / "mountinfo", ("/", point, "cgroup2", "rw,nsdelegate"))
    proc = tmp_path / "proc_cgroup"
    for path, quota in (("/job/step/task", 2.5), ("/job/step", 2.5), ("/", None)):
        proc.write_text(f"0::{path}\n")
        assert cpu_quota(proc_cgroup=proc, mountinfo=mounts) == (
            None if quota is None else pytest.approx(quota)
        ), path  # "max": no quota


def test_a_container_sees_its_own_cgroup_at_the_mount_root(tmp_path: Path) -> None:
    """A container without a cgroup namespace lists the host's path of its cgroup; its mount
    shows that cgroup at the mount's root (mountinfo's root field): the path is read from
    there, and a path outside the mount's root reads the mount's root only."""
    point = tmp_path / "cpu"
    _tree(
        point,
        {
            "cpu.cfs_quota_us": "150000\n",  # the container: 1.5 cores
            "cpu.cfs_period_us": "100000\n",
            "slurm/cpu.cfs_quota_us": "50000\n",  # a job inside it: half a core
            "slurm/cpu.cfs_period_us": "100000\n",
        },
    )
    mounts = _mountinfo(
        tmp_path / "mountinfo", ("/docker/0123abcd", point, "cgroup", "rw,cpu,cpuacct")
    )
    proc = tmp_path / "proc_cgroup"
    proc.write_text("4:cpu,cpuacct:/docker/0123abcd/slurm\n")
    assert cpu_quota(proc_cgroup=proc, mountinfo=mounts) == pytest.approx(0.5)
    proc.write_text("4:cpu,cpuacct:/system.slice/other\n")  # not under the mount's root
    assert cpu_quota(proc_cgroup=proc, mountinfo=mounts) == pytest.approx(1.5)
    proc.write_text("4:cpu,cpuacct:/\n")  # in a cgroup namespace: its own root
    assert cpu_quota(proc_cgroup=proc, mountinfo=mounts) == pytest.approx(1.5)


def test_cgroup_v1_controllers_and_unset_quotas(tmp_path: Path) -> None:
    cpu, memory, unified = tmp_path / "cpu,cpuacct", tmp_path / "memory", tmp_path / "unified"
    _tree(
        tmp_path,
        {
            "cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
            "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
            "cpu,cpuacct/slurm/cpu.cfs_quota_us": "400000\n",
            "cpu,cpuacct/slurm/cpu.cfs_period_us": "100000\n",
            "memory/slurm/cpu.cfs_quota_us": "100000\n",  # not the cpu controller's mount
            "memory/slurm/cpu.cfs_period_us": "100000\n",
            "unified/cgroup.procs": "",  # hybrid: a v2 mount without controllers
        },
    )
    mounts = _mountinfo(
        tmp_path / "mountinfo",
        ("/", memory, "cgroup", "rw,memory"),
        ("/", cpu, "cgroup", "rw,cpu,cpuacct"),
        ("/", unified, "cgroup2", "rw,nsdelegate"),
    )
    proc = tmp_path / "proc_cgroup"
    proc.write_text("5:memory:/slurm\n4:cpu,cpuacct:/slurm\n0::/slurm\n")
    assert cpu_quota(proc_cgroup=proc, mountinfo=mounts) == pytest.approx(4.0)
    proc.write_text("4:cpu,cpuacct:/\n")
    assert cpu_quota(proc_cgroup=proc, mountinfo=mounts) is None  # -1: no quota
    assert cpu_quota(proc_cgroup=tmp_path / "missing", mountinfo=mounts) is None
    proc.write_bytes(b"4:cpu,cpuacct:/\xff\n")  # not UTF-8: no quota, no error
    assert cpu_quota(proc_cgroup=proc, mountinfo=mounts) is None
