"""Each axis's ticks worked out once per state while a figure is drawn
(`vbsad_batch.report.figure_tick_updates`): figures built here with matplotlib, drawn as the
report draws them (`FigureTask.render`, with the memo) and as `savefig` draws them (without),
byte for byte. The report's own figures are compared the same way in test_report_figures."""

from __future__ import annotations

from collections.abc import Callable

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from vbsad_batch.report.figures import FigureTask


def _shared_rows() -> Figure:
    """Rows of unequal heights sharing x and y: their axes share locators and formatters,
    which work out the ticks from one of them, while each row has its own length."""
    fig, axes = plt.subplots(
        3, 2, sharex="col", sharey=True, height_ratios=[4, 1, 2], layout="constrained"
    )
    rng = np.random.default_rng(3)
    for i, ax in enumerate(axes.flat):
        ax.plot(np.linspace(0, 10**i, 50), rng.normal(1e4, 3e3, 50))
    fig.colorbar(axes[1, 0].imshow(rng.random((4, 4)), aspect="auto"), ax=axes[1, 0])
    return fig


def _twins() -> Figure:
    """An axes and its twin (another y axis on the same box), an offset on the y axis."""
    fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
    ax.plot([0, 1], [1_000_000.0, 1_000_003.0])
    twin = ax.twinx()
    twin.plot([0, 1], [1e-6, 1e2])
    twin.set_yscale("log")
    return fig


@pytest.mark.parametrize("draw", [_shared_rows, _twins])
def test_shared_and_twin_axes_are_painted_as_savefig_paints_them(
    draw: Callable[[], Figure],
) -> None:
    task = FigureTask(f"{draw.__name__}.png", "test", draw.__name__, "", draw)
    assert task.render() == task.savefig_png()
