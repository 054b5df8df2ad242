//! The body of one event: the event information line, the particle lines, then the tail
//! up to `</event>` (handed to [`super::weights`]).

use super::event_lines::{
    content_line_from_current, event_line, fail, next_content_line, not_finite, tag_line_resync,
    EventFailure, Resync,
};
use super::header::lossy;
use super::particle_layout::ParticleLayouts;
use super::weights::EventWeights;
use crate::event::{Event, Particle};
use crate::fields::{fields, parse_f64, parse_i64, FieldCursor, FieldError};
use crate::line_source::LineSource;

/// More particles than this in one event is a corrupt NUP, not physics.
const MAX_PARTICLES: i64 = 100_000;
const PARTICLE_FIELDS: usize = 13;
const PARTICLE_FIELD_NAMES: [&str; PARTICLE_FIELDS] = [
    "IDUP", "ISTUP", "MOTHUP1", "MOTHUP2", "ICOLUP1", "ICOLUP2", "px", "py", "pz", "E", "M",
    "VTIMUP", "SPINUP",
];
const EVENT_INFO_FIELD_NAMES: [&str; 6] = ["NUP", "IDPRUP", "XWGTUP", "SCALUP", "AQEDUP", "AQCDUP"];

/// What the reader keeps from one event to the next: the event being read (reused, no
/// allocation per event), the particle layouts learned so far and the weight columns.
#[derive(Default)]
pub(super) struct EventBody {
    pub(super) event: Event,
    /// Layouts of the particle lines seen so far.
    particle_layouts: ParticleLayouts,
    pub(super) weights: EventWeights,
}

impl EventBody {
    /// Reads the event after its `<event>` line into `self.event`.
    pub(super) fn parse(&mut self, lines: &mut LineSource, index: u64) -> Result<(), EventFailure> {
        self.event.index = index;
        self.event.particles.clear();
        self.event.weights.clear();
        self.event.weights.resize(self.weights.ids().len(), None);

        // Event information line: NUP IDPRUP XWGTUP SCALUP AQEDUP AQCDUP.
        let n = next_content_line(lines)?;
        let line = lines.current();
        if let Some(resync) = tag_line_resync(line) {
            return fail(
                n,
                resync,
                "missing the event information line (NUP IDPRUP XWGTUP ...)",
            );
        }
        let (line, window) = lines.current_padded();
        let (nup, idprup, info) = match parse_info_line(line, window) {
            Some(parsed) => parsed,
            None => parse_info_line_general(n, line)?,
        };
        // Both readers of the line end here: a weight that is NaN or infinite would make
        // every sum of weights NaN, so the event is malformed.
        if !info[0].is_finite() {
            return fail(
                n,
                Resync::SkipToEventEnd,
                not_finite("event information field 3 (XWGTUP)", fields(line).nth(2)),
            );
        }
        self.event.idprup = idprup;
        self.event.xwgtup = info[0];
        self.event.scalup = info[1];
        self.event.aqedup = info[2];
        self.event.aqcdup = info[3];
        self.parse_particles_and_tail(lines, nup)
    }

    fn parse_particles_and_tail(
        &mut self,
        lines: &mut LineSource,
        nup: i64,
    ) -> Result<(), EventFailure> {
        for k in 0..nup {
            let (n, line, window) = event_line(lines)?;
            // A line that a layout reads is a particle line, neither blank nor a `#` line
            // nor a comment, and no comment is open before it: take it without those checks.
            // Its numbers are digits in a fixed layout: finite, as the general path requires.
            if let Some(particle) = self.particle_layouts.read(line, window) {
                debug_assert!(particle.kinematics_finite());
                self.event.particles.push(particle);
                continue;
            }
            let n = content_line_from_current(lines, n)?;
            let line = lines.current();
            // Parse first; only a line that fails is asked whether it is a tag (the end of
            // the particle block), which keeps the check off the hot path.
            let particle = match parse_particle(line) {
                Ok(particle) => particle,
                Err(message) => {
                    return match tag_line_resync(line) {
                        Some(resync) => fail(
                            n,
                            resync,
                            format!("NUP = {nup} but the event has only {k} particle lines"),
                        ),
                        None => fail(
                            n,
                            Resync::SkipToEventEnd,
                            format!("particle line {} of {nup}: {message}", k + 1),
                        ),
                    };
                }
            };
            self.particle_layouts.learn(line);
            self.event.particles.push(particle);
        }

        self.weights.read_tail(lines, &mut self.event.weights)
    }
}

