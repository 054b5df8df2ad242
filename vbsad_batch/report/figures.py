"""The report's figures: matplotlib (Agg backend) in an mplhep HEP style, as PNG bytes.

`figure_tasks(inputs)` plans one `FigureTask` per figure that the available stage outputs
allow; `FigureTask.render()` draws it and returns the PNG bytes. Figures:

- `observable_<feature>.png`, per feature of the config: SM, LIN and QUAD of the focus
  operator (the config's training_operator, else its first operator) on the test split,
  weighted by the events' yields. SM and QUAD (positive) are normalised to unit area; LIN
  (interference, signed) is divided by |sum of its weights| and drawn with its negative bins.
- `reconstruction_<model>.png`, per trained model: each feature's input and the model's
  reconstruction (inference mode, decoder of z_mean, mapped back to physical units) for SM
  test events and for EFT (QUAD of the focus operator) test events, unit area.
- `scores_<model>.png`, per scored model: MSE, KLD (and classifier score) of SM versus the
  QUAD of every operator, weighted, unit area.
- `score_vs_<observable>_<model>.png`, per scored model: the scanned score versus a simple
  kinematic variable (mjj when it is a feature): 2D histogram of the SM events and the
  weighted mean score per bin for SM and the focus operator's QUAD.
- `sigma_<operator>.png`, per operator of the scan: sigma(c) in the region of each reached
  limit (proxy and Asimov), with the significance line.
- `training_<model>.png`, per trained model: training and validation loss per epoch.

TensorFlow is imported only to draw the reconstruction figures.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib as mpl

mpl.use("Agg")  # before pyplot: no display, PNG only

import matplotlib.pyplot as plt
import mplhep
import numpy as np
import polars as pl
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from vbsad_batch.config import ENERGY_LIKE, AnalysisConfig
from vbsad_batch.models.paths import HISTORY_NAME, METRICS_NAME, PREPROCESSING_FILE_NAME
from vbsad_batch.models.preprocessing import Preprocessing
from vbsad_batch.report.inputs import ReportInputs, StageOutput

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["FigureTask", "figure_tasks", "focus_operator", "observable_label"]

DPI = 100
N_BINS = 40
MAX_RECONSTRUCTION_EVENTS = 20000
"""Test events per sample run through a model for the reconstruction figures (a bound on time)."""

_STYLE = [mplhep.style.ROOT, {"mathtext.fontset": "dejavusans", "yaxis.labellocation": "center"}]
"""mplhep's ROOT style; math text in DejaVu Sans (the style's TeX Gyre Heros math font is not
always installed); y labels centred (long density labels do not fit at the top)."""
_SM_COLOR = "0.55"
_COLORS = ("#3f90da", "#ffa90e", "#bd1f01", "#94a4a2", "#832db6", "#a96b59", "#e76300", "#b9ac70")
_QUANTILE_RANGE = (0.005, 0.995)
_SIDE_LABELS = {"minus": "limit c-", "plus": "limit c+"}

_LABELS: dict[str, tuple[str, str]] = {
    "mll": (r"$m_{\ell\ell}$", "GeV"),
    "mjj": (r"$m_{jj}$", "GeV"),
    "ptl1": (r"$p_{T}^{\ell_1}$", "GeV"),
    "ptl2": (r"$p_{T}^{\ell_2}$", "GeV"),
    "ptj1": (r"$p_{T}^{j_1}$", "GeV"),
    "ptj2": (r"$p_{T}^{j_2}$", "GeV"),
    "ptll": (r"$p_{T}^{\ell\ell}$", "GeV"),
    "met": (r"$E_{T}^{miss}$", "GeV"),
    "etal1": (r"$\eta_{\ell_1}$", ""),
    "etal2": (r"$\eta_{\ell_2}$", ""),
    "etaj1": (r"$\eta_{j_1}$", ""),
    "etaj2": (r"$\eta_{j_2}$", ""),
    "deltaetajj": (r"$\Delta\eta_{jj}$", ""),
    "deltaphijj": (r"$\Delta\phi_{jj}$", "rad"),
    "phij1": (r"$\phi_{j_1}$", "rad"),
    "phij2": (r"$\phi_{j_2}$", "rad"),
    "phil1": (r"$\phi_{\ell_1}$", "rad"),
    "phil2": (r"$\phi_{\ell_2}$", "rad"),
}
_SCORE_LABELS = {
    "mse": "reconstruction MSE (preprocessed inputs)",
    "kld": "KL divergence [nats]",
    "score": "classifier score",
}


def observable_label(name: str) -> str:
    """Axis label of an observable with its unit, e.g. "$m_{jj}$ [GeV]"."""
    label, unit = _LABELS.get(name, (name, ""))
    return f"{label} [{unit}]" if unit else label


def _plain_label(name: str) -> str:
    """An observable's name with its unit, as plain text: "mjj [GeV]"."""
    unit = _LABELS.get(name, (name, ""))[1]
    return f"{name} [{unit}]" if unit else name


