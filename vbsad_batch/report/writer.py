"""The analysis report: figures, index.html and summary.md from the outputs of every stage.

`write_report(config)` reads the manifests of `vbsad datasets`, `vbsad train`, `vbsad score`
and `vbsad scan` under `config.output_dir` (see `vbsad_batch.report.inputs`) and writes into
`<output_dir>/report/`:

- `figures/*.png`: the figures of `vbsad_batch.report.figures` that the present outputs allow
  (drawn by several processes at once when there are cores for them:
  `vbsad_batch.report.figure_processes`);
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
listed with the command that makes it, and its figures are left out. What is there must be
current for the config and unmodified (the stage contract, `vbsad_batch.runtime.stage`):
otherwise one error names every stale output with the command that remakes it, and nothing
is written. Every file is written atomically. A re-run with the same key whose outputs are
all still there does nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from vbsad_batch.config import AnalysisConfig
from vbsad_batch.errors import StaleInputError
from vbsad_batch.report.inputs import ReportInputs, find_report_inputs
from vbsad_batch.report.pages import (
    FigureEntry,
    ReportContent,
    render_index_html,
    render_summary_md,
)
from vbsad_batch.runtime.progress import ProgressCallback, ProgressEvent
from vbsad_batch.runtime.provenance import jsonable, runtime_provenance, sha256_file, tool_version
from vbsad_batch.runtime.stage import StageOutputs, StageResult, StageUnit, command

__all__ = [
    "REPORT_DIR_NAME",
    "ReportResult",
    "report_directory",
    "report_freshness",
    "report_unit",
    "write_report",
]

logger = logging.getLogger(__name__)

REPORT_DIR_NAME = "report"
FIGURES_DIR_NAME = "figures"
REPORT_FORMAT_VERSION = 2
"""Version of the report layout; bump when the figures or pages change."""

MANIFEST_KIND = "vbsad_batch.report"
INDEX_NAME = "index.html"
SUMMARY_NAME = "summary.md"
_STAGE = "report"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportResult(StageResult):
    """What `write_report` did (see `StageResult`).

    Attributes:
        index_html: its index.html.
        summary_md: its summary.md.
        figures: the figure files.
        missing: what the report lacks (sentences with the command that makes it).
        warnings: the warnings of the stages that the report shows.
    """

    index_html: Path
    summary_md: Path
    figures: tuple[Path, ...]
    missing: tuple[str, ...]
    warnings: tuple[str, ...]


def report_unit(config: AnalysisConfig) -> StageUnit:
    """The report of `config` as a unit of the stage contract."""
    return StageUnit(
        stage=_STAGE,
        name="report",
        kind=MANIFEST_KIND,
        directory=report_directory(config),
        remake=command("report", config.path),
        temp_dirs=(FIGURES_DIR_NAME,),
    )


def report_freshness(config: AnalysisConfig) -> tuple[bool, str]:
    """Whether the report of `config` is up to date (its inputs current, the report made
    from them), and if not, why."""
    try:
        inputs = find_report_inputs(config)
        inputs.verify()
    except (FileNotFoundError, StaleInputError) as exc:
        return False, f"its inputs are not ready ({exc})"
    freshness = report_unit(config).check(_key(inputs))
    return freshness.up_to_date, freshness.reason


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


def _write_pages(inputs: ReportInputs, out: StageOutputs, processes: int | None) -> None:
    """Draw the figures (with up to `processes` processes, see `rendered_figures`) and write
    index.html and summary.md."""
    try:  # matplotlib and mplhep: only when a report is drawn
        from vbsad_batch.report.figure_processes import rendered_figures  # noqa: PLC0415
        from vbsad_batch.report.figures import figure_tasks  # noqa: PLC0415
    except ImportError as exc:
        raise RuntimeError(
            f"the report needs matplotlib and mplhep ({exc}): install the 'report' extra, "
            "pip install 'vbsad_batch[report]'"
        ) from exc
    config = inputs.config
    for sentence in inputs.missing:
        logger.warning("report: %s", sentence)
    warnings = inputs.warnings()
    if warnings:
        logger.warning("report: shows %d warning(s) of the stages", len(warnings))
    tasks = figure_tasks(inputs)
    total = len(tasks) + 1
    out.emit(ProgressEvent(_STAGE, "run_started", total_items=total))
    entries: list[FigureEntry] = []
    for task, png, seconds in rendered_figures(config, tasks, processes=processes):
        out.emit(ProgressEvent(_STAGE, "item_started", item=task.file_name, total_items=total))
        name = f"{FIGURES_DIR_NAME}/{task.file_name}"
        dest = out.write_bytes(name, png)
        entries.append(FigureEntry(name, task.section, task.title, task.caption))
        out.emit(
            ProgressEvent(
                _STAGE,
                "item_finished",
                item=task.file_name,
                total_items=total,
                message=str(dest),
                seconds=seconds,
            )
        )

    out.emit(ProgressEvent(_STAGE, "item_started", item="pages", total_items=total))
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
        samples=tuple(inputs.samples()),
        warnings=tuple(inputs.warnings()),
        tool=f"{prov['tool']} {prov['tool_version']}",
        created_utc=str(prov["created_utc"]),
    )
    out.write_text(INDEX_NAME, render_index_html(content))
    out.write_text(SUMMARY_NAME, render_summary_md(content))
    out.emit(ProgressEvent(_STAGE, "item_finished", item="pages", total_items=total))
    out.manifest["missing"] = list(inputs.missing)
    out.manifest["warnings"] = [w.message for w in warnings]
    out.summary = f"{len(tasks)} figure(s)"


def write_report(
    config: AnalysisConfig,
    *,
    force: bool = False,
    progress: ProgressCallback | None = None,
    processes: int | None = None,
) -> ReportResult:
    """Write the report of `config` (see the module docstring), through the stage contract.

    Args:
        config: the analysis configuration.
        force: rewrite even when the report is up to date.
        progress: called with `ProgressEvent`s (stage "report", one item per figure, then
            one for the pages).
        processes: processes that may draw the figures at once, this one included (None: one
            per usable core; see `vbsad_batch.report.figure_processes`). The figures are the
            same whatever their number.

    Raises:
        FileNotFoundError: there are no datasets.
        StaleInputError: a stage output is stale for the config or was modified after its
            stage (all of them named, each with the command that remakes it).
    """
    inputs = find_report_inputs(config)
    inputs.verify()  # every file the report shows is current and the one its manifest names
    unit = report_unit(config)
    ran = unit.run(
        _key(inputs),
        lambda out, _: _write_pages(inputs, out, processes),
        force=force,
        progress=progress,
    )
    figures = tuple(path for path in ran.outputs if path.parent.name == FIGURES_DIR_NAME)
    missing = tuple(str(m) for m in ran.manifest.get("missing", []))
    warnings = tuple(str(w) for w in ran.manifest.get("warnings", []))
    return ReportResult(
        **ran.fields(f"{len(figures)} figure(s)"),
        index_html=unit.directory / INDEX_NAME,
        summary_md=unit.directory / SUMMARY_NAME,
        figures=figures,
        missing=missing,
        warnings=warnings,
    )
