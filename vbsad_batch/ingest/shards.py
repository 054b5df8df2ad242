"""The ingest stage: LHE files -> one Parquet shard per input file, with manifests.

For each input `<dir>/<name>.lhe[.gz]` the output directory gets

- `<name>.parquet`: the observables table of `vbsad_batch.ingest.read_lhe` (zstd), written
  batch by batch (memory stays bounded by one record batch, whatever the file size), to a
  temporary file that is renamed into place when complete;
  The Parquet footer's key-value metadata (`pyarrow.parquet.read_metadata(path).metadata`)
  repeats the essentials: `vbsad_batch.lhe_info` (JSON), `vbsad_batch.input_sha256`,
  `vbsad_batch.tool_version`, `vbsad_batch.schema_version`;
- `<name>.manifest.json`: written last, atomically; its presence marks the shard complete. It
  records the input (absolute path, size in bytes, mtime, SHA-256), the file's `LheInfo`
  metadata (including skipped events), the options, the tool and shard-format versions, and the
  shard's size, SHA-256 and row count;

and the directory gets an index `manifest.json` listing every complete shard in it (rebuilt at
the end of each run, so it also covers shards written by other runs, e.g. Slurm array tasks;
concurrent rebuilds are serialised with `flock` on the empty file `.vbsad-index.lock`).

Re-runs are incremental. A shard is up to date when its manifest exists, was written by the
same tool and shard-format version from the same input path with the same SHA-256, with
compatible options (same `on_error`, or no event was skipped), and the shard file still has the
recorded size. To avoid re-hashing large inputs on every run, an input whose size and mtime
equal the recorded ones is taken as unchanged without hashing; if only the mtime differs, the
input is hashed and, when the hash is unchanged, the manifest's mtime is refreshed and the shard
kept. A different size always means a changed input.

If two inputs share a name (`a/x.lhe` and `b/x.lhe.gz`), each of them gets a shard name with
the first 8 hex digits of the SHA-256 of its absolute path appended (`x-1f2e3d4c.parquet`), so
names are deterministic.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime as _dt
import hashlib
import logging
import multiprocessing
import os
import queue as queue_module
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from vbsad_batch.ingest.lhe import DEFAULT_BATCH_SIZE, LheInfo, OnError, check_on_error, read_lhe
from vbsad_batch.runtime.atomic_write import atomic_path, remove_stale_temp_files
from vbsad_batch.runtime.progress import ProgressCallback, ProgressEvent, ProgressKind
from vbsad_batch.runtime.provenance import (
    MANIFEST_NAME,
    fingerprint_file,
    read_manifest,
    runtime_provenance,
    sha256_file,
    tool_version,
    write_manifest,
)

if sys.platform != "win32":
    import fcntl

if TYPE_CHECKING:
    from multiprocessing.queues import Queue as MpQueue
    from multiprocessing.synchronize import Event as MpEvent

__all__ = [
    "INDEX_MANIFEST_NAME",
    "SHARD_FORMAT_VERSION",
    "ShardResult",
    "ShardStatus",
    "plan_shard_names",
    "preprocess",
    "shard_manifest_path",
]

logger = logging.getLogger(__name__)

SHARD_FORMAT_VERSION = 1
"""Version of the shard layout and manifest format; bump when either changes."""

SHARD_SUFFIX = ".parquet"
MANIFEST_SUFFIX = ".manifest.json"
INDEX_MANIFEST_NAME = MANIFEST_NAME
SHARD_MANIFEST_KIND = "vbsad_batch.preprocess.shard"
INDEX_MANIFEST_KIND = "vbsad_batch.preprocess.index"
PARQUET_COMPRESSION = "zstd"
_LOCK_NAME = ".vbsad-index.lock"
_STAGE = "preprocess"
_ADVANCE_INTERVAL_S = 0.25

ShardStatus = Literal["written", "skipped"]


@dataclass(frozen=True, slots=True)
class ShardResult:
    """What `preprocess` did for one input file.

    Attributes:
        input: the input file, as given.
        shard: the Parquet shard.
        manifest: the shard's manifest.
        status: "written" (processed in this run) or "skipped" (already up to date).
        reason: why it was written ("new", "input changed", ...) or "up to date".
        n_events: events in the input (all of them).
        n_rows: rows in the shard (events with >= 2 charged leptons and >= 2 jets).
        n_skipped: malformed events skipped (on_error="skip").
        input_sha256: hex SHA-256 of the input file.
        seconds: wall time spent on this file in this run, s.
    """

    input: Path
    shard: Path
    manifest: Path
    status: ShardStatus
    reason: str
    n_events: int
    n_rows: int
    n_skipped: int
    input_sha256: str
    seconds: float


@dataclass(frozen=True, slots=True)
class _Task:
    """One input file's work order (sent to worker processes, so only plain fields)."""

    input: str
    shard: str
    on_error: OnError
    batch_size: int
    force: bool
    total_items: int