def _density_label(name: str) -> str:
    label, unit = _LABELS.get(name, (name, ""))
    return f"1/N dN/d{label} [1/{unit}]" if unit else f"1/N dN/d{label}"


def focus_operator(config: AnalysisConfig) -> str | None:
    """The operator whose LIN/QUAD the per-observable figures show: the training operator,
    else the first declared (or provided) operator; None without operators."""
    if config.training_operator is not None:
        return config.training_operator
    operators = config.declared_operators or tuple(config.operators())
    return operators[0] if operators else None


@dataclass(frozen=True)
class FigureTask:
    """One figure to draw.

    Attributes:
        file_name: PNG file name inside the figures directory.
        section: the report section it belongs to.
        title: short title.
        caption: what it shows, with units and normalisation.
        draw: makes the matplotlib figure.
    """

    file_name: str
    section: str
    title: str
    caption: str
    draw: Callable[[], Figure]

    def render(self) -> bytes:
        """The figure as PNG bytes (the figure is closed afterwards)."""
        buffer = io.BytesIO()
        with plt.style.context(_STYLE):  # text is laid out when saving: save in the style too
            fig = self.draw()
            try:
                fig.savefig(buffer, format="png", dpi=DPI)
            finally:
                plt.close(fig)
        return buffer.getvalue()


# --- data ---------------------------------------------------------------------------------------


class _Data:
    """Reads (once) the datasets and score files the figures need, checking their SHA-256."""

    def __init__(self, inputs: ReportInputs) -> None:
        self.inputs = inputs
        self._frames: dict[tuple[str, str], pl.DataFrame] = {}

    def _read(self, stage: StageOutput, name: str) -> pl.DataFrame:
        key = (stage.name, name)
        if key not in self._frames:
            self._frames[key] = pl.read_parquet(stage.file(f"{name}.parquet"))
        return self._frames[key]

    def dataset(self, name: str) -> pl.DataFrame:
        return self._read(self.inputs.datasets, name)

    def has_dataset(self, name: str) -> bool:
        return self.inputs.datasets.has(f"{name}.parquet")

    def scores(self, scores: StageOutput, name: str) -> pl.DataFrame:
        return self._read(scores, name)


def _values(frame: pl.DataFrame, column: str) -> np.ndarray:
    return frame[column].to_numpy().astype(np.float64)


def _bins(values: Sequence[np.ndarray], log: bool, n: int = N_BINS) -> np.ndarray:
    """Bin edges spanning the 0.5%-99.5% quantiles of the pooled values (log-spaced if `log`
    and all are positive)."""
    pooled = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    if log:
        pooled = pooled[pooled > 0]
    if pooled.size == 0:
        return np.linspace(0.0, 1.0, n + 1)
    low, high = np.quantile(pooled, _QUANTILE_RANGE)
    if not high > low:
        low, high = float(pooled.min()), float(pooled.max())
    if not high > low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
        log = log and low > 0
    if log:
        return np.geomspace(low, high, n + 1)
    return np.linspace(low, high, n + 1)


