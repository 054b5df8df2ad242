"""The figures of a trained and scored model: its reconstruction of the inputs, the
distributions of its per-event scores, and its score versus a kinematic variable.

The reconstructions are computed in NumPy from the model's `network.npz`
(`vbsad_batch.models.numpy_networks`): no TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from vbsad_batch.config import ENERGY_LIKE, AnalysisConfig
from vbsad_batch.models.numpy_networks import load_network
from vbsad_batch.models.paths import PREPROCESSING_FILE_NAME
from vbsad_batch.models.preprocessing import Preprocessing
from vbsad_batch.report.figure_data import FigureData, analysis_operators, values
from vbsad_batch.report.figure_histograms import (
    bin_edges,
    binned_sums,
    fill,
    step,
    unit_area,
    weighted_bin_edges,
)
from vbsad_batch.report.figure_style import (
    COLORS,
    SCORE_LABELS,
    SM_COLOR,
    legend_outside,
    log_x,
    observable_label,
    operator_label,
    operator_styles,
)
from vbsad_batch.report.inputs import StageOutput

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "MAX_RECONSTRUCTION_EVENTS",
    "kinematic_variable",
    "operators_with_scores",
    "reconstruction_figure",
    "score_columns",
    "score_vs_kinematics_figure",
    "scores_figure",
]

MAX_RECONSTRUCTION_EVENTS = 20000
"""Test events per sample run through a model for the reconstruction figures (a bound on time)."""


def _inverse_preprocessing(prep: Preprocessing, x: np.ndarray) -> np.ndarray:
    """Model inputs (min-max scaled, log10 of the log features) back to physical units."""
    low = np.asarray(prep.minimum, dtype=np.float64)
    high = np.asarray(prep.maximum, dtype=np.float64)
    physical = x.astype(np.float64) * (high - low) + low
    for i, name in enumerate(prep.features):
        if name in prep.log_features:
            physical[:, i] = np.power(10.0, physical[:, i])
    return physical


def _preprocessing(model_dir: Path) -> Preprocessing:
    """The model's input preprocessing (features, log features, min-max ranges)."""
    return Preprocessing.from_json((model_dir / PREPROCESSING_FILE_NAME).read_text("utf-8"))


