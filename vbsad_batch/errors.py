"""Exception types of the package; `LheParseError` is also raised by the native extension.

The native module (`vbsad_batch._native`) imports `LheParseError` from here, so this module
must stay importable on its own (no imports from the rest of the package).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["LheParseError", "MissingInputError", "StaleInputError"]


class LheParseError(ValueError):
    """A Les Houches Event file could not be parsed.

    `str(error)` is the full one-line message, e.g.
    ``"file.lhe:123: event 4: expected 13 fields in particle line, found 12"``.

    Attributes:
        message: the one-line message (as `str(error)`).
        path: the file being read, as given by the caller.
        line: 1-based line number of the offending line, or None when not known
            (e.g. a truncated gzip stream).
        event: 0-based index of the event in its file (counting every event), or None when
            the error is outside an event (header, init block).
    """

    message: str
    path: str
    line: int | None
    event: int | None

    def __init__(
        self,
        message: str,
        *,
        path: str,
        line: int | None = None,
        event: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.event = event

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, path={self.path!r}, "
            f"line={self.line!r}, event={self.event!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # The default exception pickling passes only `args` positionally and would lose the
        # keyword-only attributes; needed to send the error back from a worker process.
        return (
            _rebuild_lhe_parse_error,
            (type(self), self.message, self.path, self.line, self.event),
            _extra_state(self),
        )


class StaleInputError(ValueError):
    """An input of a stage is not what the stage that made it recorded: missing, incomplete,
    made for other inputs or settings than the current config's, or edited since.

    `str(error)` names the file and ends with the command that remakes it.

    Attributes:
        path: the file (or manifest) at fault.
        remake: the command that remakes it, e.g. ``vbsad datasets ana.toml``.
    """

    path: Path
    remake: str

    def __init__(self, message: str, *, path: Path, remake: str) -> None:
        super().__init__(message)
        self.path = path
        self.remake = remake

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only attributes survive pickling (MPI ranks send errors to rank 0).
        return (_rebuild_stale_input_error, (type(self), str(self), self.path, self.remake))


class MissingInputError(StaleInputError, FileNotFoundError):
    """An input of a stage that was never made, or whose stage did not finish: no manifest.
    Both a `StaleInputError` and a `FileNotFoundError`."""


def _rebuild_stale_input_error(
    cls: type[StaleInputError], message: str, path: Path, remake: str
) -> StaleInputError:
    return cls(message, path=path, remake=remake)


_CORE_ATTRIBUTES = frozenset({"message", "path", "line", "event"})


def _extra_state(error: LheParseError) -> dict[str, Any] | None:
    # Keep anything added after construction (e.g. `__notes__` from `add_note`).
    extra = {k: v for k, v in vars(error).items() if k not in _CORE_ATTRIBUTES}
    return extra or None


def _rebuild_lhe_parse_error(
    cls: type[LheParseError],
    message: str,
    path: str,
    line: int | None,
    event: int | None,
) -> LheParseError:
    return cls(message, path=path, line=line, event=event)
