"""`vbsad demo-data`: the built-in toy demo LHE samples (a toy, not physics)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


from vbsad_batch.cli.options import EXIT_OK, non_negative_int, output_directory, positive_int

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommand to `subparsers` (`common`: the options every subcommand has)."""
    parser = subparsers.add_parser(
        "demo-data",
        parents=[common],
        help="write the built-in demo LHE samples (a toy, not physics)",
        description=(
            "Write the built-in demo samples to DIR: toy same-sign WW scattering in MadGraph 3 "
            "LHE format (GeV, pb). ssww_demo.lhe.gz holds SM events with reweighting weights "
            "at c = 0 and c = +-1 for each demo operator (cW, cHW, cHq1, cqq1, cqq11, cqq3, "
            "cqq31); ssww_demo_<op>_LIN.lhe.gz and _QUAD.lhe.gz hold events of each operator's "
            "interference (signed weights) and squared term at c = 1, as separately generated "
            "samples. The toy EFT response grows with the diboson or dijet energy and changes "
            "angular and rapidity distributions: some operators are easy to see, some hard. "
            "It is a toy for demonstration and testing, not a physics generator. From 20,000 "
            "events in all, the files are written by one process per usable core at once "
            "(the same bytes as one process writes)."
        ),
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=output_directory,
        metavar="DIR",
        help="output directory",
    )
    parser.add_argument(
        "-n",
        "--events",
        type=positive_int,
        default=5000,
        metavar="N",
        help="SM events (default: %(default)s events)",
    )
    parser.add_argument(
        "--eft-events",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="events per LIN and per QUAD sample; 0 writes only the SM sample "
        "(default: half of --events)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=1,
        metavar="S",
        help="random seed; the same seed gives the same files (default: %(default)s)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.demo.lhe_writer import generate_demo  # noqa: PLC0415 - numpy only for this command

    eft_events = args.events // 2 if args.eft_events is None else args.eft_events
    paths = generate_demo(
        args.output,
        n_events=args.events,
        eft_events=eft_events,
        seed=args.seed,
        eft_samples=eft_events > 0,
    )
    if not args.quiet:
        for path in paths:
            print(path)
    return EXIT_OK
