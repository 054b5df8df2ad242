"""The `vbsad` command on real LHE files: `preprocess` (shards, manifests, re-runs, parallel
runs, malformed input, a killed run), `inspect`, the help texts and the import weight.

The command runs both as a subprocess (`python -m vbsad_batch`, as users and Slurm jobs run it)
and in-process through `vbsad_batch.cli`.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ALL_FILES, SSWW_DIR, SSWW_FILES, run_vbsad

import vbsad_batch
from vbsad_batch import LheParseError, lhe_info, read_lhe
from vbsad_batch.cli import main
from vbsad_batch.ingest.preprocess import preprocess
from vbsad_batch.ingest.shards import plan_shard_names, shard_manifest_path
from vbsad_batch.runtime.progress import LogProgressReporter, ProgressEvent

SM = SSWW_DIR / "ssww_SM.lhe.gz"
LIN = SSWW_DIR / "ssww_cW_LIN.lhe.gz"

pytestmark = pytest.mark.skipif(not SSWW_FILES, reason="shared test data not found")


# --- helpers -------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lhe_lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode().splitlines(keepends=True)


def write_lhe(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(lines).encode()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def event_starts(lines: list[str]) -> list[int]:
    """0-based indices of the `<event>` lines."""
    return [i for i, line in enumerate(lines) if line.lstrip().startswith(("<event>", "<event "))]


def corrupt_event(src: Path, dst: Path, event: int) -> int:
    """Copy `src` to `dst` with the last field of event `event`'s first particle line removed;
    return the 1-based number of that line."""
    lines = lhe_lines(src)
    index = event_starts(lines)[event] + 2  # <event>, event header line, first particle
    fields = lines[index].split()
    assert len(fields) == 13
    lines[index] = "  " + " ".join(fields[:-1]) + "\n"
    write_lhe(dst, lines)
    return index + 1


def drop_first_event(src: Path, dst: Path) -> None:
    lines = lhe_lines(src)
    starts = event_starts(lines)
    write_lhe(dst, lines[: starts[0]] + lines[starts[1] :])


def repeat_events(src: Path, dst: Path, copies: int) -> None:
    lines = lhe_lines(src)
    first = event_starts(lines)[0]
    end = max(i for i, line in enumerate(lines) if "</LesHouchesEvents>" in line)
    write_lhe(dst, lines[:first] + lines[first:end] * copies + lines[end:])


def shard_of(output: Path, input_path: Path) -> Path:
    name = input_path.name.removesuffix(".gz").removesuffix(".lhe")
    return output / f"{name}.parquet"


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def temp_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith(".tmp-"))


def statuses(stdout: str) -> list[str]:
    """The status column of `vbsad preprocess`'s per-shard summary lines."""
    return [
        line.split()[0] for line in stdout.splitlines() if line.startswith(("written", "skipped"))
    ]


