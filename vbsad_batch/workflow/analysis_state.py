"""What of an analysis is done: per stage, its units of work and which are current.

Read from the manifests through the stage contract (the checks the stages themselves make
of their inputs), so "done" here means what a stage's own run would skip:

- preprocess: one unit per array task (`files_per_task` LHE inputs of the config each); done
  when every input's shard in the config's shard cache is up to date (size and mtime, no
  hashing);
- datasets, scan, report: one unit each;
- train, score: one unit per model of the config's grid (`AnalysisConfig.models()`, the order
  of `vbsad train --task I`).

A stage whose inputs are not there yet is simply not done. Nothing here runs a stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from vbsad_batch.config import AnalysisConfig, ModelSpec
from vbsad_batch.config.slurm import SLURM_STAGES, SlurmStage
from vbsad_batch.errors import StaleInputError
from vbsad_batch.ingest.samples import input_kind, lhe_ingested

__all__ = ["StageState", "UnitState", "analysis_state", "lhe_task_files", "model_grid"]


@dataclass(frozen=True, slots=True)
class UnitState:
    """One unit of work: an array task, or a stage's single job.

    Attributes:
        name: what it is (the first input file, a model name, the stage).
        done: its outputs are current.
        reason: why not ("" when done).
    """

    name: str
    done: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StageState:
    """The units of one stage, in task order (index = array task id).

    Attributes:
        stage: the stage.
        units: its units.
        array: whether its units are array tasks (else one job does them all).
    """

    stage: SlurmStage
    units: tuple[UnitState, ...]
    array: bool

    @property
    def done(self) -> bool:
        """Every unit is current (a stage without units, e.g. no LHE input, is done)."""
        return all(u.done for u in self.units)

    @property
    def todo(self) -> tuple[int, ...]:
        """The indices of the units that are not done."""
        return tuple(i for i, u in enumerate(self.units) if not u.done)


def lhe_task_files(config: AnalysisConfig) -> list[list[Path]]:
    """The config's LHE inputs in array-task shares of `[slurm] files_per_task` (the shares of
    `vbsad preprocess --config CONFIG --task I --files-per-task K`)."""
    lhe = [f for f in config.input_files() if input_kind(f) == "lhe"]
    k = config.slurm.files_per_task
    return [lhe[i : i + k] for i in range(0, len(lhe), k)]


def model_grid(config: AnalysisConfig) -> list[ModelSpec]:
    """The models of the grid in task order: `vbsad train CONFIG --task I` trains the I-th."""
    return config.models()


def _checked(check: Callable[[], object]) -> tuple[bool, str]:
    try:
        check()
    except StaleInputError as exc:
        return False, str(exc)
    return True, ""


def _preprocess(config: AnalysisConfig) -> StageState:
    units = []
    for files in lhe_task_files(config):
        pending = [f for f in files if not lhe_ingested(f, config.output_dir)]
        name = files[0].name + (f" (+{len(files) - 1})" if len(files) > 1 else "")
        reason = f"{len(pending)} of {len(files)} input(s) not converted" if pending else ""
        units.append(UnitState(name, not pending, reason))
    return StageState("preprocess", tuple(units), array=True)


def _single(stage: SlurmStage, done_reason: tuple[bool, str]) -> StageState:
    done, reason = done_reason
    return StageState(stage, (UnitState(stage, done, "" if done else reason),), array=False)


def analysis_state(config: AnalysisConfig) -> dict[SlurmStage, StageState]:
    """Every stage of `config` with its units (see the module docstring), in stage order."""
    # Deferred: each stage's checks import that stage (polars, pyarrow), not TensorFlow.
    from vbsad_batch.models.model_unit import current_model, model_unit  # noqa: PLC0415
    from vbsad_batch.models.scoring import current_scores  # noqa: PLC0415
    from vbsad_batch.report.writer import report_freshness  # noqa: PLC0415
    from vbsad_batch.scan.driver import current_scan  # noqa: PLC0415
    from vbsad_batch.weighting.datasets import current_datasets  # noqa: PLC0415

    specs = model_grid(config)
    train = []
    score = []
    for spec in specs:
        directory = model_unit(config, spec).directory
        done, reason = _checked(partial(current_model, config, directory))
        train.append(UnitState(spec.name, done, reason))
        done, reason = _checked(partial(current_scores, config, spec.name))
        score.append(UnitState(spec.name, done, reason))
    array = config.slurm.jobs == "array"
    states = {
        "preprocess": _preprocess(config),
        "datasets": _single("datasets", _checked(lambda: current_datasets(config))),
        "train": StageState("train", tuple(train), array=array),
        "score": StageState("score", tuple(score), array=array),
        "scan": _single("scan", _checked(lambda: current_scan(config))),
        "report": _single("report", report_freshness(config)),
    }
    return {stage: states[stage] for stage in SLURM_STAGES}
