"""The toy events of the embedded demo: same-sign W+W+ scattering kinematics and weights.

A toy for demonstration and testing, not a physics generator: no matrix elements and no parton
densities. The kinematics are drawn from simple, physically plausible distributions (two
forward tagging jets with a large rapidity gap, two central W+ bosons with Breit-Wigner masses,
W decays isotropic in the W rest frame), with exact four-momentum conservation, and generator
cuts applied by rejection. The EFT content comes only from `vbsad_batch.demo.eft_response`.
Units: GeV for energies, momenta and masses; pb for cross sections and weights.

Weights per event, in this order:

* ``extra_weights`` scale-variation and PDF-replica weights with numeric ids ``"1"``,
  ``"2"``, ... (MadGraph's systematics layout; only to make files with many weights);
* ``sm`` (all Wilson coefficients 0), then for each operator ``op``: ``op_m1`` (c = -1) and
  ``op_p1`` (c = +1), all other coefficients 0.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import numpy.typing as npt

from vbsad_batch.demo.eft_response import (
    TOY_EFT_RESPONSE,
    sm_suppression,
    toy_eft_lin,
    toy_eft_quad,
    toy_eft_ratio,
    toy_lin_bound,
    toy_quad_bound,
)

__all__ = [
    "COMPONENTS",
    "DEFAULT_OPERATORS",
    "MAX_EXTRA_WEIGHTS",
    "N_PARTICLES",
    "REWEIGHT_POINTS",
    "Component",
    "CrossSection",
    "EventChunk",
    "SampleSpec",
    "check_component",
    "check_operators",
    "component_cross_section",
    "demo_weight_ids",
    "event_weights",
    "generate_chunk",
    "nominal_weights",
    "scale_variations",
]

FloatArray = npt.NDArray[np.float64]

#: Operators of the SMEFTsim restriction used by the reference SSWW study.
DEFAULT_OPERATORS: tuple[str, ...] = ("cW", "cHW", "cHq1", "cqq1", "cqq11", "cqq3", "cqq31")

# --- run constants (GeV, pb) ------------------------------------------------------------------
BEAM_ENERGY_GEV = 6500.0
W_MASS_GEV = 80.387
W_WIDTH_GEV = 2.085
BW_CUTOFF = 15.0  # |m - M| < BW_CUTOFF * Gamma, as MadGraph's bwcutoff
Z_MASS_GEV = 91.1876
ALPHA_S_MZ = 0.130  # LO PDF set value (NNPDF2.3 LO, LHAPDF id 247000)
ALPHA_EM = 7.5614620e-03
SM_XSEC_PB = 2.64e-3  # toy sample cross section
SM_XERR_PB = 3.6e-5
LHAPDF_ID = 247000
MG_VERSION = "3.5.7"

# Generator-level cuts (MadGraph run_card style), applied by rejection.
CUT_PTJ = 20.0
CUT_ETAJ = 5.0
CUT_MJJ = 200.0
CUT_PTL = 10.0
CUT_ETAL = 2.5
CUT_DR = 0.4

N_PARTICLES = 10
_MAX_CANDIDATES = 200_000  # proposal events drawn at a time (bounds memory)

#: Reweighting points written per operator into the SM sample: (id suffix, Wilson coefficient).
REWEIGHT_POINTS: tuple[tuple[str, float], ...] = (("m1", -1.0), ("p1", 1.0))

Component = Literal["sm", "lin", "quad"]
COMPONENTS: tuple[Component, ...] = ("sm", "lin", "quad")


# --- weight bookkeeping -------------------------------------------------------------------------

_SCALE_FACTORS = (0.5, 1.0, 2.0)
DYN_SCALES: tuple[tuple[int, str], ...] = (
    (1, "sum pt"),
    (2, "HT"),
    (3, "HT/2"),
    (4, "sqrts"),
)
N_PDF_MEMBERS = 101  # member 0 (central) and 100 replicas


def scale_variations() -> list[tuple[float, float, int | None]]:
    """(MUR, MUF, dynamical scale choice or None) in MadGraph's systematics order."""
    out: list[tuple[float, float, int | None]] = []
    for mur in _SCALE_FACTORS:
        for muf in _SCALE_FACTORS:
            for dyn in (None, *(d for d, _ in DYN_SCALES)):
                if mur == 1.0 and muf == 1.0 and dyn is None:
                    continue  # that is the nominal weight itself
                out.append((mur, muf, dyn))
    return out


