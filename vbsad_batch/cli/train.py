"""`vbsad train`: train a VAE or VAE+NN on the datasets of an analysis config."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

from vbsad_batch.cli.options import EXIT_OK, PROG, Terminated, add_model_options, selected_models
from vbsad_batch.cli.output import logger
from vbsad_batch.runtime.progress import make_progress_reporter

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommand to `subparsers` (`common`: the options every subcommand has)."""
    parser = subparsers.add_parser(
        "train",
        parents=[common],
        help="train a VAE or VAE+NN model on the datasets of an analysis config",
        description=(
            "Train a model on the datasets written by 'vbsad datasets' (sm_train, "
            "sm_validation, and for vae_nn mixed_train_<training_operator>) with the "
            "hyperparameters of the config's [training] section, with early stopping on the "
            "validation loss (the best weights are kept) and a checkpoint after every epoch. "
            "Writes <output_dir>/models/<model>_latent<K>[_<operator>][_seed<S>]/: the Keras "
            "model, preprocessing.json, config.toml, history.csv, metrics.json and "
            "manifest.json (dataset SHA-256s, settings). Trains every model of the config's "
            "grid of that kind ([training] seeds, latent_dims, training_operators) unless "
            "--latent, --seed or --operator select some, one after the other. A model "
            "directory that is up to date is skipped. Deterministic for a given seed."
        ),
        epilog=f"example: {PROG} train examples/ssww_real.toml --model vae_nn --latent 3 --resume",
    )
    add_model_options(parser)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run (SIGTERM, SIGKILL, crash) from its last checkpoint; "
        "the result equals that of an uninterrupted run. Without a checkpoint, start afresh "
        "(default: start afresh, discarding any checkpoint)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="retrain even when the model directory is up to date",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.config import load_config  # noqa: PLC0415 - polars only for this command
    from vbsad_batch.models.training import train  # noqa: PLC0415 - TensorFlow only for this command

    config = load_config(args.config)
    for spec in selected_models(config, args):
        try:
            with make_progress_reporter(quiet=args.quiet, console=console) as reporter:
                result = train(
                    config,
                    kind=spec.kind,
                    latent_dim=spec.latent_dim,
                    seed=spec.seed,
                    training_operator=spec.training_operator,
                    resume=args.resume,
                    force=args.force,
                    progress=reporter,
                )
        except (Terminated, KeyboardInterrupt):
            # The checkpoint of the last complete epoch is written atomically: it survives.
            logger.warning("training interrupted: continue it with '%s train --resume'", PROG)
            raise
        if not args.quiet:
            print(f"{result.status}: {result.model_dir} ({result.reason})")
            print(
                f"epochs run {result.epochs_run}, best epoch {result.best_epoch}, validation "
                f"loss {result.best_val_loss:.6g}"
                f"{', stopped early' if result.stopped_early else ''}"
            )
    return EXIT_OK
