"""The report's figures as a physicist would show them, checked on the matplotlib figures of a
real pipeline: demo LHE with five operators -> datasets -> VAE and VAE+NN (real TensorFlow
training, 2 epochs) -> scores -> scan with five (model, score) pairs, built once per module.

Checks what the figures show (every split of every component, weighted by the raw event
weight; every operator; one colour per model and score; both terms of a VAE+NN's loss) and
that they are readable once laid out: operator labels, no legend on the data, no text outside
the figure, no overlapping tick labels.
"""

from __future__ import annotations

import csv
import itertools
import json
import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
import pytest
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle, StepPatch
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from vbsad_batch.config import AnalysisConfig, load_config
from vbsad_batch.demo.lhe_writer import generate_demo
from vbsad_batch.models.paths import model_directory
from vbsad_batch.models.scoring import score_datasets
from vbsad_batch.models.training import train
from vbsad_batch.report.figure_data import FigureData, component_events
from vbsad_batch.report.figure_histograms import unit_area, weighted_quantiles
from vbsad_batch.report.figure_processes import rendered_figures
from vbsad_batch.report.figure_style import STYLE, log_x, operator_label
from vbsad_batch.report.figure_tick_updates import ticks_updated_once
from vbsad_batch.report.figures import FigureTask, figure_tasks, lay_out_and_paint
from vbsad_batch.report.inputs import ReportInputs, find_report_inputs
from vbsad_batch.runtime.mpi import SingleProcess
from vbsad_batch.scan.driver import run_scan
from vbsad_batch.weighting.datasets import build_datasets

pytestmark = pytest.mark.slow

OPERATORS = ("cW", "cHW", "cHWB", "cqq3", "cll1")
VAE = "vae_latent3"
VAE_NN = "vae_nn_latent3_cW"
SCORE_PAIRS = {(VAE, "mse"), (VAE, "kld"), (VAE_NN, "score"), (VAE_NN, "mse"), (VAE_NN, "kld")}
ID_COLUMNS = ["input_sha256", "event", "mjj"]
PIXEL = 1.0  # tolerance of the extent comparisons, pixels

CONFIG = f"""
operators = {list(OPERATORS)!r}
training_operator = "cW"
output_dir = "out"

[split]
seed = 1

[training]
epochs = 2
batch_size = 256
learning_rate = 0.003

[scan]
bootstrap_replicas = 2
vae_scores = ["mse", "kld"]
vae_nn_scores = ["score", "mse", "kld"]

[[reweighted]]
name = "ssww_demo"
files = "demo/ssww_demo.lhe.gz"
sm_weight = "sm"
plus = "{{op}}_p1"
minus = "{{op}}_m1"
k = 1.0
""".replace("'", '"')


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> ReportInputs:
    """The stage outputs of a complete real pipeline of the demo sample (4000 events)."""
    base = tmp_path_factory.mktemp("figures")
    generate_demo(base / "demo", n_events=4000, seed=3, operators=OPERATORS, eft_samples=False)
    (base / "figures.toml").write_text(CONFIG, encoding="utf-8")
    config = load_config(base / "figures.toml")
    build_datasets(config)
    for kind in ("vae", "vae_nn"):
        train(config, kind=kind)
        score_datasets(config, model_directory(config, kind))
    assert run_scan(config, comm=SingleProcess()) is not None
    return find_report_inputs(config)


@pytest.fixture(scope="module")
def tasks(inputs: ReportInputs) -> dict[str, FigureTask]:
    return {task.file_name: task for task in figure_tasks(inputs)}


@contextmanager
def _drawn(task: FigureTask) -> Iterator[Figure]:
    """The task's figure, laid out and drawn as `FigureTask.render` draws it."""
    with plt.style.context(STYLE):
        fig = task.draw()
        try:
            lay_out_and_paint(fig)
            yield fig
        finally:
            plt.close(fig)


def _read(config: AnalysisConfig, name: str) -> pl.DataFrame:
    return pl.read_parquet(config.output_dir / "datasets" / f"{name}.parquet")


def _events(frame: pl.DataFrame) -> set[tuple[str, int]]:
    return set(zip(frame["input_sha256"].to_list(), frame["event"].to_list(), strict=True))


