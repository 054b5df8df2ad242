"""The analysis report: figures, index.html and summary.md from the outputs of every stage.

`write_report(config)` reads the manifests of `vbsad datasets`, `vbsad train`, `vbsad score`
and `vbsad scan` under `config.output_dir` (see `vbsad_batch.report.inputs`) and writes into
`<output_dir>/report/`:

- `figures/*.png`: the figures of `vbsad_batch.report.figures` that the present outputs allow;
- `index.html`: self-contained (inline CSS, no script, no external URL; the figures are
  relative links to `figures/`), with what is missing, the sensitivity table, the figures, the
  configuration (TOML text and the resolved config) and the provenance of every input file
  (path, size, SHA-256, the tool version that wrote it);
- `summary.md`: the same status, table, configuration and provenance in markdown, with links
  to the figures;
- `manifest.json`, written last: the key (the SHA-256 of every stage manifest, of the config
  file, the tool and plotting library versions), what is missing, and every output file with
  its size and SHA-256.

The report needs the datasets; models, scores and the scan are optional: what is not there is
listed with the command that makes it, and its figures are left out. Every file is written
atomically. A re-run with the same key whose outputs are all still there does nothing.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from vbsad_batch.config import AnalysisConfig
from vbsad_batch.report.inputs import ReportInputs, find_report_inputs
from vbsad_batch.report.pages import (
    FigureEntry,
    ReportContent,
    render_index_html,
    render_summary_md,
)
from vbsad_batch.runtime.atomic_write import (
    remove_stale_temp_files,
    write_bytes_atomic,
    write_text_atomic,
)
from vbsad_batch.runtime.progress import ProgressCallback, ProgressEvent
from vbsad_batch.runtime.provenance import (
    MANIFEST_NAME,
    jsonable,
    manifest_up_to_date,
    read_manifest,
    runtime_provenance,
    sha256_file,
    tool_version,
    write_manifest,
)

__all__ = ["REPORT_DIR_NAME", "ReportResult", "report_directory", "write_report"]

logger = logging.getLogger(__name__)

REPORT_DIR_NAME = "report"
FIGURES_DIR_NAME = "figures"
REPORT_FORMAT_VERSION = 1
"""Version of the report layout; bump when the figures or pages change."""

MANIFEST_KIND = "vbsad_batch.report"
INDEX_NAME = "index.html"
SUMMARY_NAME = "summary.md"
_STAGE = "report"

ReportStatus = Literal["written", "skipped"]


@dataclass(frozen=True, slots=True)
class ReportResult:
    """What `write_report` did.

    Attributes:
        status: "written" or "skipped" (up to date).
        reason: why it was (re)written, or "up to date".
        directory: the report directory.
        index_html: its index.html.
        summary_md: its summary.md.
        figures: the figure files.
        missing: what the report lacks (sentences with the command that makes it).
    """

    status: ReportStatus
    reason: str
    directory: Path
    index_html: Path
    summary_md: Path
    figures: tuple[Path, ...]
    missing: tuple[str, ...]


def report_directory(config: AnalysisConfig) -> Path:
    """Where `write_report` writes: <output_dir>/report."""
    return config.output_dir / REPORT_DIR_NAME


def _library_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _key(inputs: ReportInputs) -> dict[str, Any]:
    config = inputs.config
    return {
        "format_version": REPORT_FORMAT_VERSION,
        "tool_version": tool_version(),
        "libraries": {name: _library_version(name) for name in ("matplotlib", "mplhep")},
        "config": {"path": str(config.path), "sha256": sha256_file(config.path)},
        "resolved_config": jsonable(config),
        "stages": [
            {
                "stage": s.stage,
                "name": s.name,
                "manifest": str(s.manifest_path),
                "sha256": s.manifest_sha256,
            }
            for s in inputs.stages()
        ],
    }


def _result(
    directory: Path, manifest: dict[str, Any], status: ReportStatus, reason: str
) -> ReportResult:
    figures = tuple(
        directory / str(e["path"])
        for e in manifest.get("outputs", [])
        if str(e.get("path", "")).startswith("figures/")
    )
    return ReportResult(
        status,
        reason,
        directory,
        directory / INDEX_NAME,
        directory / SUMMARY_NAME,
        figures,
        tuple(str(m) for m in manifest.get("missing", [])),
    )


def write_report(
    config: AnalysisConfig,
    *,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> ReportResult:
    """Write the report of `config` (see the module docstring).

    Args:
        config: the analysis configuration.
        force: rewrite even when the report is up to date.
        progress: called with `ProgressEvent`s (stage "report", one item per figure, then
            one for the pages).

    Raises:
        FileNotFoundError: there are no datasets, or a file a manifest lists is gone.
        ValueError: a file differs from its manifest's SHA-256 (modified after its stage).
    """
    emit = progress or (lambda event: None)
    inputs = find_report_inputs(config)
    directory = report_directory(config)
    figures_dir = directory / FIGURES_DIR_NAME
    manifest_path = directory / MANIFEST_NAME
    key = _key(inputs)
    old = read_manifest(manifest_path)
    fresh, reason = manifest_up_to_date(
        old, kind=MANIFEST_KIND, key=key, directory=directory, outputs_field="outputs"
    )
    if force:
        reason = "forced"
    elif fresh and old is not None:
        emit(ProgressEvent(_STAGE, "run_finished", message="up to date"))
        return _result(directory, old, "skipped", reason)

    try:  # matplotlib and mplhep: only when a report is drawn
        from vbsad_batch.report.figures import figure_tasks  # noqa: PLC0415
    except ImportError as exc:
        raise RuntimeError(
            f"the report needs matplotlib and mplhep ({exc}): install the 'report' extra, "
            "pip install 'vbsad_batch[report]'"
        ) from exc

    start = time.monotonic()
    inputs.verify()  # before drawing: every file the report shows is the one its manifest names
    figures_dir.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)  # the manifest marks completion
    remove_stale_temp_files(directory)
    remove_stale_temp_files(figures_dir)
    for sentence in inputs.missing:
        logger.warning("report: %s", sentence)

    tasks = figure_tasks(inputs)
    total = len(tasks) + 1
    emit(ProgressEvent(_STAGE, "run_started", total_items=total))
    entries: list[FigureEntry] = []
    outputs: list[Path] = []
    for task in tasks:
        item_start = time.monotonic()
        emit(ProgressEvent(_STAGE, "item_started", item=task.file_name, total_items=total))
        dest = figures_dir / task.file_name
        write_bytes_atomic(dest, task.render())
        outputs.append(dest)
        entries.append(
            FigureEntry(
                f"{FIGURES_DIR_NAME}/{task.file_name}", task.section, task.title, task.caption
            )
        )
        emit(
            ProgressEvent(
                _STAGE,
                "item_finished",
                item=task.file_name,
                total_items=total,
                message=str(dest),
                seconds=time.monotonic() - item_start,
            )
        )

    emit(ProgressEvent(_STAGE, "item_started", item="pages", total_items=total))
    table_md = None
    if inputs.scan is not None:
        table_md = inputs.scan.file("table.md").read_text(encoding="utf-8")
    prov = runtime_provenance()
    content = ReportContent(
        title="vbsad_batch analysis report: " + config.path.stem,
        config_path=str(config.path),
        config_text=config.path.read_text(encoding="utf-8"),
        resolved_config=json.dumps(jsonable(config), indent=2, sort_keys=True),
        output_dir=str(config.output_dir),
        table_markdown=table_md,
        missing=inputs.missing,
        figures=tuple(entries),
        provenance=tuple(inputs.provenance_rows()),
        tool=f"{prov['tool']} {prov['tool_version']}",
        created_utc=str(prov["created_utc"]),
    )
    write_text_atomic(directory / INDEX_NAME, render_index_html(content))
    write_text_atomic(directory / SUMMARY_NAME, render_summary_md(content))
    outputs += [directory / INDEX_NAME, directory / SUMMARY_NAME]
    emit(ProgressEvent(_STAGE, "item_finished", item="pages", total_items=total))

    written = {p.relative_to(directory).as_posix() for p in outputs}
    if old is not None:  # figures of an earlier report that this one no longer has
        for entry in old.get("outputs", []):
            name = entry.get("path") if isinstance(entry, dict) else None
            if isinstance(name, str) and name not in written and name.startswith("figures/"):
                (directory / name).unlink(missing_ok=True)

    manifest = {
        "kind": MANIFEST_KIND,
        "key": key,
        "missing": list(inputs.missing),
        "outputs": [
            {
                "path": p.relative_to(directory).as_posix(),
                "size_bytes": p.stat().st_size,
                "sha256": sha256_file(p),
            }
            for p in outputs
        ],
        "provenance": prov,
        "seconds": round(time.monotonic() - start, 3),
    }
    write_manifest(manifest_path, manifest)
    emit(ProgressEvent(_STAGE, "run_finished", message=f"{len(tasks)} figure(s)"))
    return _result(directory, manifest, "written", reason)
