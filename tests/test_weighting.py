"""EFT weighting: yields, the EFT combination, reweighting derivation, the deterministic split.

Expected numbers are computed by hand (small synthetic frames) or along an independent path
(pylhe and the demo's toy EFT response for the closure test; a pure-Python SplitMix64 for the
split hash).
"""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pylhe
import pytest

from vbsad_batch import read_lhe
from vbsad_batch.config import selection_expr
from vbsad_batch.demo.lhe_writer import toy_eft_lin, toy_eft_quad, write_demo_lhe
from vbsad_batch.demo.toy_events import SM_XSEC_PB
from vbsad_batch.ingest.normalisation import FileNormalisation
from vbsad_batch.weighting.split import split_hash_expr, split_labels
from vbsad_batch.weighting.yields import (
    combine,
    component_yields,
    derive_from_reweighting,
    event_yields,
    reweighting_exprs,
    yield_scale,
)

SHA_A = "a64ed4d026d3fd7761e6169a5e7fb6" + "0" * 34
SHA_B = "ffeeddccbbaa99887766554433221100" + "1" * 32


def _norm(xsec_pb: float, sumw: float, path: str = "synthetic.lhe") -> FileNormalisation:
    return FileNormalisation(
        path=Path(path),
        sha256=SHA_A,
        xsec_pb=xsec_pb,
        xsec_error_pb=None,
        xsec_source="config",
        sum_weights=sumw,
    )


# --- yields ------------------------------------------------------------------------------------


def _lin_frame() -> pl.LazyFrame:
    """Four LIN events, two with negative weights; the selection `mjj > 200` keeps 0, 1, 3."""
    return pl.LazyFrame(
        {
            "event": [0, 1, 2, 3],
            "mjj": [250.0, 900.0, 150.0, 201.0],
            "w": [1.0, -0.5, 2.0, -1.5],
            "input_sha256": [SHA_A] * 4,
        }
    )


def test_yields_hand_computed_with_negative_weights_and_selection() -> None:
    # xsec 0.2 pb, L = 100 fb^-1 -> 20000 events for the whole sample; sumw over ALL generated
    # events is 4 (more than the rows' 1.0), and the sample has 2 files: 0.2*1000*100/4/2 = 2500
    # events per unit weight.
    frame = event_yields(_lin_frame(), _norm(0.2, 4.0), luminosity_fb=100.0, n_files=2)
    yields = frame.collect()["yield"].to_list()
    assert yields == [2500.0, -1250.0, 5000.0, -3750.0]

    (stat,) = component_yields([frame], selection_expr("mjj > 200"))
    assert stat["n_mc"] == 4
    assert stat["n_mc_selected"] == 3
    assert stat["yield_total"] == 2500.0  # 2500 - 1250 + 5000 - 3750: signs kept
    assert stat["yield_selected"] == -2500.0  # 2500 - 1250 - 3750: negative total kept
    assert stat["yield_selected_mc_error"] == pytest.approx(
        math.sqrt(2500.0**2 + 1250.0**2 + 3750.0**2), rel=1e-15
    )
    assert stat["n_null"] == 0


def test_yield_scale_units_and_errors() -> None:
    # 1 pb at 1 fb^-1 is 1000 events.
    assert yield_scale(_norm(1.0, 1.0), 1.0, 1) == 1000.0
    with pytest.raises(ValueError, match=r"synthetic\.lhe"):
        yield_scale(_norm(1.0, 0.0), 1.0, 1)
    with pytest.raises(ValueError, match="luminosity"):
        yield_scale(_norm(1.0, 1.0), 0.0, 1)
    with pytest.raises(ValueError, match="n_files"):
        yield_scale(_norm(1.0, 1.0), 1.0, 0)


# --- combination -------------------------------------------------------------------------------


def test_combine_floats_with_mix() -> None:
    lin = {"cW": -2.0, "cHW": 3.0}
    quad = {"cW": 5.0, "cHW": 1.0}
    mix = {("cHW", "cW"): -4.0}
    c = {"cW": 0.5, "cHW": -2.0}
    # 10 + 0.5*(-2) + (-2)*3 + 0.25*5 + 4*1 + (0.5*(-2))*(-4)
    assert combine(10.0, lin, quad, mix, c) == 12.25
    # Only cW: the MIX term needs both coefficients.
    assert combine(10.0, lin, quad, mix, {"cW": 0.5}) == 10.0 - 1.0 + 1.25
    assert combine(10.0, lin, quad, mix, {}) == 10.0


