//! Arrow record batches from an [`LheReader`]: the observables table (one row per accepted
//! event) and the particle table (one row per particle of every event).

use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, RecordBatchReader};
use arrow_buffer::{NullBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};

use crate::error::LheError;
use crate::event::Event;
use crate::observables::{self, N_OBSERVABLES};
use crate::reader::LheReader;
use crate::summary::{FileSummary, SummaryBuilder};

/// Which table a stream produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Observables,
    Particles,
}

/// Column layout of one of the tables for a given set of weight ids.
fn schema(view: View, weight_ids: &[String]) -> SchemaRef {
    let f64_field = |name: &str| Field::new(name, DataType::Float64, false);
    let i32_field = |name: &str| Field::new(name, DataType::Int32, false);
    let mut fields = vec![Field::new("event", DataType::Int64, false)];
    match view {
        View::Observables => {
            fields.extend(observables::NAMES.iter().map(|n| f64_field(n)));
            fields.push(f64_field("w"));
            fields.extend(
                weight_ids
                    .iter()
                    .map(|id| Field::new(format!("w_{id}"), DataType::Float64, true)),
            );
        }
        View::Particles => {
            for name in ["pid", "status", "mother1", "mother2", "color1", "color2"] {
                fields.push(i32_field(name));
            }
            for name in ["px", "py", "pz", "e", "m", "lifetime", "spin"] {
                fields.push(f64_field(name));
            }
        }
    }
    Arc::new(Schema::new(fields))
}

/// A float64 column with nulls where a weight is missing (no validity buffer if none is).
struct OptionalColumn {
    values: Vec<f64>,
    valid: Vec<bool>,
    n_missing: usize,
}

impl OptionalColumn {
    fn push(&mut self, v: Option<f64>) {
        self.values.push(v.unwrap_or(0.0));
        self.valid.push(v.is_some());
        self.n_missing += usize::from(v.is_none());
    }

    fn finish(&mut self, capacity: usize) -> ArrayRef {
        let values = ScalarBuffer::from(std::mem::replace(
            &mut self.values,
            Vec::with_capacity(capacity),
        ));
        let valid = std::mem::replace(&mut self.valid, Vec::with_capacity(capacity));
        let nulls = (std::mem::take(&mut self.n_missing) > 0).then(|| NullBuffer::from(valid));
        Arc::new(Float64Array::new(values, nulls))
    }
}

/// Column buffers of one batch under construction.
enum Columns {
    Observables {
        event: Vec<i64>,
        values: Vec<Vec<f64>>,
        w: Vec<f64>,
        weights: Vec<OptionalColumn>,
    },
    Particles {
        event: Vec<i64>,
        ints: Box<[Vec<i32>; 6]>,
        floats: Box<[Vec<f64>; 7]>,
    },
}

impl Columns {
    /// Empty columns with room for `capacity` rows (a batch), so that filling them
    /// never reallocates.
    fn new(view: View, n_weights: usize, capacity: usize) -> Self {
        match view {
            View::Observables => Columns::Observables {
                event: Vec::with_capacity(capacity),
                values: (0..N_OBSERVABLES)
                    .map(|_| Vec::with_capacity(capacity))
                    .collect(),
                w: Vec::with_capacity(capacity),
                weights: (0..n_weights)
                    .map(|_| OptionalColumn {
                        values: Vec::with_capacity(capacity),
                        valid: Vec::with_capacity(capacity),
                        n_missing: 0,
                    })
                    .collect(),
            },
            View::Particles => Columns::Particles {
                event: Vec::with_capacity(capacity),
                ints: Box::new(std::array::from_fn(|_| Vec::with_capacity(capacity))),
                floats: Box::new(std::array::from_fn(|_| Vec::with_capacity(capacity))),
            },
        }
    }

    fn rows(&self) -> usize {
        match self {
            Columns::Observables { event, .. } | Columns::Particles { event, .. } => event.len(),
        }
    }

    fn push_event(&mut self, ev: &Event, obs: Option<&[f64; N_OBSERVABLES]>) {
        let index = i64::try_from(ev.index).unwrap_or(i64::MAX);
        match self {
            Columns::Observables {
                event,
                values,
                w,
                weights,
            } => {
                let Some(obs) = obs else { return };
                event.push(index);
                for (col, v) in values.iter_mut().zip(obs) {
                    col.push(*v);
                }
                w.push(ev.xwgtup);
                for (col, v) in weights.iter_mut().zip(&ev.weights) {
                    col.push(*v);
                }
            }
            Columns::Particles {
                event,
                ints,
                floats,
            } => {
                for p in &ev.particles {
                    event.push(index);
                    let i = [
                        p.pid,
                        p.status,
                        p.mothers[0],
                        p.mothers[1],
                        p.colors[0],
                        p.colors[1],
                    ];
                    for (col, v) in ints.iter_mut().zip(i) {
                        col.push(v);
                    }
                    let f = [p.px, p.py, p.pz, p.e, p.m, p.lifetime, p.spin];
                    for (col, v) in floats.iter_mut().zip(f) {
                        col.push(v);
                    }
                }
            }
        }
    }

