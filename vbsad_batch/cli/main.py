"""The `vbsad` command: the parser assembled from the subcommand modules, and the one place
that turns exceptions into exit codes and error lines.

Exit codes: 0 success, 1 data or I/O error (one line on stderr naming the file, line and
event), 2 usage error (bad arguments, missing input file), 130 interrupted, 143 terminated
(SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence

from vbsad_batch.cli import (
    datasets,
    demo_data,
    export_root,
    inspect_lhe,
    preprocess,
    report,
    run,
    scan,
    score,
    status,
    submit,
    train,
    yields,
)
from vbsad_batch.cli.options import (
    EXIT_DATA_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    PROG,
    Terminated,
    UsageError,
    verbosity_options,
)
from vbsad_batch.cli.output import (
    configure_logging,
    format_parse_error,
    logger,
    print_error,
    stderr_console,
)
from vbsad_batch.errors import LheParseError
from vbsad_batch.runtime.provenance import tool_version

__all__ = ["COMMANDS", "EXIT_DATA_ERROR", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

COMMANDS = (
    run,
    preprocess,
    inspect_lhe,
    demo_data,
    yields,
    datasets,
    train,
    score,
    scan,
    report,
    submit,
    status,
    export_root,
)
"""The subcommand modules, in `--help` order; each has `add_parser(subparsers, common)` and
`run(args, console) -> exit code` (set as the parser's `handler`)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `vbsad`."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Anomaly detection for vector boson scattering EFT studies: turn Les Houches "
            "event files into observable tables, inspect them, compute EFT yields, write "
            "the training and test datasets, train the VAE / VAE+NN models, score events and "
            "scan the sensitivity."
        ),
        parents=[verbosity_options(suppress_defaults=False)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {tool_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = verbosity_options(suppress_defaults=True)
    for command in COMMANDS:
        command.add_parser(subparsers, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - one exit code per outcome
    """Run `vbsad` with `argv` (default: `sys.argv[1:]`); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE

    args.argv = list(sys.argv[1:] if argv is None else argv)  # for provenance records
    console = stderr_console()
    configure_logging(args.verbose, args.quiet, console)
    if not args.verbose:
        # TensorFlow's C++ start-up chatter (CPU features, oneDNN) is noise in a batch log;
        # its warnings and errors stay. Set before any subcommand imports TensorFlow.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        code: int = args.handler(args, console)
    except UsageError as exc:
        print_error(str(exc))
        return EXIT_USAGE
    except LheParseError as exc:
        logger.debug("parse error", exc_info=True)
        # Skipping helps only with a malformed event, not with the header or <init> block.
        hint = " (rerun with --on-error skip to drop malformed events)"
        skippable = getattr(args, "on_error", "") == "fail" and exc.event is not None
        print_error(format_parse_error(exc) + (hint if skippable else ""))
        return EXIT_DATA_ERROR
    except (OSError, RuntimeError, ValueError) as exc:
        logger.debug("error", exc_info=True)
        print_error(" ".join(str(exc).split()) or type(exc).__name__)
        return EXIT_DATA_ERROR
    except KeyboardInterrupt:
        print_error("interrupted")
        return EXIT_INTERRUPTED
    except Terminated:
        print_error("terminated (SIGTERM); finished outputs are kept, the rest is redone on re-run")
        return EXIT_TERMINATED
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":  # pyo3's: a Rust library panicked
            raise
        logger.debug("panic", exc_info=True)
        print_error(
            f"a library failed ({' '.join(str(exc).split())[:300]}): an input is likely "
            "damaged; rerun with -v for the details"
        )
        return EXIT_DATA_ERROR
    return code


if __name__ == "__main__":
    sys.exit(main())
