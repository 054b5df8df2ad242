"""One LHE file -> one Parquet shard of observables with its manifest: the unit of the ingest
stage.

For each input `<dir>/<name>.lhe[.gz]` the output directory gets

- `<name>.parquet`: the observables table of `vbsad_batch.ingest.read_lhe` (zstd), written
  batch by batch (memory stays bounded by one record batch, whatever the file size), to a
  temporary file that is renamed into place when complete;
  The Parquet footer's key-value metadata (`pyarrow.parquet.read_metadata(path).metadata`)
  repeats the essentials: `vbsad_batch.lhe_info` (JSON), `vbsad_batch.input_sha256`,
  `vbsad_batch.tool_version`, `vbsad_batch.schema_version`;
- `<name>.manifest.json`: written last, atomically; its presence marks the shard complete. It
  records the input (absolute path, size in bytes, mtime, SHA-256), the file's `LheInfo`
  metadata (including skipped events and, for a truncated input, `lhe_info.truncated` and its
  warning), the options, the tool and shard-format versions, and the shard's size, SHA-256 and
  row count;

and the directory gets an index `manifest.json` listing every complete shard in it (rebuilt at
the end of each run, so it also covers shards written by other runs, e.g. Slurm array tasks;
concurrent rebuilds are serialised with `flock` on the empty file `.vbsad-index.lock`).

Each shard is one unit of the stage contract (`vbsad_batch.runtime.stage`), so re-runs are
incremental: a shard is up to date when its manifest exists, was written by the same tool and
shard-format version from the same input path with the same SHA-256, with compatible options
(same `on_error`, or no event was skipped and the input is not truncated), and the shard file
still has its recorded SHA-256.
To avoid re-hashing large inputs on every run, an input whose size and mtime equal the recorded
ones is taken as unchanged without hashing; if only the mtime differs, the input is hashed and,
when the hash is unchanged, the manifest's mtime is refreshed and the shard kept. A different
size always means a changed input. Running many files, in worker processes, is
`vbsad_batch.ingest.preprocess`.

If two inputs share a name (`a/x.lhe` and `b/x.lhe.gz`), each of them gets a shard name with
the first 8 hex digits of the SHA-256 of its absolute path appended (`x-1f2e3d4c.parquet`), so
names are deterministic.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vbsad_batch.ingest.lhe import LheInfo, OnError, read_lhe
from vbsad_batch.runtime.progress import ProgressKind
from vbsad_batch.runtime.provenance import (
    MANIFEST_NAME,
    read_manifest,
    runtime_provenance,
    tool_version,
    write_manifest,
)
from vbsad_batch.runtime.stage import FileRecord, StageResult, StageUnit, command, fingerprint

if sys.platform != "win32":
    import fcntl

__all__ = [
    "INDEX_MANIFEST_NAME",
    "SHARD_FORMAT_VERSION",
    "CancelledError",
    "ShardResult",
    "ShardTask",
    "ShardWriter",
    "footer_metadata",
    "plan_shard_names",
    "process_file",
    "shard_manifest_path",
    "shard_parquet_writer",
    "shard_unit",
    "write_index",
    "write_whole_shard",
]

logger = logging.getLogger(__name__)

SHARD_FORMAT_VERSION = 3
"""Version of the shard layout and manifest format; bump when either changes (3: `lhe_info`
records `truncated`)."""

SHARD_SUFFIX = ".parquet"
MANIFEST_SUFFIX = ".manifest.json"
INDEX_MANIFEST_NAME = MANIFEST_NAME
SHARD_MANIFEST_KIND = "vbsad_batch.preprocess.shard"
INDEX_MANIFEST_KIND = "vbsad_batch.preprocess.index"
PARQUET_COMPRESSION = "zstd"
_LOCK_NAME = ".vbsad-index.lock"
_STAGE = "preprocess"
_ADVANCE_INTERVAL_S = 0.25


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardResult(StageResult):
    """What `preprocess` did for one input file (see `StageResult`; `name` is the shard's file
    name).

    Attributes:
        input: the input file, as given.
        shard: the Parquet shard.
        n_events: events in the input (all of them).
        n_rows: rows in the shard (events with >= 2 charged leptons and >= 2 jets).
        n_skipped: malformed events skipped (on_error="skip").
        input_sha256: hex SHA-256 of the input file.
    """

    input: Path
    shard: Path
    n_events: int
    n_rows: int
    n_skipped: int
    input_sha256: str


@dataclass(frozen=True, slots=True)
class ShardTask:
    """One input file's work order (sent to worker processes, so only plain fields)."""

    input: str
    shard: str
    on_error: OnError
    batch_size: int
    force: bool
    total_items: int


