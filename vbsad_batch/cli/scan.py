"""`vbsad scan`: the sensitivity table, alone or under MPI."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

import logging
import sys

from vbsad_batch.cli.options import EXIT_DATA_ERROR, EXIT_OK, PROG, config_file
from vbsad_batch.cli.output import print_error, print_proxy_table
from vbsad_batch.runtime.progress import make_progress_reporter

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommand to `subparsers` (`common`: the options every subcommand has)."""
    parser = subparsers.add_parser(
        "scan",
        parents=[common],
        help="sensitivity table: the smallest Wilson coefficients each model sees at 3 sigma",
        description=(
            "For every model scored by 'vbsad score' and every operator of the config: scan "
            "every distinct score threshold (region: score >= threshold) and find the smallest "
            "c- < 0 < c+ (Lambda = 1 TeV) with sigma = |c L + c^2 Q| / sqrt(S) = 3 over the "
            "admissible regions (S, L, Q: SM, LIN, QUAD yields in events at the config's "
            "luminosity), the same with the Asimov significance, the expected 95% CL interval "
            "from a binned likelihood, and bootstrap uncertainties, with the settings of the "
            "config's [scan] section. The region is chosen on the validation split and the "
            'limit quoted on the test split ([scan] region_from = "validation", the default; '
            '"test" chooses and quotes on the test split, the paper\'s method, and the table '
            "shows the other choice too). Every table has the best single cut (each observable "
            "of the config as the score, both directions) as a baseline, the ratio of each "
            "model to it, and for a grid of seeds the median limit over seeds with the seed "
            "spread. Writes <output_dir>/scan/: table.csv, table.json, "
            "table.md (models as rows, operators as columns), curves.parquet (S, L, Q and the "
            "SM efficiency per threshold), sigma_curves.parquet (sigma(c) at each limit's "
            "region), for operator pairs with MIX samples contours.parquet and "
            "contour_grid.parquet (sigma(c_a, c_b) = 3), and manifest.json. Runs alone or under "
            "'mpiexec -n N' "
            "(the work is split over the ranks; the outputs are identical). A run whose inputs "
            "and settings are unchanged does nothing."
        ),
        epilog=f"example: mpiexec -n 4 {PROG} scan examples/ssww_real.toml",
    )
    parser.add_argument("config", type=config_file, metavar="CONFIG", help="analysis config (TOML)")
    parser.add_argument(
        "--models",
        nargs="+",
        metavar="MODEL",
        help="model directory names under <output_dir>/scores/, e.g. vae_latent3 "
        "vae_nn_latent3_cW (default: every scored model)",
    )
    parser.add_argument(
        "--force", action="store_true", help="recompute even when the outputs are up to date"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.config import ConfigError, load_config  # noqa: PLC0415 - polars only here
    from vbsad_batch.runtime.mpi import RankFailure, abort, world  # noqa: PLC0415
    from vbsad_batch.scan.driver import run_scan  # noqa: PLC0415 - numpy, scipy only here

    comm = world()
    rank = comm.rank
    if rank != 0:  # only rank 0 prints
        logging.getLogger("vbsad_batch").setLevel(logging.CRITICAL + 1)
    try:
        config = load_config(args.config)
        with make_progress_reporter(quiet=args.quiet or rank != 0, console=console) as reporter:
            result = run_scan(
                config, models=args.models, comm=comm, progress=reporter, force=args.force
            )
    except (RankFailure, ConfigError):
        # Raised on every rank (a failed work item, an error of rank 0's planning, an invalid
        # config): rank 0 reports it, the others just fail.
        if rank != 0:
            return EXIT_DATA_ERROR
        raise
    except BaseException as exc:
        if rank == 0 or comm.size == 1:
            raise
        # An error that only this rank sees: the others may wait for it in a collective.
        print_error(f"rank {rank}: {' '.join(str(exc).split()) or type(exc).__name__}")
        sys.stderr.flush()
        abort(comm, EXIT_DATA_ERROR)
    if result is None or args.quiet:
        return EXIT_OK
    print(
        f"{result.status}: {result.directory} ("
        + (f"{result.reason}; " if result.status == "skipped" else "")
        + f"{result.items} work item(s) on {result.ranks} rank(s))"
    )
    print_proxy_table(result.directory / "table.md")
    for path in result.outputs:
        print(path)
    return EXIT_OK
