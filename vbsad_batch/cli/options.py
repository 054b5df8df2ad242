"""What the subcommands share on the command line: argument types, common options, the
command line's own errors and exit codes."""

from __future__ import annotations

import argparse
import importlib.util
import math
import signal
from collections.abc import Callable
from pathlib import Path

from vbsad_batch.config.schema import (
    LATENT_DIM_RANGE,
    MODEL_KINDS,
    AnalysisConfig,
    ModelKind,
    ModelSpec,
)
from vbsad_batch.runtime.stage import PROGRAM

__all__ = [
    "EXIT_DATA_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "EXTRA_MODULES",
    "PROG",
    "Terminated",
    "UsageError",
    "add_model_options",
    "coefficient",
    "config_file",
    "existing_kind",
    "int_at_least",
    "latent_dim",
    "non_negative_int",
    "output_directory",
    "positive_int",
    "require_extras",
    "selected_models",
    "verbosity_options",
]

PROG = PROGRAM

EXIT_OK = 0
EXIT_DATA_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM

LATENT_MIN, LATENT_MAX = LATENT_DIM_RANGE


class Terminated(BaseException):
    """SIGTERM (Slurm preemption or time limit, `scancel`) turned into an exception, so that
    the same clean-up as for Ctrl-C runs: temporary outputs are removed, nothing half-written
    stays behind."""


class UsageError(Exception):
    """A problem with the command line that argparse cannot see (e.g. a missing file)."""


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


positive_int = int_at_least(1)
"""An argparse type: an integer >= 1."""
non_negative_int = int_at_least(0)
"""An argparse type: an integer >= 0."""


def verbosity_options(*, suppress_defaults: bool) -> argparse.ArgumentParser:
    # Accepted before and after the subcommand; the subcommand's copy has SUPPRESS defaults
    # so that it does not overwrite a value given before the subcommand.
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_mutually_exclusive_group()
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS if suppress_defaults else 0,
        help="more log output (debug messages, tracebacks on errors)",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS if suppress_defaults else False,
        help="only errors and warnings: no progress, no summary",
    )
    return parent


def existing_kind(what: str) -> Callable[[str], Path]:
    """An argparse type: a path that must not be a directory (`what` it is instead, e.g. "a
    config file (TOML)"); whether it exists is the command's business (it names the file)."""

    def parse(text: str) -> Path:
        path = Path(text)
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a directory, not {what}")
        return path

    return parse


config_file = existing_kind("a config file (TOML)")
"""An argparse type: an analysis config file."""


def output_directory(text: str) -> Path:
    """An argparse type: a directory to write into (made if missing), not an existing file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a directory")
    return path


EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "train": ("tensorflow",),
    "report": ("matplotlib", "mplhep"),
    "mpi": ("mpi4py",),
}
"""The modules each optional extra of the package brings."""


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module blocked as None in sys.modules
        return False


def require_extras(command: str, *extras: str) -> None:
    """Before any work: the optional extras `command` needs are installed.

    Raises:
        UsageError: naming the missing extras and the pip command that installs them.
    """
    missing = [e for e in extras if not all(_importable(m) for m in EXTRA_MODULES[e])]
    if missing:
        modules = ", ".join(m for e in missing for m in EXTRA_MODULES[e])
        spec = ",".join(missing)
        raise UsageError(
            f"`{PROG} {command}` needs {modules} (the {spec!r} extra), which is not installed: "
            f"pip install 'vbsad_batch[{spec}]' (or 'vbsad_batch[all]')"
        )


def latent_dim(text: str) -> int:
    """An argparse type: a latent size in 3..7."""
    value = positive_int(text)
    if not LATENT_MIN <= value <= LATENT_MAX:
        raise argparse.ArgumentTypeError(f"must be in {LATENT_MIN}..{LATENT_MAX}, got {value}")
    return value


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=config_file, metavar="CONFIG", help="analysis config (TOML)")
    parser.add_argument(
        "--model",
        choices=MODEL_KINDS,
        default=None,
        help="'vae': the VAE trained on SM events; 'vae_nn': the VAE plus the classifier on "
        "the per-event (MSE, KLD), trained with the mixed SM+EFT set of the config's "
        "training_operator (default: vae)",
    )
    parser.add_argument(
        "--latent",
        type=latent_dim,
        default=None,
        metavar="K",
        help=f"latent space size, {LATENT_MIN}..{LATENT_MAX} (default: every one of the "
        "config's grid: [training] latent_dim, 3 by default, or latent_dims)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=None,
        metavar="S",
        help="training seed (default: every one of the config's grid: [training] seed, 0 by "
        "default, or seeds)",
    )
    parser.add_argument(
        "--operator",
        default=None,
        metavar="OP",
        help="vae_nn: the operator of the mixed training set (default: every one of the "
        "config's training_operator(s))",
    )
    whole = parser.add_mutually_exclusive_group()
    whole.add_argument(
        "--all-models",
        action="store_true",
        help="every model of the config's grid, of both kinds (VAE, then VAE+NN)",
    )
    whole.add_argument(
        "--task",
        type=non_negative_int,
        default=None,
        metavar="I",
        help="only the I-th model of the config's grid of both kinds, counted from 0 in the "
        "order of --all-models: one Slurm array task per model ($SLURM_ARRAY_TASK_ID)",
    )


def selected_models(config: AnalysisConfig, args: argparse.Namespace) -> list[ModelSpec]:
    """The models of the grid that `--model`, `--latent`, `--seed`, `--operator` select, or
    `--all-models` / `--task` (the whole grid of both kinds, or its I-th model).

    Raises:
        UsageError: none (a VAE+NN without a training operator in the config), a --task
            beyond the grid, or --all-models / --task with a selecting option.
    """
    if args.all_models or args.task is not None:
        names = ("model", "latent", "seed", "operator")
        given = [f"--{n}" for n in names if getattr(args, n) is not None]
        if given:
            which = "--all-models" if args.all_models else "--task"
            raise UsageError(f"{which} takes the config's whole grid: without {given[0]}")
        grid = config.models()
        if args.task is None:
            return grid
        if args.task >= len(grid):
            raise UsageError(
                f"--task {args.task}: the grid of {config.path} has {len(grid)} model(s), "
                f"tasks 0..{len(grid) - 1}"
            )
        return [grid[args.task]]
    kind: ModelKind = args.model or "vae"
    specs = config.models(
        [kind],
        latent_dims=None if args.latent is None else [args.latent],
        seeds=None if args.seed is None else [args.seed],
        training_operators=None if args.operator is None else [args.operator],
    )
    if not specs:
        raise UsageError(
            f"{config.path}: no {kind} model to make: a vae_nn needs a training_operator"
        )
    return specs


def coefficient(text: str) -> tuple[str, float]:
    """An argparse type: `OP=C` -> (OP, C) with a finite float C."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected OP=C, e.g. cW=0.3, got {text!r}")
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number in {text!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"coefficient must be finite in {text!r}")
    return name, number
