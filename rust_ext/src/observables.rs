//! The VBS observables of an event (definitions in DESIGN.md), one pure function each.
//!
//! Only outgoing final-state particles (ISTUP = 1) count. Jets are quarks (|id| <= 6) and
//! gluons (21); charged leptons |id| 11, 13, 15; neutrinos |id| 12, 14, 16. Objects are
//! ordered by pT, leading first; energies and momenta in GeV, angles in radians.

use crate::event::Particle;

/// Column names in table order.
pub(crate) const NAMES: [&str; 18] = [
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
];
pub(crate) const N_OBSERVABLES: usize = NAMES.len();

/// Why an event has no row in the observables table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    FewerThanTwoChargedLeptons,
    FewerThanTwoJets,
}

impl Rejection {
    pub(crate) fn key(self) -> &'static str {
        match self {
            Rejection::FewerThanTwoChargedLeptons => "fewer_than_two_charged_leptons",
            Rejection::FewerThanTwoJets => "fewer_than_two_jets",
        }
    }
}

pub(crate) fn is_jet(pid: i32) -> bool {
    let a = pid.unsigned_abs();
    (1..=6).contains(&a) || a == 21
}

pub(crate) fn is_charged_lepton(pid: i32) -> bool {
    matches!(pid.unsigned_abs(), 11 | 13 | 15)
}

pub(crate) fn is_neutrino(pid: i32) -> bool {
    matches!(pid.unsigned_abs(), 12 | 14 | 16)
}

pub(crate) fn pt(p: &Particle) -> f64 {
    transverse(p.px, p.py)
}

/// sqrt(x^2 + y^2): momenta in GeV cannot overflow, so no need for the slower `hypot`.
#[inline]
pub(crate) fn transverse(x: f64, y: f64) -> f64 {
    (x * x + y * y).sqrt()
}

/// Pseudorapidity, signed; +-inf along the beam.
pub(crate) fn eta(p: &Particle) -> f64 {
    (p.pz / pt(p)).asinh()
}

/// Azimuth in (-pi, pi].
pub(crate) fn phi(p: &Particle) -> f64 {
    let a = p.py.atan2(p.px);
    // atan2(-0.0, x < 0) is -pi; keep the interval half-open.
    if a == -std::f64::consts::PI {
        std::f64::consts::PI
    } else {
        a
    }
}

/// Invariant mass of a pair, 0 where rounding makes m^2 slightly negative.
pub(crate) fn pair_mass(a: &Particle, b: &Particle) -> f64 {
    let e = a.e + b.e;
    let (x, y, z) = (a.px + b.px, a.py + b.py, a.pz + b.pz);
    (e * e - x * x - y * y - z * z).max(0.0).sqrt()
}

/// |phi1 - phi2| folded into [0, pi].
pub(crate) fn delta_phi(phi1: f64, phi2: f64) -> f64 {
    let d = (phi1 - phi2).abs();
    if d > std::f64::consts::PI {
        2.0 * std::f64::consts::PI - d
    } else {
        d
    }
}

