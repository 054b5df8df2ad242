"""The Python face of the LHE reader: `LheStream`, `LheInfo`, argument checks."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from conftest import SSWW_DIR, SSWW_FILES

import vbsad_batch
from vbsad_batch import LheInfo, LheParseError, lhe_info, read_lhe, read_lhe_particles
from vbsad_batch.demo.lhe_writer import write_demo_lhe
from vbsad_batch.ingest import OBSERVABLE_COLUMNS

SM = SSWW_DIR / "ssww_SM.lhe.gz"

pytestmark = pytest.mark.skipif(not SSWW_FILES, reason="shared test data not found")


def test_public_names_are_reexported() -> None:
    assert set(vbsad_batch.__all__) >= {
        "read_lhe",
        "read_lhe_particles",
        "lhe_info",
        "LheInfo",
        "LheParseError",
        "__version__",
    }
    assert vbsad_batch.__version__[0].isdigit()
    assert issubclass(LheParseError, ValueError)


def test_stream_iterates_record_batches_and_exports_arrow() -> None:
    stream = read_lhe(SM, batch_size=500)
    schema = stream.schema
    assert isinstance(schema, pa.Schema)
    assert schema.names[: 1 + len(OBSERVABLE_COLUMNS) + 1] == ["event", *OBSERVABLE_COLUMNS, "w"]
    batches = list(stream)
    assert all(isinstance(b, pa.RecordBatch) and b.schema == schema for b in batches)
    assert max(b.num_rows for b in batches) <= 500
    table = pa.Table.from_batches(batches, schema=schema)
    info = stream.info()
    assert table.num_rows == info.n_rows
    assert table.equals(pa.table(read_lhe(str(SM))))
    assert table.equals(read_lhe(SM).read_all())
    assert pl.DataFrame(read_lhe(SM)).shape == table.shape
    assert info == lhe_info(SM)


def test_read_all_after_partial_iteration_returns_the_rest() -> None:
    stream = read_lhe(SM, batch_size=100)
    first = next(stream)
    rest = stream.read_all()
    assert first.num_rows + rest.num_rows == lhe_info(SM).n_rows


def test_particles_stream_counts_every_event() -> None:
    stream = read_lhe_particles(SM)
    table = pa.table(stream)
    assert table.schema.field("event").type == pa.int64()
    assert table.column("event").unique().to_pylist() == list(range(lhe_info(SM).n_events))


def test_lhe_info_round_trips_through_json() -> None:
    info = lhe_info(SM)
    assert dataclasses.is_dataclass(info)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.n_events = 0  # type: ignore[misc]
    assert LheInfo.from_json(info.to_json()) == info
    assert LheInfo.from_json(json.dumps(info.to_dict())) == info
    assert info.xsec_pb == pytest.approx(sum(p["xsecup"] for p in info.processes))
    with pytest.raises(ValueError, match="n_rows"):
        LheInfo.from_dict({k: v for k, v in info.to_dict().items() if k != "n_rows"})


@pytest.mark.parametrize("reader", [read_lhe, read_lhe_particles])
def test_arguments_are_validated(reader: object, tmp_path: Path) -> None:
    assert callable(reader)
    with pytest.raises(ValueError, match="'fail', 'skip'"):
        reader(SM, on_error="ignore")
    with pytest.raises(ValueError, match="batch_size"):
        reader(SM, batch_size=0)
    with pytest.raises(FileNotFoundError):
        reader(tmp_path / "missing.lhe")
    with pytest.raises(ValueError, match="'fail', 'skip'"):
        lhe_info(SM, on_error="warn")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "read",
    [lhe_info, lambda path: read_lhe(path).read_all(), lambda path: pa.table(read_lhe(path))],
    ids=["lhe_info", "iterate", "arrow_c_stream"],
)
def test_parsing_releases_the_gil(tmp_path: Path, read: Callable[[Path], object]) -> None:
    """While one thread parses in Rust, Python code keeps running in another thread.

    If the native call held the GIL, the main thread would stall for the whole parse: the
    longest pause between its loop iterations would span most of the worker's call.
    """
    big = write_demo_lhe(tmp_path / "big.lhe", n_events=40_000, seed=5)
    marks: dict[str, float] = {}

    def worker() -> None:
        marks["start"] = time.perf_counter()
        read(big)
        marks["end"] = time.perf_counter()

    thread = threading.Thread(target=worker)
    ticks: list[float] = []
    thread.start()
    while thread.is_alive():
        ticks.append(time.perf_counter())
    thread.join()
    start, end = marks["start"], marks["end"]
    inside = [start, *(t for t in ticks if start < t < end), end]
    longest_pause = max(b - a for a, b in itertools.pairwise(inside))
    assert longest_pause < 0.5 * (end - start), f"main thread stalled {longest_pause:.3f} s"
