"""Batch scripts: one readable sbatch script per job, from one step body.

`render(job)` writes the `#SBATCH` header of a `JobScript` (job name, log file, append mode,
requeue and the USR1 warning before the time limit, array, resources), the lines that say
what it runs (`VBSAD_COMMAND`, `VBSAD_MPI` and the vbsad arguments, each overridable from the
environment) and then the step body `job_body.sh`, the same in every script: it runs the step
in the background, forwards the preemption signal and requeues. `vbsad submit` renders the
jobs of an analysis with it, and the scripts of `jobs/` in the repository, for people who
submit by hand, are rendered by `hand_scripts()`: one source for both.
"""

from __future__ import annotations

import shlex
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from vbsad_batch.config.slurm import SlurmResources

__all__ = [
    "ARRAY_LOG",
    "SINGLE_LOG",
    "TASK_PLACEHOLDER",
    "JobScript",
    "array_spec",
    "hand_scripts",
    "job_body",
    "render",
]

TASK_PLACEHOLDER = "{task}"
"""In the vbsad arguments of a job, replaced by the array task's index."""
ARRAY_LOG = "%x_%A_%a.out"
"""Log file name of an array task (job name, array job id, task index)."""
SINGLE_LOG = "%x_%j.out"
"""Log file name of a single job."""


@dataclass(frozen=True, slots=True)
class JobScript:
    """One batch job.

    Attributes:
        name: the Slurm job name (`vbsad-<stage>`).
        description: one line on what it does (a comment at the top).
        arguments: the vbsad arguments (`TASK_PLACEHOLDER` stands for the array index);
            strings written as they are (shell-quoted), so "${VAR:?...}" is not expanded.
        command: how to run vbsad on the compute node, e.g. "/opt/venv/bin/python -m
            vbsad_batch" or "apptainer exec image.sif vbsad".
        resources: what the job asks of Slurm.
        log_dir: where the log goes (created by `vbsad submit`; Slurm does not create it).
        grace_s: USR1 this many seconds before the time limit.
        array: the array indices ("0-9", "1,3,5"), None for a single job.
        mpi: the MPI launcher of the step ("srun --mpi=pmi2"), "" for a single process.
        raw_arguments: arguments written without quoting (shell expansions of hand scripts).
    """

    name: str
    description: str
    arguments: tuple[str, ...]
    command: str
    resources: SlurmResources
    log_dir: str
    grace_s: int = 120
    array: str | None = None
    mpi: str = ""
    raw_arguments: frozenset[int] = frozenset()


def job_body() -> str:
    """The step body shared by every script (`vbsad_batch/workflow/job_body.sh`)."""
    return resources.files("vbsad_batch.workflow").joinpath("job_body.sh").read_text("utf-8")


def array_spec(indices: Sequence[int], throttle: int | None) -> str:
    """Slurm's `--array` value for `indices`: ranges where contiguous ("0-3,7"), `%throttle`."""
    ordered = sorted(set(indices))
    if not ordered:
        raise ValueError("an array job needs at least one task")
    parts: list[str] = []
    start = previous = ordered[0]
    for index in [*ordered[1:], None]:
        if index is not None and index == previous + 1:
            previous = index
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if index is not None:
            start = previous = index
    spec = ",".join(parts)
    return f"{spec}%{throttle}" if throttle else spec


def _sbatch_lines(job: JobScript) -> list[str]:
    res = job.resources
    log = ARRAY_LOG if job.array is not None else SINGLE_LOG
    lines = [
        f"--job-name={job.name}",
        f"--output={job.log_dir.rstrip('/')}/{log}",
        "--open-mode=append",
        "--requeue",
        f"--signal=B:USR1@{job.grace_s}",
    ]
    if job.array is not None:
        lines.append(f"--array={job.array}")
    for option, value in (
        ("partition", res.partition),
        ("account", res.account),
        ("qos", res.qos),
        ("time", res.time),
        ("mem", res.mem),
        ("ntasks", res.ntasks),
        ("cpus-per-task", res.cpus_per_task),
    ):
        if value is not None:
            lines.append(f"--{option}={value}")
    lines += list(res.extra)
    return [f"#SBATCH {line}" for line in lines]


