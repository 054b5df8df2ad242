"""The toy EFT response of the embedded demo: the ONLY place holding its EFT content.

A toy for demonstration and testing, NOT a physics prediction: there is no matrix element.
It gives each operator of the demo a distinct, physically motivated shape so that the
anomaly-detection chain has easy and hard cases to find:

    |A(c)|^2 / |A_SM|^2 = 1 + c * lin(event) + c^2 * quad(event)

    lin(event)  = a * E^2 * shape(event)        (interference grows like s / Lambda^2)
    quad(event) = b * E^4                       (the squared term like s^2 / Lambda^4)

with E the energy of the operator's sub-process over Lambda = 1 TeV: the diboson mass m_WW for
the gauge/Higgs operators (cW, cHW), the dijet mass m_jj for the quark operators (cHq1 and the
four-quark cqq*). ``shape`` is in [-1, 1] and carries the angular and rapidity changes: the
decay angle of the leptons in their W rest frame (transverse versus longitudinal W), the
azimuthal angle between the tagging jets, their rapidity gap. Where ``a * shape < 0`` the
interference is negative, as it is for real operators. ``a^2 <= 4 b`` keeps the ratio
non-negative for every c (|shape| <= 1).

The toy SM itself is the demo generator's proposal density times ``sm_suppression``, a steeply
falling function of m_WW and m_jj: it makes the SM fall with energy, and keeps every EFT
component bounded so that unweighted LIN and QUAD samples can be drawn by rejection.

Momenta come in the demo's particle order (the MadGraph order of the process
``p p > e+ ve mu+ vm j j``): 0, 1 incoming partons; 2, 3 the W+ bosons (W1 -> mu+ vm,
W2 -> e+ ve); 4 e+, 5 ve, 6 mu+, 7 vm; 8, 9 the jets. Arrays of shape (n, 10, 4) or (10, 4)
with columns (px, py, pz, E) in GeV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "LAMBDA_GEV",
    "TOY_EFT_RESPONSE",
    "ToyResponse",
    "lepton_decay_cosines",
    "sm_suppression",
    "toy_eft_lin",
    "toy_eft_quad",
    "toy_eft_ratio",
    "toy_lin_bound",
    "toy_quad_bound",
]

FloatArray = npt.NDArray[np.float64]

LAMBDA_GEV = 1000.0  # EFT scale

#: Energies (over Lambda) where the toy SM's fall sets in: m_WW ~ 350 GeV, m_jj ~ 1.5 TeV.
SM_SCALE_WW = 0.35
SM_SCALE_JJ = 1.5

Energy = Literal["ww", "jj"]
Shape = Literal["flat", "transverse", "longitudinal", "dphi_jj", "gap_jj"]


@dataclass(frozen=True, slots=True)
class ToyResponse:
    """One operator's toy response: ``lin = a E^2 shape``, ``quad = b E^4``."""

    energy: Energy
    a: float
    b: float
    shape: Shape
    offset: float = 0.0  # shape = offset + (1 - |offset|) * base shape, stays in [-1, 1]

    def __post_init__(self) -> None:
        if self.a * self.a > 4.0 * self.b or self.b < 0.0 or abs(self.offset) > 1.0:
            raise ValueError(f"toy response {self} can make |A|^2 negative")


# Numbers are illustrative only: chosen so that with the demo's default settings cW and the
# four-quark operators are seen at |c| of order 0.1-0.3 and cHW, cHq1 only at |c| ~ 1.
TOY_EFT_RESPONSE: dict[str, ToyResponse] = {
    # triple-gauge operator: strong growth with m_WW, transverse W, small interference
    "cW": ToyResponse("ww", a=0.5, b=20.0, shape="transverse", offset=0.5),
    # Higgs-W operator: changes the W polarisation; interference changes sign with the
    # lepton decay angle; small squared term
    "cHW": ToyResponse("ww", a=0.3, b=1.4, shape="longitudinal", offset=0.3),
    # quark-Higgs current: grows mildly with m_jj, interference follows the jets' azimuth
    "cHq1": ToyResponse("jj", a=0.1, b=0.025, shape="dphi_jj", offset=0.3),
    # four-quark operators: growth with the dijet energy
    "cqq1": ToyResponse("jj", a=0.25, b=0.12, shape="flat"),
    "cqq11": ToyResponse("jj", a=0.15, b=0.10, shape="dphi_jj", offset=0.3),
    "cqq3": ToyResponse("jj", a=-0.60, b=0.25, shape="flat"),
    "cqq31": ToyResponse("jj", a=-0.45, b=0.20, shape="gap_jj"),
}
#: Response of an operator not in the table.
TOY_EFT_DEFAULT = ToyResponse("ww", a=0.20, b=0.20, shape="flat")


def _response(operator: str) -> ToyResponse:
    return TOY_EFT_RESPONSE.get(operator, TOY_EFT_DEFAULT)


def _as_events(p: FloatArray) -> FloatArray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (10, 4):
        raise ValueError(f"momenta must have shape (n, 10, 4) or (10, 4), got {arr.shape}")
    return arr


def _mass(v: FloatArray) -> FloatArray:
    m2 = v[..., 3] ** 2 - np.sum(v[..., :3] ** 2, axis=-1)
    return np.asarray(np.sqrt(np.maximum(m2, 0.0)), dtype=np.float64)


