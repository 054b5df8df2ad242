"""The report's figures: matplotlib (Agg backend) in an mplhep HEP style, as PNG bytes.

`figure_tasks(inputs)` plans one `FigureTask` per figure that the available stage outputs
allow, each with its caption; `FigureTask.render()` draws it and returns the PNG bytes.
Figures:

- `observable_<feature>.png`, per feature of the config (`figure_observables`): SM and the
  QUAD (log y) and LIN of every operator, from the selected events of every split, weighted
  by the raw event weight. SM and QUAD have unit area; LIN (interference, signed) is divided
  by |sum of its weights|.
- `reconstruction_<model>.png`, per trained model (`figure_models`): each feature's input and
  the model's reconstruction (inference mode, decoder of z_mean, mapped back to physical
  units) for SM test events and for EFT (QUAD of the focus operator) test events, unit area.
- `scores_<model>.png`, per scored model (`figure_models`): MSE, KLD (and classifier score)
  of SM versus the QUAD of every operator, test events, weighted, unit area.
- `score_vs_<observable>_<model>.png`, per scored model (`figure_models`): the scanned score
  versus a simple kinematic variable (mjj when it is a feature): 2D histogram of the SM events
  and the weighted mean score per bin for SM and the focus operator's QUAD.
- `sigma_<operator>.png`, per operator of the scan (`figure_scan`): sigma(c) in the region
  of each reached limit (proxy and Asimov), with the significance line.
- `training_<model>.png`, per trained model (`figure_training`): training and validation
  loss per epoch, and the terms of the kept weights' validation loss.

Shared pieces: `figure_style` (style, colours, labels, log ticks, legends),
`figure_histograms` (binning, normalisation), `figure_data` (reading the stage outputs).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import matplotlib as mpl

mpl.use("Agg")  # before pyplot (here and in the figure modules): no display, PNG only

import matplotlib.pyplot as plt
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg

from vbsad_batch.config import AnalysisConfig
from vbsad_batch.models.paths import HISTORY_NAME
from vbsad_batch.report.figure_data import FigureData, analysis_operators, component_sources
from vbsad_batch.report.figure_models import (
    MAX_RECONSTRUCTION_EVENTS,
    kinematic_variable,
    reconstruction_figure,
    score_vs_kinematics_figure,
    scores_figure,
)
from vbsad_batch.report.figure_observables import observable_figure, observable_operators
from vbsad_batch.report.figure_scan import sigma_figure
from vbsad_batch.report.figure_style import (
    DPI,
    STYLE,
    observable_label,
    operator_label,
    plain_label,
)
from vbsad_batch.report.figure_tick_updates import ticks_updated_once
from vbsad_batch.report.figure_training import training_figure, training_settings
from vbsad_batch.report.inputs import ReportInputs, StageOutput

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "FigureTask",
    "figure_tasks",
    "focus_operator",
    "kinematic_variable",
    "lay_out_and_paint",
    "observable_label",
    "operator_label",
]


def focus_operator(config: AnalysisConfig) -> str | None:
    """The operator whose QUAD the reconstruction and score-versus-kinematics figures show:
    the training operator, else the first declared (or provided) operator; None without
    operators."""
    if config.training_operator is not None:
        return config.training_operator
    operators = analysis_operators(config)
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
        """The figure as PNG bytes, at `DPI` (the figure is closed afterwards).

        The same pixels and bytes as `savefig(format="png", dpi=DPI)`, drawn once instead of
        twice: with a layout engine, `savefig` draws the whole figure once (without output) to
        lay it out, then again to paint it. Here the layout engine runs on its own at the PNG's
        dpi, then the figure is painted once and its pixels encoded as `savefig` encodes them.
        """
        buffer = io.BytesIO()
        with plt.style.context(STYLE):  # text is laid out when drawing: draw in the style too
            fig = self.draw()
            try:
                canvas = lay_out_and_paint(fig)
                mpl.image.imsave(
                    buffer, canvas.buffer_rgba(), format="png", origin="upper", dpi=DPI
                )
            finally:
                plt.close(fig)
        return buffer.getvalue()

    def savefig_png(self) -> bytes:
        """The figure as matplotlib's `savefig(format="png", dpi=DPI)` writes it, on its own
        canvas: the reference `render` equals byte for byte (slower: drawn twice)."""
        buffer = io.BytesIO()
        with plt.style.context(STYLE):
            fig = self.draw()
            try:
                fig.savefig(buffer, format="png", dpi=DPI)
            finally:
                plt.close(fig)
        return buffer.getvalue()


_CANVASES: dict[tuple[float, float], Any] = {}
"""This process's painting canvases (`FigureCanvasAgg`), one per figure size (inches)."""


