"""Sensitivity of two trained models through the project's own next stages, for the training
benchmark: `vbsad score` (`vbsad_batch.models.scoring.score_datasets`) of every test dataset with
each model, then `vbsad scan` (`vbsad_batch.scan.driver.run_scan`, the config's `[scan]` settings: 3
sigma, admissibility, bootstrap) over both, and per operator the smallest |c| at the scan's
significance (proxy sigma = |c L + c^2 Q| / sqrt(S), the paper's Table 1 quantity) of each.

The bootstrap replicas of the scan are paired across models: replica i gives every Monte Carlo
event the same Poisson weight whatever scored it (weights drawn per event identity from a
generator seeded by (seed, i)). `paired_ratio` uses that: per replica the ratio of the two
models' smallest |c|, whose spread is the statistical uncertainty of the ratio itself (far
smaller than each limit's own spread, which is mostly common to both).

A model here is a model directory as `vbsad train` writes it (`model.keras` and
`preprocessing.json`); `write_model_directory` makes one for a model trained elsewhere (the
Keras `fit` reference).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class OperatorLimit:
    """Smallest |c| at the scan's significance for one model and operator.

    Attributes:
        c_minus, c_plus: the proxy limits (None: not reached on that side).
        c_minus_error, c_plus_error: their bootstrap standard deviations (None: undefined).
    """

    c_minus: float | None
    c_plus: float | None
    c_minus_error: float | None
    c_plus_error: float | None

    @property
    def smallest(self) -> tuple[float, float | None]:
        """(smallest |c| over both sides, its bootstrap error); inf if neither side reached."""
        sides = [
            (abs(c), err)
            for c, err in ((self.c_minus, self.c_minus_error), (self.c_plus, self.c_plus_error))
            if c is not None
        ]
        return min(sides, key=lambda side: side[0]) if sides else (math.inf, None)


def write_model_directory(model: Any, preprocessing: Any, directory: Path) -> Path:
    """Save `model` and its `Preprocessing` as a model directory that `score_datasets` reads."""
    from vbsad_batch.models.networks import save_model  # noqa: PLC0415
    from vbsad_batch.models.paths import PREPROCESSING_FILE_NAME  # noqa: PLC0415
    from vbsad_batch.runtime.atomic_write import write_text_atomic  # noqa: PLC0415

    save_model(model, directory)
    write_text_atomic(directory / PREPROCESSING_FILE_NAME, preprocessing.to_json())
    return directory


def compare_sensitivity(
    config: Any, model_dirs: Sequence[Path]
) -> tuple[dict[str, Any], dict[str, dict[str, OperatorLimit]]]:
    """Score the test datasets with every model, scan them all in one `run_scan`.

    Returns:
        the scan's table document (table.json) and, per model directory name and operator,
        the proxy limit of the first score column of the model's kind (`[scan] vae_scores`,
        `vae_nn_scores`).
    """
    from vbsad_batch.models.scoring import score_datasets  # noqa: PLC0415
    from vbsad_batch.scan.driver import run_scan  # noqa: PLC0415

    for directory in model_dirs:
        score_datasets(config, directory, force=True)
    names = [Path(d).name for d in model_dirs]
    result = run_scan(config, models=names, force=True)
    if result is None:
        raise RuntimeError("run_scan returned nothing on rank 0")
    document = result.table
    limits: dict[str, dict[str, OperatorLimit]] = {}
    for row in document["rows"]:
        if row["model"] in limits:  # the first score column of the model's kind only
            continue
        limits[row["model"]] = {
            op: OperatorLimit(
                c_minus=values["proxy"]["c_minus"],
                c_plus=values["proxy"]["c_plus"],
                c_minus_error=values["proxy"]["c_minus_error"],
                c_plus_error=values["proxy"]["c_plus_error"],
            )
            for op, values in row["operators"].items()
        }
    return document, limits


def _sample(path: Path, column: str) -> Any:
    """A `ScoreSample` of one score file, events identified by (input file SHA-256, event)."""
    import polars as pl  # noqa: PLC0415

    from vbsad_batch.scan.statistics import ScoreSample  # noqa: PLC0415

    frame = pl.read_parquet(path, columns=["input_sha256", "event", "yield", column])
    ids = (frame["input_sha256"] + ":" + frame["event"].cast(pl.String)).to_numpy()
    return ScoreSample(
        score=frame[column].to_numpy().astype(np.float64),
        yield_=frame["yield"].to_numpy().astype(np.float64),
        event_id=ids,
    )


def paired_ratio(
    config: Any, ours: Path, reference: Path, operator: str, column: str = "mse"
) -> tuple[float, float, float]:
    """Over the scan's bootstrap replicas (`[scan]` replicas, seed, significance, admissibility),
    the ratio ours / reference of the smallest |c| (proxy) per replica, both models on the same
    replica: (mean, standard deviation, fraction of replicas with ratio <= 1). NaN when no
    replica reached a limit with both."""
    from vbsad_batch.models.scoring import scores_directory  # noqa: PLC0415
    from vbsad_batch.scan.bootstrap import bootstrap_limits  # noqa: PLC0415
    from vbsad_batch.scan.statistics import Admissibility  # noqa: PLC0415

    settings = config.scan
    admissible = Admissibility(
        min_sm_mc_events=settings.min_sm_mc_events, min_sm_yield=settings.min_sm_yield
    )
    smallest = []
    for model_dir in (ours, reference):
        directory = scores_directory(config, model_dir)
        samples = [
            _sample(directory / f"{name}.parquet", column)
            for name in ("sm_test", f"lin_test_{operator}", f"quad_test_{operator}")
        ]
        limits = bootstrap_limits(
            *samples,
            replicas=settings.bootstrap_replicas,
            seed=settings.seed,
            significance=settings.significance,
            admissible=admissible,
        )
        with np.errstate(all="ignore"):
            smallest.append(np.fmin(np.abs(limits[:, 0]), np.abs(limits[:, 1])))
    ratio = smallest[0] / smallest[1]
    ratio = ratio[np.isfinite(ratio)]
    if ratio.size == 0:
        return math.nan, math.nan, math.nan
    spread = float(np.std(ratio, ddof=1)) if ratio.size > 1 else math.nan
    return float(np.mean(ratio)), spread, float(np.mean(ratio <= 1.0))