def test_combine_per_event_expressions() -> None:
    frame = pl.DataFrame(
        {
            "sm": [1.0, 2.0],
            "lin_a": [-1.0, 0.5],
            "quad_a": [0.25, 1.0],
            "lin_b": [2.0, -2.0],
            "quad_b": [1.0, 0.0],
            "mix": [-0.5, 0.5],
        }
    )
    expr = combine(
        pl.col("sm"),
        {"a": pl.col("lin_a"), "b": pl.col("lin_b")},
        {"a": pl.col("quad_a"), "b": pl.col("quad_b")},
        {("a", "b"): pl.col("mix")},
        {"a": 2.0, "b": -1.0},
    )
    got = frame.select(expr.alias("bsm"))["bsm"].to_list()
    # event 0: 1 + 2*(-1) + 4*0.25 + (-1)*2 + 1*1 + (2*-1)*(-0.5) = 0.0
    # event 1: 2 + 2*0.5 + 4*1 + (-1)*(-2) + 0 + (-2)*0.5 = 8.0
    assert got == [0.0, 8.0]


def test_combine_errors_and_missing_mix_warning(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="cW: no QUAD"):
        combine(1.0, {"cW": 1.0}, {}, {}, {"cW": 1.0})
    with pytest.raises(ValueError, match="given twice"):
        combine(1.0, {}, {}, {("a", "b"): 1.0, ("b", "a"): 1.0}, {})
    with caplog.at_level(logging.WARNING, logger="vbsad_batch.weighting.yields"):
        assert combine(1.0, {"a": 1.0, "b": 1.0}, {"a": 0.0, "b": 0.0}, {}, {"a": 1, "b": 1}) == 3
    assert "no MIX component for a and b" in caplog.text


# --- reweighting -------------------------------------------------------------------------------


def test_reweighting_derivation_exact() -> None:
    # Dyadic numbers: every step of w(+-k) = SM +- k LIN + k^2 QUAD and back is exact.
    sm = [1.0, 0.5, 2.25, 0.125]
    lin = [-0.75, 0.25, 1.5, -2.0]
    quad = [0.5, 0.0, 0.125, 3.0]
    k = 0.5
    frame = pl.LazyFrame(
        {
            "event": [0, 1, 2, 3],
            "w": sm,
            "w_c0": sm,
            "w_plus": [s + k * li + k * k * q for s, li, q in zip(sm, lin, quad, strict=True)],
            "w_minus": [s - k * li + k * k * q for s, li, q in zip(sm, lin, quad, strict=True)],
        }
    )
    sm_f, lin_f, quad_f = derive_from_reweighting(frame, "c0", "plus", "minus", k)
    assert sm_f.collect()["w"].to_list() == sm
    assert lin_f.collect()["w"].to_list() == lin
    assert quad_f.collect()["w"].to_list() == quad
    assert lin_f.collect_schema().names() == ["event", "w"]  # w_<id> columns dropped
    with pytest.raises(ValueError, match="k must be a positive"):
        reweighting_exprs("c0", "plus", "minus", 0.0)


def _momenta(event: pylhe.LHEEvent) -> np.ndarray:
    """(10, 4) momenta (px, py, pz, E; GeV) of a demo event in file order, from pylhe."""
    return np.array([[p.px, p.py, p.pz, p.e] for p in event.particles])


def test_closure_reweighted_vs_separate_components(tmp_path: Path) -> None:
    """SM/LIN/QUAD derived from the reweighting weights equal the components given separately
    on the same events: built here from pylhe's particles and the demo's toy EFT response."""
    operators = ("cW", "cqq3")
    path = write_demo_lhe(tmp_path / "demo.lhe.gz", n_events=300, seed=11, operators=operators)

    # Independent path: pylhe -> momenta per event -> components w0, w0*lin(p), w0*quad(p).
    events = list(pylhe.LHEFile.fromfile(str(path)).events)
    w0 = np.array([ev.weights["sm"] for ev in events])
    momenta = np.stack([_momenta(ev) for ev in events])

    frame = pl.from_arrow(read_lhe(path).read_all())
    assert isinstance(frame, pl.DataFrame)
    assert frame["event"].to_list() == list(range(len(events)))  # every demo event is a row
    for op in operators:
        sm_f, lin_f, quad_f = derive_from_reweighting(
            frame.lazy(), "sm", f"{op}_p1", f"{op}_m1", 1.0
        )
        np.testing.assert_array_equal(sm_f.collect()["w"].to_numpy(), w0)
        # The file prints weights with 8 significant digits (%+.7e): LIN and QUAD carry that
        # rounding, at most half a unit of the 8th digit of each weight entering them.
        w_plus = np.array([ev.weights[f"{op}_p1"] for ev in events])
        w_minus = np.array([ev.weights[f"{op}_m1"] for ev in events])
        rounding = 0.5e-7 * (np.abs(w_plus) + np.abs(w_minus) + 2 * np.abs(w0))
        lin_diff = lin_f.collect()["w"].to_numpy() - w0 * toy_eft_lin(op, momenta)
        quad_diff = quad_f.collect()["w"].to_numpy() - w0 * toy_eft_quad(op, momenta)
        assert np.all(np.abs(lin_diff) <= rounding / 2)
        assert np.all(np.abs(quad_diff) <= rounding / 2)
        # And the yields: the same normalisation applies to every component.
        norm = _norm(SM_XSEC_PB, float(w0.sum()))
        (stat,) = component_yields(
            [event_yields(lin_f, norm, 350.0, 1)], selection_expr("mjj > 200")
        )
        scale = SM_XSEC_PB * 1000.0 * 350.0 / w0.sum()
        mjj = frame["mjj"].to_numpy()
        expected = scale * np.sum((w0 * toy_eft_lin(op, momenta))[mjj > 200])
        assert stat["yield_selected"] == pytest.approx(expected, rel=1e-6)


