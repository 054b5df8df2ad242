"""The Slurm commands `vbsad submit` and `vbsad status` use: sbatch, squeue, sacct, scontrol.

Every call goes through the site's own client commands (found on PATH, configured by the
site's `SLURM_CONF`); nothing here talks to Slurm otherwise. Job states come from `squeue`
while a job is queued or running, then from `sacct` when the site keeps accounting, else
from `scontrol show job` (which remembers a finished job for `MinJobAge`, 300 s by default).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["JobState", "SlurmError", "available", "job_states", "sbatch"]

_TIMEOUT_S = 60


class SlurmError(RuntimeError):
    """A Slurm command failed or is missing; the message says which and why."""


@dataclass(frozen=True, slots=True)
class JobState:
    """The state of one job or array task.

    Attributes:
        job_id: "123" for a single job, "123_4" for task 4 of array job 123.
        state: Slurm's state (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ...).
        exit_code: "0:0" style, when known ("" otherwise).
        log: its standard output file, when known.
        reason: why it is pending, when Slurm says (e.g. "Dependency").
    """

    job_id: str
    state: str
    exit_code: str = ""
    log: str = ""
    reason: str = ""


def available() -> bool:
    """Whether the Slurm client commands are on PATH."""
    return shutil.which("sbatch") is not None and shutil.which("squeue") is not None


def _run(
    arguments: Sequence[str], env: Mapping[str, str] | None
) -> subprocess.CompletedProcess[str]:
    if shutil.which(arguments[0]) is None:
        raise SlurmError(
            f"{arguments[0]} not found: this needs the Slurm client commands on PATH (on a "
            "login node of the cluster); `vbsad submit --dry-run` writes the scripts without"
        )
    try:
        return subprocess.run(
            list(arguments),
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
            env=None if env is None else dict(env),
        )
    except subprocess.TimeoutExpired as exc:
        raise SlurmError(f"{' '.join(arguments)}: no answer in {_TIMEOUT_S} s") from exc


def sbatch(
    script: Path,
    *,
    after: Sequence[int] = (),
    env: Mapping[str, str] | None = None,
) -> int:
    """Submit `script`; with `after`, only once those jobs (every task of an array) ended
    successfully, and cancelled at once if one fails (`--kill-on-invalid-dep=yes`: without it
    a dependent of a failed job stays pending forever).

    Returns:
        The job id.

    Raises:
        SlurmError: sbatch failed (its message), or is missing.
    """
    arguments = ["sbatch", "--parsable"]
    if after:
        arguments += [
            "--dependency=afterok:" + ":".join(str(j) for j in after),
            "--kill-on-invalid-dep=yes",
        ]
    arguments.append(str(script))
    proc = _run(arguments, env)
    if proc.returncode != 0:
        raise SlurmError(f"sbatch {script} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    text = proc.stdout.strip().split(";", 1)[0]
    if not text.isdigit():
        raise SlurmError(f"sbatch {script}: unexpected answer {proc.stdout.strip()!r}")
    return int(text)


def _queued(job_ids: Sequence[int], env: Mapping[str, str] | None) -> dict[str, JobState]:
    """Jobs and array tasks still in the queue, from squeue (one line per array task)."""
    proc = _run(["squeue", "-h", "-r", "-o", "%i|%T|%r|%o"], env)
    if proc.returncode != 0:
        raise SlurmError(f"squeue failed: {proc.stderr.strip()}")
    wanted = {str(j) for j in job_ids}
    found: dict[str, JobState] = {}
    for line in proc.stdout.splitlines():
        parts = line.split("|")
        if len(parts) < 3:
            continue
        job_id, state, reason = parts[0], parts[1], parts[2]
        if job_id.split("_", 1)[0] in wanted:
            found[job_id] = JobState(job_id, state, reason="" if reason == "None" else reason)
    return found


def _accounted(job_ids: Sequence[int], env: Mapping[str, str] | None) -> dict[str, JobState] | None:
    """States from sacct, or None when the site keeps no accounting."""
    if shutil.which("sacct") is None:
        return None
    proc = _run(
        [
            "sacct",
            "-n",
            "-P",
            "-X",
            "-j",
            ",".join(map(str, job_ids)),
            "-o",
            "JobID,State,ExitCode",
        ],
        env,
    )
    if proc.returncode != 0:
        return None
    found = {}
    for line in proc.stdout.splitlines():
        parts = line.split("|")
        if len(parts) == 3:
            state = parts[1].split(" ", 1)[0]  # "CANCELLED by 0" -> "CANCELLED"
            found[parts[0]] = JobState(parts[0], state, parts[2])
    return found


def _remembered(job_ids: Sequence[int], env: Mapping[str, str] | None) -> dict[str, JobState]:
    """States from `scontrol show job` (jobs finished less than MinJobAge ago)."""
    found = {}
    for job in job_ids:
        proc = _run(["scontrol", "show", "job", "-o", str(job)], env)
        if proc.returncode != 0:
            continue
        for line in proc.stdout.splitlines():
            fields = dict(
                item.split("=", 1)
                for item in line.split()
                if "=" in item and not item.startswith("=")
            )
            if "JobId" not in fields:
                continue
            array_task = fields.get("ArrayTaskId")
            job_id = (
                f"{fields['ArrayJobId']}_{array_task}"
                if array_task and array_task.isdigit()
                else fields["JobId"]
            )
            found[job_id] = JobState(
                job_id,
                fields.get("JobState", ""),
                fields.get("ExitCode", ""),
                fields.get("StdOut", ""),
                fields.get("Reason", "") if fields.get("Reason") != "None" else "",
            )
    return found


def job_states(job_ids: Sequence[int], env: Mapping[str, str] | None = None) -> dict[str, JobState]:
    """The state of every job and array task of `job_ids` that Slurm still knows about, by
    "<job>" or "<array job>_<task>" (see the module docstring for the sources)."""
    if not job_ids:
        return {}
    states = _remembered(job_ids, env)
    accounted = _accounted(job_ids, env)
    if accounted:
        for job_id, state in accounted.items():
            known = states.get(job_id)
            states[job_id] = JobState(
                job_id, state.state, state.exit_code, known.log if known else "", ""
            )
    states.update(_queued(job_ids, env))
    return states
