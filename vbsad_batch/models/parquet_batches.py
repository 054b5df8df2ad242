"""A dataset (Parquet) read in batches of rows, only the columns asked for: the memory of a
read is one row group of those columns (the datasets' writer caps a row group near 120k rows),
whatever the number of rows.

No TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from vbsad_batch.runtime.file_errors import reading

__all__ = ["READ_BATCH_ROWS", "dataset_rows", "read_batches"]

READ_BATCH_ROWS = 1 << 14
"""Rows per batch read (16384: ~2 MB of 14 float64 features)."""

_WHAT = "dataset (Parquet)"


def dataset_rows(path: Path, *, remake: str) -> int:
    """The number of rows of the dataset at `path`, from its footer (nothing else is read).

    Raises:
        FileNotFoundError: no such file.
        UnreadableFileError: not a readable Parquet file (naming it and `remake`).
    """
    with reading(path, what=_WHAT, remake=remake):
        return int(pq.ParquetFile(path).metadata.num_rows)


def read_batches(
    path: Path, columns: Sequence[str], *, remake: str, batch_rows: int = READ_BATCH_ROWS
) -> Iterator[pl.DataFrame]:
    """The rows of the dataset at `path`, in file order, `batch_rows` at a time (the last batch
    may be smaller), with only `columns` (in that order).

    Raises:
        ValueError: a column is missing (naming the file).
        FileNotFoundError: no such file.
        UnreadableFileError: the file cannot be read (naming it and `remake`).
    """
    columns = list(dict.fromkeys(columns))
    with reading(path, what=_WHAT, remake=remake):
        source = pq.ParquetFile(path)
        names = source.schema_arrow.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise ValueError(f"{path}: column(s) {', '.join(missing)} missing (have {names})")
    # One row group at a time, each read afresh: `iter_batches` over the whole file kept
    # memory growing with the rows read (~40 B per row of 16 columns) until it was closed.
    for group in range(source.metadata.num_row_groups):
        with reading(path, what=_WHAT, remake=remake):
            table = source.read_row_group(group, columns=columns)
        for batch in table.to_batches(max_chunksize=batch_rows):
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            yield frame
        del table
