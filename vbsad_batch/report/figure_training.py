"""The figure of a model's training: its losses per epoch (history.csv) and the terms of its
validation loss.

history.csv records per epoch the training and validation losses and the validation loss's
two terms: the VAE loss (MSE + beta KLD of the SM validation events) and, for a VAE+NN,
`bce_weight` times the classifier's binary cross-entropy on the mixed validation set. A
VAE+NN's two terms get a panel each, per epoch; a VAE's kept validation loss is shown split
into MSE and beta * KLD (metrics.json: their means at the kept weights).
"""

from __future__ import annotations

import csv
import json
import math
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from vbsad_batch.models.paths import HISTORY_NAME, METRICS_NAME
from vbsad_batch.report.figure_style import COLORS, legend_above
from vbsad_batch.report.inputs import StageOutput

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["LossTerm", "kept_loss_terms", "read_history", "training_figure", "training_settings"]

LossTerm = tuple[str, float]
"""A term of the validation loss: its label and value (dimensionless)."""


_TERM_COLUMNS = ("val_vae_loss", "val_bce_term")


def read_history(model: StageOutput) -> dict[str, np.ndarray]:
    """history.csv as columns: epoch, train_loss, val_loss, and val_vae_loss and val_bce_term
    when recorded."""
    with model.file(HISTORY_NAME).open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    columns = {
        "epoch": np.array([int(r["epoch"]) for r in rows]),
        "train_loss": np.array([float(r["train_loss"]) for r in rows]),
        "val_loss": np.array([float(r["val_loss"]) for r in rows]),
    }
    if rows and all(rows[0].get(c) not in (None, "") for c in _TERM_COLUMNS):
        columns |= {c: np.array([float(r[c]) for r in rows]) for c in _TERM_COLUMNS}
    return columns


def _metrics(model: StageOutput) -> dict[str, Any]:
    if not model.has(METRICS_NAME):
        return {}
    metrics = json.loads(model.file(METRICS_NAME).read_text(encoding="utf-8"))
    return metrics if isinstance(metrics, dict) else {}


def training_settings(model: StageOutput) -> dict[str, Any]:
    """The model's training settings as its manifest records them (beta, bce_weight, ...)."""
    settings = model.manifest.get("key", {}).get("training", {})
    return settings if isinstance(settings, dict) else {}


def _bce_weight(model: StageOutput) -> float:
    return float(training_settings(model).get("bce_weight", 1.0))


def kept_loss_terms(model: StageOutput) -> list[LossTerm]:
    """The validation loss of the kept weights split into its terms: MSE and beta * KLD (the
    SM validation means of metrics.json, beta of the model's training settings) and, for a
    VAE+NN, bce_weight * BCE (the rest of metrics.json's best_val_loss). Empty when
    metrics.json or the manifest lacks a number."""
    metrics = _metrics(model)
    training = training_settings(model)
    try:
        mse = float(metrics["validation_mse_mean"])
        kld = float(metrics["validation_kld_mean"])
        total = float(metrics["best_val_loss"])
        beta = float(training["beta"])
        bce_weight = _bce_weight(model)
    except (KeyError, TypeError, ValueError):
        return []
    terms = [("MSE", mse), (rf"KLD $\times$ {beta:g}", beta * kld)]
    if model.model_kind == "vae_nn":
        terms.append((rf"BCE $\times$ {bce_weight:g}", total - mse - beta * kld))
    return terms if all(math.isfinite(v) for _, v in terms) else []