def _cos_decay_angle(parent: FloatArray, daughter: FloatArray) -> FloatArray:
    """cos of the daughter's angle, in the parent's rest frame, to the parent's direction."""
    m = _mass(parent)
    beta = parent[..., :3] / parent[..., 3:4]
    b2 = np.sum(beta * beta, axis=-1)
    gamma = parent[..., 3] / m
    bp = np.sum(beta * daughter[..., :3], axis=-1)
    coef = (gamma - 1.0) / np.where(b2 > 0.0, b2, 1.0) * bp - gamma * daughter[..., 3]
    q = daughter[..., :3] + beta * coef[..., None]  # daughter momentum in the rest frame
    direction = parent[..., :3]
    norm = np.linalg.norm(q, axis=-1) * np.linalg.norm(direction, axis=-1)
    return np.asarray(
        np.sum(q * direction, axis=-1) / np.where(norm > 0.0, norm, 1.0), dtype=np.float64
    )


def _energy(p: FloatArray, which: Energy) -> FloatArray:
    pair = p[:, 2] + p[:, 3] if which == "ww" else p[:, 8] + p[:, 9]
    return _mass(pair) / LAMBDA_GEV


def _shape(p: FloatArray, response: ToyResponse) -> FloatArray:
    n = p.shape[0]
    if response.shape == "flat":
        base = np.ones(n)
    elif response.shape in ("transverse", "longitudinal"):
        # Legendre P2 of the lepton decay angles, averaged over the two W: +1 for leptons
        # along the W direction (transverse W), -1/2 for leptons at 90 degrees (longitudinal).
        cos1 = _cos_decay_angle(p[:, 2], p[:, 6])
        cos2 = _cos_decay_angle(p[:, 3], p[:, 4])
        p2 = 0.5 * (1.5 * (cos1 * cos1 + cos2 * cos2) - 1.0)
        base = p2 if response.shape == "transverse" else -p2
    elif response.shape == "dphi_jj":
        base = np.cos(np.arctan2(p[:, 8, 1], p[:, 8, 0]) - np.arctan2(p[:, 9, 1], p[:, 9, 0]))
    else:  # gap_jj: positive for close jets, negative for a large rapidity gap
        y = 0.5 * np.log((p[:, 8:10, 3] + p[:, 8:10, 2]) / (p[:, 8:10, 3] - p[:, 8:10, 2]))
        base = np.clip(1.0 - np.abs(y[:, 0] - y[:, 1]) / 3.5, -1.0, 1.0)
    off = response.offset
    return np.asarray(off + (1.0 - abs(off)) * base, dtype=np.float64)


def toy_eft_lin(operator: str, p: FloatArray) -> FloatArray:
    """Toy LIN / SM ratio of ``operator`` per event (momenta in the demo's particle order)."""
    r = _response(operator)
    ev = _as_events(p)
    e = _energy(ev, r.energy)
    return np.asarray(r.a * e * e * _shape(ev, r), dtype=np.float64)


def toy_eft_quad(operator: str, p: FloatArray) -> FloatArray:
    """Toy QUAD / SM ratio of ``operator`` per event (momenta in the demo's particle order)."""
    r = _response(operator)
    e = _energy(_as_events(p), r.energy)
    return np.asarray(r.b * e**4, dtype=np.float64)


def toy_eft_ratio(operator: str, c: float, p: FloatArray) -> FloatArray:
    """Toy ``|A(c)|^2 / |A_SM|^2 = 1 + c lin + c^2 quad`` per event at coefficient c."""
    return 1.0 + c * toy_eft_lin(operator, p) + c * c * toy_eft_quad(operator, p)


def sm_suppression(p: FloatArray) -> FloatArray:
    """The toy SM's density over the generator's proposal density, in (0, 1]."""
    ev = _as_events(p)
    xw = (_energy(ev, "ww") / SM_SCALE_WW) ** 2
    xj = (_energy(ev, "jj") / SM_SCALE_JJ) ** 2
    return np.asarray(1.0 / ((1.0 + xw) ** 2 * (1.0 + xj) ** 2), dtype=np.float64)


def _sm_scale(which: Energy) -> float:
    return SM_SCALE_WW if which == "ww" else SM_SCALE_JJ


def toy_lin_bound(operator: str) -> float:
    """Upper bound of ``sm_suppression * |lin|`` over all phase space (for rejection)."""
    r = _response(operator)
    scale = _sm_scale(r.energy)
    # E^2 / (1 + E^2/e^2)^2 <= e^2 / 4, |shape| <= 1, the other factor of the suppression <= 1
    return abs(r.a) * scale * scale / 4.0


def toy_quad_bound(operator: str) -> float:
    """Upper bound of ``sm_suppression * quad`` over all phase space (for rejection)."""
    r = _response(operator)
    # E^4 / (1 + E^2/e^2)^2 <= e^4
    return r.b * _sm_scale(r.energy) ** 4


def lepton_decay_cosines(p: FloatArray) -> FloatArray:
    """(n, 2) cosines of the mu+ and e+ decay angles in their W rest frames (for tests)."""
    ev = _as_events(p)
    return np.stack(
        [_cos_decay_angle(ev[:, 2], ev[:, 6]), _cos_decay_angle(ev[:, 3], ev[:, 4])], axis=1
    )