def without_run_details(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without what differs between equal runs: provenance, seconds and the
    outputs' mtimes."""
    kept = {k: v for k, v in manifest.items() if k not in ("provenance", "seconds", "outputs")}
    kept["outputs"] = [{k: v for k, v in o.items() if k != "mtime_ns"} for o in manifest["outputs"]]
    return kept


# --- a full run over every real file ---------------------------------------------------------


@functools.cache
def reader_error(path: Path) -> LheParseError | None:
    """The error the reader raises for a whole real file, if it rejects it."""
    try:
        lhe_info(path)
    except LheParseError as exc:
        return exc
    return None


@pytest.fixture(scope="module")
def readable_files() -> list[Path]:
    return [f for f in ALL_FILES if reader_error(f) is None]


@pytest.fixture(scope="module")
def jobs2_output(tmp_path_factory: pytest.TempPathFactory, readable_files: list[Path]) -> Path:
    output = tmp_path_factory.mktemp("jobs2")
    proc = run_vbsad("preprocess", *readable_files, "--output", output, "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    assert statuses(proc.stdout) == ["written"] * len(readable_files)
    return output


def test_shard_equals_read_lhe_and_manifest_is_correct(
    jobs2_output: Path, real_file: Path, tmp_path: Path
) -> None:
    error = reader_error(real_file)
    if error is not None:
        # A file the reader rejects as a whole fails the run with its location, and no shard.
        proc = run_vbsad("preprocess", real_file, "--output", tmp_path)
        assert proc.returncode == 1
        assert f"{real_file.name}:{error.line}:" in proc.stderr
        assert list(tmp_path.glob("*.parquet")) == []
        return
    shard = shard_of(jobs2_output, real_file)
    table = pq.read_table(shard)
    assert table.equals(pa.table(read_lhe(real_file)))

    input_sha = sha256(real_file)
    footer = pq.read_metadata(shard).metadata
    assert footer[b"vbsad_batch.input_sha256"].decode() == input_sha
    assert json.loads(footer[b"vbsad_batch.lhe_info"]) == lhe_info(real_file).to_dict()
    manifest = read_json(shard_manifest_path(shard))
    assert manifest["kind"] == "vbsad_batch.preprocess.shard"
    assert manifest["input"]["sha256"] == input_sha
    assert manifest["input"]["size_bytes"] == real_file.stat().st_size
    assert manifest["input"]["mtime_ns"] == real_file.stat().st_mtime_ns
    assert manifest["input"]["path"] == str(real_file.resolve())
    assert manifest["shard"]["path"] == shard.name
    assert manifest["shard"]["sha256"] == sha256(shard)
    assert manifest["shard"]["size_bytes"] == shard.stat().st_size
    assert manifest["shard"]["n_rows"] == table.num_rows
    assert manifest["options"] == {"on_error": "fail", "batch_size": 65536}
    assert manifest["provenance"]["tool_version"] == vbsad_batch.__version__
    assert manifest["lhe_info"] == lhe_info(real_file).to_dict()


def test_index_lists_every_shard(jobs2_output: Path, readable_files: list[Path]) -> None:
    index = read_json(jobs2_output / "manifest.json")
    assert index["kind"] == "vbsad_batch.preprocess.index"
    assert sorted(s["shard"] for s in index["shards"]) == sorted(
        shard_of(jobs2_output, f).name for f in readable_files
    )
    assert index["n_rows"] == sum(
        pq.read_metadata(shard_of(jobs2_output, f)).num_rows for f in readable_files
    )
    assert temp_files(jobs2_output) == []


def test_jobs_1_gives_byte_identical_shards(
    jobs2_output: Path, readable_files: list[Path], tmp_path: Path
) -> None:
    output = tmp_path / "jobs1"
    assert main(["--quiet", "preprocess", *map(str, readable_files), "--output", str(output)]) == 0
    for path in readable_files:
        one, two = shard_of(output, path), shard_of(jobs2_output, path)
        assert sha256(one) == sha256(two), path.name
        assert without_run_details(read_json(shard_manifest_path(one))) == without_run_details(
            read_json(shard_manifest_path(two))
        )


# --- re-runs -------------------------------------------------------------------------------


def test_rerun_skips_up_to_date_shards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out"
    args = ["preprocess", *map(str, SSWW_FILES), "--output", str(output)]
    assert main(args) == 0
    assert statuses(capsys.readouterr().out) == ["written"] * len(SSWW_FILES)
    mtimes = {p.name: p.stat().st_mtime_ns for p in output.iterdir() if p.name != "manifest.json"}

    assert main(args) == 0
    assert statuses(capsys.readouterr().out) == ["skipped"] * len(SSWW_FILES)
    assert {p: (output / p).stat().st_mtime_ns for p in mtimes} == mtimes


def test_changed_input_is_reprocessed_alone(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    sm, lin = inputs / SM.name, inputs / LIN.name
    shutil.copyfile(SM, sm)
    shutil.copyfile(LIN, lin)
    output = tmp_path / "out"
    first = preprocess([sm, lin], output)
    assert [r.status for r in first] == ["written", "written"]
    lin_shard_mtime = shard_of(output, lin).stat().st_mtime_ns

    drop_first_event(SM, sm)
    second = preprocess([sm, lin], output)
    assert [(r.status, r.reason) for r in second] == [
        ("written", "input changed"),
        ("skipped", "up to date"),
    ]
    assert shard_of(output, lin).stat().st_mtime_ns == lin_shard_mtime
    shard = shard_of(output, sm)
    assert pq.read_table(shard).equals(pa.table(read_lhe(sm)))
    manifest = read_json(shard_manifest_path(shard))
    assert manifest["input"]["sha256"] == sha256(sm)
    assert manifest["lhe_info"]["n_events"] == lhe_info(SM).n_events - 1 == second[0].n_events

    # Same content, new mtime: hashed, found unchanged, kept (and the new mtime remembered).
    os.utime(lin, ns=(time.time_ns(), time.time_ns() + 10**9))
    third = preprocess([sm, lin], output)
    assert [r.status for r in third] == ["skipped", "skipped"]
    assert "same sha256" in third[1].reason
    assert shard_of(output, lin).stat().st_mtime_ns == lin_shard_mtime
    assert read_json(shard_manifest_path(shard_of(output, lin)))["input"]["mtime_ns"] == (
        lin.stat().st_mtime_ns
    )

    # A clean file is valid for on_error="skip" too; --force rewrites anyway.
    assert [r.status for r in preprocess([sm], output, on_error="skip")] == ["skipped"]
    assert [r.reason for r in preprocess([sm], output, force=True)] == ["forced"]


def test_inputs_sharing_a_name_get_distinct_deterministic_shards(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "x.lhe.gz", tmp_path / "b" / "x.lhe.gz"
    for path in (a, b):
        path.parent.mkdir()
        shutil.copyfile(SM, path)
    results = preprocess([a, b], tmp_path / "out")
    names = [r.shard.name for r in results]
    assert names == plan_shard_names([a, b])
    assert len(set(names)) == 2
    assert all(n.startswith("x-") and n.endswith(".parquet") for n in names)
    assert plan_shard_names([b, a]) == names[::-1]
    with pytest.raises(ValueError, match="given twice"):
        preprocess([a, a], tmp_path / "out")


def test_progress_is_reported_as_data(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    events: list[ProgressEvent] = []
    preprocess(SSWW_FILES, tmp_path / "out", jobs=2, progress=events.append)
    kinds = [e.kind for e in events]
    assert kinds[0] == "run_started"
    assert kinds[-1] == "run_finished"
    assert kinds.count("item_finished") == len(SSWW_FILES)
    finished = {e.item: e for e in events if e.kind == "item_finished"}
    assert finished[str(SM)].rows == lhe_info(SM).n_rows
    assert all(e.total_items == len(SSWW_FILES) for e in events)

    with caplog.at_level("INFO", logger="vbsad_batch.runtime.progress"):
        preprocess(SSWW_FILES, tmp_path / "out", progress=LogProgressReporter())
    assert sum("skipped" in m for m in caplog.messages) == len(SSWW_FILES)


# --- malformed input and a killed run ---------------------------------------------------------


def test_malformed_input_fails_with_location_and_leaves_no_shard(tmp_path: Path) -> None:
    bad = tmp_path / "in" / "ssww_bad.lhe"
    line = corrupt_event(SM, bad, event=3)
    output = tmp_path / "out"
    proc = run_vbsad("preprocess", SM, bad, "--output", output, "--on-error", "fail")
    assert proc.returncode == 1, proc.stderr
    errors = [x for x in proc.stderr.splitlines() if x.startswith("vbsad: error:")]
    assert len(errors) == 1, proc.stderr
    assert f"{bad.name}:{line}" in errors[0]
    assert "event 3" in errors[0]
    assert not shard_of(output, bad).exists()
    assert not shard_manifest_path(shard_of(output, bad)).exists()
    assert temp_files(output) == []
    # The file finished before the failure keeps its complete shard.
    assert shard_manifest_path(shard_of(output, SM)).exists()
    index = read_json(output / "manifest.json")
    assert [s["shard"] for s in index["shards"]] == [shard_of(output, SM).name]


def test_malformed_input_with_skip_lists_the_event_in_the_manifest(tmp_path: Path) -> None:
    bad = tmp_path / "in" / "ssww_bad.lhe.gz"
    line = corrupt_event(SM, bad, event=3)
    output = tmp_path / "out"
    proc = run_vbsad("preprocess", bad, "--output", output, "--on-error", "skip")
    assert proc.returncode == 0, proc.stderr
    assert "malformed" in proc.stderr
    shard = shard_of(output, bad)
    info = read_json(shard_manifest_path(shard))["lhe_info"]
    assert info["n_skipped"] == 1
    assert [(s["event"], s["line"]) for s in info["skipped"]] == [(3, line)]
    assert info == lhe_info(bad, on_error="skip").to_dict()
    table = pq.read_table(shard)
    assert table.equals(pa.table(read_lhe(bad, on_error="skip")))
    events = table.column("event").to_pylist()
    assert 3 not in events
    assert events[:4] == [0, 1, 2, 4]  # later events keep their index in the file

    # Asking for "fail" now reprocesses (the shard skipped events), fails, leaves nothing.
    assert main(["--quiet", "preprocess", str(bad), "--output", str(output)]) == 1
    assert not shard.exists()
    assert not shard_manifest_path(shard).exists()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_run_leaves_no_partial_shard_and_rerun_completes(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """SIGKILL (OOM killer) leaves a temp file that the next run ignores and cleans;
    SIGTERM (Slurm preemption, scancel) stops cleanly: exit 143 and no temp file."""
    big = tmp_path / "in" / "big.lhe"
    repeat_events(SM, big, copies=20)
    output = tmp_path / "out"
    # Tiny batches: thousands of row groups, so the writer is busy long enough to be killed.
    command = [sys.executable, "-m", "vbsad_batch", "--quiet", "preprocess", str(big)]
    command += ["--output", str(output), "--batch-size", "8"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "finished before it was killed: make the input larger"
            assert time.monotonic() < deadline, "no temporary shard appeared"
            temps = list(output.glob(".tmp-big.parquet-*")) if output.is_dir() else []
            try:
                if temps and temps[0].stat().st_size > 64 * 1024:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.002)
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert list(output.glob("*.parquet")) == []
    assert not (output / "big.manifest.json").exists()
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        assert len(temp_files(output)) == 1  # the killed writer's, ignored and cleaned below
    else:
        assert proc.returncode == 128 + signal.SIGTERM
        assert temp_files(output) == []

    assert main(["--quiet", "preprocess", str(big), "--output", str(output)]) == 0
    assert temp_files(output) == []
    assert pq.read_metadata(output / "big.parquet").num_rows == lhe_info(big).n_rows


# --- inspect, help, usage errors, import weight ----------------------------------------------


def test_inspect_json(tmp_path: Path) -> None:
    proc = run_vbsad("inspect", SM, "--json", "--events", "3")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    info = lhe_info(SM)
    assert data["info"]["n_events"] == info.n_events == 2000
    assert data["info"] == json.loads(json.dumps(info.to_dict()))
    table = pa.table(read_lhe(SM))
    assert data["columns"] == table.column_names
    assert data["rows"] == table.slice(0, 3).to_pylist()


def test_inspect_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(SM), "--events", "2"]) == 0
    out = capsys.readouterr().out
    info = lhe_info(SM)
    for text in ("MadGraph5_aMC@NLO 3.5.7", "6500 GeV", " pb", "integrated weight", "mll"):
        assert text in out
    assert f"{info.n_events} read, {info.n_rows} rows" in out
    assert "note: MadGraph's integrated weight" in out  # the known XSECUP disagreement
    assert f"first 2 of {info.n_rows} rows" in out


@pytest.mark.parametrize(
    ("command", "words"),
    [
        (
            "preprocess",
            ["GeV", "events", "default: 1", "default: fail", "gzip inputs are never split"],
        ),
        ("inspect", ["GeV", "pb", "default: 5"]),
        ("demo-data", ["events", "default: 5000", "default: 1"]),
    ],
)
def test_help_states_units_and_defaults(
    command: str, words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for word in words:
        assert word in text


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["bogus"],
        ["preprocess", "--output", "x"],
        ["preprocess", "missing.lhe", "--output", "OUT"],
        ["preprocess", str(SM), "--output", "OUT", "--jobs", "-1"],
        ["preprocess", str(SM), "--output", "OUT", "--on-error", "ignore"],
        ["preprocess", str(SM), "--output", "OUT", "--batch-size", "0"],
        ["inspect", "missing.lhe"],
    ],
)
def test_usage_errors_exit_2(args: list[str], tmp_path: Path) -> None:
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    assert main(args) == 2
    assert not (tmp_path / "out").exists()


def test_cli_import_does_not_load_tensorflow() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import vbsad_batch.cli"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "vbsad_batch.cli" in proc.stderr
    assert "tensorflow" not in proc.stderr
    code = (
        "import sys; from vbsad_batch.cli import main; rc = main(['preprocess', '--help']); "
        "assert 'tensorflow' not in sys.modules; sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_demo_data_then_preprocess(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    demo_dir = tmp_path / "demo"
    args = ["demo-data", "--output", str(demo_dir), "--events", "300", "--eft-events", "40"]
    assert main([*args, "--seed", "7"]) == 0
    written = [Path(line) for line in capsys.readouterr().out.split()]
    assert len(written) == 15  # SM, and LIN and QUAD of seven operators
    assert all(p.is_file() and p.parent == demo_dir for p in written)
    assert main(["--quiet", "preprocess", str(demo_dir), "--output", str(tmp_path / "out")]) == 0
    for path in written:
        shard = shard_of(tmp_path / "out", path)
        assert pq.read_table(shard).equals(pa.table(read_lhe(path)))
        events = 300 if path.name == "ssww_demo.lhe.gz" else 40
        assert read_json(shard_manifest_path(shard))["lhe_info"]["n_events"] == events


def test_version_and_module_entry_point() -> None:
    proc = run_vbsad("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"vbsad {vbsad_batch.__version__}"
    proc = run_vbsad("-q", "inspect", SM, "--json", "-n", "0")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["rows"] == []
