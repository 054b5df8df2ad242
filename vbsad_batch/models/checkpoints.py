"""The per-epoch checkpoint of a training: every model and optimizer variable, the best
weights so far and the loop's state, replaced atomically after each epoch, so that a training
killed at any moment and resumed ends with the weights of an uninterrupted one.

A checkpoint that cannot be used — cut short (a write killed on a full disk), not a zip, a
missing or mistyped field, variables that do not fit the model — raises
`CheckpointCorruptError` naming the file and the problem; the training then moves it aside
(`set_aside`: `checkpoint.npz.unreadable-<UTC time>`, kept for inspection) and starts afresh,
instead of failing the same way on every retry.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import json
import logging
import math
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vbsad_batch.models.paths import CHECKPOINT_NAME
from vbsad_batch.runtime.atomic_write import write_bytes_atomic

__all__ = [
    "CheckpointCorruptError",
    "CheckpointMismatchError",
    "TrainingState",
    "assign_variables",
    "checkpoint_state",
    "read_checkpoint",
    "save_checkpoint",
    "set_aside",
    "variables_mismatch",
]

logger = logging.getLogger(__name__)


class CheckpointMismatchError(ValueError):
    """`resume` found a checkpoint of another training (its datasets or settings differ)."""


class CheckpointCorruptError(ValueError):
    """A checkpoint file that cannot be read or used; `path` names it."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: unreadable checkpoint: {problem}")
        self.path = path
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across MPI ranks
        return (type(self), (self.path, self.problem))


@dataclass
class TrainingState:
    """Everything of a training in progress that is not a TensorFlow variable."""

    next_epoch: int = 0  # 0-based index of the next epoch to run
    best_epoch: int = 0  # 1-based; 0 = none yet
    best_val_loss: float = math.inf
    wait: int = 0  # epochs since the last improvement
    finished: bool = False
    stopped_early: bool = False
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def save_checkpoint(
    path: Path,
    *,
    key_digest: str,
    state: TrainingState,
    model: Any,
    optimizer: Any,
    best: Sequence[np.ndarray],
    ranks: int = 1,
) -> None:
    """Replace the checkpoint at `path` (atomically) by the training's current state; `ranks`:
    the number of ranks of a data-parallel training (1 otherwise), which a resumed training
    must have too."""
    arrays: dict[str, Any] = {}  # Any: np.savez's stubs type **kwds loosely
    for i, var in enumerate(model.variables):
        arrays[f"model/{i:04d}"] = var.numpy()
    for i, var in enumerate(optimizer.variables):
        arrays[f"optimizer/{i:04d}"] = var.numpy()
    for i, value in enumerate(best):
        arrays[f"best/{i:04d}"] = value
    meta = {"key_digest": key_digest, "state": dataclasses.asdict(state), "ranks": ranks}
    arrays["meta"] = np.array(json.dumps(meta))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


_STATE_TYPES: dict[str, tuple[type, ...]] = {
    "next_epoch": (int,),
    "best_epoch": (int,),
    "best_val_loss": (int, float),
    "wait": (int,),
    "finished": (bool,),
    "stopped_early": (bool,),
    "history": (list,),
}


def _state(raw: object) -> TrainingState:
    """The loop state of a checkpoint's meta, every field present and of its type.

    Raises:
        ValueError: a missing, unknown or mistyped field.
    """
    if not isinstance(raw, Mapping):
        raise ValueError(f"state is {type(raw).__name__}, not an object")
    if set(raw) != set(_STATE_TYPES):
        missing = sorted(set(_STATE_TYPES) - set(raw))
        unknown = sorted(set(raw) - set(_STATE_TYPES))
        raise ValueError(f"state fields: missing {missing}, unknown {unknown}")
    for name, types in _STATE_TYPES.items():
        value = raw[name]
        if not isinstance(value, types) or (bool in types) != isinstance(value, bool):
            raise ValueError(f"state field {name!r} is {value!r}")
    if raw["next_epoch"] < 0 or raw["best_epoch"] < 0 or raw["wait"] < 0:
        raise ValueError("negative epoch counters in the state")
    if not all(isinstance(row, dict) for row in raw["history"]):
        raise ValueError("history rows are not objects")
    return TrainingState(**raw)


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, list[np.ndarray]]] | None:
    """(meta: key_digest, state (a checked `TrainingState` as a dict), ranks (absent before
    data parallelism: 1); variables by group "model", "optimizer", "best"), or None if there
    is no checkpoint at `path`.

    Raises:
        CheckpointCorruptError: the file cannot be read or a field is missing or mistyped.
    """
    try:
        # Our own file object: np.load leaves its own open when the zip is unreadable.
        with path.open("rb") as f, np.load(f, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            groups: dict[str, list[np.ndarray]] = {"model": [], "optimizer": [], "best": []}
            for name in sorted(npz.files):
                group, _, _ = name.partition("/")
                if group in groups:
                    groups[group].append(npz[name])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise CheckpointCorruptError(path, f"{type(exc).__name__}: {exc}") from exc
    try:
        if not isinstance(meta, dict) or not isinstance(meta.get("key_digest"), str):
            raise ValueError("no key_digest")
        ranks = meta.get("ranks", 1)
        if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 1:
            raise ValueError(f"ranks is {ranks!r}")
        meta["state"] = dataclasses.asdict(_state(meta.get("state")))
    except ValueError as exc:
        raise CheckpointCorruptError(path, str(exc)) from exc
    if not groups["model"] or len(groups["best"]) != len(groups["model"]):
        raise CheckpointCorruptError(path, "model or best weights missing")
    return meta, groups


def variables_mismatch(variables: Sequence[Any], values: Sequence[np.ndarray]) -> str | None:
    """Why `values` cannot be assigned to `variables` (count, a shape, non-finite numbers), or
    None when they can."""
    if len(variables) != len(values):
        return f"{len(values)} arrays for {len(variables)} variables"
    for var, value in zip(variables, values, strict=True):
        if tuple(var.shape) != value.shape:
            return f"variable {var.path}: shape {value.shape}, expected {tuple(var.shape)}"
        if not np.all(np.isfinite(value)):
            return f"variable {var.path}: non-finite values"
    return None


def set_aside(path: Path) -> Path:
    """Move an unusable checkpoint out of the way (kept for inspection); its new path."""
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.unreadable-{stamp}")
    path.replace(aside)
    return aside


def checkpoint_state(model_dir: Path) -> dict[str, Any] | None:
    """The training state of the checkpoint in `model_dir` (keys as `TrainingState`: `next_epoch` =
    epochs completed, `best_epoch`, `best_val_loss`, `wait`, `finished`, `stopped_early`,
    `history`), or None if there is no readable checkpoint (an unreadable one is logged)."""
    try:
        loaded = read_checkpoint(model_dir / CHECKPOINT_NAME)
    except CheckpointCorruptError as exc:
        logger.warning("%s", exc)
        return None
    if loaded is None:
        return None
    state: dict[str, Any] = loaded[0]["state"]
    return state


def assign_variables(variables: Sequence[Any], values: Sequence[np.ndarray], what: str) -> None:
    problem = variables_mismatch(variables, values)
    if problem is not None:
        raise ValueError(f"checkpoint {what}: {problem}")
    for var, value in zip(variables, values, strict=True):
        var.assign(value)