def training_figure(model: StageOutput) -> Figure:
    """Left: training and validation loss per epoch. Then, for a VAE+NN with the terms in its
    history: the validation VAE loss and the validation BCE term per epoch, a panel each; else
    (when metrics.json has them) the terms of the kept weights' validation loss."""
    history = read_history(model)
    best = _metrics(model).get("best_epoch")
    per_epoch = model.model_kind == "vae_nn" and all(c in history for c in _TERM_COLUMNS)
    terms = [] if per_epoch else kept_loss_terms(model)
    n_panels = 3 if per_epoch else (2 if terms else 1)
    fig, axes = plt.subplots(
        1,
        n_panels,
        figsize={1: (9, 6.5), 2: (15, 6.5), 3: (21, 6.5)}[n_panels],
        width_ratios={1: None, 2: (3, 2), 3: (1, 1, 1)}[n_panels],
        layout="constrained",
        squeeze=False,
    )
    curves = axes[0][0]
    epochs, train, val = history["epoch"], history["train_loss"], history["val_loss"]
    curves.plot(epochs, train, marker="o", markersize=5, label="training", color=COLORS[0])
    curves.plot(epochs, val, marker="s", markersize=5, label="validation", color=COLORS[2])
    _epoch_axis(curves, np.concatenate([train, val]), best, "loss per event")
    if per_epoch:
        weight = _bce_weight(model)
        vae_ax, bce_ax = axes[0][1], axes[0][2]
        vae_ax.plot(epochs, history["val_vae_loss"], marker="s", markersize=5, color=COLORS[1],
                    label="VAE loss")  # fmt: skip
        vae_label = r"validation: MSE + $\beta$ KLD (SM)"
        _epoch_axis(vae_ax, history["val_vae_loss"], best, vae_label, name_best=False)
        bce_ax.plot(epochs, history["val_bce_term"], marker="s", markersize=5, color=COLORS[3],
                    label="BCE term")  # fmt: skip
        label = "ln 2" if weight == 1.0 else f"{weight:g} ln 2"
        bce_ax.axhline(weight * math.log(2.0), color="black", linestyle="--", linewidth=1.5,
                       label=label)  # fmt: skip
        bce_label = rf"validation: {weight:g} $\times$ BCE (mixed)"
        _epoch_axis(bce_ax, history["val_bce_term"], best, bce_label, name_best=False)
    elif terms:
        _terms_panel(axes[0][1], terms, None)
    fig.suptitle(model.name, fontsize="medium")
    return fig


def _epoch_axis(
    ax: Any, losses: np.ndarray, best: object, ylabel: str, *, name_best: bool = True
) -> None:
    """Per-epoch axes: the kept epoch marked (named in the legend when `name_best`), log y
    when the losses span a decade."""
    if isinstance(best, int) and best > 0:
        label = f"kept: epoch {best}" if name_best else "_nolegend_"
        ax.axvline(best, color="black", linestyle=":", label=label)
    if (losses > 0).all() and losses.max() > 10.0 * losses.min():
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    legend_above(ax)


def _terms_panel(ax: Any, terms: list[LossTerm], bce_weight: float | None) -> None:
    """Horizontal bars of the loss terms; with `bce_weight` (VAE+NN) a dashed line at
    bce_weight times the BCE of a classifier that always answers 1/2 (ln 2 with balanced,
    positive weights)."""
    chance = None if bce_weight is None else bce_weight * math.log(2.0)
    labels = [label for label, _ in terms]
    numbers = np.array([value for _, value in terms])
    positions = np.arange(len(terms))[::-1]
    ax.barh(positions, numbers, color=COLORS[: len(terms)], height=0.6)
    for y, value in zip(positions, numbers, strict=True):
        ax.text(max(value, 0.0), y, f" {value:.3g}", va="center", ha="left", fontsize="small")
    ax.set_yticks(positions, labels, fontsize="small")
    ax.tick_params(axis="y", which="both", left=False, right=False)
    ax.set_ylim(positions.min() - 0.6, positions.max() + 0.6)
    high = max(float(numbers.max()), chance or 0.0, 1e-12)
    if chance is not None:
        label = "ln 2" if bce_weight == 1.0 else f"{bce_weight:g} ln 2"
        ax.axvline(
            chance, color="black", linestyle="--", linewidth=1.5, label=f"{label}: 1/2 guess"
        )
        legend_above(ax)
    ax.set_xlim(min(0.0, float(numbers.min()) * 1.3), 1.4 * high)
    ax.set_xlabel("kept weights: validation loss")
