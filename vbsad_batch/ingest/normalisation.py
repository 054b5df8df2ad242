"""The normalisation of each sample file: cross section and sum of weights, cross-checked.

Cross section precedence (pb), recorded in `FileNormalisation.xsec_source`:

1. "config": the sample's `xsec_pb` in the analysis config;
2. "mg_banner": the MadGraph banner's `<MGGenerationInfo>` "Integrated weight (pb)";
3. "init": the sum of the `<init>` block's XSECUP (error: XERRUP in quadrature);
4. "root_nums": for ROOT ntuples, bin 1 of `<sample>_nums` (after "config").

The banner comes before XSECUP because MadGraph's XSECUP can be stale: in the real SSWW samples
it is off by factors 2.6 to 120 while the banner equals the mean event weight.

Cross-checks, each failing one logged with `logging.WARNING` AND returned in
`FileNormalisation.warnings` (never silently passed over):

- XSECUP against the banner, when both exist: |XSECUP - banner| > 3 * XERRUP (+ rounding);
- the cross section used against the event weights. MadGraph writes weights whose mean
  (`event_norm = average`, |IDWTUP| = 3 or 4) or sum (`event_norm = sum`) is the cross section;
  the convention closer to the cross section is taken. They disagree when
  |estimate - xsec| > 3 * sqrt(stated error^2 + MC error^2) + 1e-5 * |xsec|, where the stated
  error is XERRUP for "init" and zero otherwise (the banner and the config state none), the MC
  error of the mean is std(w) / sqrt(N) (of the sum: std(w) * sqrt(N)) with N the events of
  the file, and the relative 1e-5 absorbs the rounding of weights printed with 7 digits. std(w)
  is taken over the rows of the table (for LHE: the events with two leptons and two jets; all
  of them in the SSWW samples). For a ROOT ntuple the check needs every generated event in the
  tree: it runs only if the tree's weights sum to bin 2 of `_nums` (float32 precision).
"""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow.parquet as pq

from vbsad_batch.errors import StaleInputError
from vbsad_batch.ingest.lhe import OBSERVABLE_COLUMNS, LheInfo
from vbsad_batch.ingest.root_ntuple import read_ntuple
from vbsad_batch.ingest.shards import shard_manifest_path
from vbsad_batch.runtime.file_errors import reading
from vbsad_batch.runtime.provenance import read_manifest, sha256_file
from vbsad_batch.runtime.stage import FileRecord, command, fingerprint

__all__ = [
    "MEAN_CHECK_SIGMAS",
    "ROUNDING_REL_TOL",
    "XSEC_SOURCE_TEXT",
    "FileNormalisation",
    "XsecSource",
    "check_cross_section",
    "normalisation_summary",
    "root_table",
    "shard_normalisation",
    "shard_remake",
    "shard_table",
]

logger = logging.getLogger(__name__)

_NO_MANIFEST_REMAKE = "vbsad preprocess <its LHE file> --output <its directory>"
"""How a shard without a manifest is made again (its input is not recorded anywhere)."""

XsecSource = Literal["config", "mg_banner", "init", "root_nums"]

MEAN_CHECK_SIGMAS = 3.0
"""Disagreements beyond this many standard deviations are reported."""

ROUNDING_REL_TOL = 1e-5
"""Relative tolerance for values printed with a few significant digits (and float32 in ROOT)."""

_ROOT_SUM_REL_TOL = 1e-4  # float32 sums of many weights


@dataclass(frozen=True)
class FileNormalisation:
    """How to normalise the events of one input file.

    Attributes:
        path: the input file, resolved.
        sha256: hex SHA-256 of the original input (for a Parquet shard: of the LHE file it was
            made from, so an event has the same identity either way; for ROOT: of the file).
        xsec_pb: the cross section used, pb.
        xsec_error_pb: its stated error, pb (None: the source states none).
        xsec_source: where `xsec_pb` comes from (precedence in the module docstring).
        sum_weights: nominal weight `w` summed over ALL generated events of the file (before
            any selection, including events that are not rows), pb for MadGraph.
        sum_weights_by_id: each named weight summed over all events (LHE); {} for ROOT.
        n_events: events in the file (LHE: all events read; ROOT: entries of the tree).
        warnings: disagreements found by the cross-checks, and reading oddities.
    """

    path: Path
    sha256: str
    xsec_pb: float
    xsec_error_pb: float | None
    xsec_source: XsecSource
    sum_weights: float
    sum_weights_by_id: dict[str, float] = field(default_factory=dict)
    n_events: int = 0
    warnings: tuple[str, ...] = ()