class _CancelledError(Exception):
    """Raised in a worker between batches when another file already failed the run."""


Emit = Callable[[ProgressKind, str, int, int, str], None]


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


# --- up-to-date check ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Verdict:
    # True: up to date; False: must be rewritten; None: only hashing the input can tell.
    up_to_date: bool | None
    reason: str


def _check_manifest(  # noqa: PLR0911 - one early return per reason
    manifest: dict[str, Any] | None,
    input_path: Path,
    input_stat: os.stat_result,
    shard: Path,
    on_error: OnError,
) -> _Verdict:
    """Everything except hashing the input."""
    if manifest is None:
        return _Verdict(False, "new")
    try:
        if manifest.get("kind") != SHARD_MANIFEST_KIND:
            return _Verdict(False, "manifest of another kind")
        if manifest.get("schema_version") != SHARD_FORMAT_VERSION:
            return _Verdict(False, "shard format version changed")
        if manifest["provenance"]["tool_version"] != tool_version():
            return _Verdict(False, "tool version changed")
        recorded_input = manifest["input"]
        if recorded_input["path"] != str(input_path.resolve()):
            return _Verdict(False, "shard was made from another input")
        old_on_error = manifest["options"]["on_error"]
        if old_on_error != on_error and manifest["lhe_info"]["n_skipped"] != 0:
            return _Verdict(False, "options changed")
        try:
            shard_size = shard.stat().st_size
        except FileNotFoundError:
            return _Verdict(False, "shard missing")
        if shard_size != manifest["shard"]["size_bytes"]:
            return _Verdict(False, "shard size differs from its manifest")
        if input_stat.st_size != recorded_input["size_bytes"]:
            return _Verdict(False, "input changed")
        if input_stat.st_mtime_ns == recorded_input["mtime_ns"]:
            return _Verdict(True, "up to date")
    except (KeyError, TypeError):
        return _Verdict(False, "manifest incomplete")
    return _Verdict(None, "input mtime changed")


def _result_from_manifest(
    task: _Task, manifest: dict[str, Any], status: ShardStatus, reason: str, seconds: float
) -> ShardResult:
    shard = Path(task.shard)
    info = manifest["lhe_info"]
    return ShardResult(
        input=Path(task.input),
        shard=shard,
        manifest=shard_manifest_path(shard),
        status=status,
        reason=reason,
        n_events=int(info["n_events"]),
        n_rows=int(manifest["shard"]["n_rows"]),
        n_skipped=int(info["n_skipped"]),
        input_sha256=str(manifest["input"]["sha256"]),
        seconds=seconds,
    )


# --- one file ------------------------------------------------------------------------------


