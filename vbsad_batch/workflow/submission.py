"""`vbsad submit`: an analysis as Slurm jobs, one per stage, chained by `afterok`.

`plan_submission(config, ...)` looks at what is done (`analysis_state`) and plans a job for
every stage with work left: preprocess as an array (one task per `files_per_task` LHE inputs),
datasets, train and score as arrays over the models of the grid (or one MPI job each with
`[slurm] jobs = "mpi"`), scan as an MPI job (`srun --mpi=pmi2`, `ntasks` ranks), report. A
stage that is done is left out; a stage after a submitted one is submitted whole (its inputs
will change; what stays current is skipped when it runs). An array stage whose upstream is
done gets only its unfinished tasks.

`submit(plan, ...)` writes the scripts into `<output_dir>/slurm/` (`<n>_<stage>.sbatch`, logs
in `slurm/logs/`), submits them in order, each with `--dependency=afterok:<the jobs it
needs>` and `--kill-on-invalid-dep=yes` (a failed job cancels its dependents), and records the
submission in `slurm/submission.json` (job ids per stage, the command line, the package
version and git revision, the scripts' SHA-256): what `vbsad status` reads. A job whose
predecessors of a previous submission are still queued is refused, so that no stage runs
twice at once.
"""

from __future__ import annotations

import datetime as _dt
import json
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vbsad_batch.config import AnalysisConfig
from vbsad_batch.config.slurm import SLURM_STAGES, SlurmResources, SlurmStage
from vbsad_batch.runtime.atomic_write import write_text_atomic
from vbsad_batch.runtime.provenance import sha256_file, tool_version
from vbsad_batch.workflow.analysis_state import StageState, analysis_state
from vbsad_batch.workflow.job_scripts import TASK_PLACEHOLDER, JobScript, array_spec, render
from vbsad_batch.workflow.slurm_client import job_states, sbatch

__all__ = [
    "ACTIVE_STATES",
    "SLURM_DIR_NAME",
    "SUBMISSION_NAME",
    "PlannedJob",
    "Submission",
    "default_command",
    "plan_submission",
    "read_submission",
    "slurm_directory",
    "submit",
]

SLURM_DIR_NAME = "slurm"
SUBMISSION_NAME = "submission.json"
LOGS_DIR_NAME = "logs"
ACTIVE_STATES = frozenset(
    {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING",
     "COMPLETING", "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT"}
)  # fmt: skip
"""Slurm states of a job that has not ended."""
MPI_LAUNCHER = "srun --mpi=pmi2"
"""How an MPI step starts under Slurm with the MPICH ABI (one world of `ntasks` ranks)."""


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """One job of a submission.

    Attributes:
        stage: its stage.
        script: the job script.
        tasks: the array tasks it runs (None: a single job).
        after: the stages of this submission it waits for.
        reason: what it does, in words ("4 of 6 models").
    """

    stage: SlurmStage
    script: JobScript
    tasks: tuple[int, ...] | None
    after: tuple[SlurmStage, ...]
    reason: str


@dataclass(frozen=True)
class Submission:
    """A planned (and, once submitted, submitted) analysis.

    Attributes:
        config: the analysis.
        jobs: the jobs, in stage order.
        done: the stages left out because they are done, with why.
        warnings: what may keep a job from running (an --only stage whose input is not done).
        job_ids: per submitted stage, its Slurm job id (empty until `submit`).
    """

    config: AnalysisConfig
    jobs: tuple[PlannedJob, ...]
    done: Mapping[SlurmStage, str]
    warnings: tuple[str, ...] = ()
    job_ids: dict[SlurmStage, int] = field(default_factory=dict)


def slurm_directory(config: AnalysisConfig) -> Path:
    """`<output_dir>/slurm`: scripts, logs and submission.json."""
    return config.output_dir / SLURM_DIR_NAME


