"""The sensitivity table as data (table.json): the results of the work items, assembled.

- `rows`: one per model and score column (every seed of a grid its own row): per operator the
  proxy limits with their bootstrap error, the Asimov limits, the 95% CL interval, the limits
  of the other region choice (`other`: chosen on the test events when the regions come from
  the validation split, and the other way round), and the ratio to the best single cut;
- `best_cut`: per operator the best single-observable region (`vbsad_batch.scan.baseline`);
- `groups`: the models that differ only by their seed, together: per operator the median
  limit over the seeds, the median bootstrap error and the seed spread (the standard
  deviation over the seeds that reach the limit), and its ratio to the best cut.

Rendering it (json, csv, markdown) is `vbsad_batch.scan.tables`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vbsad_batch.config import AnalysisConfig, ModelSpec
from vbsad_batch.scan.tables import TABLE_FIELDS, CutResult, PointResult

__all__ = ["SCAN_FORMAT_VERSION", "build_document"]

SCAN_FORMAT_VERSION = 3
"""Version of the scan outputs' layout; bump when it changes."""

Row = tuple[str, str, str]
"""(model, kind, score column) of a table row."""


def _bootstrap_summary(limits: np.ndarray) -> dict[str, float | None]:
    """Standard deviation (ddof 1) of c- and c+ over the replicas that reached the limit."""
    out: dict[str, float | None] = {}
    for column, side in enumerate(("minus", "plus")):
        values = limits[:, column] if limits.size else np.empty(0)
        reached = values[np.isfinite(values)]
        out[f"c_{side}_error"] = float(np.std(reached, ddof=1)) if reached.size >= 2 else None
        out[f"bootstrap_reached_{side}"] = reached.size / values.size if values.size else None
    return out


def _ratio(model: float | None, cut: float | None) -> float | None:
    """c_model / c_cut on one side (below 1: the model sees a smaller coefficient)."""
    if model is None or cut is None or cut == 0.0:
        return None
    return model / cut


def _cut_ratios(
    proxy: Mapping[str, Any], best_cut: Mapping[str, Any] | None, op: str
) -> dict[str, float | None] | None:
    if best_cut is None:
        return None
    cut = best_cut["operators"][op]["proxy"]
    return {side: _ratio(proxy[f"c_{side}"], cut[f"c_{side}"]) for side in ("minus", "plus")}


def _median(values: Sequence[float | None], side: str) -> float | None:
    """The median over seeds of a limit on one side, a seed that does not reach it counting as
    infinitely far; None when the median is not reached."""
    far = -np.inf if side == "minus" else np.inf
    median = float(np.median([far if v is None else v for v in values]))
    return median if np.isfinite(median) else None


def _spread(values: Sequence[float | None]) -> float | None:
    reached = [v for v in values if v is not None]
    return float(np.std(reached, ddof=1)) if len(reached) >= 2 else None


def _groups(
    rows: Sequence[dict[str, Any]],
    operators: Sequence[str],
    best_cut: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    order: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        order.setdefault((row["group"], row["score"]), []).append(row)
    groups = []
    for (group, score), members in order.items():
        per_op: dict[str, Any] = {}
        for op in operators:
            entries = [m["operators"][op] for m in members]
            summary: dict[str, Any] = {}
            for side in ("minus", "plus"):
                limits = [e["proxy"][f"c_{side}"] for e in entries]
                errors = [e["proxy"][f"c_{side}_error"] for e in entries]
                others = [(e["other"] or {}).get(f"c_{side}") for e in entries]
                summary[f"c_{side}"] = _median(limits, side)
                summary[f"c_{side}_error"] = _median_error(errors)
                summary[f"c_{side}_seed_spread"] = _spread(limits)
                summary[f"other_c_{side}"] = _median(others, side)
            summary["ratio_to_best_cut"] = _cut_ratios(summary, best_cut, op)
            per_op[op] = summary
        groups.append(
            {
                "group": group,
                "kind": members[0]["kind"],
                "score": score,
                "models": [m["model"] for m in members],
                "seeds": [m["seed"] for m in members],
                "operators": per_op,
            }
        )
    return groups


def _median_error(errors: Sequence[float | None]) -> float | None:
    known = [e for e in errors if e is not None]
    return float(np.median(known)) if known else None


def build_document(
    config: AnalysisConfig,
    *,
    rows: Sequence[Row],
    operators: Sequence[str],
    points: Mapping[tuple[str, str, str], PointResult],
    boots: Mapping[tuple[str, str, str], np.ndarray],
    cuts: Mapping[str, CutResult] | None,
) -> dict[str, Any]:
    """table.json's content (see the module docstring); `cuts`: per operator the best single
    cut, None when it could not be made (no datasets)."""
    s = config.scan
    best_cut = None
    if cuts is not None:
        best_cut = {"operators": {op: {"proxy": cuts[op].proxy} for op in operators}}
    table_rows = []
    for model, kind, column in rows:
        spec = ModelSpec.from_name(model)
        per_op: dict[str, Any] = {}
        for op in operators:
            point = points[(model, column, op)]
            proxy = dict(point.proxy)
            proxy.update(_bootstrap_summary(boots[(model, column, op)]))
            per_op[op] = {
                "proxy": proxy,
                "asimov": point.asimov,
                "interval_95cl": {"low": point.interval[0], "high": point.interval[1]},
                "other": point.other,
                "ratio_to_best_cut": _cut_ratios(proxy, best_cut, op),
            }
        table_rows.append(
            {
                "model": model,
                "kind": kind,
                "score": column,
                "group": model if spec is None else spec.group,
                "seed": None if spec is None else spec.seed,
                "operators": per_op,
            }
        )
    return {
        "format_version": SCAN_FORMAT_VERSION,
        "luminosity_fb": config.luminosity_fb,
        "significance": s.significance,
        "admissibility": {
            "min_sm_mc_events": s.min_sm_mc_events,
            "min_sm_yield": s.min_sm_yield,
        },
        "bootstrap": {"replicas": s.bootstrap_replicas, "seed": s.seed},
        "interval_95cl": {"bins": s.interval_bins},
        "region_from": s.region_from,
        "other_region_from": "test" if s.region_from == "validation" else "validation",
        "fields": list(TABLE_FIELDS),
        "operators": list(operators),
        "rows": table_rows,
        "best_cut": best_cut,
        "groups": _groups(table_rows, operators, best_cut),
    }
