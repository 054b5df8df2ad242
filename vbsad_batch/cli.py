"""The `vbsad` command: one entry point, one subcommand per stage.

Only this module parses arguments, configures logging and prints. Heavy modules are imported
inside the subcommand that needs them, so `vbsad <cmd> --help` starts fast.

Exit codes: 0 success, 1 data or I/O error (one line on stderr naming the file, line and
event), 2 usage error (bad arguments, missing input file), 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from vbsad_batch.errors import LheParseError
from vbsad_batch.ingest import DEFAULT_BATCH_SIZE, LheInfo, read_lhe
from vbsad_batch.progress import make_progress_reporter
from vbsad_batch.provenance import tool_version

if TYPE_CHECKING:
    from rich.console import Console

    from vbsad_batch.config import AnalysisConfig

__all__ = ["EXIT_DATA_ERROR", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
EXIT_DATA_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM


class _Terminated(BaseException):
    """SIGTERM (Slurm preemption or time limit, `scancel`) turned into an exception, so that
    the same clean-up as for Ctrl-C runs: temporary outputs are removed, nothing half-written
    stays behind."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


PROG = "vbsad"
_HANDLER_TAG = "_vbsad_cli_handler"

logger = logging.getLogger("vbsad_batch.cli")


class _UsageError(Exception):
    """A problem with the command line that argparse cannot see (e.g. a missing file)."""


# --- argument parsing ----------------------------------------------------------------------


