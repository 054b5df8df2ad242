"""The deterministic train / validation / test split of the events of an analysis.

Each event gets a label from a SplitMix64 hash of (input file SHA-256, event index, seed):
the same on any machine, for any file order, row order or number of workers or ranks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

from vbsad_batch.config import SplitConfig

__all__ = [
    "SPLITS",
    "SPLIT_COLUMN",
    "split_hash_expr",
    "split_labels",
    "split_uniform_expr",
]

SPLIT_COLUMN = "split"
SPLITS: tuple[str, str, str] = ("train", "validation", "test")

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def _u64(value: int) -> pl.Expr:
    return pl.lit(value & _MASK64, dtype=pl.UInt64)


def _shift_right(x: pl.Expr, bits: int) -> pl.Expr:
    return x // _u64(1 << bits)


def _splitmix64(x: pl.Expr) -> pl.Expr:
    # SplitMix64 finaliser (Steele, Lea, Flood 2014) on UInt64 with wrap-around arithmetic.
    z = x + _u64(_GOLDEN)
    z = z.xor(_shift_right(z, 30)) * _u64(_MIX1)
    z = z.xor(_shift_right(z, 27)) * _u64(_MIX2)
    return z.xor(_shift_right(z, 31))


def split_hash_expr(seed: int) -> pl.Expr:
    """64-bit hash of (input file SHA-256, event index, seed), from columns `input_sha256` (hex)
    and `event` (index of the event in its file).

    Definition (all arithmetic modulo 2^64, `sm` = the SplitMix64 finaliser:
    z += 0x9E3779B97F4A7C15; z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9;
    z = (z ^ z >> 27) * 0x94D049BB133111EB; z ^= z >> 31):

        key  = first 16 hex digits of input_sha256, as an unsigned 64-bit integer
        hash = sm(sm(sm(seed) ^ key) ^ event)

    It depends only on the file's content, the event's index in it and the seed: the same on
    any machine, for any file order, row order or number of ranks.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _MASK64:
        raise ValueError(f"split seed must be an int in [0, 2^64), got {seed!r}")
    sha = pl.col("input_sha256").str.to_lowercase()
    high = sha.str.slice(0, 8).str.to_integer(base=16).cast(pl.UInt64)
    low = sha.str.slice(8, 8).str.to_integer(base=16).cast(pl.UInt64)
    key = high * _u64(1 << 32) + low
    seeded = _splitmix64(_u64(seed))
    return _splitmix64(_splitmix64(seeded.xor(key)).xor(pl.col("event").cast(pl.UInt64)))


def split_uniform_expr(seed: int) -> pl.Expr:
    """A number in [0, 1) per event: the top 53 bits of `split_hash_expr(seed)` / 2^53."""
    top = _shift_right(split_hash_expr(seed), 11).cast(pl.Float64)
    return top * (1.0 / (1 << 53))


def _fractions(fractions: SplitConfig | Sequence[float]) -> tuple[float, float, float]:
    if isinstance(fractions, SplitConfig):
        values = (fractions.train, fractions.validation, fractions.test)
    else:
        values = tuple(float(f) for f in fractions)  # type: ignore[assignment]
    if len(values) != 3 or any(not (math.isfinite(f) and f >= 0) for f in values):
        raise ValueError(f"split fractions must be 3 non-negative numbers, got {values!r}")
    if not math.isclose(sum(values), 1.0, abs_tol=1e-9):
        raise ValueError(f"split fractions must add up to 1, got {values!r} (sum {sum(values)})")
    return values[0], values[1], values[2]


def split_labels(
    frame: pl.LazyFrame, seed: int, fractions: SplitConfig | Sequence[float]
) -> pl.LazyFrame:
    """Add the column `split` ("train", "validation" or "test") to events.

    With u = `split_uniform_expr(seed)`: train if u < f_train, validation if
    u < f_train + f_validation, else test. `fractions` = (train, validation, test), adding up
    to 1 (or a `SplitConfig`). Needs the columns `input_sha256` and `event`.
    """
    train, validation, _ = _fractions(fractions)
    u = split_uniform_expr(seed)
    label = (
        pl.when(u < train)
        .then(pl.lit("train"))
        .when(u < train + validation)
        .then(pl.lit("validation"))
        .otherwise(pl.lit("test"))
    )
    return frame.with_columns(label.alias(SPLIT_COLUMN))
