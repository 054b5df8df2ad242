"""Tests of the embedded toy demo data writer (vbsad_batch.demo.lhe_writer)."""

from __future__ import annotations

import gzip
import math
import multiprocessing
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pylhe
import pytest

import vbsad_batch.demo.lhe_writer as demo
from vbsad_batch.demo.lhe_writer import (
    DEFAULT_OPERATORS,
    demo_weight_ids,
    generate_demo,
    toy_eft_ratio,
    write_demo_lhe,
)

N_EVENTS = 400
SEED = 7
CHARGED_LEPTONS = {11, 13, 15}


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("demo")
    return {
        "gz": write_demo_lhe(d / "a.lhe.gz", n_events=N_EVENTS, seed=SEED),
        "plain": write_demo_lhe(d / "a.lhe", n_events=N_EVENTS, seed=SEED),
    }


def _read(path: Path) -> tuple[pylhe.LHEFile, list[pylhe.LHEEvent]]:
    lhef = pylhe.LHEFile.fromfile(str(path))
    events = list(lhef.events)
    return lhef, events


def _momenta(event: pylhe.LHEEvent) -> tuple[np.ndarray, np.ndarray]:
    p = np.array([[q.px, q.py, q.pz, q.e] for q in event.particles])
    status = np.array([int(q.status) for q in event.particles])
    return p, status


def _mass(p: np.ndarray) -> float:
    return math.sqrt(max(p[3] ** 2 - p[0] ** 2 - p[1] ** 2 - p[2] ** 2, 0.0))


def _pt(v: np.ndarray) -> np.ndarray:
    return np.asarray(np.hypot(v[:, 0], v[:, 1]))


def _eta(v: np.ndarray) -> np.ndarray:
    return np.asarray(np.arcsinh(v[:, 2] / _pt(v)))


def _initrwgt(lhef: pylhe.LHEFile) -> pylhe.LHEInitRWGT:
    assert lhef.header is not None
    return lhef.header.initrwgt


@pytest.mark.parametrize("kind", ["gz", "plain"])
def test_pylhe_reads_every_event(demo_files: dict[str, Path], kind: str) -> None:
    lhef, events = _read(demo_files[kind])
    assert len(events) == N_EVENTS
    assert lhef.init.initInfo.beamA == 2212
    assert lhef.init.initInfo.beamB == 2212
    assert lhef.init.initInfo.energyA == pytest.approx(6500.0)
    assert lhef.init.initInfo.PDFsetA == 247000
    assert lhef.init.initInfo.weightingStrategy == -4
    assert [g.name for g in lhef.init.generators] == ["MadGraph5_aMC@NLO"]
    assert len(lhef.init.procInfo) == 1


def test_gzip_and_plain_hold_the_same_text(demo_files: dict[str, Path]) -> None:
    assert demo_files["gz"].read_bytes()[:2] == b"\x1f\x8b"
    assert demo_files["plain"].read_bytes()[:2] != b"\x1f\x8b"
    assert gzip.decompress(demo_files["gz"].read_bytes()) == demo_files["plain"].read_bytes()


