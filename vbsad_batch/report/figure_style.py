"""The look of the report's figures: the mplhep style, colours, axis labels (observables with
units, operators as Wilson coefficients), log-axis tick labels that never overlap, and legends
placed off the data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import matplotlib as mpl

mpl.use("Agg")  # before pyplot: no display, PNG only

import mplhep
import numpy as np
from matplotlib.axis import Axis
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import text_to_path
from matplotlib.ticker import Formatter, LogLocator, NullFormatter

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.legend import Legend

    from vbsad_batch.config import AnalysisConfig

__all__ = [
    "COLORS",
    "DPI",
    "SCORE_LABELS",
    "SM_COLOR",
    "STYLE",
    "LogTickLabels",
    "density_label",
    "distinct_colors",
    "legend_above",
    "legend_outside",
    "log_x",
    "lumi_text",
    "observable_label",
    "operator_label",
    "operator_styles",
    "plain_label",
    "signed_density_label",
]

DPI = 100
STYLE = [mplhep.style.ROOT, {"mathtext.fontset": "dejavusans", "yaxis.labellocation": "center"}]
"""mplhep's ROOT style; math text in DejaVu Sans (the style's TeX Gyre Heros math font is not
always installed); y labels centred (long density labels do not fit at the top)."""
SM_COLOR = "0.55"
COLORS = ("#3f90da", "#ffa90e", "#bd1f01", "#94a4a2", "#832db6", "#a96b59", "#e76300", "#b9ac70")
"""The Petroff 8-colour cycle (the CMS recommendation): distinguishable, also in greyscale."""

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
SCORE_LABELS = {
    "mse": "MSE (preprocessed inputs)",
    "kld": "KLD [nats]",
    "score": "classifier score",
}
"""Axis labels of the per-event scores: short, so that they fit under a narrow panel."""

_LINE_STYLES = ("-", "--", "-.", ":")
_OPERATOR = re.compile(r"c([A-Za-z]+?)(\d*)")
_OPERATOR_NAMES = {"Hbox": r"H\Box"}
_MATH_SPECIAL = re.compile(r"([\\$_^{}%#&~])")


def observable_label(name: str) -> str:
    """Axis label of an observable with its unit, e.g. "$m_{jj}$ [GeV]"."""
    label, unit = _LABELS.get(name, (name, ""))
    return f"{label} [{unit}]" if unit else label


def plain_label(name: str) -> str:
    """An observable's name with its unit, as plain text: "mjj [GeV]"."""
    unit = _LABELS.get(name, (name, ""))[1]
    return f"{name} [{unit}]" if unit else name


def density_label(name: str) -> str:
    """The y label of a unit-area histogram of an observable: "1/N dN/d$m_{jj}$ [1/GeV]"."""
    label, unit = _LABELS.get(name, (name, ""))
    return f"1/N dN/d{label} [1/{unit}]" if unit else f"1/N dN/d{label}"


def signed_density_label(name: str) -> str:
    """The y label of a signed histogram divided by |sum of weights|."""
    label, unit = _LABELS.get(name, (name, ""))
    text = f"1/|Σw| dΣw/d{label}"
    return f"{text} [1/{unit}]" if unit else text


def operator_label(op: str) -> str:
    """The Wilson coefficient of an operator name in math text, in SMEFTsim's naming: "cW" ->
    "$c_{W}$", "cHWB" -> "$c_{HWB}$", "cHbox" -> "$c_{H\\Box}$"; trailing digits are the
    operator's superscript, a second digit 1 its primed version: "cqq3" -> "$c_{qq}^{(3)}$",
    "cqq31" -> "$c_{qq}^{(3)\\prime}$", "cqq11" -> "$c_{qq}^{(1)\\prime}$", and "cll1" ->
    "$c_{ll}^{\\prime}$" (SMEFTsim's C'_ll; cll is C_ll). The name already holds the "c". A
    name of another form is kept as it is, as plain text ("FT0" -> "FT0")."""
    match = _OPERATOR.fullmatch(op)
    if match is None:
        return _MATH_SPECIAL.sub(r"\\\1", op)
    letters, digits = match.groups()
    label = rf"$c_{{{_OPERATOR_NAMES.get(letters, letters)}}}"
    if not digits:
        return label + "$"
    if letters == "ll" and digits == "1":
        return label + r"^{\prime}$"
    if len(digits) == 2 and digits[1] == "1":
        return label + rf"^{{({digits[0]})\prime}}$"
    return label + f"^{{({digits})}}$"


