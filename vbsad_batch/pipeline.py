"""The main job (`vbsad run`): every stage of an analysis in order, finished stages skipped.

    [demo] -> datasets -> train (VAE, VAE+NN) -> score -> scan -> report

Each stage is the function the stage's own subcommand calls; each writes its outputs with a
manifest and skips itself when its inputs are unchanged, so a second run (or a run after a
preemption) redoes only what is missing. Without a config the embedded demo is generated
first (`prepare_demo`): toy LHE samples and the analysis config that reads them.

No argument parsing and no printing here: progress goes to a `ProgressCallback`, and each
finished stage to an `on_stage` callback, as `StageResult`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vbsad_batch.config import MODEL_KINDS, AnalysisConfig, ModelKind, load_config
from vbsad_batch.runtime.progress import ProgressCallback, ProgressEvent

__all__ = [
    "MODEL_KINDS",
    "StageResult",
    "run_analysis",
]


logger = logging.getLogger(__name__)


StageStatus = Literal["done", "skipped"]


@dataclass(frozen=True, slots=True)
class StageResult:
    """One finished stage of a run.

    Attributes:
        stage: e.g. "datasets", "train vae_nn", "report".
        status: "done" (outputs written) or "skipped" (already up to date).
        detail: where the outputs are, or why it was skipped.
        seconds: wall time of the stage.
    """

    stage: str
    status: StageStatus
    detail: str
    seconds: float


class _StageWatch:
    """Forwards progress events and notes whether the stage said it was up to date (for
    `score_datasets`, which returns only its outputs)."""

    def __init__(self, progress: ProgressCallback | None) -> None:
        self._progress = progress
        self.up_to_date = False

    def __call__(self, event: ProgressEvent) -> None:
        if event.kind == "run_finished" and event.message == "up to date":
            self.up_to_date = True
        if self._progress is not None:
            self._progress(event)


def run_analysis(
    config: AnalysisConfig | Path,
    *,
    models: Sequence[ModelKind] = MODEL_KINDS,
    force: bool = False,
    progress: ProgressCallback | None = None,
    on_stage: Callable[[StageResult], None] | None = None,
) -> list[StageResult]:
    """Run datasets -> train -> score -> scan -> report for ``config``; return the stages.

    Every stage skips itself when its outputs are up to date (``force`` redoes them all).
    ``models`` are trained and scored in order; the scan covers the models scored here.
    """
    cfg = load_config(config) if isinstance(config, Path) else config
    if not models:
        raise ValueError("run_analysis needs at least one model kind")
    unknown = [m for m in models if m not in MODEL_KINDS]
    if unknown:
        raise ValueError(f"unknown model kind(s) {unknown}: use {', '.join(MODEL_KINDS)}")
    results: list[StageResult] = []

    def finish(stage: str, start: float, skipped: bool, done: str) -> None:
        result = StageResult(
            stage,
            "skipped" if skipped else "done",
            "up to date" if skipped else done,
            time.monotonic() - start,
        )
        results.append(result)
        if on_stage is not None:
            on_stage(result)

    from vbsad_batch.weighting.datasets import build_datasets  # noqa: PLC0415 - polars only from here

    start = time.monotonic()
    built = build_datasets(cfg, progress=progress, force=force)
    finish("datasets", start, built.status == "skipped", str(built.directory))

    from vbsad_batch.models.checkpoints import CheckpointMismatchError  # noqa: PLC0415 - TensorFlow from here on
    from vbsad_batch.models.scoring import score_datasets, scores_directory  # noqa: PLC0415
    from vbsad_batch.models.training import train  # noqa: PLC0415 - TensorFlow from here on

    model_dirs: list[Path] = []
    for kind in models:
        start = time.monotonic()
        try:
            trained = train(cfg, kind=kind, resume=True, force=force, progress=progress)
        except CheckpointMismatchError as exc:
            # The settings or datasets changed since the interrupted run: start afresh.
            logger.info("%s", exc)
            trained = train(cfg, kind=kind, resume=False, force=force, progress=progress)
        finish(
            f"train {kind}",
            start,
            trained.status == "skipped",
            f"{trained.model_dir} (best epoch {trained.best_epoch}, validation loss "
            f"{trained.best_val_loss:.4g})",
        )
        model_dirs.append(trained.model_dir)
    for kind, model_dir in zip(models, model_dirs, strict=True):
        start, watch = time.monotonic(), _StageWatch(progress)
        score_datasets(cfg, model_dir, progress=watch, force=force)
        finish(f"score {kind}", start, watch.up_to_date, str(scores_directory(cfg, model_dir)))

    from vbsad_batch.scan.driver import run_scan  # noqa: PLC0415

    start = time.monotonic()
    scanned = run_scan(cfg, models=[d.name for d in model_dirs], progress=progress, force=force)
    if scanned is not None:
        finish("scan", start, scanned.status == "up to date", str(scanned.directory / "table.md"))

    from vbsad_batch.report.writer import write_report  # noqa: PLC0415 - matplotlib only from here

    start = time.monotonic()
    reported = write_report(cfg, force=force, progress=progress)
    finish("report", start, reported.status == "skipped", str(reported.index_html))
    return results
