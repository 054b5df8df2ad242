"""Read Les Houches Event files (plain or gzip) into Arrow record batches.

The parsing runs in the native extension (`vbsad_batch._native`, Rust) with the GIL released;
this module validates arguments, wraps the native stream so that it yields
`pyarrow.RecordBatch` objects, and turns the metadata JSON into a typed `LheInfo`.

Units: momenta, energies and masses in GeV, angles in radians, cross sections in pb.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, Literal, TypedDict, get_args

import pyarrow as pa

from vbsad_batch import _native

__all__ = [
    "OBSERVABLE_COLUMNS",
    "Beams",
    "ByteRange",
    "GeneratorInfo",
    "LheInfo",
    "LheStream",
    "MgGenerationInfo",
    "OnError",
    "ProcessInfo",
    "SkippedEvent",
    "Truncation",
    "WeightInfo",
    "check_on_error",
    "lhe_info",
    "plan_byte_ranges",
    "read_lhe",
    "read_lhe_particles",
    "read_lhe_range",
]

OnError = Literal["fail", "skip"]
"""What to do with a malformed event: "fail" raises `LheParseError`, "skip" drops the event and
records it in `LheInfo.skipped`."""

DEFAULT_BATCH_SIZE = 65536
"""Rows per record batch (events for `read_lhe`, particles for `read_lhe_particles`)."""

OBSERVABLE_COLUMNS: tuple[str, ...] = _native.OBSERVABLE_NAMES
"""Kinematic columns of `read_lhe`, in table order (after `event`, before `w` and `w_<id>`)."""

PathLike = str | os.PathLike[str]

logger = logging.getLogger(__name__)


class GeneratorInfo(TypedDict):
    """A `<generator>` tag of the `<init>` block."""

    name: str
    version: str | None


class Beams(TypedDict):
    """The first line of the `<init>` block (HEPRUP common block)."""

    idbmup: list[int]  # PDG ids of the two beams
    ebmup: list[float]  # beam energies, GeV
    pdfgup: list[int]
    pdfsup: list[int]
    idwtup: int  # weighting strategy
    nprup: int  # number of processes


class ProcessInfo(TypedDict):
    """One process line of the `<init>` block."""

    xsecup: float  # cross section, pb
    xerrup: float  # its statistical error, pb
    xmaxup: float  # maximum event weight
    lprup: int  # process id


class MgGenerationInfo(TypedDict):
    """`<MGGenerationInfo>` of a MadGraph banner."""

    n_events: int
    integrated_weight_pb: float


class SkippedEvent(TypedDict):
    """An event dropped with `on_error="skip"` (or a truncated end of file)."""

    event: int | None  # 0-based event index in the file
    line: int | None  # 1-based line number
    message: str


class Truncation(TypedDict):
    """Where a file's text ends, or stops being readable, before `</LesHouchesEvents>`: the
    events after that point are missing (read with `on_error="skip"`; "fail" raises)."""

    line: int  # 1-based line of the decompressed text
    message: str  # "<path>:<line>: truncated file: ...", also in `LheInfo.warnings`


class WeightInfo(TypedDict):
    """A named weight declared in `<initrwgt>` (column `w_<id>`)."""

    id: str
    description: str | None
    group: str | None


@dataclass(frozen=True, slots=True)
class LheInfo:
    """Metadata of one LHE file, gathered while reading it.

    Attributes:
        path: the file, as passed to the reader.
        lhef_version: the `version` attribute of `<LesHouchesEvents>`.
        generators: the `<generator>` tags (name, version).
        beams: beam ids, beam energies `ebmup` (GeV), PDF sets, weighting strategy.
        processes: per process: `xsecup` and `xerrup` (pb), `xmaxup`, `lprup`.
        mg_generation_info: MadGraph's `<MGGenerationInfo>` (`integrated_weight_pb` in pb), if
            present. It can disagree with `xsecup`; see the test data README.
        n_events: events read (all good ones, including those that are not rows; events
            skipped as malformed are counted in `n_skipped` instead).
        n_rows: events accepted as rows of the observables table.
        sum_weights: sum over ALL events of the nominal weight (key "w") and of each named
            weight (key = weight id), in the file's weight unit (pb for MadGraph). Always
            finite: an event with a NaN or infinite weight is malformed (an error, or skipped).
        rejected: events that are not rows, by reason ("fewer_than_two_charged_leptons",
            "fewer_than_two_jets").
        n_skipped: malformed events skipped with `on_error="skip"`.
        skipped: details (event, line, message) of the skipped events.
        weights: named weights (id, description, group), in document order.
        missing_weights: per weight id, the number of events lacking it (ids with none omitted).
        warnings: oddities of the file that did not stop the reading (for example an `<init>`
            block that declares more processes than it lists, or a truncation).
        complete: the whole file was read.
        truncated: with `on_error="skip"`, where the file's text ends (or stops being
            readable) before `</LesHouchesEvents>`: the events after that line are missing and
            the sums of weights cover only those before. None: not truncated (or not read that
            far yet). Its message is also the last entry of `warnings`.
    """

    path: str
    lhef_version: str
    generators: list[GeneratorInfo]
    beams: Beams
    processes: list[ProcessInfo]
    mg_generation_info: MgGenerationInfo | None
    n_events: int
    n_rows: int
    sum_weights: dict[str, float]
    rejected: dict[str, int]
    n_skipped: int
    skipped: list[SkippedEvent]
    weights: list[WeightInfo]
    missing_weights: dict[str, int]
    warnings: list[str]
    complete: bool
    truncated: Truncation | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LheInfo:
        """Build from a mapping with the field names as keys (extra keys ignored; `truncated`
        may be absent, as in metadata written before it existed).

        Raises:
            ValueError: a field is missing.
        """
        names = [f.name for f in fields(cls)]
        optional = {f.name for f in fields(cls) if f.default is not MISSING}
        missing = [name for name in names if name not in data and name not in optional]
        if missing:
            raise ValueError(f"LHE metadata lacks field(s): {', '.join(missing)}")
        return cls(**{name: data[name] for name in names if name in data})

    @classmethod
    def from_json(cls, text: str | bytes) -> LheInfo:
        """Parse the metadata JSON produced by the native reader (or by `to_json`)."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("LHE metadata JSON must be an object")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable deep copy, keys = field names."""
        return asdict(self)

    def to_json(self, *, indent: int | None = None) -> str:
        """`to_dict()` as JSON."""
        return json.dumps(self.to_dict(), indent=indent)

    @property
    def weight_ids(self) -> list[str]:
        """Ids of the named weights; their columns are `w_<id>`."""
        return [w["id"] for w in self.weights]

    @property
    def xsec_pb(self) -> float:
        """Sum of the processes' `xsecup`, pb."""
        return float(sum(p["xsecup"] for p in self.processes))

    @property
    def xsec_error_pb(self) -> float:
        """Errors of the processes' `xsecup` added in quadrature, pb."""
        return float(sum(p["xerrup"] ** 2 for p in self.processes) ** 0.5)


