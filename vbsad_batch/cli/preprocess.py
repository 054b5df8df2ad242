"""`vbsad preprocess`: LHE files -> Parquet shards of observables, with manifests."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

import glob
from collections.abc import Sequence
from pathlib import Path

from vbsad_batch.cli.options import (
    EXIT_OK,
    PROG,
    UsageError,
    non_negative_int,
    output_directory,
    positive_int,
)
from vbsad_batch.cli.output import logger
from vbsad_batch.errors import LheParseError
from vbsad_batch.ingest.lhe import DEFAULT_BATCH_SIZE
from vbsad_batch.runtime.cpus import usable_cores
from vbsad_batch.runtime.progress import make_progress_reporter

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommand to `subparsers` (`common`: the options every subcommand has)."""
    parser = subparsers.add_parser(
        "preprocess",
        parents=[common],
        help="LHE files -> one Parquet shard of observables per file, with manifests",
        description=(
            "Read LHE files (.lhe or .lhe.gz) and write, per input file, a Parquet shard "
            "(zstd) of the observables table (masses and momenta in GeV, angles in radians, "
            "weights as in the file, pb for MadGraph) plus <shard>.manifest.json (input "
            "SHA-256, metadata, options), and an index manifest.json for the directory. "
            "Shards that are already up to date (same input SHA-256, same options, same tool "
            "version) are skipped, so an interrupted run can simply be started again. For "
            "samples of hundreds of files: --files-from LIST, and as a Slurm array "
            "--task $SLURM_ARRAY_TASK_ID [--files-per-task K], each task converting its share "
            "of the list into the same directory (or `vbsad submit`, jobs/preprocess.sbatch). "
            "With --config instead of --output: the LHE inputs of an analysis, into the "
            "config's output directory where `vbsad datasets` reads them."
        ),
        epilog=(
            f"examples: {PROG} preprocess data/*.lhe.gz --output shards/ --jobs 4; "
            f"{PROG} preprocess --files-from files.txt --task 3 --files-per-task 10 -o shards/"
        ),
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        type=Path,
        metavar="INPUT",
        help="LHE file (.lhe/.lhe.gz), or a directory: its *.lhe and *.lhe.gz files",
    )
    parser.add_argument(
        "--files-from",
        type=Path,
        metavar="LIST",
        help="a text file with one LHE file, directory or glob pattern per line (relative "
        "paths are relative to LIST's directory; blank lines and lines starting with # are "
        "ignored), after any INPUT",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "-o", "--output", type=output_directory, metavar="DIR", help="output directory"
    )
    target.add_argument(
        "--config",
        type=Path,
        metavar="CONFIG",
        help="an analysis config: convert its LHE inputs (or, with INPUT/--files-from, those "
        "of them given) into its output directory's shard cache, one directory per input, "
        "where `vbsad datasets` reads them",
    )
    parser.add_argument(
        "--task",
        type=non_negative_int,
        metavar="I",
        help="convert only the I-th share of the inputs (an array task: inputs I*K to "
        "I*K+K-1 of the list, K = --files-per-task); shard names are the same as for the "
        "whole list",
    )
    parser.add_argument(
        "--files-per-task",
        type=positive_int,
        default=1,
        metavar="K",
        help="inputs per --task (default: %(default)s)",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=non_negative_int,
        default=1,
        metavar="N",
        help="worker processes, one input file each; 0 = one per available CPU core (the "
        "CPU set, at most the cgroup CPU quota) "
        "(default: %(default)s). A plain (uncompressed) .lhe file of at least 128 MiB and more "
        "than all inputs' bytes / N is cut at events into byte ranges of at least 64 MiB, "
        "converted by the N workers at once "
        "into its one shard (the same shard as one process makes); gzip inputs are never "
        "split (a gzip stream can only be read from its start): one worker each",
    )
    parser.add_argument(
        "--on-error",
        choices=("fail", "skip"),
        default="fail",
        help="malformed event (including a NaN or infinite weight or momentum) or a file "
        "that ends early: 'fail' stops with file:line (no shard for that file), 'skip' drops "
        "the event and lists it in the manifest, and keeps the events before an early end "
        "with a warning (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help="events per record batch and Parquet row group; bounds memory use "
        "(default: %(default)s events)",
    )
    parser.add_argument(
        "--force", action="store_true", help="rewrite shards even when they are up to date"
    )
    parser.set_defaults(handler=run)


