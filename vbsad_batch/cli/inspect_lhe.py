"""`vbsad inspect`: an LHE file's metadata and its first rows."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

import json

import pyarrow as pa

from vbsad_batch.cli.options import EXIT_OK, UsageError, existing_kind, non_negative_int
from vbsad_batch.cli.output import finite_or_none
from vbsad_batch.ingest.lhe import LheInfo, read_lhe

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommand to `subparsers` (`common`: the options every subcommand has)."""
    parser = subparsers.add_parser(
        "inspect",
        parents=[common],
        help="print an LHE file's metadata and first rows",
        description=(
            "Read an LHE file and print its metadata: generator, LHEF version, beams (GeV), "
            "cross sections with errors (pb), MadGraph generation info, numbers of events and "
            "rows, rejected events by reason, named weights with descriptions and sums of "
            "weights; then the first rows of the observables table (GeV, radians)."
        ),
    )
    parser.add_argument(
        "file", type=existing_kind("an LHE file"), metavar="FILE", help="LHE file (.lhe or .lhe.gz)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='machine-readable output: {"info": {...}, "columns": [...], "rows": [...]}; '
        "non-finite numbers become null",
    )
    parser.add_argument(
        "-n",
        "--events",
        type=non_negative_int,
        default=5,
        metavar="N",
        help="rows of the observables table to show (default: %(default)s)",
    )
    parser.add_argument(
        "--on-error",
        choices=("fail", "skip"),
        default="fail",
        help="malformed event: 'fail' stops with file:line, 'skip' lists it under "
        "'skipped' (default: %(default)s)",
    )
    parser.set_defaults(handler=run)


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


def run(args: argparse.Namespace, console: Console | None) -> int:
    if not args.file.is_file():
        raise UsageError(f"no such file: {args.file}")
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
        print(json.dumps(finite_or_none(document), indent=2, allow_nan=False))
    else:
        _print_info(info)
        _print_rows(columns, rows, info.n_rows)
    return EXIT_OK
