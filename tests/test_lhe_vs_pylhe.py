"""vbsad_batch's LHE ingest against an independent implementation (pylhe + numpy).

Every real file of shared/testdata/lhe and shared/testdata/ssww is read both ways and
compared: particles (exact), event count, weights per event and summed over all events,
observables (tolerance), accepted event indices, rejection counts and the init block.
"""

from __future__ import annotations

import functools
import gzip
import itertools
import json
import math
import re
from pathlib import Path

import lhe_reference as ref_mod
import numpy as np
import pyarrow as pa
import pytest
from conftest import ALL_FILES, LHE_DIR, N_LHE_FILES, N_SSWW_FILES, SSWW_DIR

import vbsad_batch

OBS_COLUMNS = ["event", *ref_mod.OBSERVABLE_NAMES, "w"]
PARTICLE_COLUMNS = [
    "event",
    *ref_mod.PARTICLE_INT_COLUMNS,
    *ref_mod.PARTICLE_FLOAT_COLUMNS,
]
RTOL = 1e-9
ATOL_ANGLE = 1e-9
MAX_REPORTED = 8

WHIZARD = "pylhe-testfile-whizard-3.1.4-eeWW.lhe"

# shared/testdata/ssww/README.md: 2000 events each; banner "Integrated weight (pb)".
SSWW_BANNER = {
    "ssww_SM.lhe.gz": (2000, 2.640e-3),
    "ssww_cW_LIN.lhe.gz": (2000, 1.184e-4),
    "ssww_cW_QUAD.lhe.gz": (2000, 1.542e-3),
}


# --------------------------------------------------------------------------------------
# Cached reads (each file is read once per session by each implementation)
# --------------------------------------------------------------------------------------


@functools.cache
def reference(path: Path) -> ref_mod.RefFile:
    return ref_mod.read_reference(path)


@functools.cache
def reference_observables(path: Path) -> ref_mod.RefObservables:
    return ref_mod.observables(reference(path))


@functools.cache
def our_particles(path: Path) -> pa.Table:
    return pa.table(vbsad_batch.read_lhe_particles(str(path)))


@functools.cache
def our_observables(path: Path) -> tuple[pa.Table, object]:
    stream = vbsad_batch.read_lhe(str(path))
    table = pa.table(stream)
    return table, stream.info()


@functools.cache
def our_info(path: Path):
    return vbsad_batch.lhe_info(str(path))


def decompressed_text(path: Path) -> str:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8", errors="replace")


