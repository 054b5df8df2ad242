"""Benchmark: EFT yields for 7 operators, vbsad_batch.weighting.yields (polars, lazy, streaming)
versus
the same computation written the obvious way in pandas.

A seeded synthetic reweighted sample (numpy; no LHE parsing) is written once to a Parquet file:
the four observables of the VBS selection (GeV) and the weights at c = 0 and c = +-1 for each of
7 operators (pb). Each contender then, in a fresh subprocess, reads that file and computes for
SM and for LIN and QUAD of every operator (SM = w0, LIN = (w+ - w-)/2, QUAD = (w+ + w- - 2 w0)/2)
the expected yields at 350 fb^-1 before and after the selection. Printed: wall time of each
(one run, reading included, imports excluded), the ratio, and the peak resident memory (VmHWM
of /proc/self/status) of the polars process against twice the size of the columns it needs.

    python benchmarks/weighting.py                # 10 million events
    python benchmarks/weighting.py --events 200000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OPERATORS = ("cW", "cHW", "cHq1", "cqq1", "cqq11", "cqq3", "cqq31")
SELECTION_COLUMNS = ("ptj1", "ptj2", "deltaetajj", "mjj")
XSEC_PB = 2.64e-3
LUMI_FB = 350.0
SELECTION = "ptj1 > 30 and ptj2 > 30 and deltaetajj > 2 and mjj > 200"
FAKE_SHA256 = "0" * 64


def weight_columns() -> list[str]:
    return ["w_sm", *(f"w_{op}_{s}" for op in OPERATORS for s in ("p1", "m1"))]


def peak_rss_mib() -> float:
    """VmHWM of this process, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


# --- the three subprocess roles ---------------------------------------------------------------


def generate(path: Path, n_events: int, seed: int) -> None:
    import numpy as np  # noqa: PLC0415
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    chunk = 1_000_000
    sumw = 0.0
    writer: pq.ParquetWriter | None = None
    done = 0
    while done < n_events:
        n = min(chunk, n_events - done)
        cols: dict[str, Any] = {"event": np.arange(done, done + n, dtype=np.int64)}
        cols["ptj1"] = 20.0 + rng.gamma(2.0, 40.0, n)
        cols["ptj2"] = 20.0 + rng.gamma(2.0, 25.0, n)
        cols["deltaetajj"] = np.abs(rng.normal(3.5, 1.5, n))
        cols["mjj"] = 200.0 + rng.gamma(2.0, 400.0, n)
        x2 = (cols["mjj"] / 1000.0) ** 2
        w0 = XSEC_PB * (1.0 + 0.05 * rng.standard_normal(n))
        cols["w_sm"] = w0
        sumw += float(w0.sum())
        for i, op in enumerate(OPERATORS):
            a, b = 0.3 * (-1) ** i * (i + 1) / 7, 0.2 + 0.1 * i
            cols[f"w_{op}_p1"] = w0 * (1.0 + a * x2 + b * x2 * x2)
            cols[f"w_{op}_m1"] = w0 * (1.0 - a * x2 + b * x2 * x2)
        table = pa.table(cols)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="none")
        writer.write_table(table, row_group_size=chunk)
        done += n
    assert writer is not None
    writer.close()
    path.with_suffix(".json").write_text(json.dumps({"sum_weights": sumw, "n_events": n_events}))


def run_polars(path: Path) -> dict[str, Any]:
    import polars as pl  # noqa: PLC0415

    from vbsad_batch.config import selection_expr  # noqa: PLC0415
    from vbsad_batch.ingest.normalisation import FileNormalisation  # noqa: PLC0415
    from vbsad_batch.weighting.yields import (  # noqa: PLC0415
        component_yields,
        derive_from_reweighting,
        event_yields,
    )

    start = time.perf_counter()
    sumw = json.loads(path.with_suffix(".json").read_text())["sum_weights"]
    norm = FileNormalisation(path, FAKE_SHA256, XSEC_PB, None, "config", sumw)
    frame = pl.scan_parquet(path).with_columns(w=pl.col("w_sm"))
    frames: dict[str, pl.LazyFrame] = {}
    for op in OPERATORS:
        sm, lin, quad = derive_from_reweighting(frame, "sm", f"{op}_p1", f"{op}_m1", 1.0)
        frames.setdefault("sm", event_yields(sm, norm, LUMI_FB, 1))
        frames[f"lin_{op}"] = event_yields(lin, norm, LUMI_FB, 1)
        frames[f"quad_{op}"] = event_yields(quad, norm, LUMI_FB, 1)
    stats = component_yields(list(frames.values()), selection_expr(SELECTION))
    result = {
        name: [s["yield_total"], s["yield_selected"]] for name, s in zip(frames, stats, strict=True)
    }
    return {"seconds": time.perf_counter() - start, "yields": result, "peak_mib": peak_rss_mib()}


