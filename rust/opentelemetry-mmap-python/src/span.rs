//! `Span`: the spans of `MmapTracerProvider` (the tracing API's `Span`,
//! registered as its virtual subclass in Python). Its start wrote
//! `StartSpan`; what is set later is kept in Rust values (converted once,
//! when set) and written at `end`: `ChangeSpanName` if renamed,
//! `UpdateAttributes`, one `AddLink`, the events, `EndSpan`.
//!
//! Limits as the SDK's defaults: 128 attributes, 128 events, 128 links; more
//! are dropped. A span whose start went into an earlier file (started
//! before a fork) writes its whole start into the current file at its end.

use opentelemetry::KeyValue;
use opentelemetry::trace::{Link, Status};
use opentelemetry_mmap::MmapExporterFile;
use opentelemetry_mmap::clock::now_unix_nano;
use opentelemetry_mmap::records::{SpanEnd, SpanEventFields, SpanStart};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyString;

use crate::convert::{attribute_value, key_values, span_ref};
use crate::span_writer::{enum_value, link_to, span_kind, status};
use crate::tracer::{Current, Parent, Tracer};

/// Most attributes (at the start and set later), events and links a span keeps.
pub(crate) const MAX_ATTRIBUTES: usize = 128;
const MAX_EVENTS: usize = 128;
pub(crate) const MAX_LINKS: usize = 128;

static SPAN_CONTEXT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static TRACE_FLAGS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DEFAULT_TRACE_STATE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static FORMAT_EXCEPTION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static SPAN_KIND: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static STATUS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static STATUS_CODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// An API `SpanContext` (not remote).
pub(crate) fn span_context<'py>(
    py: Python<'py>,
    trace_id: u128,
    span_id: u64,
    flags: u8,
    trace_state: Option<&Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let flags = TRACE_FLAGS
        .import(py, "opentelemetry.trace", "TraceFlags")?
        .call1((flags,))?;
    let state = match trace_state {
        Some(s) => s.bind(py).clone(),
        None => DEFAULT_TRACE_STATE
            .import(py, "opentelemetry.trace", "DEFAULT_TRACE_STATE")?
            .clone(),
    };
    SPAN_CONTEXT
        .import(py, "opentelemetry.trace", "SpanContext")?
        .call1((trace_id, span_id, false, flags, state))
}

/// What `Tracer.start_span` decided and converted.
pub(crate) struct StartFields {
    pub(crate) trace_id: u128,
    pub(crate) span_id: u64,
    pub(crate) parent: Option<Parent>,
    pub(crate) name: String,
    pub(crate) kind: u8,
    pub(crate) start_time_unix_nano: u64,
    pub(crate) attributes: Vec<KeyValue>,
    pub(crate) links: Vec<Link>,
    pub(crate) record_exception: bool,
    pub(crate) set_status_on_exception: bool,
}

struct Event {
    name: String,
    time_unix_nano: u64,
    attributes: Vec<KeyValue>,
}

/// A recorded span of an `MmapTracerProvider`.
#[pyclass(module = "opentelemetry_mmap._native", weakref)]
pub(crate) struct Span {
    tracer: Py<Tracer>,
    /// The generation of the file its start went into (0: none).
    generation: u64,
    start: StartFields,
    renamed: bool,
    /// Attributes set after the start (each key once).
    attributes: Vec<KeyValue>,
    events: Vec<Event>,
    status: Status,
    ended: bool,
    end_time_unix_nano: Option<u64>,
    context: Option<Py<PyAny>>,
}

fn write_start(file: &MmapExporterFile, scope_ref: i64, s: &StartFields) {
    let start = SpanStart {
        span: span_ref(s.trace_id, s.span_id, 1),
        scope_ref,
        parent: s
            .parent
            .as_ref()
            .map(|p| (p.span_id.to_be_bytes(), p.remote)),
        name: &s.name,
        kind: span_kind(s.kind),
        start_time_unix_nano: s.start_time_unix_nano,
        attributes: &s.attributes,
    };
    file.write_span_start(&start);
}

fn string_of(v: &Bound<'_, PyAny>) -> PyResult<String> {
    match v.cast::<PyString>() {
        Ok(s) => Ok(s.to_cow()?.into_owned()),
        Err(_) => Ok(v.str()?.to_cow()?.into_owned()),
    }
}

impl Span {
    /// A span whose `StartSpan` is written now (when its tracer has a file).
    pub(crate) fn start(py: Python<'_>, tracer: Py<Tracer>, start: StartFields) -> Span {
        let mut generation = 0;
        if let Some(cur) = tracer.get().current(py) {
            write_start(&cur.file, cur.scope_ref, &start);
            generation = cur.generation;
        }
        Span {
            tracer,
            generation,
            start,
            renamed: false,
            attributes: Vec::new(),
            events: Vec::new(),
            status: Status::Unset,
            ended: false,
            end_time_unix_nano: None,
            context: None,
        }
    }

