//! `MmapFile`: one open OTLP-MMAP file, written through the record writers of
//! `opentelemetry_mmap::records`. The Python classes of the package
//! (`python/opentelemetry_mmap`) are built on it.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{
    Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_mmap::MmapExporterFile;
use opentelemetry_mmap::records::{
    InstrumentKind, LogRecordFields, Measured, SpanEnd, SpanEventFields, SpanRef, SpanStart,
};
use opentelemetry_sdk::Resource;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat};

use crate::convert::{any_key_values, any_value, key_values};

/// Whether writes run with the GIL released (see `set_release_gil`).
static RELEASE_GIL: AtomicBool = AtomicBool::new(false);

/// Makes every later write release the GIL around the ring write (`True`) or
/// keep it (`False`, the default). For the measurements of
/// `python/GIL.md` only.
#[pyfunction]
pub(crate) fn set_release_gil(release: bool) {
    RELEASE_GIL.store(release, Ordering::Relaxed);
}

/// Runs a ring write, with the GIL released when so set.
#[inline]
fn write<R: Send>(py: Python<'_>, f: impl FnOnce() -> R + Send) -> R {
    if RELEASE_GIL.load(Ordering::Relaxed) {
        py.detach(f)
    } else {
        f()
    }
}

fn span_ref(trace_id: u128, span_id: u64, flags: u8) -> SpanRef {
    SpanRef {
        trace_id: trace_id.to_be_bytes(),
        span_id: span_id.to_be_bytes(),
        trace_flags: flags,
    }
}