def _unit_area(values: np.ndarray, weights: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Weighted histogram divided by the sum of the weights in range and the bin widths."""
    counts, _ = np.histogram(values, bins=edges, weights=weights)
    total = counts.sum()
    return counts / (total * np.diff(edges)) if total > 0 else counts * 0.0


def _signed_shape(
    values: np.ndarray, weights: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, str]:
    """A signed (LIN) histogram divided by |sum of weights| and the bin widths, and the label
    of that normalisation. When the weights nearly cancel (|sum| < 5% of sum |w|), it is
    divided by sum |w| instead, as a shape of unit absolute area."""
    counts, _ = np.histogram(values, bins=edges, weights=weights)
    total = float(counts.sum())
    absolute = float(np.abs(np.histogram(values, bins=edges, weights=np.abs(weights))[0]).sum())
    if absolute == 0:
        return counts * 0.0, "empty"
    if abs(total) >= 0.05 * absolute:
        sign = "+1" if total > 0 else "-1"
        return counts / (abs(total) * np.diff(edges)), f"/ |Σw|, area {sign}"
    return counts / (absolute * np.diff(edges)), "/ Σ|w| (Σw ≈ 0)"


def _step(ax: Axes, density: np.ndarray, edges: np.ndarray, **kwargs: Any) -> None:
    mplhep.histplot(density, edges, ax=ax, histtype="step", **kwargs)


def _fill(ax: Axes, density: np.ndarray, edges: np.ndarray, **kwargs: Any) -> None:
    mplhep.histplot(density, edges, ax=ax, histtype="fill", alpha=0.5, **kwargs)


def _lumi_text(ax: Axes, config: AnalysisConfig, extra: str = "") -> None:
    text = f"{config.luminosity_fb:g} fb$^{{-1}}$" + (f", {extra}" if extra else "")
    ax.text(1.0, 1.01, text, transform=ax.transAxes, ha="right", va="bottom", fontsize="small")


def _log_x(ax: Axes) -> None:
    """Log x axis labelled at 1, 2, 5 x 10^n in plain numbers (no crowded minor labels)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _is_log(config: AnalysisConfig, feature: str) -> bool:
    return feature in config.log_features


# --- figures ------------------------------------------------------------------------------------


def _observable_figure(data: _Data, feature: str, op: str | None) -> Figure:
    config = data.inputs.config
    sm = data.dataset("sm_test")
    fig, ax = plt.subplots(figsize=(8, 6), layout="constrained")
    parts = [_values(sm, feature)]
    lin = quad = None
    if op is not None and data.has_dataset(f"lin_test_{op}"):
        lin = data.dataset(f"lin_test_{op}")
        quad = data.dataset(f"quad_test_{op}")
        parts += [_values(lin, feature), _values(quad, feature)]
    log = _is_log(config, feature)
    edges = _bins(parts, log)
    _fill(ax, _unit_area(parts[0], _values(sm, "yield"), edges), edges, color=_SM_COLOR, label="SM")
    if lin is not None and quad is not None:
        _step(
            ax,
            _unit_area(parts[2], _values(quad, "yield"), edges),
            edges,
            color=_COLORS[0],
            linewidth=2,
            label=f"QUAD {op}",
        )
        shape, how = _signed_shape(parts[1], _values(lin, "yield"), edges)
        _step(ax, shape, edges, color=_COLORS[2], linewidth=2, label=f"LIN {op} ({how})")
    ax.axhline(0.0, color="black", linewidth=0.8)
    if log:
        _log_x(ax)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel(observable_label(feature))
    ax.set_ylabel(_density_label(feature))
    ax.legend(fontsize="small")
    _lumi_text(ax, config, "test split, weighted")
    return fig


def _inverse_preprocessing(prep: Any, x: np.ndarray) -> np.ndarray:
    """Model inputs (min-max scaled, log10 of the log features) back to physical units."""
    low = np.asarray(prep.minimum, dtype=np.float64)
    high = np.asarray(prep.maximum, dtype=np.float64)
    values = x.astype(np.float64) * (high - low) + low
    for i, name in enumerate(prep.features):
        if name in prep.log_features:
            values[:, i] = np.power(10.0, values[:, i])
    return values


def _reconstructions(
    model_dir: Path, frames: Sequence[pl.DataFrame]
) -> tuple[Any, list[tuple[np.ndarray, np.ndarray]]]:
    """The model's preprocessing and, per frame, (inputs, reconstructions) in physical units of
    its first `MAX_RECONSTRUCTION_EVENTS` events."""
    from vbsad_batch.models.networks import load_model  # noqa: PLC0415 - TensorFlow only for this figure

    prep = Preprocessing.from_json((model_dir / PREPROCESSING_FILE_NAME).read_text("utf-8"))
    model = load_model(model_dir)
    pairs = []
    for frame in frames:
        x = prep.transform(frame.head(MAX_RECONSTRUCTION_EVENTS))
        reconstruction = np.asarray(model(x, training=False)["reconstruction"])
        pairs.append(
            (_inverse_preprocessing(prep, x), _inverse_preprocessing(prep, reconstruction))
        )
    return prep, pairs


def _reconstruction_figure(data: _Data, model: StageOutput, op: str | None) -> Figure:
    config = data.inputs.config
    samples: list[tuple[str, pl.DataFrame, str]] = [("SM", data.dataset("sm_test"), _SM_COLOR)]
    if op is not None and data.has_dataset(f"quad_test_{op}"):
        samples.append((f"QUAD {op}", data.dataset(f"quad_test_{op}"), _COLORS[0]))
    prep, pairs = _reconstructions(model.directory, [frame for _, frame, _ in samples])
    results = [
        (label, x, x_hat, _values(frame.head(MAX_RECONSTRUCTION_EVENTS), "yield"), color)
        for (label, frame, color), (x, x_hat) in zip(samples, pairs, strict=True)
    ]
    features = list(prep.features)
    ncols = 4
    nrows = math.ceil(len(features) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), layout="constrained", squeeze=False
    )
    with mpl.rc_context({"font.size": 10}):
        for i, feature in enumerate(features):
            ax = axes[i // ncols][i % ncols]
            log = feature in prep.log_features
            edges = _bins([r[1][:, i] for r in results], log)
            for label, x, x_hat, weights, color in results:
                _step(
                    ax,
                    _unit_area(x[:, i], weights, edges),
                    edges,
                    color=color,
                    linewidth=2,
                    label=f"{label} input",
                )
                _step(
                    ax,
                    _unit_area(x_hat[:, i], weights, edges),
                    edges,
                    color=color,
                    linewidth=1.5,
                    linestyle="--",
                    label=f"{label} reconstructed",
                )
            if log:
                _log_x(ax)
            ax.set_xlim(edges[0], edges[-1])
            ax.set_xlabel(observable_label(feature), fontsize=11)
            ax.set_ylabel("1/N dN/dx", fontsize=11)
            ax.tick_params(labelsize=9)
        for j in range(len(features), nrows * ncols):
            axes[j // ncols][j % ncols].set_axis_off()
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=12)
    fig.suptitle(
        f"{model.name} ({config.luminosity_fb:g} fb$^{{-1}}$ test events, weighted)", fontsize=13
    )
    return fig


def _score_columns(scores: StageOutput, data: _Data) -> list[str]:
    columns = data.scores(scores, "sm_test").columns
    return [c for c in ("mse", "kld", "score") if c in columns]


def _operators_with_scores(data: _Data, scores: StageOutput) -> list[str]:
    ops = data.inputs.config.declared_operators or tuple(data.inputs.config.operators())
    return [op for op in ops if scores.has(f"quad_test_{op}.parquet")]


def _scores_figure(data: _Data, scores: StageOutput) -> Figure:
    config = data.inputs.config
    columns = _score_columns(scores, data)
    ops = _operators_with_scores(data, scores)
    sm = data.scores(scores, "sm_test")
    fig, axes = plt.subplots(
        1, len(columns), figsize=(6.5 * len(columns) + 3, 6), layout="constrained", squeeze=False
    )
    for ax, column in zip(axes[0], columns, strict=True):
        samples = [("SM", sm, _SM_COLOR)]
        samples += [
            (f"QUAD {op}", data.scores(scores, f"quad_test_{op}"), _COLORS[i % len(_COLORS)])
            for i, op in enumerate(ops)
        ]
        log = column in ("mse", "kld") and bool((_values(sm, column) > 0).all())
        edges = _bins([_values(f, column) for _, f, _ in samples], log)
        for label, frame, color in samples:
            density = _unit_area(_values(frame, column), _values(frame, "yield"), edges)
            if label == "SM":
                _fill(ax, density, edges, color=color, label=label)
            else:
                _step(ax, density, edges, color=color, linewidth=1.5, label=label)
        if log:
            _log_x(ax)
        ax.set_yscale("log")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel(_SCORE_LABELS[column])
        ax.set_ylabel(f"1/N dN/d({column})")
    fig.suptitle(f"{scores.name}: test events, {config.luminosity_fb:g} fb$^{{-1}}$, weighted")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize="small")
    return fig


