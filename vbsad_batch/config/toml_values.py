"""Typed values out of a parsed TOML config, with errors that name the file and the key.

`TomlValues(path)` reads tables, strings, numbers, string lists, observables and input files
from the parsed TOML and raises `ConfigError` with ``"<config file>: <key path>: <problem>"``
(an unknown key with the nearest valid key as a suggestion); `check_declared` and
`cross_section` are the checks that several tables share.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from vbsad_batch.config.near_miss import did_you_mean
from vbsad_batch.config.schema import INPUT_SUFFIXES, ConfigError
from vbsad_batch.ingest.lhe import OBSERVABLE_COLUMNS

__all__ = ["TomlValues", "accepted_input", "check_declared", "cross_section", "type_name"]

_OBSERVABLES: frozenset[str] = frozenset(OBSERVABLE_COLUMNS)
_GLOB_CHARS = frozenset("*?[")


class TomlValues:
    """Raises `ConfigError`s that name the config file and the key path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base_dir = path.parent

    def fail(self, key: str, message: str) -> NoReturn:
        raise ConfigError(f"{self.path}: {key}: {message}" if key else f"{self.path}: {message}")

    def check_keys(self, table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                prefix = f"{where}." if where else ""
                self.fail(
                    f"{prefix}{key}",
                    f"unknown key{did_you_mean(key, allowed)}; valid keys: {', '.join(allowed)}",
                )

    def table(self, value: object, key: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            self.fail(key, f"expected a table, got {type_name(value)}")
        return value

    def string(self, value: object, key: str) -> str:
        if not isinstance(value, str):
            self.fail(key, f"expected a string, got {type_name(value)}")
        return value

    def number(self, value: object, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"expected a number, got {type_name(value)}")
        result = float(value)
        if not math.isfinite(result):
            self.fail(key, f"must be finite, got {result}")
        return result

    def integer(self, value: object, key: str, minimum: int, maximum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"expected an integer, got {type_name(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"in {minimum}..{maximum}" if maximum is not None else f">= {minimum}"
            self.fail(key, f"must be {bounds}, got {value}")
        return value

    def string_list(self, value: object, key: str, *, allow_single: bool = False) -> list[str]:
        if allow_single and isinstance(value, str):
            return [value]
        if not isinstance(value, list):
            what = "a string or a list of strings" if allow_single else "a list of strings"
            self.fail(key, f"expected {what}, got {type_name(value)}")
        out: list[str] = []
        for i, item in enumerate(value):
            out.append(self.string(item, f"{key}[{i}]"))
        return out

    def observables(self, value: object, key: str) -> tuple[str, ...]:
        names = self.string_list(value, key)
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name not in _OBSERVABLES:
                self.fail(
                    f"{key}[{i}]",
                    f"unknown observable {name!r}{did_you_mean(name, _OBSERVABLES)}; known: "
                    f"{', '.join(OBSERVABLE_COLUMNS)}",
                )
            if name in seen:
                self.fail(f"{key}[{i}]", f"{name!r} is listed twice")
            seen.add(name)
        if not names:
            self.fail(key, "must not be empty")
        return tuple(names)

    def files(self, value: object, key: str, *, check: bool) -> tuple[Path, ...]:
        entries = self.string_list(value, key, allow_single=True)
        if not entries:
            self.fail(key, "no files given")
        found: set[Path] = set()
        for i, entry in enumerate(entries):
            entry_key = f"{key}[{i}]" if isinstance(value, list) else key
            pattern = Path(entry).expanduser()
            if not pattern.is_absolute():
                pattern = self.base_dir / pattern
            text = str(pattern)
            if any(c in _GLOB_CHARS for c in text):
                matches = [Path(m) for m in glob.glob(text, recursive=True)]
                matches = [m for m in matches if m.is_file() and accepted_input(m)]
                if not matches:
                    if check:
                        self.fail(
                            entry_key,
                            f"the pattern {entry!r} matches no input file ({text}; accepted: "
                            f"{', '.join(INPUT_SUFFIXES)})",
                        )
                    found.add(pattern.resolve())
                found.update(m.resolve() for m in matches)
                continue
            if not accepted_input(pattern):
                self.fail(
                    entry_key,
                    f"{entry!r} is not an accepted input (file name must end with one of "
                    f"{', '.join(INPUT_SUFFIXES)})",
                )
            if check and not pattern.is_file():
                problem = "is not a file" if pattern.exists() else "does not exist"
                self.fail(entry_key, f"{entry!r} {problem} ({pattern})")
            found.add(pattern.resolve())
        return tuple(sorted(found))


def type_name(value: object) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    return f"{type(value).__name__} ({value!r})"


def accepted_input(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in INPUT_SUFFIXES)


def check_declared(ctx: TomlValues, op: str, key: str, declared: tuple[str, ...]) -> None:
    if op not in declared:
        if declared:
            hint = did_you_mean(op, declared)
            ctx.fail(key, f"operator {op!r} is not declared in `operators`{hint}")
        ctx.fail(key, f"operator {op!r} is not declared: add `operators = [{op!r}, ...]`")


def cross_section(ctx: TomlValues, value: object, key: str, *, positive: bool) -> float:
    xsec = ctx.number(value, key)
    if positive and xsec <= 0:
        ctx.fail(key, f"cross section must be > 0 pb, got {xsec}")
    if xsec == 0:
        ctx.fail(key, "cross section must not be 0 pb")
    return xsec