def column_np(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


def describe_mismatches(
    name: str,
    events: np.ndarray,
    expected: np.ndarray,
    got: np.ndarray,
    bad: np.ndarray,
) -> str:
    idx = np.flatnonzero(bad)
    lines = [f"column {name!r}: {idx.size} of {bad.size} rows differ"]
    for i in idx[:MAX_REPORTED]:
        lines.append(f"  event {int(events[i])}: expected {expected[i]!r}, got {got[i]!r}")
    return "\n".join(lines)


def assert_exact(name: str, events: np.ndarray, expected, got) -> None:
    expected = np.asarray(expected)
    got = np.asarray(got)
    assert expected.shape == got.shape, f"{name}: shape {got.shape} != {expected.shape}"
    same = expected == got
    if expected.dtype.kind == "f" and got.dtype.kind == "f":
        same |= np.isnan(expected) & np.isnan(got)
    if not same.all():
        pytest.fail(describe_mismatches(name, events, expected, got, ~same))


def assert_close(name: str, events: np.ndarray, expected, got, *, atol: float) -> None:
    expected = np.asarray(expected, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    assert expected.shape == got.shape, f"{name}: shape {got.shape} != {expected.shape}"
    with np.errstate(invalid="ignore"):
        ok = np.isclose(got, expected, rtol=RTOL, atol=atol, equal_nan=True)
    # isclose(inf, inf) is True, isclose(inf, -inf) False: fine.
    if not ok.all():
        pytest.fail(describe_mismatches(name, events, expected, got, ~ok))


# --------------------------------------------------------------------------------------
# Inventory
# --------------------------------------------------------------------------------------


def test_all_real_files_present() -> None:
    lhe = [p for p in ALL_FILES if p.parent == LHE_DIR]
    ssww = [p for p in ALL_FILES if p.parent == SSWW_DIR]
    assert len(lhe) == N_LHE_FILES, sorted(p.name for p in lhe)
    assert len(ssww) == N_SSWW_FILES, sorted(p.name for p in ssww)


# --------------------------------------------------------------------------------------
# (i) particles and event count
# --------------------------------------------------------------------------------------


def test_particles_schema(real_file: Path) -> None:
    table = our_particles(real_file)
    assert table.column_names == PARTICLE_COLUMNS
    types = {f.name: f.type for f in table.schema}
    assert types["event"] == pa.int64()
    for name in ref_mod.PARTICLE_INT_COLUMNS:
        assert types[name] == pa.int32(), name
    for name in ref_mod.PARTICLE_FLOAT_COLUMNS:
        assert types[name] == pa.float64(), name


def test_particles_equal_pylhe(real_file: Path) -> None:
    ref = reference(real_file)
    expected = ref_mod.particle_columns(ref)
    table = our_particles(real_file)
    assert table.num_rows == expected["event"].size, (
        f"{real_file.name}: {table.num_rows} particles, pylhe has {expected['event'].size}"
    )
    events = expected["event"]
    assert_exact("event", events, expected["event"], column_np(table, "event"))
    for name in ref_mod.PARTICLE_INT_COLUMNS:
        assert table.column(name).null_count == 0, name
        assert_exact(name, events, expected[name], column_np(table, name))
    for name in ref_mod.PARTICLE_FLOAT_COLUMNS:
        assert table.column(name).null_count == 0, name
        got = column_np(table, name)
        # Both parse the same decimal text: bit-equal is expected (NaN == NaN).
        assert_exact(name, events, expected[name], got)
        np.testing.assert_allclose(got, expected[name], rtol=1e-12, equal_nan=True)


def test_event_count_equals_pylhe(real_file: Path) -> None:
    ref = reference(real_file)
    info = our_info(real_file)
    assert info.n_events == len(ref.events)
    # every pylhe event has particles, so each event index appears in the particle table
    events = np.unique(column_np(our_particles(real_file), "event"))
    np.testing.assert_array_equal(events, np.arange(len(ref.events)))
    # NUP agrees with the number of particle lines
    counts = np.bincount(column_np(our_particles(real_file), "event"), minlength=len(ref.events))
    np.testing.assert_array_equal(counts, [ev.nup for ev in ref.events])


# --------------------------------------------------------------------------------------
# (ii) weights
# --------------------------------------------------------------------------------------


def test_observables_schema(real_file: Path) -> None:
    table, _ = our_observables(real_file)
    names = table.column_names
    assert names[: len(OBS_COLUMNS)] == OBS_COLUMNS
    extra = names[len(OBS_COLUMNS) :]
    assert all(n.startswith("w_") for n in extra), extra
    assert len(set(names)) == len(names), "duplicate column names"
    types = {f.name: f.type for f in table.schema}
    assert types["event"] == pa.int64()
    for name in names[1:]:
        assert types[name] == pa.float64(), name
    for name in OBS_COLUMNS:
        assert table.column(name).null_count == 0, name


def test_initrwgt_weight_columns_in_document_order(real_file: Path) -> None:
    ref = reference(real_file)
    table, _ = our_observables(real_file)
    if not ref.initrwgt_ids:
        # Nothing declared: the only weight columns are LHEF 2.0 weights named in events.
        named = set(re.findall(r"<weight\s+name=[\"']([^\"']+)", decompressed_text(real_file)))
        assert {n[2:] for n in table.column_names if n.startswith("w_")} == named
        return
    ids = list(dict.fromkeys(ref.initrwgt_ids))
    wanted = {f"w_{i}" for i in ids}
    got = [n for n in table.column_names if n in wanted]
    assert got == [f"w_{i}" for i in ids]
    info = our_info(real_file)
    info_ids = [w["id"] for w in info.weights]
    assert [i for i in info_ids if i in set(ids)] == ids


def test_weights_per_row_equal_pylhe(real_file: Path) -> None:
    ref = reference(real_file)
    robs = reference_observables(real_file)
    table, _ = our_observables(real_file)
    assert table.num_rows == robs.columns["event"].size
    events = robs.columns["event"]
    np.testing.assert_array_equal(column_np(table, "event"), events)
    assert_exact("w", events, robs.columns["w"], column_np(table, "w"))

    ids = ref_mod.weight_ids(ref)
    missing = [i for i in ids if f"w_{i}" not in table.column_names]
    assert not missing, f"weight columns missing: {['w_' + i for i in missing]}"
    for wid in ids:
        col = table.column(f"w_{wid}")
        is_null = col.is_null().to_numpy(zero_copy_only=False)
        values = col.to_numpy()
        expected_present = np.array([wid in w for w in robs.weights], dtype=bool)
        expected_values = np.array([w.get(wid, np.nan) for w in robs.weights], dtype=np.float64)
        if not np.array_equal(~is_null, expected_present):
            pytest.fail(
                describe_mismatches(
                    f"w_{wid} (present?)",
                    events,
                    expected_present,
                    ~is_null,
                    (~is_null) != expected_present,
                )
            )
        assert_exact(
            f"w_{wid}",
            events[expected_present],
            expected_values[expected_present],
            values[expected_present],
        )


def _sum_tolerance(values: list[float]) -> float:
    return 1e-10 * math.fsum(abs(v) for v in values) + 1e-300


def test_weight_sums_over_all_events_equal_pylhe(real_file: Path) -> None:
    ref = reference(real_file)
    info = our_info(real_file)
    nominal = [ev.xwgtup for ev in ref.events]
    assert "w" in info.sum_weights
    assert abs(info.sum_weights["w"] - math.fsum(nominal)) <= _sum_tolerance(nominal), (
        f"sum_weights['w'] = {info.sum_weights['w']!r}, pylhe {math.fsum(nominal)!r}"
    )
    for wid in ref_mod.weight_ids(ref):
        values = [ev.weights.get(wid, 0.0) for ev in ref.events]
        assert wid in info.sum_weights, f"sum_weights lacks {wid!r}"
        got = info.sum_weights[wid]
        assert abs(got - math.fsum(values)) <= _sum_tolerance(values), (
            f"sum_weights[{wid!r}] = {got!r}, pylhe {math.fsum(values)!r}"
        )


def test_whizard_lhef2_named_weight() -> None:
    path = LHE_DIR / WHIZARD
    if not path.exists():
        pytest.skip(f"{path} missing")
    text = path.read_text()
    values = [
        float(v) for v in re.findall(r'<weight\s+name="sqme_prc"\s*>\s*([^<\s]+)\s*</weight>', text)
    ]
    assert len(values) == 10  # one per event
    info = our_info(path)
    assert "sqme_prc" in info.sum_weights
    assert info.sum_weights["sqme_prc"] == pytest.approx(math.fsum(values), rel=1e-12)
    assert "sqme_prc" in [w["id"] for w in info.weights]
    table, _ = our_observables(path)
    assert "w_sqme_prc" in table.column_names
    # No event of this file has two charged leptons (the W's are not decayed), so the
    # per-event value is checked in test_lhe_edge_cases (LHEF 2.0 event weights).
    assert table.num_rows == 0


# --------------------------------------------------------------------------------------
# (iii) observables
# --------------------------------------------------------------------------------------


def test_observables_equal_reference(real_file: Path) -> None:
    robs = reference_observables(real_file)
    table, _ = our_observables(real_file)
    events = robs.columns["event"]
    got_events = column_np(table, "event")
    if not np.array_equal(got_events, events):
        only_ours = sorted(set(got_events.tolist()) - set(events.tolist()))
        only_ref = sorted(set(events.tolist()) - set(got_events.tolist()))
        pytest.fail(
            f"accepted events differ: only ours {only_ours[:MAX_REPORTED]} "
            f"({len(only_ours)}), only reference {only_ref[:MAX_REPORTED]} "
            f"({len(only_ref)})"
        )
    failures = []
    for name in ref_mod.OBSERVABLE_NAMES:
        atol = ATOL_ANGLE if name in ref_mod.ANGLE_NAMES else 0.0
        try:
            assert_close(name, events, robs.columns[name], column_np(table, name), atol=atol)
        except pytest.fail.Exception as exc:
            failures.append(str(exc))
    if failures:
        pytest.fail("\n".join(failures))


def test_phi_range_and_deltaphi_fold(real_file: Path) -> None:
    table, _ = our_observables(real_file)
    for name in ("phij1", "phij2", "phil1", "phil2"):
        phi = column_np(table, name)
        assert np.all((phi > -math.pi) & (phi <= math.pi)), name
    dphi = column_np(table, "deltaphijj")
    assert np.all((dphi >= 0) & (dphi <= math.pi))


def test_rejection_counts_equal_reference(real_file: Path) -> None:
    robs = reference_observables(real_file)
    info = our_info(real_file)
    assert dict(info.rejected) == robs.rejected
    assert info.n_rows == robs.columns["event"].size
    assert info.n_rows + sum(info.rejected.values()) == info.n_events


def test_stream_info_equals_lhe_info(real_file: Path) -> None:
    _, stream_info = our_observables(real_file)
    info = our_info(real_file)
    assert stream_info.to_dict() == info.to_dict()


def test_batching_does_not_change_the_table() -> None:
    biggest = max(ALL_FILES, key=lambda p: len(reference(p).events), default=None)
    if biggest is None:
        pytest.skip("no test data")
    full, _ = our_observables(biggest)
    batches = list(vbsad_batch.read_lhe(str(biggest), batch_size=97))
    assert all(b.num_rows <= 97 for b in batches)
    assert pa.Table.from_batches(batches, schema=full.schema).equals(full)


def test_particle_batching_does_not_change_the_table() -> None:
    biggest = max(ALL_FILES, key=lambda p: len(reference(p).events), default=None)
    if biggest is None:
        pytest.skip("no test data")
    particles = our_particles(biggest)
    pbatches = list(vbsad_batch.read_lhe_particles(str(biggest), batch_size=1000))
    assert pa.Table.from_batches(pbatches, schema=particles.schema).equals(particles)
    # batch_size counts rows (particles); an event is never split across batches, so a
    # batch ends with the event that reaches batch_size.
    largest_event = max(len(e.particles) for e in reference(biggest).events)
    for batch in pbatches[:-1]:
        assert 1000 <= batch.num_rows < 1000 + largest_event
    events = [set(b.column("event").to_pylist()) for b in pbatches]
    for before, after in itertools.pairwise(events):
        assert not before & after, "an event was split across two batches"


# --------------------------------------------------------------------------------------
# (iv) lhe_info
# --------------------------------------------------------------------------------------


def test_info_init_block_equals_pylhe(real_file: Path) -> None:
    ref = reference(real_file)
    info = our_info(real_file)
    assert info.path == str(real_file)
    assert info.lhef_version == ref.version
    beams = info.beams
    for key in ("idbmup", "pdfgup", "pdfsup"):
        assert list(beams[key]) == ref.beams[key], key
    assert [float(e) for e in beams["ebmup"]] == ref.beams["ebmup"]
    assert beams["idwtup"] == ref.beams["idwtup"]
    assert beams["nprup"] == ref.beams["nprup"]
    assert len(info.processes) == len(ref.processes)
    for got, exp in zip(info.processes, ref.processes, strict=True):
        assert got["xsecup"] == exp["xsecup"]
        assert got["xerrup"] == exp["xerrup"]
        assert got["xmaxup"] == exp["xmaxup"]
        assert got["lprup"] == exp["lprup"]
    assert info.n_skipped == 0
    assert list(info.skipped) == []
    # generators pylhe finds inside <init> are reported (version at least)
    got_versions = [g["version"] for g in info.generators]
    for g in ref.generators:
        assert g["version"] in got_versions, (g, info.generators)
    json.dumps(info.to_dict())  # JSON-able


_MG_INFO = re.compile(
    r"<MGGenerationInfo>\s*#\s*Number of Events\s*:\s*(\d+)\s*"
    r"#\s*Integrated weight \(pb\)\s*:\s*(\S+)",
)


def test_mg_generation_info_equals_banner(real_file: Path) -> None:
    info = our_info(real_file)
    match = _MG_INFO.search(decompressed_text(real_file))
    if match is None:
        assert info.mg_generation_info is None
        return
    assert info.mg_generation_info is not None
    assert info.mg_generation_info["n_events"] == int(match.group(1))
    assert info.mg_generation_info["integrated_weight_pb"] == float(match.group(2))


def test_ssww_generation_info_as_documented(ssww_file: Path) -> None:
    n_events, xs = SSWW_BANNER[ssww_file.name]
    info = our_info(ssww_file)
    assert info.n_events == n_events
    assert info.n_rows == n_events  # every SSWW event has 2 leptons and 2 jets
    mg = info.mg_generation_info
    assert mg is not None
    assert mg["n_events"] == n_events
    assert mg["integrated_weight_pb"] == pytest.approx(xs, rel=5e-4)