def kinematic_variable(config: AnalysisConfig) -> str:
    """The kinematic variable of the score-versus-kinematics figure: mjj if it is a feature,
    else the first energy-like feature, else the first feature."""
    if "mjj" in config.features:
        return "mjj"
    return next((f for f in config.features if f in ENERGY_LIKE), config.features[0])


def _joined(data: _Data, scores: StageOutput, name: str, variable: str) -> pl.DataFrame:
    """The score rows of dataset `name` with the dataset's `variable` (same event order)."""
    events = data.dataset(name)
    scored = data.scores(scores, name)
    if events.height != scored.height or not (events["event"] == scored["event"]).all():
        raise ValueError(
            f"{scores.directory / (name + '.parquet')}: its events differ from "
            f"{data.inputs.datasets.directory / (name + '.parquet')}; run `vbsad score` again"
        )
    return scored.with_columns(events[variable].alias(variable))


def _score_vs_kinematics_figure(
    data: _Data, scores: StageOutput, column: str, variable: str, op: str | None
) -> Figure:
    config = data.inputs.config
    sm = _joined(data, scores, "sm_test", variable)
    samples = [("SM", sm, "black")]
    if op is not None and scores.has(f"quad_test_{op}.parquet"):
        samples.append(
            (f"QUAD {op}", _joined(data, scores, f"quad_test_{op}", variable), _COLORS[0])
        )
    log = _is_log(config, variable)
    x_edges = _bins([_values(f, variable) for _, f, _ in samples], log, n=30)
    y_edges = _bins([_values(sm, column)], False, n=30)
    fig, (left, right) = plt.subplots(1, 2, figsize=(16, 6.5), layout="constrained")
    counts, _, _ = np.histogram2d(
        _values(sm, variable),
        _values(sm, column),
        bins=(x_edges, y_edges),
        weights=_values(sm, "yield"),
    )
    counts = np.where(counts > 0, counts, np.nan)  # empty bins blank
    mesh = left.pcolormesh(x_edges, y_edges, counts.T, cmap="viridis", norm="log")
    fig.colorbar(mesh, ax=left, label=f"SM events / bin ({config.luminosity_fb:g} fb$^{{-1}}$)")
    left.set_title("SM test events", fontsize="small", loc="left")
    for ax in (left, right):
        if log:
            _log_x(ax)
        ax.set_xlim(x_edges[0], x_edges[-1])
        ax.set_xlabel(observable_label(variable))
    left.set_ylabel(_SCORE_LABELS[column], fontsize="small")
    for label, frame, color in samples:
        x = _values(frame, variable)
        w = _values(frame, "yield")
        wsum, _ = np.histogram(x, bins=x_edges, weights=w)
        wscore, _ = np.histogram(x, bins=x_edges, weights=w * _values(frame, column))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(wsum > 0, wscore / wsum, np.nan)
        centres = np.sqrt(x_edges[:-1] * x_edges[1:]) if log else 0.5 * (x_edges[:-1] + x_edges[1:])
        right.plot(centres, mean, marker="o", markersize=4, color=color, label=label)
    right.set_ylabel(f"yield-weighted mean {column}", fontsize="small")
    right.set_title("profile", fontsize="small", loc="left")
    right.legend(fontsize="small")
    fig.suptitle(f"{scores.name}: test events, {config.luminosity_fb:g} fb$^{{-1}}$")
    return fig


