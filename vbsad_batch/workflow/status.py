"""`vbsad status`: per stage of an analysis, done / running / pending / failed / to do.

What is done comes from the manifests (`analysis_state`: the stage contract's own checks);
what is queued, running or has failed comes from the jobs of the last `vbsad submit`
(`slurm/submission.json`) as Slurm reports them (`slurm_client.job_states`). A stage that is
not done, whose job left the queue without finishing it, has failed: its unfinished units
are named with their log files. The way on is always the same command, `vbsad submit
CONFIG`, which resubmits only what is not done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vbsad_batch.config import AnalysisConfig
from vbsad_batch.config.slurm import SLURM_STAGES, SlurmStage
from vbsad_batch.runtime.stage import command
from vbsad_batch.workflow.analysis_state import StageState, analysis_state
from vbsad_batch.workflow.job_scripts import ARRAY_LOG, SINGLE_LOG
from vbsad_batch.workflow.slurm_client import JobState, available, job_states
from vbsad_batch.workflow.submission import (
    ACTIVE_STATES,
    LOGS_DIR_NAME,
    read_submission,
    slurm_directory,
)

__all__ = ["AnalysisStatus", "StageStatus", "StatusWord", "analysis_status"]

StatusWord = Literal["done", "running", "pending", "failed", "held back", "to do"]
_HELD_BACK = "DependencyNeverSatisfied"
"""Slurm's reason for a job cancelled because a job it waited for failed."""


@dataclass(frozen=True, slots=True)
class StageStatus:
    """Where one stage stands.

    Attributes:
        stage: the stage.
        status: "done", "running", "pending", "failed", "held back" (cancelled because a
            stage before it failed) or "to do".
        detail: units done out of all, the job id, what failed.
        problems: per unit that failed, a line with its name, Slurm state and log file.
    """

    stage: SlurmStage
    status: StatusWord
    detail: str
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AnalysisStatus:
    """Every stage's status and the command that carries on.

    Attributes:
        stages: in stage order.
        resume: the command that submits what is not done ("" when all is done).
        slurm_known: whether Slurm was asked (its client commands are there).
    """

    stages: tuple[StageStatus, ...]
    resume: str
    slurm_known: bool


def _log(directory: Path, stage: SlurmStage, job_id: int, task: int | None) -> str:
    pattern = ARRAY_LOG if task is not None else SINGLE_LOG
    name = (
        pattern.replace("%x", f"vbsad-{stage}")
        .replace("%A", str(job_id))
        .replace("%a", str(task))
        .replace("%j", str(job_id))
    )
    return str(directory / name)


def _task_states(
    job: Mapping[str, Any], states: Mapping[str, JobState]
) -> dict[int | None, JobState]:
    """The Slurm state of each task of a submitted job (None: a single job), when known."""
    job_id = str(job["job_id"])
    tasks = job.get("array_tasks")
    if tasks is None:
        state = states.get(job_id)
        return {None: state} if state is not None else {}
    found: dict[int | None, JobState] = {}
    for task in tasks:
        state = states.get(f"{job_id}_{task}")
        if state is None and job_id in states and states[job_id].state in ACTIVE_STATES:
            state = states[job_id]  # pending tasks not yet split out of the array record
        if state is not None:
            found[int(task)] = state
    return found


def _queue_status(
    stage: SlurmStage, job_id: int, tasks: Mapping[int | None, JobState], count: str
) -> StageStatus | None:
    """Running, pending or held back, from the Slurm states of the job's tasks; None when
    the job has ended otherwise."""
    words = {s.state for s in tasks.values()}
    if "RUNNING" in words or "COMPLETING" in words:
        running = sum(s.state == "RUNNING" for s in tasks.values())
        return StageStatus(stage, "running", f"{count}; job {job_id}, {running} running")
    active = [s for s in tasks.values() if s.state in ACTIVE_STATES]
    if active:
        reasons = sorted({s.reason for s in active if s.reason})
        why = f" ({', '.join(reasons)})" if reasons else ""
        return StageStatus(stage, "pending", f"{count}; job {job_id} {active[0].state}{why}")
    if tasks and all(s.reason == _HELD_BACK for s in tasks.values()):
        what = f"{count}; job {job_id} cancelled: a stage before it failed"
        return StageStatus(stage, "held back", what)
    return None


def _stage_status(
    state: StageState,
    job: Mapping[str, Any] | None,
    states: Mapping[str, JobState],
    logs: Path,
) -> StageStatus:
    n_done = sum(u.done for u in state.units)
    count = f"{n_done}/{len(state.units)} done"
    if state.done:
        return StageStatus(state.stage, "done", count)
    if job is None:
        return StageStatus(state.stage, "to do", f"{count}; not submitted")
    job_id = int(job["job_id"])
    tasks = _task_states(job, states)
    queued = _queue_status(state.stage, job_id, tasks, count)
    if queued is not None:
        return queued
    problems = []
    submitted = job.get("array_tasks")
    units = range(len(state.units)) if submitted is None else [int(t) for t in submitted]
    for index in units:
        unit = state.units[index] if index < len(state.units) else None
        if unit is None or unit.done:
            continue
        task = None if submitted is None else index
        slurm = tasks.get(task)
        what = f"{slurm.state} {slurm.exit_code}".strip() if slurm else "left the queue"
        label = f"task {index} ({unit.name})" if task is not None else unit.name
        problems.append(f"{label}: {what}; log {_log(logs, state.stage, job_id, task)}")
    if not problems:  # the submitted part ended well; what is left was not submitted
        return StageStatus(state.stage, "to do", f"{count}; job {job_id} ended")
    return StageStatus(state.stage, "failed", f"{count}; job {job_id}", tuple(problems))


def analysis_status(config: AnalysisConfig, env: Mapping[str, str] | None = None) -> AnalysisStatus:
    """Where every stage of `config` stands (see the module docstring)."""
    states = analysis_state(config)
    submission = read_submission(config) or {}
    jobs: dict[str, Mapping[str, Any]] = {str(j["stage"]): j for j in submission.get("jobs", [])}
    ids: Sequence[int] = [int(j["job_id"]) for j in jobs.values()]
    slurm_known = available()
    slurm_states = job_states(ids, env) if ids and slurm_known else {}
    logs = slurm_directory(config) / LOGS_DIR_NAME
    stages = tuple(
        _stage_status(states[stage], jobs.get(stage), slurm_states, logs) for stage in SLURM_STAGES
    )
    finished = all(s.status == "done" for s in stages)
    resume = "" if finished else command("submit", config.path)
    return AnalysisStatus(stages, resume, slurm_known)
