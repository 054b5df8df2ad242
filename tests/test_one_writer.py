"""One writer per output (vbsad_batch.runtime.output_lock, StageUnit.lock): two `vbsad`
processes that write the same output take turns, and a second writer either stops at once,
naming the holder, or queues behind it; writers of distinct outputs (shards side by side in one
folder) never wait for each other.

Real processes on the real SSWW samples, no mocks. A holder is caught inside its write either
by stopping it (SIGSTOP) once its lock file names it, or by a small helper script that runs a
real stage and blocks in its progress callback (or holds a unit's lock) until it reads a line
on stdin."""

from __future__ import annotations

import json
import os
import pickle
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO

import pytest
from conftest import SSWW_DIR, run_vbsad

from vbsad_batch.cli.main import main
from vbsad_batch.pipeline import RUN_LOCK_NAME
from vbsad_batch.runtime.atomic_write import remove_stale_temp_files
from vbsad_batch.runtime.output_lock import (
    LOCK_WAIT_ENV,
    Holder,
    OutputBusyError,
    hold,
)
from vbsad_batch.runtime.stage import StageOutputs, StageUnit

pytestmark = pytest.mark.slow

CONFIG = """
operators = ["cW"]
training_operator = "cW"
output_dir = "out"

[training]
epochs = 1
patience = 1
batch_size = 256

[scan]
bootstrap_replicas = 0

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

HELPER = '''
"""Test helper: hold an output's lock until a line arrives on stdin.

  helper.py datasets CONFIG   run the real datasets stage, blocking inside its write
  helper.py shard INPUT DIR   hold the lock of INPUT's shard unit in DIR
"""
import sys
from pathlib import Path


def held() -> None:
    print("holding", flush=True)
    sys.stdin.readline()


if sys.argv[1] == "datasets":
    from vbsad_batch.config import load_config
    from vbsad_batch.weighting.datasets import build_datasets

    blocked = []

    def progress(event):
        if event.stage == "datasets" and event.kind == "item_started" and not blocked:
            blocked.append(event)
            held()

    result = build_datasets(load_config(Path(sys.argv[2])), progress=progress)
    print(result.status, flush=True)
else:
    from vbsad_batch.ingest.shards import ShardTask, plan_shard_names, shard_unit

    source, directory = Path(sys.argv[2]), Path(sys.argv[3])
    (name,) = plan_shard_names([source])
    task = ShardTask(str(source), str(directory / name), "fail", 1000, False, 1)
    with shard_unit(task).lock():
        held()
'''

STARTUP_TIMEOUT_S = 180
RUN_STAGES = ("datasets", "train vae", "score vae", "scan", "report")


# --- helpers ------------------------------------------------------------------------------------


def _config(directory: Path) -> Path:
    path = directory / "ana.toml"
    path.write_text(CONFIG.format(ssww=SSWW_DIR.as_posix()), encoding="utf-8")
    return path


def _vbsad_process(*args: object, stderr: IO[str] | int = subprocess.PIPE) -> subprocess.Popen[str]:
    """`vbsad ARGS` started in the background, as `conftest.run_vbsad` runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", "vbsad_batch", *(str(a) for a in args)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