def _painting_canvas(fig: Figure) -> Any:
    """The canvas that paints `fig`: one per figure size in this process, lent to each figure
    of that size in turn.

    Its renderer, and with it matplotlib's caches of text extents and parsed math text (kept
    per renderer), then serve every figure of that size: the report's figures repeat the same
    labels, legends and tick labels (measured on the demo's 29 figures: 1.10x faster).
    The pixels are the same as on the figure's own canvas (the renderer is cleared before
    each draw; the caches hold only measurements of text at the same dpi)."""
    size = (float(fig.get_figwidth()), float(fig.get_figheight()))
    canvas = _CANVASES.get(size)
    if canvas is None:
        canvas = _CANVASES[size] = FigureCanvasAgg(fig)
    else:
        canvas.figure = fig
        fig.set_canvas(canvas)
    return canvas


def lay_out_and_paint(fig: Figure) -> Any:
    """Lay `fig` out at `DPI` with its layout engine (as `savefig` does), then paint it once;
    returns its canvas (a `FigureCanvasAgg`, untyped) holding the pixels. Call it inside the
    report's style context. Meanwhile each axis's ticks are worked out once per state
    (`figure_tick_updates`)."""
    canvas: Any = _painting_canvas(fig)
    fig.set_dpi(DPI)
    with ticks_updated_once():  # the same pixels, each axis's ticks worked out once per state
        engine = fig.get_layout_engine()
        if engine is not None:
            engine.execute(fig)  # e.g. the constrained layout, as `savefig` runs it
            fig.set_layout_engine("none")  # laid out: the draw keeps the positions
        canvas.draw()
    return canvas


# --- captions -----------------------------------------------------------------------------------