_N_SCALE_WEIGHTS = len(scale_variations())
#: Largest supported ``extra_weights``: all scale variations plus the PDF members.
MAX_EXTRA_WEIGHTS = _N_SCALE_WEIGHTS + N_PDF_MEMBERS

_OPERATOR_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]*$")


def check_operators(operators: Sequence[str]) -> list[str]:
    if isinstance(operators, str):
        raise TypeError("operators must be a sequence of names, not a single string")
    ops = list(operators)
    seen: set[str] = set()
    for op in ops:
        if not isinstance(op, str) or not _OPERATOR_RE.match(op):
            raise ValueError(
                f"invalid operator name {op!r}: use letters, digits and _.+- , "
                "starting with a letter"
            )
        if op in seen:
            raise ValueError(f"operator {op!r} given twice")
        seen.add(op)
    return ops


def check_component(component: str, operator: str | None, operators: Sequence[str]) -> None:
    if component not in COMPONENTS:
        raise ValueError(f"component must be one of {', '.join(COMPONENTS)}, got {component!r}")
    if component == "sm":
        if operator is not None:
            raise ValueError("the SM sample takes no operator")
    elif operator not in operators:
        raise ValueError(
            f"a {component.upper()} sample needs an operator among {list(operators)}, "
            f"got {operator!r}"
        )


def demo_weight_ids(
    operators: Sequence[str] = DEFAULT_OPERATORS,
    *,
    extra_weights: int = 0,
    component: Component = "sm",
) -> list[str]:
    """Weight ids written by :func:`write_demo_lhe`, in file order.

    Every file starts with ``extra_weights`` scale/PDF-like weights ``"1"``, ``"2"``, ...; the SM
    sample then has the reweighting weights ``sm`` and ``<op>_m1``, ``<op>_p1`` per operator.
    """
    ops = check_operators(operators)
    ids = [str(i + 1) for i in range(extra_weights)]
    if component == "sm":
        ids.append("sm")
        for op in ops:
            ids.extend(f"{op}_{suffix}" for suffix, _ in REWEIGHT_POINTS)
    return ids


# --- kinematics ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventChunk:
    """Kinematics of a chunk of accepted events (arrays over events)."""

    p: FloatArray  # (n, 10, 4): px, py, pz, E per particle line
    mass: FloatArray  # (n, 10)
    pid: FloatArray  # (n, 10)
    col1: FloatArray  # (n, 10)
    col2: FloatArray  # (n, 10)
    spin: FloatArray  # (n, 10)
    scale: FloatArray  # (n,) dynamical scale, HT/2
    aqcd: FloatArray  # (n,)
    x1: FloatArray  # (n,) momentum fractions
    x2: FloatArray
    m_ww: FloatArray  # (n,) W+W+ invariant mass


def _breit_wigner_mass(rng: np.random.Generator, size: tuple[int, ...]) -> FloatArray:
    """Relativistic Breit-Wigner W mass, truncated at BW_CUTOFF widths."""
    mg = W_MASS_GEV * W_WIDTH_GEV
    lo = (W_MASS_GEV - BW_CUTOFF * W_WIDTH_GEV) ** 2 - W_MASS_GEV**2
    hi = (W_MASS_GEV + BW_CUTOFF * W_WIDTH_GEV) ** 2 - W_MASS_GEV**2
    u = rng.uniform(math.atan(lo / mg), math.atan(hi / mg), size=size)
    return np.sqrt(W_MASS_GEV**2 + mg * np.tan(u))


def _four_vector(pt: FloatArray, y: FloatArray, phi: FloatArray, m: FloatArray) -> FloatArray:
    """(px, py, pz, E) from transverse momentum, rapidity, azimuth and mass (last axis 4)."""
    mt = np.sqrt(pt * pt + m * m)
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y), mt * np.cosh(y)], -1)


