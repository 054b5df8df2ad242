"""`vbsad score`: the per-event anomaly scores of a trained model."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

from vbsad_batch.cli.options import EXIT_OK, PROG, UsageError, add_model_options, selected_models
from vbsad_batch.runtime.progress import make_progress_reporter

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommand to `subparsers` (`common`: the options every subcommand has)."""
    parser = subparsers.add_parser(
        "score",
        parents=[common],
        help="write the per-event anomaly scores of a trained model on the validation and "
        "test datasets",
        description=(
            "Apply a model trained by 'vbsad train' to every validation and test dataset of "
            "the config (sm_<split>, lin_<split>_<op>, quad_<split>_<op>, <split> validation or "
            "test: the scan chooses its regions on the first and quotes limits on the second) "
            "and write per dataset a Parquet file "
            "with event, input_sha256, yield, and the scores mse (mean squared reconstruction "
            "error over the scaled features), kld (KL divergence of the latent distribution) "
            "and, for vae_nn, score (classifier output in [0, 1]), plus a manifest."
        ),
        epilog=f"example: {PROG} score examples/ssww_real.toml --model vae_nn",
    )
    add_model_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.config import load_config  # noqa: PLC0415 - polars only for this command
    from vbsad_batch.models.paths import MODELS_DIR_NAME  # noqa: PLC0415
    from vbsad_batch.models.scoring import score_datasets  # noqa: PLC0415 - TensorFlow only here

    config = load_config(args.config)
    for spec in selected_models(config, args):
        model_dir = config.output_dir / MODELS_DIR_NAME / spec.name
        if not model_dir.is_dir():
            raise UsageError(
                f"no trained model in {model_dir}: run '{PROG} train {args.config} --model "
                f"{spec.kind}' first"
            )
        with make_progress_reporter(quiet=args.quiet, console=console) as reporter:
            result = score_datasets(config, model_dir, progress=reporter)
        if not args.quiet:
            print(f"{result.status}: {result.directory} ({result.reason})")
            for path in result.outputs:
                print(path)
    return EXIT_OK