def _parquet_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
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
    task: _Task,
    tmp: Path,
    emit: Emit,
    should_stop: Callable[[], bool],
    input_sha256: str,
) -> tuple[LheInfo, int]:
    stream = read_lhe(task.input, batch_size=task.batch_size, on_error=task.on_error)
    rows = 0
    events = 0
    last_emit = time.monotonic()
    writer = _parquet_writer(tmp, stream.schema)
    try:
        for batch in stream:
            if should_stop():
                raise _CancelledError(task.input)
            writer.write_batch(batch)
            rows += batch.num_rows
            if batch.num_rows:
                events = int(batch.column("event")[-1].as_py()) + 1
            now = time.monotonic()
            if now - last_emit >= _ADVANCE_INTERVAL_S:
                last_emit = now
                emit("item_advanced", task.input, rows, events, "")
        info = stream.info()
        writer.add_key_value_metadata(
            {
                "vbsad_batch.schema_version": str(SHARD_FORMAT_VERSION),
                "vbsad_batch.tool_version": tool_version(),
                "vbsad_batch.input_sha256": input_sha256,
                "vbsad_batch.lhe_info": info.to_json(),
            }
        )
    finally:
        writer.close()
    if rows != info.n_rows:
        raise RuntimeError(
            f"{task.input}: wrote {rows} rows but the reader counted {info.n_rows} accepted events"
        )
    return info, rows


def _process_file(task: _Task, emit: Emit, should_stop: Callable[[], bool]) -> ShardResult:
    start = time.monotonic()
    input_path = Path(task.input)
    shard = Path(task.shard)
    manifest_path = shard_manifest_path(shard)
    input_stat = input_path.stat()  # FileNotFoundError for a missing input

    old = read_manifest(manifest_path)
    verdict = _check_manifest(old, input_path, input_stat, shard, task.on_error)
    reason = verdict.reason
    if task.force:
        reason = "forced"
    elif verdict.up_to_date and old is not None:
        return _result_from_manifest(task, old, "skipped", reason, time.monotonic() - start)

    emit("item_started", task.input, 0, 0, "")
    fingerprint = fingerprint_file(input_path)
    if verdict.up_to_date is None and not task.force and old is not None:
        if old["input"]["sha256"] == fingerprint.sha256:
            # Same content, new mtime (copied or touched): keep the shard, remember the mtime.
            refreshed = dict(old)
            refreshed["input"] = {**old["input"], "mtime_ns": fingerprint.mtime_ns}
            write_manifest(manifest_path, refreshed)
            return _result_from_manifest(
                task, refreshed, "skipped", "up to date (same sha256)", time.monotonic() - start
            )
        reason = "input changed"

    # From here on the old outputs no longer describe the input: drop the manifest first (it
    # marks completion), then the shard, so that a failure leaves nothing stale behind.
    manifest_path.unlink(missing_ok=True)
    shard.unlink(missing_ok=True)
    remove_stale_temp_files(shard.parent, shard.name)
    remove_stale_temp_files(shard.parent, manifest_path.name)

    with atomic_path(shard) as tmp:
        info, rows = _write_shard(task, tmp, emit, should_stop, fingerprint.sha256)
        if not fingerprint.same_stat(input_path.stat()):
            raise RuntimeError(f"{task.input}: file changed while it was being read")
        shard_size = tmp.stat().st_size
        shard_sha256 = sha256_file(tmp)

    manifest = {
        "kind": SHARD_MANIFEST_KIND,
        "schema_version": SHARD_FORMAT_VERSION,
        "input": {
            "path": fingerprint.path,
            "given_path": task.input,
            "size_bytes": fingerprint.size_bytes,
            "mtime_ns": fingerprint.mtime_ns,
            "mtime_utc": _dt.datetime.fromtimestamp(
                fingerprint.mtime_ns / 1e9, tz=_dt.UTC
            ).isoformat(),
            "sha256": fingerprint.sha256,
        },
        "shard": {
            "path": shard.name,
            "format": "parquet",
            "compression": PARQUET_COMPRESSION,
            "size_bytes": shard_size,
            "sha256": shard_sha256,
            "n_rows": rows,
        },
        "options": {"on_error": task.on_error, "batch_size": task.batch_size},
        "lhe_info": info.to_dict(),
        "provenance": runtime_provenance(),
        "seconds": round(time.monotonic() - start, 3),
    }
    write_manifest(manifest_path, manifest)
    return _result_from_manifest(task, manifest, "written", reason, time.monotonic() - start)


# --- worker processes ----------------------------------------------------------------------


