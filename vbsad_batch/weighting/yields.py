"""EFT weighting with polars: per-event expected yields, the EFT combination, SM/LIN/QUAD from
reweighting weights, and yields tables (the split is in `vbsad_batch.weighting.split`).

Units. Event weights `w` are in the generator's unit (pb for MadGraph), cross sections in pb,
luminosities in fb^-1. An event's expected yield, in events at the luminosity L, is

    yield = w * xsec_pb * 1000 * L_fb / sumw / n_files

(pb * fb^-1 = 1000 events), where `sumw` is the sum of the nominal weight over ALL generated
events of the event's file (before any selection, including events that are not rows of the
table) and `n_files` the number of files of the sample: each file is normalised to the sample
cross section on its own, and a sample of several files is their average.

EFT decomposition (DESIGN.md), for Wilson coefficients {c_i}:

    BSM = SM + sum_i c_i LIN_i + sum_i c_i^2 QUAD_i + sum_{i<j} c_i c_j MIX_ij

Negative weights (LIN, MIX) are kept and summed as they are: no abs(), no clipping.

Everything is lazy (`polars.LazyFrame`): the frames are only read when a result is collected,
with the streaming engine, so memory stays bounded by polars' chunk size, not the sample size.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import polars as pl

from vbsad_batch.config import AnalysisConfig, selection_expr
from vbsad_batch.ingest.normalisation import FileNormalisation
from vbsad_batch.ingest.samples import event_table

__all__ = [
    "COMPONENTS",
    "FB_PER_PB_EVENTS",
    "YIELD_COLUMN",
    "ComponentFrame",
    "ComponentSource",
    "combine",
    "component_frames",
    "component_yields",
    "derive_from_reweighting",
    "event_yields",
    "reweighting_exprs",
    "yield_scale",
    "yields_table",
]

logger = logging.getLogger(__name__)

FB_PER_PB_EVENTS = 1000.0
"""Events per (pb * fb^-1): a cross section in pb times a luminosity in fb^-1, times 1000."""

YIELD_COLUMN = "yield"
COMPONENTS: tuple[str, ...] = ("sm", "lin", "quad", "mix")

ComponentSource = Literal["generated", "reweighted"]

_WEIGHT_PREFIX = "w_"
_STREAMING: Literal["streaming"] = "streaming"


# --- yields --------------------------------------------------------------------------------


def yield_scale(norm: FileNormalisation, luminosity_fb: float, n_files: int) -> float:
    """Events at `luminosity_fb` (fb^-1) per unit of event weight, for one file of a sample.

    `xsec_pb * 1000 * L / sumw / n_files`; multiply an event weight by it to get its yield.

    Raises:
        ValueError: non-positive or non-finite luminosity, `n_files` < 1, a sum of weights
            that is zero or not finite, a cross section that is not finite (naming the file).
    """
    if not (math.isfinite(luminosity_fb) and luminosity_fb > 0):
        raise ValueError(f"luminosity must be a positive number of fb^-1, got {luminosity_fb!r}")
    if isinstance(n_files, bool) or not isinstance(n_files, int) or n_files < 1:
        raise ValueError(f"n_files must be an int >= 1, got {n_files!r}")
    if not math.isfinite(norm.sum_weights) or norm.sum_weights == 0.0:
        raise ValueError(
            f"{norm.path}: sum of weights of all events is {norm.sum_weights!r}; "
            "cannot normalise the sample"
        )
    if not math.isfinite(norm.xsec_pb):
        raise ValueError(f"{norm.path}: cross section is {norm.xsec_pb!r} pb")
    return norm.xsec_pb * FB_PER_PB_EVENTS * luminosity_fb / norm.sum_weights / n_files


def event_yields(
    frame: pl.LazyFrame, norm: FileNormalisation, luminosity_fb: float, n_files: int
) -> pl.LazyFrame:
    """Add the column `yield` (float64, events at `luminosity_fb` fb^-1) to one file's events.

    `yield = w * xsec_pb * 1000 * L / sumw / n_files` with `xsec_pb` and `sumw` (the sum of the
    nominal weight over all generated events of the file) from `norm`. Signs are kept.
    """
    scale = yield_scale(norm, luminosity_fb, n_files)
    return frame.with_columns((pl.col("w").cast(pl.Float64) * scale).alias(YIELD_COLUMN))


# --- EFT combination -------------------------------------------------------------------------

_C = TypeVar("_C", float, pl.Expr, pl.Series)


def combine(
    sm: _C,
    lin: Mapping[str, _C],
    quad: Mapping[str, _C],
    mix: Mapping[tuple[str, str], _C],
    coefficients: Mapping[str, float],
    *,
    warn_missing_mix: bool = True,
) -> _C:
    """BSM = SM + sum_i c_i LIN_i + sum_i c_i^2 QUAD_i + sum_{i<j} c_i c_j MIX_ij.

    Works on yields (floats), per-event weight expressions (`pl.Expr`) or columns
    (`pl.Series`) alike. Operators missing from `coefficients` have c = 0. Every operator with
    c != 0 needs both its LIN and its QUAD term. A MIX term counts when both its operators have
    coefficients; when no MIX term is given for a pair of non-zero coefficients, the
    interference between the two is taken as zero (logged as a warning). Negative terms are
    added as they are. `warn_missing_mix=False` skips that warning (e.g. on a repeated call).

    Raises:
        ValueError: a non-finite coefficient; an operator with c != 0 lacking LIN or QUAD; a
            MIX key that is not a pair of distinct operators, or a pair given in both orders.
    """
    total = sm
    active = {op: float(c) for op, c in coefficients.items() if c != 0.0}
    for op, c in sorted(active.items()):
        if not math.isfinite(c):
            raise ValueError(f"coefficient {op} = {c!r} is not finite")
        missing = [name for name, terms in (("LIN", lin), ("QUAD", quad)) if op not in terms]
        if missing:
            raise ValueError(f"operator {op}: no {' and no '.join(missing)} component given")
        total = total + c * lin[op] + (c * c) * quad[op]
    seen: set[frozenset[str]] = set()
    for pair in sorted(mix):
        if len(pair) != 2 or pair[0] == pair[1]:
            raise ValueError(f"MIX key must be two distinct operators, got {pair!r}")
        key = frozenset(pair)
        if key in seen:
            raise ValueError(f"MIX term of {pair[0]} and {pair[1]} given twice")
        seen.add(key)
        op1, op2 = pair
        if op1 in active and op2 in active:
            total = total + (active[op1] * active[op2]) * mix[pair]
    ops = sorted(active)
    for i, op1 in enumerate(ops):
        for op2 in ops[i + 1 :]:
            if warn_missing_mix and frozenset((op1, op2)) not in seen:
                logger.warning(
                    "no MIX component for %s and %s: their interference is taken as zero",
                    op1,
                    op2,
                )
    return total


# --- reweighting -----------------------------------------------------------------------------


def reweighting_exprs(
    sm_id: str, plus_id: str, minus_id: str, k: float
) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(SM, LIN, QUAD) per-event weights from the reweighting weights `w_<id>` at c = 0, +k, -k.

    SM = w0, LIN = (w+ - w-) / (2k), QUAD = (w+ + w- - 2 w0) / (2 k^2): exact for
    |A(c)|^2 = SM + c LIN + c^2 QUAD.

    Raises:
        ValueError: k is not a positive finite number.
    """
    if not (math.isfinite(k) and k > 0):
        raise ValueError(f"reweighting step k must be a positive number, got {k!r}")
    w0 = pl.col(_WEIGHT_PREFIX + sm_id).cast(pl.Float64)
    w_plus = pl.col(_WEIGHT_PREFIX + plus_id).cast(pl.Float64)
    w_minus = pl.col(_WEIGHT_PREFIX + minus_id).cast(pl.Float64)
    lin = (w_plus - w_minus) / (2.0 * k)
    quad = (w_plus + w_minus - 2.0 * w0) / (2.0 * k * k)
    return w0, lin, quad