def _overlap(a: Bbox, b: Bbox) -> bool:
    """Whether two extents share more than a pixel's strip."""
    return min(a.x1, b.x1) - max(a.x0, b.x0) > PIXEL and min(a.y1, b.y1) - max(a.y0, b.y0) > PIXEL


def _inside(inner: Bbox, outer: Bbox) -> bool:
    return (
        inner.x0 >= outer.x0 - PIXEL
        and inner.y0 >= outer.y0 - PIXEL
        and inner.x1 <= outer.x1 + PIXEL
        and inner.y1 <= outer.y1 + PIXEL
    )


def _data_axes(fig: Figure) -> list[Axes]:
    """The axes that show data (not colour bars)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.axison]


def _legends(fig: Figure) -> list:  # type: ignore[type-arg]
    found = list(fig.legends)
    found += [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return found


def _drawn_tick_labels(ax: Axes) -> list[Text]:
    """The x tick labels drawn: non-empty, of ticks inside the view interval."""
    low, high = sorted(ax.get_xlim())
    span = high - low
    labels = []
    for tick in ax.xaxis.get_major_ticks():
        inside = low - 1e-9 * span <= tick.get_loc() <= high + 1e-9 * span
        if inside and tick.label1.get_visible() and tick.label1.get_text():
            labels.append(tick.label1)
    return labels


def _assert_readable(fig: Figure, name: str) -> None:
    """No text outside the figure, no legend on an axes, no overlapping x tick labels."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    figure_box = fig.bbox
    tick_labels = {
        id(label)
        for ax in fig.axes
        for axis in (ax.xaxis, ax.yaxis)
        for tick in axis.get_major_ticks() + axis.get_minor_ticks()
        for label in (tick.label1, tick.label2)
    }
    for text in fig.findobj(Text):
        if id(text) in tick_labels or not text.get_visible() or not text.get_text().strip():
            continue
        box = text.get_window_extent(renderer)
        assert _inside(box, figure_box), f"{name}: {text.get_text()!r} clipped: {box}"
    for ax in _data_axes(fig):
        labels = sorted(_drawn_tick_labels(ax), key=lambda t: t.get_window_extent(renderer).x0)
        for label in labels:
            box = label.get_window_extent(renderer)
            assert _inside(box, figure_box), f"{name}: tick {label.get_text()!r} clipped"
        for left, right in itertools.pairwise(labels):
            a, b = left.get_window_extent(renderer), right.get_window_extent(renderer)
            assert a.x1 <= b.x0, (
                f"{name}: x tick labels {left.get_text()!r} and {right.get_text()!r} overlap"
            )
    for legend in _legends(fig):
        box = legend.get_window_extent(renderer)
        assert _inside(box, figure_box), f"{name}: legend outside the figure"
        for ax in _data_axes(fig):
            assert not _overlap(box, ax.get_window_extent(renderer)), (
                f"{name}: a legend lies on the data of an axes"
            )


# --- operator labels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("cW", "$c_{W}$"),
        ("cHW", "$c_{HW}$"),
        ("cHWB", "$c_{HWB}$"),
        ("cqq3", "$c_{qq}^{(3)}$"),
        ("cll1", r"$c_{ll}^{\prime}$"),
        ("cHq1", "$c_{Hq}^{(1)}$"),
        ("cqq11", r"$c_{qq}^{(1)\prime}$"),
        ("cqq31", r"$c_{qq}^{(3)\prime}$"),
        ("cHbox", r"$c_{H\Box}$"),
        ("FT0", "FT0"),
        ("c_W", r"c\_W"),
    ],
)
def test_operator_label(name: str, label: str) -> None:
    assert operator_label(name) == label


# --- observables --------------------------------------------------------------------------------


