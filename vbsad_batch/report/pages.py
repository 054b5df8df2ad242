"""The report's text: `index.html` (self-contained: inline CSS, no script, no external URL,
figures as relative links) and `summary.md`, from a `ReportContent`.

The sensitivity table comes from the scan's `table.md` (the text `vbsad scan` prints): in
summary.md it is included as is (headings moved one level down); in index.html its headings,
paragraphs and pipe tables are turned into HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from vbsad_batch.report.inputs import ProvenanceRow, ReportWarning, SampleRow

__all__ = ["FigureEntry", "ReportContent", "render_index_html", "render_summary_md"]

SECTION_TITLES: dict[str, str] = {
    "sensitivity": "Sensitivity: sigma(c) per operator",
    "observables": "Observables: SM, LIN and QUAD",
    "reconstruction": "Model input versus reconstruction",
    "scores": "Anomaly scores: SM versus EFT",
    "score_vs_kinematics": "Score versus a kinematic variable",
    "training": "Training curves",
}
"""Figure sections, in page order."""

GRID_SECTIONS = frozenset({"observables", "training"})
"""Sections of small figures, laid out side by side."""

_CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 0 auto;
  max-width: 1200px; padding: 1em 2em; color: #1a1a1a; background: #fff; line-height: 1.4; }
h1 { border-bottom: 2px solid #3f90da; padding-bottom: 0.2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
h3 { margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #eef3f8; }
tr:nth-child(even) td { background: #fafafa; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, monospace; font-size: 0.85em; }
pre { background: #f5f5f5; border: 1px solid #ddd; padding: 0.8em; overflow-x: auto; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #444; max-width: 900px; }
.missing { background: #fff4e5; border-left: 4px solid #e76300; padding: 0.5em 1em; }
.warn { background: #fdecea; border-left: 4px solid #bd1f01; padding: 0.5em 1em; }
.ok { background: #edf7ed; border-left: 4px solid #2e7d32; padding: 0.5em 1em; }
.wide { overflow-x: auto; }
td.hash { font-family: "DejaVu Sans Mono", monospace; font-size: 0.8em; word-break: break-all; }
nav a { margin-right: 1em; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 1em; }
.grid figure { margin: 0.5em 0; }
"""


@dataclass(frozen=True, slots=True)
class FigureEntry:
    """A figure as the report shows it.

    Attributes:
        path: relative to the report directory, e.g. "figures/sigma_cW.png".
        section: a key of `SECTION_TITLES`.
        title: short title.
        caption: what it shows.
    """

    path: str
    section: str
    title: str
    caption: str


@dataclass(frozen=True)
class ReportContent:
    """Everything the two text files show.

    Attributes:
        title: page title.
        config_path: the config file.
        config_text: its TOML text.
        resolved_config: the validated config as JSON text (defaults filled in, paths resolved).
        output_dir: the config's output directory.
        table_markdown: the scan's table.md, or None without a scan.
        missing: sentences naming what is missing and how to make it.
        figures: the figures, in report order.
        provenance: every input file with its SHA-256.
        samples: every sample file with its cross section and where it came from.
        warnings: every warning the stages recorded.
        tool: the tool and version that made the report.
        created_utc: when.
    """

    title: str
    config_path: str
    config_text: str
    resolved_config: str
    output_dir: str
    table_markdown: str | None
    missing: tuple[str, ...]
    figures: tuple[FigureEntry, ...]
    provenance: tuple[ProvenanceRow, ...]
    samples: tuple[SampleRow, ...]
    warnings: tuple[ReportWarning, ...]
    tool: str
    created_utc: str


# --- markdown of table.md -> HTML -----------------------------------------------------------------

_CODE = re.compile(r"`([^`]+)`")


