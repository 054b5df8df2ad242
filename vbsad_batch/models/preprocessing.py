"""Preprocessing of the model inputs: log10 of the energy-like features, then min-max scaling
fitted on the SM training split only; stored as JSON next to the model.

NumPy and polars only: the report and the scoring stage read it without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = ["Preprocessing"]

_PREPROCESSING_FORMAT = 1


@dataclass(frozen=True)
class Preprocessing:
    """log10 of `log_features`, then min-max scaling to [0, 1] on the SM training split.

    `transform` maps feature f to ``(g(f) - minimum) / (maximum - minimum)`` with g = log10 for
    the features in `log_features` and the identity otherwise. SM training events map into
    [0, 1]; other events may fall outside (that is information, not an error).

    Attributes:
        features: model inputs, in column order.
        log_features: the features that get log10 (a subset of `features`).
        minimum: per feature, the minimum over the SM training split of g(feature) (log10 of
            GeV for energy-like features, the feature's unit otherwise).
        maximum: per feature, the maximum likewise.
    """

    features: tuple[str, ...]
    log_features: tuple[str, ...]
    minimum: tuple[float, ...]
    maximum: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.features)
        if n == 0:
            raise ValueError("preprocessing needs at least one feature")
        if len(set(self.features)) != n:
            raise ValueError(f"features listed twice in {self.features}")
        if len(self.minimum) != n or len(self.maximum) != n:
            raise ValueError(
                f"{n} features but {len(self.minimum)} minima and {len(self.maximum)} maxima"
            )
        unknown = [name for name in self.log_features if name not in self.features]
        if unknown:
            raise ValueError(f"log_features {unknown} are not among the features")
        for name, low, high in zip(self.features, self.minimum, self.maximum, strict=True):
            if not (math.isfinite(low) and math.isfinite(high)) or not high > low:
                raise ValueError(
                    f"feature {name!r}: needs finite minimum < maximum, got [{low}, {high}] "
                    "(a constant feature cannot be min-max scaled)"
                )

    @classmethod
    def fit(
        cls,
        sm_train: pl.DataFrame,
        features: Sequence[str],
        log_features: Sequence[str],
    ) -> Preprocessing:
        """Fit the min-max ranges on the SM training split.

        Raises:
            ValueError: a feature is missing, a log feature has a value <= 0, a value is not
                finite, or a feature is constant.
        """
        return cls.fit_batches([sm_train], features, log_features)

    @classmethod
    def fit_batches(
        cls,
        batches: Iterable[pl.DataFrame],
        features: Sequence[str],
        log_features: Sequence[str],
    ) -> Preprocessing:
        """`fit` on the SM training split given as consecutive batches of its rows, one at a
        time (memory: one batch): the minimum and maximum of each batch's values, combined,
        are those of the whole split, so the result equals `fit` on all rows bit for bit.

        Raises:
            ValueError: as `fit`.
        """
        features = tuple(features)
        log_set = frozenset(log_features)
        logs = tuple(name for name in features if name in log_set)
        unknown = sorted(log_set - set(features))
        if unknown:
            raise ValueError(f"log_features {unknown} are not among the features")
        low = np.full(len(features), np.inf)
        high = np.full(len(features), -np.inf)
        rows = 0
        for batch in batches:
            if batch.height == 0:
                continue
            values = _raw_matrix(batch, features, logs)
            low = np.minimum(low, values.min(axis=0))
            high = np.maximum(high, values.max(axis=0))
            rows += batch.height
        if rows == 0:
            raise ValueError("cannot fit the preprocessing on an empty SM training set")
        return cls(
            features=features,
            log_features=logs,
            minimum=tuple(float(v) for v in low),
            maximum=tuple(float(v) for v in high),
        )

    def transform(self, frame: pl.DataFrame) -> np.ndarray:
        """The model input of `frame`'s events: float32 array (n_events, n_features).

        Raises:
            ValueError: a feature is missing, a log feature has a value <= 0, or a value is not
                finite.
        """
        values = _raw_matrix(frame, self.features, self.log_features)
        low = np.asarray(self.minimum, dtype=np.float64)
        high = np.asarray(self.maximum, dtype=np.float64)
        return ((values - low) / (high - low)).astype(np.float32)

    def to_json(self) -> str:
        """JSON text; `from_json` gives back an equal object (floats round-trip exactly)."""
        data = {"format": _PREPROCESSING_FORMAT, **dataclasses.asdict(self)}
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Preprocessing:
        """Read what `to_json` wrote.

        Raises:
            ValueError: not valid JSON, another format, missing or invalid fields.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"preprocessing JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != _PREPROCESSING_FORMAT:
            raise ValueError(f"preprocessing JSON: expected format {_PREPROCESSING_FORMAT}")
        try:
            return cls(
                features=tuple(str(x) for x in data["features"]),
                log_features=tuple(str(x) for x in data["log_features"]),
                minimum=tuple(float(x) for x in data["minimum"]),
                maximum=tuple(float(x) for x in data["maximum"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"preprocessing JSON: missing or invalid field: {exc}") from exc


def _raw_matrix(frame: pl.DataFrame, features: Sequence[str], logs: Sequence[str]) -> np.ndarray:
    """float64 (n, n_features) of the features, log10 applied to `logs`; validated."""
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise ValueError(f"column(s) {', '.join(missing)} missing (have {frame.columns})")
    values = frame.select(features).cast(pl.Float64).to_numpy()
    values = np.array(values, dtype=np.float64, order="C")  # own, writeable copy
    log_set = frozenset(logs)
    for j, name in enumerate(features):
        column = values[:, j]
        if name in log_set:
            bad = int(np.count_nonzero(~(column > 0)))
            if bad:
                raise ValueError(f"feature {name!r}: {bad} value(s) <= 0 or NaN cannot take log10")
            values[:, j] = np.log10(column)
        bad = int(np.count_nonzero(~np.isfinite(values[:, j])))
        if bad:
            raise ValueError(f"feature {name!r}: {bad} value(s) not finite")
    return values