def test_observable_events_are_every_split_weighted_by_w(inputs: ReportInputs) -> None:
    config = inputs.config
    data = FigureData(inputs)
    sm = component_events(data, "sm", None, ID_COLUMNS)
    splits = [_read(config, f"sm_{split}") for split in ("train", "validation", "test")]
    expected = pl.concat([s.select("event", "mjj", "w") for s in splits])
    assert sm.height == expected.height == sum(s.height for s in splits)
    assert sm.select("event", "mjj", "w").sort("event").equals(expected.sort("event"))
    assert set(sm["split"].unique()) == {"train", "validation", "test"}
    # w, not the yields (each split's yields are scaled up to the whole sample)
    yields = pl.concat([s.select("event", "yield") for s in splits]).sort("event")
    assert not np.allclose(sm.sort("event")["w"].to_numpy(), yields["yield"].to_numpy())

    # The reweighted sample gives every selected event a LIN and a QUAD weight: the training
    # operator's union holds every selected event (its training split from mixed_train_cW) ...
    for component in ("lin", "quad"):
        union = component_events(data, component, "cW", ID_COLUMNS)
        assert _events(union) == _events(sm)
        assert union.height == sm.height
        mixed = _read(config, "mixed_train_cW").filter(pl.col("component") == component)
        train = union.filter(pl.col("split") == "train")
        assert train.sort("event")["w"].equals(mixed.sort("event")["w"])
    # ... and another operator's the validation and test events (it has no training dataset).
    held_out = pl.concat(splits[1:])
    for op in OPERATORS[1:]:
        quad = component_events(data, "quad", op, ID_COLUMNS)
        assert _events(quad) == _events(held_out)
        on_disk = pl.concat([_read(config, f"quad_{s}_{op}") for s in ("validation", "test")])
        assert quad.sort("event")["w"].equals(on_disk.sort("event")["w"])


def test_observable_figure_draws_every_operator_from_every_event(
    inputs: ReportInputs, tasks: dict[str, FigureTask]
) -> None:
    config = inputs.config
    task = tasks["observable_mjj.png"]
    assert all(op in task.caption for op in OPERATORS)
    assert "train" in task.caption
    assert "mixed_train_cW" in task.caption
    with _drawn(task) as fig:
        top, bottom = fig.axes
        assert top.get_yscale() == "log"
        quad_labels = [t.get_text() for t in top.get_legend().get_texts()]
        lin_labels = [t.get_text() for t in bottom.get_legend().get_texts()]
        for op in OPERATORS:
            assert f"QUAD {operator_label(op)}" in quad_labels
            assert any(text.startswith(f"LIN {operator_label(op)} (") for text in lin_labels)
        # The SM drawn is the unit-area histogram of every SM event weighted by w.
        (sm,) = [p for p in top.patches if isinstance(p, StepPatch) and p.get_label() == "SM"]
        drawn, edges, _ = sm.get_data()
        sm_events = pl.concat([_read(config, f"sm_{s}") for s in ("train", "validation", "test")])
        expected = unit_area(sm_events["mjj"].to_numpy(), sm_events["w"].to_numpy(), edges)
        np.testing.assert_allclose(drawn, expected, rtol=1e-12)
        # The bins cover the weighted tail of every QUAD.
        for op in OPERATORS:
            quad = component_events(FigureData(inputs), "quad", op, ["mjj"])
            high = weighted_quantiles(quad["mjj"].to_numpy(), quad["w"].to_numpy(), [0.995])
            assert edges[-1] >= high[0] * (1 - 1e-9)
        _assert_readable(fig, task.file_name)


def test_render_writes_what_savefig_writes_and_any_process_the_same(
    inputs: ReportInputs, tasks: dict[str, FigureTask]
) -> None:
    """`FigureTask.render` draws each figure once instead of savefig's twice: the PNG is
    savefig's, byte for byte. Drawn by worker processes (`rendered_figures`), the same bytes,
    in the order of the tasks."""
    ordered = list(tasks.values())
    mine = {task.file_name: task.render() for task in ordered}
    for task in ordered:
        assert mine[task.file_name] == task.savefig_png(), task.file_name
    names, workers_seen = [], 0
    for task, png, seconds in rendered_figures(inputs.config, ordered, processes=3):
        workers_seen = max(workers_seen, len(multiprocessing.active_children()))
        names.append(task.file_name)
        assert png == mine[task.file_name], task.file_name
        assert seconds > 0
    assert names == [task.file_name for task in ordered]
    assert workers_seen == 2  # 3 processes: this one and two workers
    assert multiprocessing.active_children() == []  # the workers are gone


