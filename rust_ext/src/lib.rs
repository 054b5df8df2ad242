//! Streaming reader of Les Houches Event files into Arrow tables of VBS observables.
//!
//! Pure Rust; the Python binding (`vbsad_batch._native`) lives in `py.rs` behind the
//! `python` feature.
//!
//! # Public API
//! - [`LheReader::open`] reads a plain or gzip LHE file's header and `<init>`; then
//!   [`LheReader::next_event`] hands out one [`event::Event`] at a time. [`OnError`] says
//!   whether a malformed event stops the reading or is recorded and skipped.
//! - [`LheBatches`] turns a reader into Arrow record batches of one [`View`] (the
//!   observables table or the particle table), with the file's [`FileSummary`] kept up to
//!   date behind [`LheBatches::summary_handle`]; [`scan_summary`] reads a whole file for
//!   its summary alone.
//! - [`FileSummary`] embeds the header metadata [`FileHeader`] (with [`Beams`],
//!   [`Process`], [`Generator`], [`MgGenerationInfo`], [`WeightDecl`]).
//! - [`plan_split`] cuts a big plain file into [`ByteRange`]s at events, and
//!   [`LheReader::open_range`] reads one of them as part of the whole file (for several
//!   processes on one file); [`RangeReport`] says what such a reader counted.
//! - Errors: [`LheError`] (I/O or [`ParseError`], which names file, line and event). A
//!   file whose text ends early is an error, or with [`OnError::Skip`] a [`Truncation`] in
//!   its summary.
//!
//! Inside: `reader/` (the state machine, the event body, the weights, the header),
//! `fields/` (the field cursor and number parsers with their SSE2 helpers),
//! `line_source` (lines of plain or gzip text), `observables`, `batches`, `summary`.

mod batches;
mod error;
pub mod event;
mod exact_sum;
mod fields;
mod line_source;
mod observables;
mod reader;
mod summary;

#[cfg(feature = "python")]
mod py;

pub use batches::{scan_summary, LheBatches, View};
pub use error::{LheError, ParseError, Truncation};
pub use reader::{
    plan_split, Beams, ByteRange, FileHeader, Generator, LheReader, MgGenerationInfo, OnError,
    Process, WeightDecl,
};
pub use summary::{FileSummary, RangeReport};
