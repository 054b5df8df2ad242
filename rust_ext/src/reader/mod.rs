//! The LHEF reader: the file's structure as a state machine ([`lhe_reader`]), the body of
//! one event ([`event_body`]: the information line and the particle lines), the weights
//! of the event tail ([`weights`]), and the header (`header`, `xml_scan`).
//!
//! Dependencies run one way: `lhe_reader` -> `event_body` -> `weights` -> `wgt_lines`;
//! all of them use the leaves `event_lines`, `markup`, `xml_scan` and `header`.

mod event_body;
mod event_lines;
mod header;
mod lhe_reader;
mod markup;
mod particle_layout;
mod split_plan;
mod weights;
mod wgt_lines;
mod xml_scan;

pub use header::{Beams, FileHeader, Generator, MgGenerationInfo, Process, WeightDecl};
pub use lhe_reader::{LheReader, OnError};
pub use split_plan::{plan_split, ByteRange};