def test_figures_of_one_size_share_a_canvas_and_keep_their_bytes(
    tasks: dict[str, FigureTask],
) -> None:
    """Figures of one size are painted on one canvas (its renderer's text caches serve them
    all); drawn in the reverse order, every figure's PNG is the same, byte for byte."""
    ordered = list(tasks.values())
    observables = [task for task in ordered if task.file_name.startswith("observable_")]
    canvases = []
    for task in observables[:2]:
        with _drawn(task) as fig:
            canvases.append(fig.canvas)
    assert canvases[0] is canvases[1]
    forward = {task.file_name: task.render() for task in ordered}
    backward = {task.file_name: task.render() for task in reversed(ordered)}
    assert backward == forward


def test_each_axis_state_has_its_ticks_worked_out_once(tasks: dict[str, FigureTask]) -> None:
    """While figures are laid out and painted, matplotlib is asked for an axis's ticks again
    and again in the same state; `ticks_updated_once` answers the repeats (and the PNGs stay
    savefig's, see above). Outside it matplotlib's own method is back."""
    original = Axis.__dict__["_update_ticks"]
    reconstruction = next(t for name, t in tasks.items() if name.startswith("reconstruction_"))
    with ticks_updated_once() as counts:
        with ticks_updated_once() as nested:  # lay_out_and_paint's own: changes nothing
            assert Axis.__dict__["_update_ticks"] is not original
        png = reconstruction.render()
    assert nested.worked_out == nested.repeated == 0
    assert Axis.__dict__["_update_ticks"] is original
    with plt.style.context(STYLE):
        fig = reconstruction.draw()
        axes = len(fig.axes)
        plt.close(fig)
    assert 2 * axes <= counts.worked_out <= 8 * axes  # x and y, a few layout states each
    assert counts.repeated > 2 * counts.worked_out
    assert png == reconstruction.render()


def test_every_figure_is_readable(tasks: dict[str, FigureTask]) -> None:
    """No clipped text, no legend on the data, no overlapping x tick labels, in every figure
    of the plan."""
    assert len(tasks) >= 14 + 2 * 4 + len(OPERATORS)
    for name, task in tasks.items():
        with _drawn(task) as fig:
            _assert_readable(fig, name)


# --- scores -------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [VAE, VAE_NN])
def test_score_figure_labels(tasks: dict[str, FigureTask], model: str) -> None:
    with _drawn(tasks[f"scores_{model}.png"]) as fig:
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        axes = fig.axes
        assert len(axes) == (3 if model == VAE_NN else 2)
        for ax in axes:
            label = ax.xaxis.label
            assert label.get_text() in {
                "MSE (preprocessed inputs)",
                "KLD [nats]",
                "classifier score",
            }
            assert _inside(label.get_window_extent(renderer), fig.bbox), label.get_text()
            assert len(_drawn_tick_labels(ax)) >= 2, label.get_text()
        (legend,) = _legends(fig)  # one legend, beside the panels
        texts = [t.get_text() for t in legend.get_texts()]
        assert texts == ["SM", *(f"QUAD {operator_label(op)}" for op in OPERATORS)]
        _assert_readable(fig, model)


@pytest.mark.parametrize(
    ("low", "high", "width", "labels"),
    [
        # narrow, 4 decades: decades only, all as powers of ten (10^-4 is no plain number)
        (1e-4, 1.0, 3.0, {"$10^{-4}$", "$10^{-3}$", "$10^{-2}$", "$10^{-1}$", "$10^{0}$"}),
        (2e-3, 0.2, 2.0, {"0.01", "0.1"}),  # the case that read "0.0050.010.02"
        (0.3, 3.0, 8.0, {"0.5", "1", "2"}),  # wide, one decade: 1, 2, 5
    ],
)
def test_log_tick_labels_fit(low: float, high: float, width: float, labels: set[str]) -> None:
    with plt.style.context(STYLE):
        fig, ax = plt.subplots(figsize=(width + 1.5, 3), layout="constrained")
        try:
            ax.plot([low, high], [0, 1])
            log_x(ax)
            ax.set_xlim(low, high)
            fig.canvas.draw()
            drawn = _drawn_tick_labels(ax)
            assert {t.get_text() for t in drawn} == labels
            _assert_readable(fig, "log axis")
        finally:
            plt.close(fig)


# --- sensitivity --------------------------------------------------------------------------------


