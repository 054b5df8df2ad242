"""`vbsad yields`: the expected yields of every component of an analysis config."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

import json
from pathlib import Path

from vbsad_batch.cli.options import EXIT_OK, PROG, UsageError, coefficient, config_file
from vbsad_batch.cli.output import finite_or_none

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommand to `subparsers` (`common`: the options every subcommand has)."""
    parser = subparsers.add_parser(
        "yields",
        parents=[common],
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
    parser.add_argument("config", type=config_file, metavar="CONFIG", help="analysis config (TOML)")
    parser.add_argument(
        "--op",
        action="append",
        type=coefficient,
        default=[],
        metavar="OP=C",
        help="Wilson coefficient of an operator (Lambda = 1 TeV), e.g. cW=0.3; repeatable "
        "(default: none, only the components are shown)",
    )
    parser.add_argument(
        "--csv", type=Path, metavar="FILE", help="also write the table as CSV (yields in events)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="also write the table as JSON: {luminosity_fb, selection, unit, coefficients, rows}",
    )
    parser.set_defaults(handler=run)


def _format_number(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _warning_references(rows: list[dict[str, Any]]) -> tuple[list[str], dict[str, int]]:
    """The distinct cross-section warnings of the rows, in order, and each one's number."""
    warnings = list(dict.fromkeys(w for row in rows for w in row["xsec_warning"].splitlines()))
    return warnings, {w: i for i, w in enumerate(warnings, start=1)}


def _check_cell(row: dict[str, Any], numbers: dict[str, int]) -> str:
    if not row["sample"]:
        return ""  # a combination of components: checked in its rows
    refs = [f"[{numbers[w]}]" for w in row["xsec_warning"].splitlines()]
    return f"see {' '.join(refs)}" if refs else "ok"


def _print_yields(rows: list[dict[str, Any]], luminosity_fb: float, selection: str) -> None:
    warnings, numbers = _warning_references(rows)
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
        "xsec check",
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
            _check_cell(row, numbers),
        )
        for row in rows
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *table, strict=True)]
    text_columns = {0, 1, 2, 10, 11}
    for line in (header, *table):
        cells = [
            f"{cell:<{w}}" if i in text_columns else f"{cell:>{w}}"
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
    for number, warning in enumerate(warnings, start=1):
        print(f"[{number}] warning: {warning}")


def run(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.config import load_config  # noqa: PLC0415 - polars only for this command
    from vbsad_batch.runtime.atomic_write import atomic_open, write_text_atomic  # noqa: PLC0415
    from vbsad_batch.weighting.yields import yields_table  # noqa: PLC0415

    coefficients: dict[str, float] = {}
    for name, value in args.op:
        if name in coefficients:
            raise UsageError(f"--op {name} given twice")
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
        text = json.dumps(finite_or_none(document), indent=2, allow_nan=False) + "\n"
        write_text_atomic(args.json, text)
    if not args.quiet or not (args.csv or args.json):  # -q does not hide the only output
        _print_yields(rows, config.luminosity_fb, config.selection)
    return EXIT_OK
