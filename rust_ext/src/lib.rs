//! Streaming reader of Les Houches Event files into Arrow tables of VBS observables.
//!
//! Pure Rust; the Python binding lives in [`py`] behind the `python` feature.

pub mod batches;
pub mod error;
pub mod event;
pub mod fields;
pub mod line_source;
pub mod observables;
pub mod reader;
pub mod summary;

#[cfg(feature = "python")]
mod py;

pub use batches::{scan_summary, LheBatches, View};
pub use error::{LheError, ParseError};
pub use reader::{LheReader, OnError};
pub use summary::FileSummary;