# --- cross sections ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _WeightStats:
    """Nominal weights of a file: sum over all events, spread over the rows."""

    n_events: int
    sum_w: float
    std_w: float


def _warn(warnings: list[str], message: str) -> None:
    logger.warning("%s", message)
    warnings.append(message)


def _weights_check(
    path: Path,
    *,
    xsec: float,
    error: float | None,
    source: str,
    stats: _WeightStats,
    warnings: list[str],
) -> None:
    """Compare the cross section with the mean or the sum of the weights (the closer one)."""
    n = stats.n_events
    if n == 0:
        return
    mean = stats.sum_w / n
    candidates = [
        ("mean event weight", mean, stats.std_w / math.sqrt(n)),
        ("sum of event weights", stats.sum_w, stats.std_w * math.sqrt(n)),
    ]
    label, estimate, mc_error = min(candidates, key=lambda c: abs(c[1] - xsec))
    stated = error or 0.0
    sigma = math.hypot(stated, mc_error)
    difference = abs(estimate - xsec)
    tolerance = MEAN_CHECK_SIGMAS * sigma + ROUNDING_REL_TOL * abs(xsec)
    if difference <= tolerance:
        return
    pulls = f"{difference / sigma:.1f} sigma" if sigma > 0 else "all weights equal"
    _warn(
        warnings,
        f"{path}: cross section {xsec:.6g} pb ({source}) disagrees with the {label} "
        f"{estimate:.6g} pb of {n} events: difference {difference:.3g} pb ({pulls}; allowed "
        f"{MEAN_CHECK_SIGMAS:g} sigma with stated error {stated:.3g} pb and MC error "
        f"{mc_error:.3g} pb). Check the sample's normalisation before trusting its yields.",
    )


def check_cross_section(
    path: Path,
    info: LheInfo,
    stats: _WeightStats,
    *,
    xsec_config: float | None = None,
) -> tuple[float, float | None, XsecSource, list[str]]:
    """Choose the cross section of an LHE file by precedence and cross-check it.

    Returns:
        (xsec_pb, xsec_error_pb, source, warnings); the warnings are also logged.

    Raises:
        ValueError: no cross section at all (no override, no banner, no `<init>` process).
    """
    warnings: list[str] = []
    banner = info.mg_generation_info
    banner_xsec = None if banner is None else float(banner["integrated_weight_pb"])
    init_xsec = info.xsec_pb if info.processes else None
    init_error = info.xsec_error_pb if info.processes else None

    if banner_xsec is not None and init_xsec is not None and init_error is not None:
        difference = abs(init_xsec - banner_xsec)
        tolerance = MEAN_CHECK_SIGMAS * init_error + ROUNDING_REL_TOL * abs(banner_xsec)
        if difference > tolerance:
            ratio = f"{banner_xsec / init_xsec:.3g}" if init_xsec else "inf"
            _warn(
                warnings,
                f"{path}: the <init> block's XSECUP sum {init_xsec:.6g} pb (+- {init_error:.2g}) "
                f"disagrees with the MadGraph banner's integrated weight {banner_xsec:.6g} pb "
                f"(ratio banner/XSECUP = {ratio}); the banner's value takes precedence over "
                "XSECUP (normalising by XSECUP would scale the yields by the inverse ratio)",
            )

    xsec: float
    error: float | None
    source: XsecSource
    if xsec_config is not None:
        xsec, error, source = float(xsec_config), None, "config"
    elif banner_xsec is not None:
        xsec, error, source = banner_xsec, None, "mg_banner"
    elif init_xsec is not None:
        xsec, error, source = init_xsec, init_error, "init"
    else:
        raise ValueError(
            f"{path}: no cross section: no MadGraph banner, no process in <init>; set xsec_pb "
            "for this sample in the config"
        )
    if not math.isfinite(xsec) or xsec == 0.0:
        raise ValueError(f"{path}: the cross section ({source}) is {xsec} pb")
    _weights_check(
        path,
        xsec=xsec,
        error=error,
        source=f"from {XSEC_SOURCE_TEXT[source]}",
        stats=stats,
        warnings=warnings,
    )
    return xsec, error, source, warnings