/// A well-formed event information line (`NUP IDPRUP XWGTUP SCALUP AQEDUP AQCDUP`) with a
/// particle count in range; `None` sends the line to the general path, which reads it the
/// same way or explains what is wrong.
#[inline]
fn parse_info_line(line: &[u8], window: &[u8]) -> Option<(i64, i64, [f64; 4])> {
    let mut cursor = FieldCursor::padded(line, window);
    let nup = i64::from(cursor.i32().ok()?);
    let idprup = i64::from(cursor.i32().ok()?);
    let mut info = [0.0f64; 4];
    for slot in &mut info {
        *slot = cursor.f64().ok()?;
    }
    (cursor.at_end() && (0..=MAX_PARTICLES).contains(&nup)).then_some((nup, idprup, info))
}

/// The event information line read field by field: the same values as
/// [`parse_info_line`], or the failure that says what is wrong with it.
#[cold]
fn parse_info_line_general(n: u64, line: &[u8]) -> Result<(i64, i64, [f64; 4]), EventFailure> {
    let mut f = fields(line);
    let mut info = [0.0f64; 6];
    let mut nup = 0i64;
    let mut idprup = 0i64;
    for (k, name) in EVENT_INFO_FIELD_NAMES.iter().enumerate() {
        let Some(field) = f.next() else {
            return fail(
                n,
                Resync::SkipToEventEnd,
                format!("event information line has {k} fields, expected 6"),
            );
        };
        let ok = match k {
            0 => parse_i64(field).map(|v| nup = v).is_some(),
            1 => parse_i64(field).map(|v| idprup = v).is_some(),
            _ => parse_f64(field).map(|v| info[k] = v).is_some(),
        };
        if !ok {
            return fail(
                n,
                Resync::SkipToEventEnd,
                format!(
                    "event information field {} ({name}) is not a number: {:?}",
                    k + 1,
                    lossy(field)
                ),
            );
        }
    }
    if let Some(extra) = f.next() {
        return fail(
            n,
            Resync::SkipToEventEnd,
            format!(
                "event information line has more than 6 fields (extra {:?})",
                lossy(extra)
            ),
        );
    }
    if !(0..=MAX_PARTICLES).contains(&nup) {
        return fail(
            n,
            Resync::SkipToEventEnd,
            format!("NUP = {nup} is not a particle count"),
        );
    }
    Ok((nup, idprup, [info[2], info[3], info[4], info[5]]))
}

#[cold]
fn parse_particle(line: &[u8]) -> Result<Particle, String> {
    let mut cursor = FieldCursor::new(line);
    let mut ints = [0i32; 6];
    let mut floats = [0f64; 7];
    for (k, slot) in ints.iter_mut().enumerate() {
        *slot = cursor.i32().map_err(|e| field_error(k, e, "an integer"))?;
    }
    for (k, slot) in floats.iter_mut().enumerate() {
        *slot = cursor
            .f64()
            .map_err(|e| field_error(6 + k, e, "a number"))?;
        // A NaN or infinite momentum, energy or mass would make the observables NaN;
        // VTIMUP and SPINUP (k = 5, 6) are kept as written.
        if k < 5 && !slot.is_finite() {
            let text = fields(line).nth(6 + k).unwrap_or_default();
            return Err(bad_field(6 + k, text, "a finite number"));
        }
    }
    let extra = cursor.count_rest();
    if extra > 0 {
        return Err(format!(
            "expected {PARTICLE_FIELDS} fields, found {}",
            PARTICLE_FIELDS + extra
        ));
    }
    Ok(Particle::from_columns(ints, floats))
}

#[cold]
fn field_error(index: usize, error: FieldError<'_>, what: &str) -> String {
    match error {
        FieldError::Missing => format!("expected {PARTICLE_FIELDS} fields, found {index}"),
        FieldError::NotANumber(field) => bad_field(index, field, what),
    }
}

#[cold]
fn bad_field(index: usize, field: &[u8], what: &str) -> String {
    format!(
        "field {} ({}) is not {what}: {:?}",
        index + 1,
        PARTICLE_FIELD_NAMES[index],
        lossy(field)
    )
}