def _int_at_least(minimum: int) -> Callable[[str], int]:
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


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _verbosity_options(*, suppress_defaults: bool) -> argparse.ArgumentParser:
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `vbsad`."""
    sub_common = _verbosity_options(suppress_defaults=True)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Anomaly detection for vector boson scattering EFT studies: turn Les Houches "
            "event files into observable tables, inspect them, compute EFT yields, write "
            "the training and test datasets, train the VAE / VAE+NN models, score events and "
            "scan the sensitivity."
        ),
        parents=[_verbosity_options(suppress_defaults=False)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {tool_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _add_run_parser(subparsers, sub_common)
    pre = subparsers.add_parser(
        "preprocess",
        parents=[sub_common],
        help="LHE files -> one Parquet shard of observables per file, with manifests",
        description=(
            "Read LHE files (.lhe or .lhe.gz) and write, per input file, a Parquet shard "
            "(zstd) of the observables table (masses and momenta in GeV, angles in radians, "
            "weights as in the file, pb for MadGraph) plus <shard>.manifest.json (input "
            "SHA-256, metadata, options), and an index manifest.json for the directory. "
            "Shards that are already up to date (same input SHA-256, same options, same tool "
            "version) are skipped, so an interrupted run can simply be started again."
        ),
        epilog=f"example: {PROG} preprocess data/*.lhe.gz --output shards/ --jobs 4",
    )
    pre.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="LHE file (.lhe/.lhe.gz), or a directory: its *.lhe and *.lhe.gz files",
    )
    pre.add_argument(
        "-o", "--output", required=True, type=Path, metavar="DIR", help="output directory"
    )
    pre.add_argument(
        "-j",
        "--jobs",
        type=_non_negative_int,
        default=1,
        metavar="N",
        help="worker processes, one input file each; 0 = one per available CPU core "
        "(default: %(default)s)",
    )
    pre.add_argument(
        "--on-error",
        choices=("fail", "skip"),
        default="fail",
        help="malformed event: 'fail' stops with file:line (no shard for that file), 'skip' "
        "drops the event and lists it in the manifest (default: %(default)s)",
    )
    pre.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help="events per record batch and Parquet row group; bounds memory use "
        "(default: %(default)s events)",
    )
    pre.add_argument(
        "--force", action="store_true", help="rewrite shards even when they are up to date"
    )
    pre.set_defaults(handler=_cmd_preprocess)

    ins = subparsers.add_parser(
        "inspect",
        parents=[sub_common],
        help="print an LHE file's metadata and first rows",
        description=(
            "Read an LHE file and print its metadata: generator, LHEF version, beams (GeV), "
            "cross sections with errors (pb), MadGraph generation info, numbers of events and "
            "rows, rejected events by reason, named weights with descriptions and sums of "
            "weights; then the first rows of the observables table (GeV, radians)."
        ),
    )
    ins.add_argument("file", type=Path, metavar="FILE", help="LHE file (.lhe or .lhe.gz)")
    ins.add_argument(
        "--json",
        action="store_true",
        help='machine-readable output: {"info": {...}, "columns": [...], "rows": [...]}; '
        "non-finite numbers become null",
    )
    ins.add_argument(
        "-n",
        "--events",
        type=_non_negative_int,
        default=5,
        metavar="N",
        help="rows of the observables table to show (default: %(default)s)",
    )
    ins.add_argument(
        "--on-error",
        choices=("fail", "skip"),
        default="fail",
        help="malformed event: 'fail' stops with file:line, 'skip' lists it under "
        "'skipped' (default: %(default)s)",
    )
    ins.set_defaults(handler=_cmd_inspect)

    demo = subparsers.add_parser(
        "demo-data",
        parents=[sub_common],
        help="write the built-in demo LHE samples (a toy, not physics)",
        description=(
            "Write the built-in demo samples to DIR: toy same-sign WW scattering in MadGraph 3 "
            "LHE format (GeV, pb). ssww_demo.lhe.gz holds SM events with reweighting weights "
            "at c = 0 and c = +-1 for each demo operator (cW, cHW, cHq1, cqq1, cqq11, cqq3, "
            "cqq31); ssww_demo_<op>_LIN.lhe.gz and _QUAD.lhe.gz hold events of each operator's "
            "interference (signed weights) and squared term at c = 1, as separately generated "
            "samples. The toy EFT response grows with the diboson or dijet energy and changes "
            "angular and rapidity distributions: some operators are easy to see, some hard. "
            "It is a toy for demonstration and testing, not a physics generator."
        ),
    )
    demo.add_argument(
        "-o", "--output", required=True, type=Path, metavar="DIR", help="output directory"
    )
    demo.add_argument(
        "-n",
        "--events",
        type=_positive_int,
        default=5000,
        metavar="N",
        help="SM events (default: %(default)s events)",
    )
    demo.add_argument(
        "--eft-events",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="events per LIN and per QUAD sample; 0 writes only the SM sample "
        "(default: half of --events)",
    )
    demo.add_argument(
        "--seed",
        type=_non_negative_int,
        default=1,
        metavar="S",
        help="random seed; the same seed gives the same files (default: %(default)s)",
    )
    demo.set_defaults(handler=_cmd_demo_data)

    yields = subparsers.add_parser(
        "yields",
        parents=[sub_common],
        help="print the expected yields (events at the config's luminosity) of each component",
        description=(
            "Read the samples of an analysis config (TOML) and print, per component (SM, LIN "
            "and QUAD at c = 1 per operator, MIX), the number of Monte Carlo events and the "
            "expected yield in events at the config's luminosity (fb^-1, default 350) before "
            "and after the config's selection, with the Monte Carlo error after it. With --op, "
            "also c LIN + c^2 QUAD per operator and the total BSM = SM + sum c LIN + "
            "sum c^2 QUAD (+ c_i c_j MIX). LHE inputs are ingested once into the config's "
            "output directory (shards/), later runs reuse them."
        ),
        epilog=f"example: {PROG} yields examples/ssww_real.toml --op cW=0.3 --csv yields.csv",
    )
    yields.add_argument("config", type=Path, metavar="CONFIG", help="analysis config (TOML)")
    yields.add_argument(
        "--op",
        action="append",
        type=_coefficient,
        default=[],
        metavar="OP=C",
        help="Wilson coefficient of an operator (Lambda = 1 TeV), e.g. cW=0.3; repeatable "
        "(default: none, only the components are shown)",
    )
    yields.add_argument(
        "--csv", type=Path, metavar="FILE", help="also write the table as CSV (yields in events)"
    )
    yields.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="also write the table as JSON: {luminosity_fb, selection, unit, coefficients, rows}",
    )
    yields.set_defaults(handler=_cmd_yields)

    ds = subparsers.add_parser(
        "datasets",
        parents=[sub_common],
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
    ds.add_argument("config", type=Path, metavar="CONFIG", help="analysis config (TOML)")
    ds.add_argument(
        "--training-coefficient",
        type=float,
        default=1.0,
        metavar="C",
        help="Wilson coefficient of the EFT events of the mixed training set: their yields are "
        "c LIN + c^2 QUAD (default: %(default)s)",
    )
    ds.add_argument(
        "--force", action="store_true", help="rewrite the datasets even when they are up to date"
    )
    ds.set_defaults(handler=_cmd_datasets)

    _add_train_parser(subparsers, sub_common)
    _add_score_parser(subparsers, sub_common)
    _add_scan_parser(subparsers, sub_common)
    _add_report_parser(subparsers, sub_common)

    export = subparsers.add_parser(
        "export-root",
        parents=[sub_common],
        help="Parquet shards -> ROOT ntuples (TTree + <sample>_nums histogram)",
        description=(
            "Write one ROOT file ntuple_<name>.root per Parquet shard of 'vbsad preprocess': a "
            "TTree <name> with one float branch per observable (GeV, radians) and the weight w "
            "(pb), and a TH1F <name>_nums with the cross section (pb) in bin 1 and the sum of "
            "the weights of all generated events in bin 2, plus a JSON manifest per file. "
            "Values are stored as 32-bit floats."
        ),
        epilog=f"example: {PROG} export-root shards/ --output ntuples/",
    )
    export.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="Parquet shard (with its .manifest.json), or a directory: its *.parquet shards",
    )
    export.add_argument(
        "-o", "--output", required=True, type=Path, metavar="DIR", help="output directory"
    )
    export.set_defaults(handler=_cmd_export_root)
    return parser


_MODEL_KINDS = ("vae", "vae_nn")
_LATENT_MIN, _LATENT_MAX = 3, 7  # as vbsad_batch.config.LATENT_DIM_RANGE (not imported: polars)


def _latent_dim(text: str) -> int:
    """An argparse type: a latent size in 3..7."""
    value = _positive_int(text)
    if not _LATENT_MIN <= value <= _LATENT_MAX:
        raise argparse.ArgumentTypeError(f"must be in {_LATENT_MIN}..{_LATENT_MAX}, got {value}")
    return value


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, metavar="CONFIG", help="analysis config (TOML)")
    parser.add_argument(
        "--model",
        choices=_MODEL_KINDS,
        default="vae",
        help="'vae': the VAE trained on SM events; 'vae_nn': the VAE plus the classifier on "
        "the per-event (MSE, KLD), trained with the mixed SM+EFT set of the config's "
        "training_operator (default: %(default)s)",
    )
    parser.add_argument(
        "--latent",
        type=_latent_dim,
        default=None,
        metavar="K",
        help=f"latent space size, {_LATENT_MIN}..{_LATENT_MAX} (default: [training] latent_dim "
        "of the config, itself 3 by default)",
    )


def _add_train_parser(subparsers: Any, sub_common: argparse.ArgumentParser) -> None:
    train = subparsers.add_parser(
        "train",
        parents=[sub_common],
        help="train a VAE or VAE+NN model on the datasets of an analysis config",
        description=(
            "Train a model on the datasets written by 'vbsad datasets' (sm_train, "
            "sm_validation, and for vae_nn mixed_train_<training_operator>) with the "
            "hyperparameters of the config's [training] section, with early stopping on the "
            "validation loss (the best weights are kept) and a checkpoint after every epoch. "
            "Writes <output_dir>/models/<model>_latent<K>[_<operator>]/: the Keras model, "
            "preprocessing.json, config.toml, history.csv, metrics.json and manifest.json "
            "(dataset SHA-256s, settings). A model directory that is up to date is skipped. "
            "Deterministic for a given [training] seed."
        ),
        epilog=f"example: {PROG} train examples/ssww_real.toml --model vae_nn --latent 3 --resume",
    )
    _add_model_options(train)
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run (SIGTERM, SIGKILL, crash) from its last checkpoint; "
        "the result equals that of an uninterrupted run. Without a checkpoint, start afresh "
        "(default: start afresh, discarding any checkpoint)",
    )
    train.add_argument(
        "--force",
        action="store_true",
        help="retrain even when the model directory is up to date",
    )
    train.set_defaults(handler=_cmd_train)


def _add_score_parser(subparsers: Any, sub_common: argparse.ArgumentParser) -> None:
    score = subparsers.add_parser(
        "score",
        parents=[sub_common],
        help="write the per-event anomaly scores of a trained model for every test dataset",
        description=(
            "Apply a model trained by 'vbsad train' to every test dataset of the config "
            "(sm_test, lin_test_<op>, quad_test_<op>) and write per dataset a Parquet file "
            "with event, input_sha256, yield, and the scores mse (mean squared reconstruction "
            "error over the scaled features), kld (KL divergence of the latent distribution) "
            "and, for vae_nn, score (classifier output in [0, 1]), plus a manifest."
        ),
        epilog=f"example: {PROG} score examples/ssww_real.toml --model vae_nn",
    )
    _add_model_options(score)
    score.set_defaults(handler=_cmd_score)


def _add_run_parser(subparsers: Any, sub_common: argparse.ArgumentParser) -> None:
    run = subparsers.add_parser(
        "run",
        parents=[sub_common],
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
    run.add_argument(
        "config",
        type=Path,
        nargs="?",
        metavar="CONFIG",
        help="analysis config (TOML); default: the embedded demo",
    )
    run.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="DIR",
        help="where the demo and its outputs go (default: vbsad-output/demo, or "
        "vbsad-output/demo-quick with --quick); with CONFIG its output_dir is used",
    )
    run.add_argument(
        "--quick",
        action="store_true",
        help="smoke run of about a minute: a small demo (or, with CONFIG, at most "
        f"{_QUICK_EPOCHS} epochs, no bootstrap, outputs in <output_dir>-quick); "
        "too little training for physics",
    )
    run.add_argument(
        "--models",
        nargs="+",
        choices=("vae", "vae_nn"),
        default=["vae", "vae_nn"],
        help="models to train, score and scan (default: %(default)s)",
    )
    run.add_argument(
        "--force", action="store_true", help="redo every stage even when it is up to date"
    )
    run.set_defaults(handler=_cmd_run)


def _add_report_parser(subparsers: Any, sub_common: argparse.ArgumentParser) -> None:
    report = subparsers.add_parser(
        "report",
        parents=[sub_common],
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
    report.add_argument("config", type=Path, metavar="CONFIG", help="analysis config (TOML)")
    report.add_argument(
        "--force", action="store_true", help="rewrite even when the report is up to date"
    )
    report.set_defaults(handler=_cmd_report)


def _add_scan_parser(subparsers: Any, sub_common: argparse.ArgumentParser) -> None:
    scan = subparsers.add_parser(
        "scan",
        parents=[sub_common],
        help="sensitivity table: the smallest Wilson coefficients each model sees at 3 sigma",
        description=(
            "For every model scored by 'vbsad score' and every operator of the config: scan "
            "every distinct score threshold (region: score >= threshold) and find the smallest "
            "c- < 0 < c+ (Lambda = 1 TeV) with sigma = |c L + c^2 Q| / sqrt(S) = 3 over the "
            "admissible regions (S, L, Q: SM, LIN, QUAD yields in events at the config's "
            "luminosity), the same with the Asimov significance, the expected 95% CL interval "
            "from a binned likelihood, and bootstrap uncertainties, with the settings of the "
            "config's [scan] section. Writes <output_dir>/scan/: table.csv, table.json, "
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
    scan.add_argument("config", type=Path, metavar="CONFIG", help="analysis config (TOML)")
    scan.add_argument(
        "--models",
        nargs="+",
        metavar="MODEL",
        help="model directory names under <output_dir>/scores/, e.g. vae_latent3 "
        "vae_nn_latent3_cW (default: every scored model)",
    )
    scan.add_argument(
        "--force", action="store_true", help="recompute even when the outputs are up to date"
    )
    scan.set_defaults(handler=_cmd_scan)


def _coefficient(text: str) -> tuple[str, float]:
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


# --- logging and output --------------------------------------------------------------------


def _stderr_console() -> Console | None:
    if not sys.stderr.isatty():
        return None
    from rich.console import Console  # noqa: PLC0415 - rich only for a terminal

    return Console(stderr=True)


def _configure_logging(verbosity: int, quiet: bool, console: Console | None) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbosity > 0 else logging.INFO
    package_logger = logging.getLogger("vbsad_batch")
    for handler in list(package_logger.handlers):
        if getattr(handler, _HANDLER_TAG, False):
            package_logger.removeHandler(handler)
    new_handler: logging.Handler
    if console is not None:
        from rich.logging import RichHandler  # noqa: PLC0415 - rich only for a terminal

        new_handler = RichHandler(console=console, show_path=False)
        new_handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        # Plain timestamped lines: what batch-system logs (Slurm) need.
        new_handler = logging.StreamHandler(sys.stderr)
        new_handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%dT%H:%M:%S"
            )
        )
    setattr(new_handler, _HANDLER_TAG, True)
    package_logger.addHandler(new_handler)
    package_logger.setLevel(level)


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _format_parse_error(exc: LheParseError) -> str:
    """One line naming file, line and event (the native message already does, normally)."""
    message = " ".join(str(exc).split())
    if Path(exc.path).name in message:
        return message
    where = exc.path if exc.line is None else f"{exc.path}:{exc.line}"
    event = "" if exc.event is None else f" event {exc.event}:"
    return f"{where}:{event} {message}"


# --- preprocess ----------------------------------------------------------------------------


def _expand_inputs(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and p.name.lower().endswith((".lhe", ".lhe.gz"))
            )
            if not found:
                raise _UsageError(f"no .lhe or .lhe.gz files in directory {path}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise _UsageError(f"not a file: {path}")
        else:
            raise _UsageError(f"no such file: {path}")
    return files


def _available_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # respects the CPU set of a Slurm allocation
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _cmd_preprocess(args: argparse.Namespace, console: Console | None) -> int:
    # Lazy: pyarrow.parquet and the process pool machinery only for this subcommand.
    from vbsad_batch.preprocess import INDEX_MANIFEST_NAME, preprocess  # noqa: PLC0415

    inputs = _expand_inputs(args.inputs)
    jobs = args.jobs or _available_cpus()
    try:
        with make_progress_reporter(quiet=args.quiet, console=console) as reporter:
            results = preprocess(
                inputs,
                args.output,
                jobs=jobs,
                on_error=args.on_error,
                batch_size=args.batch_size,
                progress=reporter,
                force=args.force,
            )
    except ValueError as exc:
        if isinstance(exc, LheParseError):
            raise
        raise _UsageError(str(exc)) from exc

    for result in results:
        if result.n_skipped:
            logger.warning(
                "%s: %d malformed event(s) skipped, listed in %s",
                result.input,
                result.n_skipped,
                result.manifest,
            )
    if not args.quiet:
        width = max(len(r.shard.name) for r in results)
        for r in results:
            print(f"{r.status:<8} {r.shard.name:<{width}} {r.n_rows:>10} rows  ({r.reason})")
        n_written = sum(r.status == "written" for r in results)
        print(
            f"{len(results)} shard(s): {n_written} written, {len(results) - n_written} up to "
            f"date; index {args.output / INDEX_MANIFEST_NAME}"
        )
    return EXIT_OK


# --- inspect -------------------------------------------------------------------------------


def _finite_or_none(value: Any) -> Any:
    """Recursively replace NaN and infinities by None (strict JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return value


def _format_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _print_info(info: LheInfo) -> None:
    rows: list[tuple[str, str]] = [("file", info.path), ("LHEF version", info.lhef_version)]
    generators = ", ".join(
        f"{g.get('name')} {g.get('version') or ''}".strip() for g in info.generators
    )
    rows.append(("generators", generators or "(none)"))
    beams = info.beams
    rows.append(
        (
            "beams",
            f"{beams['idbmup'][0]} ({beams['ebmup'][0]:g} GeV) + "
            f"{beams['idbmup'][1]} ({beams['ebmup'][1]:g} GeV); PDF sets "
            f"{beams['pdfsup'][0]}/{beams['pdfsup'][1]}; IDWTUP {beams['idwtup']}",
        )
    )
    rows.append(
        (
            "cross section",
            f"{info.xsec_pb:.6e} +- {info.xsec_error_pb:.6e} pb "
            f"(XSECUP, {len(info.processes)} process(es))",
        )
    )
    for process in info.processes:
        rows.append(
            (
                f"  process {process['lprup']}",
                f"{process['xsecup']:.6e} +- {process['xerrup']:.6e} pb, "
                f"XMAXUP {process['xmaxup']:.6e}",
            )
        )
    mg = info.mg_generation_info
    if mg is not None:
        rows.append(
            (
                "MG generation",
                f"{mg['n_events']} events, integrated weight {mg['integrated_weight_pb']:.6e} pb",
            )
        )
    rows.append(("events", f"{info.n_events} read, {info.n_rows} rows"))
    rejected = ", ".join(f"{k} {v}" for k, v in info.rejected.items())
    rows.append(("rejected", rejected or "0"))
    rows.append(("skipped", str(info.n_skipped)))
    for skipped in info.skipped:
        rows.append(("", f"event {skipped['event']}, line {skipped['line']}: {skipped['message']}"))
    nominal = info.sum_weights.get("w")
    if nominal is not None:
        mean = nominal / info.n_events if info.n_events else float("nan")
        rows.append(("sum of weights", f"w: {nominal:.6e} (mean per event {mean:.6e})"))
    width = max(len(label) for label, _ in rows)
    for label, text in rows:
        print(f"{label:<{width}}  {text}")

    print(f"{'weights':<{width}}  {len(info.weights)} named")
    if info.weights:
        id_width = max(len(w["id"]) for w in info.weights)
        for w in info.weights:
            total = info.sum_weights.get(w["id"])
            total_text = "n/a" if total is None else f"{total:.6e}"
            extra = "" if not w.get("group") else f" [group {w['group']}]"
            print(
                f"  w_{w['id']:<{id_width}}  sum {total_text}  {w.get('description') or ''}"
                f"{extra}".rstrip()
            )

    if mg is not None and info.processes:
        ratio = mg["integrated_weight_pb"] / info.xsec_pb if info.xsec_pb else float("inf")
        if not 0.99 <= ratio <= 1.01:
            print(
                f"note: MadGraph's integrated weight ({mg['integrated_weight_pb']:.4e} pb) "
                f"differs from the sum of XSECUP ({info.xsec_pb:.4e} pb) by a factor "
                f"{ratio:.3g}: check which one normalises the sample"
            )


def _print_rows(columns: list[str], rows: list[dict[str, Any]], n_rows: int) -> None:
    print(f"\nfirst {len(rows)} of {n_rows} rows:")
    if not rows:
        return
    cells = [[_format_value(row[c]) for row in rows] for c in columns]
    name_width = max(len(c) for c in columns)
    widths = [max(len(col[i]) for col in cells) for i in range(len(rows))]
    for column, values in zip(columns, cells, strict=True):
        line = "  ".join(f"{v:>{w}}" for v, w in zip(values, widths, strict=True))
        print(f"{column:<{name_width}}  {line}")


def _cmd_inspect(args: argparse.Namespace, console: Console | None) -> int:
    if not args.file.is_file():
        raise _UsageError(f"no such file: {args.file}")
    stream = read_lhe(args.file, on_error=args.on_error)
    columns = stream.schema.names
    head: list[pa.RecordBatch] = []
    n_head = 0
    for batch in stream:  # one pass: keep the head, read on for the complete metadata
        if n_head < args.events:
            head.append(batch.slice(0, args.events - n_head))
            n_head += head[-1].num_rows
    info = stream.info()
    rows = pa.Table.from_batches(head, schema=stream.schema).to_pylist() if head else []

    if args.json:
        document = {"info": info.to_dict(), "columns": columns, "rows": rows}
        print(json.dumps(_finite_or_none(document), indent=2, allow_nan=False))
    else:
        _print_info(info)
        _print_rows(columns, rows, info.n_rows)
    return EXIT_OK


# --- demo-data -----------------------------------------------------------------------------


def _cmd_demo_data(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.demo import generate_demo  # noqa: PLC0415 - numpy only for this command

    eft_events = args.events // 2 if args.eft_events is None else args.eft_events
    paths = generate_demo(
        args.output,
        n_events=args.events,
        eft_events=eft_events,
        seed=args.seed,
        eft_samples=eft_events > 0,
    )
    if not args.quiet:
        for path in paths:
            print(path)
    return EXIT_OK


# --- yields, datasets, export-root ----------------------------------------------------------


def _format_number(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _print_yields(rows: list[dict[str, Any]], luminosity_fb: float, selection: str) -> None:
    print(f"expected yields in events at {luminosity_fb:g} fb^-1; selection: {selection or 'none'}")
    header = (
        "component",
        "operator",
        "sample",
        "c",
        "MC events",
        "selected",
        "yield (all)",
        "yield (selected)",
        "+- MC",
        "xsec [pb]",
        "xsec from",
    )
    table = [
        (
            row["component"],
            row["operator"],
            row["sample"],
            _format_number(row["coefficient"], "g"),
            _format_number(row["n_mc"], "d"),
            _format_number(row["n_mc_selected"], "d"),
            _format_number(row["yield_total"], ".6g"),
            _format_number(row["yield_selected"], ".6g"),
            _format_number(row["yield_selected_mc_error"], ".3g"),
            _format_number(row["xsec_pb"], ".5g"),
            row["xsec_source"],
        )
        for row in rows
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *table, strict=True)]
    text_columns = {0, 1, 2, 10}
    for line in (header, *table):
        cells = [
            f"{cell:<{w}}" if i in text_columns else f"{cell:>{w}}"
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


def _cmd_yields(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.atomic_write import atomic_open, write_text_atomic  # noqa: PLC0415
    from vbsad_batch.config import load_config  # noqa: PLC0415 - polars only for this command
    from vbsad_batch.weighting import yields_table  # noqa: PLC0415

    coefficients: dict[str, float] = {}
    for name, value in args.op:
        if name in coefficients:
            raise _UsageError(f"--op {name} given twice")
        coefficients[name] = value
    config = load_config(args.config)
    table = yields_table(config, coefficients)
    rows = table.to_dicts()
    if args.csv is not None:
        with atomic_open(args.csv, "wb") as f:
            table.write_csv(f)
    if args.json is not None:
        document = {
            "luminosity_fb": config.luminosity_fb,
            "selection": config.selection,
            "unit": f"events at {config.luminosity_fb:g} fb^-1",
            "coefficients": coefficients,
            "config": str(config.path),
            "rows": rows,
        }
        text = json.dumps(_finite_or_none(document), indent=2, allow_nan=False) + "\n"
        write_text_atomic(args.json, text)
    if not args.quiet:
        _print_yields(rows, config.luminosity_fb, config.selection)
    return EXIT_OK


def _cmd_datasets(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.config import load_config  # noqa: PLC0415 - polars only for this command
    from vbsad_batch.datasets import build_datasets  # noqa: PLC0415

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


def _cmd_train(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.config import load_config  # noqa: PLC0415 - polars only for this command
    from vbsad_batch.training import train  # noqa: PLC0415 - TensorFlow only for this command

    config = load_config(args.config)
    try:
        with make_progress_reporter(quiet=args.quiet, console=console) as reporter:
            result = train(
                config,
                kind=args.model,
                latent_dim=args.latent,
                resume=args.resume,
                force=args.force,
                progress=reporter,
            )
    except (_Terminated, KeyboardInterrupt):
        # The checkpoint of the last complete epoch is written atomically: it survives.
        logger.warning("training interrupted: continue it with '%s train --resume'", PROG)
        raise
    if not args.quiet:
        print(f"{result.status}: {result.model_dir} ({result.reason})")
        print(
            f"epochs run {result.epochs_run}, best epoch {result.best_epoch}, validation loss "
            f"{result.best_val_loss:.6g}{', stopped early' if result.stopped_early else ''}"
        )
    return EXIT_OK


def _cmd_score(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.config import load_config  # noqa: PLC0415 - polars only for this command
    from vbsad_batch.scoring import score_datasets  # noqa: PLC0415 - TensorFlow only here
    from vbsad_batch.training import model_directory  # noqa: PLC0415

    config = load_config(args.config)
    model_dir = model_directory(config, args.model, args.latent)
    if not model_dir.is_dir():
        raise _UsageError(
            f"no trained model in {model_dir}: run '{PROG} train {args.config} --model "
            f"{args.model}' first"
        )
    with make_progress_reporter(quiet=args.quiet, console=console) as reporter:
        written = score_datasets(config, model_dir, progress=reporter)
    if not args.quiet:
        for path in written:
            print(path)
    return EXIT_OK


def _cmd_scan(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.config import ConfigError, load_config  # noqa: PLC0415 - polars only here
    from vbsad_batch.distributed import RankFailure, abort, world  # noqa: PLC0415
    from vbsad_batch.scan_report import run_scan  # noqa: PLC0415 - numpy, scipy only here

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
        _error(f"rank {rank}: {' '.join(str(exc).split()) or type(exc).__name__}")
        sys.stderr.flush()
        abort(comm, EXIT_DATA_ERROR)
    if result is None or args.quiet:
        return EXIT_OK
    print(
        f"{result.status}: {result.directory} ({result.items} work item(s) on {result.ranks} "
        "rank(s))"
    )
    _print_proxy_table(result.directory / "table.md")
    for path in result.outputs:
        print(path)
    return EXIT_OK


def _print_proxy_table(table_md: Path) -> None:
    """Print the first section of a scan's table.md: the limits of the paper's proxy."""
    sections = table_md.read_text(encoding="utf-8").split("\n## ")
    if len(sections) > 1:
        print("## " + sections[1].rstrip())


def _cmd_export_root(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.root_ntuple import export_shards  # noqa: PLC0415 - uproot only here

    written = export_shards(args.inputs, args.output)
    if not written:
        raise _UsageError(f"no Parquet shards in {', '.join(str(p) for p in args.inputs)}")
    if not args.quiet:
        for path in written:
            print(path)
    return EXIT_OK


def _cmd_report(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.config import load_config  # noqa: PLC0415 - polars only for this command
    from vbsad_batch.report import write_report  # noqa: PLC0415 - matplotlib only here

    config = load_config(args.config)
    with make_progress_reporter(quiet=args.quiet, console=console) as reporter:
        result = write_report(config, force=args.force, progress=reporter)
    if not args.quiet:
        print(f"{result.status}: {result.directory} ({result.reason})")
        for line in result.missing:
            print(f"missing: {line}")
        print(result.index_html)
        print(result.summary_md)
    return EXIT_OK


# --- run -------------------------------------------------------------------------------------

_QUICK_EPOCHS = 3


def _quick_config(config: AnalysisConfig) -> AnalysisConfig:
    """`config` cut down for a smoke run, writing next to (not into) its output directory."""
    training = dataclasses.replace(
        config.training,
        epochs=min(config.training.epochs, _QUICK_EPOCHS),
        patience=min(config.training.patience, _QUICK_EPOCHS),
    )
    scan = dataclasses.replace(config.scan, bootstrap_replicas=0)
    out = config.output_dir.with_name(config.output_dir.name + "-quick")
    return dataclasses.replace(config, training=training, scan=scan, output_dir=out)


def _cmd_run(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.config import load_config  # noqa: PLC0415 - polars only for this command
    from vbsad_batch.demo import DEMO_DEFAULT, DEMO_QUICK  # noqa: PLC0415
    from vbsad_batch.pipeline import StageResult, prepare_demo, run_analysis  # noqa: PLC0415

    def report_stage(result: StageResult) -> None:
        logger.info(
            "%-13s %-7s %6.1f s  %s", result.stage, result.status, result.seconds, result.detail
        )

    with make_progress_reporter(quiet=args.quiet, console=console) as reporter:
        if args.config is None:
            default_dir = "vbsad-output/demo-quick" if args.quick else "vbsad-output/demo"
            directory = args.output if args.output is not None else Path(default_dir)
            settings = DEMO_QUICK if args.quick else DEMO_DEFAULT
            logger.info("embedded demo (toy data, not physics) in %s", directory)
            config_path, demo_result = prepare_demo(
                directory, settings, force=args.force, progress=reporter
            )
            report_stage(demo_result)
            config = load_config(config_path)
        else:
            if args.output is not None:
                raise _UsageError("--output is for the demo; a config sets its output_dir")
            if not args.config.is_file():
                raise _UsageError(f"no such config file: {args.config}")
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
        from vbsad_batch.report import report_directory  # noqa: PLC0415
        from vbsad_batch.scan_report import SCAN_DIR_NAME  # noqa: PLC0415

        _print_proxy_table(config.output_dir / SCAN_DIR_NAME / "table.md")
        print(f"report: {report_directory(config) / 'index.html'}")
        print(f"outputs: {config.output_dir}")
    return EXIT_OK


# --- entry point ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - one exit code per outcome
    """Run `vbsad` with `argv` (default: `sys.argv[1:]`); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE

    console = _stderr_console()
    _configure_logging(args.verbose, args.quiet, console)
    if not args.verbose:
        # TensorFlow's C++ start-up chatter (CPU features, oneDNN) is noise in a batch log;
        # its warnings and errors stay. Set before any subcommand imports TensorFlow.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        code: int = args.handler(args, console)
    except _UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except LheParseError as exc:
        logger.debug("parse error", exc_info=True)
        hint = " (rerun with --on-error skip to drop malformed events)"
        _error(_format_parse_error(exc) + (hint if getattr(args, "on_error", "") == "fail" else ""))
        return EXIT_DATA_ERROR
    except (OSError, RuntimeError, ValueError) as exc:
        logger.debug("error", exc_info=True)
        text = " ".join(str(exc).split()) or type(exc).__name__
        _error(text)
        return EXIT_DATA_ERROR
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except _Terminated:
        _error("terminated (SIGTERM); finished outputs are kept, the rest is redone on re-run")
        return EXIT_TERMINATED
    return code


if __name__ == "__main__":
    sys.exit(main())
