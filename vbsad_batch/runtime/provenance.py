"""Provenance of outputs: file checksums, tool version and JSON manifests.

A manifest is a JSON object written next to an output, atomically and last: its presence
marks the output as complete, and its content (inputs with checksums, options, versions) lets
a re-run decide whether the output is still up to date.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from vbsad_batch.runtime.atomic_write import write_text_atomic

__all__ = [
    "HASH_CHUNK_BYTES",
    "MANIFEST_NAME",
    "FileFingerprint",
    "fingerprint_file",
    "jsonable",
    "manifest_up_to_date",
    "read_manifest",
    "runtime_provenance",
    "sha256_file",
    "tool_version",
    "write_manifest",
]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
"""The manifest's file name in a stage's output directory (a shard has `<name>.manifest.json`)."""

HASH_CHUNK_BYTES = 1 << 20
"""Read size when hashing files (1 MiB): bounded memory whatever the file size."""

DISTRIBUTION_NAME = "vbsad_batch"


def sha256_file(path: str | os.PathLike[str], *, chunk_bytes: int = HASH_CHUNK_BYTES) -> str:
    """Hex SHA-256 of a file's bytes (as stored, i.e. of the compressed bytes of a .gz)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def tool_version() -> str:
    """Version of the installed `vbsad_batch` distribution ("0+unknown" if not installed)."""
    try:
        return metadata.version(DISTRIBUTION_NAME)
    except metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True, slots=True)
class FileFingerprint:
    """Identity of an input file's content at one point in time.

    Attributes:
        path: absolute path.
        size_bytes: size in bytes.
        mtime_ns: modification time, nanoseconds since the epoch.
        sha256: hex SHA-256 of the content.
    """

    path: str
    size_bytes: int
    mtime_ns: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict, keys = field names."""
        return asdict(self)

    def same_stat(self, st: os.stat_result) -> bool:
        """Whether `st` has this fingerprint's size and mtime (cheap, no hashing)."""
        return st.st_size == self.size_bytes and st.st_mtime_ns == self.mtime_ns


def fingerprint_file(path: str | os.PathLike[str]) -> FileFingerprint:
    """Stat and hash a file.

    Raises:
        RuntimeError: the file changed (size or mtime) while it was being hashed.
    """
    resolved = Path(path).resolve()
    before = resolved.stat()
    digest = sha256_file(resolved)
    after = resolved.stat()
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise RuntimeError(f"{path}: file changed while it was being read")
    return FileFingerprint(
        path=str(resolved),
        size_bytes=after.st_size,
        mtime_ns=after.st_mtime_ns,
        sha256=digest,
    )


def runtime_provenance() -> dict[str, Any]:
    """Who made an output and when: tool version, Python, platform, host, UTC time."""
    return {
        "tool": DISTRIBUTION_NAME,
        "tool_version": tool_version(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def jsonable(value: Any) -> Any:
    """`value` as JSON-ready data for a manifest: dataclasses become dicts, paths strings,
    tuples lists (recursively), so that settings can be recorded and compared."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def manifest_up_to_date(
    manifest: Mapping[str, Any] | None,
    *,
    kind: str,
    key: Mapping[str, Any],
    directory: Path,
    outputs_field: str,
) -> tuple[bool, str]:
    """Whether a stage's outputs in `directory` are current: the manifest is of `kind`, was
    made for the same `key` (inputs, settings, version) and every file listed under
    `outputs_field` (entries with `path` and `size_bytes`) is there with its size.
    Returns (up to date, reason)."""
    if manifest is None:
        return False, "new"
    try:
        if manifest.get("kind") != kind:
            return False, "manifest of another kind"

        def canonical(value: Any) -> str:
            return json.dumps(value, sort_keys=True)

        old_key = manifest["key"]
        if canonical(old_key) != canonical(key):
            changed = [k for k in key if canonical(old_key.get(k)) != canonical(key[k])]
            return False, f"{', '.join(changed)} changed"
        for entry in manifest[outputs_field]:
            path = directory / entry["path"]
            if not path.is_file() or path.stat().st_size != entry["size_bytes"]:
                return False, f"{entry['path']} missing or modified"
    except (KeyError, TypeError, AttributeError):
        return False, "manifest incomplete"
    return True, "up to date"


def write_manifest(path: str | os.PathLike[str], content: Mapping[str, Any]) -> None:
    """Write `content` as indented JSON to `path`, atomically (temp file, fsync, rename)."""
    text = json.dumps(content, indent=2, sort_keys=True) + "\n"
    write_text_atomic(path, text)


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest at `path`, or None if it is missing or unreadable (logged as a warning)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        content = json.loads(text)
    except json.JSONDecodeError as exc:
        logger.warning("ignoring unreadable manifest %s: %s", path, exc)
        return None
    if not isinstance(content, dict):
        logger.warning("ignoring manifest %s: not a JSON object", path)
        return None
    return content
