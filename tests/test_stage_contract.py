"""The stage contract (vbsad_batch.runtime.stage) on its own: keys, up-to-date checks by content,
the lifecycle of a write, and the checks of a stage's inputs."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from vbsad_batch.errors import MissingInputError, StaleInputError
from vbsad_batch.runtime.atomic_write import TEMP_PREFIX
from vbsad_batch.runtime.progress import ProgressEvent
from vbsad_batch.runtime.stage import (
    VERIFY_ENV,
    StageOutputs,
    StageUnit,
    command,
    fingerprint,
    key_differences,
)


def _unit(tmp_path: Path, **kw: object) -> StageUnit:
    return StageUnit(
        stage="toy",
        name="toy",
        kind="vbsad_batch.toy",
        directory=tmp_path / "toy",
        remake="vbsad toy ana.toml",
        **kw,  # type: ignore[arg-type]
    )


def _write_two(out: StageOutputs, reason: str) -> str:
    out.write_text("a.txt", "alpha\n", rows=1)
    with out.path("sub/b.bin") as tmp:
        tmp.write_bytes(b"\x00\x01")
    out.manifest["note"] = reason
    out.summary = "two files"
    return reason


def test_run_writes_then_skips_and_the_manifest_lists_every_output(tmp_path: Path) -> None:
    unit = _unit(tmp_path)
    events: list[ProgressEvent] = []
    first = unit.run({"x": 1}, _write_two, progress=events.append)
    assert (first.status, first.reason, first.value) == ("written", "new", "new")
    assert first.outputs == (unit.directory / "a.txt", unit.directory / "sub" / "b.bin")
    manifest = json.loads(unit.manifest_path.read_text())
    assert manifest["kind"] == "vbsad_batch.toy"
    assert manifest["key"] == {"x": 1}
    assert manifest["note"] == "new"
    assert [(o["path"], o.get("rows")) for o in manifest["outputs"]] == [
        ("a.txt", 1),
        ("sub/b.bin", None),
    ]
    assert manifest["outputs"][0]["sha256"] == fingerprint(unit.directory / "a.txt").sha256
    assert events[-1] == ProgressEvent("toy", "run_finished", message="two files")

    again = unit.run({"x": 1}, _write_two)
    assert (again.status, again.reason, again.value) == ("skipped", "up to date", None)
    assert again.outputs == first.outputs
    assert unit.run({"x": 1}, _write_two, force=True).reason == "forced"
    assert unit.run({"x": 2}, _write_two).reason == "x changed"


def test_an_edited_output_is_noticed_by_content_even_at_the_same_size(tmp_path: Path) -> None:
    unit = _unit(tmp_path)
    unit.run({"x": 1}, _write_two)
    path = unit.directory / "a.txt"
    path.write_text("alphA\n")  # one flipped bit, same size
    fresh = unit.check({"x": 1})
    assert (fresh.up_to_date, fresh.reason) == (False, "a.txt modified")
    (unit.directory / "sub" / "b.bin").unlink()
    path.write_text("alpha\n")
    assert unit.check({"x": 1}).reason == "sub/b.bin missing"


def test_size_and_mtime_unchanged_means_unchanged_unless_content_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    record = fingerprint(path)
    st = path.stat()
    path.write_bytes(b"0123456780")  # same size ...
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and the old mtime put back
    assert fingerprint(path, known=record).sha256 == record.sha256  # the documented blind spot
    monkeypatch.setenv(VERIFY_ENV, "content")
    assert fingerprint(path, known=record).sha256 != record.sha256
    monkeypatch.delenv(VERIFY_ENV)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # any other mtime: hashed
    assert fingerprint(path, known=record).sha256 != record.sha256
    with pytest.raises(IsADirectoryError, match="is a directory"):
        fingerprint(tmp_path)


def test_a_failed_write_leaves_no_manifest_and_no_temporary_file(tmp_path: Path) -> None:
    unit = _unit(tmp_path)
    unit.run({"x": 1}, _write_two)

    def broken(out: StageOutputs, reason: str) -> None:
        out.write_text("a.txt", "new text\n")
        with out.path("c.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        unit.run({"x": 2}, broken)
    assert not unit.manifest_path.exists()
    assert not any(p.name.startswith(TEMP_PREFIX) for p in unit.directory.rglob("*"))
    assert not (unit.directory / "c.txt").exists()
    # A temporary file of a killed writer is removed by the next run, in every listed directory.
    (unit.directory / "sub" / f"{TEMP_PREFIX}b.bin-0123456789abcdef").write_text("x")
    unit_with_sub = _unit(tmp_path, temp_dirs=("sub",))
    unit_with_sub.run({"x": 1}, _write_two)
    assert not any(p.name.startswith(TEMP_PREFIX) for p in unit.directory.rglob("*"))


def test_outputs_an_earlier_run_made_and_this_one_not_are_removed_inside_only(
    tmp_path: Path,
) -> None:
    unit = _unit(tmp_path)
    unit.run({"x": 1}, _write_two)
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    manifest = json.loads(unit.manifest_path.read_text())
    manifest["outputs"].append({"path": "../outside.txt", "size_bytes": 7, "sha256": "0" * 64})
    unit.manifest_path.write_text(json.dumps(manifest))

    def only_a(out: StageOutputs, reason: str) -> None:
        out.write_text("a.txt", "alpha\n")

    unit.run({"x": 2}, only_a)
    assert not (unit.directory / "sub" / "b.bin").exists()
    assert outside.read_text() == "keep me"


def test_a_shared_directory_keeps_the_temporary_files_of_other_writers(tmp_path: Path) -> None:
    unit = _unit(tmp_path, temp_scope=("mine.parquet",))
    unit.directory.mkdir()
    theirs = unit.directory / f"{TEMP_PREFIX}theirs.parquet-0123456789abcdef"
    mine = unit.directory / f"{TEMP_PREFIX}mine.parquet-0123456789abcdef"
    theirs.write_text("x")
    mine.write_text("x")
    unit.run({}, lambda out, _: out.write_text("mine.parquet", "data"))
    assert theirs.exists()
    assert not mine.exists()


def test_reproducible_manifests_record_no_host_time_or_mtime(tmp_path: Path) -> None:
    unit = _unit(tmp_path)
    texts = []
    for _ in range(2):
        with unit.writing({"x": 1}, provenance={"tool": "vbsad_batch"}) as out:
            out.write_text("a.txt", "alpha\n")
        texts.append(unit.manifest_path.read_text())
    assert texts[0] == texts[1]
    assert "mtime_ns" not in texts[0]
    assert unit.check({"x": 1}).up_to_date


def test_require_current_names_the_file_and_the_command(tmp_path: Path) -> None:
    unit = _unit(tmp_path)
    with pytest.raises(MissingInputError, match=r"manifest missing.*run `vbsad toy ana\.toml`"):
        unit.require_current({"x": 1})
    with pytest.raises(FileNotFoundError):  # a missing input is also a FileNotFoundError
        unit.require_current()
    unit.run({"x": 1, "options": {"c": 1}}, _write_two)
    assert unit.require_current({"x": 1, "options": {"c": 2}}, ignore=("options",))["key"]
    with pytest.raises(StaleInputError, match=r"stale for the current config \(x changed"):
        unit.require_current({"x": 2, "options": {"c": 1}})
    path = unit.directory / "a.txt"
    path.write_text("alphA\n")
    with pytest.raises(StaleInputError) as info:
        unit.require_current({"x": 1, "options": {"c": 1}})
    assert str(info.value).startswith(f"{path}: SHA-256 differs from the toy manifest")
    assert str(info.value).endswith("run `vbsad toy ana.toml`")
    assert (info.value.path, info.value.remake) == (path, "vbsad toy ana.toml")
    copy = pickle.loads(pickle.dumps(info.value))  # errors travel between MPI ranks
    assert (type(copy), str(copy), copy.path) == (StaleInputError, str(info.value), path)
    path.unlink()
    with pytest.raises(StaleInputError, match=r"a\.txt: listed in .* but missing"):
        unit.require_current()


def test_key_differences_name_the_settings_that_changed() -> None:
    old = {"config": {"luminosity_fb": 350.0, "split": {"seed": 0}}, "inputs": [1, 2]}
    new = {"config": {"luminosity_fb": 300.0, "split": {"seed": 1}}, "inputs": [1, 2], "v": 2}
    assert key_differences(old, new) == ["config.luminosity_fb", "config.split.seed", "v"]
    assert key_differences(old, old) == []


def test_commands_are_quoted_for_a_shell() -> None:
    assert command("datasets", Path("/a b/ana.toml")) == "vbsad datasets '/a b/ana.toml'"
