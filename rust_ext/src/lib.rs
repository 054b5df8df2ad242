//! Streaming reader of Les Houches Event files into Arrow tables of VBS observables.
//!
//! Pure Rust; the Python binding lives in [`py`] behind the `python` feature.

pub mod batches;
pub mod error;
pub mod event;
pub mod fields;
pub mod header;
pub mod lhe_reader;
pub mod line_source;
pub mod observables;
mod particle_layout;
pub mod summary;
mod wgt_lines;
pub mod xml_scan;

#[cfg(feature = "python")]
mod py;

pub use batches::{scan_summary, LheBatches, View};
pub use error::{LheError, ParseError};
pub use lhe_reader::{LheReader, OnError};
pub use summary::FileSummary;