def derive_from_reweighting(
    frame: pl.LazyFrame, sm_id: str, plus_id: str, minus_id: str, k: float
) -> tuple[pl.LazyFrame, pl.LazyFrame, pl.LazyFrame]:
    """SM, LIN and QUAD event frames of one operator from a reweighted sample.

    Each returned frame is `frame` with `w` replaced by that component's weight (see
    `reweighting_exprs`) and the `w_<id>` columns dropped; normalise them with `event_yields`
    and the sample's nominal normalisation (the reweighting weights share its scale).
    """
    exprs = reweighting_exprs(sm_id, plus_id, minus_id, k)
    weight_columns = pl.selectors.starts_with(_WEIGHT_PREFIX)
    return tuple(  # type: ignore[return-value]
        frame.with_columns(expr.alias("w")).drop(weight_columns) for expr in exprs
    )


# --- frames of a configuration ---------------------------------------------------------------


@dataclass(frozen=True)
class ComponentFrame:
    """The events of one EFT component of one sample, with their yields.

    Attributes:
        component: "sm", "lin", "quad" or "mix".
        operators: () for SM, (op,) for LIN/QUAD, (op1, op2) for MIX.
        sample: the sample's name in the config.
        source: "generated" (a separate generation) or "reweighted" (derived from weights).
        frame: lazy events: the observables (GeV, radians), `w` (the component's weight),
            `yield` (events at the configured luminosity), `event`, `input_sha256`.
        normalisations: per input file, the cross section (pb) and sum of weights used.
    """

    component: str
    operators: tuple[str, ...]
    sample: str
    source: ComponentSource
    frame: pl.LazyFrame
    normalisations: tuple[FileNormalisation, ...]

    @property
    def operator_label(self) -> str:
        """ "" for SM, "cW" for LIN/QUAD, "cW,cHW" for MIX."""
        return ",".join(self.operators)