def _decay_isotropic(
    rng: np.random.Generator, parent: FloatArray, m: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Two-body decay to massless daughters, isotropic in the parent's rest frame."""
    shape = m.shape
    cos_t = rng.uniform(-1.0, 1.0, size=shape)
    phi = rng.uniform(-math.pi, math.pi, size=shape)
    sin_t = np.sqrt(1.0 - cos_t * cos_t)
    half = 0.5 * m
    q = np.stack([half * sin_t * np.cos(phi), half * sin_t * np.sin(phi), half * cos_t], -1)
    energy = parent[..., 3]
    beta = parent[..., :3] / energy[..., None]
    gamma = energy / m
    out = []
    for sign in (1.0, -1.0):
        qs = sign * q
        bq = np.sum(beta * qs, axis=-1)
        e_lab = gamma * (half + bq)
        coef = gamma * gamma / (gamma + 1.0) * bq + gamma * half
        p_lab = qs + beta * coef[..., None]
        out.append(np.concatenate([p_lab, e_lab[..., None]], axis=-1))
    return out[0], out[1]


def _pt_eta_phi(p: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    pt = np.hypot(p[..., 0], p[..., 1])
    eta = np.arcsinh(p[..., 2] / pt)
    phi = np.arctan2(p[..., 1], p[..., 0])
    return pt, eta, phi


def _delta_r(eta1: FloatArray, phi1: FloatArray, eta2: FloatArray, phi2: FloatArray) -> FloatArray:
    dphi = np.abs(phi1 - phi2)
    dphi = np.where(dphi > math.pi, 2.0 * math.pi - dphi, dphi)
    return np.hypot(eta1 - eta2, dphi)


def _alpha_s(mu: FloatArray) -> FloatArray:
    """One-loop running alpha_s (5 flavours) from ALPHA_S_MZ."""
    b0 = (33.0 - 2.0 * 5.0) / (6.0 * math.pi)
    return ALPHA_S_MZ / (1.0 + ALPHA_S_MZ * b0 * np.log(mu / Z_MASS_GEV))


# Incoming parton flavours (u, c, d~, s~ each emit a W+) and what they turn into.
_IN_FLAVOURS = np.array([2.0, 4.0, -1.0, -3.0])
_IN_PROBS = np.array([0.62, 0.06, 0.24, 0.08])
_OUT_FLAVOUR = {2.0: 1.0, 4.0: 3.0, -1.0: -2.0, -3.0: -4.0}


def _sample_candidates(rng: np.random.Generator, m: int) -> tuple[FloatArray, ...]:
    """Draw m proposal events; return arrays and the mask of the generator-level cuts (last).

    The proposal is harder than the toy SM (see ``demo_eft.sm_suppression``), so that the EFT
    components, which grow with energy, can be drawn from it by rejection.
    """
    # Tagging jets: forward (from beam 1) and backward (from beam 2), massless.
    ptj = CUT_PTJ + rng.gamma(2.0, 45.0, size=(m, 2))
    etaj = rng.normal(2.4, 1.0, size=(m, 2)) * np.array([1.0, -1.0])
    phij = rng.uniform(-math.pi, math.pi, size=(m, 2))
    jets = _four_vector(ptj, etaj, phij, np.zeros((m, 2)))
    # W bosons: the first free, the second balances the transverse momentum.
    mw = _breit_wigner_mass(rng, (m, 2))
    ptw1 = rng.gamma(2.0, 90.0, size=m)
    phiw1 = rng.uniform(-math.pi, math.pi, size=m)
    yw = rng.normal(0.0, 1.1, size=(m, 2))
    w1 = _four_vector(ptw1, yw[:, 0], phiw1, mw[:, 0])
    pxw2 = -(jets[:, 0, 0] + jets[:, 1, 0] + w1[:, 0])
    pyw2 = -(jets[:, 0, 1] + jets[:, 1, 1] + w1[:, 1])
    w2 = _four_vector(np.hypot(pxw2, pyw2), yw[:, 1], np.arctan2(pyw2, pxw2), mw[:, 1])
    w2[:, 0] = pxw2  # exact balance (no round trip through pt, phi)
    w2[:, 1] = pyw2
    # W decays: W1 (line 3) -> mu+ vm, W2 (line 4) -> e+ ve.
    mu, vm = _decay_isotropic(rng, w1, mw[:, 0])
    el, ve = _decay_isotropic(rng, w2, mw[:, 1])
    flav = rng.choice(_IN_FLAVOURS, size=(m, 2), p=_IN_PROBS)

    e_tot = jets[:, 0, 3] + jets[:, 1, 3] + w1[:, 3] + w2[:, 3]
    pz_tot = jets[:, 0, 2] + jets[:, 1, 2] + w1[:, 2] + w2[:, 2]
    x1 = 0.5 * (e_tot + pz_tot) / BEAM_ENERGY_GEV
    x2 = 0.5 * (e_tot - pz_tot) / BEAM_ENERGY_GEV

    ptl, etal, phil = _pt_eta_phi(np.stack([el, mu], axis=1))
    mjj2 = (jets[:, 0, 3] + jets[:, 1, 3]) ** 2 - np.sum((jets[:, 0, :3] + jets[:, 1, :3]) ** 2, -1)
    ok = (x1 < 1.0) & (x2 < 1.0)
    ok &= np.all(np.abs(etaj) < CUT_ETAJ, axis=1) & (mjj2 > CUT_MJJ**2)
    ok &= np.all(ptl > CUT_PTL, axis=1) & np.all(np.abs(etal) < CUT_ETAL, axis=1)
    ok &= _delta_r(etaj[:, 0], phij[:, 0], etaj[:, 1], phij[:, 1]) > CUT_DR
    ok &= _delta_r(etal[:, 0], phil[:, 0], etal[:, 1], phil[:, 1]) > CUT_DR
    for i in range(2):
        for j in range(2):
            ok &= _delta_r(etal[:, i], phil[:, i], etaj[:, j], phij[:, j]) > CUT_DR
    return jets, w1, w2, mw, el, ve, mu, vm, flav, x1, x2, ok.astype(np.float64)


def _acceptance(p: FloatArray, component: Component, operator: str | None) -> FloatArray:
    """Probability to keep a proposal event in a sample of ``component`` (exact bounds)."""
    s = sm_suppression(p)
    if component == "sm" or operator is None:
        return s
    if component == "lin":
        return np.asarray(s * np.abs(toy_eft_lin(operator, p)) / toy_lin_bound(operator))
    return np.asarray(s * toy_eft_quad(operator, p) / toy_quad_bound(operator))


def _take(chunk: EventChunk, index: npt.NDArray[np.bool_] | slice) -> EventChunk:
    return EventChunk(*(getattr(chunk, f.name)[index] for f in fields(EventChunk)))


def _concat(parts: Sequence[EventChunk]) -> EventChunk:
    return EventChunk(
        *(np.concatenate([getattr(c, f.name) for c in parts]) for f in fields(EventChunk))
    )


def generate_chunk(
    rng: np.random.Generator, n: int, component: Component = "sm", operator: str | None = None
) -> EventChunk:
    """n events of ``component``: proposal events that pass the generator-level cuts, kept
    with the component's acceptance probability (rejection sampling)."""
    parts: list[EventChunk] = []
    have = 0
    efficiency = 0.1
    while have < n:
        m = min(int((n - have) / efficiency * 1.2) + 64, _MAX_CANDIDATES)
        cand = _sample_candidates(rng, m)
        ok = cand[-1].astype(bool)
        chunk = _build_chunk([a[ok] for a in cand[:-1]])
        keep = rng.uniform(size=chunk.m_ww.shape[0]) < _acceptance(chunk.p, component, operator)
        n_keep = int(keep.sum())
        efficiency = max(1e-3, n_keep / m)
        if n_keep:
            parts.append(_take(chunk, keep))
            have += n_keep
    return _take(_concat(parts), slice(0, n))


def _build_chunk(cols: Sequence[FloatArray]) -> EventChunk:
    """The full event record of candidates that passed the cuts."""
    jets, w1, w2, mw, el, ve, mu, vm, flav, x1, x2 = cols
    n = x1.shape[0]

    p = np.zeros((n, N_PARTICLES, 4))
    p[:, 0, 2] = x1 * BEAM_ENERGY_GEV
    p[:, 0, 3] = x1 * BEAM_ENERGY_GEV
    p[:, 1, 2] = -x2 * BEAM_ENERGY_GEV
    p[:, 1, 3] = x2 * BEAM_ENERGY_GEV
    p[:, 2] = w1
    p[:, 3] = w2
    p[:, 4] = el
    p[:, 5] = ve
    p[:, 6] = mu
    p[:, 7] = vm
    p[:, 8] = jets[:, 0]
    p[:, 9] = jets[:, 1]

    mass = np.zeros((n, N_PARTICLES))
    mass[:, 2] = mw[:, 0]
    mass[:, 3] = mw[:, 1]

    out_flav = np.vectorize(_OUT_FLAVOUR.__getitem__, otypes=[np.float64])(flav)
    pid = np.empty((n, N_PARTICLES))
    pid[:, 0:2] = flav
    pid[:, 2:4] = 24.0
    pid[:, 4:8] = np.array([-11.0, 12.0, -13.0, 14.0])
    pid[:, 8:10] = out_flav

    # Colour: a colour-singlet exchange, so each quark line keeps its colour tag.
    tags = np.array([501.0, 502.0])
    col1 = np.zeros((n, N_PARTICLES))
    col2 = np.zeros((n, N_PARTICLES))
    is_quark = flav > 0
    col1[:, 0:2] = np.where(is_quark, tags, 0.0)
    col2[:, 0:2] = np.where(is_quark, 0.0, tags)
    col1[:, 8:10] = col1[:, 0:2]
    col2[:, 8:10] = col2[:, 0:2]

    # Helicities: left-handed quarks / right-handed antiquarks, as the W couples.
    spin = np.zeros((n, N_PARTICLES))
    spin[:, 0:2] = np.where(is_quark, -1.0, 1.0)
    spin[:, 4:8] = np.array([1.0, -1.0, 1.0, -1.0])
    spin[:, 8:10] = spin[:, 0:2]

    mt_w = np.sqrt(mw * mw + np.stack([_pt2(w1), _pt2(w2)], axis=1))
    ht = mt_w.sum(axis=1) + np.sqrt(_pt2(jets[:, 0])) + np.sqrt(_pt2(jets[:, 1]))
    scale = 0.5 * ht
    ww = w1 + w2
    m_ww = np.sqrt(np.maximum(ww[:, 3] ** 2 - np.sum(ww[:, :3] ** 2, axis=1), 0.0))
    return EventChunk(p, mass, pid, col1, col2, spin, scale, _alpha_s(scale), x1, x2, m_ww)


def _pt2(v: FloatArray) -> FloatArray:
    return np.asarray(v[..., 0] ** 2 + v[..., 1] ** 2, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class SampleSpec:
    """What one demo file holds: events, seed, operators, extra weights, component."""

    n_events: int
    seed: int
    operators: tuple[str, ...]
    extra_weights: int
    component: Component
    operator: str | None


# --- weights ------------------------------------------------------------------------------------


def _extra_weight_factors(
    chunk: EventChunk, extra_weights: int, pdf_shifts: FloatArray
) -> FloatArray:
    """(n, extra_weights) multiplicative factors on the nominal weight (toy systematics)."""
    n = chunk.scale.shape[0]
    out = np.empty((n, extra_weights))
    if extra_weights == 0:
        return out
    tau_log = np.log(np.sqrt(chunk.x1 * chunk.x2) / 0.05)
    # LO with QCD=0: no alpha_s, so only the factorisation scale matters, via the PDFs.
    gamma = -0.08 * tau_log
    jets_pt = np.sqrt(_pt2(chunk.p[:, 8])) + np.sqrt(_pt2(chunk.p[:, 9]))
    sum_pt = jets_pt + np.sqrt(_pt2(chunk.p[:, 2])) + np.sqrt(_pt2(chunk.p[:, 3]))
    sqrt_s = 2.0 * BEAM_ENERGY_GEV * np.sqrt(chunk.x1 * chunk.x2)
    dyn_mu = {1: sum_pt, 2: 2.0 * chunk.scale, 3: chunk.scale, 4: sqrt_s}
    k = 0
    for _mur, muf, dyn in scale_variations():
        if k == extra_weights:
            return out
        ratio = muf * (dyn_mu[dyn] / chunk.scale if dyn is not None else 1.0)
        out[:, k] = np.power(ratio, gamma)
        k += 1
    n_pdf = extra_weights - k
    if n_pdf:
        # member 0 is the central set (factor 1); replicas shift normalisation and x slope.
        out[:, k:] = (
            1.0 + pdf_shifts[None, :n_pdf, 0] + pdf_shifts[None, :n_pdf, 1] * tau_log[:, None]
        )
    return out


@dataclass(frozen=True, slots=True)
class CrossSection:
    """A component's cross section (pb): signed total, its MC error, and the total of |w|."""

    xsec_pb: float
    error_pb: float
    abs_pb: float


_PILOT_EVENTS = 300_000  # proposal events passing the cuts, for the cross sections
_PILOT_SEED = 20260
_PILOT_STEP = 100_000


def component_cross_section(component: Component, operator: str | None = None) -> CrossSection:
    """Cross section of one toy component (pb), from a fixed pilot run (the toy's constants).

    The SM cross section is ``SM_XSEC_PB`` by definition; LIN and QUAD follow as the SM
    cross section times the mean of ``suppression * lin`` (or quad) over the mean of the
    suppression on the same proposal events. Like a generator's survey, it carries a Monte
    Carlo error; it does not depend on the sample's seed.
    """
    if component == "sm" or operator is None:
        return CrossSection(SM_XSEC_PB, SM_XERR_PB, SM_XSEC_PB)
    return _pilot_cross_sections(tuple(sorted({*TOY_EFT_RESPONSE, operator})))[
        (component, operator)
    ]


@functools.lru_cache(maxsize=4)
def _pilot_cross_sections(
    operators: tuple[str, ...],
) -> dict[tuple[Component, str], CrossSection]:
    """LIN and QUAD cross sections of every operator, from one pass over the pilot events."""
    rng = np.random.default_rng(_PILOT_SEED)
    keys: list[tuple[Component, str]] = [(c, op) for op in operators for c in ("lin", "quad")]
    sum_s = 0.0
    sums = np.zeros((len(keys), 3))  # per key: sum of f, f^2, |f| with f = suppression * ratio
    count = 0
    while count < _PILOT_EVENTS:
        cand = _sample_candidates(rng, _PILOT_STEP)
        ok = cand[-1].astype(bool)
        chunk = _build_chunk([a[ok] for a in cand[:-1]])
        supp = sm_suppression(chunk.p)
        sum_s += float(supp.sum())
        for k, (comp, op) in enumerate(keys):
            ratio = toy_eft_lin(op, chunk.p) if comp == "lin" else toy_eft_quad(op, chunk.p)
            f = supp * ratio
            sums[k] += [float(f.sum()), float((f * f).sum()), float(np.abs(f).sum())]
        count += int(ok.sum())
    scale = SM_XSEC_PB / (sum_s / count)
    out: dict[tuple[Component, str], CrossSection] = {}
    for k, key in enumerate(keys):
        mean_f, mean_f2, mean_abs = sums[k] / count
        err = math.sqrt(max(mean_f2 - mean_f * mean_f, 0.0) / count)
        out[key] = CrossSection(float(scale * mean_f), scale * err, float(scale * mean_abs))
    return out


def nominal_weights(chunk: EventChunk, component: Component, operator: str | None) -> FloatArray:
    """XWGTUP per event (pb): +-|sigma| of the component (``event_norm = average``)."""
    xs = component_cross_section(component, operator)
    n = chunk.scale.shape[0]
    if component != "lin" or operator is None:
        return np.full(n, xs.abs_pb)
    return np.where(toy_eft_lin(operator, chunk.p) < 0.0, -xs.abs_pb, xs.abs_pb)


def event_weights(
    chunk: EventChunk, nominal: FloatArray, spec: SampleSpec, pdf_shifts: FloatArray
) -> FloatArray:
    """The ``<wgt>`` values per event (pb), in the order of :func:`demo_weight_ids`."""
    cols = [_extra_weight_factors(chunk, spec.extra_weights, pdf_shifts)]
    if spec.component == "sm":
        n = chunk.scale.shape[0]
        cols.append(np.ones((n, 1)))
        for op in spec.operators:
            cols.append(
                np.stack([toy_eft_ratio(op, c, chunk.p) for _, c in REWEIGHT_POINTS], axis=1)
            )
    return nominal[:, None] * np.concatenate(cols, axis=1)