class CancelledError(Exception):
    """Raised in a worker between batches when another file already failed the run."""


Emit = Callable[[ProgressKind, str, int, int, str], None]
"""(kind, item, rows, events, message): progress of one file, from any process."""

ShardWriter = Callable[[Path, str], tuple[LheInfo, int]]
"""(temporary shard path, input SHA-256) -> (the input's metadata, rows written): writes the
shard's Parquet file (by default `read_lhe` of the whole input, batch by batch)."""


def shard_manifest_path(shard: Path) -> Path:
    """`<dir>/<name>.parquet` -> `<dir>/<name>.manifest.json`."""
    return shard.with_name(shard.name.removesuffix(SHARD_SUFFIX) + MANIFEST_SUFFIX)


def _input_stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".lhe"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or "events"


def plan_shard_names(inputs: Sequence[Path]) -> list[str]:
    """Shard file names for `inputs` (same order): `<stem>.parquet`, with `-<8 hex digits of
    the SHA-256 of the absolute input path>` appended to the stems that several inputs share.

    Raises:
        ValueError: the same file is given twice.
    """
    resolved = [Path(p).resolve() for p in inputs]
    seen: dict[Path, Path] = {}
    for given, res in zip(inputs, resolved, strict=True):
        if res in seen:
            raise ValueError(f"input given twice: {seen[res]} and {given}")
        seen[res] = Path(given)
    stems = [_input_stem(p) for p in resolved]
    counts: dict[str, int] = {}
    for stem in stems:
        key = stem.casefold()  # case-insensitive file systems would merge "A" and "a"
        counts[key] = counts.get(key, 0) + 1
    names = []
    for stem, res in zip(stems, resolved, strict=True):
        unique_stem = stem
        if counts[stem.casefold()] > 1:
            unique_stem = f"{stem}-{hashlib.sha256(str(res).encode()).hexdigest()[:8]}"
        names.append(unique_stem + SHARD_SUFFIX)
    return names


# --- the unit and its key ---------------------------------------------------------------------


def shard_unit(task: ShardTask) -> StageUnit:
    """The shard of `task` as a unit of the stage contract: its directory is shared with the
    other shards (and maybe other writers, e.g. Slurm array tasks), so only its own temporary
    files are its own."""
    shard = Path(task.shard)
    return StageUnit(
        stage=_STAGE,
        name=shard.name,
        kind=SHARD_MANIFEST_KIND,
        directory=shard.parent,
        remake=command("preprocess", task.input, "--output", shard.parent),
        manifest_name=shard_manifest_path(shard).name,
        temp_scope=(shard.name,),
        compare=_compare,
    )


def _key(input_record: FileRecord, on_error: OnError) -> dict[str, Any]:
    return {
        "format_version": SHARD_FORMAT_VERSION,
        "tool_version": tool_version(),
        "input": {"path": input_record.path, "sha256": input_record.sha256},
        "on_error": on_error,
    }


def _compare(manifest: Mapping[str, Any], key: Mapping[str, Any]) -> str | None:
    """What makes an old shard differ from the one `key` asks for, or None: one reason each.
    A shard made with another `on_error` is still good when nothing was skipped (no event, no
    truncated end: "fail" would have stopped there)."""
    old = manifest["key"]
    if old["format_version"] != key["format_version"]:
        return "shard format version changed"
    if old["tool_version"] != key["tool_version"]:
        return "tool version changed"
    if old["input"]["path"] != key["input"]["path"]:
        return "shard was made from another input"
    if old["input"]["sha256"] != key["input"]["sha256"]:
        return "input changed"
    info = manifest["lhe_info"]
    if old["on_error"] != key["on_error"] and (info["skipped"] or info.get("truncated")):
        return "options changed"
    return None


def _recorded_input(manifest: Mapping[str, Any] | None) -> FileRecord | None:
    """The input's record in a shard manifest (its `input` section), if readable."""
    try:
        entry = manifest["input"] if manifest is not None else None
        return None if entry is None else FileRecord.from_dict(entry)
    except (KeyError, TypeError, ValueError):
        return None


