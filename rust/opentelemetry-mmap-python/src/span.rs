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
use pyo3::types::{PyString, PyTuple};

use crate::convert::{attribute_value, key_values, span_ref};
use crate::span_writer::{enum_value, link_to, span_kind, status};
use crate::tracer::{Parent, Tracer};

/// Most attributes (at the start and set later), events and links a span keeps.
const MAX_ATTRIBUTES: usize = 128;
const MAX_EVENTS: usize = 128;
const MAX_LINKS: usize = 128;

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

    fn set(&mut self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.ended {
            return Ok(());
        }
        let (Ok(key), Some(value)) = (key.cast::<PyString>(), attribute_value(value)) else {
            return Ok(()); // not a valid attribute: left out, as the SDK does
        };
        let key = key.to_cow()?;
        if let Some(kv) = self.attributes.iter_mut().find(|kv| kv.key.as_str() == key) {
            kv.value = value;
        } else if self.start.attributes.len() + self.attributes.len() < MAX_ATTRIBUTES
            || self
                .start
                .attributes
                .iter()
                .any(|kv| kv.key.as_str() == key)
        {
            self.attributes.push(KeyValue::new(key.into_owned(), value));
        }
        Ok(())
    }

    fn set_status_code(&mut self, code: u8, description: Option<&str>) {
        if self.ended || matches!(self.status, Status::Ok) || code == 0 {
            return;
        }
        self.status = status(code, description);
    }
}

#[pymethods]
impl Span {
    /// The span's API `SpanContext`.
    fn get_span_context(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(c) = &self.context {
            return Ok(c.clone_ref(py));
        }
        let state = self
            .start
            .parent
            .as_ref()
            .and_then(|p| p.trace_state.as_ref());
        let c = span_context(py, self.start.trace_id, self.start.span_id, 1, state)?.unbind();
        self.context = Some(c.clone_ref(py));
        Ok(c)
    }

    /// What instrumentation libraries read of a span (the SDK's span has
    /// them): `name`, `kind`, `start_time`, `end_time`, `parent`, `status`,
    /// `attributes` (a copy; empty once ended: they are in the file).
    #[getter]
    fn name(&self) -> &str {
        &self.start.name
    }

    #[getter]
    fn kind<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        SPAN_KIND
            .import(py, "opentelemetry.trace", "SpanKind")?
            .call1((self.start.kind,))
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
    fn parent<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(p) = &self.start.parent else {
            return Ok(None);
        };
        let flags = TRACE_FLAGS
            .import(py, "opentelemetry.trace", "TraceFlags")?
            .call1((p.flags,))?;
        let state = match &p.trace_state {
            Some(s) => s.bind(py).clone(),
            None => DEFAULT_TRACE_STATE
                .import(py, "opentelemetry.trace", "DEFAULT_TRACE_STATE")?
                .clone(),
        };
        SPAN_CONTEXT
            .import(py, "opentelemetry.trace", "SpanContext")?
            .call1((p.trace_id, p.span_id, p.remote, flags, state))
            .map(Some)
    }

    #[getter]
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (code, description) = match &self.status {
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
    fn attributes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let d = pyo3::types::PyDict::new(py);
        for kv in self.start.attributes.iter().chain(&self.attributes) {
            d.set_item(kv.key.as_str(), crate::convert::py_value(py, &kv.value)?)?;
        }
        Ok(d)
    }

    fn set_attribute(&mut self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set(key, value)
    }

    fn set_attributes(&mut self, attributes: &Bound<'_, PyAny>) -> PyResult<()> {
        let items = attributes.call_method0(intern!(attributes.py(), "items"))?;
        for pair in items.try_iter()? {
            let pair = pair?;
            let pair = pair.cast::<PyTuple>()?;
            self.set(&pair.get_item(0)?, &pair.get_item(1)?)?;
        }
        Ok(())
    }

    #[pyo3(signature = (name, attributes=None, timestamp=None))]
    fn add_event(
        &mut self,
        name: &Bound<'_, PyAny>,
        attributes: Option<&Bound<'_, PyAny>>,
        timestamp: Option<u64>,
    ) -> PyResult<()> {
        if self.ended || self.events.len() >= MAX_EVENTS {
            return Ok(());
        }
        self.events.push(Event {
            name: string_of(name)?,
            time_unix_nano: timestamp.unwrap_or_else(now_unix_nano),
            attributes: key_values(attributes),
        });
        Ok(())
    }

    #[pyo3(signature = (context, attributes=None))]
    fn add_link(
        &mut self,
        context: &Bound<'_, PyAny>,
        attributes: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        if self.ended || self.start.links.len() >= MAX_LINKS {
            return Ok(());
        }
        let link = link_to(context, attributes, 0)?;
        if link.span_context.is_valid() {
            self.start.links.push(link);
        }
        Ok(())
    }

    fn update_name(&mut self, name: &Bound<'_, PyAny>) -> PyResult<()> {
        if !self.ended {
            self.start.name = string_of(name)?;
            self.renamed = true;
        }
        Ok(())
    }

    fn is_recording(&self) -> bool {
        !self.ended
    }

    /// A `Status`, or a `StatusCode` (and a description for `ERROR`). Once
    /// `OK`, the status stays; `UNSET` is ignored.
    #[pyo3(signature = (status, description=None))]
    fn set_status(
        &mut self,
        status: &Bound<'_, PyAny>,
        description: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
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
        let description: Option<String> = description.extract()?;
        self.set_status_code(code, description.as_deref());
        Ok(())
    }

    /// An `exception` event, as the SDK writes it.
    #[pyo3(signature = (exception, attributes=None, timestamp=None, escaped=false))]
    fn record_exception(
        &mut self,
        exception: &Bound<'_, PyAny>,
        attributes: Option<&Bound<'_, PyAny>>,
        timestamp: Option<u64>,
        escaped: bool,
    ) -> PyResult<()> {
        if self.ended || self.events.len() >= MAX_EVENTS {
            return Ok(());
        }
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
        self.events.push(Event {
            name: "exception".to_owned(),
            time_unix_nano: timestamp.unwrap_or_else(now_unix_nano),
            attributes: attrs,
        });
        Ok(())
    }

    /// Writes what the span's end carries; later calls do nothing.
    #[pyo3(signature = (end_time=None))]
    fn end(&mut self, py: Python<'_>, end_time: Option<u64>) {
        if self.ended {
            return;
        }
        self.ended = true;
        let end_time_unix_nano = end_time.unwrap_or_else(now_unix_nano);
        self.end_time_unix_nano = Some(end_time_unix_nano);
        let Some(cur) = self.tracer.get().current(py) else {
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

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Ends the span; an exception is recorded (and sets the status to
    /// `ERROR`) as the span's start asked.
    fn __exit__(
        &mut self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        exc_val: Option<&Bound<'_, PyAny>>,
        _exc_tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let mut result = Ok(());
        if let Some(exc) = exc_val.filter(|e| !e.is_none())
            && !self.ended
        {
            if self.start.record_exception {
                result = self.record_exception(exc, None, None, true);
            }
            if self.start.set_status_on_exception {
                let ty = exc.get_type().name()?;
                let description = format!("{}: {}", ty, string_of(exc)?);
                self.set_status_code(2, Some(&description));
            }
        }
        self.end(py, None);
        result
    }
}