def _concat(frames: Sequence[pl.LazyFrame]) -> pl.LazyFrame:
    if len(frames) == 1:
        return frames[0]
    # Files of one sample can differ in float width (ROOT float32 vs LHE float64).
    return pl.concat(frames, how="diagonal_relaxed")


def _file_tables(
    files: Sequence[Path],
    work_dir: Path,
    xsec_pb: float | None,
    weight_ids: Sequence[str] = (),
) -> list[tuple[pl.LazyFrame, FileNormalisation]]:
    return [
        event_table(Path(path), work_dir=work_dir, xsec_pb=xsec_pb, weight_ids=weight_ids)
        for path in files
    ]


def component_frames(
    config: AnalysisConfig, *, work_dir: Path | None = None
) -> list[ComponentFrame]:
    """Every component of every sample of `config`, with per-event yields at its luminosity.

    Separate generations give one frame each. A reweighted sample gives SM (weight at c = 0)
    and, per operator of its `points`, LIN and QUAD (`derive_from_reweighting`). LHE inputs
    are ingested (cached) under `work_dir` (default: `config.output_dir`).

    Raises:
        ValueError: a file cannot be normalised (naming it), or two samples give the same
            component of the same operator (naming both). A reweighted sample's SM is used only
            when no separately generated SM sample exists.
    """
    work = config.output_dir if work_dir is None else Path(work_dir)
    lumi = config.luminosity_fb
    out: list[ComponentFrame] = []
    for sample in config.samples:
        tables = _file_tables(sample.files, work, sample.xsec_pb)
        n_files = len(tables)
        frames = [
            event_yields(frame.drop(pl.selectors.starts_with(_WEIGHT_PREFIX)), norm, lumi, n_files)
            for frame, norm in tables
        ]
        out.append(
            ComponentFrame(
                component=sample.component,
                operators=tuple(sample.operators),
                sample=sample.name,
                source="generated",
                frame=_concat(frames),
                normalisations=tuple(norm for _, norm in tables),
            )
        )
    has_generated_sm = any(c.component == "sm" for c in out)
    for rw in config.reweighted:
        ids = [rw.sm_weight, *(i for plus, minus, _ in rw.points.values() for i in (plus, minus))]
        tables = _file_tables(rw.files, work, rw.xsec_pb, ids)
        n_files = len(tables)
        norms = tuple(norm for _, norm in tables)
        per_op: dict[str, tuple[list[pl.LazyFrame], ...]] = {}
        sm_frames: list[pl.LazyFrame] = []
        for op, (plus_id, minus_id, k) in sorted(rw.points.items()):
            lists: tuple[list[pl.LazyFrame], ...] = ([], [], [])
            for frame, norm in tables:
                derived = derive_from_reweighting(frame, rw.sm_weight, plus_id, minus_id, k)
                for target, part in zip(lists, derived, strict=True):
                    target.append(event_yields(part, norm, lumi, n_files))
            per_op[op] = lists
            if not sm_frames:
                sm_frames = lists[0]
        if not per_op:
            sm_frames = [
                event_yields(
                    frame.with_columns(pl.col(_WEIGHT_PREFIX + rw.sm_weight).alias("w")).drop(
                        pl.selectors.starts_with(_WEIGHT_PREFIX)
                    ),
                    norm,
                    lumi,
                    n_files,
                )
                for frame, norm in tables
            ]
        if not has_generated_sm:
            out.append(ComponentFrame("sm", (), rw.name, "reweighted", _concat(sm_frames), norms))
            has_generated_sm = True
        for op, (_, lin_frames, quad_frames) in per_op.items():
            out.append(
                ComponentFrame("lin", (op,), rw.name, "reweighted", _concat(lin_frames), norms)
            )
            out.append(
                ComponentFrame("quad", (op,), rw.name, "reweighted", _concat(quad_frames), norms)
            )
    _check_unique(out)
    return out


