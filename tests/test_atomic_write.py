"""Atomic output files, checksums and manifests (pure Python, no LHE parsing)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import stat
from pathlib import Path

import pytest

from vbsad_batch.errors import LheParseError
from vbsad_batch.runtime.atomic_write import (
    atomic_open,
    atomic_path,
    is_temp_file,
    remove_stale_temp_files,
    write_text_atomic,
)
from vbsad_batch.runtime.provenance import (
    read_manifest,
    sha256_file,
    tool_version,
    write_manifest,
)
from vbsad_batch.runtime.stage import fingerprint


def _temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.startswith(".tmp-")]


def test_atomic_path_replaces_destination_on_success(tmp_path: Path) -> None:
    dest = tmp_path / "out.parquet"
    dest.write_text("old")
    with atomic_path(dest) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.exists()
        assert not tmp.name.endswith(".parquet")  # globs for finished files ignore it
        assert is_temp_file(tmp, "out.parquet")
        tmp.write_text("new")
        assert dest.read_text() == "old"  # untouched until the block ends
    assert dest.read_text() == "new"
    assert _temp_files(tmp_path) == []


def test_atomic_path_removes_temp_and_keeps_old_file_on_error(tmp_path: Path) -> None:
    dest = tmp_path / "out.json"
    dest.write_text("old")

    def write_half_then_fail() -> None:
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_half_then_fail()
    assert dest.read_text() == "old"
    assert _temp_files(tmp_path) == []


def test_atomic_file_gets_umask_permissions_not_0600(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_atomic_open_text_and_binary(tmp_path: Path) -> None:
    with atomic_open(tmp_path / "t.txt", "w") as f:
        f.write("héllo\n")
    with atomic_open(tmp_path / "b.bin", "wb") as f:
        f.write(b"\x00\x01")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_remove_stale_temp_files_only_touches_the_named_destination(tmp_path: Path) -> None:
    mine = tmp_path / ".tmp-a.parquet-0123456789abcdef"
    other = tmp_path / ".tmp-a-b.parquet-0123456789abcdef"  # temp of "a-b.parquet"
    unrelated = tmp_path / ".tmp-notes"
    for p in (mine, other, unrelated):
        p.write_text("x")
    assert remove_stale_temp_files(tmp_path, "a.parquet") == [mine]
    assert other.exists()
    assert unrelated.exists()
    assert remove_stale_temp_files(tmp_path) == [other]
    assert unrelated.exists()  # not one of ours: no 16-hex-digit token


def test_sha256_and_fingerprint_match_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    data = os.urandom(3 * (1 << 20) + 17)  # several 1 MiB chunks plus a tail
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_file(path) == expected
    fp = fingerprint(path.resolve())
    assert fp.sha256 == expected
    assert fp.size_bytes == len(data)
    assert fp.path == str(path.resolve())
    assert (fp.size_bytes, fp.mtime_ns) == (path.stat().st_size, path.stat().st_mtime_ns)


def test_manifest_round_trip_and_unreadable_manifest(tmp_path: Path) -> None:
    path = tmp_path / "x.manifest.json"
    assert read_manifest(path) is None
    write_manifest(path, {"b": 1, "a": [1.5, "x"]})
    assert read_manifest(path) == {"a": [1.5, "x"], "b": 1}
    assert json.loads(path.read_text())["b"] == 1
    path.write_text("{not json")
    assert read_manifest(path) is None


def test_tool_version_is_a_version_string() -> None:
    assert tool_version()[0].isdigit()


def test_lhe_parse_error_pickles_with_location() -> None:
    error = LheParseError("f.lhe:12: event 3: bad", path="f.lhe", line=12, event=3)
    error.__notes__ = ["while preprocessing"]  # as add_note() does (Python >= 3.11)
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, LheParseError)
    assert isinstance(copy, ValueError)
    assert (str(copy), copy.path, copy.line, copy.event) == (
        "f.lhe:12: event 3: bad",
        "f.lhe",
        12,
        3,
    )
    assert copy.__notes__ == ["while preprocessing"]
    no_location = pickle.loads(pickle.dumps(LheParseError("truncated", path="g.lhe.gz")))
    assert (no_location.line, no_location.event) == (None, None)