def _and(items: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _splits_text(data: FigureData, component: str, op: str | None) -> str:
    parts = []
    for source in component_sources(data, component, op):
        via = f" (from {source.dataset})" if source.component is not None else ""
        parts.append(f"{source.split}{via}")
    return _and(parts) + (" split" if len(parts) == 1 else " splits") if parts else "no split"


def _events_text(data: FigureData, ops: Sequence[str]) -> str:
    """Which splits the observable figures use, per component (the datasets stage writes the
    LIN and QUAD events of the training split only into a training operator's mixed set)."""
    by_splits: dict[str, list[str]] = {}
    for op in ops:
        by_splits.setdefault(_splits_text(data, "quad", op), []).append(op)
    eft = "; ".join(f"of {_and(group)}: {text}" for text, group in by_splits.items())
    return f"SM: {_splits_text(data, 'sm', None)}" + (f"; LIN and QUAD {eft}" if eft else "")


def _observable_caption(data: FigureData, feature: str) -> str:
    ops = observable_operators(data)
    terms = f"SM and the QUAD and LIN terms of {_and(ops)}" if ops else "SM"
    return (
        f"{feature}: {terms}, from every selected event of the datasets "
        f"({_events_text(data, ops)}), "
        "each weighted by its raw event weight w (every split's yields add up to the whole "
        "sample, so w is the per-event weight of the union). Top, log y: SM (filled) and "
        "QUAD normalised to unit area. Bottom: LIN (the interference, signed) divided by the "
        "absolute sum of its weights, so its area is +1 or -1 (in the legend) and negative "
        "bins stay negative (when its weights nearly cancel, by the sum of their absolute "
        "values, as the legend says). The bins span the central 99% of the weight of every "
        "sample (0.5%-99.5% weighted quantiles), so that a QUAD tail stays in view; the "
        "normalisation is over the events in range."
    )


def _training_caption(model: StageOutput) -> str:
    settings = training_settings(model)
    beta = settings.get("beta", "?")
    if model.model_kind == "vae_nn":
        op = model.manifest.get("key", {}).get("training_operator") or "its training operator"
        meaning = (
            "Both curves are the VAE+NN loss: the VAE loss (MSE + beta KLD, beta = "
            f"{beta}, mean over SM events) plus bce_weight ({settings.get('bce_weight', '?')}) "
            "times the classifier's class-balanced binary cross-entropy (BCE) on mixed SM + "
            f"EFT ({op}) events: training, the mean over the epoch's batches of sm_train and "
            f"mixed_train_{op} (training mode); validation, on sm_validation and "
            f"mixed_validation_{op} (inference mode). Middle and right: the validation loss's "
            "two terms per epoch, the VAE loss on sm_validation and bce_weight times the BCE "
            f"on mixed_validation_{op}; the dashed line is bce_weight ln 2, the BCE of a "
            "classifier that always answers 1/2 (balanced classes)."
        )
    else:
        meaning = (
            f"Both curves are the VAE loss, MSE + beta KLD (beta = {beta}), mean per SM "
            "event: training, over the epoch's batches of sm_train (training mode, sampled "
            "latent); validation, on sm_validation (inference mode). Right: the kept weights' "
            "validation loss split into MSE and beta KLD (metrics.json)."
        )
    return (
        "Left: training and validation loss per epoch (dimensionless, per event); the dotted "
        f"line marks the epoch of the kept weights. {meaning}"
    )


# --- the plan -----------------------------------------------------------------------------------


def figure_tasks(inputs: ReportInputs) -> list[FigureTask]:
    """The figures the available stage outputs allow, in report order."""
    config = inputs.config
    data = FigureData(inputs)
    op = focus_operator(config)
    op_text = op if op is not None else "no operator"
    tasks: list[FigureTask] = []
    for feature in config.features:
        tasks.append(
            FigureTask(
                f"observable_{feature}.png",
                "observables",
                plain_label(feature),
                _observable_caption(data, feature),
                partial(observable_figure, data, feature),
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
                f"physical units) for SM events and for the QUAD of {op_text}, weighted by the "
                "yields, unit area.",
                partial(reconstruction_figure, data, model, op),
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
                "area, log y. Test events only: the model never saw them.",
                partial(scores_figure, data, scores),
            )
        )
        column = config.scan.score_columns(scores.model_kind)[0]
        tasks.append(
            FigureTask(
                f"score_vs_{variable}_{scores.name}.png",
                "score_vs_kinematics",
                f"{column} versus {variable}: {scores.name}",
                f"The scanned score ({column}) versus {plain_label(variable)}: 2D histogram "
                f"of the SM test events (events at {config.luminosity_fb:g} fb^-1 per bin) and "
                f"the yield-weighted mean score per {variable} bin for SM and the QUAD of "
                f"{op_text}.",
                partial(score_vs_kinematics_figure, data, scores, column, variable, op),
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
                    f"sigma as a function of the coefficient of {operator} (Lambda = 1 TeV) "
                    "in the region of each reached limit, one colour per model and score: "
                    "proxy |c L + c^2 Q| / sqrt(S) (solid) and Asimov Z (dashed), at "
                    f"{config.luminosity_fb:g} fb^-1. The curve of the region of the lower "
                    "limit is drawn at c < 0, that of the upper limit at c > 0: each limit is "
                    "where its curve crosses the dotted line, sigma = "
                    f"{significance:g}.",
                    partial(sigma_figure, curves, operator, significance),
                )
            )
    for model in inputs.models:
        if model.has(HISTORY_NAME):
            tasks.append(
                FigureTask(
                    f"training_{model.name}.png",
                    "training",
                    f"Training: {model.name}",
                    _training_caption(model),
                    partial(training_figure, model),
                )
            )
    return tasks
