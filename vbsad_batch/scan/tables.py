"""The outputs of the scan: table.json, table.csv and table.md (the layout of the reference
paper's Table 1) and the curves as Parquet tables, made from the results of the work items.
The files themselves are described in `vbsad_batch.scan.driver`.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = [
    "CONTOUR_COLUMNS",
    "CONTOUR_GRID_COLUMNS",
    "CURVE_COLUMNS",
    "OUTPUT_NAMES",
    "PAIR_REGION_COLUMNS",
    "SIGMA_CURVE_COLUMNS",
    "TABLE_FIELDS",
    "ContourResult",
    "CutResult",
    "PointResult",
    "contour_tables",
    "csv_text",
    "curves_table",
    "json_ready",
    "markdown_text",
    "sigma_curves_table",
]

OUTPUT_NAMES: tuple[str, ...] = (
    "table.json",
    "table.csv",
    "table.md",
    "curves.parquet",
    "sigma_curves.parquet",
    "contours.parquet",
    "contour_grid.parquet",
)
"""The output files of `run_scan` besides the manifest."""


CURVE_COLUMNS: tuple[str, ...] = (
    "model",
    "score",
    "operator",
    "threshold",
    "sm_yield",
    "lin_yield",
    "quad_yield",
    "sm_mc_events",
    "sm_efficiency",
    "admissible",
)
"""Columns of curves.parquet (yields in events at the config's luminosity)."""


SIGMA_CURVE_COLUMNS: tuple[str, ...] = (
    "model",
    "score",
    "operator",
    "statistic",
    "side",
    "threshold",
    "c",
    "sigma",
)
"""Columns of sigma_curves.parquet: `statistic` "proxy" or "asimov", `side` "minus" or "plus"
(the limit whose region, score >= `threshold`, the curve is in), `sigma` that statistic at
Wilson coefficient `c` (Lambda = 1 TeV)."""


PAIR_REGION_COLUMNS: tuple[str, ...] = (
    "model",
    "score",
    "operator_a",
    "operator_b",
    "threshold",
    "sm_yield",
    "lin_a",
    "quad_a",
    "lin_b",
    "quad_b",
    "mix_yield",
    "sm_mc_events",
)


CONTOUR_COLUMNS: tuple[str, ...] = (*PAIR_REGION_COLUMNS, "angle", "c_a", "c_b")
"""Columns of contours.parquet: the region (score >= `threshold`; S, L_a, Q_a, L_b, Q_b and the
MIX yield M in events at c = 1; SM Monte Carlo events), `angle` (radians) of the ray from
(0, 0), and the point (c_a, c_b) of sigma = z on it (null: not reached)."""


CONTOUR_GRID_COLUMNS: tuple[str, ...] = (*PAIR_REGION_COLUMNS, "c_a", "c_b", "sigma")
"""Columns of contour_grid.parquet: the region as in contours.parquet, and the proxy sigma at
(c_a, c_b)."""


TABLE_FIELDS: tuple[str, ...] = (
    "proxy.c_minus",
    "proxy.c_plus",
    "proxy.c_minus_error",
    "proxy.c_plus_error",
    "proxy.bootstrap_reached_minus",
    "proxy.bootstrap_reached_plus",
    "proxy.minus.threshold",
    "proxy.minus.sm_yield",
    "proxy.minus.lin_yield",
    "proxy.minus.quad_yield",
    "proxy.minus.sm_mc_events",
    "proxy.minus.sm_efficiency",
    "proxy.plus.threshold",
    "proxy.plus.sm_yield",
    "proxy.plus.lin_yield",
    "proxy.plus.quad_yield",
    "proxy.plus.sm_mc_events",
    "proxy.plus.sm_efficiency",
    "asimov.c_minus",
    "asimov.c_plus",
    "asimov.minus.threshold",
    "asimov.minus.sm_yield",
    "asimov.minus.lin_yield",
    "asimov.minus.quad_yield",
    "asimov.minus.sm_mc_events",
    "asimov.minus.sm_efficiency",
    "asimov.plus.threshold",
    "asimov.plus.sm_yield",
    "asimov.plus.lin_yield",
    "asimov.plus.quad_yield",
    "asimov.plus.sm_mc_events",
    "asimov.plus.sm_efficiency",
    "interval_95cl.low",
    "interval_95cl.high",
    "other.c_minus",
    "other.c_plus",
    "ratio_to_best_cut.minus",
    "ratio_to_best_cut.plus",
    "proxy.minus.cut",
    "proxy.plus.cut",
)
"""Quantities per operator, as keys of table.json's nested dicts and table.csv's column suffixes
(`<operator>.<field>`). c: Wilson coefficient (Lambda = 1 TeV); `*_error`: bootstrap standard
deviation; `bootstrap_reached_*`: fraction of replicas in which the limit was reached;
`minus` / `plus`: the region of the limit (yields in events); `other`: the proxy limits with
the regions chosen the other way (`other_region_from`); `ratio_to_best_cut`: c / c of the best
single cut per side; `*.cut`: the best single cut's region (its row only). Empty / null: not
reached or not applicable."""


@dataclass(frozen=True, slots=True)
class PointResult:
    """The point estimate of one (model, score, operator): limits, interval, curves."""

    proxy: dict[str, Any]
    asimov: dict[str, Any]
    interval: tuple[float | None, float | None]
    curve: dict[str, np.ndarray]
    sigma_curves: dict[str, np.ndarray]
    other: dict[str, float | None] | None = None  # c_minus, c_plus, the other region choice


@dataclass(frozen=True, slots=True)
class CutResult:
    """The best single cut of one operator: its proxy limits, each side with its region and
    `cut` (e.g. "ptl1 >= 312.5")."""

    proxy: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ContourResult:
    """The contour of one (model, score, operator pair): its region, rays and grid."""

    region: dict[str, Any]  # PAIR_REGION_COLUMNS[4:] -> value; empty: no region
    contour: dict[str, np.ndarray]  # angle, c_a, c_b
    grid: dict[str, np.ndarray]  # c_a, c_b, sigma


def json_ready(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def csv_text(document: Mapping[str, Any]) -> str:
    operators = document["operators"]
    header = ["model", "kind", "score"] + [f"{op}.{f}" for op in operators for f in TABLE_FIELDS]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    rows = list(document["rows"])
    if document.get("best_cut") is not None:
        rows.append(
            {"model": "best single cut", "kind": "cut", "score": "", **document["best_cut"]}
        )
    for row in rows:
        cells: list[str] = [row["model"], row["kind"], row["score"]]
        for op in operators:
            flat = dict(_flatten(row["operators"][op]))
            for field in TABLE_FIELDS:
                value = flat.get(field)
                cells.append(
                    "" if value is None else value if isinstance(value, str) else repr(value)
                )
        writer.writerow(cells)
    return buffer.getvalue()


def _fmt(value: float | None, error: float | None = None, spread: float | None = None) -> str:
    if value is None:
        return "not reached"
    text = f"{value:.3g}"
    if error is not None:
        text += f" ± {error:.2g}"
    if spread is not None:
        text += f" (seeds ± {spread:.2g})"
    return text


def _pair(minus: str, plus: str) -> str:
    return "not reached" if minus == plus == "not reached" else f"{minus}, {plus}"


def _table(
    operators: Sequence[str], rows: Sequence[tuple[str, Mapping[str, Any]]], cell: Any
) -> list[str]:
    """A markdown table: one row per (label, per-operator entries), operators as columns."""
    lines = [
        "| " + " | ".join(["model", *operators]) + " |",
        "|" + "---|" * (len(operators) + 1),
    ]
    for label, entries in rows:
        lines.append("| " + " | ".join([label, *(cell(entries[op]) for op in operators)]) + " |")
    return lines


def _group_label(group: Mapping[str, Any]) -> str:
    label = f"`{group['group']}` ({group['score']})"
    seeds = group["seeds"]
    if len(seeds) > 1:
        label += f", median of {len(seeds)} seeds"
    return label


_REGION_TEXT = {
    "validation": "chosen on the validation split and quoted on the test split (no peeking)",
    "test": "chosen and quoted on the test split (the reference paper's method: optimistic, "
    "a threshold between two test events tunes L and Q)",
}


def markdown_text(document: Mapping[str, Any]) -> str:
    z = document["significance"]
    adm = document["admissibility"]
    boot = document["bootstrap"]
    operators = document["operators"]
    rows = [(f"`{r['model']}` ({r['score']})", r["operators"]) for r in document["rows"]]
    groups = [(_group_label(g), g["operators"]) for g in document["groups"]]
    best_cut = document.get("best_cut")

    def median(entry: Mapping[str, Any]) -> str:
        return _pair(
            _fmt(entry["c_minus"], entry["c_minus_error"], entry["c_minus_seed_spread"]),
            _fmt(entry["c_plus"], entry["c_plus_error"], entry["c_plus_seed_spread"]),
        )

    def cut(entry: Mapping[str, Any]) -> str:
        p = entry["proxy"]
        return _pair(
            *(
                "not reached" if p[f"c_{s}"] is None else f"{p[f'c_{s}']:.3g} ({p[s]['cut']})"
                for s in ("minus", "plus")
            )
        )

    def ratio(entry: Mapping[str, Any]) -> str:
        r = entry["ratio_to_best_cut"] or {}
        return ", ".join("-" if r.get(s) is None else f"{r[s]:.2f}" for s in ("minus", "plus"))

    def other(entry: Mapping[str, Any]) -> str:
        return _pair(_fmt(entry["other_c_minus"]), _fmt(entry["other_c_plus"]))

    def asimov(entry: Mapping[str, Any]) -> str:
        a = entry["asimov"]
        return _pair(_fmt(a["c_minus"]), _fmt(a["c_plus"]))

    def interval(entry: Mapping[str, Any]) -> str:
        low, high = entry["interval_95cl"]["low"], entry["interval_95cl"]["high"]
        left = "(-inf" if low is None else f"[{low:.3g}"
        right = "+inf)" if high is None else f"{high:.3g}]"
        return f"{left}, {right}"

    def region(entry: Mapping[str, Any]) -> str:
        parts = []
        for side, sign in (("minus", "c-"), ("plus", "c+")):
            r = entry["proxy"][side]
            if r["threshold"] is None:
                parts.append(f"{sign}: not reached")
            else:
                parts.append(
                    f"{sign}: t {r['threshold']:.4g}, S {r['sm_yield']:.3g}, "
                    f"L {r['lin_yield']:.3g}, Q {r['quad_yield']:.3g}, "
                    f"{r['sm_mc_events']:.0f} SM MC events, eff {r['sm_efficiency']:.3g}"
                )
        return "; ".join(parts)

    main = _table(operators, groups, median)
    if best_cut is not None:
        main += _table(operators, [("best single cut", best_cut["operators"])], cut)[2:]
    lines = [
        "# Sensitivity to the EFT operators",
        "",
        f"Luminosity {document['luminosity_fb']:g} fb^-1. Wilson coefficients at Lambda = 1 TeV. "
        f"Anomaly region: score >= threshold, {_REGION_TEXT[document['region_from']]}; "
        f"admissible with at least {adm['min_sm_mc_events']} SM Monte Carlo events and an SM "
        f"yield of at least {adm['min_sm_yield']:g} events. Rows: model (score column); "
        "columns: operators.",
        "",
        f"## Smallest c-, c+ with sigma = |c L + c^2 Q| / sqrt(S) = {z:g} (the paper's proxy)",
        "",
        f"Regions {_REGION_TEXT[document['region_from']]}. ± : standard deviation over "
        f"{boot['replicas']} bootstrap replicas of the Monte Carlo events (seed {boot['seed']}); "
        "for several training seeds: the median over the seeds, with the median ± and the seeds' "
        "standard deviation. Best single cut: the best region of one observable (either "
        "direction), found by the same rules, no ±.",
        "",
        *main,
        "",
    ]
    if best_cut is not None:
        lines += [
            "## Model / best single cut",
            "",
            "c of the model / c of the best single cut, for c-, c+: below 1 the model sees a "
            "smaller coefficient than any single cut.",
            "",
            *_table(operators, groups, ratio),
            "",
        ]
    else:
        lines += ["No best single cut: the datasets of the analysis are not there.", ""]
    lines += [
        f"## Regions {document['other_region_from']}-chosen, for comparison",
        "",
        f"The proxy limits with their regions {_REGION_TEXT[document['other_region_from']]}.",
        "",
        *_table(operators, groups, other),
        "",
        f"## Smallest c-, c+ with the Asimov significance Z = {z:g}",
        "",
        "Z = sqrt(2((s+b) ln(1+s/b) - s)), s = c L + c^2 Q, b = S.",
        "",
        *_table(operators, rows, asimov),
        "",
        "## Expected 95% CL interval on c",
        "",
        f"Binned likelihood of the score distribution on SM Asimov data "
        f"({document['interval_95cl']['bins']} bins of equal SM Monte Carlo content); "
        "an infinite end: not constrained on that side.",
        "",
        *_table(operators, rows, interval),
        "",
        "## Regions of the proxy limits",
        "",
        "t: threshold; S, L, Q: SM, LIN (c = 1), QUAD (c = 1) yields in the region (test "
        "split), events; eff: SM efficiency.",
        "",
        *_table(operators, rows, region),
        "",
    ]
    return "\n".join(lines)


def _point_parts(
    rows: Sequence[tuple[str, str, str]],
    operators: Sequence[str],
    columns: Sequence[str],
    arrays_of: Callable[[PointResult], Mapping[str, np.ndarray]],
    points: Mapping[tuple[str, str, str], PointResult],
) -> dict[str, list[np.ndarray]]:
    """Per column, the arrays of every (model, score, operator) point in table order, with the
    first three columns (model, score, operator) filled in."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in columns}
    for model, _, column in rows:
        for op in operators:
            arrays = arrays_of(points[(model, column, op)])
            n = arrays[columns[3]].size
            for name, value in zip(columns[:3], (model, column, op), strict=True):
                parts[name].append(np.full(n, value, dtype=object))
            for name in columns[3:]:
                parts[name].append(arrays[name])
    return parts


def curves_table(
    rows: Sequence[tuple[str, str, str]],
    operators: Sequence[str],
    points: Mapping[tuple[str, str, str], PointResult],
) -> pa.Table:
    parts = _point_parts(rows, operators, CURVE_COLUMNS, lambda p: p.curve, points)
    types = {
        "model": pa.string(),
        "score": pa.string(),
        "operator": pa.string(),
        "sm_mc_events": pa.int64(),
        "admissible": pa.bool_(),
    }
    arrays = [
        pa.array(
            np.concatenate(parts[name]) if parts[name] else [],
            type=types.get(name, pa.float64()),
        )
        for name in CURVE_COLUMNS
    ]
    return pa.Table.from_arrays(arrays, names=list(CURVE_COLUMNS))


def _typed_table(
    columns: Sequence[str], parts: Mapping[str, list[np.ndarray]], types: Mapping[str, Any]
) -> pa.Table:
    """A table of the concatenated parts; float64 unless `types` says otherwise, NaN -> null in
    float columns other than sigma (not reached)."""
    arrays = []
    for name in columns:
        kind = types.get(name, pa.float64())
        if not parts[name]:
            arrays.append(pa.array([], type=kind))
            continue
        values = np.concatenate(parts[name])
        mask = None
        if kind == pa.float64() and name not in ("sigma",):
            mask = ~np.isfinite(values.astype(np.float64))
        arrays.append(pa.array(values, type=kind, mask=mask))
    return pa.Table.from_arrays(arrays, names=list(columns))


_STRING_TYPES = {
    name: pa.string()
    for name in ("model", "score", "operator", "operator_a", "operator_b", "statistic", "side")
}


def sigma_curves_table(
    rows: Sequence[tuple[str, str, str]],
    operators: Sequence[str],
    points: Mapping[tuple[str, str, str], PointResult],
) -> pa.Table:
    parts = _point_parts(rows, operators, SIGMA_CURVE_COLUMNS, lambda p: p.sigma_curves, points)
    return _typed_table(SIGMA_CURVE_COLUMNS, parts, _STRING_TYPES)


def contour_tables(
    contours: Mapping[tuple[str, str, str, str], ContourResult],
) -> tuple[pa.Table, pa.Table]:
    """(contours.parquet, contour_grid.parquet) in work-item order."""
    tables = []
    for columns, field in ((CONTOUR_COLUMNS, "contour"), (CONTOUR_GRID_COLUMNS, "grid")):
        parts: dict[str, list[np.ndarray]] = {name: [] for name in columns}
        for (model, column, a, b), result in contours.items():
            values: dict[str, np.ndarray] = getattr(result, field)
            if not result.region or not values or values["c_a"].size == 0:
                continue
            n = values["c_a"].size
            head = {"model": model, "score": column, "operator_a": a, "operator_b": b}
            for name in PAIR_REGION_COLUMNS:
                value = head[name] if name in head else result.region[name]
                dtype = object if name in head else type(value)
                parts[name].append(np.full(n, value, dtype=dtype))
            for name in columns[len(PAIR_REGION_COLUMNS) :]:
                parts[name].append(values[name])
        types = {**_STRING_TYPES, "sm_mc_events": pa.int64()}
        tables.append(_typed_table(columns, parts, types))
    return tables[0], tables[1]
