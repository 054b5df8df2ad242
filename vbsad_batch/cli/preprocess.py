"""`vbsad preprocess`: LHE files -> Parquet shards of observables, with manifests."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

import os
from collections.abc import Sequence
from pathlib import Path

from vbsad_batch.cli.options import EXIT_OK, PROG, UsageError, non_negative_int, positive_int
from vbsad_batch.cli.output import logger
from vbsad_batch.errors import LheParseError
from vbsad_batch.ingest.lhe import DEFAULT_BATCH_SIZE
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
            "version) are skipped, so an interrupted run can simply be started again."
        ),
        epilog=f"example: {PROG} preprocess data/*.lhe.gz --output shards/ --jobs 4",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="LHE file (.lhe/.lhe.gz), or a directory: its *.lhe and *.lhe.gz files",
    )
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="DIR", help="output directory"
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=non_negative_int,
        default=1,
        metavar="N",
        help="worker processes, one input file each; 0 = one per available CPU core "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--on-error",
        choices=("fail", "skip"),
        default="fail",
        help="malformed event: 'fail' stops with file:line (no shard for that file), 'skip' "
        "drops the event and lists it in the manifest (default: %(default)s)",
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


def _available_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # respects the CPU set of a Slurm allocation
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def run(args: argparse.Namespace, console: Console | None) -> int:
    # Lazy: pyarrow.parquet and the process pool machinery only for this subcommand.
    from vbsad_batch.ingest.preprocess import preprocess  # noqa: PLC0415
    from vbsad_batch.ingest.shards import INDEX_MANIFEST_NAME  # noqa: PLC0415

    inputs = _expand_inputs(args.inputs)
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
