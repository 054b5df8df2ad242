"""The main job (`vbsad run`): every stage of an analysis in order, finished stages skipped.

    [demo] -> datasets -> train (VAE, VAE+NN) -> score -> scan -> report

Each stage is the function the stage's own subcommand calls, and goes through the stage
contract (`vbsad_batch.runtime.stage`): it checks its inputs against the manifests of the
stages that made them and skips itself when its outputs are current, so a second run (or a
run after a preemption) redoes only what is missing. Without a config the embedded demo is
generated first (`vbsad_batch.demo.prepare`).

One run per output directory: a run holds the lock ``<output_dir>/.vbsad-run.lock``
(`analysis_lock`, `vbsad_batch.runtime.output_lock`) from its first stage to its last, on top
of each stage's own lock on the unit it writes. So a second `vbsad run` of the same analysis
(with `--force` or not) stops before any work, naming the run that holds it, or with
``VBSAD_LOCK_WAIT`` set queues behind it and then finds its stages up to date; it does not
interleave with the first one, stage by stage. A single stage's command (`vbsad train`, ...)
takes only its unit's lock: Slurm array tasks of one analysis write side by side.

No argument parsing and no printing here: progress goes to a `ProgressCallback`, and each
finished stage to `on_stage(label, result)` as its typed `StageResult`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from vbsad_batch.config import MODEL_KINDS, AnalysisConfig, ModelKind, ModelSpec, load_config
from vbsad_batch.runtime.output_lock import hold
from vbsad_batch.runtime.progress import ProgressCallback
from vbsad_batch.runtime.stage import StageResult

__all__ = ["RUN_LOCK_NAME", "StageCallback", "analysis_lock", "run_analysis"]

logger = logging.getLogger(__name__)

StageCallback = Callable[[str, StageResult], None]
"""Called with a label ("datasets", "train vae", ...) and the result of each finished stage."""

RUN_LOCK_NAME = ".vbsad-run.lock"
"""The lock file of a whole run, in the analysis' output directory."""


def analysis_lock(
    output_dir: Path, *, wait: float | None = None
) -> contextlib.AbstractContextManager[None]:
    """Hold the lock of a whole run on `output_dir` for the block (re-entrant in one thread:
    `vbsad run` holds it over the demo's preparation and `run_analysis`).

    Args:
        output_dir: the analysis' output directory (created if missing).
        wait: how long to wait for another run, s; default: ``VBSAD_LOCK_WAIT`` (unset: stop
            at once).

    Raises:
        OutputBusyError: another run holds it (still, after `wait`).
    """
    return hold(Path(output_dir) / RUN_LOCK_NAME, target=str(output_dir), wait=wait)


def _label(stage: str, spec: ModelSpec, grid: bool) -> str:
    """ "train vae" for a model of its own kind alone, "train vae_latent5_seed2" in a grid."""
    return f"{stage} {spec.name if grid else spec.kind}"


def run_analysis(
    config: AnalysisConfig | Path,
    *,
    models: Sequence[ModelKind] = MODEL_KINDS,
    force: bool = False,
    progress: ProgressCallback | None = None,
    on_stage: StageCallback | None = None,
) -> list[StageResult]:
    """Run datasets -> train -> score -> scan -> report for ``config``; return the results.

    Every stage skips itself when its outputs are up to date (``force`` redoes them all).
    ``models`` are trained and scored in order; the scan covers the models scored here. The
    whole run holds `analysis_lock` on the config's output directory.

    Raises:
        OutputBusyError: another run (or a stage's command) writes these outputs.
    """
    cfg = load_config(config) if isinstance(config, Path) else config
    if not models:
        raise ValueError("run_analysis needs at least one model kind")
    unknown = [m for m in models if m not in MODEL_KINDS]
    if unknown:
        raise ValueError(f"unknown model kind(s) {unknown}: use {', '.join(MODEL_KINDS)}")
    with analysis_lock(cfg.output_dir):
        return _run_stages(cfg, models, force=force, progress=progress, on_stage=on_stage)


def _run_stages(
    cfg: AnalysisConfig,
    models: Sequence[ModelKind],
    *,
    force: bool,
    progress: ProgressCallback | None,
    on_stage: StageCallback | None,
) -> list[StageResult]:
    """The stages of `run_analysis`, in order."""
    results: list[StageResult] = []

    def finished(label: str, result: StageResult) -> None:
        results.append(result)
        if on_stage is not None:
            on_stage(label, result)

    from vbsad_batch.weighting.datasets import build_datasets  # noqa: PLC0415 - polars from here

    finished("datasets", build_datasets(cfg, progress=progress, force=force))

    from vbsad_batch.models.checkpoints import CheckpointMismatchError  # noqa: PLC0415
    from vbsad_batch.models.parallel import configure_threads  # noqa: PLC0415
    from vbsad_batch.models.scoring import score_datasets  # noqa: PLC0415
    from vbsad_batch.models.training import (  # noqa: PLC0415 - TensorFlow from here on
        TrainingResult,
        train,
    )
    from vbsad_batch.runtime.mpi import SingleProcess  # noqa: PLC0415

    configure_threads(SingleProcess())  # within a cgroup CPU quota; before TensorFlow runs

    specs = cfg.models(models)
    model_dirs: list[Path] = []
    for spec in specs:

        def fit(resume: bool, spec: ModelSpec = spec) -> TrainingResult:
            return train(
                cfg,
                kind=spec.kind,
                latent_dim=spec.latent_dim,
                seed=spec.seed,
                training_operator=spec.training_operator,
                resume=resume,
                force=force,
                progress=progress,
            )

        try:
            trained = fit(resume=True)
        except CheckpointMismatchError as exc:
            # The settings or datasets changed since the interrupted run: start afresh.
            logger.info("%s", exc)
            trained = fit(resume=False)
        finished(_label("train", spec, len(specs) > len(models)), trained)
        model_dirs.append(trained.directory)
    for spec, model_dir in zip(specs, model_dirs, strict=True):
        label = _label("score", spec, len(specs) > len(models))
        finished(label, score_datasets(cfg, model_dir, progress=progress, force=force))

    from vbsad_batch.scan.driver import run_scan  # noqa: PLC0415

    scanned = run_scan(cfg, models=[d.name for d in model_dirs], progress=progress, force=force)
    if scanned is not None:
        finished("scan", scanned)

    from vbsad_batch.report.writer import write_report  # noqa: PLC0415 - matplotlib from here

    finished("report", write_report(cfg, force=force, progress=progress))
    return results