def default_command() -> str:
    """How the jobs run vbsad: this Python with this vbsad_batch (the same on the nodes of a
    cluster that shares the file system)."""
    return shlex.join([sys.executable, "-m", "vbsad_batch"])


def _arguments(stage: SlurmStage, config: AnalysisConfig, array: bool) -> tuple[str, ...]:
    cfg = str(config.path)
    per_model = ("--task", TASK_PLACEHOLDER) if array else ("--all-models",)
    match stage:
        case "preprocess":
            k = str(config.slurm.files_per_task)
            return (
                "preprocess",
                "--config",
                cfg,
                "--task",
                TASK_PLACEHOLDER,
                "--files-per-task",
                k,
            )
        case "train":
            return ("train", cfg, *per_model, "--resume")
        case "score":
            return ("score", cfg, *per_model)
        case _:
            return (stage, cfg)


def _script(
    stage: SlurmStage,
    state: StageState,
    *,
    config: AnalysisConfig,
    resources: SlurmResources,
    command: str | None,
    tasks: tuple[int, ...] | None,
) -> JobScript:
    array = tasks is not None
    mpi_stage = stage == "scan" or (stage in ("train", "score") and not state.array)
    ranks = resources.ntasks or 1
    mpi = mpi_stage and ranks > 1
    if command is None:
        command = config.slurm.container_command(mpi=mpi) or default_command()
    return JobScript(
        name=f"vbsad-{stage}",
        description=f"vbsad {stage} of {config.path} (vbsad submit)",
        arguments=_arguments(stage, config, array),
        command=command,
        resources=resources,
        log_dir=str(slurm_directory(config) / LOGS_DIR_NAME),
        grace_s=config.slurm.grace_s,
        array=array_spec(tasks, resources.array_throttle) if tasks is not None else None,
        mpi=MPI_LAUNCHER if mpi else "",
    )


def plan_submission(
    config: AnalysisConfig,
    *,
    only: Sequence[SlurmStage] | None = None,
    overrides: SlurmResources | None = None,
    command: str | None = None,
    force: bool = False,
) -> Submission:
    """The jobs that finish `config` (see the module docstring).

    Args:
        config: the analysis.
        only: submit only these stages (their dependencies on each other kept).
        overrides: resources from the command line, over the config's `[slurm]`.
        command: how the jobs run vbsad (default: in `[slurm] container` when the config
            names one, else `default_command()`).
        force: submit every selected stage whole, done or not (the stages still skip what
            is current when they run; `vbsad <stage> --force` rewrites).
    """
    states = analysis_state(config)
    selected = [s for s in SLURM_STAGES if only is None or s in only]
    jobs: list[PlannedJob] = []
    done: dict[SlurmStage, str] = {}
    warnings: list[str] = []
    upstream_submitted = False
    for stage in SLURM_STAGES:
        state = states[stage]
        if stage not in selected:
            continue
        whole = force or upstream_submitted
        todo = tuple(range(len(state.units))) if whole else state.todo
        if not todo:
            done[stage] = "done" if state.units else "nothing to do"
            continue
        if only is not None:
            missing = [
                s for s in SLURM_STAGES[: SLURM_STAGES.index(stage)]
                if s not in selected and not states[s].done
            ]  # fmt: skip
            if missing:
                warnings.append(
                    f"{stage}: its input stage(s) {', '.join(missing)} are not done and not "
                    "submitted: the job will fail until they are"
                )
        resources = config.slurm.resources(stage)
        if overrides is not None:
            resources = overrides.over(resources)
        tasks = todo if state.array else None
        script = _script(
            stage,
            state,
            config=config,
            resources=resources,
            command=command,
            tasks=tasks,
        )
        after = tuple(j.stage for j in jobs)[-1:]  # the previous submitted stage
        what = f"{len(todo)} of {len(state.units)} task(s)" if state.array else "one job"
        jobs.append(PlannedJob(stage, script, tasks, after, what))
        upstream_submitted = True
    return Submission(config, tuple(jobs), done, tuple(warnings))


