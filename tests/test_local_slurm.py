"""The private single-node Slurm of tests/local_slurm.py, used for real: an array job picking
its inputs from a manifest, a dependency chain whose first job fails, MPI across `srun
--mpi=pmi2` ranks, a requeue on USR1, and that start-up failures and leaving the block leave
no daemon or job process behind.

The Slurm tests share one cluster per session (`slurm_cluster`, tests/conftest.py); Slurm
itself comes from `make system-deps`.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
from local_slurm import JobRecord, LocalSlurm, SlurmError, SlurmNotInstalledError, parse_key_values

pytestmark = pytest.mark.slow

TIMEOUT_S = 90  # for one job: a hang fails the test, not the suite


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/bash\n" + textwrap.dedent(body).lstrip())
    path.chmod(0o755)
    return path


def processes_mentioning(text: str) -> list[str]:
    """Live processes (but this one) whose command line or environment contains `text` (a
    cluster's state dir: its daemons, and its jobs' slurmstepd and processes through
    SLURM_CONF)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline or text in environ:
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_array_tasks_pick_their_manifest_line(slurm_cluster: LocalSlurm, tmp_path: Path) -> None:
    outputs = [tmp_path / "out" / f"sample-{name}.txt" for name in ("d", "b", "a", "c")]
    (tmp_path / "out").mkdir()  # Slurm does not create output directories
    manifest = tmp_path / "manifest.txt"
    manifest.write_text("".join(f"{p}\n" for p in outputs))
    script = write_script(
        tmp_path / "task.sh",
        f"""
        target=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {manifest})
        echo "$SLURM_ARRAY_TASK_ID" > "$target"
        """,
    )
    job = slurm_cluster.sbatch(
        script, "--array=0-3%2", "--output=logs-%A_%a.txt", "--job-name=manifest", cwd=tmp_path
    )

    records = slurm_cluster.wait(job, timeout=TIMEOUT_S)

    assert [(r.array_job_id, r.array_task_id, r.state, r.exit_code) for r in records] == [
        (job, task, "COMPLETED", "0:0") for task in range(4)
    ]
    for task, path in enumerate(outputs):
        assert path.read_text() == f"{task}\n", path
    # The completion log (what is left once the controller purged the job) says the same.
    logged = {
        r.array_task_id: (r.state, r.exit_code)
        for r in slurm_cluster.jobcomp_records()
        if r.array_job_id == job
    }
    assert logged == {task: ("COMPLETED", "0:0") for task in range(4)}


def test_failed_dependency_cancels_the_dependent(slurm_cluster: LocalSlurm, tmp_path: Path) -> None:
    first = slurm_cluster.sbatch(
        write_script(tmp_path / "fail.sh", "echo failing; exit 3\n"), cwd=tmp_path
    )
    marker = tmp_path / "dependent-ran"
    dependent = slurm_cluster.sbatch(
        write_script(tmp_path / "next.sh", f"touch {marker}\n"),
        f"--dependency=afterok:{first}",
        "--kill-on-invalid-dep=yes",
        cwd=tmp_path,
    )

    [failed] = slurm_cluster.wait(first, timeout=TIMEOUT_S)
    [cancelled] = slurm_cluster.wait(dependent, timeout=TIMEOUT_S)

    assert (failed.state, failed.exit_code) == ("FAILED", "3:0")
    assert (cancelled.state, cancelled.reason) == ("CANCELLED", "DependencyNeverSatisfied")
    assert slurm_cluster.job_state(dependent) == "CANCELLED"
    assert not marker.exists()


def test_srun_pmi2_gives_one_mpi_world(slurm_cluster: LocalSlurm, tmp_path: Path) -> None:
    program = (
        "from mpi4py import MPI; world = MPI.COMM_WORLD; "
        "print(world.Get_rank(), world.Get_size(), flush=True)"
    )
    script = write_script(
        tmp_path / "mpi.sh",
        f"""
        #SBATCH --ntasks=2
        #SBATCH --output=mpi.out
        srun --mpi=pmi2 -n 2 --label {sys.executable} -c "{program}"
        """,
    )
    job = slurm_cluster.sbatch(script, cwd=tmp_path)

    [record] = slurm_cluster.wait(job, timeout=TIMEOUT_S)

    output = (tmp_path / "mpi.out").read_text()
    assert record.state == "COMPLETED", output
    # "task: rank size" from srun's --label: one world of size 2, not two worlds of size 1.
    assert sorted(output.split("\n")[:-1]) == ["0: 0 2", "1: 1 2"], output


