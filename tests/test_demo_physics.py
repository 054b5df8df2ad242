"""The physics content of the embedded demo (vbsad_batch.demo.lhe_writer,
vbsad_batch.demo.eft_response).

The demo is a toy, but a faithful one: its separately generated LIN and QUAD samples must be
the distributions that the SM sample's reweighting weights describe, LIN weights must be
signed, and each operator must have its own shape. Checked here on files read back by pylhe,
with numpy histograms and an independent Lorentz boost.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pylhe
import pytest
from scipy import stats

from vbsad_batch.demo.demo_config import DemoSettings, demo_config_toml
from vbsad_batch.demo.eft_response import (
    TOY_EFT_RESPONSE,
    lepton_decay_cosines,
    sm_suppression,
    toy_eft_lin,
    toy_eft_quad,
    toy_lin_bound,
    toy_quad_bound,
)
from vbsad_batch.demo.lhe_writer import (
    DEFAULT_OPERATORS,
    generate_demo,
    sample_name,
    write_demo_lhe,
)
from vbsad_batch.demo.toy_events import component_cross_section

N_SM = 12_000
N_EFT = 3_000
SEED = 4


def _read(path: Path) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(XSECUP, XERRUP, weights (n,), momenta (n, 10, 4)) of a demo file, through pylhe."""
    lhef = pylhe.LHEFile.fromfile(str(path))
    events = list(lhef.events)
    proc = lhef.init.procInfo[0]
    w = np.array([e.eventinfo.weight for e in events])
    p = np.array([[[q.px, q.py, q.pz, q.e] for q in e.particles] for e in events])
    return float(proc.xSection), float(proc.error), w, p


def _pair_mass(p: np.ndarray, i: int, j: int) -> np.ndarray:
    s = p[:, i] + p[:, j]
    return np.sqrt(np.maximum(s[:, 3] ** 2 - np.sum(s[:, :3] ** 2, axis=1), 0.0))


@pytest.fixture(scope="module")
def samples(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[float, float, np.ndarray, np.ndarray]]:
    d = tmp_path_factory.mktemp("demo_physics")
    out = {"sm": _read(write_demo_lhe(d / "sm.lhe.gz", n_events=N_SM, seed=SEED))}
    for comp, op in (("quad", "cW"), ("lin", "cqq3"), ("lin", "cqq11"), ("quad", "cqq1")):
        path = write_demo_lhe(
            d / f"{op}_{comp}.lhe.gz", n_events=N_EFT, seed=SEED, component=comp, operator=op
        )
        out[f"{op}_{comp}"] = _read(path)
    return out


def _boost_to_rest_frame(parent: np.ndarray, v: np.ndarray) -> np.ndarray:
    """v boosted into the rest frame of parent, with an explicit 4x4 Lorentz matrix per event."""
    out = np.empty_like(v)
    for k in range(parent.shape[0]):
        beta = parent[k, :3] / parent[k, 3]
        b2 = float(beta @ beta)
        gamma = 1.0 / math.sqrt(1.0 - b2)
        lam = np.eye(4)
        lam[0, 0] = gamma
        lam[0, 1:] = lam[1:, 0] = -gamma * beta
        lam[1:, 1:] += (gamma - 1.0) * np.outer(beta, beta) / b2
        e_first = np.concatenate([[v[k, 3]], v[k, :3]])
        t = lam @ e_first
        out[k] = np.concatenate([t[1:], [t[0]]])
    return out


def test_decay_angle_against_an_explicit_boost(samples: dict) -> None:
    _, _, _, p = samples["sm"]
    p = p[:300]
    mu_rest = _boost_to_rest_frame(p[:, 2], p[:, 6])
    e_rest = _boost_to_rest_frame(p[:, 3], p[:, 4])
    expected = []
    for rest, w in ((mu_rest, p[:, 2]), (e_rest, p[:, 3])):
        cos = np.sum(rest[:, :3] * w[:, :3], axis=1)
        cos /= np.linalg.norm(rest[:, :3], axis=1) * np.linalg.norm(w[:, :3], axis=1)
        expected.append(cos)
    np.testing.assert_allclose(lepton_decay_cosines(p), np.stack(expected, axis=1), atol=1e-9)
    # In the W rest frame the lepton has half the W mass of energy (massless decay products).
    np.testing.assert_allclose(mu_rest[:, 3], 0.5 * _pair_mass(p, 6, 7), rtol=1e-7)


