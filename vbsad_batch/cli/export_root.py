"""`vbsad export-root`: Parquet shards -> ROOT ntuples."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

from pathlib import Path

from vbsad_batch.cli.options import EXIT_OK, PROG, UsageError, output_directory

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommand to `subparsers` (`common`: the options every subcommand has)."""
    parser = subparsers.add_parser(
        "export-root",
        parents=[common],
        help="Parquet shards -> ROOT ntuples (TTree + <sample>_nums histogram)",
        description=(
            "Write one ROOT file ntuple_<name>.root per Parquet shard of 'vbsad preprocess': a "
            "TTree <name> with one float branch per observable (GeV, radians) and the weight w "
            "(pb), and a TH1F <name>_nums with the cross section (pb) in bin 1 and the sum of "
            "the weights of all generated events in bin 2, plus a JSON manifest per file. "
            "Values are stored as 32-bit floats."
        ),
        epilog=f"example: {PROG} export-root shards/ --output ntuples/",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="Parquet shard (with its .manifest.json), or a directory: its *.parquet shards",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=output_directory,
        metavar="DIR",
        help="output directory",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.ingest.root_export import export_shards  # noqa: PLC0415 - uproot only here

    written = export_shards(args.inputs, args.output)
    if not written:
        raise UsageError(f"no Parquet shards in {', '.join(str(p) for p in args.inputs)}")
    if not args.quiet:
        for path in written:
            print(path)
    return EXIT_OK