@pytest.fixture
def helper(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """Started helper processes (see HELPER), killed at the end of the test if still alive."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=60)


def _start_helper(
    started: list[subprocess.Popen[str]], directory: Path, *args: object
) -> subprocess.Popen[str]:
    """A helper process holding its lock (it has printed "holding")."""
    script = directory / "helper.py"
    script.write_text(HELPER, encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, str(script), *(str(a) for a in args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(proc)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line == "holding\n", f"helper did not take the lock: {line!r} {proc.stderr}"
    return proc


def _release(proc: subprocess.Popen[str]) -> str:
    """Let a helper go on; its remaining stdout once it ended (exit status 0)."""
    out, err = proc.communicate("\n", timeout=STARTUP_TIMEOUT_S)
    assert proc.returncode == 0, err
    return out


def _holder_named(lock_path: Path, proc: subprocess.Popen[str]) -> dict[str, object]:
    """Wait until `lock_path` names `proc` as its holder (it holds the lock from then on until
    it releases it); its fields."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"ended before it held {lock_path}"
        try:
            fields = json.loads(lock_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            fields = {}
        if fields.get("pid") == proc.pid:
            return dict(fields)
        time.sleep(0.01)
    raise AssertionError(f"{lock_path} never named PID {proc.pid}")


def _wait_for_text(path: Path, text: str, proc: subprocess.Popen[str]) -> None:
    """Wait until the file `path` (a process's stderr) contains `text`."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while text not in path.read_text(encoding="utf-8"):
        assert proc.poll() is None, path.read_text(encoding="utf-8")
        assert time.monotonic() < deadline, path.read_text(encoding="utf-8")
        time.sleep(0.02)


def _error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("vbsad: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def _since(fields: dict[str, object]) -> str:
    """The time a lock file says its holder took the lock, as messages write it."""
    return f"{datetime.fromisoformat(str(fields['since'])):%Y-%m-%d %H:%M} UTC"


# --- vbsad run against vbsad run ----------------------------------------------------------------


def test_a_second_run_stops_at_once_naming_the_first_and_sigkill_frees_it(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    out = tmp_path / "out"
    first = _vbsad_process("run", config, "--models", "vae", stderr=subprocess.DEVNULL)
    try:
        fields = _holder_named(out / RUN_LOCK_NAME, first)
        first.send_signal(signal.SIGSTOP)  # caught in the middle of its run, lock held

        second = run_vbsad("run", config, "--models", "vae", timeout=STARTUP_TIMEOUT_S)

        assert second.returncode == 1, second.stderr
        assert _error(second.stderr) == (
            f"vbsad: error: {out} is being written by `vbsad run {config} --models vae` "
            f"(PID {first.pid} on {platform.node()}, since {_since(fields)}); "
            "wait for it or stop it (or queue behind it: vbsad run --wait)"
        )
        assert "train vae" not in second.stderr  # stopped before any stage

        patient = run_vbsad(
            "run", config, "--models", "vae", "--wait-timeout", "1", timeout=STARTUP_TIMEOUT_S
        )
        assert patient.returncode == 1, patient.stderr
        assert _error(patient.stderr).endswith(
            f"(PID {first.pid} on {platform.node()}, since {_since(fields)}) after 1 s of "
            "waiting; wait longer (--wait-timeout SECONDS, or --wait for no limit) or stop it"
        )
        assert f"waiting for {out}: being written by `vbsad run" in patient.stderr
    finally:
        first.kill()  # SIGKILL, even while stopped: no clean-up code of its own runs
        first.communicate(timeout=60)
    # The kernel dropped the dead run's lock: the next writer takes it without waiting.
    with hold(out / RUN_LOCK_NAME, target=str(out), wait=0):
        pass


def test_with_wait_a_second_run_queues_behind_the_first_then_skips_every_stage(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    out = tmp_path / "out"
    first = _vbsad_process("run", config, "--models", "vae", "-q")
    second_log = tmp_path / "second.log"
    with second_log.open("w", encoding="utf-8") as log:
        _holder_named(out / RUN_LOCK_NAME, first)
        first.send_signal(signal.SIGSTOP)
        second = _vbsad_process("run", "--wait", config, "--models", "vae", stderr=log)
        try:
            _wait_for_text(second_log, "waiting for", second)
            first.send_signal(signal.SIGCONT)
            _, first_err = first.communicate(timeout=900)
            assert first.returncode == 0, first_err
            second_out, _ = second.communicate(timeout=900)
        finally:
            for proc in (first, second):
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate(timeout=60)
    log_text = second_log.read_text(encoding="utf-8")
    assert second.returncode == 0, log_text
    assert f"waiting for {out}: being written by `vbsad run {config} --models vae -q`" in log_text
    assert f"(PID {first.pid} on {platform.node()}, since " in log_text
    for stage in RUN_STAGES:
        assert f"cli: {stage:<13} skipped" in log_text, log_text
    assert f"outputs: {out}" in second_out


# --- one stage's unit: datasets -----------------------------------------------------------------


def test_a_second_writer_of_a_unit_stops_at_once_and_sigkill_of_the_holder_frees_it(
    tmp_path: Path, helper: list[subprocess.Popen[str]]
) -> None:
    config = _config(tmp_path)
    datasets = tmp_path / "out" / "datasets"
    holder = _start_helper(helper, tmp_path, "datasets", config)  # inside its write
    lock = tmp_path / "out" / ".datasets.lock"
    fields = json.loads(lock.read_text(encoding="utf-8"))

    second = run_vbsad("datasets", config, timeout=STARTUP_TIMEOUT_S)

    assert second.returncode == 1, second.stderr
    assert _error(second.stderr) == (
        f"vbsad: error: {datasets} is being written by `helper.py datasets {config}` "
        f"(PID {holder.pid} on {platform.node()}, since {_since(fields)}); "
        f"wait for it or stop it (or queue behind it: {LOCK_WAIT_ENV}=SECONDS)"
    )

    holder.kill()  # SIGKILL inside the write: the lock dies with it, its lock file stays
    holder.communicate(timeout=60)
    assert json.loads(lock.read_text(encoding="utf-8"))["pid"] == holder.pid

    after = run_vbsad("datasets", config, timeout=STARTUP_TIMEOUT_S)
    assert after.returncode == 0, after.stderr
    assert f"written: {datasets} (new)" in after.stdout
    manifest = json.loads((datasets / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(p.name for p in datasets.iterdir()) == sorted(
        ["manifest.json", *(entry["path"] for entry in manifest["outputs"])]
    )  # only outputs: no temporary file, no lock file
    assert lock.read_text(encoding="utf-8") == ""  # released: names no holder

    again = run_vbsad("datasets", config, timeout=STARTUP_TIMEOUT_S)
    assert again.returncode == 0, again.stderr
    assert f"skipped: {datasets} (up to date)" in again.stdout


def test_a_writer_that_waited_finds_the_unit_up_to_date_and_skips_it(
    tmp_path: Path, helper: list[subprocess.Popen[str]]
) -> None:
    config = _config(tmp_path)
    datasets = tmp_path / "out" / "datasets"
    holder = _start_helper(helper, tmp_path, "datasets", config)
    log_path = tmp_path / "second.log"
    with log_path.open("w", encoding="utf-8") as log:
        env = {**os.environ, LOCK_WAIT_ENV: "600"}
        second = subprocess.Popen(
            [sys.executable, "-m", "vbsad_batch", "datasets", str(config)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
        try:
            _wait_for_text(log_path, "waiting for", second)
            assert _release(holder) == "written\n"
            second_out, _ = second.communicate(timeout=STARTUP_TIMEOUT_S)
        finally:
            if second.poll() is None:
                second.kill()
                second.communicate(timeout=60)
    log_text = log_path.read_text(encoding="utf-8")
    assert second.returncode == 0, log_text
    assert f"waiting for {datasets}: being written by `helper.py datasets {config}`" in log_text
    assert "(at most 600 s)" in log_text
    assert f"skipped: {datasets} (up to date)" in second_out


def test_a_symbolic_link_planted_as_the_lock_file_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    datasets = tmp_path / "out" / "datasets"
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours\n", encoding="utf-8")
    lock = tmp_path / "out" / ".datasets.lock"
    lock.parent.mkdir()
    lock.symlink_to(victim)

    proc = run_vbsad("datasets", config, timeout=STARTUP_TIMEOUT_S)

    assert proc.returncode == 1, proc.stderr
    assert _error(proc.stderr) == (
        f"vbsad: error: {lock}: the lock file is a symbolic link; refusing to follow it "
        "(remove the link: vbsad creates its lock files itself)"
    )
    assert victim.read_text(encoding="utf-8") == "not yours\n"
    assert lock.is_symlink()
    assert not (datasets / "manifest.json").exists()


# --- shards side by side in one folder ----------------------------------------------------------


def test_shards_of_one_folder_are_written_side_by_side_but_one_shard_by_one_writer(
    tmp_path: Path, helper: list[subprocess.Popen[str]]
) -> None:
    shards = tmp_path / "shards"
    sm, lin, quad = (SSWW_DIR / f"ssww_{n}.lhe.gz" for n in ("SM", "cW_LIN", "cW_QUAD"))
    holder = _start_helper(helper, tmp_path, "shard", sm, shards)

    beside = run_vbsad("preprocess", lin, "-o", shards, timeout=STARTUP_TIMEOUT_S)
    same = run_vbsad("preprocess", sm, "-o", shards, timeout=STARTUP_TIMEOUT_S)

    assert beside.returncode == 0, beside.stderr
    assert (shards / "ssww_cW_LIN.manifest.json").is_file()
    assert same.returncode == 1, same.stderr
    assert _error(same.stderr).startswith(
        f"vbsad: error: {shards / 'ssww_SM.parquet'} is being written by "
        f"`helper.py shard {sm} {shards}` (PID {holder.pid} on {platform.node()}, since "
    )
    assert not (shards / "ssww_SM.manifest.json").exists()
    _release(holder)

    # Array tasks: one process per input, all at once, into one folder.
    together = tmp_path / "together"
    procs = [_vbsad_process("preprocess", f, "-o", together, "-q") for f in (sm, lin, quad)]
    for proc in procs:
        _, err = proc.communicate(timeout=STARTUP_TIMEOUT_S)
        assert proc.returncode == 0, err
    index = json.loads((together / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(s["shard"] for s in index["shards"]) == [
        "ssww_SM.parquet",
        "ssww_cW_LIN.parquet",
        "ssww_cW_QUAD.parquet",
    ]
    assert sorted(p.name for p in together.glob(".*.lock")) == [
        ".ssww_SM.manifest.json.lock",
        ".ssww_cW_LIN.manifest.json.lock",
        ".ssww_cW_QUAD.manifest.json.lock",
        ".vbsad-index.lock",
    ]


# --- the contract's own view --------------------------------------------------------------------


def _unit(tmp_path: Path) -> StageUnit:
    return StageUnit(
        stage="toy",
        name="toy",
        kind="vbsad_batch.toy",
        directory=tmp_path / "toy",
        remake="vbsad toy ana.toml",
    )


def _write(out: StageOutputs, reason: str) -> str:
    out.write_text("a.txt", "alpha\n")
    return reason


def test_a_lock_file_left_behind_is_no_output_and_survives_every_clean_up(tmp_path: Path) -> None:
    owner = _unit(tmp_path)  # owns tmp_path/toy: its lock is beside the directory
    sharer = StageUnit(  # one of several units in tmp_path/shared: its lock is in there
        stage="toy",
        name="x",
        kind="vbsad_batch.toy",
        directory=tmp_path / "shared",
        remake="vbsad toy ana.toml",
        manifest_name="x.manifest.json",
        temp_scope=("a.txt", "b.txt"),
    )
    expected = {
        owner: tmp_path / ".toy.lock",
        sharer: tmp_path / "shared" / ".x.manifest.json.lock",
    }
    for unit, lock in expected.items():
        assert unit.lock_path == lock
        lock.parent.mkdir(exist_ok=True)
        lock.write_text('{"host": "gone", "pid": 1, "since": "x", "command": "old"}\n')

        first = unit.run({"v": 1}, _write)
        assert first.status == "written"
        assert [p.name for p in first.outputs] == ["a.txt"]
        assert lock.read_text(encoding="utf-8") == ""  # released: names no holder
        remove_stale_temp_files(lock.parent)
        # A new key drops the old outputs the new run does not write; never the lock file.
        second = unit.run({"v": 2}, lambda out, _: out.write_text("b.txt", "beta\n"))
        assert second.status == "written"
        assert not (unit.directory / "a.txt").exists()
        assert lock.is_file()
        assert unit.check({"v": 2}).up_to_date
    assert sorted(p.name for p in owner.directory.iterdir()) == ["b.txt", "manifest.json"]


def test_the_lock_is_reentrant_in_one_thread_and_its_error_pickles(tmp_path: Path) -> None:
    unit = _unit(tmp_path)
    with unit.lock(wait=0):  # a stage that checks under the lock, then writes
        assert unit.run({}, _write).status == "written"
        assert json.loads(unit.lock_path.read_text(encoding="utf-8"))["pid"] == os.getpid()
    error = OutputBusyError(
        unit.target, unit.lock_path, Holder("node12", 1234, "2026-12-07T10:02:00+00:00", "x")
    )
    copy = pickle.loads(pickle.dumps(error))  # from a worker process of `preprocess --jobs`
    assert str(copy) == str(error)
    assert str(error) == (
        f"{unit.directory} is being written by `x` (PID 1234 on node12, since 2026-12-07 "
        f"10:02 UTC); wait for it or stop it (or queue behind it: {LOCK_WAIT_ENV}=SECONDS)"
    )


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_run_wait_timeout_takes_seconds_or_inf(
    value: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["run", str(tmp_path / "ana.toml"), "--wait-timeout", value]) == 2
    assert "--wait-timeout: expected seconds >= 0 or 'inf'" in capsys.readouterr().err
