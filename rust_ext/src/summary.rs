//! Per-file metadata gathered while streaming: header facts, event counts, sums of weights
//! over ALL events (before any selection), rejections by reason, skipped events and
//! whether the file is truncated.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{ParseError, Truncation};
use crate::event::Event;
use crate::exact_sum::ExactSum;
use crate::observables::Rejection;
use crate::reader::{FileHeader, LheReader, WeightDecl};

#[derive(Debug, Clone, Default, Serialize)]
pub struct FileSummary {
    pub path: String,
    pub gzip: bool,
    /// What the file says about itself before its events, its keys at the top level of
    /// the JSON. Its `weights` are the named weights in column order, with their
    /// descriptions (those declared, then any the first event added); its `warnings` end
    /// with the truncation's message if the file is truncated.
    #[serde(flatten)]
    pub header: FileHeader,
    /// Events read (good ones; skipped events are counted in `n_skipped`).
    pub n_events: u64,
    /// Events with a row in the observables table.
    pub n_rows: u64,
    /// Sum over all events of the nominal weight (key "w") and of each named weight;
    /// always finite numbers (an event with a weight that is not is malformed). Each is the
    /// exact sum rounded once, whatever the order of the events.
    pub sum_weights: BTreeMap<String, f64>,
    /// The exact sums of `sum_weights` as partial sums (their exact total is the sum): the
    /// sums of byte ranges of a file add up exactly (`math.fsum`) to those of the file.
    pub sum_weights_partials: BTreeMap<String, Vec<f64>>,
    /// Events lacking a named weight, per weight id (only ids with at least one).
    pub missing_weights: BTreeMap<String, u64>,
    pub rejected: BTreeMap<String, u64>,
    pub n_skipped: u64,
    pub skipped: Vec<ParseError>,
    /// Where the text ends, or stops being readable, before `</LesHouchesEvents>` (with
    /// [`crate::OnError::Skip`]; with `Fail` that is an error). `None`: not truncated, or
    /// not read that far yet.
    pub truncated: Option<Truncation>,
    /// Bytes of (decompressed) LHE text read.
    pub bytes_read: u64,
    /// The whole file was read (false while streaming or after an error).
    pub complete: bool,
    /// For a reader of a byte range of the file: what it counted, to check the range
    /// against its neighbours. Absent for a whole file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<RangeReport>,
}

/// The events of one byte range of a file, as its reader counted them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RangeReport {
    /// Index of the range's first event in the file (as planned).
    pub first_event: u64,
    /// One past the last event begun in the range (good or skipped): the next range's
    /// `first_event` if both were planned right.
    pub next_event: u64,
    /// The reading stopped at the end of the range, where the file goes on (not at
    /// `</LesHouchesEvents>`, nor at an error).
    pub ended_at_range_end: bool,
}

/// Accumulates a [`FileSummary`] event by event.
pub(crate) struct SummaryBuilder {
    summary: FileSummary,
    sums: Vec<ExactSum>,
    missing: Vec<u64>,
    sum_w: ExactSum,
    rejected: [u64; 2],
}

impl SummaryBuilder {
    pub(crate) fn new(reader: &LheReader) -> Self {
        let header = reader.header();
        // Columns may include ids first seen in the first event: describe those too.
        let weights = reader
            .weight_ids()
            .iter()
            .map(|id| {
                header
                    .weights
                    .iter()
                    .find(|d| &d.id == id)
                    .cloned()
                    .unwrap_or_else(|| WeightDecl {
                        id: id.clone(),
                        ..WeightDecl::default()
                    })
            })
            .collect();
        let summary = FileSummary {
            path: reader.path().to_owned(),
            gzip: reader.is_gzip(),
            header: FileHeader {
                weights,
                ..header.clone()
            },
            ..FileSummary::default()
        };
        let n = reader.weight_ids().len();
        SummaryBuilder {
            summary,
            sums: vec![ExactSum::default(); n],
            missing: vec![0; n],
            sum_w: ExactSum::default(),
            rejected: [0; 2],
        }
    }

    pub(crate) fn add(&mut self, event: &Event, outcome: Result<(), Rejection>) {
        self.summary.n_events += 1;
        self.sum_w.add(event.xwgtup);
        for ((sum, missing), w) in self
            .sums
            .iter_mut()
            .zip(&mut self.missing)
            .zip(&event.weights)
        {
            match w {
                Some(v) => sum.add(*v),
                None => *missing += 1,
            }
        }
        match outcome {
            Ok(()) => self.summary.n_rows += 1,
            Err(Rejection::FewerThanTwoChargedLeptons) => self.rejected[0] += 1,
            Err(Rejection::FewerThanTwoJets) => self.rejected[1] += 1,
        }
    }

    /// The summary as it stands, with the reader's skipped events and progress.
    pub(crate) fn snapshot(&self, reader: &LheReader, complete: bool) -> FileSummary {
        let mut s = self.summary.clone();
        let mut put = |id: &str, sum: &ExactSum| {
            s.sum_weights.insert(id.to_owned(), sum.value());
            s.sum_weights_partials
                .insert(id.to_owned(), sum.partials().to_vec());
        };
        put("w", &self.sum_w);
        for (i, id) in reader.weight_ids().iter().enumerate() {
            put(id, &self.sums[i]);
        }
        for (i, id) in reader.weight_ids().iter().enumerate() {
            if self.missing[i] > 0 {
                s.missing_weights.insert(id.clone(), self.missing[i]);
            }
        }
        s.rejected.insert(
            Rejection::FewerThanTwoChargedLeptons.key().to_owned(),
            self.rejected[0],
        );
        s.rejected.insert(
            Rejection::FewerThanTwoJets.key().to_owned(),
            self.rejected[1],
        );
        s.skipped = reader.skipped().to_vec();
        s.n_skipped = reader
            .skipped()
            .iter()
            .filter(|e| e.event.is_some())
            .count() as u64;
        s.truncated = reader.truncation().cloned();
        if let Some(truncation) = &s.truncated {
            s.header.warnings.push(truncation.message.clone());
        }
        s.bytes_read = reader.bytes_read();
        s.range = reader.range_report();
        s.complete = complete;
        s
    }
}
