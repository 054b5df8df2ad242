"""Errors of reading and writing files, as one line that names the file and the way on.

Parquet, Arrow, Keras and OS libraries report a damaged file in their own words — often
without its name, and polars by a Rust panic with a backtrace. `reading(path, remake=...)`
wraps the reading of one file: whatever those libraries raise becomes an
`UnreadableFileError` (a `ValueError`) naming the file, what went wrong, and the command
that makes it again. `disk_full_message` words an out-of-space error while writing a file
and `DiskFullError` is the error that carries it (`vbsad_batch.runtime.atomic_write` raises
it for any file it writes).
"""

from __future__ import annotations

import contextlib
import errno
import zipfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["DiskFullError", "UnreadableFileError", "disk_full_message", "is_disk_full", "reading"]

_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SPACE_WORDS = ("No space left on device", "Disk quota exceeded")


class UnreadableFileError(ValueError):
    """A file that exists but cannot be read as what it should be.

    Attributes:
        path: the file.
        remake: the command that makes it again ("" when unknown).
    """

    def __init__(self, message: str, *, path: Path, remake: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.remake = remake

    def __reduce__(self) -> tuple[object, ...]:  # picklable across MPI ranks and processes
        return (_rebuild, (str(self), self.path, self.remake))


def _rebuild(message: str, path: Path, remake: str) -> UnreadableFileError:
    return UnreadableFileError(message, path=path, remake=remake)


def _library_errors() -> tuple[type[BaseException], ...]:
    """What the readers raise for a damaged file (imported lazily: not every stage has them)."""
    kinds: list[type[BaseException]] = [OSError, ValueError, EOFError, zipfile.BadZipFile]
    with contextlib.suppress(ImportError):
        import polars.exceptions as polars_errors  # noqa: PLC0415

        kinds += [polars_errors.PolarsError, polars_errors.PanicException]
    with contextlib.suppress(ImportError):
        import pyarrow  # noqa: PLC0415

        kinds.append(pyarrow.ArrowException)
    return tuple(kinds)


@contextlib.contextmanager
def reading(path: Path, *, what: str = "file", remake: str = "") -> Iterator[None]:
    """Turn a reader's failure on `path` into an `UnreadableFileError` (see the module
    docstring). A missing file stays a `FileNotFoundError`; an error that already names
    itself as unreadable passes through."""
    try:
        yield
    except (FileNotFoundError, UnreadableFileError):
        raise
    except _library_errors() as exc:
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        if is_disk_full(exc):
            detail = f"the device is full ({detail})"
        way_on = f"; make it again: `{remake}`" if remake else ""
        raise UnreadableFileError(
            f"{path}: cannot read this {what} ({type(exc).__name__}: {detail}){way_on}",
            path=path,
            remake=remake,
        ) from exc


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` (an OSError, or a library's error quoting one) means no space is left."""
    if isinstance(exc, OSError) and exc.errno in _SPACE_ERRNOS:
        return True
    return any(words in str(exc) for words in _SPACE_WORDS)


def disk_full_message(path: Path, exc: BaseException) -> str:
    """The one line for running out of space while writing `path`."""
    return (
        f"{path}: no space left on the device while writing it ({exc}); nothing was replaced: "
        "free space (or set a larger quota) and run the same command again"
    )


class DiskFullError(OSError):
    """No space was left while writing a file; the message names it (errno ENOSPC)."""

    def __init__(self, path: Path, cause: BaseException) -> None:
        super().__init__(errno.ENOSPC, disk_full_message(path, cause), str(path))
        self.message = disk_full_message(path, cause)

    def __str__(self) -> str:
        return self.message