    /// The batch of the rows pushed so far; the columns start again empty, with room for
    /// `capacity` rows.
    fn finish(&mut self, schema: &SchemaRef, capacity: usize) -> Result<RecordBatch, ArrowError> {
        fn take<T>(v: &mut Vec<T>, capacity: usize) -> Vec<T> {
            std::mem::replace(v, Vec::with_capacity(capacity))
        }
        let f64_array =
            |v: &mut Vec<f64>| -> ArrayRef { Arc::new(Float64Array::from(take(v, capacity))) };
        let mut arrays: Vec<ArrayRef> = Vec::new();
        match self {
            Columns::Observables {
                event,
                values,
                w,
                weights,
            } => {
                arrays.push(Arc::new(Int64Array::from(take(event, capacity))));
                arrays.extend(values.iter_mut().map(f64_array));
                arrays.push(f64_array(w));
                arrays.extend(weights.iter_mut().map(|c| c.finish(capacity)));
            }
            Columns::Particles {
                event,
                ints,
                floats,
            } => {
                arrays.push(Arc::new(Int64Array::from(take(event, capacity))));
                arrays.extend(
                    ints.iter_mut()
                        .map(|v| -> ArrayRef { Arc::new(Int32Array::from(take(v, capacity))) }),
                );
                arrays.extend(floats.iter_mut().map(f64_array));
            }
        }
        RecordBatch::try_new(schema.clone(), arrays)
    }
}

/// Rows to reserve room for in each column up front: a whole batch, up to a limit so that
/// a huge batch size does not ask for gigabytes before the first row.
fn reserved_rows(batch_size: usize) -> usize {
    batch_size.clamp(1, 1 << 16)
}

/// A stream of record batches of one view of one LHE file, with its running summary.
pub struct LheBatches {
    reader: LheReader,
    schema: SchemaRef,
    columns: Columns,
    batch_size: usize,
    summary: SummaryBuilder,
    shared: Arc<Mutex<FileSummary>>,
    done: bool,
}

impl LheBatches {
    /// `batch_size` is the number of rows per batch. Events are never split across
    /// batches, so a particle batch may exceed it by the particles of one event.
    pub fn new(reader: LheReader, view: View, batch_size: usize) -> Self {
        let schema = schema(view, reader.weight_ids());
        let summary = SummaryBuilder::new(&reader);
        let shared = Arc::new(Mutex::new(summary.snapshot(&reader, false)));
        LheBatches {
            columns: Columns::new(view, reader.weight_ids().len(), reserved_rows(batch_size)),
            reader,
            schema,
            batch_size: batch_size.max(1),
            summary,
            shared,
            done: false,
        }
    }

    /// A handle on the summary, updated after every batch and complete at the end.
    pub fn summary_handle(&self) -> Arc<Mutex<FileSummary>> {
        self.shared.clone()
    }

    fn publish(&self, complete: bool) {
        let snapshot = self.summary.snapshot(&self.reader, complete);
        if let Ok(mut guard) = self.shared.lock() {
            *guard = snapshot;
        }
    }

    /// Reads events until a batch is full or the file ends.
    fn fill(&mut self) -> Result<bool, LheError> {
        while self.columns.rows() < self.batch_size {
            let Some(event) = self.reader.next_event()? else {
                return Ok(false);
            };
            let obs = observables::compute(&event.particles);
            self.summary.add(event, obs.map(|_| ()));
            self.columns.push_event(event, obs.as_ref().ok());
        }
        Ok(true)
    }
}

impl Iterator for LheBatches {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let more = match self.fill() {
            Ok(more) => more,
            Err(e) => {
                self.done = true;
                self.publish(false);
                return Some(Err(ArrowError::ExternalError(Box::new(e))));
            }
        };
        if !more {
            self.done = true;
            self.publish(true);
            if self.columns.rows() == 0 {
                return None;
            }
        } else {
            self.publish(false);
        }
        Some(
            self.columns
                .finish(&self.schema, reserved_rows(self.batch_size)),
        )
    }
}

impl RecordBatchReader for LheBatches {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// Reads a whole file for its summary, without building any table.
pub fn scan_summary(mut reader: LheReader) -> Result<FileSummary, LheError> {
    let mut summary = SummaryBuilder::new(&reader);
    while let Some(event) = reader.next_event()? {
        let outcome = observables::compute(&event.particles).map(|_| ());
        summary.add(event, outcome);
    }
    Ok(summary.snapshot(&reader, true))
}
