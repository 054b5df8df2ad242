"""What the report's figures read: the columns they need of the datasets and score files of
the stage outputs, and the events of a whole component (SM, or the LIN or QUAD of an operator)
gathered from every split.

The datasets stage writes SM events of every split (`sm_<split>`), the LIN and QUAD events of
the validation and test splits (`lin_<split>_<op>`, `quad_<split>_<op>`), and those of the
training split only inside the mixed training set of a training operator
(`mixed_train_<op>`, rows with `component` "lin" or "quad"). `component_sources` finds, per
split, where a component's events are.

A split's `yield` column is scaled so that the split alone adds up to the component's whole
yield (see `vbsad_batch.weighting.datasets`); across splits the per-event weight is the raw
event weight `w` (pb), which the union of splits is weighted by. (This takes the files of a
sample to share one normalisation, as one MadGraph run's files do.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from vbsad_batch.config import AnalysisConfig
from vbsad_batch.report.inputs import ReportInputs, StageOutput
from vbsad_batch.weighting.split import SPLITS

__all__ = [
    "EVENT_WEIGHT",
    "ComponentSource",
    "FigureData",
    "analysis_operators",
    "component_events",
    "component_sources",
    "values",
]

_SPLIT = pl.Enum(SPLITS)
"""The `split` column of `component_events`: a small integer per event, not a string."""

EVENT_WEIGHT = "w"
"""The raw event weight column of the datasets (pb for MadGraph samples)."""


class FigureData:
    """Reads the columns of the datasets and score files that a figure needs, when it needs
    them: nothing is kept between figures, so that the report's memory grows with the events
    times the few columns of one figure, not with whole datasets. (The report has checked the
    files' SHA-256 against the manifests before it plans the figures.)"""

    def __init__(self, inputs: ReportInputs) -> None:
        self.inputs = inputs
        self._listed: dict[str, frozenset[str]] = {}

    def _listed_files(self, stage: StageOutput) -> frozenset[str]:
        if stage.name not in self._listed:
            self._listed[stage.name] = frozenset(stage.file_names())
        return self._listed[stage.name]

    @staticmethod
    def _read(
        stage: StageOutput, name: str, columns: Sequence[str], n_rows: int | None
    ) -> pl.DataFrame:
        return pl.read_parquet(
            stage.file(f"{name}.parquet"), columns=list(dict.fromkeys(columns)), n_rows=n_rows
        )

    def dataset(self, name: str, columns: Sequence[str], n_rows: int | None = None) -> pl.DataFrame:
        """`columns` of the dataset `name` (e.g. "sm_test"): its first `n_rows` rows, or all."""
        return self._read(self.inputs.datasets, name, columns, n_rows)

    def has_dataset(self, name: str) -> bool:
        """Whether the datasets stage wrote `name`."""
        return f"{name}.parquet" in self._listed_files(self.inputs.datasets)

    def score_columns(self, scores: StageOutput, name: str) -> list[str]:
        """The column names of the score file of dataset `name` (read from its schema only)."""
        return list(pl.read_parquet_schema(scores.file(f"{name}.parquet")))

    def scores(self, scores: StageOutput, name: str, columns: Sequence[str]) -> pl.DataFrame:
        """`columns` of the per-event scores of dataset `name` by the model of `scores`."""
        return self._read(scores, name, columns, None)


def analysis_operators(config: AnalysisConfig) -> tuple[str, ...]:
    """The operators of the analysis: the declared ones in file order, else all of them."""
    return config.declared_operators or tuple(config.operators())


def values(frame: pl.DataFrame, column: str) -> np.ndarray:
    """A column as float64 (the frame's own buffer when it is float64 already: no copy)."""
    return frame[column].to_numpy().astype(np.float64, copy=False)


@dataclass(frozen=True, slots=True)
class ComponentSource:
    """Where one split of a component's events is.

    Attributes:
        split: "train", "validation" or "test".
        dataset: the dataset that holds them.
        component: the `component` value of their rows when the dataset is a mixed set
            (None: every row of the dataset).
    """

    split: str
    dataset: str
    component: str | None = None


def component_sources(data: FigureData, component: str, op: str | None) -> list[ComponentSource]:
    """Per split (in `SPLITS` order), the dataset holding the events of `component` ("sm",
    "lin" or "quad") of operator `op` (None for "sm"): its own dataset, else the rows of the
    operator's mixed set of that split; splits found in neither are left out."""
    found = []
    for split in SPLITS:
        own = f"sm_{split}" if component == "sm" else f"{component}_{split}_{op}"
        mixed = f"mixed_{split}_{op}"
        if data.has_dataset(own):
            found.append(ComponentSource(split, own))
        elif component != "sm" and data.has_dataset(mixed):
            found.append(ComponentSource(split, mixed, component))
    return found


def component_events(
    data: FigureData, component: str, op: str | None, columns: Sequence[str]
) -> pl.DataFrame:
    """The events of `component` of `op` from every split (`component_sources`): `columns`,
    the raw event weight `w` and the `split` of each event."""
    wanted = list(dict.fromkeys([*columns, EVENT_WEIGHT]))
    frames = []
    for source in component_sources(data, component, op):
        if source.component is None:
            frame = data.dataset(source.dataset, wanted)
        else:
            frame = (
                data.dataset(source.dataset, [*wanted, "component"])
                .filter(pl.col("component") == source.component)
                .select(wanted)
            )
        frames.append(frame.with_columns(pl.lit(source.split, dtype=_SPLIT).alias("split")))
    if not frames:
        raise ValueError(
            f"{data.inputs.datasets.directory}: no dataset holds the {component} events"
            + (f" of {op}" if op else "")
        )
    return pl.concat(frames, how="vertical_relaxed")