def _result(
    task: ShardTask,
    unit: StageUnit,
    manifest: Mapping[str, Any],
    *,
    written: bool,
    reason: str,
    start: float,
) -> ShardResult:
    shard = Path(task.shard)
    info = manifest["lhe_info"]
    truncated = info.get("truncated")
    if truncated and not written:
        # Reading the input warned when the shard was written; a kept shard warns again.
        logger.warning("%s (shard %s, kept)", truncated["message"], shard)
    return ShardResult(
        stage=_STAGE,
        name=unit.name,
        status="written" if written else "skipped",
        reason=reason,
        directory=unit.directory,
        manifest=unit.manifest_path,
        outputs=(shard,),
        seconds=time.monotonic() - start,
        input=Path(task.input),
        shard=shard,
        n_events=int(info["n_events"]),
        n_rows=int(manifest["shard"]["n_rows"]),
        n_skipped=int(info["n_skipped"]),
        input_sha256=str(manifest["input"]["sha256"]),
    )


def skipped_without_hashing(task: ShardTask) -> ShardResult | None:
    """The result of a task whose shard is up to date by the cheap check (the input's size and
    mtime unchanged: no hashing), or None: the task must run (in a worker, which hashes)."""
    if task.force:
        return None
    start = time.monotonic()
    unit = shard_unit(task)
    manifest = unit.manifest()
    known = _recorded_input(manifest)
    stat = Path(task.input).stat()  # FileNotFoundError for a missing input
    if (
        manifest is None
        or known is None
        or (known.size_bytes, known.mtime_ns)
        != (
            stat.st_size,
            stat.st_mtime_ns,
        )
    ):
        return None
    if not unit.check(_key(known, task.on_error)).up_to_date:
        return None
    return _result(task, unit, manifest, written=False, reason="up to date", start=start)


def shard_parquet_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """The Parquet writer of a shard (zstd, no dictionaries, byte-stream-split floats)."""
    float_columns = [f.name for f in schema if pa.types.is_floating(f.type)]
    return pq.ParquetWriter(
        path,
        schema,
        compression=PARQUET_COMPRESSION,
        # Kinematics and weights are nearly unique floats: a dictionary never pays off, and
        # byte-stream-split makes them compress markedly better under zstd.
        use_dictionary=False,
        use_byte_stream_split=float_columns or False,
    )


def _write_shard(
    task: ShardTask,
    tmp: Path,
    emit: Emit,
    should_stop: Callable[[], bool],
    input_sha256: str,
) -> tuple[LheInfo, int]:
    stream = read_lhe(task.input, batch_size=task.batch_size, on_error=task.on_error)
    rows = 0
    events = 0
    last_emit = time.monotonic()
    writer = shard_parquet_writer(tmp, stream.schema)
    try:
        for batch in stream:
            if should_stop():
                raise CancelledError(task.input)
            writer.write_batch(batch)
            rows += batch.num_rows
            if batch.num_rows:
                events = int(batch.column("event")[-1].as_py()) + 1
            now = time.monotonic()
            if now - last_emit >= _ADVANCE_INTERVAL_S:
                last_emit = now
                emit("item_advanced", task.input, rows, events, "")
        info = stream.info()
        writer.add_key_value_metadata(footer_metadata(info, input_sha256))
    finally:
        writer.close()
    if rows != info.n_rows:
        raise RuntimeError(
            f"{task.input}: wrote {rows} rows but the reader counted {info.n_rows} accepted events"
        )
    return info, rows


def footer_metadata(info: LheInfo, input_sha256: str) -> dict[str, str]:
    """The key-value metadata of a shard's Parquet footer."""
    return {
        "vbsad_batch.schema_version": str(SHARD_FORMAT_VERSION),
        "vbsad_batch.tool_version": tool_version(),
        "vbsad_batch.input_sha256": input_sha256,
        "vbsad_batch.lhe_info": info.to_json(),
    }


def write_whole_shard(
    task: ShardTask, tmp: Path, emit: Emit, should_stop: Callable[[], bool], input_sha256: str
) -> tuple[LheInfo, int]:
    """The default `ShardWriter`: the whole input read in this process."""
    return _write_shard(task, tmp, emit, should_stop, input_sha256)


