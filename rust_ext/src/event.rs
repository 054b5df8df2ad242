//! One LHE event as the reader hands it out (reused between events: no allocation per event).

/// One particle line of an event (LHA HEPEUP).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Particle {
    /// PDG id (IDUP).
    pub pid: i32,
    /// Status (ISTUP): -1 incoming, 1 outgoing final state, 2 intermediate resonance.
    pub status: i32,
    /// 1-based indices of the mothers (MOTHUP).
    pub mothers: [i32; 2],
    /// Colour and anticolour tags (ICOLUP).
    pub colors: [i32; 2],
    /// Momentum px, py, pz, energy and mass in GeV (PUP).
    pub px: f64,
    pub py: f64,
    pub pz: f64,
    pub e: f64,
    pub m: f64,
    /// Proper lifetime c*tau in mm (VTIMUP).
    pub lifetime: f64,
    /// Cosine of the angle between spin and momentum (SPINUP).
    pub spin: f64,
}

impl Particle {
    /// Whether the momentum, energy and mass are all finite (no NaN, no infinity).
    pub(crate) fn kinematics_finite(&self) -> bool {
        [self.px, self.py, self.pz, self.e, self.m]
            .iter()
            .all(|v| v.is_finite())
    }

    /// The particle of a line's six integer columns (IDUP, ISTUP, MOTHUP, ICOLUP) and
    /// seven float columns (PUP, VTIMUP, SPINUP), in file order.
    #[inline(always)]
    pub(crate) fn from_columns(ints: [i32; 6], floats: [f64; 7]) -> Self {
        Particle {
            pid: ints[0],
            status: ints[1],
            mothers: [ints[2], ints[3]],
            colors: [ints[4], ints[5]],
            px: floats[0],
            py: floats[1],
            pz: floats[2],
            e: floats[3],
            m: floats[4],
            lifetime: floats[5],
            spin: floats[6],
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    /// 0-based index of the event in its file.
    pub index: u64,
    pub idprup: i64,
    /// Nominal event weight (XWGTUP).
    pub xwgtup: f64,
    /// Scale in GeV (SCALUP).
    pub scalup: f64,
    pub aqedup: f64,
    pub aqcdup: f64,
    pub particles: Vec<Particle>,
    /// Named weights, aligned with the reader's weight ids; `None` where the event lacks one.
    pub weights: Vec<Option<f64>>,
}