def _argument(job: JobScript, index: int, text: str) -> str:
    return text if index in job.raw_arguments else shlex.quote(text)


def render(job: JobScript) -> str:
    """The batch script of `job` (see the module docstring)."""
    arguments = " ".join(_argument(job, i, a) for i, a in enumerate(job.arguments))
    head = [
        "#!/bin/bash",
        *(f"# {line}" for line in textwrap.wrap(job.description, 88, break_on_hyphens=False)),
        "# Made by vbsad_batch (vbsad_batch/workflow/job_scripts.py). Submit with `sbatch <this",
        "# file>`; options on the sbatch command line override the #SBATCH lines.",
        *_sbatch_lines(job),
        "set -euo pipefail",
        "",
        "# What the job runs; the environment may override the first two.",
        f'VBSAD_COMMAND="${{VBSAD_COMMAND:-{job.command}}}"',
        f'VBSAD_MPI="${{VBSAD_MPI-{job.mpi}}}"',
        f"set -- {arguments}",
        "",
    ]
    return "\n".join(head) + "\n" + job_body()


def hand_scripts(command: str = "vbsad") -> dict[str, str]:
    """The scripts of the repository's `jobs/` directory, by file name: the jobs of an
    analysis for submitting by hand (the config in `$VBSAD_CONFIG`), and standalone
    preprocessing of a list of LHE files (`$VBSAD_FILES_FROM`, `$VBSAD_OUTPUT`)."""
    none = SlurmResources()
    config = '"${VBSAD_CONFIG:?set VBSAD_CONFIG to the analysis config (TOML)}"'
    logs = "logs"
    jobs = {
        "preprocess.sbatch": JobScript(
            name="vbsad-preprocess",
            description=(
                "Standalone preprocessing, one array task per line of $VBSAD_FILES_FROM (or "
                "per $VBSAD_FILES_PER_TASK lines): sbatch --array=0-<tasks - 1>%10 "
                "--export=ALL,VBSAD_FILES_FROM=files.txt,VBSAD_OUTPUT=shards/ "
                "jobs/preprocess.sbatch"
            ),
            arguments=(
                "preprocess",
                "--files-from",
                '"${VBSAD_FILES_FROM:?set VBSAD_FILES_FROM to a list of LHE files, one per line}"',
                "--files-per-task",
                '"${VBSAD_FILES_PER_TASK:-1}"',
                "--task",
                TASK_PLACEHOLDER,
                "--output",
                '"${VBSAD_OUTPUT:?set VBSAD_OUTPUT to the shard directory}"',
            ),
            command=command,
            resources=none,
            log_dir=logs,
            array="0",
            raw_arguments=frozenset({2, 4, 8}),
        ),
    }
    for stage, arguments, what in (
        ("datasets", ("datasets",), "the datasets (splits, yields) of the analysis"),
        ("train", ("train", "--task", TASK_PLACEHOLDER, "--resume"), "one model of the grid"),
        ("score", ("score", "--task", TASK_PLACEHOLDER), "the scores of one model of the grid"),
        ("scan", ("scan",), "the sensitivity scan, MPI ranks over operators x models"),
        ("report", ("report",), "the report"),
    ):
        array = "0" if TASK_PLACEHOLDER in arguments else None
        jobs[f"{stage}.sbatch"] = JobScript(
            name=f"vbsad-{stage}",
            description=(
                f"The {stage} stage of an analysis: {what}. sbatch "
                + ("--array=0-<models - 1> " if array else "")
                + ("--ntasks=4 " if stage == "scan" else "")
                + f"--export=ALL,VBSAD_CONFIG=ana.toml jobs/{stage}.sbatch"
            ),
            arguments=(arguments[0], config, *arguments[1:]),
            command=command,
            resources=none,
            log_dir=logs,
            array=array,
            mpi="srun --mpi=pmi2" if stage == "scan" else "",
            raw_arguments=frozenset({1}),
        )
    return {name: render(job) for name, job in jobs.items()}


def write_hand_scripts(directory: Path) -> list[Path]:
    """Write `hand_scripts()` into `directory` (the repository's `jobs/`)."""
    written = []
    for name, text in hand_scripts().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o755)
        written.append(path)
    return written
