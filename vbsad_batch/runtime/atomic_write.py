"""Write output files atomically: a finished file appears complete or not at all.

Data go to a temporary file in the destination's directory, named
``.tmp-<destination name>-<16 hex digits>``; on success it is flushed, fsync'ed and renamed onto
the destination with `os.replace` (atomic on POSIX within one file system), then the directory
is fsync'ed so that the rename survives a crash. On an exception the temporary file is removed.
A process killed with SIGKILL leaves only its temporary file: its name never ends with the
destination's suffix (so globs like ``*.parquet`` ignore it) and
`remove_stale_temp_files` deletes it on the next run.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

from vbsad_batch.runtime.file_errors import DiskFullError, is_disk_full

__all__ = [
    "TEMP_PREFIX",
    "atomic_open",
    "atomic_path",
    "is_temp_file",
    "remove_stale_temp_files",
    "write_bytes_atomic",
    "write_text_atomic",
]

TEMP_PREFIX = ".tmp-"
_TOKEN_HEX_DIGITS = 16


def _temp_path_for(dest: Path) -> Path:
    return dest.with_name(f"{TEMP_PREFIX}{dest.name}-{secrets.token_hex(_TOKEN_HEX_DIGITS // 2)}")


def is_temp_file(path: Path, dest_name: str | None = None) -> bool:
    """Whether `path` is a temporary file of this module (for destination `dest_name` if given)."""
    name_pattern = ".+" if dest_name is None else re.escape(dest_name)
    pattern = rf"{re.escape(TEMP_PREFIX)}{name_pattern}-[0-9a-f]{{{_TOKEN_HEX_DIGITS}}}"
    return re.fullmatch(pattern, path.name) is not None


def _create_exclusive(path: Path) -> None:
    # Not tempfile.mkstemp: that creates mode 0600 files, and the result should get the same
    # permissions (umask) as any other output file, e.g. group-readable on a shared cluster.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename durable. Not possible on every platform or file system; best effort.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write `dest` through, for writers that open files by path.

    The temporary file exists (empty) when the block starts. When the block exits normally,
    the temporary file is fsync'ed and renamed onto `dest`; when it raises (or the process
    receives KeyboardInterrupt), the temporary file is removed and `dest` is left untouched.
    """
    dest_path = Path(dest)
    tmp = _temp_path_for(dest_path)
    try:
        _create_exclusive(tmp)
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(dest_path, exc) from exc
        raise
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, dest_path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise DiskFullError(dest_path, exc) from exc
        raise
    _fsync_directory(dest_path.parent)


@contextlib.contextmanager
def atomic_open(
    dest: str | os.PathLike[str],
    mode: Literal["w", "wb"] = "w",
    *,
    encoding: str = "utf-8",
) -> Iterator[IO[Any]]:
    """Open a file object whose content replaces `dest` atomically when the block succeeds."""
    with atomic_path(dest) as tmp:
        if mode == "wb":
            with open(tmp, "wb") as fb:
                yield fb
                fb.flush()
                os.fsync(fb.fileno())
        elif mode == "w":
            with open(tmp, "w", encoding=encoding, newline="\n") as ft:
                yield ft
                ft.flush()
                os.fsync(ft.fileno())
        else:
            raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")


def write_bytes_atomic(dest: str | os.PathLike[str], data: bytes) -> None:
    """Replace `dest` with `data` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(dest: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> None:
    """Replace `dest` with `text` atomically."""
    write_bytes_atomic(dest, text.encode(encoding))


def remove_stale_temp_files(
    directory: str | os.PathLike[str], dest_name: str | None = None
) -> list[Path]:
    """Delete temporary files left by killed writers in `directory`; return the removed paths.

    With `dest_name`, only the temporary files of that destination are removed: use this when
    other processes may be writing other files into the same directory at the same time (e.g.
    Slurm array tasks sharing an output directory), so that their live temporaries survive.
    """
    removed: list[Path] = []
    dir_path = Path(directory)
    if not dir_path.is_dir():
        return removed
    for entry in sorted(dir_path.iterdir()):
        if is_temp_file(entry, dest_name) and entry.is_file():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry)
    return removed