def distinct_colors(n: int) -> list[Any]:
    """`n` distinct line colours: the Petroff cycle, else (more than 8) matplotlib's tab20."""
    if n <= len(COLORS):
        return list(COLORS[:n])
    cmap = mpl.colormaps["tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def operator_styles(operators: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Line colour, style and width per operator, in the config's order, the same in every
    figure: a distinct colour each, line styles in turn, and widths from thick to thin, so
    that curves of the same shape drawn in this order stay visible on top of each other."""
    colors = distinct_colors(len(operators))
    widths = np.linspace(3.5, 1.5, len(operators)) if len(operators) > 1 else [2.0]
    return {
        op: {
            "color": color,
            "linestyle": _LINE_STYLES[i % len(_LINE_STYLES)],
            "linewidth": float(widths[i]),
        }
        for i, (op, color) in enumerate(zip(operators, colors, strict=True))
    }


def lumi_text(ax: Axes, config: AnalysisConfig, extra: str = "") -> None:
    """The luminosity (and `extra`) above the axes, right-aligned."""
    text = f"{config.luminosity_fb:g} fb$^{{-1}}$" + (f", {extra}" if extra else "")
    ax.text(1.0, 1.01, text, transform=ax.transAxes, ha="right", va="bottom", fontsize="small")


def legend_outside(ax: Axes, **kwargs: Any) -> Legend:
    """The axes' legend to the right of the axes, top-aligned: never on the data (a
    constrained layout makes room for it)."""
    options: dict[str, Any] = {"fontsize": "small", "borderaxespad": 0.0}
    options.update(kwargs)
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), **options)


def legend_above(ax: Axes, **kwargs: Any) -> Legend:
    """The axes' legend above the axes, in a row: never on the data."""
    handles, _ = ax.get_legend_handles_labels()
    options: dict[str, Any] = {"fontsize": "small", "borderaxespad": 0.0, "ncols": len(handles)}
    options.update(kwargs)
    return ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.02), **options)


def _plain(value: float) -> bool:
    return 1e-3 <= value < 1e5


def _tick_text(value: float, plain: bool) -> str:
    """1, 2 or 5 x 10^n as a plain number, or in math text: "$10^{-4}$", "$2\\times10^{5}$"."""
    if plain:
        return f"{value:g}"
    exponent = math.floor(math.log10(value) + 1e-9)
    mantissa = round(value / 10.0**exponent)
    power = f"10^{{{exponent}}}"
    return f"${power}$" if mantissa == 1 else rf"${mantissa}\times{power}$"


class LogTickLabels(Formatter):
    """Labels of a log axis's 1, 2, 5 x 10^n ticks, as many as fit: all of them, else the
    decades only, else every k-th decade, whichever is the densest set whose labels (their
    width as drawn, plus a gap) do not overlap on the axis as laid out. The labels are plain
    numbers when all of them lie in 0.001 to 10^5, else all powers of ten."""

    GAP_PX = 6.0

    def _drawn_axis(self) -> Axis:
        axis = self.axis
        if not isinstance(axis, Axis):
            raise TypeError("LogTickLabels labels the axis of an Axes")
        return axis

    def format_ticks(self, values: Sequence[float]) -> list[str]:
        ticks = np.asarray(values, dtype=np.float64)
        if ticks.size == 0:
            return []
        exponents = np.floor(np.log10(ticks) + 1e-9).astype(int)
        decade = np.isclose(ticks, 10.0**exponents)
        positions = self._pixels(ticks)
        low, high = sorted(self._drawn_axis().get_view_interval())
        inside = (ticks >= low * (1 - 1e-9)) & (ticks <= high * (1 + 1e-9))
        candidates = [np.ones(ticks.size, dtype=bool), decade]
        candidates += [decade & (exponents % k == 0) for k in range(2, 10)]
        texts: list[str] = []
        for shown in candidates:
            plain = all(_plain(v) for v in ticks[shown & inside])
            texts = [_tick_text(v, plain) if s else "" for v, s in zip(ticks, shown, strict=True)]
            widths = np.array([self._width(t) for t in texts])
            if self._fits(positions[shown & inside], widths[shown & inside]):
                break
        return texts

    def __call__(self, x: float, pos: int | None = None) -> str:
        return _tick_text(x, _plain(x)) if x > 0 else ""

    def _pixels(self, values: np.ndarray) -> np.ndarray:
        transform = self._drawn_axis().axes.transData
        points = np.column_stack([values, np.ones_like(values)])
        return np.asarray(transform.transform(points))[:, 0]

    def _width(self, text: str) -> float:
        if not text:
            return 0.0
        axis = self._drawn_axis()
        tick = axis.get_major_ticks(1)[0]
        prop: FontProperties = tick.label1.get_fontproperties()
        width, _, _ = text_to_path.get_text_width_height_descent(text, prop, ismath="$" in text)
        figure = axis.get_figure(root=True)
        dpi = 72.0 if figure is None else float(figure.dpi)
        return float(width) * dpi / 72.0

    def _fits(self, positions: np.ndarray, widths: np.ndarray) -> bool:
        order = np.argsort(positions)
        positions, widths = positions[order], widths[order]
        needed = 0.5 * (widths[1:] + widths[:-1]) + self.GAP_PX
        return bool((np.diff(positions) >= needed).all())


def log_x(ax: Axes) -> None:
    """Log x axis with ticks at 1, 2, 5 x 10^n, labelled as many as fit (`LogTickLabels`)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=1000))
    ax.xaxis.set_major_formatter(LogTickLabels())
    ax.xaxis.set_minor_formatter(NullFormatter())
