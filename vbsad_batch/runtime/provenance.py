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
from importlib import metadata
from pathlib import Path
from typing import Any

from vbsad_batch.runtime.atomic_write import write_text_atomic

__all__ = [
    "HASH_CHUNK_BYTES",
    "MANIFEST_NAME",
    "jsonable",
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
