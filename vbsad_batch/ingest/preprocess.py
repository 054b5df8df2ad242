"""The ingest stage (`vbsad preprocess`): LHE files -> one Parquet shard per input file, in
worker processes, with one index for the output directory.

Each file is one unit of the stage contract (`vbsad_batch.ingest.shards.process_file`): an up
to date shard is skipped (the cheap check, without hashing, runs in the parent process), a
file that fails leaves no shard, the other files' shards stay. `--jobs N` runs N worker
processes, each taking one whole file at a time; progress from the workers reaches the
caller's callback in the calling thread. A big plain (uncompressed) file, bigger than its
fair share of the work (all inputs' bytes / N), is split into byte ranges at events,
converted by all the workers at once and joined into its one shard, the same as one process
makes (`vbsad_batch.ingest.split_convert`); those files go first, one after the other. Gzip
files are never split. After the run, even a failed one, the index
`manifest.json` lists every complete shard of the directory.

An array job shares the inputs out: each task passes the whole list and its `subset` (the
indices it converts), so that every task names the shards alike (`plan_shard_names` looks at
all inputs); `shards_up_to_date` tells which inputs still need their task.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import multiprocessing
import queue as queue_module
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vbsad_batch.ingest.lhe import DEFAULT_BATCH_SIZE, ByteRange, OnError, check_on_error
from vbsad_batch.ingest.shards import (
    CancelledError,
    ShardResult,
    ShardTask,
    plan_shard_names,
    process_file,
    skipped_without_hashing,
    write_index,
)
from vbsad_batch.ingest.split_convert import (
    MIN_SPLIT_PART_BYTES,
    PartTask,
    convert_part,
    process_split_file,
    split_ranges,
)
from vbsad_batch.runtime.progress import ProgressCallback, ProgressEvent, ProgressKind

if TYPE_CHECKING:
    from multiprocessing.queues import Queue as MpQueue
    from multiprocessing.synchronize import Event as MpEvent

__all__ = ["preprocess", "shards_up_to_date"]

_STAGE = "preprocess"


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


def _run_in_worker(task: ShardTask) -> dict[str, Any]:
    # A dict rather than the dataclass: slotted frozen dataclasses do not pickle on every
    # supported Python version.
    return dataclasses.asdict(process_file(task, _worker_emit, _worker_should_stop))


def _run_part_in_worker(part: PartTask) -> dict[str, Any]:
    return convert_part(part, _worker_should_stop)


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


def _run_serial(tasks: list[ShardTask], reporter: _Reporter) -> dict[str, ShardResult]:
    results: dict[str, ShardResult] = {}
    for task in tasks:
        try:
            result = process_file(task, reporter.emit, lambda: False)
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


def _run_pool(
    tasks: list[ShardTask],
    jobs: int,
    reporter: _Reporter,
    splits: dict[str, list[ByteRange]],
) -> dict[str, ShardResult]:
    # "spawn": safe with threads in the parent (rich's refresh thread, the native reader) and
    # the same behaviour on every OS.
    ctx = multiprocessing.get_context("spawn")
    progress_queue: MpQueue[tuple[Any, ...]] = ctx.Queue()
    cancel = ctx.Event()
    results: dict[str, ShardResult] = {}
    first_error: BaseException | None = None
    with cf.ProcessPoolExecutor(
        max_workers=min(jobs, max([len(tasks), *(len(r) for r in splits.values())])),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(progress_queue, cancel),
    ) as pool:
        pending: set[cf.Future[dict[str, Any]]] = set()
        try:
            # Split files first, one at a time, each with all the workers.
            for task in tasks:
                if task.input not in splits:
                    continue
                try:
                    result = process_split_file(
                        task,
                        splits[task.input],
                        lambda part: pool.submit(_run_part_in_worker, part),
                        reporter.emit,
                        cancel.is_set,
                    )
                except BaseException as failure:
                    reporter.emit("item_failed", task.input, 0, 0, str(failure))
                    raise
                reporter.result(result)
                results[task.input] = result
            whole = [task for task in tasks if task.input not in splits]
            futures = {pool.submit(_run_in_worker, task): task for task in whole}
            pending = set(futures)
            while pending:
                done, pending = cf.wait(pending, timeout=0.1, return_when=cf.FIRST_COMPLETED)
                _drain(progress_queue, reporter)
                for future in done:
                    task = futures[future]
                    if future.cancelled():
                        continue
                    exc = future.exception()
                    if exc is None:
                        result = ShardResult(**future.result())
                        reporter.result(result)
                        results[task.input] = result
                    elif isinstance(exc, CancelledError):
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


def _tasks(
    inputs: Sequence[Path],
    output_dir: Path,
    *,
    on_error: OnError,
    batch_size: int,
    force: bool,
    subset: Sequence[int] | None,
) -> list[ShardTask]:
    """The work orders of the inputs of `subset` (all: None), shards named over all inputs."""
    input_paths = [Path(p) for p in inputs]
    names = plan_shard_names(input_paths)
    chosen = range(len(input_paths)) if subset is None else sorted(set(subset))
    for index in chosen:
        if not 0 <= index < len(input_paths):
            raise ValueError(f"input index {index} is out of range: {len(input_paths)} input(s)")
    return [
        ShardTask(
            input=str(input_paths[i]),
            shard=str(Path(output_dir) / names[i]),
            on_error=on_error,
            batch_size=batch_size,
            force=force,
            total_items=len(chosen),
        )
        for i in chosen
    ]


def _splits(
    todo: Sequence[ShardTask], jobs: int, min_part_bytes: int
) -> dict[str, list[ByteRange]]:
    """The byte ranges of the inputs to split: plain files bigger than a fair share of all
    the work (their bytes times `jobs` above the bytes of all inputs), which would otherwise
    keep one worker busy after the others ran out of files. Many files of similar size keep
    every worker busy as they are, and are not split."""
    if jobs < 2:
        return {}
    sizes = {task.input: Path(task.input).stat().st_size for task in todo}
    total = sum(sizes.values())
    splits = {}
    for task in todo:
        if sizes[task.input] * jobs > total:
            ranges = split_ranges(Path(task.input), jobs, min_part_bytes)
            if ranges is not None:
                splits[task.input] = ranges
    return splits


def shards_up_to_date(
    inputs: Sequence[Path], output_dir: Path, *, on_error: OnError = "fail"
) -> list[bool]:
    """Per input, whether `preprocess(inputs, output_dir)` would skip it (its shard is up to
    date by the cheap check: no input is hashed; a missing input counts as not done)."""
    done = []
    for task in _tasks(
        inputs,
        output_dir,
        on_error=on_error,
        batch_size=DEFAULT_BATCH_SIZE,
        force=False,
        subset=None,
    ):
        try:
            done.append(skipped_without_hashing(task) is not None)
        except FileNotFoundError:
            done.append(False)
    return done


def preprocess(
    inputs: Sequence[Path],
    output_dir: Path,
    *,
    jobs: int = 1,
    on_error: OnError = "fail",
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    force: bool = False,
    subset: Sequence[int] | None = None,
    min_split_part_bytes: int = MIN_SPLIT_PART_BYTES,
) -> list[ShardResult]:
    """Convert LHE files into Parquet shards of observables, one per input, in `output_dir`.

    See the module docstring for the layout, the manifests and when a shard is skipped.

    Args:
        inputs: LHE files (`.lhe` or `.lhe.gz`).
        output_dir: created if missing.
        jobs: worker processes (>= 1); each takes one whole file at a time, except that a
            plain input of at least two `min_split_part_bytes`, bigger than all inputs'
            bytes / `jobs`, is cut at events into up to `jobs` byte ranges converted at once
            (the same shard as one process makes).
        on_error: "fail": the first malformed event stops the run with its `LheParseError`;
            that file gets no shard (shards of other files completed so far stay). "skip":
            malformed events are dropped and listed in the shard manifest (`lhe_info.skipped`).
        batch_size: events per record batch and Parquet row group (bounds memory use).
        progress: called with `ProgressEvent`s (in the calling thread).
        force: rewrite shards even when up to date.
        subset: the indices of `inputs` to convert (an array task's share; None: all); the
            shard names are planned over all `inputs`, and only the subset must exist.
        min_split_part_bytes: the smallest byte range a plain input is cut into (bytes).

    Returns:
        One `ShardResult` per converted input, in input order.

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
    output_dir = Path(output_dir)
    tasks = _tasks(
        inputs, output_dir, on_error=on_error, batch_size=batch_size, force=force, subset=subset
    )
    for task in tasks:
        path = Path(task.input)
        if not path.is_file():
            if path.exists():
                raise ValueError(f"not a file: {path}")
            raise FileNotFoundError(f"no such file: {path}")
    output_dir.mkdir(parents=True, exist_ok=True)
    reporter = _Reporter(progress, len(tasks))
    reporter.run_event("run_started")

    results: dict[str, ShardResult] = {}
    todo: list[ShardTask] = []
    for task in tasks:
        skipped = skipped_without_hashing(task)
        if skipped is None:
            todo.append(task)
        else:
            reporter.result(skipped)
            results[task.input] = skipped

    try:
        splits = _splits(todo, jobs, min_split_part_bytes)
        if jobs == 1 or (len(todo) <= 1 and not splits):
            results.update(_run_serial(todo, reporter))
        else:
            results.update(_run_pool(todo, jobs, reporter, splits))
    except BaseException:
        # Also after a failure: the index then lists the shards that did complete.
        with contextlib.suppress(Exception):
            write_index(output_dir)
        raise
    write_index(output_dir)

    ordered = [results[task.input] for task in tasks]
    n_written = sum(r.status == "written" for r in ordered)
    reporter.run_event(
        "run_finished", f"{n_written} written, {len(ordered) - n_written} up to date"
    )
    return ordered