XSEC_SOURCE_TEXT: dict[str, str] = {
    "config": "the config's xsec_pb",
    "mg_banner": "the MadGraph banner",
    "init": "the <init> XSECUP sum",
    "root_nums": "the ntuple's _nums histogram",
}
"""Where a cross section came from (`FileNormalisation.xsec_source`), in words."""


# --- Parquet shards ----------------------------------------------------------------------------


def _shard_metadata(shard: Path) -> tuple[LheInfo, str]:
    """(LheInfo, input sha256) of a shard, from its manifest or else its Parquet footer."""
    manifest = read_manifest(shard_manifest_path(shard))
    if manifest is not None:
        try:
            recorded_size = int(manifest["shard"]["size_bytes"])
            info = LheInfo.from_dict(manifest["lhe_info"])
            sha = str(manifest["input"]["sha256"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{shard}: its manifest {shard_manifest_path(shard).name} is incomplete ({exc})"
            ) from exc
        remake = command(
            "preprocess", manifest["input"].get("given_path", "INPUT"), "--output", shard.parent
        )
        if shard.stat().st_size != recorded_size:
            raise StaleInputError(
                f"{shard}: size differs from its manifest {shard_manifest_path(shard).name}: "
                f"the shard changed after it was written; re-run `{remake}`",
                path=shard,
                remake=remake,
            )
        entries = manifest.get("outputs") or [manifest["shard"]]
        record = FileRecord.from_dict(entries[0])
        if fingerprint(shard, known=record).sha256 != record.sha256:
            raise StaleInputError(
                f"{shard}: SHA-256 differs from its manifest {shard_manifest_path(shard).name}: "
                f"the shard changed after it was written; re-run `{remake}`",
                path=shard,
                remake=remake,
            )
        return info, sha
    with reading(shard, what="Parquet shard", remake=_NO_MANIFEST_REMAKE):
        footer = pq.read_metadata(shard).metadata or {}
    info_json = footer.get(b"vbsad_batch.lhe_info")
    sha_bytes = footer.get(b"vbsad_batch.input_sha256")
    if info_json is None or sha_bytes is None:
        raise ValueError(
            f"{shard}: neither a manifest ({shard_manifest_path(shard).name}) nor vbsad_batch "
            "metadata in the Parquet footer: the sum of weights over all generated events is "
            "unknown; make shards with `vbsad preprocess`"
        )
    return LheInfo.from_json(info_json), sha_bytes.decode()


def _lhe_stats(frame: pl.LazyFrame, info: LheInfo) -> _WeightStats:
    std = frame.select(pl.col("w").std()).collect().item()
    return _WeightStats(
        n_events=info.n_events,
        sum_w=float(info.sum_weights.get("w", 0.0)),
        std_w=0.0 if std is None else float(std),
    )


def _check_weight_ids(path: Path, info: LheInfo, weight_ids: Sequence[str]) -> None:
    available = info.weight_ids
    for wid in weight_ids:
        if wid not in available:
            close = difflib.get_close_matches(wid, available, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            listed = ", ".join(available[:20]) + (" ..." if len(available) > 20 else "")
            raise ValueError(
                f"{path}: no weight with id {wid!r}{hint}; the file has: {listed or 'none'}"
            )
        missing = info.missing_weights.get(wid, 0)
        if missing:
            raise ValueError(f"{path}: weight {wid!r} is missing in {missing} event(s)")


def shard_table(
    shard: Path,
    *,
    source_path: Path,
    xsec_pb: float | None,
    weight_ids: Sequence[str],
) -> tuple[pl.LazyFrame, FileNormalisation]:
    info, sha = _shard_metadata(shard)
    _check_weight_ids(source_path, info, weight_ids)
    frame = pl.scan_parquet(shard)
    if not shard_manifest_path(shard).is_file():
        # No manifest, so no checksum vouches for the rows: read them once here, where the
        # file can be named, rather than fail in a later collect over many files; with
        # pyarrow, which reports a damaged file as an error (polars' reader may panic).
        with reading(shard, what="Parquet shard", remake=_NO_MANIFEST_REMAKE):
            frame = _from_arrow(pq.read_table(shard)).lazy()
    xsec, error, source, warnings = check_cross_section(
        source_path, info, _lhe_stats(frame, info), xsec_config=xsec_pb
    )
    frame = frame.with_columns(pl.lit(sha, dtype=pl.String).alias("input_sha256"))
    norm = FileNormalisation(
        path=source_path,
        sha256=sha,
        xsec_pb=xsec,
        xsec_error_pb=error,
        xsec_source=source,
        sum_weights=float(info.sum_weights.get("w", 0.0)),
        sum_weights_by_id={k: float(v) for k, v in info.sum_weights.items() if k != "w"},
        n_events=info.n_events,
        warnings=(*info.warnings, *warnings),
    )
    return frame, norm


def _from_arrow(table: Any) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)  # a Table gives a DataFrame
    return frame


def shard_remake(shard: Path) -> str:
    """The command that makes `shard` again: from its manifest's input, else a template."""
    manifest = read_manifest(shard_manifest_path(shard)) or {}
    recorded = manifest.get("input")
    given = recorded.get("given_path") if isinstance(recorded, dict) else None
    return command("preprocess", given, "--output", shard.parent) if given else _NO_MANIFEST_REMAKE


def shard_normalisation(shard: Path) -> FileNormalisation:
    """The normalisation of a Parquet shard of `vbsad preprocess` (no config override)."""
    shard = Path(shard).resolve()
    if not shard.is_file():
        raise FileNotFoundError(f"no such shard: {shard}")
    return shard_table(shard, source_path=shard, xsec_pb=None, weight_ids=())[1]


# --- ROOT ntuples ------------------------------------------------------------------------------


def root_table(
    path: Path, *, xsec_pb: float | None, weight_ids: Sequence[str]
) -> tuple[pl.LazyFrame, FileNormalisation]:
    events, nums_xsec, sumw, read_warnings = read_ntuple(path)
    for wid in weight_ids:
        if f"w_{wid}" not in events.columns:
            raise ValueError(f"{path}: no branch w_{wid} for weight id {wid!r}")
    warnings = list(read_warnings)
    xsec: float = nums_xsec if xsec_pb is None else float(xsec_pb)
    source: XsecSource = "root_nums" if xsec_pb is None else "config"
    n = events.height
    if n:
        row_sum = float(events["w"].sum())
        if abs(row_sum - sumw) <= _ROOT_SUM_REL_TOL * abs(sumw):
            std = events.select(pl.col("w").std()).item()
            stats = _WeightStats(n, sumw, 0.0 if std is None else float(std))
            _weights_check(
                path,
                xsec=xsec,
                error=None,
                source=f"from {XSEC_SOURCE_TEXT[source]}",
                stats=stats,
                warnings=warnings,
            )
    sha = sha256_file(path)
    frame = events.lazy().with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("event"),
        pl.lit(sha, dtype=pl.String).alias("input_sha256"),
    )
    order = ["event", *OBSERVABLE_COLUMNS]
    frame = frame.select(*order, pl.exclude(order))  # event first, as in the LHE tables
    norm = FileNormalisation(
        path=path,
        sha256=sha,
        xsec_pb=xsec,
        xsec_error_pb=None,
        xsec_source=source,
        sum_weights=sumw,
        sum_weights_by_id={},
        n_events=n,
        warnings=tuple(warnings),
    )
    return frame, norm


def normalisation_summary(norm: FileNormalisation) -> dict[str, Any]:
    """A JSON-able dict of a normalisation (for manifests and reports)."""
    return {
        "path": str(norm.path),
        "sha256": norm.sha256,
        "xsec_pb": norm.xsec_pb,
        "xsec_error_pb": norm.xsec_error_pb,
        "xsec_source": norm.xsec_source,
        "sum_weights": norm.sum_weights,
        "sum_weights_by_id": dict(norm.sum_weights_by_id),
        "n_events": norm.n_events,
        "warnings": list(norm.warnings),
    }