def process_file(
    task: ShardTask,
    emit: Emit,
    should_stop: Callable[[], bool],
    *,
    write: ShardWriter | None = None,
) -> ShardResult:
    """Make (or keep, when up to date) the shard of one input file, through the stage
    contract; `write` makes the Parquet file (default: `write_whole_shard`)."""
    start = time.monotonic()
    input_path = Path(task.input)
    shard = Path(task.shard)
    unit = shard_unit(task)
    old = unit.manifest()
    known = _recorded_input(old)
    emit("item_started", task.input, 0, 0, "")
    input_record = fingerprint(input_path.resolve(), known=known)
    key = _key(input_record, task.on_error)
    fresh = unit.check(key)
    if fresh.up_to_date and not task.force and fresh.manifest is not None:
        manifest = fresh.manifest
        reason = "up to date"
        if known is not None and known.mtime_ns != input_record.mtime_ns:
            # Same content, new mtime (copied or touched): keep the shard, remember the mtime.
            manifest = {**manifest, "input": {**manifest["input"], **_input_times(input_record)}}
            write_manifest(unit.manifest_path, manifest)
            reason = "up to date (same sha256)"
        return _result(task, unit, manifest, written=False, reason=reason, start=start)

    reason = "forced" if task.force else fresh.reason
    with unit.writing(key, previous=fresh.manifest) as out:
        # The old shard no longer describes the input: gone before the new one is written, so
        # that a failure leaves nothing stale behind.
        shard.unlink(missing_ok=True)
        with out.path(shard.name) as tmp:
            if write is None:
                info, rows = _write_shard(task, tmp, emit, should_stop, input_record.sha256)
            else:
                info, rows = write(tmp, input_record.sha256)
            after = input_path.stat()
            if (after.st_size, after.st_mtime_ns) != (
                input_record.size_bytes,
                input_record.mtime_ns,
            ):
                raise RuntimeError(f"{task.input}: file changed while it was being read")
        (record,) = [e for e in out.entries() if e["path"] == shard.name]
        out.manifest.update(
            {
                "schema_version": SHARD_FORMAT_VERSION,
                "input": {
                    "path": input_record.path,
                    "given_path": task.input,
                    "size_bytes": input_record.size_bytes,
                    **_input_times(input_record),
                    "sha256": input_record.sha256,
                },
                "shard": {
                    "path": shard.name,
                    "format": "parquet",
                    "compression": PARQUET_COMPRESSION,
                    "size_bytes": record["size_bytes"],
                    "sha256": record["sha256"],
                    "n_rows": rows,
                },
                "options": {"on_error": task.on_error, "batch_size": task.batch_size},
                "lhe_info": info.to_dict(),
            }
        )
    manifest = read_manifest(unit.manifest_path) or {}
    return _result(task, unit, manifest, written=True, reason=reason, start=start)


def _input_times(record: FileRecord) -> dict[str, Any]:
    return {
        "mtime_ns": record.mtime_ns,
        "mtime_utc": _dt.datetime.fromtimestamp(record.mtime_ns / 1e9, tz=_dt.UTC).isoformat(),
    }


# --- the index --------------------------------------------------------------------------------


@contextlib.contextmanager
def _index_lock(output_dir: Path) -> Iterator[None]:
    """Serialise index rebuilds of concurrent runs (best effort: no-op where flock fails)."""
    if sys.platform == "win32":
        yield
        return
    try:
        lock_file = open(output_dir / _LOCK_NAME, "a")  # noqa: SIM115 - held across the yield
    except OSError:
        yield
        return
    with lock_file:
        with contextlib.suppress(OSError):  # e.g. a network file system without locking
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield


def write_index(output_dir: Path) -> Path:
    """Rebuild `manifest.json` from every complete shard manifest in `output_dir`."""
    index_path = output_dir / INDEX_MANIFEST_NAME
    with _index_lock(output_dir):
        shards = []
        for manifest_path in sorted(output_dir.glob("*" + MANIFEST_SUFFIX)):
            manifest = read_manifest(manifest_path)
            if manifest is None or manifest.get("kind") != SHARD_MANIFEST_KIND:
                continue
            try:
                info = manifest["lhe_info"]
                shards.append(
                    {
                        "shard": manifest["shard"]["path"],
                        "manifest": manifest_path.name,
                        "shard_sha256": manifest["shard"]["sha256"],
                        "n_rows": manifest["shard"]["n_rows"],
                        "input": manifest["input"]["path"],
                        "input_sha256": manifest["input"]["sha256"],
                        "n_events": info["n_events"],
                        "n_skipped": info["n_skipped"],
                        "truncated": info.get("truncated"),
                        "sum_weights": info["sum_weights"],
                    }
                )
            except (KeyError, TypeError):
                logger.warning("index: ignoring incomplete manifest %s", manifest_path)
        index = {
            "kind": INDEX_MANIFEST_KIND,
            "schema_version": SHARD_FORMAT_VERSION,
            "n_shards": len(shards),
            "n_rows": sum(int(s["n_rows"]) for s in shards),
            "shards": shards,
            "provenance": runtime_provenance(),
        }
        write_manifest(index_path, index)
    return index_path
