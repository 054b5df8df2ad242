"""What the command line shows: logging set-up, the terminal console, error lines, tables."""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vbsad_batch.cli.options import PROG
from vbsad_batch.errors import LheParseError

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "configure_logging",
    "finite_or_none",
    "format_parse_error",
    "logger",
    "print_error",
    "print_proxy_table",
    "stderr_console",
]

_HANDLER_TAG = "_vbsad_cli_handler"

logger = logging.getLogger("vbsad_batch.cli")


def stderr_console() -> Console | None:
    if not sys.stderr.isatty():
        return None
    from rich.console import Console  # noqa: PLC0415 - rich only for a terminal

    return Console(stderr=True)


def configure_logging(verbosity: int, quiet: bool, console: Console | None) -> None:
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


def print_error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def format_parse_error(exc: LheParseError) -> str:
    """One line naming file, line and event (the native message already does, normally)."""
    message = " ".join(str(exc).split())
    if Path(exc.path).name in message:
        return message
    where = exc.path if exc.line is None else f"{exc.path}:{exc.line}"
    event = "" if exc.event is None else f" event {exc.event}:"
    return f"{where}:{event} {message}"


def finite_or_none(value: Any) -> Any:
    """Recursively replace NaN and infinities by None (strict JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


def print_proxy_table(table_md: Path) -> None:
    """Print the first section of a scan's table.md: the limits of the paper's proxy."""
    sections = table_md.read_text(encoding="utf-8").split("\n## ")
    if len(sections) > 1:
        print("## " + sections[1].rstrip())