# --- split -------------------------------------------------------------------------------------

_MASK = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _reference_hash(sha: str, event: int, seed: int) -> int:
    key = int(sha[:16], 16)
    return _splitmix64(_splitmix64(_splitmix64(seed) ^ key) ^ event)


def _events(sha: str, n: int) -> pl.DataFrame:
    return pl.DataFrame({"event": np.arange(n, dtype=np.int64), "input_sha256": [sha] * n})


def test_split_hash_matches_the_documented_definition() -> None:
    frame = pl.concat([_events(SHA_A, 50), _events(SHA_B.upper(), 50)])
    for seed in (0, 7, 2**63 + 5):
        got = frame.select(split_hash_expr(seed).alias("h"))["h"].to_list()
        expected = [
            _reference_hash(sha.lower(), event, seed)
            for sha, event in zip(frame["input_sha256"], frame["event"], strict=True)
        ]
        assert got == expected
    with pytest.raises(ValueError, match="seed"):
        split_hash_expr(-1)


def _labels(frame: pl.DataFrame, seed: int = 3) -> dict[tuple[str, int], str]:
    out = split_labels(frame.lazy(), seed, (0.6, 0.2, 0.2)).collect()
    return {
        (sha, event): split
        for sha, event, split in zip(out["input_sha256"], out["event"], out["split"], strict=True)
    }


def test_split_stable_and_independent_of_file_order_row_order_and_chunks() -> None:
    a, b = _events(SHA_A, 3000), _events(SHA_B, 2000)
    reference = _labels(pl.concat([a, b]))
    assert _labels(pl.concat([a, b])) == reference  # same run twice
    assert _labels(pl.concat([b, a])) == reference  # file order
    shuffled = pl.concat([a, b]).sample(fraction=1.0, shuffle=True, seed=5)
    assert _labels(shuffled) == reference  # row order
    chunks: dict[tuple[str, int], str] = {}
    for rank in range(3):  # each "rank" labels its own subset
        chunks.update(_labels(pl.concat([a, b]).gather_every(3, offset=rank)))
    assert chunks == reference
    assert _labels(pl.concat([a, b]), seed=4) != reference  # the seed matters


def test_split_fractions_within_binomial_tolerance() -> None:
    n = 40000
    rng = random.Random(1)
    shas = ["".join(rng.choice("0123456789abcdef") for _ in range(64)) for _ in range(4)]
    frame = pl.concat([_events(sha, n // 4) for sha in shas])
    fractions = (0.6, 0.15, 0.25)
    out = split_labels(frame.lazy(), 0, fractions).collect()
    counts = out["split"].value_counts()
    got = dict(zip(counts["split"], counts["count"], strict=True))
    for name, p in zip(("train", "validation", "test"), fractions, strict=True):
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(got[name] - n * p) < 5 * sigma, (name, got)
    with pytest.raises(ValueError, match="add up to 1"):
        split_labels(frame.lazy(), 0, (0.5, 0.2, 0.2))


def test_split_labels_on_arrow_backed_frames() -> None:
    table = pa.table({"event": pa.array([0, 1, 2], pa.int64()), "input_sha256": [SHA_A] * 3})
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    out = split_labels(frame.lazy(), 0, (1.0, 0.0, 0.0)).collect()
    assert out["split"].to_list() == ["train"] * 3
