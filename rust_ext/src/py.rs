//! The Python binding: `vbsad_batch._native`. Thin by design: it opens readers, releases
//! the GIL while parsing, and hands record batches over through the Arrow PyCapsule
//! interface. All LHE logic lives in the pure-Rust modules.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_schema::{ArrowError, Field, SchemaRef};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict, PyTuple};
use pyo3_arrow::ffi::{to_stream_pycapsule, ArrayIterator};
use pyo3_arrow::{PyRecordBatch, PySchema};

use crate::batches::{scan_summary, LheBatches, View};
use crate::error::LheError;
use crate::reader::{plan_split as plan_byte_ranges, ByteRange, LheReader, OnError};
use crate::summary::FileSummary;

fn to_py_err(py: Python<'_>, err: LheError) -> PyErr {
    match err {
        LheError::Io { path, source } => {
            let errno = source.raw_os_error().unwrap_or(0);
            // OSError(errno, strerror, filename) becomes FileNotFoundError etc. by errno.
            PyOSError::new_err((errno, source.to_string(), path))
        }
        LheError::Parse(e) => {
            let message = e.to_string();
            let build = || -> PyResult<PyErr> {
                let class = py.import("vbsad_batch.errors")?.getattr("LheParseError")?;
                let kwargs = PyDict::new(py);
                kwargs.set_item("path", &e.path)?;
                kwargs.set_item("line", e.line)?;
                kwargs.set_item("event", e.event)?;
                let instance = class.call((message.clone(),), Some(&kwargs))?;
                Ok(PyErr::from_value(instance))
            };
            build().unwrap_or_else(|_| PyValueError::new_err(message))
        }
    }
}

fn arrow_err_to_py(py: Python<'_>, err: ArrowError) -> PyErr {
    match err {
        ArrowError::ExternalError(inner) => match inner.downcast::<LheError>() {
            Ok(lhe) => to_py_err(py, *lhe),
            Err(other) => PyRuntimeError::new_err(other.to_string()),
        },
        other => PyRuntimeError::new_err(other.to_string()),
    }
}

fn on_error(skip_bad_events: bool) -> OnError {
    if skip_bad_events {
        OnError::Skip
    } else {
        OnError::Fail
    }
}

fn summary_json(summary: &FileSummary) -> PyResult<String> {
    serde_json::to_string(summary).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

enum StreamState {
    Ready(Box<LheBatches>),
    /// Another Python thread is reading a batch right now.
    Busy,
    Done,
}

/// A stream of record batches of one LHE file (observables or particles).
#[pyclass(module = "vbsad_batch._native")]
struct LheStream {
    state: Mutex<StreamState>,
    schema: SchemaRef,
    summary: Arc<Mutex<FileSummary>>,
}

impl LheStream {
    fn take(&self, done: bool) -> PyResult<Option<Box<LheBatches>>> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| PyRuntimeError::new_err("stream lock poisoned"))?;
        let next = if done {
            StreamState::Done
        } else {
            StreamState::Busy
        };
        match std::mem::replace(&mut *state, next) {
            StreamState::Ready(b) => Ok(Some(b)),
            StreamState::Done => Ok(None),
            StreamState::Busy => {
                *state = StreamState::Busy;
                Err(PyRuntimeError::new_err(
                    "this LHE stream is being read by another thread",
                ))
            }
        }
    }

    fn put(&self, state: StreamState) {
        if let Ok(mut guard) = self.state.lock() {
            *guard = state;
        }
    }
}

#[pymethods]
impl LheStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyRecordBatch>> {
        let Some(mut batches) = self.take(false)? else {
            return Ok(None);
        };
        let (batches, result) = py.detach(move || {
            let result = batches.next();
            (batches, result)
        });
        match result {
            None => {
                self.put(StreamState::Done);
                Ok(None)
            }
            Some(Ok(batch)) => {
                self.put(StreamState::Ready(batches));
                Ok(Some(PyRecordBatch::new(batch)))
            }
            Some(Err(e)) => {
                self.put(StreamState::Done);
                Err(arrow_err_to_py(py, e))
            }
        }
    }

    /// Exports the rest of the stream (Arrow PyCapsule stream interface).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyCapsule>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let batches = self
            .take(true)?
            .ok_or_else(|| PyRuntimeError::new_err("this LHE stream has already been consumed"))?;
        let schema = self.schema.clone();
        let field = Arc::new(Field::new_struct("", schema.fields().clone(), false));
        // The consumer pulls batches from C; parse with the GIL released all the same.
        let arrays = batches.map(|batch: Result<RecordBatch, ArrowError>| {
            let batch = batch?;
            Ok(Arc::new(StructArray::from(batch)) as ArrayRef)
        });
        let gil_free = GilReleasing(Box::new(arrays));
        let reader = Box::new(ArrayIterator::new(gil_free, field));
        to_stream_pycapsule(py, reader, requested_schema).map_err(PyErr::from)
    }

    #[getter]
    fn schema(&self) -> PySchema {
        PySchema::new(self.schema.clone())
    }

    /// The file's metadata as JSON: complete once the stream is exhausted.
    fn info_json(&self) -> PyResult<String> {
        let guard = self
            .summary
            .lock()
            .map_err(|_| PyRuntimeError::new_err("summary lock poisoned"))?;
        summary_json(&guard)
    }
}

