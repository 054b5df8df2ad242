"""`vbsad score`: the per-event anomaly scores of trained models, alone or under MPI."""

from __future__ import annotations

import argparse
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from vbsad_batch.runtime.mpi import Communicator

from vbsad_batch.cli.options import (
    EXIT_OK,
    PROG,
    UsageError,
    add_model_options,
    selected_models,
)
from vbsad_batch.cli.train import run_on_ranks
from vbsad_batch.runtime.progress import make_progress_reporter

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommand to `subparsers` (`common`: the options every subcommand has)."""
    parser = subparsers.add_parser(
        "score",
        parents=[common],
        help="write the per-event anomaly scores of trained models on the validation and "
        "test datasets (alone or under mpiexec / srun)",
        description=(
            "Apply a model trained by 'vbsad train' to every validation and test dataset of "
            "the config (sm_<split>, lin_<split>_<op>, quad_<split>_<op>, <split> validation or "
            "test: the scan chooses its regions on the first and quotes limits on the second) "
            "and write per dataset a Parquet file "
            "with event, input_sha256, yield, and the scores mse (mean squared reconstruction "
            "error over the scaled features), kld (KL divergence of the latent distribution) "
            "and, for vae_nn, score (classifier output in [0, 1]), plus a manifest. Scores "
            "every model of the config's grid of that kind unless --latent, --seed or "
            "--operator select some. "
            + "Needs no TensorFlow: the trained networks are evaluated in NumPy (network.npz "
            "in the model directory). Runs alone or under MPI ('mpiexec -n N', or 'srun "
            "--mpi=pmi2' under Slurm; mpi4py and an MPICH-ABI MPI, the 'mpi' extra): the models "
            "are spread round-robin over the ranks (the scores are the same), and only rank 0 "
            "prints."
        ),
        epilog=(
            f"examples: {PROG} score examples/ssww_real.toml --model vae_nn; "
            f"mpiexec -n 3 {PROG} score examples/ssww_real.toml"
        ),
    )
    add_model_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.runtime.mpi import world  # noqa: PLC0415

    comm = world()  # no extra: the networks are evaluated in NumPy, without TensorFlow
    return run_on_ranks(comm, partial(_score, args, console, comm))


def _score(args: argparse.Namespace, console: Console | None, comm: Communicator) -> int:
    from vbsad_batch.config import load_config  # noqa: PLC0415 - polars only for this command
    from vbsad_batch.models.paths import MODELS_DIR_NAME  # noqa: PLC0415

    config = load_config(args.config)
    model_dirs = []
    for spec in selected_models(config, args):  # the same answer on every rank
        model_dir = config.output_dir / MODELS_DIR_NAME / spec.name
        if not model_dir.is_dir():
            raise UsageError(
                f"no trained model in {model_dir}: run '{PROG} train {args.config} --model "
                f"{spec.kind}' first"
            )
        model_dirs.append(model_dir)
    from vbsad_batch.models.scoring import score_models  # noqa: PLC0415 - NumPy, no TensorFlow

    with make_progress_reporter(quiet=args.quiet or comm.rank != 0, console=console) as reporter:
        results = score_models(config, model_dirs, comm=comm, progress=reporter)
    if results is None or args.quiet:  # only rank 0 prints
        return EXIT_OK
    for result in results:
        print(f"{result.status}: {result.directory} ({result.reason})")
        for path in result.outputs:
            print(path)
    if comm.size > 1:
        print(f"{len(results)} model(s) scored on {comm.size} rank(s)")
    return EXIT_OK