def _inline(text: str) -> str:
    """Escaped text with `code` spans."""
    parts = _CODE.split(text)
    out = []
    for i, part in enumerate(parts):
        escaped = html.escape(part)
        out.append(f"<code>{escaped}</code>" if i % 2 else escaped)
    return "".join(out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_to_html(text: str, *, heading_offset: int = 1) -> str:
    """HTML of the markdown subset of table.md: ATX headings, paragraphs and pipe tables
    (header row, separator row, body rows)."""
    blocks: list[str] = []
    lines = text.splitlines()
    i = 0
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    while i < len(lines):
        line = lines[i].rstrip()
        heading = re.match(r"^(#{1,6})\s+(.*)$", line)
        if heading:
            flush()
            level = min(6, len(heading.group(1)) + heading_offset)
            blocks.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            i += 1
        elif line.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            body = [r for r in rows[1:] if not all(re.fullmatch(r":?-+:?", c) for c in r)]
            head = "".join(f"<th>{_inline(c)}</th>" for c in rows[0])
            trs = "".join(
                "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body
            )
            blocks.append(
                f'<div class="wide"><table><thead><tr>{head}</tr></thead>'
                f"<tbody>{trs}</tbody></table></div>"
            )
        elif not line.strip():
            flush()
            i += 1
        else:
            paragraph.append(line.strip())
            i += 1
    flush()
    return "\n".join(blocks)


# --- index.html -----------------------------------------------------------------------------------


def _sections(figures: Sequence[FigureEntry]) -> list[tuple[str, list[FigureEntry]]]:
    known = [(key, [f for f in figures if f.section == key]) for key in SECTION_TITLES]
    return [(key, entries) for key, entries in known if entries]


def _size(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


_SAMPLE_HEADER = (
    "sample",
    "component",
    "operators",
    "file",
    "events",
    "xsec [pb]",
    "+- [pb]",
    "xsec from",
    "sum of weights",
    "check",
)


def _sample_cells(row: SampleRow, numbers: dict[str, int]) -> tuple[str, ...]:
    """A sample row's cells; "check" names the warnings (by number) or says "ok"."""
    refs = " ".join(f"[{numbers[w]}]" for w in row.warnings if w in numbers)
    return (
        row.sample,
        row.component,
        row.operators,
        row.path,
        f"{row.n_events:,}",
        f"{row.xsec_pb:.6g}",
        "" if row.xsec_error_pb is None else f"{row.xsec_error_pb:.2g}",
        row.xsec_source,
        f"{row.sum_weights:.6g}",
        f"see warning {refs}" if refs else "ok",
    )


def _warning_numbers(content: ReportContent) -> dict[str, int]:
    return {w.message: i for i, w in enumerate(content.warnings, start=1)}


def _html_warnings(content: ReportContent) -> list[str]:
    e = html.escape
    if not content.warnings:
        return ['<div class="ok"><p>No stage recorded a warning.</p></div>']
    items = "".join(
        f'<li id="warning-{i}">[{i}] <strong>{e(w.stage)}</strong> {e(w.name)}: {e(w.message)}'
        + "</li>"
        for i, w in enumerate(content.warnings, start=1)
    )
    return [
        f'<div class="warn"><p><strong>{len(content.warnings)} warning(s)</strong>: read them '
        f"before trusting the numbers below.</p><ol>{items}</ol></div>"
    ]


def _html_samples(content: ReportContent) -> list[str]:
    e = html.escape
    numbers = _warning_numbers(content)
    head = "".join(f"<th>{e(h)}</th>" for h in _SAMPLE_HEADER)
    parts = [
        '<h3 id="samples">Samples and their normalisation</h3>',
        "<p>Each sample file's cross section, where it came from (precedence: the config's "
        "xsec_pb, the MadGraph banner, the &lt;init&gt; XSECUP sum), and whether it agrees with "
        "the file's own weights (see Status for the warnings).</p>",
        f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>',
    ]
    for row in content.samples:
        cells = _sample_cells(row, numbers)
        parts.append(
            "<tr>"
            + "".join(
                f"<td><code>{e(c)}</code></td>" if i == 3 else f"<td>{e(c)}</td>"
                for i, c in enumerate(cells)
            )
            + "</tr>"
        )
    parts.append("</tbody></table></div>")
    return parts


def render_index_html(content: ReportContent) -> str:
    """The HTML page (see the module docstring)."""
    e = html.escape
    sections = _sections(content.figures)
    nav = ['<a href="#status">Status</a>', '<a href="#table">Sensitivity table</a>']
    nav += [f'<a href="#{key}">{e(SECTION_TITLES[key])}</a>' for key, _ in sections]
    nav += ['<a href="#configuration">Configuration</a>', '<a href="#provenance">Provenance</a>']
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(content.title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{e(content.title)}</h1>",
        f"<p>Config <code>{e(content.config_path)}</code>; outputs in "
        f"<code>{e(content.output_dir)}</code>. Made by {e(content.tool)} at "
        f"{e(content.created_utc)} (UTC).</p>",
        f"<nav>{' '.join(nav)}</nav>",
        '<h2 id="status">Status</h2>',
    ]
    if content.missing:
        items = "".join(f"<li>{_inline(m)}</li>" for m in content.missing)
        parts.append(
            '<div class="missing"><p><strong>Missing inputs</strong>: this report shows only '
            f"what exists.</p><ul>{items}</ul></div>"
        )
    else:
        parts.append('<div class="ok"><p>Every stage output is present.</p></div>')
    parts += _html_warnings(content)
    parts.append('<h2 id="table">Sensitivity table</h2>')
    if content.table_markdown is None:
        parts.append(
            '<div class="missing"><p>No sensitivity scan: run <code>vbsad scan</code> '
            "(see Status).</p></div>"
        )
    else:
        parts.append(markdown_to_html(content.table_markdown, heading_offset=2))
    for key, entries in sections:
        parts.append(f'<h2 id="{key}">{e(SECTION_TITLES[key])}</h2>')
        parts.append('<div class="grid">' if key in GRID_SECTIONS else "<div>")
        for fig in entries:
            parts.append(
                f'<figure><img src="{e(fig.path)}" alt="{e(fig.title)}" loading="lazy">'
                f"<figcaption><strong>{e(fig.title)}</strong>. {e(fig.caption)} "
                f'(<a href="{e(fig.path)}">{e(fig.path)}</a>)</figcaption></figure>'
            )
        parts.append("</div>")
    parts += [
        '<h2 id="configuration">Configuration</h2>',
        f"<h3>Config file <code>{e(content.config_path)}</code></h3>",
        f"<pre>{e(content.config_text)}</pre>",
        "<h3>Resolved configuration (defaults filled in, paths resolved)</h3>",
        f"<pre>{e(content.resolved_config)}</pre>",
        '<h2 id="provenance">Provenance</h2>',
        *_html_samples(content),
        "<h3>Files</h3>",
        "<p>Every file this report rests on, with the SHA-256 recorded by the stage that "
        "wrote it (checked against the file for each file the report reads).</p>",
        '<div class="wide"><table><thead><tr><th>stage</th><th>name</th><th>file</th>'
        "<th>bytes</th><th>SHA-256</th><th>made by</th></tr></thead><tbody>",
    ]
    for row in content.provenance:
        parts.append(
            f"<tr><td>{e(row.stage)}</td><td>{e(row.name)}</td><td><code>{e(row.path)}</code>"
            f'</td><td>{_size(row.size_bytes)}</td><td class="hash">{e(row.sha256)}</td>'
            f"<td>{e(row.made_by)}</td></tr>"
        )
    parts += ["</tbody></table></div>", "</body>", "</html>", ""]
    return "\n".join(parts)


# --- summary.md -----------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_summary_md(content: ReportContent) -> str:
    """The markdown summary: status, sensitivity table, figures, configuration, provenance."""
    lines = [
        f"# {content.title}",
        "",
        f"Config `{content.config_path}`; outputs in `{content.output_dir}`. Made by "
        f"{content.tool} at {content.created_utc} (UTC). Figures and details: `index.html`.",
        "",
        "## Status",
        "",
    ]
    if content.missing:
        lines.append("Missing inputs (this report shows only what exists):")
        lines.append("")
        lines += [f"- {m}" for m in content.missing]
    else:
        lines.append("Every stage output is present.")
    lines.append("")
    if content.warnings:
        lines.append(f"{len(content.warnings)} warning(s), to read before trusting the numbers:")
        lines.append("")
        lines += [
            f"{i}. **{w.stage}** {_md_cell(w.name)}: {_md_cell(w.message)}"
            for i, w in enumerate(content.warnings, start=1)
        ]
    else:
        lines.append("No stage recorded a warning.")
    lines += ["", "## Sensitivity table", ""]
    if content.table_markdown is None:
        lines.append("No sensitivity scan: run `vbsad scan` (see Status).")
    else:
        lines += [  # headings one level below this section
            "##" + line if line.startswith("#") else line
            for line in content.table_markdown.strip().splitlines()
        ]
    lines += ["", "## Figures", ""]
    for key, entries in _sections(content.figures):
        lines.append(
            f"- {SECTION_TITLES[key]}: "
            + ", ".join(f"[{_md_cell(f.title)}]({f.path})" for f in entries)
        )
    lines += [
        "",
        "## Configuration",
        "",
        f"Config file `{content.config_path}`:",
        "",
        "```toml",
        content.config_text.rstrip("\n"),
        "```",
        "",
        "Resolved (defaults filled in, paths resolved):",
        "",
        "```json",
        content.resolved_config.rstrip("\n"),
        "```",
        "",
        "## Provenance",
        "",
        "### Samples and their normalisation",
        "",
        "| " + " | ".join(_SAMPLE_HEADER) + " |",
        "|" + "---|" * len(_SAMPLE_HEADER),
    ]
    numbers = _warning_numbers(content)
    for sample in content.samples:
        cells = [_md_cell(c) for c in _sample_cells(sample, numbers)]
        cells[3] = f"`{cells[3]}`"  # the file
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "### Files",
        "",
        "| stage | name | file | bytes | SHA-256 | made by |",
        "|---|---|---|---|---|---|",
    ]
    for row in content.provenance:
        lines.append(
            f"| {_md_cell(row.stage)} | {_md_cell(row.name)} | `{_md_cell(row.path)}` | "
            f"{_size(row.size_bytes)} | `{row.sha256}` | {_md_cell(row.made_by)} |"
        )
    lines.append("")
    return "\n".join(lines)
