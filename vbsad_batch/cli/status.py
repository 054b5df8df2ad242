"""`vbsad status`: where each stage of an analysis stands, and the command that carries on."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

from vbsad_batch.cli.options import EXIT_DATA_ERROR, EXIT_OK, PROG, config_file

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommand to `subparsers` (`common`: the options every subcommand has)."""
    parser = subparsers.add_parser(
        "status",
        parents=[common],
        help="per stage: done, running, pending, failed or to do (manifests and Slurm)",
        description=(
            "Show, per stage of the analysis (preprocess, datasets, train, score, scan, "
            "report), whether its outputs are done (from the manifests, as the stages check "
            "them), and for what is not: the state of the jobs of the last `vbsad submit` "
            "(squeue; sacct or scontrol for jobs that ended), with the log file of every "
            "failed task, and the command that resubmits what is not done. Works without "
            "Slurm too (then only from the manifests). Exit status 0 when every stage is done "
            "or on its way, 1 when one has failed."
        ),
        epilog=f"example: {PROG} status ana.toml",
    )
    parser.add_argument("config", type=config_file, metavar="CONFIG", help="analysis config (TOML)")
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.config import load_config  # noqa: PLC0415 - polars only for this command
    from vbsad_batch.workflow.status import analysis_status  # noqa: PLC0415

    config = load_config(args.config)
    status = analysis_status(config)
    failed = any(s.status == "failed" for s in status.stages)
    if args.json:
        document = {
            "config": str(config.path),
            "stages": [
                {"stage": s.stage, "status": s.status, "detail": s.detail, "problems": s.problems}
                for s in status.stages
            ],
            "resume": status.resume,
            "slurm": status.slurm_known,
        }
        print(json.dumps(document, indent=2))
        return EXIT_DATA_ERROR if failed else EXIT_OK
    width = max(len(s.stage) for s in status.stages)
    for stage in status.stages:
        print(f"{stage.stage:<{width}}  {stage.status:<7}  {stage.detail}")
        for problem in stage.problems:
            print(f"{'':<{width}}    {problem}")
    if not status.slurm_known:
        print("(no Slurm client commands here: the status is from the manifests only)")
    if status.resume:
        print(f"to carry on: {status.resume}")
    else:
        print("every stage is done")
    return EXIT_DATA_ERROR if failed else EXIT_OK