def check_on_error(on_error: str) -> bool:
    """Validate an `on_error` value; return True for "skip".

    Raises:
        ValueError: the value is not one of "fail", "skip".
    """
    allowed = get_args(OnError)
    if on_error not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"on_error must be one of {choices}, got {on_error!r}")
    return on_error == "skip"


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return batch_size


def _path_str(path: PathLike) -> str:
    result = os.fspath(path)
    if not isinstance(result, str):
        raise TypeError(f"path must be str or os.PathLike[str], got {type(result).__name__}")
    return result


class LheStream(Iterator[pa.RecordBatch]):
    """A one-shot stream of record batches read from one LHE file.

    - Iterate to get `pyarrow.RecordBatch` objects, or hand the stream to any Arrow consumer
      through `__arrow_c_stream__` (`pa.table(s)`, `pa.RecordBatchReader.from_stream(s)`,
      `polars.DataFrame(s)`); that consumes the rest of the stream.
    - `info()` is complete once the stream is exhausted; before that it describes what has
      been read so far.

    Errors in the file raise `LheParseError` from the iteration (with `on_error="fail"`). With
    "skip", a truncated file is logged as a warning when the iteration ends (and described by
    `info().truncated`).
    """

    __slots__ = ("_ended", "_native", "_path")

    def __init__(self, native: _native.LheStream, path: str) -> None:
        self._native = native
        self._path = path
        self._ended = False

    @property
    def path(self) -> str:
        """The file being read."""
        return self._path

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema of every batch (available before reading)."""
        return pa.schema(self._native.schema)

    def __next__(self) -> pa.RecordBatch:
        try:
            return pa.record_batch(next(self._native))
        except StopIteration:
            if not self._ended:
                self._ended = True
                _warn_if_truncated(self.info())
            raise

    def __iter__(self) -> LheStream:
        return self

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self._native.__arrow_c_stream__(requested_schema)

    def read_all(self) -> pa.Table:
        """The rest of the stream as one table (the whole file if nothing was read yet).

        Iterates in Python rather than through the C stream so that a malformed file raises
        `LheParseError` with its path, line and event (the C interface carries only text).
        """
        return pa.Table.from_batches(list(self), schema=self.schema)

    def info(self) -> LheInfo:
        """Metadata of the file; complete once the stream is exhausted."""
        return LheInfo.from_json(self._native.info_json())

    def raw_info(self) -> dict[str, Any]:
        """`info()` as the native reader gives it, with what `LheInfo` does not keep: the
        exact sums of weights as partial sums (`sum_weights_partials`: per key, floats whose
        exact total is the sum) and, for a stream of `read_lhe_range`, its counts (`range`:
        `first_event`, `next_event`, `ended_at_range_end`)."""
        data = json.loads(self._native.info_json())
        if not isinstance(data, dict):
            raise ValueError("LHE metadata JSON must be an object")
        return data

    def __repr__(self) -> str:
        return f"<{type(self).__name__} path={self._path!r}>"


def read_lhe(
    path: PathLike,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_error: OnError = "fail",
) -> LheStream:
    """Stream the observables table of an LHE file (`.lhe` or `.lhe.gz`).

    One row per event with at least two charged leptons and two jets (outgoing, status 1).
    Columns: `event` (int64, 0-based index of the event in the file, counting all events),
    the kinematics of `OBSERVABLE_COLUMNS` (float64; GeV for masses and transverse momenta,
    radians for angles), `w` (float64, the nominal event weight XWGTUP), then `w_<id>`
    (float64, null where an event lacks that weight) per named weight.

    Args:
        path: the file.
        batch_size: rows per record batch (>= 1).
        on_error: "fail" raises `LheParseError` at the first malformed event; "skip" drops
            malformed events and lists them in `info().skipped`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: invalid `on_error` or `batch_size`.
    """
    skip = check_on_error(on_error)
    path_str = _path_str(path)
    native = _native.open_observables(path_str, _check_batch_size(batch_size), skip)
    return LheStream(native, path_str)


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes `[start, end)` of a plain LHE file that begin at an event (`plan_byte_ranges`),
    with the lines and events of the file before `start`; `last`: the range ends the file."""

    start: int
    end: int
    lines_before: int
    events_before: int
    last: bool