def _check_unique(frames: Iterable[ComponentFrame]) -> None:
    seen: dict[tuple[str, frozenset[str]], str] = {}
    for c in frames:
        key = (c.component, frozenset(c.operators))
        if key in seen:
            label = f"{c.component.upper()} {c.operator_label}".strip()
            raise ValueError(
                f"samples {seen[key]!r} and {c.sample!r} both give {label}: keep one of them"
            )
        seen[key] = c.sample


# --- yields tables -----------------------------------------------------------------------------

YIELDS_SCHEMA: dict[str, pl.DataType] = {
    "component": pl.String(),
    "operator": pl.String(),
    "sample": pl.String(),
    "source": pl.String(),
    "coefficient": pl.Float64(),
    "n_mc": pl.Int64(),
    "n_mc_selected": pl.Int64(),
    "yield_total": pl.Float64(),
    "yield_selected": pl.Float64(),
    "yield_selected_mc_error": pl.Float64(),
    "xsec_pb": pl.Float64(),
    "xsec_source": pl.String(),
    "xsec_warning": pl.String(),
}
"""Columns of `yields_table` (yields in events at the configured luminosity)."""


def _aggregations(selection: pl.Expr) -> list[pl.Expr]:
    y = pl.col(YIELD_COLUMN)
    return [
        pl.len().cast(pl.Int64).alias("n_mc"),
        selection.fill_null(False).sum().cast(pl.Int64).alias("n_mc_selected"),
        y.sum().alias("yield_total"),
        y.filter(selection).sum().alias("yield_selected"),
        (y * y).filter(selection).sum().sqrt().alias("yield_selected_mc_error"),
        y.null_count().cast(pl.Int64).alias("n_null"),
    ]


def component_yields(frames: Sequence[pl.LazyFrame], selection: pl.Expr) -> list[dict[str, float]]:
    """Per frame (with a `yield` column): rows `n_mc`, `n_mc_selected`, `yield_total` (before
    the selection), `yield_selected`, `yield_selected_mc_error` (sqrt of the sum of squared
    yields after the selection), `n_null` (events whose yield is missing). One streaming pass
    over the inputs for all frames together (shared scans are read once)."""
    queries = [frame.select(_aggregations(selection)) for frame in frames]
    results = pl.collect_all(queries, engine=_STREAMING)
    return [result.row(0, named=True) for result in results]


def _xsec_summary(norms: Sequence[FileNormalisation]) -> tuple[float | None, str, str]:
    """(the cross section if the files agree on one, their sources, their warnings one per
    line)."""
    xsecs = {n.xsec_pb for n in norms}
    sources = sorted({n.xsec_source for n in norms})
    warnings = list(dict.fromkeys(w for n in norms for w in n.warnings))
    return (xsecs.pop() if len(xsecs) == 1 else None), ",".join(sources), "\n".join(warnings)


