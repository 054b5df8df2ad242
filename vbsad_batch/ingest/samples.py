"""Sample inputs of an analysis as event tables, with the normalisation of each file.

`event_table(path, work_dir=...)` accepts the three input kinds of an analysis config:

- LHE (`.lhe`, `.lhe.gz`): first ingested, explicitly, by the ingest stage
  (`vbsad_batch.ingest.shards.preprocess`) into
  `<work_dir>/shards/<stem>-<12 hex digits of the SHA-256 of the absolute path>/` (one directory
  per input, so that inputs sharing a file name, e.g. MadGraph's `run_*/unweighted_events.lhe.gz`,
  never overwrite each other's shard); re-runs reuse the shard while its manifest says it is up
  to date; then the shard is read like any other;
- a Parquet shard of `vbsad preprocess` (`.parquet`): scanned, with the metadata of its
  `<name>.manifest.json` (or, without it, of the shard's Parquet footer);
- a ROOT ntuple (`.root`): read with `vbsad_batch.ingest.root_ntuple.read_ntuple`.

Reading and normalising (cross section, sum of weights, their cross-checks) is
`vbsad_batch.ingest.normalisation`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import polars as pl

from vbsad_batch.ingest.normalisation import FileNormalisation, root_table, shard_table
from vbsad_batch.ingest.preprocess import preprocess, shards_up_to_date
from vbsad_batch.ingest.shards import ShardResult
from vbsad_batch.runtime.progress import ProgressCallback

__all__ = [
    "InputKind",
    "event_table",
    "ingest_lhe",
    "input_kind",
    "lhe_ingested",
    "lhe_shard_dir",
]

InputKind = Literal["lhe", "parquet", "root"]


def input_kind(path: Path) -> InputKind:
    """ "lhe", "parquet" or "root" from the file name.

    Raises:
        ValueError: another kind of file.
    """
    name = Path(path).name.lower()
    if name.endswith((".lhe", ".lhe.gz")):
        return "lhe"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".root"):
        return "root"
    raise ValueError(f"{path}: not an input file (expected .lhe, .lhe.gz, .parquet or .root)")


def lhe_shard_dir(path: Path, work_dir: Path) -> Path:
    """The shard directory of an LHE input: `<work_dir>/shards/<stem>-<12 hex digits>`."""
    resolved = Path(path).resolve()
    stem = resolved.name
    for suffix in (".gz", ".lhe"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    return Path(work_dir) / "shards" / f"{stem or 'events'}-{digest}"


def ingest_lhe(
    path: Path,
    work_dir: Path,
    *,
    progress: ProgressCallback | None = None,
    force: bool = False,
) -> ShardResult:
    """Ingest one LHE input of an analysis into its shard directory under `work_dir` (what
    `event_table` does first; a Slurm array task of `vbsad submit` does it ahead)."""
    path = Path(path).resolve()
    return preprocess([path], lhe_shard_dir(path, work_dir), progress=progress, force=force)[0]


def lhe_ingested(path: Path, work_dir: Path) -> bool:
    """Whether `ingest_lhe(path, work_dir)` would find the shard up to date (no hashing)."""
    path = Path(path).resolve()
    return shards_up_to_date([path], lhe_shard_dir(path, work_dir))[0]


def event_table(
    path: Path,
    *,
    work_dir: Path,
    xsec_pb: float | None = None,
    weight_ids: Sequence[str] = (),
) -> tuple[pl.LazyFrame, FileNormalisation]:
    """The events of one input file and its normalisation.

    Args:
        path: an LHE file, a Parquet shard of `vbsad preprocess`, or a ROOT ntuple.
        work_dir: where LHE inputs are ingested (`<work_dir>/shards/...`, reused when up to
            date).
        xsec_pb: the config's cross-section override, pb (None: from the file).
        weight_ids: named weights that must exist in every event (reweighted samples); a
            missing one raises.

    Returns:
        (frame, normalisation). The lazy frame has `event` (int64, the event's index in its
        file; for ROOT the entry number), the observable columns (float64; GeV, radians), `w`
        and any `w_<id>` (float64, pb), and `input_sha256` (string, = normalisation.sha256).
        No selection is applied.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unknown kind of file, a missing manifest or weight id, no cross section
            (`LheParseError`, a ValueError, for a malformed LHE file).
    """
    path = Path(path).resolve()
    kind = input_kind(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if kind == "root":
        return root_table(path, xsec_pb=xsec_pb, weight_ids=weight_ids)
    if kind == "parquet":
        return shard_table(path, source_path=path, xsec_pb=xsec_pb, weight_ids=weight_ids)
    result = ingest_lhe(path, work_dir)
    return shard_table(result.shard, source_path=path, xsec_pb=xsec_pb, weight_ids=weight_ids)
