"""The figure of the sensitivity scan of one operator: sigma(c) in the region of each reached
limit (sigma_curves.parquet of `vbsad scan`).

Every (model, score column) has its own colour, and a line width from thick to thin so that
equal curves stay visible; the statistic sets the line style (proxy solid, Asimov dashed).
The curve of the region chosen for the lower limit c- is drawn at c <= 0 and that of the
upper limit c+ at c >= 0, where each limit is read: a limit is where its curve crosses the
significance line. Each curve's gid is "model|score|statistic|side".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.lines import Line2D

from vbsad_batch.report.figure_data import values
from vbsad_batch.report.figure_style import distinct_colors, legend_outside, operator_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["STATISTIC_STYLES", "LineStyle", "sigma_figure"]

LineStyle = Literal["-", "--", ":"]
STATISTIC_STYLES: dict[str, tuple[LineStyle, str]] = {
    "proxy": ("-", "proxy |cL + c²Q| / √S"),
    "asimov": ("--", "Asimov Z"),
}
"""Line style and legend label per statistic."""


def sigma_figure(curves: pl.DataFrame, op: str, significance: float) -> Figure:
    """sigma(c_op) of every (model, score), statistic and side, and the significance line."""
    fig, ax = plt.subplots(figsize=(13, 6.5), layout="constrained")
    rows = curves.filter(pl.col("operator") == op)
    pairs = list(dict.fromkeys(zip(rows["model"].to_list(), rows["score"].to_list(), strict=True)))
    colors = dict(zip(pairs, distinct_colors(len(pairs)), strict=True))
    # thick to thin, so that equal curves stay visible on top of each other
    widths = dict(
        zip(pairs, np.linspace(3.5, 1.5, len(pairs)) if len(pairs) > 1 else [2.0], strict=True)
    )
    groups = rows.select("model", "score", "statistic", "side").unique(maintain_order=True)
    for group in groups.iter_rows(named=True):
        sel = rows.filter(
            (pl.col("model") == group["model"])
            & (pl.col("score") == group["score"])
            & (pl.col("statistic") == group["statistic"])
            & (pl.col("side") == group["side"])
        )
        c, sigma = values(sel, "c"), values(sel, "sigma")
        half = c <= 0 if group["side"] == "minus" else c >= 0
        ax.plot(
            c[half],
            sigma[half],
            color=colors[(group["model"], group["score"])],
            linestyle=STATISTIC_STYLES.get(str(group["statistic"]), (":", ""))[0],
            linewidth=widths[(group["model"], group["score"])],
            gid=f"{group['model']}|{group['score']}|{group['statistic']}|{group['side']}",
        )
    ax.axhline(significance, color="black", linewidth=1, linestyle=":")
    ax.set_xlabel(rf"{operator_label(op)} ($\Lambda$ = 1 TeV)")
    ax.set_ylabel(r"$\sigma$")
    if rows.height == 0:
        ax.text(0.5, 0.5, f"no limit reached for {op}", transform=ax.transAxes, ha="center")
        ax.set_xlim(-1, 1)
        ax.set_ylim(0, 2 * significance)
    else:
        extent = float(abs(values(rows, "c")).max())
        ax.set_xlim(-extent, extent)
        ax.set_ylim(0, 3 * significance)
    handles = [
        Line2D([], [], color=colors[pair], linewidth=widths[pair], label=f"{pair[0]} ({pair[1]})")
        for pair in pairs
    ]
    statistics = list(dict.fromkeys(rows["statistic"].to_list()))
    handles += [
        Line2D(
            [], [], color="black", linestyle=STATISTIC_STYLES[s][0], label=STATISTIC_STYLES[s][1]
        )
        for s in statistics
        if s in STATISTIC_STYLES
    ]
    handles.append(
        Line2D([], [], color="black", linestyle=":", label=rf"$\sigma$ = {significance:g}")
    )
    legend_outside(ax, handles=handles)
    return fig