def _sigma_figure(curves: pl.DataFrame, op: str, significance: float) -> Figure:
    fig, ax = plt.subplots(figsize=(13, 6), layout="constrained")
    rows = curves.filter(pl.col("operator") == op)
    groups = rows.select("model", "score", "statistic", "side").unique(maintain_order=True)
    styles = {"proxy": "-", "asimov": "--"}
    models = list(dict.fromkeys(rows["model"].to_list()))
    for group in groups.iter_rows(named=True):
        sel = rows.filter(
            (pl.col("model") == group["model"])
            & (pl.col("score") == group["score"])
            & (pl.col("statistic") == group["statistic"])
            & (pl.col("side") == group["side"])
        )
        color = _COLORS[models.index(group["model"]) % len(_COLORS)]
        ax.plot(
            _values(sel, "c"),
            _values(sel, "sigma"),
            color=color,
            linestyle=styles.get(str(group["statistic"]), ":"),
            alpha=1.0 if group["side"] == "plus" else 0.6,
            label=f"{group['model']} ({group['score']}), {group['statistic']}, "
            f"{_SIDE_LABELS.get(str(group['side']), str(group['side']))}",
        )
    ax.axhline(
        significance,
        color="black",
        linewidth=1,
        linestyle=":",
        label=rf"$\sigma$ = {significance:g}",
    )
    ax.set_xlabel(rf"$c_{{{op}}}$ ($\Lambda$ = 1 TeV)")
    ax.set_ylabel(r"$\sigma$")
    if rows.height == 0:
        ax.text(0.5, 0.5, f"no limit reached for {op}", transform=ax.transAxes, ha="center")
        ax.set_xlim(-1, 1)
        ax.set_ylim(0, 2 * significance)
    else:
        ax.set_ylim(0, 3 * significance)
    fig.legend(loc="outside right upper", fontsize="x-small")
    return fig


