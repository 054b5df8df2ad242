"""Stale, mixed and edited inputs through the command line, as a user meets them: each stage
checks its inputs against the manifests of the stages that made them and refuses what does not
match, naming the file and the command that remakes it; running that command remakes it.

These run `vbsad` in subprocesses on the real SSWW samples (the layout of the package does not
matter to them), each on its own copy of one finished analysis."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import SSWW_DIR, run_vbsad

pytestmark = pytest.mark.slow

CONFIG = """
operators = ["cW"]
training_operator = "cW"
output_dir = "out"

[split]
seed = {seed}

[training]
epochs = 2
patience = 2
batch_size = 256
learning_rate = 0.003

[scan]
bootstrap_replicas = 0
significance = {significance}

[[samples]]
component = "sm"
files = "{ssww}/ssww_SM.lhe.gz"

[[samples]]
component = "lin"
operator = "cW"
files = "{ssww}/ssww_cW_LIN.lhe.gz"

[[samples]]
component = "quad"
operator = "cW"
files = "{ssww}/ssww_cW_QUAD.lhe.gz"
"""


def _write_config(directory: Path, *, seed: int = 0, significance: float = 3.0) -> Path:
    path = directory / "ana.toml"
    text = CONFIG.format(seed=seed, significance=significance, ssww=SSWW_DIR.as_posix())
    path.write_text(text, encoding="utf-8")
    return path


def _vbsad(*args: object) -> subprocess.CompletedProcess[str]:
    return run_vbsad("-q", *args)


def _error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("vbsad: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ana.toml and its complete analysis (every stage, the report)."""
    directory = tmp_path_factory.mktemp("finished")
    proc = _vbsad("run", _write_config(directory))
    assert proc.returncode == 0, proc.stderr
    return directory


@pytest.fixture
def analysis(finished: Path, tmp_path: Path) -> Path:
    """A copy of the finished analysis (config and outputs) to change."""
    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    return tmp_path / "ana.toml"