def test_event_physics_content(demo_files: dict[str, Path]) -> None:
    _, events = _read(demo_files["gz"])
    for event in events:
        p, status = _momenta(event)
        pids = [int(q.id) for q in event.particles]
        assert event.eventinfo.nparticles == len(pids) == 10
        incoming = p[status == -1]
        outgoing = p[status == 1]
        assert len(incoming) == 2
        scale = incoming[:, 3].sum()
        np.testing.assert_allclose(outgoing.sum(axis=0), incoming.sum(axis=0), atol=1e-6 * scale)
        # incoming partons along the beams, inside the 6.5 TeV protons
        assert np.all(incoming[:, :2] == 0.0)
        assert incoming[0, 2] > 0 > incoming[1, 2]
        assert np.all(incoming[:, 3] < 6500.0)

        final = [(pid, i) for i, pid in enumerate(pids) if status[i] == 1]
        leptons = [pid for pid, _ in final if abs(pid) in CHARGED_LEPTONS]
        quarks = [pid for pid, _ in final if 1 <= abs(pid) <= 6]
        neutrinos = [pid for pid, _ in final if abs(pid) in {12, 14, 16}]
        assert len(leptons) == 2
        assert leptons[0] * leptons[1] > 0
        assert len(quarks) == 2
        assert len(neutrinos) == 2

        # W+ resonances: status 2, on-shell mass column, decay products add up to them
        ws = [i for i, pid in enumerate(pids) if pid == 24]
        assert len(ws) == 2
        assert all(status[i] == 2 for i in ws)
        for i in ws:
            q = event.particles[i]
            assert _mass(p[i]) == pytest.approx(q.m, rel=1e-6)
            assert 80.387 - 15 * 2.085 < q.m < 80.387 + 15 * 2.085
            children = [k for k, c in enumerate(event.particles) if int(c.mother1) == i + 1]
            assert len(children) == 2
            assert all(int(event.particles[k].mother2) == i + 1 for k in children)
            child_pids = sorted(pids[k] for k in children)
            assert child_pids in ([-11, 12], [-13, 14])
            np.testing.assert_allclose(p[children].sum(axis=0), p[i], atol=1e-6 * p[i, 3])
        for pid, i in final:
            if abs(pid) in CHARGED_LEPTONS | {12, 14, 16}:
                assert event.particles[i].m == 0.0
                assert _mass(p[i]) < 1e-3 * p[i, 3]

        # colour: each outgoing quark carries the tag of one incoming parton, a quark a colour
        # and an antiquark an anticolour
        tags_in = {(int(event.particles[i].color1), int(event.particles[i].color2)) for i in (0, 1)}
        for pid, i in final:
            c = (int(event.particles[i].color1), int(event.particles[i].color2))
            if 1 <= abs(pid) <= 6:
                assert c in tags_in
                assert (c[0] > 0) == (pid > 0)
                assert (c[1] > 0) == (pid < 0)
            else:
                assert c == (0, 0)


def test_generator_cuts_hold(demo_files: dict[str, Path]) -> None:
    _, events = _read(demo_files["plain"])
    for event in events:
        p, status = _momenta(event)
        pids = np.array([int(q.id) for q in event.particles])
        out = status == 1
        jets = p[out & (np.abs(pids) <= 6)]
        leps = p[out & np.isin(np.abs(pids), list(CHARGED_LEPTONS))]
        assert np.all(_pt(jets) > 20.0)
        assert np.all(np.abs(_eta(jets)) < 5.0)
        assert np.all(_pt(leps) > 10.0)
        assert np.all(np.abs(_eta(leps)) < 2.5)
        assert _mass(jets.sum(axis=0)) > 200.0


def test_weights_match_initrwgt(demo_files: dict[str, Path]) -> None:
    lhef, events = _read(demo_files["gz"])
    declared = _initrwgt(lhef).list_weights_ids()
    assert declared == demo_weight_ids(DEFAULT_OPERATORS)
    assert len(declared) == 1 + 2 * len(DEFAULT_OPERATORS)
    assert declared[0] == "sm"
    groups = [e for e in _initrwgt(lhef).entries if hasattr(e, "weights")]
    assert [g.attributes.get("name") for g in groups] == ["mg_reweighting"]
    for event in events:
        assert list(event.weights) == declared