def yields_table(
    config: AnalysisConfig,
    coefficients: Mapping[str, float] | None = None,
    *,
    work_dir: Path | None = None,
) -> pl.DataFrame:
    """Expected yields (events at `config.luminosity_fb` fb^-1) before and after the selection.

    One row per component of each sample (SM, LIN and QUAD at c = 1, MIX at c_i = c_j = 1),
    then, for the given `coefficients` ({operator: c}), one row "eft" per operator
    (c LIN + c^2 QUAD) and one row "bsm" for their combination with SM (`combine`). Columns:
    `YIELDS_SCHEMA`; `yield_selected_mc_error` (the Monte Carlo statistical error, sqrt of
    the sum of squared event yields) is null on combined rows; `xsec_pb` is null when the
    files of a sample have different cross sections; `xsec_warning` holds the disagreements
    the cross-section checks found (`vbsad_batch.ingest.normalisation`), one per line, ""
    when none.

    Raises:
        ValueError: an unknown operator in `coefficients`, missing weights, or a problem of
            `component_frames`.
    """
    coefficients = dict(coefficients or {})
    known = set(config.operators())
    unknown = sorted(set(coefficients) - known)
    if unknown:
        raise ValueError(
            f"operator(s) {', '.join(unknown)} not in the config {config.path} "
            f"(known: {', '.join(sorted(known)) or 'none'})"
        )
    comps = component_frames(config, work_dir=work_dir)
    stats = component_yields([c.frame for c in comps], selection_expr(config.selection))
    rows: list[dict[str, object]] = []
    for comp, stat in zip(comps, stats, strict=True):
        if stat["n_null"]:
            raise ValueError(
                f"sample {comp.sample!r} ({comp.component} {comp.operator_label}): "
                f"{stat['n_null']} event(s) lack a weight"
            )
        xsec, source, warning = _xsec_summary(comp.normalisations)
        rows.append(
            {
                "component": comp.component,
                "operator": comp.operator_label,
                "sample": comp.sample,
                "source": comp.source,
                "coefficient": None,
                **{k: stat[k] for k in YIELDS_SCHEMA if k in stat},
                "xsec_pb": xsec,
                "xsec_source": source,
                "xsec_warning": warning,
            }
        )
    if coefficients:
        rows.extend(_combined_rows(comps, stats, coefficients))
    return pl.DataFrame(rows, schema=YIELDS_SCHEMA, orient="row")


def _combined_rows(
    comps: Sequence[ComponentFrame],
    stats: Sequence[Mapping[str, float]],
    coefficients: Mapping[str, float],
) -> list[dict[str, object]]:
    sm: dict[str, float] = {"yield_total": 0.0, "yield_selected": 0.0}
    lin: dict[str, dict[str, float]] = {}
    quad: dict[str, dict[str, float]] = {}
    mix: dict[tuple[str, str], dict[str, float]] = {}
    for comp, stat in zip(comps, stats, strict=True):
        values = {k: float(stat[k]) for k in ("yield_total", "yield_selected")}
        if comp.component == "sm":
            sm = values
        elif comp.component == "lin":
            lin[comp.operators[0]] = values
        elif comp.component == "quad":
            quad[comp.operators[0]] = values
        elif comp.component == "mix":
            mix[(comp.operators[0], comp.operators[1])] = values
    rows: list[dict[str, object]] = []

    def row(component: str, operator: str, coefficient: float | None, **y: float) -> None:
        rows.append(
            {
                "component": component,
                "operator": operator,
                "sample": "",
                "source": "combined",
                "coefficient": coefficient,
                "n_mc": None,
                "n_mc_selected": None,
                "yield_selected_mc_error": None,
                "xsec_pb": None,
                "xsec_source": "",
                "xsec_warning": "",
                **y,
            }
        )

    for op, c in sorted(coefficients.items()):
        one = {op: c}
        row(
            "eft",
            op,
            c,
            **{
                key: combine(0.0, _pick(lin, key), _pick(quad, key), {}, one)
                for key in ("yield_total", "yield_selected")
            },
        )
    label = ",".join(f"{op}={c:g}" for op, c in sorted(coefficients.items()))
    row(
        "bsm",
        label,
        None,
        **{
            key: combine(
                sm[key],
                _pick(lin, key),
                _pick(quad, key),
                _pick(mix, key),
                coefficients,
                warn_missing_mix=key == "yield_total",
            )
            for key in ("yield_total", "yield_selected")
        },
    )
    return rows


_K = TypeVar("_K", str, tuple[str, str])


def _pick(terms: Mapping[_K, Mapping[str, float]], key: str) -> dict[_K, float]:
    return {name: values[key] for name, values in terms.items()}
