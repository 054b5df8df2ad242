"""ROOT ntuples in the layout of existing EFT-in-VBS analyses (D6EFTStudies style), via uproot.

Layout of a file `ntuple_<sample>.root`:

- a TNtuple (or any TTree) named `<sample>` with one float branch per observable, named as the
  columns of `vbsad_batch.ingest.OBSERVABLE_COLUMNS` (GeV for masses and transverse momenta,
  radians for angles), plus the event weight `w` (pb) and optionally named weights `w_<id>`;
- a TH1F `<sample>_nums` whose bin 1 holds the sample cross section (pb) and bin 2 the sum of
  the weights `w` of ALL generated events (before any selection).

TNtuple branches are 32-bit floats: values written by `write_ntuple` come back rounded to
float32 (relative precision ~6e-8), and so do the cross section and the sum of weights in the
TH1F. Reading returns float64 columns holding those float32 values exactly.

Lepton order: the ntupliser that wrote many existing files orders the two charged leptons by
ASCENDING pT (`ptl1`, `etal1`, `phil1` belong to the softer lepton). `read_ntuple` detects this
per file (ptl1 <= ptl2 in every event) and swaps the lepton columns to the convention of
DESIGN.md (index 1 = hardest), with a warning.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from vbsad_batch.ingest.lhe import OBSERVABLE_COLUMNS
from vbsad_batch.runtime.atomic_write import atomic_path

__all__ = [
    "LEPTON_PAIRS",
    "OPTIONAL_BRANCHES",
    "REQUIRED_BRANCHES",
    "NtupleError",
    "ntuple_path",
    "read_ntuple",
    "write_ntuple",
]

logger = logging.getLogger(__name__)

OPTIONAL_BRANCHES: tuple[str, ...] = ("phij1", "phij2", "phil1", "phil2")
"""Observables that older ntuples may lack; read as null columns when absent."""

REQUIRED_BRANCHES: tuple[str, ...] = (
    *(c for c in OBSERVABLE_COLUMNS if c not in OPTIONAL_BRANCHES),
    "w",
)
"""Branches every ntuple must have: the 14 model observables and the weight `w`."""

LEPTON_PAIRS: tuple[tuple[str, str], ...] = (
    ("ptl1", "ptl2"),
    ("etal1", "etal2"),
    ("phil1", "phil2"),
)
"""Columns exchanged when the leptons are reordered (mll and ptll are symmetric)."""

_FILE_RE = re.compile(r"^ntuple_(?P<sample>.+)\.root$")
_SAMPLE_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")
_TREE_CLASSES = ("TTree", "TNtuple", "TNtupleD")
_CHUNK_ROWS = 1 << 20


class NtupleError(ValueError):
    """An ntuple file lacks a piece of the layout (named in the message with the file)."""


def ntuple_path(output_dir: Path, sample: str) -> Path:
    """`<output_dir>/ntuple_<sample>.root`."""
    return Path(output_dir) / f"ntuple_{sample}.root"


# --- reading -----------------------------------------------------------------------------------


def _class_name(classnames: dict[str, str], name: str) -> str | None:
    """The class of the highest cycle of key `name`, or None."""
    best: tuple[int, str] | None = None
    for key, cls in classnames.items():
        base, _, cycle = key.partition(";")
        if base == name:
            number = int(cycle) if cycle.isdigit() else 0
            if best is None or number > best[0]:
                best = (number, cls)
    return None if best is None else best[1]


def _find_sample(path: Path, classnames: dict[str, str]) -> str:
    match = _FILE_RE.match(path.name)
    if match is not None:
        return match.group("sample")
    trees = sorted(
        {
            key.partition(";")[0]
            for key, cls in classnames.items()
            if cls in _TREE_CLASSES
            and _class_name(classnames, key.partition(";")[0] + "_nums") is not None
        }
    )
    if len(trees) == 1:
        return trees[0]
    raise NtupleError(
        f"{path}: cannot tell the sample name: the file is not named ntuple_<sample>.root and "
        f"it holds {len(trees)} trees with a matching <sample>_nums histogram"
    )


def _read_nums(
    path: Path, file: Any, classnames: dict[str, str], sample: str
) -> tuple[float, float]:
    name = f"{sample}_nums"
    cls = _class_name(classnames, name)
    if cls is None:
        raise NtupleError(
            f"{path}: missing the histogram {name!r} (TH1F: bin 1 = cross section in pb, "
            "bin 2 = sum of weights of all generated events)"
        )
    if not cls.startswith("TH1"):
        raise NtupleError(f"{path}: {name!r} is a {cls}, expected a TH1F")
    values = np.asarray(file[name].values(flow=False), dtype=np.float64)
    if values.shape[0] < 2:
        raise NtupleError(
            f"{path}: histogram {name!r} has {values.shape[0]} bin(s), expected at least 2 "
            "(cross section, sum of weights)"
        )
    xsec, sumw = float(values[0]), float(values[1])
    if not np.isfinite(xsec) or xsec == 0.0:
        raise NtupleError(f"{path}: {name!r} bin 1 (cross section, pb) is {xsec}")
    if not np.isfinite(sumw) or sumw == 0.0:
        raise NtupleError(f"{path}: {name!r} bin 2 (sum of weights) is {sumw}")
    return xsec, sumw


def _fix_lepton_order(path: Path, frame: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    if frame.height == 0:
        return frame, []
    pt1 = frame["ptl1"].to_numpy()
    pt2 = frame["ptl2"].to_numpy()
    softer_first = pt1 < pt2
    n_softer_first = int(softer_first.sum())
    if n_softer_first == 0:
        return frame, []
    present = [(a, b) for a, b in LEPTON_PAIRS if a in frame.columns and b in frame.columns]
    names = ", ".join(f"{a}/{b}" for a, b in present)
    if bool(np.all(pt1 <= pt2)):
        swapped = frame.with_columns(
            *(pl.col(b).alias(a) for a, b in present), *(pl.col(a).alias(b) for a, b in present)
        )
        message = (
            f"{path}: leptons are ordered by ascending pT (ptl1 <= ptl2 in all {frame.height} "
            f"events): swapped {names} so that index 1 is the leading lepton"
        )
    else:
        mask = pl.Series(softer_first)
        swapped = frame.with_columns(
            *(pl.when(mask).then(pl.col(b)).otherwise(pl.col(a)).alias(a) for a, b in present),
            *(pl.when(mask).then(pl.col(a)).otherwise(pl.col(b)).alias(b) for a, b in present),
        )
        message = (
            f"{path}: leptons are not ordered by pT ({n_softer_first} of {frame.height} events "
            f"have ptl1 < ptl2): swapped {names} in those events so that index 1 is the leading "
            "lepton"
        )
    logger.warning("%s", message)
    return swapped, [message]


def read_ntuple(path: Path) -> tuple[pl.DataFrame, float, float, tuple[str, ...]]:
    """Read an ntuple file (layout in the module docstring).

    Returns:
        (events, xsec_pb, sumw_all, warnings): the events with the observable columns of
        `OBSERVABLE_COLUMNS` (float64; the optional ones null when absent), `w` and any `w_<id>`
        (float64; NaN read as null), in file order; the cross section (pb) and the sum of
        weights of all generated events from `<sample>_nums`; warnings (e.g. reordered leptons).

    Raises:
        FileNotFoundError: no such file.
        NtupleError: not a ROOT file, or the tree, the `_nums` histogram or a required branch is
            missing (named in the message).
    """
    import uproot  # noqa: PLC0415 - heavy import only where ROOT files are read

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        file = uproot.open(path)
    except Exception as exc:
        raise NtupleError(f"{path}: not a readable ROOT file: {exc}") from exc
    with file:
        classnames: dict[str, str] = dict(file.classnames())
        sample = _find_sample(path, classnames)
        tree_class = _class_name(classnames, sample)
        if tree_class is None:
            raise NtupleError(f"{path}: missing the TNtuple {sample!r} (the events of the sample)")
        if tree_class not in _TREE_CLASSES:
            raise NtupleError(f"{path}: {sample!r} is a {tree_class}, expected a TNtuple / TTree")
        xsec, sumw = _read_nums(path, file, classnames, sample)
        tree = file[sample]
        branches = set(tree.keys())
        missing = [b for b in REQUIRED_BRANCHES if b not in branches]
        if missing:
            raise NtupleError(
                f"{path}: TNtuple {sample!r} lacks the branch(es) {', '.join(missing)}"
            )
        weight_names = sorted(b for b in branches if b.startswith("w_"))
        wanted = [c for c in OBSERVABLE_COLUMNS if c in branches] + ["w", *weight_names]
        arrays: dict[str, npt.NDArray[Any]] = tree.arrays(wanted, library="np")
    columns: list[pl.Series] = []
    for name in (*OBSERVABLE_COLUMNS, "w", *weight_names):
        if name in arrays:
            series = pl.Series(name, np.asarray(arrays[name], dtype=np.float64))
            if name.startswith("w_"):
                series = series.fill_nan(None)
            columns.append(series)
        else:
            columns.append(pl.Series(name, [None] * len(arrays["w"]), dtype=pl.Float64))
    frame = pl.DataFrame(columns)
    frame, warnings = _fix_lepton_order(path, frame)
    return frame, xsec, sumw, tuple(warnings)


# --- writing -----------------------------------------------------------------------------------


def _nums_histogram(sample: str, xsec_pb: float, sumw: float) -> Any:
    import uproot  # noqa: PLC0415

    contents = np.array([0.0, xsec_pb, sumw, 0.0], dtype=np.float32)  # underflow, 2 bins, overflow
    axis = uproot.writing.identify.to_TAxis(
        fName="xaxis", fTitle="", fNbins=2, fXmin=0.0, fXmax=2.0
    )
    return uproot.writing.identify.to_TH1x(
        fName=f"{sample}_nums",
        fTitle="bin 1: cross section (pb); bin 2: sum of weights of all generated events",
        data=contents,
        fEntries=2.0,
        fTsumw=float(xsec_pb + sumw),
        fTsumw2=float(xsec_pb**2 + sumw**2),
        fTsumwx=float(0.5 * xsec_pb + 1.5 * sumw),
        fTsumwx2=float(0.25 * xsec_pb + 2.25 * sumw),
        fSumw2=np.zeros(4, dtype=np.float64),
        fXaxis=axis,
    )


def write_ntuple(
    table: pl.DataFrame | pa.Table,
    path: Path,
    *,
    sample: str,
    xsec_pb: float,
    sumw: float,
) -> Path:
    """Write events as `ntuple_<sample>.root`-style file at `path`; return `path`.

    The tree `<sample>` (a TTree written with uproot's `mktree`/`extend`, read by ROOT like the
    TNtuples of existing analyses, not an RNTuple) gets one float32 branch per column of
    `OBSERVABLE_COLUMNS` present in `table`, then `w` and every `w_<id>` column (nulls written as
    NaN); other columns (`event`, ...) are not written. The TH1F `<sample>_nums` gets `xsec_pb`
    (pb) in bin 1 and `sumw` in bin 2. Written to a temporary file renamed into place.

    Raises:
        ValueError: invalid sample name, no `w` column, nulls in an observable or `w`, or a
            non-finite / zero cross section or sum of weights.
    """
    import uproot  # noqa: PLC0415

    if not _SAMPLE_RE.match(sample):
        raise ValueError(f"invalid sample name {sample!r}: use letters, digits and _.+-")
    for label, value in (("xsec_pb", xsec_pb), ("sumw", sumw)):
        if not np.isfinite(value) or value == 0.0:
            raise ValueError(f"{label} must be finite and non-zero, got {value}")
    frame = table if isinstance(table, pl.DataFrame) else pl.DataFrame(pl.from_arrow(table))
    if "w" not in frame.columns:
        raise ValueError(f"{path}: the table has no weight column 'w'")
    names = [c for c in OBSERVABLE_COLUMNS if c in frame.columns]
    names += ["w", *(c for c in frame.columns if c.startswith("w_"))]
    for name in names:
        if not name.startswith("w_") and frame[name].null_count():
            raise ValueError(f"{path}: column {name!r} has {frame[name].null_count()} null(s)")
    selected = frame.select(pl.col(name).cast(pl.Float32).fill_null(float("nan")) for name in names)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, uproot.recreate(tmp) as out:
        tree = out.mktree(
            sample,
            dict.fromkeys(names, np.float32),
            title=f"{sample} events (vbsad_batch)",
        )
        for start in range(0, max(selected.height, 1), _CHUNK_ROWS):
            chunk = selected.slice(start, _CHUNK_ROWS)
            if chunk.height == 0 and start > 0:
                break
            tree.extend({name: chunk[name].to_numpy() for name in names})
        out[f"{sample}_nums"] = _nums_histogram(sample, xsec_pb, sumw)
    return path