def run_pandas(path: Path) -> dict[str, Any]:
    import pandas as pd  # noqa: PLC0415

    start = time.perf_counter()
    sumw = json.loads(path.with_suffix(".json").read_text())["sum_weights"]
    df = pd.read_parquet(path)
    scale = XSEC_PB * 1000.0 * LUMI_FB / sumw
    mask = (df["ptj1"] > 30) & (df["ptj2"] > 30) & (df["deltaetajj"] > 2) & (df["mjj"] > 200)
    df["yield_sm"] = df["w_sm"] * scale
    for op in OPERATORS:
        df[f"yield_lin_{op}"] = (df[f"w_{op}_p1"] - df[f"w_{op}_m1"]) / 2.0 * scale
        df[f"yield_quad_{op}"] = (
            (df[f"w_{op}_p1"] + df[f"w_{op}_m1"] - 2.0 * df["w_sm"]) / 2.0 * scale
        )
    names = ["sm", *(f"{c}_{op}" for op in OPERATORS for c in ("lin", "quad"))]
    result = {
        name: [float(df[f"yield_{name}"].sum()), float(df.loc[mask, f"yield_{name}"].sum())]
        for name in names
    }
    return {"seconds": time.perf_counter() - start, "yields": result, "peak_mib": peak_rss_mib()}


def run_baseline() -> dict[str, Any]:
    import polars  # noqa: F401, PLC0415

    import vbsad_batch.weighting.yields  # noqa: F401, PLC0415

    return {"peak_mib": peak_rss_mib()}


# --- driver ----------------------------------------------------------------------------------


def _subprocess(role: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--role", role, *args],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="default: %(default)s")
    parser.add_argument("--seed", type=int, default=1, help="default: %(default)s")
    parser.add_argument("--role", choices=("generate", "polars", "pandas", "baseline"))
    parser.add_argument("--path", type=Path)
    args = parser.parse_args()

    if args.role == "generate":
        generate(args.path, args.events, args.seed)
        print(json.dumps({}))
        return 0
    if args.role in ("polars", "pandas", "baseline"):
        runner = {"polars": run_polars, "pandas": run_pandas}.get(args.role)
        result = runner(args.path) if runner else run_baseline()
        print(json.dumps(result))
        return 0

    with tempfile.TemporaryDirectory(prefix="vbsad-bench-") as tmp:
        path = Path(tmp) / "events.parquet"
        t0 = time.perf_counter()
        _subprocess("generate", "--path", str(path), "--events", str(args.events))
        print(
            f"synthetic sample: {args.events} events, {len(OPERATORS)} operators, "
            f"{path.stat().st_size / 2**20:.0f} MiB Parquet "
            f"(made in {time.perf_counter() - t0:.1f} s)"
        )
        polars_result = _subprocess("polars", "--path", str(path))
        pandas_result = _subprocess("pandas", "--path", str(path))
        baseline = _subprocess("baseline")

    for name, (pt, ps) in polars_result["yields"].items():
        qt, qs = pandas_result["yields"][name]
        if abs(pt - qt) > 1e-9 * max(abs(qt), 1.0) or abs(ps - qs) > 1e-9 * max(abs(qs), 1.0):
            print(f"MISMATCH {name}: polars {pt}, {ps}; pandas {qt}, {qs}")
            return 1
    n_needed = len(SELECTION_COLUMNS) + len(weight_columns())
    needed_mib = n_needed * 8 * args.events / 2**20
    print(
        f"yields agree (SM, LIN and QUAD of {len(OPERATORS)} operators, before/after the "
        f"selection; SM after selection {polars_result['yields']['sm'][1]:.6g} events at "
        f"{LUMI_FB:g} fb^-1)"
    )
    print(f"polars (vbsad_batch.weighting.yields): {polars_result['seconds']:.2f} s")
    print(f"pandas (obvious):               {pandas_result['seconds']:.2f} s")
    ratio = pandas_result["seconds"] / polars_result["seconds"]
    print(f"ratio pandas / polars:          {ratio:.2f}x")
    print(
        f"peak memory (VmHWM): polars {polars_result['peak_mib']:.0f} MiB, pandas "
        f"{pandas_result['peak_mib']:.0f} MiB; interpreter + imports alone "
        f"{baseline['peak_mib']:.0f} MiB"
    )
    print(
        f"columns needed: {n_needed} x float64 x {args.events} = {needed_mib:.0f} MiB; "
        f"2x = {2 * needed_mib:.0f} MiB -> polars "
        f"{'within' if polars_result['peak_mib'] <= 2 * needed_mib else 'ABOVE'} 2x; "
        f"above the imports: {polars_result['peak_mib'] - baseline['peak_mib']:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
