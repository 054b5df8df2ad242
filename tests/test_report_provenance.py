"""What users read carries the warnings: the report of a real (partial) pipeline on the REAL
SSWW samples shows each sample file's cross section with its source, and every warning the
stages recorded — a cross section that disagrees with the weights, the samples' stale <init>
XSECUP, a training stopped at its epoch cap — in index.html, summary.md and its manifest.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from conftest import SSWW_DIR

from vbsad_batch.cli import main
from vbsad_batch.config import AnalysisConfig, load_config
from vbsad_batch.models.training import train
from vbsad_batch.report.writer import ReportResult, write_report
from vbsad_batch.runtime.provenance import read_manifest
from vbsad_batch.weighting.datasets import build_datasets

pytestmark = pytest.mark.slow

SAMPLES = {  # name -> (component, file)
    "ssww_SM": ("sm", "ssww_SM.lhe.gz"),
    "ssww_cW_LIN": ("lin", "ssww_cW_LIN.lhe.gz"),
    "ssww_cW_QUAD": ("quad", "ssww_cW_QUAD.lhe.gz"),
}
WRONG_SM_XSEC_PB = 3.0e-3
"""The SM sample's weights say 2.64e-3 pb: this override must be flagged."""


def _config(base: Path) -> AnalysisConfig:
    lines = [
        'operators = ["cW"]',
        'training_operator = "cW"',
        f'output_dir = "{base / "out"}"',
        "[training]",
        "epochs = 3",
        "patience = 10",  # 3 epochs can only stop at the cap: not converged
        "batch_size = 256",
    ]
    for name, (component, file) in SAMPLES.items():
        lines += ["[[samples]]", f'name = "{name}"', f'component = "{component}"']
        if component != "sm":
            lines.append('operator = "cW"')
        else:
            lines.append(f"xsec_pb = {WRONG_SM_XSEC_PB}")
        lines.append(f'files = "{SSWW_DIR / file}"')
    path = base / "ssww.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[AnalysisConfig, ReportResult]:
    config = _config(tmp_path_factory.mktemp("provenance"))
    build_datasets(config)
    trained = train(config, kind="vae")
    assert not trained.converged
    return config, write_report(config)


def _numbered(summary: str) -> dict[int, str]:
    return {int(m[1]): m[2] for m in re.finditer(r"^(\d+)\. (.*)$", summary, re.MULTILINE)}


def test_summary_lists_every_warning_once_and_numbered(
    report: tuple[AnalysisConfig, ReportResult],
) -> None:
    config, result = report
    summary = result.summary_md.read_text(encoding="utf-8")
    status = summary.split("## Status", 1)[1].split("## Sensitivity table", 1)[0]
    warnings = _numbered(status)
    assert len(warnings) == len(set(warnings.values())) == len(result.warnings) == 5
    texts = list(warnings.values())
    # The override: used, and found to disagree with the SM weights.
    (override,) = [t for t in texts if "from the config's xsec_pb" in t]
    assert override.startswith("**cross section** ssww_SM: ")
    assert "disagrees with the mean event weight 0.00264003 pb of 2000 events" in override
    # The stale <init> XSECUP of each of the three files.
    stale = [t for t in texts if "XSECUP sum" in t and "MadGraph banner" in t]
    assert len(stale) == 3
    # The training that stopped at its cap.
    (training,) = [t for t in texts if t.startswith("**model** vae_latent3: ")]
    assert f"of at most {config.training.epochs}" in training
    assert "did not converge" in training
    manifest = read_manifest(result.directory / "manifest.json")
    assert manifest is not None
    assert manifest["warnings"] == list(result.warnings)


def test_sample_table_names_the_source_and_points_to_the_warnings(
    report: tuple[AnalysisConfig, ReportResult],
) -> None:
    _, result = report
    summary = result.summary_md.read_text(encoding="utf-8")
    warnings = _numbered(summary.split("## Sensitivity table", 1)[0])
    table = summary.split("### Samples and their normalisation", 1)[1].split("###", 1)[0]
    rows = {
        cells[0]: cells
        for line in table.splitlines()
        if line.startswith("| ssww_")
        for cells in [[c.strip() for c in line.strip("|").split(" | ")]]
    }
    assert set(rows) == set(SAMPLES)
    sm = rows["ssww_SM"]
    assert sm[1] == "sm"
    assert sm[3] == f"`{(SSWW_DIR / 'ssww_SM.lhe.gz').resolve()}`"
    assert sm[4] == "2,000"
    assert float(sm[5]) == WRONG_SM_XSEC_PB
    assert sm[7] == "the config's xsec_pb"
    lin = rows["ssww_cW_LIN"]
    assert (lin[2], lin[7], float(lin[5])) == ("cW", "the MadGraph banner", 1.18444e-4)
    # The check column points at the numbered warnings of that file and of no other.
    for name, cells in rows.items():
        numbers = [int(n) for n in re.findall(r"\[(\d+)\]", cells[9])]
        assert numbers, name
        assert all(f"** {name}: " in warnings[n] for n in numbers), (name, cells[9])
    assert len(re.findall(r"\[(\d+)\]", sm[9])) == 2  # stale XSECUP and the override


def test_index_html_shows_the_warnings_and_the_sample_table(
    report: tuple[AnalysisConfig, ReportResult],
) -> None:
    _, result = report
    page = result.index_html.read_text(encoding="utf-8")
    status = page.split('<h2 id="status">', 1)[1].split('<h2 id="table">', 1)[0]
    assert f"<strong>{len(result.warnings)} warning(s)</strong>" in status
    for i, message in enumerate(result.warnings, start=1):
        assert f'id="warning-{i}"' in status
        assert html.escape(message) in status
    samples = page.split('<h3 id="samples">', 1)[1].split("</table>", 1)[0]
    assert samples.count("<tr><td>ssww_") == len(SAMPLES)
    assert "the config&#x27;s xsec_pb" in samples


def test_report_cli_says_how_many_warnings(
    report: tuple[AnalysisConfig, ReportResult], capsys: pytest.CaptureFixture[str]
) -> None:
    config, result = report
    assert main(["report", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert f"{len(result.warnings)} warning(s) in the report's Status section" in out
