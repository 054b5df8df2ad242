"""Ingest: Monte Carlo samples in, tables of VBS observables out.

Modules:

- `lhe`: the typed API of the native LHE reader (`read_lhe`, `read_lhe_particles`,
  `lhe_info`, `LheInfo`); also `vbsad_batch.read_lhe` etc.;
- `shards`: the ingest stage (`vbsad preprocess`): LHE files -> one Parquet shard per file,
  with manifests, in parallel worker processes;
- `samples`: the input files of an analysis as event tables (Parquet shards, ROOT ntuples),
  with the cross section and sum of weights that normalise each file;
- `root_ntuple`: ROOT ntuples of the D6EFTStudies layout, read and written with uproot;
- `root_export`: `vbsad export-root`: shards -> ROOT ntuples.

Only `lhe` is imported with the package: the others load polars, uproot or the process pool.
"""

from __future__ import annotations

from vbsad_batch.ingest.lhe import (
    DEFAULT_BATCH_SIZE,
    OBSERVABLE_COLUMNS,
    Beams,
    GeneratorInfo,
    LheInfo,
    LheStream,
    MgGenerationInfo,
    OnError,
    ProcessInfo,
    SkippedEvent,
    WeightInfo,
    check_on_error,
    lhe_info,
    read_lhe,
    read_lhe_particles,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "OBSERVABLE_COLUMNS",
    "Beams",
    "GeneratorInfo",
    "LheInfo",
    "LheStream",
    "MgGenerationInfo",
    "OnError",
    "ProcessInfo",
    "SkippedEvent",
    "WeightInfo",
    "check_on_error",
    "lhe_info",
    "read_lhe",
    "read_lhe_particles",
]