def test_weight_values_follow_toy_response(demo_files: dict[str, Path]) -> None:
    lhef, events = _read(demo_files["plain"])
    xsec = lhef.init.procInfo[0].xSection
    for event in events:
        w = event.weights
        assert event.eventinfo.weight == pytest.approx(xsec, rel=1e-6)
        assert w["sm"] == pytest.approx(event.eventinfo.weight, rel=1e-7)
        p, _ = _momenta(event)
        for op in DEFAULT_OPERATORS:
            for suffix, c in (("m1", -1.0), ("p1", 1.0)):
                expected = float(toy_eft_ratio(op, c, p)[0]) * w["sm"]
                assert w[f"{op}_{suffix}"] == pytest.approx(expected, rel=1e-6)
                assert w[f"{op}_{suffix}"] >= 0.0


def test_weights_grow_with_energy(demo_files: dict[str, Path]) -> None:
    _, events = _read(demo_files["plain"])
    m_ww = []
    quad = []
    for event in events:
        p, _ = _momenta(event)
        m_ww.append(_mass(p[2] + p[3]))
        w = event.weights
        quad.append((w["cW_p1"] + w["cW_m1"] - 2 * w["sm"]) / 2 / w["sm"])
    order = np.argsort(m_ww)
    q = np.array(quad)[order]
    assert q[-len(q) // 10 :].mean() > 5 * q[: len(q) // 10].mean() > 0


def test_mg_generation_info_and_init(demo_files: dict[str, Path]) -> None:
    text = gzip.decompress(demo_files["gz"].read_bytes()).decode("ascii")
    m = re.search(
        r"<MGGenerationInfo>\n#  Number of Events        :       (\d+)\n"
        r"#  Integrated weight \(pb\)  :       (\S+)\n</MGGenerationInfo>",
        text,
    )
    assert m is not None
    assert int(m.group(1)) == N_EVENTS == text.count("<event>") == text.count("</event>")
    lhef, events = _read(demo_files["gz"])
    xsec = lhef.init.procInfo[0].xSection
    assert float(m.group(2)) == pytest.approx(xsec, rel=1e-6)
    mean_w = np.mean([e.eventinfo.weight for e in events])
    assert mean_w == pytest.approx(float(m.group(2)), rel=1e-6)
    assert text.startswith('<LesHouchesEvents version="3.0">\n<header>\n')
    assert text.endswith("</event>\n</LesHouchesEvents>\n")
    assert "<MGVersion>\n#3.5.7\n</MGVersion>" in text
    assert "<generator name='MadGraph5_aMC@NLO' version='3.5.7'>please cite 1405.0301 " in text


def test_column_layout_matches_real_madgraph(
    demo_files: dict[str, Path], shared_testdata_dir: Path
) -> None:
    real_file = shared_testdata_dir / "testdata" / "ssww" / "ssww_SM.lhe.gz"

    def layout(lines: list[str]) -> set[tuple[int, ...]]:
        # end column of every field except the sign-dependent last one (spin)
        return {tuple(m.end() for m in re.finditer(r"\S+", line))[:-1] for line in lines}

    def blocks(text: str) -> tuple[list[str], list[str]]:
        heads: list[str] = []
        parts: list[str] = []
        for ev in re.findall(r"<event>\n(.*?)</event>", text, flags=re.DOTALL)[:50]:
            lines = ev.splitlines()
            heads.append(lines[0])
            parts.extend(ln for ln in lines[1:] if not ln.startswith("<") and ln.strip())
        return heads, parts

    real_heads, real_parts = blocks(gzip.decompress(real_file.read_bytes()).decode())
    ours_heads, ours_parts = blocks(demo_files["plain"].read_text())
    assert layout(ours_parts) == layout(real_parts)
    assert layout(ours_heads) == layout(real_heads)
    wgt = re.compile(r"^<wgt id='[^']+'> [+-]\d\.\d{7}e[+-]\d\d </wgt>$")
    lines = demo_files["plain"].read_text().splitlines()
    assert all(wgt.match(ln) for ln in lines if ln.startswith("<wgt"))


def test_same_seed_identical_other_seed_different(tmp_path: Path) -> None:
    for name in ("x.lhe.gz", "x.lhe"):
        (tmp_path / "a").mkdir(exist_ok=True)
        (tmp_path / "b").mkdir(exist_ok=True)
        (tmp_path / "c").mkdir(exist_ok=True)
        a1 = write_demo_lhe(tmp_path / "a" / name, n_events=50, seed=3)
        a2 = write_demo_lhe(tmp_path / "b" / name, n_events=50, seed=3)
        b = write_demo_lhe(tmp_path / "c" / name, n_events=50, seed=4)
        assert a1.read_bytes() == a2.read_bytes()
        if name.endswith(".gz"):
            # reproducible gzip header: no mtime, no embedded (temporary) file name
            assert a1.read_bytes()[3:8] == b"\x00\x00\x00\x00\x00"
        assert a1.read_bytes() != b.read_bytes()


def test_gzip_flag_overrides_suffix(tmp_path: Path) -> None:
    p = write_demo_lhe(tmp_path / "forced.lhe", n_events=5, seed=1, gzip=True)
    assert p.read_bytes()[:2] == b"\x1f\x8b"
    _, events = _read(p)
    assert len(events) == 5
    q = write_demo_lhe(tmp_path / "plain.lhe.gz", n_events=5, seed=1, gzip=False)
    assert q.read_bytes().startswith(b"<LesHouchesEvents")


def test_custom_operators_and_extra_weights(tmp_path: Path) -> None:
    ops = ["cW", "cHbox"]
    p = write_demo_lhe(tmp_path / "x.lhe.gz", n_events=30, seed=2, operators=ops, extra_weights=85)
    lhef, events = _read(p)
    declared = _initrwgt(lhef).list_weights_ids()
    assert declared == demo_weight_ids(ops, extra_weights=85)
    assert len(declared) == 85 + 1 + 2 * len(ops) == 90
    assert declared[-5:] == ["sm", "cW_m1", "cW_p1", "cHbox_m1", "cHbox_p1"]
    names = [g.attributes.get("name") for g in _initrwgt(lhef).entries]
    assert names == [
        "Central scale variation",
        "NNPDF23_lo_as_0130_qed",
        "mg_reweighting",
    ]
    for event in events:
        assert list(event.weights) == declared
        w = np.array(list(event.weights.values()))
        assert np.all(np.isfinite(w))
        assert np.all(w > 0)
        # first PDF member (id 45) is the central set: equal to the nominal weight
        assert event.weights["45"] == pytest.approx(event.eventinfo.weight, rel=1e-7)
    # the kinematics do not depend on which weights are requested
    plain = write_demo_lhe(tmp_path / "y.lhe.gz", n_events=30, seed=2)
    _, events2 = _read(plain)
    for e1, e2 in zip(events, events2, strict=True):
        assert [q.px for q in e1.particles] == [q.px for q in e2.particles]


def test_many_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "_CHUNK_EVENTS", 64)
    p = write_demo_lhe(tmp_path / "x.lhe", n_events=150, seed=9)
    _, events = _read(p)
    assert len(events) == 150
    assert len({e.particles[0].pz for e in events}) == 150


