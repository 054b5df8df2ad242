"""`vbsad run` end to end, as a user runs it: the real command in a fresh directory, real
TensorFlow training, the embedded demo (--quick) and the real SSWW samples."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import SSWW_DIR, run_vbsad

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STAGES = (
    "demo",
    "datasets",
    "train vae",
    "train vae_nn",
    "score vae",
    "score vae_nn",
    "scan",
    "report",
)
# The demo's easiest operator: four-quark, destructive interference growing with m_jj.
EASY_OPERATOR = "cqq3"


def _vbsad(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = run_vbsad(*args, cwd=cwd, env=env, timeout=900)
    assert proc.returncode == 0, f"vbsad {' '.join(args)} failed:\n{proc.stderr[-4000:]}"
    return proc


def _stage_lines(stderr: str) -> dict[str, str]:
    """stage -> status from the log lines `<stage> <status> <seconds> s <detail>`."""
    found = {}
    for stage in STAGES:
        m = re.search(rf"cli: {re.escape(stage)}\s+(written|skipped)\s+[0-9.]+ s", stderr)
        if m:
            found[stage] = m.group(1)
    return found


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


@pytest.fixture(scope="module")
def quick_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    cwd = tmp_path_factory.mktemp("fresh")
    return cwd, _vbsad(cwd, "run", "--quick")


def test_quick_demo_runs_every_stage(
    quick_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    cwd, proc = quick_run
    out = cwd / "vbsad-output" / "demo-quick"
    assert _stage_lines(proc.stderr) == dict.fromkeys(STAGES, "written")
    # demo: the SM sample, LIN and QUAD for seven operators, the config, a manifest
    lhe = sorted(p.name for p in (out / "data").glob("*.lhe.gz"))
    assert len(lhe) == 15
    assert "ssww_demo_cqq3_LIN.lhe.gz" in lhe
    assert (out / "demo.toml").is_file()
    assert json.loads((out / "data" / "manifest.json").read_text())["kind"] == "vbsad_batch.demo"
    # datasets, models, scores
    assert json.loads((out / "datasets" / "manifest.json").read_text())
    for model in ("vae_latent3", "vae_nn_latent3_cW"):
        model_dir = out / "models" / model
        assert (model_dir / "model.keras").stat().st_size > 0
        history = (model_dir / "history.csv").read_text().splitlines()
        assert len(history) >= 2  # a header and at least one epoch
        scores = pq.read_table(out / "scores" / model / "sm_test.parquet")
        assert scores.num_rows > 100
        for column in ("mse", "kld"):
            values = scores.column(column).to_pylist()
            assert all(math.isfinite(v) for v in values)
    # scan: a finite entry for the operator the demo makes easy, in the JSON and the markdown
    table = json.loads((out / "scan" / "table.json").read_text())
    assert {r["model"] for r in table["rows"]} == {"vae_latent3", "vae_nn_latent3_cW"}
    for row in table["rows"]:
        proxy = row["operators"][EASY_OPERATOR]["proxy"]
        assert _finite(proxy["c_plus"]) or _finite(proxy["c_minus"])
    assert "| model |" in (out / "scan" / "table.md").read_text()
    # the report: HTML, summary and figures (their content is tested in test_report.py)
    report = out / "report"
    assert "<table" in (report / "index.html").read_text()
    assert EASY_OPERATOR in (report / "summary.md").read_text()
    assert len(list((report / "figures").glob("*.png"))) >= 20
    # the table and the report are printed at the end
    assert EASY_OPERATOR in proc.stdout
    assert str(report / "index.html") in proc.stdout


def _outputs(out: Path) -> dict[Path, int]:
    """Every file under `out` with its mtime, but the lock files: no outputs, a run takes its
    lock (and writes its holder into it) whatever it then finds (runtime/output_lock.py)."""
    return {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.suffix != ".lock"}


def test_second_run_skips_every_stage(
    quick_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    cwd, first = quick_run
    out = cwd / "vbsad-output" / "demo-quick"
    before = _outputs(out)
    second = _vbsad(cwd, "run", "--quick")
    assert _stage_lines(second.stderr) == dict.fromkeys(STAGES, "skipped")
    after = _outputs(out)
    assert after == before  # nothing rewritten
    assert second.stdout == first.stdout  # the same table


def test_run_with_a_config_rejects_output(tmp_path: Path) -> None:
    proc = run_vbsad("run", EXAMPLES / "ssww_real.toml", "-o", "x", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--output is for the demo" in proc.stderr


def test_real_ssww_samples_give_a_finite_cw_sensitivity(tmp_path: Path) -> None:
    """The realistic example of the README: examples/ssww_real.toml on the real MadGraph +
    SMEFTsim samples (SM, cW LIN, cW QUAD), run as shipped but writing into tmp_path."""
    text = (EXAMPLES / "ssww_real.toml").read_text(encoding="utf-8")
    text = text.replace("../../shared/testdata/ssww", SSWW_DIR.as_posix())
    assert SSWW_DIR.as_posix() in text
    config = tmp_path / "ssww_real.toml"
    assert "output_dir" not in text
    config.write_text('output_dir = "out"\n' + text, encoding="utf-8")
    _vbsad(tmp_path, "run", str(config))
    table = json.loads((tmp_path / "out" / "scan" / "table.json").read_text())
    assert {r["kind"] for r in table["rows"]} == {"vae", "vae_nn"}
    assert any(_finite(r["operators"]["cW"]["proxy"]["c_plus"]) for r in table["rows"])
    # As shipped, every model of its grid (two kinds x three seeds) converged before the cap.
    manifests = sorted((tmp_path / "out" / "models").glob("*/manifest.json"))
    assert len(manifests) == 6
    for path in manifests:
        manifest = json.loads(path.read_text())
        assert manifest["converged"] is True, (path, manifest["warnings"])