def _flip_one_bit(path: Path) -> None:
    """Change one bit in the middle of a file: same size, other content."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_train_refuses_datasets_of_an_interrupted_run_under_another_split(analysis: Path) -> None:
    """`vbsad datasets` killed by SIGTERM after it rewrote sm_train.parquet for a new split
    seed: sm_train is of the new split, sm_validation of the old one. Training on them would
    validate on training events; it must refuse."""
    out = analysis.parent / "out" / "datasets"
    old_train = (out / "sm_train.parquet").read_bytes()
    _write_config(analysis.parent, seed=7)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [sys.executable, "-m", "vbsad_batch", "datasets", str(analysis)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:  # log lines (no terminal): stop right after sm_train is written
            if re.search(r"datasets: \[\d+/\d+\] finished sm_train", line):
                proc.send_signal(signal.SIGTERM)
                break
        proc.stderr.read()
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert (out / "sm_train.parquet").read_bytes() != old_train  # the new split's
    assert not (out / "manifest.json").exists()

    refused = _vbsad("train", analysis)
    assert refused.returncode == 1
    message = _error(refused)
    assert str(out / "manifest.json") in message
    assert f"run `vbsad datasets {analysis}`" in message

    assert _vbsad("datasets", analysis).returncode == 0
    assert _vbsad("train", analysis).returncode == 0


def test_an_edited_dataset_is_refused_and_remade(analysis: Path) -> None:
    datasets = analysis.parent / "out" / "datasets"
    path = datasets / "sm_validation.parquet"
    original = path.read_bytes()
    _flip_one_bit(path)
    assert path.stat().st_size == len(original)

    for stage in (["train", analysis], ["score", analysis], ["scan", analysis]):
        proc = _vbsad(*stage)
        assert proc.returncode == 1, f"vbsad {stage[0]} accepted an edited dataset"
        message = _error(proc)
        assert f"{path}: SHA-256 differs" in message
        assert f"run `vbsad datasets {analysis}`" in message

    # The command the message gives remakes the file: the datasets stage checks its own
    # outputs by content too, and the rewritten file equals the original byte for byte.
    assert _vbsad("datasets", analysis).returncode == 0
    assert path.read_bytes() == original
    assert run_vbsad("train", analysis).stdout.startswith("skipped: ")


def test_an_edited_shard_is_refused_by_datasets_and_remade_by_preprocess(analysis: Path) -> None:
    shards = sorted((analysis.parent / "out" / "shards").glob("*/*.parquet"))
    assert len(shards) == 3
    shard = shards[0]
    original = shard.read_bytes()
    _flip_one_bit(shard)
    # The shard of an LHE input is the analysis's own cache of that file: whenever the datasets
    # are made from it, the ingest stage checks it by content and remakes it (the same bytes).
    proc = run_vbsad("datasets", analysis, "--force")
    assert proc.returncode == 0, proc.stderr
    assert shard.read_bytes() == original

    # A shard given as an input of the config is checked against its own manifest.
    config = analysis.read_text(encoding="utf-8")
    lhe = next(SSWW_DIR.glob(f"{shard.stem}.lhe*"))
    analysis.write_text(config.replace(lhe.as_posix(), shard.as_posix()), encoding="utf-8")
    _flip_one_bit(shard)
    refused = _vbsad("datasets", analysis)
    assert refused.returncode == 1
    message = _error(refused)
    assert f"{shard}: SHA-256 differs from its manifest" in message
    assert "re-run `vbsad preprocess" in message
    # The input's resolved path, as the datasets stage named it (the shard records it).
    assert _vbsad("preprocess", lhe.resolve(), "--output", shard.parent).returncode == 0
    assert shard.read_bytes() == original
    assert pq.read_table(shard).num_rows > 0


def test_an_edited_score_file_is_refused_by_scan_and_remade_by_score(analysis: Path) -> None:
    scores = analysis.parent / "out" / "scores" / "vae_latent3"
    path = scores / "quad_test_cW.parquet"
    original = path.read_bytes()
    _flip_one_bit(path)
    refused = _vbsad("scan", analysis)
    assert refused.returncode == 1
    message = _error(refused)
    assert f"{path}: SHA-256 differs from the scores manifest" in message
    assert f"run `vbsad score {analysis} --model vae --latent 3 --seed 0`" in message
    assert _vbsad("score", analysis, "--model", "vae").returncode == 0
    assert path.read_bytes() == original
    assert _vbsad("scan", analysis).returncode == 0


@pytest.mark.parametrize(
    ("change", "stale", "remake"),
    [
        ({"significance": 5.0}, "scan", "vbsad scan"),
        ({"seed": 3}, "datasets", "vbsad datasets"),
    ],
    ids=["scan-significance", "split-seed"],
)
def test_report_names_the_stages_a_config_change_made_stale(
    analysis: Path, change: dict[str, float], stale: str, remake: str
) -> None:
    _write_config(analysis.parent, **change)  # type: ignore[arg-type]
    refused = _vbsad("report", analysis)
    assert refused.returncode == 1
    message = _error(refused)
    assert f"{stale} output" in message
    assert "stale for the current config" in message
    assert f"run `{remake} {analysis}`" in message
    report = analysis.parent / "out" / "report"
    assert (report / "manifest.json").exists()  # the old report is left as it was

    # What the message says, then the report.
    assert _vbsad(*remake.split()[1:], analysis).returncode == 0
    if stale == "datasets":
        for stage in (["train", "--model", "vae"], ["train", "--model", "vae_nn"]):
            assert _vbsad(stage[0], analysis, *stage[1:]).returncode == 0
        for kind in ("vae", "vae_nn"):
            assert _vbsad("score", analysis, "--model", kind).returncode == 0
        assert _vbsad("scan", analysis).returncode == 0
    done = run_vbsad("report", analysis)
    assert done.returncode == 0, done.stderr


def test_luminosity_change_makes_the_datasets_stale(analysis: Path) -> None:
    text = analysis.read_text(encoding="utf-8")
    analysis.write_text("luminosity_fb = 300.0\n" + text, encoding="utf-8")
    refused = _vbsad("report", analysis)
    assert refused.returncode == 1
    message = _error(refused)
    assert "config.luminosity_fb changed" in message
    assert f"run `vbsad datasets {analysis}`" in message
