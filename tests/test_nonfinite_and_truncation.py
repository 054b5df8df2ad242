"""Inputs that used to pass silently, on the real same-sign WW samples: a NaN or infinite
weight or momentum is a malformed event (named by file, line and event; skipped with
`on_error="skip"`, the sums of weights staying finite), and a file whose text ends early is
never a quiet short sample: with "skip" it is a warning that reaches the log, the shard
manifest and the cross-section warnings of `vbsad yields`/the report.

The expected numbers come from the text itself (independent of the reader): the event and
line of the edit, the weights of the events before the cut summed with numpy."""

from __future__ import annotations

import gzip
import json
import logging
import math
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import SSWW_DIR, run_vbsad

import vbsad_batch

REAL = SSWW_DIR / "ssww_cW_LIN.lhe.gz"


@pytest.fixture(scope="module")
def text() -> str:
    return gzip.decompress(REAL.read_bytes()).decode()


def _event_lines(text: str) -> list[int]:
    """0-based line index of every `<event>` line."""
    return [i for i, line in enumerate(text.split("\n")) if line.strip() == "<event>"]


def _edit_line(text: str, index: int, edit) -> str:
    lines = text.split("\n")
    lines[index] = edit(lines[index])
    return "\n".join(lines)


def _nominal_weights(text: str) -> np.ndarray:
    """XWGTUP of every complete event, read from the text with a regex (not the reader)."""
    found = re.findall(r"<event>\n\s*\S+\s+\S+\s+(\S+)", text)
    complete = text.count("</event>")
    return np.array([float(w) for w in found[:complete]])


@pytest.mark.parametrize("spelling", ["NaN", "nan", "Inf", "-inf", "1.0e+999"])
def test_a_non_finite_event_weight_in_a_real_file_is_malformed(
    tmp_path: Path, text: str, spelling: str
) -> None:
    starts = _event_lines(text)
    bad = 17  # event index (0-based)
    info_line = starts[bad] + 1

    def nan_weight(line: str) -> str:
        fields = line.split()
        fields[2] = spelling
        return " ".join(fields)

    path = tmp_path / "nan_weight.lhe"
    path.write_text(_edit_line(text, info_line, nan_weight))

    with pytest.raises(vbsad_batch.LheParseError) as excinfo:
        vbsad_batch.lhe_info(path)
    err = excinfo.value
    assert (err.path, err.line, err.event) == (str(path), info_line + 1, bad)
    assert "not a finite number" in str(err)
    assert "XWGTUP" in str(err)

    info = vbsad_batch.lhe_info(path, on_error="skip")
    assert info.n_skipped == 1
    assert info.skipped[0]["event"] == bad
    weights = np.delete(_nominal_weights(text), bad)
    assert math.isfinite(info.sum_weights["w"])
    assert info.sum_weights["w"] == pytest.approx(weights.sum(), rel=1e-12)
    assert info.truncated is None


def test_a_non_finite_momentum_in_a_real_file_is_malformed(tmp_path: Path, text: str) -> None:
    starts = _event_lines(text)
    bad = 5
    particle_line = starts[bad] + 6  # the first charged lepton of the event

    def nan_px(line: str) -> str:
        fields = line.split()
        fields[6] = "NaN"
        return " ".join(fields)

    path = tmp_path / "nan_px.lhe"
    path.write_text(_edit_line(text, particle_line, nan_px))
    with pytest.raises(vbsad_batch.LheParseError) as excinfo:
        list(vbsad_batch.read_lhe(path))
    err = excinfo.value
    assert (err.line, err.event) == (particle_line + 1, bad)
    assert "finite" in str(err)
    info = vbsad_batch.lhe_info(path, on_error="skip")
    assert [s["event"] for s in info.skipped] == [bad]


def _cut_between_events(text: str, keep: int) -> str:
    """The text up to and including the `keep`-th `</event>`: a file cut between events,
    which no event-level check can notice."""
    end = 0
    for _ in range(keep):
        end = text.index("</event>\n", end) + len("</event>\n")
    return text[:end]


def test_a_file_cut_between_events_fails_or_warns_loudly(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    keep = 400
    cut = _cut_between_events(text, keep)
    path = tmp_path / "cut.lhe.gz"
    path.write_bytes(gzip.compress(cut.encode(), mtime=0))

    with pytest.raises(vbsad_batch.LheParseError) as excinfo:
        vbsad_batch.lhe_info(path)
    assert str(path) in str(excinfo.value)

    with caplog.at_level(logging.WARNING, logger="vbsad_batch.ingest.lhe"):
        info = vbsad_batch.lhe_info(path, on_error="skip")
    assert info.n_events == keep
    assert info.n_skipped == 0  # nothing malformed: the file just ends
    truncated = info.truncated
    assert truncated is not None
    assert truncated["line"] == cut.count("\n")
    assert f"ends after {keep} events" in truncated["message"]
    assert info.warnings[-1] == truncated["message"]
    assert truncated["message"] in caplog.text
    assert info.sum_weights["w"] == pytest.approx(_nominal_weights(cut).sum(), rel=1e-12)


def test_a_truncated_input_reaches_the_shard_manifest_and_stderr(tmp_path: Path, text: str) -> None:
    keep = 250
    data = tmp_path / "data"
    data.mkdir()
    path = data / "cut.lhe"
    path.write_text(_cut_between_events(text, keep))
    out = tmp_path / "shards"

    failed = run_vbsad("preprocess", path, "-o", out)
    assert failed.returncode != 0
    assert "cut.lhe" in failed.stderr
    assert not list(out.glob("*.parquet"))  # no shard for a file that failed

    proc = run_vbsad("preprocess", path, "-o", out, "--on-error", "skip")
    assert proc.returncode == 0, proc.stderr
    assert "truncated file" in proc.stderr
    manifest = json.loads((out / "cut.manifest.json").read_text())
    info = manifest["lhe_info"]
    assert info["n_events"] == keep
    assert info["truncated"]["message"] in info["warnings"]
    assert json.loads((out / "manifest.json").read_text())["shards"][0]["truncated"]

    # A kept shard says so again: the warning is not lost on a re-run.
    again = run_vbsad("preprocess", path, "-o", out, "--on-error", "skip")
    assert again.returncode == 0, again.stderr
    assert "truncated file" in again.stderr
    assert "kept" in again.stderr