def read_submission(config: AnalysisConfig) -> dict[str, Any] | None:
    """The last submission recorded in `slurm/submission.json`, or None."""
    path = slurm_directory(config) / SUBMISSION_NAME
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    submissions = document.get("submissions") if isinstance(document, dict) else None
    return submissions[-1] if isinstance(submissions, list) and submissions else None


def _git_revision() -> str | None:
    source = Path(__file__).resolve().parents[2]
    try:
        proc = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _container_record(config: AnalysisConfig) -> dict[str, Any] | None:
    """The image the jobs run in: its path, SHA-256 (of a SIF or squashfs file; a directory
    image has none) and the command that runs it.

    Raises:
        FileNotFoundError: the image does not exist.
    """
    image = config.slurm.container
    if image is None:
        return None
    if not image.exists():
        raise FileNotFoundError(
            f"{config.path}: [slurm] container: no image {image} (containers/README.md says "
            "how to build one: make image)"
        )
    return {
        "image": str(image),
        "sha256": sha256_file(image) if image.is_file() else None,
        "exec": config.slurm.container_exec,
    }


def _still_queued(config: AnalysisConfig, env: Mapping[str, str] | None) -> list[str]:
    previous = read_submission(config)
    if previous is None:
        return []
    ids = [int(j["job_id"]) for j in previous.get("jobs", [])]
    states = job_states(ids, env)
    return sorted(f"{s.job_id} ({s.state})" for s in states.values() if s.state in ACTIVE_STATES)


def script_name(index: int, job: PlannedJob) -> str:
    """The file name of a job's script: `<n>_<stage>.sbatch`, n from 1 in stage order."""
    return f"{index}_{job.stage}.sbatch"


def submit(
    submission: Submission,
    *,
    argv: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Submission:
    """Write the scripts and submit the jobs of `submission` (see the module docstring).

    Raises:
        SlurmError: sbatch failed (the jobs submitted before stay submitted and recorded),
            or jobs of the previous submission are still queued.
    """
    from vbsad_batch.workflow.slurm_client import SlurmError  # noqa: PLC0415

    config = submission.config
    queued = _still_queued(config, env)
    if queued:
        raise SlurmError(
            f"jobs of the previous submission are still queued or running: {', '.join(queued)}; "
            "wait for them (vbsad status) or cancel them (scancel) before submitting again"
        )
    directory = slurm_directory(config)
    (directory / LOGS_DIR_NAME).mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "submitted_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command_line": list(argv),
        "config": {"path": str(config.path), "sha256": sha256_file(config.path)},
        "tool_version": tool_version(),
        "git_revision": _git_revision(),
        "container": _container_record(config),
        "done_before": dict(submission.done),
        "jobs": [],
    }
    ids: dict[SlurmStage, int] = {}
    try:
        for index, job in enumerate(submission.jobs, start=1):
            path = directory / script_name(index, job)
            write_text_atomic(path, render(job.script))
            path.chmod(0o755)
            job_id = sbatch(path, after=[ids[s] for s in job.after if s in ids], env=env)
            ids[job.stage] = job_id
            record["jobs"].append(
                {
                    "stage": job.stage,
                    "job_id": job_id,
                    "script": str(path),
                    "script_sha256": sha256_file(path),
                    "array_tasks": None if job.tasks is None else list(job.tasks),
                    "after": [ids[s] for s in job.after if s in ids],
                    "what": job.reason,
                }
            )
    finally:
        _record(directory / SUBMISSION_NAME, record)
    return Submission(config, submission.jobs, submission.done, submission.warnings, ids)


def _record(path: Path, record: Mapping[str, Any]) -> None:
    """Append `record` to the submissions of `path` (written atomically)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        submissions = list(document.get("submissions", []))
    except (OSError, ValueError, AttributeError):
        submissions = []
    submissions.append(dict(record))
    text = json.dumps({"submissions": submissions}, indent=2, sort_keys=True) + "\n"
    write_text_atomic(path, text)
