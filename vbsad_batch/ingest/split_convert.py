"""One big plain LHE file converted by several worker processes at once: its events are cut
into byte ranges, each worker converts one range into a part file, and the parts are joined
into the file's one shard, the same as converting the file in one process.

`vbsad preprocess --jobs N` splits a plain (uncompressed) input of at least two parts of
`MIN_SPLIT_PART_BYTES` (64 MiB) into up to N byte ranges (`plan_byte_ranges`: one pass over
the file finds split points at events and counts the lines and events before each). Gzip
inputs are never split: a gzip stream can only be inflated from its start.

The result is the one-process result, checked:

- rows and their order: each range's rows, in range order; `event` indices and the line
  numbers of errors and skipped events count from the file's start (each range's reader
  starts from the counts of the plan);
- `LheInfo`: counts and rejections added up, skipped events in file order, the truncation
  of the last range; sums of weights from the ranges' exact partial sums (`math.fsum`),
  which the reader's exactly rounded sums equal to the last bit;
- the plan is checked against what the readers counted: each range must end at its end
  (not at `</LesHouchesEvents>`, an error or a truncation) after exactly the events that
  the next range's numbering assumes. Otherwise (a file that is not well formed where it
  was cut, e.g. an `<event>` line inside a comment) the file is converted again in one
  process, with a warning;
- with on_error="fail", the error of the first failing range is the file's error (its
  ranges before it checked as above).

The part files (Arrow IPC, uncompressed: about a tenth of the LHE text; the parent reads them
back batch by batch without decoding and encodes the shard's Parquet once) live in a
temporary directory beside the shard (`.<shard>.parts-*`), removed when the file is done; the
shard itself goes through the stage contract like any other
(`vbsad_batch.ingest.shards.process_file`), so downstream stages see no difference.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from vbsad_batch.ingest.lhe import ByteRange, LheInfo, OnError, plan_byte_ranges, read_lhe_range
from vbsad_batch.ingest.shards import (
    CancelledError,
    Emit,
    ShardResult,
    ShardTask,
    footer_metadata,
    process_file,
    shard_parquet_writer,
    write_whole_shard,
)

__all__ = [
    "MIN_SPLIT_PART_BYTES",
    "PartTask",
    "check_ranges",
    "convert_part",
    "merge_part_infos",
    "process_split_file",
    "split_ranges",
]

logger = logging.getLogger(__name__)

MIN_SPLIT_PART_BYTES = 64 * 2**20
"""A plain input is split only into parts of at least this many bytes (64 MiB): below that,
one process per file is as fast."""

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class PartTask:
    """One byte range of an input to convert into a part file (sent to a worker process)."""

    input: str
    part: str
    index: int
    byte_range: ByteRange
    on_error: OnError
    batch_size: int


def split_ranges(
    path: Path, jobs: int, min_part_bytes: int = MIN_SPLIT_PART_BYTES
) -> list[ByteRange] | None:
    """The byte ranges to convert `path` in (up to `jobs` of them), or None: convert it whole
    (one job, a gzip file, a file smaller than two parts, or no place to cut it)."""
    size = path.stat().st_size
    if jobs < 2 or size < 2 * min_part_bytes:
        return None
    with path.open("rb") as f:
        if f.read(2) == _GZIP_MAGIC:
            return None
    ranges = plan_byte_ranges(path, jobs, min_part_bytes)
    return ranges if len(ranges) > 1 else None


def convert_part(part: PartTask, should_stop: Callable[[], bool]) -> dict[str, Any]:
    """Convert one byte range into its part file; returns the part's path, rows and raw
    metadata (`LheStream.raw_info`). Raises what `read_lhe` raises for the range."""
    stream = read_lhe_range(
        part.input, part.byte_range, batch_size=part.batch_size, on_error=part.on_error
    )
    rows = 0
    # Arrow IPC, uncompressed: the parent reads it back without decoding and encodes the
    # shard's Parquet once; a Parquet part would be decoded and encoded again.
    with pa.OSFile(part.part, "wb") as sink, pa.ipc.new_file(sink, stream.schema) as writer:
        for batch in stream:
            if should_stop():
                raise CancelledError(part.input)
            writer.write_batch(batch)
            rows += batch.num_rows
    return {"index": part.index, "part": part.part, "rows": rows, "info": stream.raw_info()}


def merge_part_infos(infos: Sequence[Mapping[str, Any]]) -> LheInfo:
    """The `LheInfo` of a whole file from the raw metadata of its ranges, in file order."""
    first, last = infos[0], infos[-1]
    sums: dict[str, list[float]] = {}
    missing: dict[str, int] = {}
    rejected: dict[str, int] = {}
    for info in infos:
        for key, partials in info["sum_weights_partials"].items():
            sums.setdefault(key, []).extend(partials)
        for key, n in info["missing_weights"].items():
            missing[key] = missing.get(key, 0) + int(n)
        for key, n in info["rejected"].items():
            rejected[key] = rejected.get(key, 0) + int(n)
    merged = {
        **{key: first[key] for key in ("path", "lhef_version", "generators", "beams")},
        **{key: first[key] for key in ("processes", "mg_generation_info", "weights")},
        "n_events": sum(int(i["n_events"]) for i in infos),
        "n_rows": sum(int(i["n_rows"]) for i in infos),
        # As the reader's JSON: keys in sorted order.
        "sum_weights": {key: math.fsum(sums[key]) for key in sorted(sums)},
        "rejected": {key: rejected[key] for key in sorted(rejected)},
        "n_skipped": sum(int(i["n_skipped"]) for i in infos),
        "skipped": [s for i in infos for s in i["skipped"]],
        "missing_weights": {key: missing[key] for key in sorted(missing) if missing[key]},
        # Every range read the header's warnings; only the last can add a truncation's.
        "warnings": list(last["warnings"]),
        "complete": all(bool(i["complete"]) for i in infos),
        "truncated": last.get("truncated"),
    }
    return LheInfo.from_dict(merged)


def check_ranges(ranges: Sequence[ByteRange], infos: Sequence[Mapping[str, Any]]) -> str | None:
    """Why the ranges read so far (`infos`, the first ones in order) do not add up to the
    file as one reader sees it, or None."""
    for k, info in enumerate(infos):
        counted = info.get("range") or {}
        if counted.get("first_event") != ranges[k].events_before:
            return f"range {k} did not start at event {ranges[k].events_before}"
        if k + 1 < len(ranges):
            if not counted.get("ended_at_range_end") or info.get("truncated"):
                return f"range {k} stopped before its end (byte {ranges[k].end})"
            if counted.get("next_event") != ranges[k + 1].events_before:
                return (
                    f"range {k} has events up to {counted.get('next_event')}, the plan "
                    f"{ranges[k + 1].events_before}"
                )
    return None


def _wait_all(
    futures: Sequence[cf.Future[dict[str, Any]]], should_stop: Callable[[], bool]
) -> list[dict[str, Any] | BaseException]:
    outcomes: list[dict[str, Any] | BaseException] = []
    for future in futures:
        while True:
            if should_stop():
                raise CancelledError("another file failed")
            try:
                result = future.result(timeout=0.1)
            except cf.TimeoutError:
                continue
            except Exception as exc:
                outcomes.append(exc)
            else:
                outcomes.append(result)
            break
    return outcomes


def _join_parts(
    results: Sequence[Mapping[str, Any]], tmp: Path, info: LheInfo, input_sha256: str
) -> tuple[LheInfo, int]:
    """Write the parts' rows, in order, into the shard's temporary file: each batch of a part
    becomes a row group, as each batch of the whole file would."""
    schema: pa.Schema | None = None
    rows = 0
    writer = None
    try:
        for result in results:
            # Read batch by batch (not memory-mapped): memory stays at about one batch.
            with pa.OSFile(result["part"], "rb") as source:
                part = pa.ipc.open_file(source)
                if schema is None:
                    schema = part.schema
                    writer = shard_parquet_writer(tmp, schema)
                if not part.schema.equals(schema) or writer is None:
                    raise RuntimeError(f"{info.path}: the byte ranges gave different columns")
                for i in range(part.num_record_batches):
                    batch = part.get_batch(i)
                    writer.write_batch(batch)
                    rows += batch.num_rows
        if writer is None:
            raise RuntimeError(f"{info.path}: no byte range was converted")
        writer.add_key_value_metadata(footer_metadata(info, input_sha256))
    finally:
        if writer is not None:
            writer.close()
    if rows != info.n_rows:
        raise RuntimeError(
            f"{info.path}: joined {rows} rows but the readers counted {info.n_rows} accepted events"
        )
    return info, rows


def process_split_file(
    task: ShardTask,
    ranges: Sequence[ByteRange],
    submit: Callable[[PartTask], cf.Future[dict[str, Any]]],
    emit: Emit,
    should_stop: Callable[[], bool],
) -> ShardResult:
    """Make (or keep) the shard of `task`'s input from its `ranges`, converted by `submit`
    (a worker pool's; the parts start at once, while this process hashes the input)."""
    shard = Path(task.shard)
    parts_dir = Path(tempfile.mkdtemp(dir=shard.parent, prefix=f".{shard.name}.parts-"))
    futures: list[cf.Future[dict[str, Any]]] = []
    try:
        for index, byte_range in enumerate(ranges):
            part = PartTask(
                input=task.input,
                part=str(parts_dir / f"part-{index:04d}.arrow"),
                index=index,
                byte_range=byte_range,
                on_error=task.on_error,
                batch_size=task.batch_size,
            )
            futures.append(submit(part))

        def write(tmp: Path, input_sha256: str) -> tuple[LheInfo, int]:
            outcomes = _wait_all(futures, should_stop)
            failed = next((k for k, o in enumerate(outcomes) if isinstance(o, BaseException)), None)
            results = [o for o in outcomes[:failed] if isinstance(o, dict)]
            problem = check_ranges(ranges, [r["info"] for r in results])
            if problem is None and failed is not None:
                error = outcomes[failed]
                assert isinstance(error, BaseException)
                raise error
            if problem is not None:
                logger.warning(
                    "%s: converting the file in one process: its byte ranges do not add up (%s)",
                    task.input,
                    problem,
                )
                return write_whole_shard(task, tmp, emit, should_stop, input_sha256)
            info = merge_part_infos([r["info"] for r in results])
            return _join_parts(results, tmp, info, input_sha256)

        result = process_file(task, emit, should_stop, write=write)
        # Kept without writing (the input's content is unchanged): let the parts that are
        # running finish before their directory goes.
        for future in futures:
            future.cancel()
        cf.wait(futures)
        return result
    finally:
        for future in futures:
            future.cancel()
        shutil.rmtree(parts_dir, ignore_errors=True)