def test_the_response_stays_physical_and_bounded(samples: dict) -> None:
    _, _, _, p = samples["sm"]
    supp = sm_suppression(p)
    assert np.all((supp > 0) & (supp <= 1))
    for op in DEFAULT_OPERATORS:
        lin, quad = toy_eft_lin(op, p), toy_eft_quad(op, p)
        assert np.all(quad > 0)
        # |A(c)|^2 >= 0 for every c: the discriminant of 1 + c lin + c^2 quad is <= 0
        assert np.all(lin * lin <= 4 * quad * (1 + 1e-12))
        assert np.all(supp * np.abs(lin) <= toy_lin_bound(op) * (1 + 1e-12))
        assert np.all(supp * quad <= toy_quad_bound(op) * (1 + 1e-12))


def test_lin_weights_are_signed_and_quad_positive(samples: dict) -> None:
    for key in ("cW_quad", "cqq1_quad"):
        assert np.all(samples[key][2] > 0)
    _, _, w, p = samples["cqq3_lin"]
    assert np.all(w < 0)  # cqq3 interferes destructively everywhere
    _, _, w, p = samples["cqq11_lin"]
    negative = w < 0
    assert 0.05 < negative.mean() < 0.5  # destructive where the jets are back to back
    np.testing.assert_array_equal(negative, toy_eft_lin("cqq11", p) < 0)
    assert np.all(np.abs(w) == np.abs(w[0]))  # unweighted: one |weight| for every event


def _chi2_pvalue(
    sample: np.ndarray, w_sample: np.ndarray, ref: np.ndarray, w_ref: np.ndarray, edges: np.ndarray
) -> float:
    """p-value that two weighted samples have the same normalised shape (binned chi^2)."""
    h1, _ = np.histogram(sample, edges, weights=w_sample)
    v1, _ = np.histogram(sample, edges, weights=w_sample**2)
    h2, _ = np.histogram(ref, edges, weights=w_ref)
    v2, _ = np.histogram(ref, edges, weights=w_ref**2)
    n1, n2 = h1.sum(), h2.sum()
    diff = h1 / n1 - h2 / n2
    var = v1 / n1**2 + v2 / n2**2
    ok = var > 0
    chi2 = float(np.sum(diff[ok] ** 2 / var[ok]))
    return float(stats.chi2.sf(chi2, int(ok.sum()) - 1))


@pytest.mark.parametrize(
    ("key", "op", "comp", "pair"),
    [
        ("cW_quad", "cW", "quad", (2, 3)),
        ("cqq3_lin", "cqq3", "lin", (8, 9)),
        ("cqq1_quad", "cqq1", "quad", (8, 9)),
    ],
)
def test_separate_samples_match_the_reweighted_sm(
    samples: dict, key: str, op: str, comp: str, pair: tuple[int, int]
) -> None:
    """A LIN / QUAD sample has the shape and cross section that the SM sample reweighted by
    the toy ratio predicts (separate generation versus reweighting, as with MadGraph)."""
    _, _, w_sm, p_sm = samples["sm"]
    xs, err, w, p = samples[key]
    ratio = toy_eft_lin(op, p_sm) if comp == "lin" else toy_eft_quad(op, p_sm)
    w_rew = w_sm * ratio
    # cross section: mean weight of the reweighted SM versus the file's XSECUP (and its events)
    predicted = float(w_rew.mean())
    predicted_err = float(w_rew.std() / math.sqrt(len(w_rew)))
    assert xs == pytest.approx(component_cross_section(comp, op).xsec_pb, rel=1e-6)
    assert abs(predicted - xs) < 5 * math.hypot(predicted_err, err)
    mean_w_err = float(np.abs(w).mean() * w.std() / np.abs(w).mean() / math.sqrt(len(w)))
    assert abs(float(w.mean()) - xs) < 5 * math.hypot(mean_w_err, err)
    # shape of the pair mass (m_WW or m_jj) in quantile bins of the separate sample
    mass, mass_sm = _pair_mass(p, *pair), _pair_mass(p_sm, *pair)
    edges = np.quantile(mass, np.linspace(0, 1, 11))
    edges[0], edges[-1] = 0.0, np.inf
    assert _chi2_pvalue(mass, w, mass_sm, w_rew, edges) > 1e-4


