"""`vbsad datasets`: the training and test datasets of an analysis config."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


from vbsad_batch.cli.options import EXIT_OK, PROG, config_file
from vbsad_batch.runtime.progress import make_progress_reporter

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommand to `subparsers` (`common`: the options every subcommand has)."""
    parser = subparsers.add_parser(
        "datasets",
        parents=[common],
        help="write the training and test datasets (Parquet + manifest) of an analysis config",
        description=(
            "Write into <output_dir>/datasets/ of the config: sm_train, sm_validation, sm_test, "
            "the mixed SM+EFT training set of the config's training_operator (label 0 SM, 1 "
            "EFT) and per operator lin_test_<op> and quad_test_<op>, as Parquet (zstd) with the "
            "features, w, yield (events at the config's luminosity in fb^-1, divided by the "
            "split fraction), event and input_sha256, plus manifest.json. Events pass the "
            "config's selection. A re-run with unchanged inputs (SHA-256) and config does "
            "nothing."
        ),
        epilog=f"example: {PROG} datasets examples/ssww_real.toml",
    )
    parser.add_argument("config", type=config_file, metavar="CONFIG", help="analysis config (TOML)")
    parser.add_argument(
        "--training-coefficient",
        type=float,
        default=1.0,
        metavar="C",
        help="Wilson coefficient of the EFT events of the mixed training set: their yields are "
        "c LIN + c^2 QUAD (default: %(default)s)",
    )
    parser.add_argument(
        "--force", action="store_true", help="rewrite the datasets even when they are up to date"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.config import load_config  # noqa: PLC0415 - polars only for this command
    from vbsad_batch.weighting.datasets import build_datasets  # noqa: PLC0415

    config = load_config(args.config)
    with make_progress_reporter(quiet=args.quiet, console=console) as reporter:
        result = build_datasets(
            config,
            progress=reporter,
            force=args.force,
            training_coefficient=args.training_coefficient,
        )
    if not args.quiet:
        print(f"{result.status}: {result.directory} ({result.reason})")
        print(f"sums of yields in events at {config.luminosity_fb:g} fb^-1")
        width = max((len(info.name) for info in result.datasets), default=0)
        for info in result.datasets:
            print(f"  {info.name:<{width}}  {info.n_rows:>9} rows  {info.sum_yield:12.6g}")
        print(f"manifest {result.manifest}")
    return EXIT_OK
