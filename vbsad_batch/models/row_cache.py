"""A float32 matrix (rows, width) kept on disk, not in memory: the model inputs of a training,
written once in a streaming pass and read back a range of rows at a time.

The file is anonymous (`tempfile.TemporaryFile`: created and unlinked at once), so it never
outlives its process, not even a killed one, and needs no clean-up; its disk space is freed
when the cache is closed or the process ends. Reads go through `os.preadv` into NumPy arrays:
the pages sit in the operating system's page cache, not in the process's memory (its RSS).

No TensorFlow.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["RowCache"]

_ITEM = np.dtype(np.float32).itemsize


class RowCache:
    """A float32 matrix of `width` columns on disk: `append` rows, then `read` row ranges.

    Attributes:
        width: columns per row.
        rows: rows appended so far.
    """

    def __init__(self, width: int, directory: Path | None = None) -> None:
        """An empty cache whose (anonymous) file lives in `directory` (default: the system's
        temporary directory)."""
        if width < 1:
            raise ValueError(f"a row cache needs at least one column, got {width}")
        self.width = int(width)
        self.rows = 0
        self._file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 - owned, see close

    @classmethod
    def from_array(cls, values: np.ndarray, directory: Path | None = None) -> RowCache:
        """A cache holding `values` (2-D)."""
        cache = cls(values.shape[1], directory)
        cache.append(values)
        return cache

    def append(self, values: np.ndarray) -> None:
        """Append rows (shape (n, width); converted to float32)."""
        values = np.ascontiguousarray(values, dtype=np.float32)
        if values.ndim != 2 or values.shape[1] != self.width:
            raise ValueError(f"rows of shape {values.shape} for a cache of width {self.width}")
        self._file.write(values.data.cast("B"))
        self.rows += values.shape[0]

    def read(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows start..stop-1 (clipped to the cache), float32 (n, width), into `out` if given
        (a C-contiguous float32 array of at least n rows; its first n rows are returned)."""
        start, stop = max(0, start), min(stop, self.rows)
        n = max(0, stop - start)
        if out is None:
            out = np.empty((n, self.width), dtype=np.float32)
        target = out[:n]
        if n == 0:
            return target
        self._file.flush()
        view = target.data.cast("B")
        offset, done = start * self.width * _ITEM, 0
        while done < len(view):
            got = os.preadv(self._file.fileno(), [view[done:]], offset + done)
            if got <= 0:
                raise OSError(f"row cache: short read at byte {offset + done}")
            done += got
        return target

    def close(self) -> None:
        """Free the file (its disk space); the cache cannot be read after."""
        self._file.close()