def test_eft_samples_are_harder_than_the_sm(samples: dict) -> None:
    p_sm = samples["sm"][3]
    m_ww_sm, m_jj_sm = np.median(_pair_mass(p_sm, 2, 3)), np.median(_pair_mass(p_sm, 8, 9))
    assert np.median(_pair_mass(samples["cW_quad"][3], 2, 3)) > 2.0 * m_ww_sm
    assert np.median(_pair_mass(samples["cqq1_quad"][3], 8, 9)) > 1.5 * m_jj_sm


def test_each_operator_has_its_own_shape() -> None:
    shapes = {(r.energy, r.shape, r.offset) for r in TOY_EFT_RESPONSE.values()}
    assert len(shapes) >= 5
    assert {r.energy for r in TOY_EFT_RESPONSE.values()} == {"ww", "jj"}
    assert any(r.a < 0 for r in TOY_EFT_RESPONSE.values())


def test_generate_demo_writes_madgraph_like_samples(tmp_path: Path) -> None:
    written: list[tuple[Path, int]] = []
    paths = generate_demo(
        tmp_path,
        n_events=40,
        eft_events=20,
        seed=2,
        operators=("cW", "cqq3"),
        progress=lambda path, events, _seconds: written.append((path, events)),
    )
    assert written == [(p, 40 if i == 0 else 20) for i, p in enumerate(paths)]
    assert [p.name for p in paths] == [
        f"{sample_name(c, o)}.lhe.gz"
        for c, o in (("sm", None), ("lin", "cW"), ("quad", "cW"), ("lin", "cqq3"), ("quad", "cqq3"))
    ]
    text = gzip.decompress(paths[1].read_bytes()).decode("ascii")
    assert "generate p p > e+ ve mu+ vm j j QCD=0 SMHLOOP=0 NP=1 NP^2==1" in text
    assert "<initrwgt>" in text
    assert text.count("<rwgt>") == 20
    lines = text.splitlines()
    xsec = float(lines[lines.index("<init>") + 2].split()[0])
    assert xsec == pytest.approx(component_cross_section("lin", "cW").xsec_pb, rel=1e-6)
    assert "  1 1.000000e+00 # cW" in text
    assert "  2 0.000000e+00 # cqq3" in text


def test_demo_config_reads_every_sample(tmp_path: Path) -> None:
    from vbsad_batch.config import load_config  # noqa: PLC0415

    settings = DemoSettings(10, 5, 2, 1, 64, 1e-3, 0)
    generate_demo(tmp_path / "data", n_events=10, eft_events=5, operators=("cW", "cHW"))
    path = tmp_path / "demo.toml"
    path.write_text(demo_config_toml("data", settings, operators=("cW", "cHW")), encoding="utf-8")
    config = load_config(path)
    assert config.declared_operators == ("cW", "cHW")
    assert config.training.epochs == 2
    assert config.scan.bootstrap_replicas == 0
    assert sorted((s.component, s.operators) for s in config.samples) == sorted(
        [("sm", ()), ("lin", ("cW",)), ("quad", ("cW",)), ("lin", ("cHW",)), ("quad", ("cHW",))]
    )
    assert config.output_dir == tmp_path.resolve()