    /// This span as the parent of another.
    pub(crate) fn as_parent(&self, py: Python<'_>) -> Parent {
        Parent {
            trace_id: self.start.trace_id,
            span_id: self.start.span_id,
            flags: 1,
            remote: false,
            trace_state: self
                .start
                .parent
                .as_ref()
                .and_then(|p| p.trace_state.as_ref().map(|s| s.clone_ref(py))),
        }
    }

    /// Sets an attribute already converted (each key once; at most `MAX_ATTRIBUTES`).
    fn set(&mut self, key: String, value: opentelemetry::Value) {
        if self.ended {
            return;
        }
        if let Some(kv) = self.attributes.iter_mut().find(|kv| kv.key.as_str() == key) {
            kv.value = value;
        } else if self.start.attributes.len() + self.attributes.len() < MAX_ATTRIBUTES
            || self
                .start
                .attributes
                .iter()
                .any(|kv| kv.key.as_str() == key)
        {
            self.attributes.push(KeyValue::new(key, value));
        }
    }

    fn set_status_code(&mut self, code: u8, description: Option<&str>) {
        if self.ended || matches!(self.status, Status::Ok) || code == 0 {
            return;
        }
        self.status = status(code, description);
    }

    fn push_event(&mut self, event: Event) {
        if !self.ended && self.events.len() < MAX_EVENTS {
            self.events.push(event);
        }
    }
}

/// A valid attribute as Rust values; `None` (left out, as the SDK does) for
/// anything else.
fn attribute(
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
) -> Option<(String, opentelemetry::Value)> {
    let key = key.cast::<PyString>().ok()?.to_cow().ok()?.into_owned();
    Some((key, attribute_value(value)?))
}

/// Runs `f` on the span's state. Python code never runs while it is borrowed
/// (values are converted before), so the borrow only fails if that rule is
/// broken; then nothing is changed (never raises into the application).
fn with<R>(slf: &Bound<'_, Span>, f: impl FnOnce(&mut Span) -> R) -> Option<R> {
    slf.try_borrow_mut().ok().map(|mut s| f(&mut s))
}

fn read<R>(slf: &Bound<'_, Span>, f: impl FnOnce(&Span) -> R) -> Option<R> {
    slf.try_borrow().ok().map(|s| f(&s))
}

/// An `exception` event, as the SDK writes it.
fn exception_event(
    exception: &Bound<'_, PyAny>,
    attributes: Option<&Bound<'_, PyAny>>,
    timestamp: Option<u64>,
    escaped: bool,
) -> PyResult<Event> {
    let py = exception.py();
    let ty = exception.get_type();
    let module: String = ty
        .getattr(intern!(py, "__module__"))?
        .extract()
        .unwrap_or_default();
    let qualname: String = ty.getattr(intern!(py, "__qualname__"))?.extract()?;
    let exception_type = if module.is_empty() || module == "builtins" {
        qualname
    } else {
        format!("{module}.{qualname}")
    };
    let lines = FORMAT_EXCEPTION
        .import(py, "traceback", "format_exception")?
        .call1((
            &ty,
            exception,
            exception.getattr(intern!(py, "__traceback__"))?,
        ))?;
    let stacktrace = PyString::new(py, "").call_method1(intern!(py, "join"), (lines,))?;
    let mut attrs = vec![
        KeyValue::new("exception.type", exception_type),
        KeyValue::new("exception.message", string_of(exception)?),
        KeyValue::new("exception.stacktrace", string_of(&stacktrace)?),
        KeyValue::new("exception.escaped", if escaped { "True" } else { "False" }),
    ];
    for kv in key_values(attributes) {
        match attrs.iter_mut().find(|a| a.key == kv.key) {
            Some(a) => a.value = kv.value,
            None => attrs.push(kv),
        }
    }
    Ok(Event {
        name: "exception".to_owned(),
        time_unix_nano: timestamp.unwrap_or_else(now_unix_nano),
        attributes: attrs,
    })
}

/// `(code, description)` of a `Status`, or of a `StatusCode` and a description.
fn status_of(
    status: &Bound<'_, PyAny>,
    description: Option<&Bound<'_, PyAny>>,
) -> PyResult<(u8, Option<String>)> {
    let py = status.py();
    let (code, description) = match status.getattr(intern!(py, "status_code")) {
        Ok(code) => (
            enum_value(&code)?,
            status.getattr(intern!(py, "description"))?,
        ),
        Err(_) => (
            enum_value(status)?,
            description
                .cloned()
                .unwrap_or_else(|| py.None().into_bound(py)),
        ),
    };
    Ok((code, description.extract()?))
}