/// Python's `SpanKind` values (INTERNAL = 0 ... CONSUMER = 4).
fn span_kind(kind: u8) -> SpanKind {
    match kind {
        1 => SpanKind::Server,
        2 => SpanKind::Client,
        3 => SpanKind::Producer,
        4 => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

/// Python's `StatusCode` values (UNSET = 0, OK = 1, ERROR = 2).
fn status(code: u8, description: Option<&str>) -> Status {
    match code {
        1 => Status::Ok,
        2 => Status::error(description.unwrap_or_default().to_owned()),
        _ => Status::Unset,
    }
}

/// A link given as `(trace_id, span_id, trace_flags, is_remote, trace_state_header, attributes, dropped_attributes)`.
fn link(item: &Bound<'_, PyAny>) -> Option<Link> {
    type LinkTuple<'py> = (
        u128,
        u64,
        u8,
        bool,
        Option<String>,
        Option<Bound<'py, PyAny>>,
        u32,
    );
    let (trace_id, span_id, flags, remote, state, attrs, dropped): LinkTuple<'_> =
        item.extract().ok()?;
    let state = state
        .as_deref()
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    let cx = SpanContext::new(
        TraceId::from_bytes(trace_id.to_be_bytes()),
        SpanId::from_bytes(span_id.to_be_bytes()),
        TraceFlags::new(flags),
        remote,
        state,
    );
    Some(Link::new(cx, key_values(attrs.as_ref()), dropped))
}

/// An OTLP-MMAP file this process writes. Created (replacing any file at the
/// path) with the ring sizes of the `OTEL_MMAP_*` variables.
#[pyclass(module = "opentelemetry_mmap._native")]
pub(crate) struct MmapFile {
    file: Option<MmapExporterFile>,
}

impl MmapFile {
    fn file(&self) -> Option<&MmapExporterFile> {
        self.file.as_ref()
    }
}

#[pymethods]
impl MmapFile {
    /// Creates the file at `path` (its directory too).
    #[new]
    fn new(path: std::path::PathBuf) -> PyResult<Self> {
        let file = MmapExporterFile::builder()
            .with_path(path)
            .build()
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        Ok(MmapFile { file: Some(file) })
    }

    /// The file's path; `None` once closed.
    fn path(&self) -> Option<String> {
        self.file().map(|f| f.path().display().to_string())
    }

    /// Unmaps and closes the file (in a forked child, the parent's file):
    /// later writes do nothing.
    fn close(&mut self) {
        self.file = None;
    }

    /// Interns a resource (its attributes) and returns its ref.
    fn resource_ref(&self, attributes: Option<Bound<'_, PyAny>>) -> i64 {
        let Some(file) = self.file() else { return 0 };
        let resource = Resource::builder_empty()
            .with_attributes(key_values(attributes.as_ref()))
            .build();
        file.resource_ref_of(&resource)
    }

    /// Interns an instrumentation scope under `resource_ref` and returns its ref.
    #[pyo3(signature = (resource_ref, name, version=None, schema_url=None, attributes=None))]
    fn scope_ref(
        &self,
        resource_ref: i64,
        name: String,
        version: Option<String>,
        schema_url: Option<String>,
        attributes: Option<Bound<'_, PyAny>>,
    ) -> i64 {
        let Some(file) = self.file() else { return 0 };
        let mut scope = InstrumentationScope::builder(name);
        if let Some(v) = version {
            scope = scope.with_version(v);
        }
        if let Some(s) = schema_url {
            scope = scope.with_schema_url(s);
        }
        let scope = scope
            .with_attributes(key_values(attributes.as_ref()))
            .build();
        file.scope_ref_in(&scope, resource_ref)
    }

    /// Writes a span's `StartSpan`. `parent_span_id` 0 is no parent.
    #[allow(clippy::too_many_arguments)]
    fn span_start(
        &self,
        py: Python<'_>,
        scope_ref: i64,
        trace_id: u128,
        span_id: u64,
        trace_flags: u8,
        parent_span_id: u64,
        parent_is_remote: bool,
        name: &str,
        kind: u8,
        start_time_unix_nano: u64,
        attributes: Option<Bound<'_, PyAny>>,
    ) {
        let Some(file) = self.file() else { return };
        let attributes = key_values(attributes.as_ref());
        let start = SpanStart {
            span: span_ref(trace_id, span_id, trace_flags),
            scope_ref,
            parent: (parent_span_id != 0).then(|| (parent_span_id.to_be_bytes(), parent_is_remote)),
            name,
            kind: span_kind(kind),
            start_time_unix_nano,
            attributes: &attributes,
        };
        write(py, || file.write_span_start(&start));
    }

    /// Writes a span's end: its new name (when renamed), the attributes given
    /// (added or changed since the start), links, events, then `EndSpan`.
    /// Links are `(trace_id, span_id, trace_flags, is_remote, trace_state,
    /// attributes, dropped_attributes_count)`, events `(name, time, attributes)`.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (scope_ref, trace_id, span_id, trace_flags, end_time_unix_nano, status_code, status_description=None, renamed=None, attributes=None, links=None, events=None))]
    fn span_end(
        &self,
        py: Python<'_>,
        scope_ref: i64,
        trace_id: u128,
        span_id: u64,
        trace_flags: u8,
        end_time_unix_nano: u64,
        status_code: u8,
        status_description: Option<&str>,
        renamed: Option<&str>,
        attributes: Option<Bound<'_, PyAny>>,
        links: Option<Bound<'_, PyAny>>,
        events: Option<Bound<'_, PyAny>>,
    ) {
        let Some(file) = self.file() else { return };
        let attributes = key_values(attributes.as_ref());
        let links: Vec<Link> = links
            .and_then(|l| l.try_iter().ok())
            .map(|it| it.flatten().filter_map(|l| link(&l)).collect())
            .unwrap_or_default();
        type EventTuple<'py> = (String, u64, Option<Bound<'py, PyAny>>);
        let events: Vec<(String, u64, Vec<KeyValue>)> = events
            .and_then(|e| e.try_iter().ok())
            .map(|it| {
                it.flatten()
                    .filter_map(|e| e.extract::<EventTuple<'_>>().ok())
                    .map(|(name, time, attrs)| (name, time, key_values(attrs.as_ref())))
                    .collect()
            })
            .unwrap_or_default();
        let events: Vec<SpanEventFields<'_>> = events
            .iter()
            .map(|(name, time, attrs)| SpanEventFields {
                name,
                time_unix_nano: *time,
                attributes: attrs,
            })
            .collect();
        let status = status(status_code, status_description);
        let end = SpanEnd {
            span: span_ref(trace_id, span_id, trace_flags),
            scope_ref,
            renamed,
            attributes: &attributes,
            links: &links,
            events: &events,
            end_time_unix_nano,
            status: &status,
        };
        write(py, || file.write_span_end(&end));
    }

    /// Writes one log record. `trace_id` 0 is none.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (scope_ref, time_unix_nano, severity_number=0, severity_text=None, body=None, attributes=None, trace_id=0, span_id=0, trace_flags=0, event_name=None))]
    fn log_record(
        &self,
        py: Python<'_>,
        scope_ref: i64,
        time_unix_nano: u64,
        severity_number: u64,
        severity_text: Option<&str>,
        body: Option<Bound<'_, PyAny>>,
        attributes: Option<Bound<'_, PyAny>>,
        trace_id: u128,
        span_id: u64,
        trace_flags: u8,
        event_name: Option<&str>,
    ) {
        let Some(file) = self.file() else { return };
        let body = body.and_then(|b| any_value(&b, 0));
        let attributes = any_key_values(attributes.as_ref());
        let record = LogRecordFields {
            scope_ref,
            time_unix_nano,
            severity_number,
            severity_text: severity_text.unwrap_or_default(),
            body: body.as_ref(),
            event_name: event_name.unwrap_or_default(),
            span: (trace_id != 0).then(|| span_ref(trace_id, span_id, trace_flags)),
            attributes: &attributes,
        };
        write(py, || file.write_log_record(&record));
    }

    /// Interns an instrument's definition. `kind`: 0 counter, 1 up-down
    /// counter, 2 histogram (with `boundaries`), 3 gauge.
    #[pyo3(signature = (scope_ref, name, description="", unit="", kind=0, boundaries=None))]
    fn metric_ref(
        &self,
        scope_ref: i64,
        name: &str,
        description: &str,
        unit: &str,
        kind: u8,
        boundaries: Option<Vec<f64>>,
    ) -> i64 {
        let Some(file) = self.file() else { return 0 };
        let kind = match kind {
            0 => InstrumentKind::Counter,
            1 => InstrumentKind::UpDownCounter,
            2 => InstrumentKind::Histogram(
                boundaries
                    .as_deref()
                    .unwrap_or(&opentelemetry_mmap::metrics::DEFAULT_HISTOGRAM_BOUNDARIES),
            ),
            _ => InstrumentKind::Gauge,
        };
        file.metric_ref(scope_ref, name, description, unit, kind)
    }

    /// Writes one measurement (an `int` as `as_long`, a `float` as
    /// `as_double`), timed now. `trace_id` 0 is no span.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (metric_ref, value, attributes=None, trace_id=0, span_id=0, trace_flags=0))]
    fn measure(
        &self,
        py: Python<'_>,
        metric_ref: i64,
        value: Bound<'_, PyAny>,
        attributes: Option<Bound<'_, PyAny>>,
        trace_id: u128,
        span_id: u64,
        trace_flags: u8,
    ) {
        let Some(file) = self.file() else { return };
        let value = if value.is_instance_of::<PyFloat>() || value.is_instance_of::<PyBool>() {
            value.extract::<f64>().map(Measured::Double)
        } else {
            match value.extract::<i64>() {
                Ok(v) => Ok(Measured::Long(v)),
                Err(_) => value.extract::<f64>().map(Measured::Double),
            }
        };
        let Ok(value) = value else { return };
        let attributes = key_values(attributes.as_ref());
        let span = (trace_id != 0).then(|| span_ref(trace_id, span_id, trace_flags));
        write(py, || {
            file.write_measurement(metric_ref, value, &attributes, span)
        });
    }

    /// Records dropped so far: `spans`, `logs`, `measurements`, `dictionary`
    /// (and the breakdowns of `opentelemetry_mmap::DropStats`).
    fn drop_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        if let Some(file) = self.file() {
            let s = file.drop_stats();
            d.set_item("spans", s.spans)?;
            d.set_item("logs", s.logs)?;
            d.set_item("measurements", s.measurements)?;
            d.set_item("dictionary", s.dictionary)?;
            d.set_item("dictionary_no_space", s.dictionary_no_space)?;
            d.set_item("missing_entry", s.missing_entry)?;
            d.set_item("encoding_errors", s.encoding_errors)?;
        }
        Ok(d)
    }
}
