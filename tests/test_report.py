"""The report of a real pipeline: demo LHE -> datasets -> VAE and VAE+NN (real TensorFlow
training) -> scores -> scan -> report, built once per module with the functions the CLI uses.

Checks the figures (valid, non-blank PNGs), that index.html references only files that exist
and no external URL, that summary.md has the table and the SHA-256 of the real input files,
the up-to-date skip, the report of a partial pipeline, and that Debian's chromium renders the
page headless.
"""

from __future__ import annotations

import html.parser
import shutil
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from vbsad_batch.config import AnalysisConfig, load_config
from vbsad_batch.demo.lhe_writer import generate_demo
from vbsad_batch.models.paths import model_directory
from vbsad_batch.models.scoring import score_datasets
from vbsad_batch.models.training import train
from vbsad_batch.report.writer import ReportResult, write_report
from vbsad_batch.runtime.mpi import SingleProcess
from vbsad_batch.runtime.progress import ProgressEvent
from vbsad_batch.runtime.provenance import read_manifest, sha256_file
from vbsad_batch.scan.driver import run_scan
from vbsad_batch.weighting.datasets import build_datasets

pytestmark = pytest.mark.slow

OPERATORS = ("cW", "cqq3")
MODELS = ("vae_latent3", "vae_nn_latent3_cW")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _config_text(output_dir: str) -> str:
    return f"""
operators = {list(OPERATORS)!r}
training_operator = "cW"
output_dir = "{output_dir}"

[split]
seed = 1

[training]
epochs = 2
batch_size = 256
learning_rate = 0.003

[scan]
bootstrap_replicas = 2

[[reweighted]]
name = "ssww_demo"
files = "demo/ssww_demo.lhe.gz"
sm_weight = "sm"
plus = "{{op}}_p1"
minus = "{{op}}_m1"
k = 1.0
""".replace("'", '"')


def _write_config(directory: Path, output_dir: str) -> AnalysisConfig:
    path = directory / f"{output_dir}.toml"
    path.write_text(_config_text(output_dir), encoding="utf-8")
    return load_config(path)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> AnalysisConfig:
    """A complete real pipeline of the demo sample (4000 events, 2 operators)."""
    base = tmp_path_factory.mktemp("report")
    generate_demo(base / "demo", n_events=4000, seed=3, eft_samples=False)
    config = _write_config(base, "out")
    build_datasets(config)
    for kind in ("vae", "vae_nn"):
        train(config, kind=kind)
        score_datasets(config, model_directory(config, kind))
    assert run_scan(config, comm=SingleProcess()) is not None
    return config


@pytest.fixture(scope="module")
def report(pipeline: AnalysisConfig) -> ReportResult:
    events: list[ProgressEvent] = []
    result = write_report(pipeline, progress=events.append)
    kinds = [e.kind for e in events]
    assert kinds[0] == "run_started"
    assert kinds[-1] == "run_finished"
    finished = [e.item for e in events if e.kind == "item_finished"]
    assert len(finished) == events[0].total_items == len(result.figures) + 1
    return result


def _expected_figures(config: AnalysisConfig) -> set[str]:
    names = {f"observable_{f}.png" for f in config.features}
    names |= {f"sigma_{op}.png" for op in OPERATORS}
    for model in MODELS:
        names |= {
            f"reconstruction_{model}.png",
            f"scores_{model}.png",
            f"score_vs_mjj_{model}.png",
            f"training_{model}.png",
        }
    return names


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _assert_not_blank(path: Path) -> None:
    import matplotlib.image  # noqa: PLC0415

    pixels = np.asarray(matplotlib.image.imread(path))[::3, ::3, :3]
    # A drawn figure has dark (axes, text) and light pixels and many distinct colours.
    assert pixels.std() > 0.05, f"{path} looks blank"
    codes = (pixels * 255).astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.uint32)
    assert len(np.unique(codes)) > 20, f"{path} looks blank"