#[pymethods]
impl Span {
    /// The span's API `SpanContext`.
    fn get_span_context(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let s = slf.try_borrow()?;
        if let Some(c) = &s.context {
            return Ok(c.clone_ref(py));
        }
        let (trace_id, span_id) = (s.start.trace_id, s.start.span_id);
        let state = s
            .start
            .parent
            .as_ref()
            .and_then(|p| p.trace_state.as_ref().map(|t| t.clone_ref(py)));
        drop(s);
        let c = span_context(py, trace_id, span_id, 1, state.as_ref())?.unbind();
        with(slf, |s| s.context = Some(c.clone_ref(py)));
        Ok(c)
    }

    /// What instrumentation libraries read of a span (the SDK's span has
    /// them): `name`, `kind`, `start_time`, `end_time`, `parent`, `status`,
    /// `attributes` (a copy; empty once ended: they are in the file).
    #[getter]
    fn name(&self) -> String {
        self.start.name.clone()
    }

    #[getter]
    fn kind<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let kind = slf.try_borrow()?.start.kind;
        SPAN_KIND
            .import(slf.py(), "opentelemetry.trace", "SpanKind")?
            .call1((kind,))
    }

    #[getter]
    fn start_time(&self) -> u64 {
        self.start.start_time_unix_nano
    }

    #[getter]
    fn end_time(&self) -> Option<u64> {
        self.end_time_unix_nano
    }

    #[getter]
    fn parent<'py>(slf: &Bound<'py, Self>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = slf.py();
        let s = slf.try_borrow()?;
        let Some(p) = &s.start.parent else {
            return Ok(None);
        };
        let (trace_id, span_id, remote, flags) = (p.trace_id, p.span_id, p.remote, p.flags);
        let state = p.trace_state.as_ref().map(|t| t.clone_ref(py));
        drop(s);
        let flags = TRACE_FLAGS
            .import(py, "opentelemetry.trace", "TraceFlags")?
            .call1((flags,))?;
        let state = match state {
            Some(t) => t.into_bound(py),
            None => DEFAULT_TRACE_STATE
                .import(py, "opentelemetry.trace", "DEFAULT_TRACE_STATE")?
                .clone(),
        };
        SPAN_CONTEXT
            .import(py, "opentelemetry.trace", "SpanContext")?
            .call1((trace_id, span_id, remote, flags, state))
            .map(Some)
    }

    #[getter]
    fn status<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let (code, description) = match &slf.try_borrow()?.status {
            Status::Unset => (0, None),
            Status::Ok => (1, None),
            Status::Error { description } => (2, Some(description.to_string())),
        };
        let code = STATUS_CODE
            .import(py, "opentelemetry.trace", "StatusCode")?
            .call1((code,))?;
        STATUS
            .import(py, "opentelemetry.trace", "Status")?
            .call1((code, description))
    }

    #[getter]
    fn attributes<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let py = slf.py();
        let kvs: Vec<KeyValue> = {
            let s = slf.try_borrow()?;
            s.start
                .attributes
                .iter()
                .chain(&s.attributes)
                .cloned()
                .collect()
        };
        let d = pyo3::types::PyDict::new(py);
        for kv in &kvs {
            d.set_item(kv.key.as_str(), crate::convert::py_value(py, &kv.value)?)?;
        }
        Ok(d)
    }

    fn set_attribute(slf: &Bound<'_, Self>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) {
        if let Some((k, v)) = attribute(key, value) {
            with(slf, |s| s.set(k, v));
        }
    }

    fn set_attributes(slf: &Bound<'_, Self>, attributes: &Bound<'_, PyAny>) {
        let kvs: Vec<_> = crate::convert::pairs(Some(attributes))
            .iter()
            .filter_map(|(k, v)| attribute(k, v))
            .collect();
        with(slf, |s| {
            for (k, v) in kvs {
                s.set(k, v);
            }
        });
    }

    #[pyo3(signature = (name, attributes=None, timestamp=None))]
    fn add_event(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        attributes: Option<&Bound<'_, PyAny>>,
        timestamp: Option<u64>,
    ) -> PyResult<()> {
        let event = Event {
            name: string_of(name)?,
            time_unix_nano: timestamp.unwrap_or_else(now_unix_nano),
            attributes: key_values(attributes),
        };
        with(slf, |s| s.push_event(event));
        Ok(())
    }

    #[pyo3(signature = (context, attributes=None))]
    fn add_link(
        slf: &Bound<'_, Self>,
        context: &Bound<'_, PyAny>,
        attributes: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let link = link_to(context, attributes, 0)?;
        if link.span_context.is_valid() {
            with(slf, |s| {
                if !s.ended && s.start.links.len() < MAX_LINKS {
                    s.start.links.push(link);
                }
            });
        }
        Ok(())
    }

    fn update_name(slf: &Bound<'_, Self>, name: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = string_of(name)?;
        with(slf, |s| {
            if !s.ended {
                s.start.name = name;
                s.renamed = true;
            }
        });
        Ok(())
    }

    fn is_recording(&self) -> bool {
        !self.ended
    }

    /// A `Status`, or a `StatusCode` (and a description for `ERROR`). Once
    /// `OK`, the status stays; `UNSET` is ignored.
    #[pyo3(signature = (status, description=None))]
    fn set_status(
        slf: &Bound<'_, Self>,
        status: &Bound<'_, PyAny>,
        description: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (code, description) = status_of(status, description)?;
        with(slf, |s| s.set_status_code(code, description.as_deref()));
        Ok(())
    }

    /// An `exception` event, as the SDK writes it.
    #[pyo3(signature = (exception, attributes=None, timestamp=None, escaped=false))]
    fn record_exception(
        slf: &Bound<'_, Self>,
        exception: &Bound<'_, PyAny>,
        attributes: Option<&Bound<'_, PyAny>>,
        timestamp: Option<u64>,
        escaped: bool,
    ) -> PyResult<()> {
        if read(slf, |s| s.ended).unwrap_or(true) {
            return Ok(());
        }
        let event = exception_event(exception, attributes, timestamp, escaped)?;
        with(slf, |s| s.push_event(event));
        Ok(())
    }

    /// Writes what the span's end carries; later calls do nothing.
    #[pyo3(signature = (end_time=None))]
    fn end(slf: &Bound<'_, Self>, end_time: Option<u64>) {
        let py = slf.py();
        let Some(tracer) = read(slf, |s| (!s.ended).then(|| s.tracer.clone_ref(py))).flatten()
        else {
            return;
        };
        // Before the borrow: interning the scope in a new file reads Python objects.
        let cur = tracer.get().current(py);
        with(slf, |s| {
            s.finish(cur, end_time.unwrap_or_else(now_unix_nano))
        });
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Ends the span; an exception is recorded (and sets the status to
    /// `ERROR`) as the span's start asked.
    fn __exit__(
        slf: &Bound<'_, Self>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        exc_val: Option<&Bound<'_, PyAny>>,
        _exc_tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let mut result = Ok(());
        let options = read(slf, |s| {
            (!s.ended).then_some((s.start.record_exception, s.start.set_status_on_exception))
        })
        .flatten();
        if let (Some(exc), Some((record, set_status))) = (exc_val.filter(|e| !e.is_none()), options)
        {
            if record {
                match exception_event(exc, None, None, true) {
                    Ok(event) => {
                        with(slf, |s| s.push_event(event));
                    }
                    Err(e) => result = Err(e),
                }
            }
            if set_status {
                let description = format!("{}: {}", exc.get_type().name()?, string_of(exc)?);
                with(slf, |s| s.set_status_code(2, Some(&description)));
            }
        }
        Span::end(slf, None);
        result
    }
}

impl Span {
    /// Writes the end (the whole start first when it went into another
    /// file) and frees what was kept for it.
    fn finish(&mut self, cur: Option<Current>, end_time_unix_nano: u64) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.end_time_unix_nano = Some(end_time_unix_nano);
        let Some(cur) = cur else {
            return;
        };
        let mut renamed = self.renamed.then_some(self.start.name.as_str());
        if cur.generation != self.generation {
            write_start(&cur.file, cur.scope_ref, &self.start);
            renamed = None;
        }
        let events: Vec<SpanEventFields<'_>> = self
            .events
            .iter()
            .map(|e| SpanEventFields {
                name: &e.name,
                time_unix_nano: e.time_unix_nano,
                attributes: &e.attributes,
            })
            .collect();
        let end = SpanEnd {
            span: span_ref(self.start.trace_id, self.start.span_id, 1),
            scope_ref: cur.scope_ref,
            renamed,
            attributes: &self.attributes,
            links: &self.start.links,
            events: &events,
            end_time_unix_nano,
            status: &self.status,
        };
        cur.file.write_span_end(&end);
        drop(events);
        self.attributes = Vec::new();
        self.events = Vec::new();
        self.start.attributes = Vec::new();
        self.start.links = Vec::new();
    }
}