def test_usr1_requeues_and_the_job_runs_again(slurm_cluster: LocalSlurm, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "preemptible.sh",
        """
        #SBATCH --requeue
        #SBATCH --signal=B:USR1@60
        #SBATCH --open-mode=append
        #SBATCH --output=requeue.log
        restart=${SLURM_RESTART_COUNT:-0}
        echo "start restart=$restart"
        on_usr1() {
            echo "USR1 restart=$restart"
            kill -TERM "$step"
            wait "$step"
            scontrol requeue "$SLURM_JOB_ID"
            exit 0
        }
        trap on_usr1 USR1
        # The step runs in the background: bash runs a trap only between foreground commands.
        if [ "$restart" -ge 1 ]; then seconds=1; else seconds=300; fi
        srun --ntasks=1 sleep "$seconds" &
        step=$!
        touch "started-$restart"
        wait "$step"
        echo "done restart=$restart"
        """,
    )
    job = slurm_cluster.sbatch(script, cwd=tmp_path)
    deadline = time.monotonic() + TIMEOUT_S
    while not (tmp_path / "started-0").exists():
        assert time.monotonic() < deadline, slurm_cluster.job_states(job)
        time.sleep(0.2)

    slurm_cluster.run("scancel", "--signal=USR1", "--batch", str(job))
    [record] = slurm_cluster.wait(job, timeout=TIMEOUT_S)

    log = (tmp_path / "requeue.log").read_text()
    assert (record.state, record.exit_code, record.restarts) == ("COMPLETED", "0:0", 1), log
    assert [line for line in log.splitlines() if "restart=" in line] == [
        "start restart=0",
        "USR1 restart=0",
        "start restart=1",
        "done restart=1",
    ], log
    # The completion log has both runs under the same job id: the requeue, then the end.
    runs = [r.state for r in slurm_cluster.jobcomp_records() if r.job_id == job]
    assert runs[-1] == "COMPLETED"
    assert len(runs) == 2, runs


@pytest.mark.parametrize("slurmd_crashed", [False, True], ids=["clean", "slurmd-crashed"])
def test_leaving_the_block_stops_daemons_and_jobs(tmp_path: Path, slurmd_crashed: bool) -> None:
    state_dir = tmp_path / "cluster"
    with LocalSlurm(state_dir, cpus=1, memory_mb=500) as cluster:
        script = write_script(
            tmp_path / "long.sh", f"echo $$ > {tmp_path}/pid\nsrun sleep 300 &\nwait\n"
        )
        job = cluster.sbatch(script, cwd=tmp_path)
        cluster.wait_for_state(job, {"RUNNING"}, timeout=TIMEOUT_S)
        deadline = time.monotonic() + 10
        while not (tmp_path / "pid").exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        job_pid = int((tmp_path / "pid").read_text())
        munge_socket = cluster.munge_socket
        assert len(processes_mentioning(str(state_dir))) >= 5  # 3 daemons + the job
        if slurmd_crashed:  # the job's slurmstepd goes on, slurmctld cannot cancel the job
            slurmd = Path("/proc", (state_dir / "run" / "slurmd.pid").read_text().strip())
            os.kill(int(slurmd.name), signal.SIGKILL)
            while slurmd.exists() and " Z " not in (slurmd / "stat").read_text():
                time.sleep(0.05)
    assert cluster.start_seconds is not None
    assert cluster.stop_seconds is not None
    assert processes_mentioning(str(state_dir)) == []
    assert not Path(f"/proc/{job_pid}").exists()
    assert not munge_socket.parent.exists()


def test_failed_start_still_stops_what_it_started(tmp_path: Path) -> None:
    state_dir = tmp_path / "cluster"
    # munged starts; slurmctld and slurmd reject the configuration and exit.
    with (
        pytest.raises(SlurmError, match=r"(?s)died during start-up.*NoSuchOption"),
        LocalSlurm(state_dir, extra_conf=["NoSuchOption=1"]),
    ):
        pytest.fail("start() should have raised")
    assert processes_mentioning(str(state_dir)) == []


def test_missing_slurm_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SlurmNotInstalledError, match="make system-deps"), LocalSlurm(tmp_path):
        pass


def test_parse_key_values_keeps_spaces_in_values() -> None:
    line = (
        "JobId=7 Name=my job JobState=FAILED Tres=cpu=1,mem=4000M WorkDir=/a b "
        "ArrayJobId=6 ArrayTaskId=1 DerivedExitCode=0:0 ExitCode=3:0 "
    )
    fields = parse_key_values(line)
    assert fields["Name"] == "my job"
    assert fields["Tres"] == "cpu=1,mem=4000M"
    assert fields["WorkDir"] == "/a b"
    assert fields["ExitCode"] == "3:0"
    assert JobRecord(7, 6, 1, "FAILED", "3:0", "", None, "jobcomp").label == "6_1"


def test_wait_fails_fast_on_a_dependency_that_can_never_be_met(
    slurm_cluster: LocalSlurm, tmp_path: Path
) -> None:
    first = slurm_cluster.sbatch(write_script(tmp_path / "fail.sh", "exit 1\n"), cwd=tmp_path)
    # Without --kill-on-invalid-dep=yes Slurm keeps it PENDING (DependencyNeverSatisfied).
    stuck = slurm_cluster.sbatch(
        write_script(tmp_path / "next.sh", "true\n"), f"--dependency=afterok:{first}", cwd=tmp_path
    )
    try:
        with pytest.raises(SlurmError, match="kill-on-invalid-dep"):
            slurm_cluster.wait(stuck, timeout=TIMEOUT_S)
        assert slurm_cluster.job_state(stuck) == "PENDING"
    finally:
        slurm_cluster.run("scancel", str(stuck))
    [cancelled] = slurm_cluster.wait(stuck, timeout=TIMEOUT_S)
    assert cancelled.state == "CANCELLED"
