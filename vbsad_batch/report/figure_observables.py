"""The figure of one observable: the shapes of SM and of the QUAD and LIN terms of every
operator of the analysis, from all the selected events of every split.

Top panel, log y (the QUAD tail drives the sensitivity): SM (filled) and the QUAD of each
operator (a step line, one colour and line style per operator), unit area. Bottom panel: the LIN
(interference, signed) of each operator in the same colours, divided by |sum of its weights|
so that its area is +1 or -1 and its negative bins stay negative (by sum |w| when the weights
nearly cancel; the legend says which). Events are weighted by their raw event weight `w`
(see `vbsad_batch.report.figure_data`). The bins cover the central 99% of the weight of
every sample (`weighted_bin_edges`), so that a QUAD tail beyond the SM stays in view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from vbsad_batch.report.figure_data import (
    EVENT_WEIGHT,
    FigureData,
    analysis_operators,
    component_events,
    component_sources,
    values,
)
from vbsad_batch.report.figure_histograms import (
    fill,
    signed_shape,
    step,
    unit_area,
    weighted_bin_edges,
)
from vbsad_batch.report.figure_style import (
    SM_COLOR,
    density_label,
    legend_outside,
    log_x,
    lumi_text,
    observable_label,
    operator_label,
    operator_styles,
    signed_density_label,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["LOG_Y_DECADES", "observable_figure", "observable_operators"]

LOG_Y_DECADES = 5.0
"""Decades of density shown below the highest bin on the log-y panel."""


def observable_operators(data: FigureData) -> list[str]:
    """The operators with LIN and QUAD events in the datasets, in the config's order."""
    return [
        op
        for op in analysis_operators(data.inputs.config)
        if component_sources(data, "lin", op) and component_sources(data, "quad", op)
    ]


def _log_y_range(ax: Axes, densities: list[np.ndarray]) -> None:
    positive = np.concatenate([d[d > 0] for d in densities]) if densities else np.zeros(0)
    if positive.size == 0:
        return
    high = float(positive.max())
    low = max(float(positive.min()), high * 10.0**-LOG_Y_DECADES)
    ax.set_ylim(low / 2.0, high * 3.0)


def observable_figure(data: FigureData, feature: str) -> Figure:
    """SM and the QUAD (log y, top) and LIN (bottom) of every operator of `feature`."""
    config = data.inputs.config
    ops = observable_operators(data)
    styles = operator_styles(analysis_operators(config))
    sm = component_events(data, "sm", None, [feature])
    quads = {op: component_events(data, "quad", op, [feature]) for op in ops}
    lins = {op: component_events(data, "lin", op, [feature]) for op in ops}
    log = feature in config.log_features
    frames = [sm, *quads.values(), *lins.values()]
    edges = weighted_bin_edges([(values(f, feature), values(f, EVENT_WEIGHT)) for f in frames], log)

    fig, (top, bottom) = plt.subplots(
        2,
        1,
        sharex=True,
        figsize=(12, 9.5) if ops else (10, 7),
        height_ratios=(3, 2) if ops else (3, 1),
        layout="constrained",
    )
    densities = [unit_area(values(sm, feature), values(sm, EVENT_WEIGHT), edges)]
    fill(top, densities[0], edges, color=SM_COLOR, label="SM")
    for op, quad in quads.items():
        density = unit_area(values(quad, feature), values(quad, EVENT_WEIGHT), edges)
        densities.append(density)
        step(top, density, edges, label=f"QUAD {operator_label(op)}", **styles[op])
    top.set_yscale("log")
    _log_y_range(top, densities)
    top.set_ylabel(density_label(feature), fontsize="small")
    top.set_title("SM, QUAD: unit area", loc="left", fontsize="small")
    lumi_text(top, config, "all selected events")
    legend_outside(top)

    for op, lin in lins.items():
        shape, how = signed_shape(values(lin, feature), values(lin, EVENT_WEIGHT), edges)
        label = f"LIN {operator_label(op)} ({how.removeprefix('/ |Σw|, ')})"
        step(bottom, shape, edges, label=label, **styles[op])
    bottom.axhline(0.0, color="black", linewidth=0.8)
    bottom.set_ylabel(signed_density_label(feature), fontsize="small")
    bottom.set_title("LIN (interference, signed)", loc="left", fontsize="small")
    if lins:
        legend_outside(bottom)
    else:
        bottom.text(0.5, 0.5, "no LIN/QUAD datasets", transform=bottom.transAxes, ha="center")
    if log:
        log_x(bottom)
    bottom.set_xlim(edges[0], edges[-1])
    bottom.set_xlabel(observable_label(feature))
    return fig