def test_zero_events(tmp_path: Path) -> None:
    p = write_demo_lhe(tmp_path / "empty.lhe", n_events=0, seed=1)
    _, events = _read(p)
    assert events == []
    assert "#  Number of Events        :       0\n" in p.read_text()


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.lhe.gz"
    target.write_bytes(b"previous content")
    original = demo._iter_text

    def broken(*args: object, **kwargs: object) -> object:
        it = original(*args, **kwargs)  # type: ignore[arg-type]
        yield next(it)
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo, "_iter_text", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_demo_lhe(target, n_events=10, seed=1)
    assert target.read_bytes() == b"previous content"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["x.lhe.gz"]


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"n_events": -1, "seed": 1}, ValueError),
        ({"n_events": 5, "seed": -1}, ValueError),
        ({"n_events": 5, "seed": 1, "operators": ["cW", "cW"]}, ValueError),
        ({"n_events": 5, "seed": 1, "operators": ["c W"]}, ValueError),
        ({"n_events": 5, "seed": 1, "operators": "cW"}, TypeError),
        ({"n_events": 5, "seed": 1, "extra_weights": 10_000}, ValueError),
    ],
)
def test_invalid_arguments(tmp_path: Path, kwargs: dict[str, object], exc: type) -> None:
    with pytest.raises(exc):
        write_demo_lhe(tmp_path / "x.lhe", **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_generate_demo(tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir"
    paths = generate_demo(out, n_events=120, seed=1, eft_samples=False)
    assert paths == [out / "ssww_demo.lhe.gz"]
    _, events = _read(paths[0])
    assert len(events) == 120


_SCRIPT_WITHOUT_MAIN_GUARD = """
import sys
from pathlib import Path
from vbsad_batch.demo.lhe_writer import generate_demo
paths = generate_demo(Path(sys.argv[1]), n_events=400, eft_events=100, seed=4,
                      operators=("cW",), processes=2)
print("written", len(paths))
"""


def test_a_script_without_a_main_guard_still_gets_its_demo(tmp_path: Path) -> None:
    """Spawned workers run the calling script again and stop; the files are then written in
    the script's process, with a warning that says why, and they are the same files."""
    script = tmp_path / "make_demo.py"
    script.write_text(_SCRIPT_WITHOUT_MAIN_GUARD)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "guardless")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "written 3" in done.stdout
    assert "writing its files in this process" in done.stderr
    alone = generate_demo(
        tmp_path / "alone", n_events=400, eft_events=100, seed=4, operators=("cW",), processes=1
    )
    for path in alone:
        assert (tmp_path / "guardless" / path.name).read_bytes() == path.read_bytes()


def _demo_in_daemon(out: str) -> None:
    generate_demo(Path(out), n_events=400, eft_events=100, seed=4, operators=("cW",), processes=2)


def test_a_daemonic_process_writes_the_demo_itself(tmp_path: Path) -> None:
    """A daemonic process (a multiprocessing.Pool worker) may not start processes."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        pool.apply(_demo_in_daemon, (str(tmp_path / "daemon"),))
    assert sorted(p.name for p in (tmp_path / "daemon").iterdir()) == [
        "ssww_demo.lhe.gz",
        "ssww_demo_cW_LIN.lhe.gz",
        "ssww_demo_cW_QUAD.lhe.gz",
    ]


def test_generate_demo_in_worker_processes_writes_the_same_bytes(tmp_path: Path) -> None:
    """Two worker processes write the files of the demo set: each file's bytes are those one
    process writes, and progress comes in the order of the list."""

    def demo_set(
        out: Path, processes: int, progress: Callable[[Path, int, float], None] | None = None
    ) -> list[Path]:
        return generate_demo(
            out,
            n_events=3000,
            eft_events=500,
            seed=4,
            operators=("cW", "cHW"),
            processes=processes,
            progress=progress,
        )

    alone = demo_set(tmp_path / "one", 1)
    seen: list[tuple[str, int, int]] = []

    def progress(path: Path, events: int, seconds: float) -> None:
        assert seconds > 0
        seen.append((path.name, events, len(multiprocessing.active_children())))

    shared = demo_set(tmp_path / "two", 2, progress)
    assert [path.name for path in shared] == [path.name for path in alone]
    assert len(shared) == 5  # SM, and LIN and QUAD of each operator
    assert [(name, events) for name, events, _ in seen] == [
        (path.name, 3000 if i == 0 else 500) for i, path in enumerate(shared)
    ]
    assert seen[0][2] == 2  # written while both workers ran
    assert multiprocessing.active_children() == []  # and they are gone
    for mine, theirs in zip(alone, shared, strict=True):
        assert mine.read_bytes() == theirs.read_bytes(), mine.name
