"""`vbsad export-root`: Parquet shards of `vbsad preprocess` -> ROOT ntuples of the
D6EFTStudies layout (`vbsad_batch.ingest.root_ntuple`), each with a JSON manifest."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from vbsad_batch.ingest.normalisation import shard_normalisation, shard_remake
from vbsad_batch.ingest.root_ntuple import ntuple_path, write_ntuple
from vbsad_batch.runtime.file_errors import reading
from vbsad_batch.runtime.provenance import runtime_provenance, sha256_file, write_manifest

__all__ = ["export_shards"]


def export_shards(shards: Sequence[Path], output_dir: Path) -> list[Path]:
    """Write one ntuple per Parquet shard of `vbsad preprocess` into `output_dir`.

    A shard `<name>.parquet` (a directory stands for every `*.parquet` in it) becomes
    `ntuple_<name>.root` with tree `<name>`; the cross section follows the precedence of
    `vbsad_batch.ingest.normalisation` (MadGraph banner, then the `<init>` XSECUP sum) and the sum
    of weights is the shard manifest's sum over all events. A JSON manifest
    `ntuple_<name>.manifest.json` next to each file records the shard, the cross section, its
    source and any warning.

    Returns:
        The ntuple files written, in input order.

    Raises:
        FileNotFoundError: a shard or its manifest is missing.
    """
    files: list[Path] = []
    for given in shards:
        entry = Path(given)
        if entry.is_dir():
            files.extend(p for p in sorted(entry.glob("*.parquet")) if not p.name.startswith("."))
        else:
            files.append(entry)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for shard in files:
        norm = shard_normalisation(shard)
        sample = shard.name.removesuffix(".parquet")
        target = ntuple_path(output_dir, sample)
        with reading(shard, what="Parquet shard", remake=shard_remake(shard)):
            events = pl.from_arrow(pq.read_table(shard))  # pyarrow: errors, not panics
        assert isinstance(events, pl.DataFrame)
        write_ntuple(
            events,
            target,
            sample=sample,
            xsec_pb=norm.xsec_pb,
            sumw=norm.sum_weights,
        )
        write_manifest(
            target.with_name(f"ntuple_{sample}.manifest.json"),
            {
                "kind": "vbsad_batch.root_ntuple",
                "ntuple": {"path": target.name, "sha256": sha256_file(target), "tree": sample},
                "shard": {"path": str(shard.resolve()), "sha256": sha256_file(shard)},
                "input_sha256": norm.sha256,
                "xsec_pb": norm.xsec_pb,
                "xsec_source": norm.xsec_source,
                "sum_weights": norm.sum_weights,
                "n_events": norm.n_events,
                "warnings": list(norm.warnings),
                "provenance": runtime_provenance(),
            },
        )
        written.append(target)
    return written
