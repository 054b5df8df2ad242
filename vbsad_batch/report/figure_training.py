"""The figure of a model's training: its losses per epoch (history.csv) and the terms of the
validation loss of the kept weights (metrics.json).

history.csv records, per epoch, only the total training and validation losses; for a VAE+NN
these are the VAE loss plus `bce_weight` times the classifier's binary cross-entropy, with no
record of either term per epoch. metrics.json records the mean MSE and KLD of the SM
validation events at the kept weights, so the kept validation loss splits into MSE,
beta * KLD and (VAE+NN) bce_weight * BCE, the rest.
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


def read_history(model: StageOutput) -> dict[str, np.ndarray]:
    """history.csv as columns: epoch, train_loss, val_loss."""
    with model.file(HISTORY_NAME).open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return {
        "epoch": np.array([int(r["epoch"]) for r in rows]),
        "train_loss": np.array([float(r["train_loss"]) for r in rows]),
        "val_loss": np.array([float(r["val_loss"]) for r in rows]),
    }


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
    """Left: training and validation loss per epoch. Right (when metrics.json has them): the
    terms of the kept weights' validation loss."""
    history = read_history(model)
    best = _metrics(model).get("best_epoch")
    terms = kept_loss_terms(model)
    fig, axes = plt.subplots(
        1,
        2 if terms else 1,
        figsize=(15, 6.5) if terms else (9, 6.5),
        width_ratios=(3, 2) if terms else None,
        layout="constrained",
        squeeze=False,
    )
    curves = axes[0][0]
    epochs, train, val = history["epoch"], history["train_loss"], history["val_loss"]
    curves.plot(epochs, train, marker="o", markersize=5, label="training", color=COLORS[0])
    curves.plot(epochs, val, marker="s", markersize=5, label="validation", color=COLORS[2])
    if isinstance(best, int) and best > 0:
        curves.axvline(best, color="black", linestyle=":", label=f"kept: epoch {best}")
    losses = np.concatenate([train, val])
    if (losses > 0).all() and losses.max() > 10.0 * losses.min():
        curves.set_yscale("log")
    curves.xaxis.set_major_locator(MaxNLocator(integer=True))
    curves.set_xlabel("epoch")
    curves.set_ylabel("loss per event")
    legend_above(curves)
    if terms:
        weight = _bce_weight(model) if model.model_kind == "vae_nn" else None
        _terms_panel(axes[0][1], terms, weight)
    fig.suptitle(model.name, fontsize="medium")
    return fig


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