def _expand_inputs(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and p.name.lower().endswith((".lhe", ".lhe.gz"))
            )
            if not found:
                raise UsageError(f"no .lhe or .lhe.gz files in directory {path}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise UsageError(f"not a file: {path}")
        else:
            raise UsageError(f"no such file: {path}")
    return files


def _list_entries(list_file: Path) -> list[Path]:
    """The paths of a --files-from list, globs expanded (sorted), relative to its directory."""
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"--files-from: cannot read {list_file}: {exc.strerror}") from exc
    entries: list[Path] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = list_file.parent / path
        if any(c in text for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
            if not matches:
                raise UsageError(f"{list_file}:{number}: the pattern {text!r} matches no file")
            entries.extend(matches)
        elif not path.exists():
            raise UsageError(f"{list_file}:{number}: no such file: {path}")
        else:
            entries.append(path)
    if not entries:
        raise UsageError(f"--files-from: {list_file} lists no file")
    return entries


def task_share(n_inputs: int, task: int, per_task: int) -> range:
    """The indices of array task `task`'s inputs: `per_task` of them from `task * per_task`.

    Raises:
        UsageError: the task has no inputs.
    """
    n_tasks = -(-n_inputs // per_task)
    if task >= n_tasks:
        raise UsageError(
            f"--task {task}: there are {n_inputs} input(s), {per_task} per task, so tasks "
            f"0..{n_tasks - 1} (submit the array as --array=0-{n_tasks - 1})"
        )
    return range(task * per_task, min(n_inputs, (task + 1) * per_task))


def _available_cpus() -> int:
    return usable_cores()  # the CPU set, at most the cgroup CPU quota


def run(args: argparse.Namespace, console: Console | None) -> int:
    # Lazy: pyarrow.parquet and the process pool machinery only for this subcommand.
    from vbsad_batch.ingest.preprocess import preprocess  # noqa: PLC0415
    from vbsad_batch.ingest.shards import INDEX_MANIFEST_NAME  # noqa: PLC0415

    given = list(args.inputs) + (_list_entries(args.files_from) if args.files_from else [])
    if args.config is not None:
        return _run_for_config(args, console, given)
    if not given:
        raise UsageError("no input: give INPUT files or --files-from LIST")
    inputs = _expand_inputs(given)
    subset = None if args.task is None else task_share(len(inputs), args.task, args.files_per_task)
    jobs = args.jobs or _available_cpus()
    try:
        with make_progress_reporter(quiet=args.quiet, console=console) as reporter:
            results = preprocess(
                inputs,
                args.output,
                jobs=jobs,
                on_error=args.on_error,
                batch_size=args.batch_size,
                progress=reporter,
                force=args.force,
                subset=subset,
            )
    except ValueError as exc:
        if isinstance(exc, LheParseError):
            raise
        raise UsageError(str(exc)) from exc

    for result in results:
        if result.n_skipped:
            logger.warning(
                "%s: %d malformed event(s) skipped, listed in %s",
                result.input,
                result.n_skipped,
                result.manifest,
            )
    if not args.quiet:
        width = max(len(r.shard.name) for r in results)
        for r in results:
            print(f"{r.status:<8} {r.shard.name:<{width}} {r.n_rows:>10} rows  ({r.reason})")
        n_written = sum(r.status == "written" for r in results)
        print(
            f"{len(results)} shard(s): {n_written} written, {len(results) - n_written} up to "
            f"date; index {args.output / INDEX_MANIFEST_NAME}"
        )
    return EXIT_OK


def _run_for_config(args: argparse.Namespace, console: Console | None, given: list[Path]) -> int:
    """--config: the analysis's LHE inputs (or those of them given), each into its shard
    directory under the config's output directory, one after the other."""
    from vbsad_batch.config import load_config  # noqa: PLC0415 - polars only here
    from vbsad_batch.ingest.samples import ingest_lhe, input_kind  # noqa: PLC0415

    if args.on_error != "fail" or args.batch_size != DEFAULT_BATCH_SIZE:
        raise UsageError(
            "--config converts the inputs as `vbsad datasets` does: without --on-error or "
            "--batch-size"
        )
    config = load_config(args.config)
    lhe = [f for f in config.input_files() if input_kind(f) == "lhe"]
    if given:
        wanted = {p.resolve() for p in _expand_inputs(given)}
        strangers = sorted(wanted - set(lhe))
        if strangers:
            raise UsageError(f"{strangers[0]}: not an LHE input of {config.path}")
        lhe = [f for f in lhe if f in wanted]
    if not lhe:
        raise UsageError(f"{config.path}: no LHE inputs to convert")
    chosen = (
        range(len(lhe))
        if args.task is None
        else task_share(len(lhe), args.task, args.files_per_task)
    )
    results = []
    with make_progress_reporter(quiet=args.quiet, console=console) as reporter:
        for index in chosen:
            results.append(
                ingest_lhe(lhe[index], config.output_dir, progress=reporter, force=args.force)
            )
    if not args.quiet:
        for r in results:
            print(f"{r.status:<8} {r.input}  {r.n_rows} rows -> {r.shard}  ({r.reason})")
    return EXIT_OK