def _training_figure(model: StageOutput) -> Figure:
    history = model.file(HISTORY_NAME)
    with history.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    epochs = np.array([int(r["epoch"]) for r in rows])
    train = np.array([float(r["train_loss"]) for r in rows])
    val = np.array([float(r["val_loss"]) for r in rows])
    best = None
    if model.has(METRICS_NAME):
        metrics = json.loads(model.file(METRICS_NAME).read_text(encoding="utf-8"))
        best = metrics.get("best_epoch")
    fig, ax = plt.subplots(figsize=(8, 6), layout="constrained")
    ax.plot(epochs, train, marker="o", markersize=3, label="training loss", color=_COLORS[0])
    ax.plot(epochs, val, marker="s", markersize=3, label="validation loss (SM)", color=_COLORS[2])
    if isinstance(best, int) and best > 0:
        ax.axvline(best, color="black", linestyle=":", label=f"best epoch {best}")
    if (train > 0).all() and (val > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (dimensionless)")
    ax.set_title(model.name, fontsize="medium")
    ax.legend(fontsize="small")
    return fig


# --- the plan -----------------------------------------------------------------------------------


def figure_tasks(inputs: ReportInputs) -> list[FigureTask]:
    """The figures the available stage outputs allow, in report order."""
    config = inputs.config
    data = _Data(inputs)
    op = focus_operator(config)
    tasks: list[FigureTask] = []
    which = f" and the LIN and QUAD of {op}" if op is not None else ""
    for feature in config.features:
        tasks.append(
            FigureTask(
                f"observable_{feature}.png",
                "observables",
                _plain_label(feature),
                f"{feature}: SM{which} on the test split, each event weighted by its yield. SM "
                "and QUAD are normalised to unit area; LIN (the interference, signed) is divided "
                "by the absolute sum of its weights, so its area is +1 or -1 and negative bins "
                "stay negative (when its weights nearly cancel, by the sum of their absolute "
                "values, as the legend says).",
                partial(_observable_figure, data, feature, op),
            )
        )
    for model in inputs.models:
        tasks.append(
            FigureTask(
                f"reconstruction_{model.name}.png",
                "reconstruction",
                f"Input and reconstruction: {model.name}",
                f"Each feature of up to {MAX_RECONSTRUCTION_EVENTS} test events: the model "
                "input (solid) and its reconstruction (dashed; decoder of z_mean, mapped back to "
                f"physical units) for SM events and for the QUAD of {op}, weighted by the "
                "yields, unit area.",
                partial(_reconstruction_figure, data, model, op),
            )
        )
    variable = kinematic_variable(config)
    for scores in inputs.scores:
        tasks.append(
            FigureTask(
                f"scores_{scores.name}.png",
                "scores",
                f"Score distributions: {scores.name}",
                "Per-event MSE, KLD (and classifier score for a VAE+NN) of SM test events "
                "versus the QUAD test events of every operator, weighted by the yields, unit "
                "area.",
                partial(_scores_figure, data, scores),
            )
        )
        column = config.scan.score_columns(scores.model_kind)[0]
        tasks.append(
            FigureTask(
                f"score_vs_{variable}_{scores.name}.png",
                "score_vs_kinematics",
                f"{column} versus {variable}: {scores.name}",
                f"The scanned score ({column}) versus {_plain_label(variable)}: 2D histogram "
                f"of the SM test events (events at {config.luminosity_fb:g} fb^-1 per bin) and "
                f"the yield-weighted mean score per {variable} bin for SM and the QUAD of {op}.",
                partial(_score_vs_kinematics_figure, data, scores, column, variable, op),
            )
        )
    if inputs.scan is not None:
        curves = pl.read_parquet(inputs.scan.file("sigma_curves.parquet"))
        table = json.loads(inputs.scan.file("table.json").read_text(encoding="utf-8"))
        significance = float(table.get("significance", config.scan.significance))
        for operator in table.get("operators", []):
            tasks.append(
                FigureTask(
                    f"sigma_{operator}.png",
                    "sensitivity",
                    f"sigma(c) for {operator}",
                    f"sigma as a function of c_{operator} (Lambda = 1 TeV) in the region of "
                    "each reached limit: proxy |c L + c^2 Q| / sqrt(S) (solid) and Asimov Z "
                    f"(dashed), per model and side, at {config.luminosity_fb:g} fb^-1; the "
                    f"dotted line is sigma = {significance:g}.",
                    partial(_sigma_figure, curves, operator, significance),
                )
            )
    for model in inputs.models:
        if model.has(HISTORY_NAME):
            tasks.append(
                FigureTask(
                    f"training_{model.name}.png",
                    "training",
                    f"Training: {model.name}",
                    "Training and validation loss per epoch (dimensionless); the dotted line "
                    "marks the epoch of the kept weights. The validation loss is the VAE loss "
                    "(MSE + beta KLD) on SM validation events"
                    + (
                        "; the training loss of a VAE+NN adds the classifier's weighted binary "
                        "cross-entropy, so it lies above."
                        if model.model_kind == "vae_nn"
                        else "."
                    ),
                    partial(_training_figure, model),
                )
            )
    return tasks