class _References(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.refs.append(value)


def test_every_figure_is_a_png(pipeline: AnalysisConfig, report: ReportResult) -> None:
    assert report.status == "written"
    assert report.missing == ()
    figures_dir = report.directory / "figures"
    on_disk = {p.name for p in figures_dir.iterdir()}
    assert on_disk == _expected_figures(pipeline)
    assert {p.name for p in report.figures} == on_disk
    for path in sorted(figures_dir.iterdir()):
        width, height = _png_size(path)
        assert 400 <= width <= 3000, (path, width)
        assert 300 <= height <= 3000, (path, height)
        assert path.stat().st_size > 10_000, path
        _assert_not_blank(path)


def test_index_html_is_self_contained(pipeline: AnalysisConfig, report: ReportResult) -> None:
    text = report.index_html.read_text(encoding="utf-8")
    parser = _References()
    parser.feed(text)
    parser.close()
    assert "script" not in parser.tags
    assert "link" not in parser.tags  # the CSS is inline
    assert "http://" not in text
    assert "https://" not in text
    local = [ref for ref in parser.refs if not ref.startswith("#")]
    for ref in local:
        assert ":" not in ref, f"not a relative file link: {ref}"
        assert not ref.startswith("/"), f"not a relative file link: {ref}"
        assert (report.directory / ref).is_file(), f"index.html links to a missing file: {ref}"
    anchors = {ref[1:] for ref in parser.refs if ref.startswith("#")}
    for anchor in anchors:
        assert f'id="{anchor}"' in text, anchor
    images = {ref for ref in local if ref.endswith(".png")}
    assert images == {f"figures/{name}" for name in _expected_figures(pipeline)}
    # The table, the configuration and the provenance are there.
    for op in OPERATORS:
        assert f"<th>{op}</th>" in text
    assert "Every stage output is present" in text
    assert "training_operator = &quot;cW&quot;" in text
    lhe = pipeline.reweighted[0].files[0]
    assert sha256_file(lhe) in text


def test_summary_md_has_table_config_and_checksums(
    pipeline: AnalysisConfig, report: ReportResult
) -> None:
    text = report.summary_md.read_text(encoding="utf-8")
    assert f"| model | {' | '.join(OPERATORS)} |" in text
    assert "| `vae_latent3` (mse) |" in text
    assert "| `vae_nn_latent3_cW` (score) |" in text
    assert 'training_operator = "cW"' in text
    files_table = text.split("### Files", 1)[1]  # the provenance table of every file
    out = pipeline.output_dir
    files = [pipeline.reweighted[0].files[0]]
    files += sorted((out / "datasets").glob("*.parquet"))
    files += sorted((out / "scores").glob("*/*.parquet"))
    files += [*sorted((out / "scan").glob("table.*")), out / "scan" / "sigma_curves.parquet"]
    files += [out / "models" / m / "model.keras" for m in MODELS]
    assert len(files) > 20
    for path in files:
        line = next((ln for ln in files_table.splitlines() if f"`{path}`" in ln), None)
        assert line is not None, f"{path} not in the provenance table"
        assert f"`{sha256_file(path)}`" in line, f"wrong SHA-256 for {path}"
    for path in report.figures:
        assert f"(figures/{path.name})" in text


def test_rerun_is_skipped_and_force_rewrites(
    pipeline: AnalysisConfig, report: ReportResult
) -> None:
    manifest = read_manifest(report.directory / "manifest.json")
    assert manifest is not None
    mtime = report.index_html.stat().st_mtime_ns
    again = write_report(pipeline)
    assert (again.status, again.reason) == ("skipped", "up to date")
    assert {p.name for p in again.figures} == {p.name for p in report.figures}
    assert report.index_html.stat().st_mtime_ns == mtime

    time.sleep(0.01)
    forced = write_report(pipeline, force=True)
    assert (forced.status, forced.reason) == ("written", "forced")
    assert report.index_html.stat().st_mtime_ns != mtime


def _copy_pipeline(pipeline: AnalysisConfig, tmp_path: Path, name: str) -> AnalysisConfig:
    """The pipeline's outputs under a new config (same samples), for destructive tests."""
    (tmp_path / "demo").symlink_to(pipeline.reweighted[0].files[0].parent)
    config = _write_config(tmp_path, name)
    shutil.copytree(pipeline.output_dir, config.output_dir, ignore=shutil.ignore_patterns("report"))
    return config


def test_partial_pipeline_says_what_is_missing(pipeline: AnalysisConfig, tmp_path: Path) -> None:
    config = _copy_pipeline(pipeline, tmp_path, "partial")
    out = config.output_dir
    shutil.rmtree(out / "scan")
    shutil.rmtree(out / "models" / "vae_nn_latent3_cW")
    shutil.rmtree(out / "scores" / "vae_nn_latent3_cW")
    result = write_report(config)
    assert result.status == "written"
    missing = " ".join(result.missing)
    assert "vbsad scan" in missing
    assert "vae_nn_latent3_cW" in missing
    assert "--model vae_nn" in missing
    names = {p.name for p in (result.directory / "figures").iterdir()}
    assert names == {p.name for p in result.figures}
    assert "training_vae_latent3.png" in names
    assert "scores_vae_latent3.png" in names
    assert not any(n.startswith("sigma_") or "vae_nn" in n for n in names)
    page = result.index_html.read_text(encoding="utf-8")
    assert "Missing inputs" in page
    assert "No sensitivity scan" in page
    assert "No sensitivity scan" in result.summary_md.read_text(encoding="utf-8")

    # Once the scan is there, the report is rebuilt with it.
    assert run_scan(config, comm=SingleProcess()) is not None
    complete = write_report(config)
    assert complete.status == "written"
    assert all("vbsad scan" not in m for m in complete.missing)
    assert {f"sigma_{op}.png" for op in OPERATORS} <= {p.name for p in complete.figures}


def test_modified_input_is_an_error_naming_the_file(
    pipeline: AnalysisConfig, tmp_path: Path
) -> None:
    config = _copy_pipeline(pipeline, tmp_path, "modified")
    score_file = config.output_dir / "scores" / "vae_latent3" / "sm_test.parquet"
    score_file.write_bytes(score_file.read_bytes() + b"\0")
    with pytest.raises(ValueError, match=r"sm_test\.parquet: SHA-256 differs"):
        write_report(config)
    assert not (config.output_dir / "report" / "manifest.json").exists()


def test_no_datasets_is_a_clear_error(tmp_path: Path, pipeline: AnalysisConfig) -> None:
    (tmp_path / "demo").symlink_to(pipeline.reweighted[0].files[0].parent)
    config = _write_config(tmp_path, "empty")
    with pytest.raises(FileNotFoundError, match=r"run `vbsad datasets .*empty\.toml` first"):
        write_report(config)


def test_chromium_renders_the_page(report: ReportResult, tmp_path: Path) -> None:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail(
            "Debian's chromium is needed to check that the report renders: install it with "
            "`apt-get install -y chromium` (as root; `make setup` does it)"
        )
    screenshot = tmp_path / "page.png"
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1280,2400",
            f"--screenshot={screenshot}",
            report.index_html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert screenshot.is_file(), proc.stderr[-2000:]
    width, height = _png_size(screenshot)
    assert (width, height) == (1280, 2400)
    _assert_not_blank(screenshot)