class _WorkerState:
    """Per-process channels to the parent, set once by the pool's initializer."""

    progress_queue: MpQueue[tuple[Any, ...]] | None = None
    cancel: MpEvent | None = None


def _init_worker(progress_queue: MpQueue[tuple[Any, ...]], cancel: MpEvent) -> None:
    _WorkerState.progress_queue = progress_queue
    _WorkerState.cancel = cancel
    # Progress messages are disposable: never block the worker's exit on flushing them.
    progress_queue.cancel_join_thread()


def _worker_emit(kind: ProgressKind, item: str, rows: int, events: int, message: str) -> None:
    if _WorkerState.progress_queue is not None:
        _WorkerState.progress_queue.put((kind, item, rows, events, message))


def _worker_should_stop() -> bool:
    return _WorkerState.cancel is not None and _WorkerState.cancel.is_set()


def _run_in_worker(task: _Task) -> tuple[Any, ...]:
    # A tuple rather than the dataclass: slotted frozen dataclasses do not pickle on every
    # supported Python version.
    return astuple(_process_file(task, _worker_emit, _worker_should_stop))


# --- the run -------------------------------------------------------------------------------


class _Reporter:
    """Turns per-file progress into `ProgressEvent`s for the caller's callback."""

    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self._callback = callback
        self._total = total
        self._finished: set[str] = set()

    def emit(
        self,
        kind: ProgressKind,
        item: str,
        rows: int,
        events: int,
        message: str,
        *,
        seconds: float = 0.0,
    ) -> None:
        if self._callback is None or item in self._finished:
            return  # late progress from a worker for a file already reported as done
        if kind in ("item_finished", "item_skipped", "item_failed"):
            self._finished.add(item)
        self._callback(
            ProgressEvent(
                stage=_STAGE,
                kind=kind,
                item=item,
                total_items=self._total,
                rows=rows,
                events=events,
                message=message,
                seconds=seconds,
            )
        )

    def run_event(self, kind: ProgressKind, message: str = "") -> None:
        if self._callback is not None:
            self._callback(
                ProgressEvent(stage=_STAGE, kind=kind, total_items=self._total, message=message)
            )

    def result(self, result: ShardResult) -> None:
        if result.status == "written":
            self.emit(
                "item_finished",
                str(result.input),
                result.n_rows,
                result.n_events,
                str(result.shard),
                seconds=result.seconds,
            )
        else:
            self.emit("item_skipped", str(result.input), result.n_rows, 0, result.reason)


def _fast_skip(task: _Task) -> ShardResult | None:
    """The result for a task that is up to date by the stat-only check (no hashing, no worker)."""
    if task.force:
        return None
    manifest_path = shard_manifest_path(Path(task.shard))
    manifest = read_manifest(manifest_path)
    input_path = Path(task.input)
    verdict = _check_manifest(
        manifest, input_path, input_path.stat(), Path(task.shard), task.on_error
    )
    if verdict.up_to_date and manifest is not None:
        return _result_from_manifest(task, manifest, "skipped", verdict.reason, 0.0)
    return None


def _run_serial(tasks: list[_Task], reporter: _Reporter) -> dict[str, ShardResult]:
    results: dict[str, ShardResult] = {}
    for task in tasks:
        try:
            result = _process_file(task, reporter.emit, lambda: False)
        except Exception as exc:
            reporter.emit("item_failed", task.input, 0, 0, str(exc))
            raise
        reporter.result(result)
        results[task.input] = result
    return results


def _drain(progress_queue: MpQueue[tuple[Any, ...]], reporter: _Reporter) -> None:
    while True:
        try:
            kind, item, rows, events, message = progress_queue.get_nowait()
        except queue_module.Empty:
            return
        reporter.emit(kind, item, rows, events, message)