/// The two highest-pT particles, leading first; ties keep file order.
#[derive(Default)]
struct LeadingTwo<'a> {
    first: Option<(f64, &'a Particle)>,
    second: Option<(f64, &'a Particle)>,
}

impl<'a> LeadingTwo<'a> {
    fn offer(&mut self, p: &'a Particle) {
        let candidate = (pt(p), p);
        match self.first {
            Some((lead, _)) if candidate.0 <= lead => {
                if self.second.is_none_or(|(sub, _)| candidate.0 > sub) {
                    self.second = Some(candidate);
                }
            }
            _ => {
                self.second = self.first;
                self.first = Some(candidate);
            }
        }
    }

    fn pair(&self) -> Option<(&'a Particle, &'a Particle)> {
        Some((self.first?.1, self.second?.1))
    }
}

/// The observables of one event in [`NAMES`] order, or why it has none.
pub(crate) fn compute(particles: &[Particle]) -> Result<[f64; N_OBSERVABLES], Rejection> {
    let mut leptons = LeadingTwo::default();
    let mut jets = LeadingTwo::default();
    let (mut nu_px, mut nu_py) = (0.0, 0.0);
    for p in particles.iter().filter(|p| p.status == 1) {
        if is_charged_lepton(p.pid) {
            leptons.offer(p);
        } else if is_jet(p.pid) {
            jets.offer(p);
        } else if is_neutrino(p.pid) {
            nu_px += p.px;
            nu_py += p.py;
        }
    }
    let (l1, l2) = leptons
        .pair()
        .ok_or(Rejection::FewerThanTwoChargedLeptons)?;
    let (j1, j2) = jets.pair().ok_or(Rejection::FewerThanTwoJets)?;
    let (etaj1, etaj2) = (eta(j1), eta(j2));
    let (phij1, phij2) = (phi(j1), phi(j2));
    Ok([
        pair_mass(l1, l2),
        pair_mass(j1, j2),
        pt(l1),
        pt(l2),
        pt(j1),
        pt(j2),
        transverse(l1.px + l2.px, l1.py + l2.py),
        transverse(nu_px, nu_py),
        eta(l1),
        eta(l2),
        etaj1,
        etaj2,
        (etaj1 - etaj2).abs(),
        delta_phi(phij1, phij2),
        phij1,
        phij2,
        phi(l1),
        phi(l2),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn particle(pid: i32, status: i32, px: f64, py: f64, pz: f64) -> Particle {
        let e = (px * px + py * py + pz * pz).sqrt();
        Particle {
            pid,
            status,
            px,
            py,
            pz,
            e,
            ..Particle::default()
        }
    }

    #[test]
    fn a_hand_computed_event() {
        let ps = [
            particle(2, -1, 0.0, 0.0, 500.0),
            particle(24, 2, 10.0, 0.0, 0.0),
            particle(-11, 1, 30.0, 0.0, 0.0),
            particle(-13, 1, 0.0, 40.0, 0.0),
            particle(12, 1, 5.0, 0.0, 7.0),
            particle(14, 1, 0.0, 12.0, -3.0),
            particle(1, 1, 0.0, -100.0, 100.0),
            particle(21, 1, 80.0, 0.0, -80.0),
            particle(-13, 2, 999.0, 0.0, 0.0), // not final state
        ];
        let o = compute(&ps).unwrap();
        let get = |name: &str| o[NAMES.iter().position(|n| *n == name).unwrap()];
        assert_eq!(get("ptl1"), 40.0);
        assert_eq!(get("ptl2"), 30.0);
        assert_eq!(get("ptj1"), 100.0);
        assert_eq!(get("ptj2"), 80.0);
        assert_eq!(get("met"), 13.0);
        assert_eq!(get("ptll"), 50.0);
        // Two massless leptons at right angles: m^2 = 2 * 40 * 30.
        assert!((get("mll") - (2.0f64 * 40.0 * 30.0).sqrt()).abs() < 1e-12);
        assert!((get("etaj1") - 1f64.asinh()).abs() < 1e-15);
        assert!((get("etaj2") + 1f64.asinh()).abs() < 1e-15);
        assert!((get("deltaetajj") - 2.0 * 1f64.asinh()).abs() < 1e-15);
        assert!((get("deltaphijj") - std::f64::consts::FRAC_PI_2).abs() < 1e-15);
        assert!((get("phil1") - std::f64::consts::FRAC_PI_2).abs() < 1e-15);
    }

    #[test]
    fn rejections_by_reason() {
        let ps = [
            particle(11, 1, 1.0, 0.0, 0.0),
            particle(1, 1, 1.0, 0.0, 0.0),
            particle(2, 1, 0.0, 1.0, 0.0),
        ];
        assert_eq!(compute(&ps), Err(Rejection::FewerThanTwoChargedLeptons));
        let ps = [
            particle(11, 1, 1.0, 0.0, 0.0),
            particle(-11, 1, 1.0, 0.0, 0.0),
            particle(2, 1, 0.0, 1.0, 0.0),
        ];
        assert_eq!(compute(&ps), Err(Rejection::FewerThanTwoJets));
    }

    #[test]
    fn delta_phi_folds_into_zero_pi() {
        let pi = std::f64::consts::PI;
        assert!((delta_phi(3.0, -3.0) - (2.0 * pi - 6.0)).abs() < 1e-15);
        assert_eq!(delta_phi(0.5, 0.25), 0.25);
    }

    #[test]
    fn ties_keep_file_order() {
        let ps = [
            particle(11, 1, 10.0, 0.0, 1.0),
            particle(-11, 1, 10.0, 0.0, 2.0),
            particle(13, 1, 10.0, 0.0, 3.0),
            particle(1, 1, 0.0, 1.0, 0.0),
            particle(1, 1, 0.0, 2.0, 0.0),
        ];
        let o = compute(&ps).unwrap();
        assert!(
            (o[8] - 0.1f64.asinh()).abs() < 1e-15,
            "etal1 from the first lepton"
        );
        assert!(
            (o[9] - 0.2f64.asinh()).abs() < 1e-15,
            "etal2 from the second lepton"
        );
    }
}
