"""Independent reference ("oracle") for the LHE ingest tests.

Reads an LHE file with pylhe and computes the DESIGN.md observables with plain numpy,
one event at a time, as directly as the definitions read. Deliberately simple and slow:
it shares no code with vbsad_batch and should be obviously correct by inspection.

Observables (DESIGN.md, "Observables"): only particles with status 1. Jets: |id| <= 6 or
id 21. Charged leptons: |id| in {11, 13, 15}. Neutrinos: |id| in {12, 14, 16}. Leptons and
jets ordered by pT, leading first. met = pT of the vector sum of the neutrinos; mll, ptll
from the two leading leptons; mjj from the two leading jets; deltaetajj = |etaj1 - etaj2|;
deltaphijj = |dphi| folded into [0, pi]; phi in (-pi, pi]; eta = asinh(pz / pT).
Events without two charged leptons and two jets are no rows; they are counted by reason,
leptons checked first.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# pylhe's optional awkward/vector import chain is slow but harmless; import once here.
import pylhe

OBSERVABLE_NAMES: tuple[str, ...] = (
    "mll",
    "mjj",
    "ptl1",
    "ptl2",
    "ptj1",
    "ptj2",
    "ptll",
    "met",
    "etal1",
    "etal2",
    "etaj1",
    "etaj2",
    "deltaetajj",
    "deltaphijj",
    "phij1",
    "phij2",
    "phil1",
    "phil2",
)
ANGLE_NAMES: frozenset[str] = frozenset(
    {"etal1", "etal2", "etaj1", "etaj2", "deltaetajj", "deltaphijj"}
    | {"phij1", "phij2", "phil1", "phil2"}
)

PARTICLE_INT_COLUMNS: tuple[str, ...] = (
    "pid",
    "status",
    "mother1",
    "mother2",
    "color1",
    "color2",
)
PARTICLE_FLOAT_COLUMNS: tuple[str, ...] = (
    "px",
    "py",
    "pz",
    "e",
    "m",
    "lifetime",
    "spin",
)

REJECT_LEPTONS = "fewer_than_two_charged_leptons"
REJECT_JETS = "fewer_than_two_jets"

CHARGED_LEPTONS = frozenset({11, 13, 15})
NEUTRINOS = frozenset({12, 14, 16})


def is_jet(pid: int) -> bool:
    return abs(pid) <= 6 or pid == 21


# --------------------------------------------------------------------------------------
# Reading with pylhe
# --------------------------------------------------------------------------------------


@dataclass
class RefParticle:
    pid: int
    status: int
    mother1: int
    mother2: int
    color1: int
    color2: int
    px: float
    py: float
    pz: float
    e: float
    m: float
    lifetime: float
    spin: float


@dataclass
class RefEvent:
    index: int
    nup: int
    idprup: int
    xwgtup: float
    scalup: float
    aqedup: float
    aqcdup: float
    particles: list[RefParticle]
    weights: dict[str, float]


@dataclass
class RefFile:
    path: Path
    version: str | None
    beams: dict[str, object]
    processes: list[dict[str, float]]
    generators: list[dict[str, str]]
    initrwgt_ids: list[str]
    events: list[RefEvent] = field(default_factory=list)


def read_reference(path: str | Path) -> RefFile:
    """Read every event of `path` with pylhe.

    pylhe reports XML errors as a RuntimeWarning and stops early; the oracle must never
    silently truncate, so warnings are turned into errors here.
    """
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lhefile = pylhe.LHEFile.fromfile(str(path))
        init = lhefile.init
        info = init.initInfo
        beams = {
            "idbmup": [info.beamA, info.beamB],
            "ebmup": [info.energyA, info.energyB],
            "pdfgup": [info.PDFgroupA, info.PDFgroupB],
            "pdfsup": [info.PDFsetA, info.PDFsetB],
            "idwtup": info.weightingStrategy,
            "nprup": info.numProcesses,
        }
        processes = [
            {
                "xsecup": p.xSection,
                "xerrup": p.error,
                "xmaxup": p.unitWeight,
                "lprup": p.procId,
            }
            for p in init.procInfo
        ]
        generators = [{"name": g.name, "version": g.version} for g in init.generators]
        initrwgt_ids = lhefile.header.initrwgt.list_weights_ids() if lhefile.header else []
        ref = RefFile(
            path=path,
            version=lhefile.version,
            beams=beams,
            processes=processes,
            generators=generators,
            initrwgt_ids=initrwgt_ids,
        )
        for index, event in enumerate(lhefile.events):
            ei = event.eventinfo
            particles = [
                RefParticle(
                    pid=p.id,
                    status=p.status,
                    mother1=p.mother1,
                    mother2=p.mother2,
                    color1=p.color1,
                    color2=p.color2,
                    px=p.px,
                    py=p.py,
                    pz=p.pz,
                    e=p.e,
                    m=p.m,
                    lifetime=p.lifetime,
                    spin=p.spin,
                )
                for p in event.particles
            ]
            ref.events.append(
                RefEvent(
                    index=index,
                    nup=ei.nparticles,
                    idprup=ei.pid,
                    xwgtup=ei.weight,
                    scalup=ei.scale,
                    aqedup=ei.aqed,
                    aqcdup=ei.aqcd,
                    particles=particles,
                    weights=dict(event.weights),
                )
            )
    return ref


def particle_columns(ref: RefFile) -> dict[str, np.ndarray]:
    """All particles of all events as columns, in file order."""
    rows = [(ev.index, p) for ev in ref.events for p in ev.particles]
    cols: dict[str, np.ndarray] = {"event": np.array([i for i, _ in rows], dtype=np.int64)}
    for name in PARTICLE_INT_COLUMNS:
        cols[name] = np.array([getattr(p, name) for _, p in rows], dtype=np.int64)
    for name in PARTICLE_FLOAT_COLUMNS:
        cols[name] = np.array([getattr(p, name) for _, p in rows], dtype=np.float64)
    return cols


def weight_ids(ref: RefFile) -> list[str]:
    """Every weight id pylhe reports in any event, first-seen order."""
    seen: dict[str, None] = {}
    for ev in ref.events:
        for key in ev.weights:
            seen.setdefault(key, None)
    return list(seen)


# --------------------------------------------------------------------------------------
# Observables
# --------------------------------------------------------------------------------------


def _pt(px: float, py: float) -> float:
    return float(np.hypot(px, py))


def _phi(px: float, py: float) -> float:
    phi = float(np.arctan2(py, px))
    if phi == -math.pi:  # arctan2(-0.0, negative) gives -pi; the range is (-pi, pi]
        phi = math.pi
    return phi


def _eta(px: float, py: float, pz: float) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.arcsinh(np.float64(pz) / np.float64(_pt(px, py))))


def _mass(a: RefParticle, b: RefParticle) -> float:
    e = a.e + b.e
    px = a.px + b.px
    py = a.py + b.py
    pz = a.pz + b.pz
    m2 = e * e - (px * px + py * py + pz * pz)
    return math.sqrt(max(m2, 0.0))


def _leading_first(particles: list[RefParticle]) -> list[RefParticle]:
    # Python's sort is stable: equal pT keeps file order.
    return sorted(particles, key=lambda p: _pt(p.px, p.py), reverse=True)


def event_observables(particles: list[RefParticle]) -> dict[str, float] | str:
    """Observables of one event, or the rejection reason."""
    final = [p for p in particles if p.status == 1]
    leptons = _leading_first([p for p in final if abs(p.pid) in CHARGED_LEPTONS])
    jets = _leading_first([p for p in final if is_jet(p.pid)])
    neutrinos = [p for p in final if abs(p.pid) in NEUTRINOS]
    if len(leptons) < 2:
        return REJECT_LEPTONS
    if len(jets) < 2:
        return REJECT_JETS
    l1, l2 = leptons[0], leptons[1]
    j1, j2 = jets[0], jets[1]

    met_px = sum(p.px for p in neutrinos)
    met_py = sum(p.py for p in neutrinos)

    phij1 = _phi(j1.px, j1.py)
    phij2 = _phi(j2.px, j2.py)
    dphi = abs(phij1 - phij2)
    if dphi > math.pi:
        dphi = 2.0 * math.pi - dphi
    etaj1 = _eta(j1.px, j1.py, j1.pz)
    etaj2 = _eta(j2.px, j2.py, j2.pz)

    return {
        "mll": _mass(l1, l2),
        "mjj": _mass(j1, j2),
        "ptl1": _pt(l1.px, l1.py),
        "ptl2": _pt(l2.px, l2.py),
        "ptj1": _pt(j1.px, j1.py),
        "ptj2": _pt(j2.px, j2.py),
        "ptll": _pt(l1.px + l2.px, l1.py + l2.py),
        "met": _pt(met_px, met_py),
        "etal1": _eta(l1.px, l1.py, l1.pz),
        "etal2": _eta(l2.px, l2.py, l2.pz),
        "etaj1": etaj1,
        "etaj2": etaj2,
        "deltaetajj": abs(etaj1 - etaj2),
        "deltaphijj": dphi,
        "phij1": phij1,
        "phij2": phij2,
        "phil1": _phi(l1.px, l1.py),
        "phil2": _phi(l2.px, l2.py),
    }


@dataclass
class RefObservables:
    columns: dict[str, np.ndarray]  # "event", the observables, "w"
    weights: list[dict[str, float]]  # per accepted row: pylhe's weights of that event
    rejected: dict[str, int]


def observables(ref: RefFile) -> RefObservables:
    rows: list[dict[str, float]] = []
    events: list[int] = []
    nominal: list[float] = []
    weights: list[dict[str, float]] = []
    rejected = {REJECT_LEPTONS: 0, REJECT_JETS: 0}
    for ev in ref.events:
        result = event_observables(ev.particles)
        if isinstance(result, str):
            rejected[result] += 1
            continue
        rows.append(result)
        events.append(ev.index)
        nominal.append(ev.xwgtup)
        weights.append(ev.weights)
    columns: dict[str, np.ndarray] = {"event": np.array(events, dtype=np.int64)}
    for name in OBSERVABLE_NAMES:
        columns[name] = np.array([r[name] for r in rows], dtype=np.float64)
    columns["w"] = np.array(nominal, dtype=np.float64)
    return RefObservables(columns=columns, weights=weights, rejected=rejected)
