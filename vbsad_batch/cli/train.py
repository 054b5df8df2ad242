"""`vbsad train`: train the VAE or VAE+NN models of an analysis config, alone or under MPI.

`run_on_ranks` is the MPI side of the model commands (`vbsad train`, `vbsad score`): only rank
0 prints, and every way a rank can fail ends every rank.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from vbsad_batch.runtime.mpi import Communicator

from vbsad_batch.cli.options import (
    EXIT_DATA_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    PROG,
    Terminated,
    UsageError,
    add_model_options,
    require_extras,
    selected_models,
)
from vbsad_batch.cli.output import logger, print_error
from vbsad_batch.runtime.progress import make_progress_reporter

__all__ = ["MPI_HELP", "add_parser", "run", "run_on_ranks"]

MPI_HELP = (
    "Runs alone or under MPI ('mpiexec -n N', or 'srun --mpi=pmi2' under Slurm; mpi4py and an "
    "MPICH-ABI MPI, the 'mpi' extra): each rank sizes TensorFlow's threads to its share of the "
    "node's cores, and only rank 0 prints."
)
"""The MPI paragraph of the help of the model commands."""


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommand to `subparsers` (`common`: the options every subcommand has)."""
    parser = subparsers.add_parser(
        "train",
        parents=[common],
        help="train VAE or VAE+NN models on the datasets of an analysis config (alone or "
        "under mpiexec / srun)",
        description=(
            "Train a model on the datasets written by 'vbsad datasets' (sm_train, "
            "sm_validation, and for vae_nn mixed_train_<training_operator>) with the "
            "hyperparameters of the config's [training] section, with early stopping on the "
            "validation loss (the best weights are kept) and a checkpoint after every epoch. "
            "Writes <output_dir>/models/<model>_latent<K>[_<operator>][_seed<S>]/: the Keras "
            "model, preprocessing.json, config.toml, history.csv, metrics.json and "
            "manifest.json (dataset SHA-256s, settings). Trains every model of the config's "
            "grid of that kind ([training] seeds, latent_dims, training_operators) unless "
            "--latent, --seed or --operator select some. A model directory that is up to date "
            "is skipped. Deterministic for a given seed. "
            + MPI_HELP
            + " The models are spread round-robin over the ranks, each trained by one rank as "
            "it would be alone (identical weights); with [training] data_parallel = true each "
            "model is trained on all ranks instead, each rank taking 1/N of every batch and the "
            "gradients summed with one Allreduce per step (the 1-rank training up to float "
            "rounding; rank 0 writes; resume under the same N)."
        ),
        epilog=(
            f"examples: {PROG} train examples/ssww_real.toml --model vae_nn --latent 3 --resume; "
            f"mpiexec -n 3 {PROG} train examples/ssww_real.toml (its 3 seeds, one per rank)"
        ),
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
    from vbsad_batch.runtime.mpi import world  # noqa: PLC0415

    require_extras("train", "train")
    comm = world()
    return run_on_ranks(comm, partial(_train, args, console, comm))


def _train(args: argparse.Namespace, console: Console | None, comm: Communicator) -> int:
    from vbsad_batch.config import load_config  # noqa: PLC0415 - polars only for this command

    # The config first: its errors in a second, not after TensorFlow's start-up.
    config = load_config(args.config)
    specs = selected_models(config, args)
    from vbsad_batch.models.tensorflow_import import import_tensorflow_quietly  # noqa: PLC0415

    import_tensorflow_quietly()
    from vbsad_batch.models.parallel import (  # noqa: PLC0415 - TensorFlow only for this command
        configure_threads,
        train_models,
    )

    configure_threads(comm)  # before TensorFlow runs anything
    try:
        with make_progress_reporter(
            quiet=args.quiet or comm.rank != 0, console=console
        ) as reporter:
            results = train_models(
                config, specs, comm=comm, resume=args.resume, force=args.force, progress=reporter
            )
    except (Terminated, KeyboardInterrupt):
        # The checkpoint of the last complete epoch is written atomically: it survives.
        logger.warning("training interrupted: continue it with '%s train --resume'", PROG)
        raise
    if results is None or args.quiet:  # only rank 0 prints
        return EXIT_OK
    for result in results:
        print(f"{result.status}: {result.model_dir} ({result.reason})")
        print(
            f"epochs run {result.epochs_run}, best epoch {result.best_epoch}, validation "
            f"loss {result.best_val_loss:.6g}"
            f"{', stopped early' if result.stopped_early else ''}"
            f"{'' if result.converged else ' (NOT converged)'}"
        )
    if comm.size > 1:
        how = "data parallel" if config.training.data_parallel else "task parallel"
        print(f"{len(results)} model(s) on {comm.size} rank(s) ({how})")
    return EXIT_OK


def run_on_ranks(comm: Communicator, body: Callable[[], int]) -> int:
    """Run a model command's `body` on this rank of `comm`; its exit code.

    Alone, `body` runs as any command. Under MPI, ranks other than 0 neither log (below
    warnings) nor print, and no rank is left waiting for a failed one:

    - errors that every rank raises (a `RankFailure` of a collective call, an invalid config,
      a usage error): rank 0 raises it (`vbsad` prints it once), the others just exit non-zero;
    - any other error, or an interrupt (SIGTERM, Ctrl-C), on a rank other than 0, or an
      interrupt on rank 0: the error is printed with its rank and every rank is ended
      (MPI_Abort), as the others may be waiting for this one in a collective call. (Rank 0's
      errors are otherwise collective already: `map_work` and the data-parallel training
      report them to every rank.)
    """
    from vbsad_batch.config import ConfigError  # noqa: PLC0415 - polars only for this command
    from vbsad_batch.runtime.mpi import RankFailure, abort  # noqa: PLC0415

    rank = comm.rank
    if comm.size == 1:
        return body()
    if rank != 0:
        logging.getLogger("vbsad_batch").setLevel(logging.WARNING)
    try:
        return body()
    except (RankFailure, ConfigError, UsageError) as exc:
        if rank == 0:
            raise
        return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_DATA_ERROR
    except Exception as exc:
        if rank == 0:
            raise
        print_error(f"rank {rank}: {' '.join(str(exc).split()) or type(exc).__name__}")
        sys.stderr.flush()
        abort(comm, EXIT_DATA_ERROR)
    except BaseException as exc:  # SIGTERM (Terminated), Ctrl-C: the others may wait for us
        interrupted = isinstance(exc, KeyboardInterrupt)
        print_error(f"rank {rank}: {'interrupted' if interrupted else 'terminated'}")
        sys.stderr.flush()
        abort(comm, EXIT_INTERRUPTED if interrupted else EXIT_TERMINATED)