def _reconstructions(
    model_dir: Path, prep: Preprocessing, frames: Sequence[pl.DataFrame]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per frame, (inputs, reconstructions) in physical units of its events (inference mode:
    decoder of z_mean)."""
    network = load_network(model_dir)
    pairs = []
    for frame in frames:
        x = prep.transform(frame)
        reconstruction = network.reconstruct(x)
        pairs.append(
            (_inverse_preprocessing(prep, x), _inverse_preprocessing(prep, reconstruction))
        )
    return pairs


def reconstruction_figure(data: FigureData, model: StageOutput, op: str | None) -> Figure:
    """Each feature's input and reconstruction, for SM and QUAD `op` test events."""
    config = data.inputs.config
    prep = _preprocessing(model.directory)
    names = [("SM", "sm_test", SM_COLOR)]
    if op is not None and data.has_dataset(f"quad_test_{op}"):
        names.append((f"QUAD {operator_label(op)}", f"quad_test_{op}", COLORS[0]))
    samples = [
        (label, data.dataset(name, [*prep.features, "yield"], MAX_RECONSTRUCTION_EVENTS), color)
        for label, name, color in names
    ]
    pairs = _reconstructions(model.directory, prep, [frame for _, frame, _ in samples])
    results = [
        (label, x, x_hat, values(frame, "yield"), color)
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
            edges = bin_edges([r[1][:, i] for r in results], log)
            for label, x, x_hat, weights, color in results:
                step(
                    ax,
                    unit_area(x[:, i], weights, edges),
                    edges,
                    color=color,
                    linewidth=2,
                    label=f"{label} input",
                )
                step(
                    ax,
                    unit_area(x_hat[:, i], weights, edges),
                    edges,
                    color=color,
                    linewidth=1.5,
                    linestyle="--",
                    label=f"{label} reconstructed",
                )
            if log:
                log_x(ax)
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


def score_columns(data: FigureData, scores: StageOutput) -> list[str]:
    """The score columns of a model's score files ("mse", "kld", and "score" for a VAE+NN)."""
    columns = data.score_columns(scores, "sm_test")
    return [c for c in ("mse", "kld", "score") if c in columns]


def operators_with_scores(data: FigureData, scores: StageOutput) -> list[str]:
    """The operators whose QUAD test events the model has scored, in the config's order."""
    ops = analysis_operators(data.inputs.config)
    return [op for op in ops if scores.has(f"quad_test_{op}.parquet")]


def scores_figure(data: FigureData, scores: StageOutput) -> Figure:
    """One panel per score column: SM versus the QUAD of every operator, unit area, log y."""
    config = data.inputs.config
    columns = score_columns(data, scores)
    ops = operators_with_scores(data, scores)
    styles = operator_styles(analysis_operators(config))
    wanted = [*columns, "yield"]
    sm = data.scores(scores, "sm_test", wanted)
    quads = [
        (f"QUAD {operator_label(op)}", data.scores(scores, f"quad_test_{op}", wanted), styles[op])
        for op in ops
    ]
    fig, axes = plt.subplots(
        1, len(columns), figsize=(6.5 * len(columns) + 3, 6), layout="constrained", squeeze=False
    )
    for ax, column in zip(axes[0], columns, strict=True):
        samples = [("SM", sm, {"color": SM_COLOR}), *quads]
        log = column in ("mse", "kld") and bool((values(sm, column) > 0).all())
        edges = weighted_bin_edges(
            [(values(f, column), values(f, "yield")) for _, f, _ in samples], log
        )
        for label, frame, style in samples:
            density = unit_area(values(frame, column), values(frame, "yield"), edges)
            if label == "SM":
                fill(ax, density, edges, label=label, **style)
            else:
                step(ax, density, edges, label=label, **style)
        if log:
            log_x(ax)
        ax.set_yscale("log")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel(SCORE_LABELS[column])
        ax.set_ylabel(f"1/N dN/d({column})")
    fig.suptitle(f"{scores.name}: test events, {config.luminosity_fb:g} fb$^{{-1}}$, weighted")
    handles, labels = axes[0][0].get_legend_handles_labels()
    # Beside the last panel, not at the figure's edge: a figure legend "outside" may overlap
    # the panel by its padding when no tick label overhangs the panel's right edge.
    legend_outside(axes[0][-1], handles=handles, labels=labels)
    return fig


def kinematic_variable(config: AnalysisConfig) -> str:
    """The kinematic variable of the score-versus-kinematics figure: mjj if it is a feature,
    else the first energy-like feature, else the first feature."""
    if "mjj" in config.features:
        return "mjj"
    return next((f for f in config.features if f in ENERGY_LIKE), config.features[0])


def _joined(
    data: FigureData, scores: StageOutput, name: str, column: str, variable: str
) -> pl.DataFrame:
    """The event number, `column` and yield of the score rows of dataset `name`, with the
    dataset's `variable` (same event order)."""
    events = data.dataset(name, ["event", variable])
    scored = data.scores(scores, name, ["event", column, "yield"])
    if events.height != scored.height or not (events["event"] == scored["event"]).all():
        raise ValueError(
            f"{scores.directory / (name + '.parquet')}: its events differ from "
            f"{data.inputs.datasets.directory / (name + '.parquet')}; run `vbsad score` again"
        )
    return scored.with_columns(events[variable].alias(variable))


def score_vs_kinematics_figure(
    data: FigureData, scores: StageOutput, column: str, variable: str, op: str | None
) -> Figure:
    """2D histogram of SM test events in (variable, score), and the mean score per bin."""
    config = data.inputs.config
    sm = _joined(data, scores, "sm_test", column, variable)
    samples = [("SM", sm, "black")]
    if op is not None and scores.has(f"quad_test_{op}.parquet"):
        samples.append(
            (
                f"QUAD {operator_label(op)}",
                _joined(data, scores, f"quad_test_{op}", column, variable),
                COLORS[0],
            )
        )
    log = variable in config.log_features
    x_edges = bin_edges([values(f, variable) for _, f, _ in samples], log, n=30)
    y_edges = bin_edges([values(sm, column)], False, n=30)
    fig, (left, right) = plt.subplots(1, 2, figsize=(17, 6.5), layout="constrained")
    counts, _, _ = np.histogram2d(
        values(sm, variable),
        values(sm, column),
        bins=(x_edges, y_edges),
        weights=values(sm, "yield"),
    )
    counts = np.where(counts > 0, counts, np.nan)  # empty bins blank
    mesh = left.pcolormesh(x_edges, y_edges, counts.T, cmap="viridis", norm="log")
    fig.colorbar(mesh, ax=left, label=f"SM events / bin ({config.luminosity_fb:g} fb$^{{-1}}$)")
    left.set_title("SM test events", fontsize="small", loc="left")
    for ax in (left, right):
        if log:
            log_x(ax)
        ax.set_xlim(x_edges[0], x_edges[-1])
        ax.set_xlabel(observable_label(variable))
    left.set_ylabel(SCORE_LABELS[column], fontsize="small")
    for label, frame, color in samples:
        x = values(frame, variable)
        w = values(frame, "yield")
        wsum = binned_sums(x, w, x_edges)
        wscore = binned_sums(x, w * values(frame, column), x_edges)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(wsum > 0, wscore / wsum, np.nan)
        centres = np.sqrt(x_edges[:-1] * x_edges[1:]) if log else 0.5 * (x_edges[:-1] + x_edges[1:])
        right.plot(centres, mean, marker="o", markersize=4, color=color, label=label)
    right.set_ylabel(f"yield-weighted mean {column}", fontsize="small")
    right.set_title("profile", fontsize="small", loc="left")
    legend_outside(right)
    fig.suptitle(f"{scores.name}: test events, {config.luminosity_fb:g} fb$^{{-1}}$")
    return fig