def test_sigma_figures_have_a_colour_per_model_and_score(
    inputs: ReportInputs, tasks: dict[str, FigureTask]
) -> None:
    assert inputs.scan is not None
    curves = pl.read_parquet(inputs.scan.file("sigma_curves.parquet"))
    most = 0
    for op in OPERATORS:
        rows = curves.filter(pl.col("operator") == op)
        pairs = set(zip(rows["model"].to_list(), rows["score"].to_list(), strict=True))
        assert pairs <= SCORE_PAIRS
        most = max(most, len(pairs))
        with _drawn(tasks[f"sigma_{op}.png"]) as fig:
            renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
            (ax,) = fig.axes
            assert ax.get_xlabel().startswith(operator_label(op))
            assert not ax.get_xlabel().startswith("$c_{c")
            colours: dict[tuple[str, str], set[str]] = {}
            for line in ax.get_lines():
                if line.get_gid():
                    model, score, _, _ = line.get_gid().split("|")
                    colours.setdefault((model, score), set()).add(str(line.get_color()))
            assert set(colours) == pairs
            assert all(len(c) == 1 for c in colours.values())
            assert len({next(iter(c)) for c in colours.values()}) == len(pairs)
            legend = ax.get_legend()
            texts = [t.get_text() for t in legend.get_texts()]
            handles = dict(zip(texts, legend.legend_handles, strict=True))
            for (model, score), colour in colours.items():
                handle = handles[f"{model} ({score})"]
                assert isinstance(handle, Line2D)
                assert str(handle.get_color()) in colour
            box = legend.get_window_extent(renderer)
            assert _inside(box, fig.bbox)
            assert not _overlap(box, ax.get_window_extent(renderer))
    assert most == len(SCORE_PAIRS)  # one figure at least shows all five scores


# --- training -----------------------------------------------------------------------------------


def _history(stage_dir: Path) -> list[dict[str, float]]:
    with (stage_dir / "history.csv").open(encoding="utf-8", newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_training_figure_of_a_vae_splits_the_kept_loss(
    inputs: ReportInputs, tasks: dict[str, FigureTask]
) -> None:
    task = tasks[f"training_{VAE}.png"]
    stage = next(m for m in inputs.models if m.name == VAE)
    metrics = json.loads((stage.directory / "metrics.json").read_text(encoding="utf-8"))
    with _drawn(task) as fig:
        curves, terms = fig.axes
        labels = ("training", "validation")
        lines = [line for line in curves.get_lines() if line.get_label() in labels]
        assert len(lines) == 2
        assert all(len(line.get_xdata()) == metrics["epochs_run"] for line in lines)
        widths = [p.get_width() for p in terms.patches if isinstance(p, Rectangle)]
        assert len(widths) == 2
        assert widths[0] == pytest.approx(metrics["validation_mse_mean"])
        assert sum(widths) == pytest.approx(metrics["best_val_loss"], rel=1e-9)
    assert "cross-entropy" not in task.caption


def test_training_figure_of_a_vae_nn_has_its_two_losses_per_epoch_on_own_panels(
    inputs: ReportInputs, tasks: dict[str, FigureTask]
) -> None:
    """The VAE loss and the classifier's BCE term of every epoch, each on its own axes,
    equal to history.csv, whose two terms add up to the validation loss."""
    task = tasks[f"training_{VAE_NN}.png"]
    stage = next(m for m in inputs.models if m.name == VAE_NN)
    history = _history(stage.directory)
    for row in history:
        assert row["val_vae_loss"] + row["val_bce_term"] == pytest.approx(row["val_loss"])
        assert row["val_bce_term"] > 0
    with _drawn(task) as fig:
        curves, vae, bce = fig.axes
        (vae_line,) = [ln for ln in vae.get_lines() if ln.get_label() == "VAE loss"]
        (bce_line,) = [ln for ln in bce.get_lines() if ln.get_label() == "BCE term"]
        assert "KLD" in vae.get_ylabel()
        assert "BCE" in bce.get_ylabel()
        np.testing.assert_allclose(vae_line.get_ydata(), [r["val_vae_loss"] for r in history])
        np.testing.assert_allclose(bce_line.get_ydata(), [r["val_bce_term"] for r in history])
        assert len(curves.get_lines()) >= 2
    assert "binary cross-entropy" in task.caption
    assert "mixed_validation_cW" in task.caption