type ArrayResults = Box<dyn Iterator<Item = Result<ArrayRef, ArrowError>> + Send>;

/// Runs each `next()` with the GIL released, whichever thread the consumer calls from.
struct GilReleasing(ArrayResults);

impl Iterator for GilReleasing {
    type Item = Result<ArrayRef, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let inner = &mut self.0;
        Python::attach(|py| py.detach(|| inner.next()))
    }
}

fn open(
    py: Python<'_>,
    path: PathBuf,
    view: View,
    batch_size: usize,
    skip_bad_events: bool,
) -> PyResult<LheStream> {
    if batch_size == 0 {
        return Err(PyValueError::new_err("batch_size must be at least 1"));
    }
    let reader = py
        .detach(|| LheReader::open(&path, on_error(skip_bad_events)))
        .map_err(|e| to_py_err(py, e))?;
    stream(reader, view, batch_size)
}

fn stream(reader: LheReader, view: View, batch_size: usize) -> PyResult<LheStream> {
    let batches = LheBatches::new(reader, view, batch_size);
    Ok(LheStream {
        schema: arrow_array::RecordBatchReader::schema(&batches),
        summary: batches.summary_handle(),
        state: Mutex::new(StreamState::Ready(Box::new(batches))),
    })
}

/// Opens the observables table of an LHE file (one row per event with two charged
/// leptons and two jets).
#[pyfunction]
fn open_observables(
    py: Python<'_>,
    path: PathBuf,
    batch_size: usize,
    skip_bad_events: bool,
) -> PyResult<LheStream> {
    open(py, path, View::Observables, batch_size, skip_bad_events)
}

/// Opens the particle table of an LHE file (one row per particle of every event).
#[pyfunction]
fn open_particles(
    py: Python<'_>,
    path: PathBuf,
    batch_size: usize,
    skip_bad_events: bool,
) -> PyResult<LheStream> {
    open(py, path, View::Particles, batch_size, skip_bad_events)
}

/// A [`ByteRange`] for Python: `(start, end, lines_before, events_before, last)`.
type RangeTuple = (u64, u64, u64, u64, bool);

/// Byte ranges of a big plain LHE file for reading it in `parts` processes, as tuples
/// `(start, end, lines_before, events_before, last)` (offsets in bytes); one range for a
/// gzip or small file.
#[pyfunction]
fn plan_split(
    py: Python<'_>,
    path: PathBuf,
    parts: usize,
    min_part_bytes: u64,
) -> PyResult<Vec<RangeTuple>> {
    let ranges = py
        .detach(|| plan_byte_ranges(&path, parts, min_part_bytes))
        .map_err(|source| {
            let path = path.display().to_string();
            to_py_err(py, LheError::Io { path, source })
        })?;
    Ok(ranges
        .iter()
        .map(|r| (r.start, r.end, r.lines_before, r.events_before, r.last))
        .collect())
}

/// Opens the observables table of one byte range of a plain LHE file (a range of
/// `plan_split`): the header is the file's, the events those of the range, numbered as in
/// the file; its `info_json` has the range's counts under `range`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn open_observables_range(
    py: Python<'_>,
    path: PathBuf,
    batch_size: usize,
    skip_bad_events: bool,
    start: u64,
    end: u64,
    lines_before: u64,
    events_before: u64,
    last: bool,
) -> PyResult<LheStream> {
    if batch_size == 0 {
        return Err(PyValueError::new_err("batch_size must be at least 1"));
    }
    if end < start {
        return Err(PyValueError::new_err(
            "a byte range must not end before it starts",
        ));
    }
    let range = ByteRange {
        start,
        end,
        lines_before,
        events_before,
        last,
    };
    let reader = py
        .detach(|| LheReader::open_range(&path, on_error(skip_bad_events), &range))
        .map_err(|e| to_py_err(py, e))?;
    stream(reader, View::Observables, batch_size)
}

/// Reads a whole LHE file and returns its metadata as JSON.
#[pyfunction]
fn scan_info_json(py: Python<'_>, path: PathBuf, skip_bad_events: bool) -> PyResult<String> {
    let summary = py
        .detach(|| LheReader::open(&path, on_error(skip_bad_events)).and_then(scan_summary))
        .map_err(|e| to_py_err(py, e))?;
    summary_json(&summary)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "OBSERVABLE_NAMES",
        PyTuple::new(m.py(), crate::observables::NAMES)?,
    )?;
    m.add_class::<LheStream>()?;
    m.add_function(wrap_pyfunction!(open_observables, m)?)?;
    m.add_function(wrap_pyfunction!(open_particles, m)?)?;
    m.add_function(wrap_pyfunction!(scan_info_json, m)?)?;
    m.add_function(wrap_pyfunction!(plan_split, m)?)?;
    m.add_function(wrap_pyfunction!(open_observables_range, m)?)?;
    Ok(())
}
