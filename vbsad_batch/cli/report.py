"""`vbsad report`: figures, index.html and summary.md of an analysis."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


from vbsad_batch.cli.options import EXIT_OK, PROG, config_file, require_extras
from vbsad_batch.runtime.progress import make_progress_reporter

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommand to `subparsers` (`common`: the options every subcommand has)."""
    parser = subparsers.add_parser(
        "report",
        parents=[common],
        help="figures, report/index.html and report/summary.md of an analysis",
        description=(
            "Write <output_dir>/report/ from the outputs of the other stages: figures (PNG): "
            "per observable the SM, LIN and QUAD distributions normalised to unit area (GeV, "
            "rad), input versus reconstruction for SM and BSM events, the MSE / KLD / score "
            "distributions of SM versus BSM, the score versus mjj, sigma(c) per operator and "
            "the training curves; index.html (self-contained, opens offline) and summary.md "
            "with the sensitivity table, the configuration and the provenance (path, size, "
            "SHA-256) of every input. Needs the datasets; models, scores and the scan are drawn "
            "when present and listed as missing otherwise. Skipped when its inputs are unchanged."
        ),
        epilog=f"example: {PROG} report examples/ssww_real.toml",
    )
    parser.add_argument("config", type=config_file, metavar="CONFIG", help="analysis config (TOML)")
    parser.add_argument(
        "--force", action="store_true", help="rewrite even when the report is up to date"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.config import load_config  # noqa: PLC0415 - polars only for this command
    from vbsad_batch.report.writer import write_report  # noqa: PLC0415 - matplotlib only here

    require_extras("report", "report")  # no TensorFlow: the networks are evaluated in NumPy
    config = load_config(args.config)
    with make_progress_reporter(quiet=args.quiet, console=console) as reporter:
        result = write_report(config, force=args.force, progress=reporter)
    if not args.quiet:
        print(f"{result.status}: {result.directory} ({result.reason})")
        for line in result.missing:
            print(f"missing: {line}")
        if result.warnings:
            print(f"{len(result.warnings)} warning(s) in the report's Status section")
        print(result.index_html)
        print(result.summary_md)
    return EXIT_OK