def plan_byte_ranges(path: PathLike, parts: int, min_part_bytes: int) -> list[ByteRange]:
    """Cut a plain LHE file into at most `parts` byte ranges of at least ~`min_part_bytes`
    bytes each, at events, for reading it in several processes (`read_lhe_range`).

    One pass over the file finds the split points: `<event>` lines outside comments after a
    line that ends with `</event>`, near equal shares of the file; it counts the lines and
    events before each. A gzip file (which cannot be read from the middle), a file smaller
    than two parts or `parts <= 1` gives one range: the whole file.

    Raises:
        FileNotFoundError: the file does not exist.
    """
    if parts < 1 or min_part_bytes < 1:
        raise ValueError(f"parts and min_part_bytes must be >= 1, got {parts}, {min_part_bytes}")
    return [ByteRange(*r) for r in _native.plan_split(_path_str(path), parts, min_part_bytes)]


def read_lhe_range(
    path: PathLike,
    byte_range: ByteRange,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_error: OnError = "fail",
) -> LheStream:
    """Stream the observables table of one byte range of a plain LHE file.

    The rows, their `event` indices and the line numbers of errors and skipped events are
    those that `read_lhe` gives for the events of the range: the header, `<init>` and weight
    columns are read from the file's start (the columns the file's first event adds
    included), then the events of the range. `info()` covers the range's events; where the
    file goes on after the range, its end is not a truncation. `raw_info()["range"]` tells
    what the reader counted (see `vbsad_batch.ingest.split_convert` for merging ranges).
    """
    skip = check_on_error(on_error)
    path_str = _path_str(path)
    if not 0 <= byte_range.start <= byte_range.end:
        raise ValueError(f"invalid byte range {byte_range}")
    native = _native.open_observables_range(
        path_str,
        _check_batch_size(batch_size),
        skip,
        byte_range.start,
        byte_range.end,
        byte_range.lines_before,
        byte_range.events_before,
        byte_range.last,
    )
    return LheStream(native, path_str)


def read_lhe_particles(
    path: PathLike,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_error: OnError = "fail",
) -> LheStream:
    """Stream every particle of every event of an LHE file, in file order.

    Columns: `event` (int64), `pid`, `status`, `mother1`, `mother2`, `color1`, `color2`
    (int32), `px`, `py`, `pz`, `e`, `m` (float64, GeV), `lifetime` (float64, mm), `spin`
    (float64). Arguments and errors as for `read_lhe` (`batch_size` counts particles).
    """
    skip = check_on_error(on_error)
    path_str = _path_str(path)
    native = _native.open_particles(path_str, _check_batch_size(batch_size), skip)
    return LheStream(native, path_str)


def lhe_info(path: PathLike, *, on_error: OnError = "fail") -> LheInfo:
    """Read a whole LHE file and return its metadata (no table is kept).

    With `on_error="skip"`, a truncated file is logged as a warning (and described by
    `LheInfo.truncated`).

    Raises:
        FileNotFoundError: the file does not exist.
        LheParseError: the file is malformed (with `on_error="fail"`).
    """
    skip = check_on_error(on_error)
    info = LheInfo.from_json(_native.scan_info_json(_path_str(path), skip))
    _warn_if_truncated(info)
    return info


def _warn_if_truncated(info: LheInfo) -> None:
    """A truncated file is always its own warning, apart from the skipped events."""
    if info.truncated is not None:
        logger.warning("%s", info.truncated["message"])