def _run_pool(tasks: list[_Task], jobs: int, reporter: _Reporter) -> dict[str, ShardResult]:
    # "spawn": safe with threads in the parent (rich's refresh thread, the native reader) and
    # the same behaviour on every OS.
    ctx = multiprocessing.get_context("spawn")
    progress_queue: MpQueue[tuple[Any, ...]] = ctx.Queue()
    cancel = ctx.Event()
    results: dict[str, ShardResult] = {}
    first_error: BaseException | None = None
    with cf.ProcessPoolExecutor(
        max_workers=min(jobs, len(tasks)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(progress_queue, cancel),
    ) as pool:
        futures = {pool.submit(_run_in_worker, task): task for task in tasks}
        pending = set(futures)
        try:
            while pending:
                done, pending = cf.wait(pending, timeout=0.1, return_when=cf.FIRST_COMPLETED)
                _drain(progress_queue, reporter)
                for future in done:
                    task = futures[future]
                    if future.cancelled():
                        continue
                    exc = future.exception()
                    if exc is None:
                        result = ShardResult(*future.result())
                        reporter.result(result)
                        results[task.input] = result
                    elif isinstance(exc, _CancelledError):
                        continue
                    else:
                        reporter.emit("item_failed", task.input, 0, 0, str(exc))
                        if first_error is None:
                            # Stop the run: queued files never start, running ones stop at
                            # their next batch and remove their temporary shard.
                            first_error = exc
                            cancel.set()
                            for other in pending:
                                other.cancel()
        except BaseException:
            cancel.set()
            for other in pending:
                other.cancel()
            raise
    _drain(progress_queue, reporter)
    if first_error is not None:
        raise first_error
    return results


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


def _write_index(output_dir: Path) -> Path:
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


def preprocess(
    inputs: Sequence[Path],
    output_dir: Path,
    *,
    jobs: int = 1,
    on_error: OnError = "fail",
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    force: bool = False,
) -> list[ShardResult]:
    """Convert LHE files into Parquet shards of observables, one per input, in `output_dir`.

    See the module docstring for the layout, the manifests and when a shard is skipped.

    Args:
        inputs: LHE files (`.lhe` or `.lhe.gz`).
        output_dir: created if missing.
        jobs: worker processes (>= 1); each takes one whole file at a time.
        on_error: "fail": the first malformed event stops the run with its `LheParseError`;
            that file gets no shard (shards of other files completed so far stay). "skip":
            malformed events are dropped and listed in the shard manifest (`lhe_info.skipped`).
        batch_size: events per record batch and Parquet row group (bounds memory use).
        progress: called with `ProgressEvent`s (in the calling thread).
        force: rewrite shards even when up to date.

    Returns:
        One `ShardResult` per input, in input order.

    Raises:
        LheParseError: with on_error="fail", the first malformed input.
        FileNotFoundError: an input does not exist.
        ValueError: invalid arguments, or the same input given twice.
    """
    check_on_error(on_error)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    input_paths = [Path(p) for p in inputs]
    for path in input_paths:
        if not path.is_file():
            if path.exists():
                raise ValueError(f"not a file: {path}")
            raise FileNotFoundError(f"no such file: {path}")
    names = plan_shard_names(input_paths)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    tasks = [
        _Task(
            input=str(path),
            shard=str(output_dir / name),
            on_error=on_error,
            batch_size=batch_size,
            force=force,
            total_items=len(input_paths),
        )
        for path, name in zip(input_paths, names, strict=True)
    ]
    reporter = _Reporter(progress, len(tasks))
    reporter.run_event("run_started")

    results: dict[str, ShardResult] = {}
    todo: list[_Task] = []
    for task in tasks:
        skipped = _fast_skip(task)
        if skipped is None:
            todo.append(task)
        else:
            reporter.result(skipped)
            results[task.input] = skipped

    try:
        if jobs == 1 or len(todo) <= 1:
            results.update(_run_serial(todo, reporter))
        else:
            results.update(_run_pool(todo, jobs, reporter))
    except BaseException:
        # Also after a failure: the index then lists the shards that did complete.
        with contextlib.suppress(Exception):
            _write_index(output_dir)
        raise
    _write_index(output_dir)

    ordered = [results[task.input] for task in tasks]
    n_written = sum(r.status == "written" for r in ordered)
    reporter.run_event(
        "run_finished", f"{n_written} written, {len(ordered) - n_written} up to date"
    )
    return ordered
