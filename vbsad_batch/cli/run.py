"""`vbsad run`: the main job, the whole analysis end to end (the demo without a config).

One run per output directory (`vbsad_batch.pipeline.analysis_lock`): a second `vbsad run` on
the same outputs stops at once, exit status 1, naming the run that holds them; with `--wait`
it queues behind it instead (and then finds what the first one made up to date); with
`--wait-timeout SECONDS`, for at most that long.
"""

from __future__ import annotations

import argparse
import contextlib
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

import dataclasses
from pathlib import Path

from vbsad_batch.cli.options import (
    EXIT_OK,
    PROG,
    UsageError,
    config_file,
    output_directory,
    require_extras,
)
from vbsad_batch.cli.output import logger, print_proxy_table
from vbsad_batch.runtime.output_lock import (
    LOCK_WAIT_ENV,
    OutputBusyError,
    parse_wait,
    waiting_for_writers,
)
from vbsad_batch.runtime.progress import make_progress_reporter

if TYPE_CHECKING:
    from vbsad_batch.config import AnalysisConfig
    from vbsad_batch.runtime.stage import StageResult

__all__ = ["QUICK_EPOCHS", "add_parser", "run"]


QUICK_EPOCHS = 3
"""`--quick` with a config: at most this many epochs."""


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommand to `subparsers` (`common`: the options every subcommand has)."""
    parser = subparsers.add_parser(
        "run",
        parents=[common],
        help="the main job: the whole analysis, end to end (the demo without a config)",
        description=(
            "Run every stage of an analysis in order: datasets -> train (VAE and VAE+NN) -> "
            "score -> scan -> report. Without CONFIG it first writes the embedded demo (toy "
            "SSWW LHE samples for seven operators and their config, a toy for demonstration, "
            "not physics) into DIR and analyses it. Every stage skips itself when its outputs "
            "are up to date, so running again (e.g. after a preemption) redoes only what is "
            "missing. Ends with the sensitivity table (smallest |c| seen at 3 sigma, Lambda = "
            "1 TeV) and <output_dir>/report/index.html."
        ),
        epilog=(
            f"examples: {PROG} run  |  {PROG} run --quick  |  {PROG} run examples/ssww_real.toml"
        ),
    )
    parser.add_argument(
        "config",
        type=config_file,
        nargs="?",
        metavar="CONFIG",
        help="analysis config (TOML); default: the embedded demo",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=output_directory,
        metavar="DIR",
        help="where the demo and its outputs go (default: vbsad-output/demo, or "
        "vbsad-output/demo-quick with --quick); with CONFIG its output_dir is used",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run of about a minute: a small demo (or, with CONFIG, at most "
        f"{QUICK_EPOCHS} epochs, no bootstrap, outputs in <output_dir>-quick); "
        "too little training for physics",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=("vae", "vae_nn"),
        default=["vae", "vae_nn"],
        help="models to train, score and scan (default: %(default)s)",
    )
    parser.add_argument(
        "--force", action="store_true", help="redo every stage even when it is up to date"
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="when another vbsad command is writing these outputs, queue behind it instead "
        "of stopping at once with exit status 1",
    )
    parser.add_argument(
        "--wait-timeout",
        type=_wait_seconds,
        default=None,
        metavar="SECONDS",
        help="wait at most SECONDS for another writer (implies --wait; default: no limit); "
        f"without either option the environment variable {LOCK_WAIT_ENV}=SECONDS decides",
    )
    parser.set_defaults(handler=run)


def _wait_seconds(text: str) -> float:
    """An argparse type: seconds >= 0, or "inf"."""
    try:
        return parse_wait(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _quick_config(config: AnalysisConfig) -> AnalysisConfig:
    """`config` cut down for a smoke run, writing next to (not into) its output directory."""
    training = dataclasses.replace(
        config.training,
        epochs=min(config.training.epochs, QUICK_EPOCHS),
        patience=min(config.training.patience, QUICK_EPOCHS),
    )
    scan = dataclasses.replace(config.scan, bootstrap_replicas=0)
    out = config.output_dir.with_name(config.output_dir.name + "-quick")
    return dataclasses.replace(config, training=training, scan=scan, output_dir=out)


def run(args: argparse.Namespace, console: Console | None) -> int:
    seconds = args.wait_timeout if args.wait_timeout is not None else math.inf
    wait = args.wait or args.wait_timeout is not None
    waiting = waiting_for_writers(seconds) if wait else contextlib.nullcontext()
    try:
        with waiting:
            return _run(args, console)
    except OutputBusyError as exc:  # advice in this command's own options
        if exc.waited_s > 0:
            hint = "wait longer (--wait-timeout SECONDS, or --wait for no limit) or stop it"
        else:
            hint = "wait for it or stop it (or queue behind it: vbsad run --wait)"
        raise exc.with_hint(hint) from None


def _run(args: argparse.Namespace, console: Console | None) -> int:
    require_extras("run", "train", "report")  # before any work: train and report stages
    from vbsad_batch.config import load_config  # noqa: PLC0415 - polars only for this command
    from vbsad_batch.demo.demo_config import DEMO_DEFAULT, DEMO_QUICK  # noqa: PLC0415
    from vbsad_batch.demo.prepare import prepare_demo  # noqa: PLC0415
    from vbsad_batch.pipeline import analysis_lock, run_analysis  # noqa: PLC0415

    def report_stage(label: str, result: StageResult) -> None:
        where = str(result.directory)
        detail = f"{where} ({result.reason})" if result.status == "skipped" else where
        if result.summary:
            detail += f": {result.summary}"
        logger.info("%-13s %-7s %6.1f s  %s", label, result.status, result.seconds, detail)

    with (
        make_progress_reporter(quiet=args.quiet, console=console) as reporter,
        contextlib.ExitStack() as locked,
    ):
        if args.config is None:
            default_dir = "vbsad-output/demo-quick" if args.quick else "vbsad-output/demo"
            directory = args.output if args.output is not None else Path(default_dir)
            settings = DEMO_QUICK if args.quick else DEMO_DEFAULT
            # The demo's samples and config are outputs of the run too: the run's lock (its
            # output directory is the demo's) covers them.
            locked.enter_context(analysis_lock(directory))
            logger.info("embedded demo (toy data, not physics) in %s", directory)
            config_path, demo_result = prepare_demo(
                directory, settings, force=args.force, progress=reporter
            )
            report_stage("demo", demo_result)
            config = load_config(config_path)
        else:
            if args.output is not None:
                raise UsageError("--output is for the demo; a config sets its output_dir")
            if not args.config.is_file():
                raise UsageError(f"no such config file: {args.config}")
            config = load_config(args.config)
            if args.quick:
                config = _quick_config(config)
        logger.info("analysis %s -> %s", config.path, config.output_dir)
        run_analysis(
            config,
            models=args.models,
            force=args.force,
            progress=reporter,
            on_stage=report_stage,
        )
    if not args.quiet:
        from vbsad_batch.report.writer import report_directory  # noqa: PLC0415
        from vbsad_batch.scan.driver import SCAN_DIR_NAME  # noqa: PLC0415

        print_proxy_table(config.output_dir / SCAN_DIR_NAME / "table.md")
        print(f"report: {report_directory(config) / 'index.html'}")
        print(f"outputs: {config.output_dir}")
    return EXIT_OK
