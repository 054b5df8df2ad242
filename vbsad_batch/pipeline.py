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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from vbsad_batch.atomic_write import write_text_atomic
from vbsad_batch.config import AnalysisConfig, load_config
from vbsad_batch.demo import (
    DEFAULT_OPERATORS,
    DemoSettings,
    demo_config_toml,
    generate_demo,
)
from vbsad_batch.model_paths import MODEL_KINDS, ModelKind
from vbsad_batch.progress import ProgressCallback, ProgressEvent
from vbsad_batch.provenance import (
    manifest_up_to_date,
    read_manifest,
    runtime_provenance,
    tool_version,
    write_manifest,
)

__all__ = [
    "DEMO_CONFIG_NAME",
    "DEMO_DATA_DIR",
    "MODEL_KINDS",
    "StageResult",
    "prepare_demo",
    "run_analysis",
]

DEMO_CONFIG_NAME = "demo.toml"
DEMO_DATA_DIR = "data"
_DEMO_MANIFEST = "manifest.json"

logger = logging.getLogger(__name__)
_DEMO_KIND = "vbsad_batch.demo"


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


def prepare_demo(
    directory: Path,
    settings: DemoSettings,
    *,
    seed: int = 1,
    operators: Sequence[str] = DEFAULT_OPERATORS,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> tuple[Path, StageResult]:
    """Write the embedded demo into ``directory`` (``data/*.lhe.gz`` and ``demo.toml``) unless
    it is already there for the same settings; return the config path and what was done."""
    start = time.monotonic()
    directory = Path(directory)
    data_dir = directory / DEMO_DATA_DIR
    config_path = directory / DEMO_CONFIG_NAME
    manifest_path = data_dir / _DEMO_MANIFEST
    key = {
        "tool_version": tool_version(),
        "settings": asdict(settings),
        "seed": seed,
        "operators": list(operators),
    }
    fresh, reason = manifest_up_to_date(
        read_manifest(manifest_path),
        kind=_DEMO_KIND,
        key=key,
        directory=directory,
        outputs_field="outputs",
    )
    if fresh and not force:
        # The data are current; the config is cheap: rewritten if this version writes another.
        if _write_if_changed(
            config_path, demo_config_toml(DEMO_DATA_DIR, settings, operators=operators)
        ):
            detail = f"{directory} up to date; {config_path.name} rewritten"
        else:
            detail = f"{directory} up to date"
        seconds = time.monotonic() - start
        return config_path, StageResult("demo", "skipped", detail, seconds)

    manifest_path.unlink(missing_ok=True)  # the manifest marks completion
    emit = progress or (lambda event: None)
    n_files = 1 + 2 * len(operators)
    emit(ProgressEvent("demo", "run_started", total_items=n_files, message=reason))

    last = [time.monotonic()]

    def file_written(path: Path, events: int) -> None:
        now = time.monotonic()
        emit(
            ProgressEvent(
                "demo",
                "item_finished",
                item=str(path),
                total_items=n_files,
                events=events,
                seconds=now - last[0],
            )
        )
        last[0] = now

    files = generate_demo(
        data_dir,
        n_events=settings.n_events,
        eft_events=settings.eft_events,
        seed=seed,
        operators=operators,
        progress=file_written,
    )
    _write_if_changed(config_path, demo_config_toml(DEMO_DATA_DIR, settings, operators=operators))
    outputs = [
        {"path": str(p.relative_to(directory)), "size_bytes": p.stat().st_size} for p in files
    ]
    write_manifest(
        manifest_path,
        {"kind": _DEMO_KIND, "key": key, "outputs": outputs, "provenance": runtime_provenance()},
    )
    emit(ProgressEvent("demo", "run_finished", total_items=n_files))
    seconds = time.monotonic() - start
    return config_path, StageResult(
        "demo", "done", f"{len(files)} LHE files in {data_dir}", seconds
    )


def _write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically unless it already holds it; True if written."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    write_text_atomic(path, text)
    return True


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

    from vbsad_batch.datasets import build_datasets  # noqa: PLC0415 - polars only from here

    start = time.monotonic()
    built = build_datasets(cfg, progress=progress, force=force)
    finish("datasets", start, built.status == "skipped", str(built.directory))

    from vbsad_batch.scoring import score_datasets, scores_directory  # noqa: PLC0415
    from vbsad_batch.training import (  # noqa: PLC0415 - TensorFlow from here on
        CheckpointMismatchError,
        train,
    )

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

    from vbsad_batch.scan_report import run_scan  # noqa: PLC0415

    start = time.monotonic()
    scanned = run_scan(cfg, models=[d.name for d in model_dirs], progress=progress, force=force)
    if scanned is not None:
        finish("scan", start, scanned.status == "up to date", str(scanned.directory / "table.md"))

    from vbsad_batch.report import write_report  # noqa: PLC0415 - matplotlib only from here

    start = time.monotonic()
    reported = write_report(cfg, force=force, progress=progress)
    finish("report", start, reported.status == "skipped", str(reported.index_html))
    return results
