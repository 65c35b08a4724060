//! `Tracer`: the native half of `MmapTracerProvider`'s tracers (the tracing
//! API implemented on the file, without the SDK's span machinery).
//! `start_span` decides (parent-based, always on), makes the ids, writes
//! `StartSpan` and returns a native [`Span`](crate::span::Span).
//!
//! Ids come from Python's `random.getrandbits` (as the SDK's
//! `RandomIdGenerator`), which `random` reseeds in a forked child.

use std::sync::Mutex;

use opentelemetry_mmap::MmapExporterFile;
use opentelemetry_mmap::clock::now_unix_nano;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyTuple};

use crate::convert::key_values;
use crate::file::{MmapFile, intern_resource, intern_scope};
use crate::span::{MAX_ATTRIBUTES, MAX_LINKS, Span, StartFields};
use crate::span_writer::{enum_value, link_of};

/// What this tracer writes into: the current file (replaced after a fork),
/// its generation, and the tracer's scope ref in it (interned at first use).
#[derive(Default)]
struct Target {
    file: Option<MmapExporterFile>,
    generation: u64,
    scope_ref: Option<i64>,
}

/// The file a span writes into, as its tracer has it now.
pub(crate) struct Current {
    pub(crate) file: MmapExporterFile,
    pub(crate) generation: u64,
    pub(crate) scope_ref: i64,
}

/// The ids and flags of a span's parent.
pub(crate) struct Parent {
    pub(crate) trace_id: u128,
    pub(crate) span_id: u64,
    pub(crate) flags: u8,
    pub(crate) remote: bool,
    pub(crate) trace_state: Option<Py<PyAny>>,
}

/// One tracer of an `MmapTracerProvider`: its instrumentation scope and
/// resource, and the file it writes into.
#[pyclass(module = "opentelemetry_mmap._native", frozen, weakref)]
pub(crate) struct Tracer {
    name: String,
    version: Option<String>,
    schema_url: Option<String>,
    scope_attributes: Option<Py<PyAny>>,
    resource_attributes: Option<Py<PyAny>>,
    target: Mutex<Target>,
}

static GET_CURRENT_SPAN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static GETRANDBITS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static NON_RECORDING_SPAN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A random id of `bits` bits (at most 128), never 0.
fn random_id(py: Python<'_>, bits: u32) -> PyResult<u128> {
    let getrandbits = GETRANDBITS.import(py, "random", "getrandbits")?;
    loop {
        let id: u128 = getrandbits.call1((bits,))?.extract()?;
        if id != 0 {
            return Ok(id);
        }
    }
}

/// The parent in `context` (else the current context): its ids when it is
/// a valid span.
fn parent_of(py: Python<'_>, context: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Parent>> {
    let get_current_span =
        GET_CURRENT_SPAN.import(py, "opentelemetry.trace", "get_current_span")?;
    let span = get_current_span.call1((context,))?;
    if let Ok(ours) = span.cast::<Span>()
        && let Ok(ours) = ours.try_borrow()
    {
        return Ok(Some(ours.as_parent(py)));
    }
    let ctx = span.call_method0(intern!(py, "get_span_context"))?;
    let ctx = ctx.cast::<PyTuple>()?;
    let trace_id: u128 = ctx.get_item(0)?.extract()?;
    let span_id: u64 = ctx.get_item(1)?.extract()?;
    if trace_id == 0 || span_id == 0 {
        return Ok(None);
    }
    let state = ctx.get_item(4)?;
    Ok(Some(Parent {
        trace_id,
        span_id,
        remote: ctx.get_item(2)?.extract()?,
        flags: ctx.get_item(3)?.extract()?,
        trace_state: (!state.is_none()).then(|| state.unbind()),
    }))
}

impl Tracer {
    /// The current file and the scope ref in it (interned now when new);
    /// `None` when there is no file.
    pub(crate) fn current(&self, py: Python<'_>) -> Option<Current> {
        let (file, generation) = {
            let t = self.target.lock().ok()?;
            let file = t.file.clone()?;
            if let Some(scope_ref) = t.scope_ref {
                return Some(Current {
                    file,
                    generation: t.generation,
                    scope_ref,
                });
            }
            (file, t.generation)
        };
        let resource_ref =
            intern_resource(&file, self.resource_attributes.as_ref().map(|a| a.bind(py)));
        let scope_ref = intern_scope(
            &file,
            resource_ref,
            self.name.clone(),
            self.version.clone(),
            self.schema_url.clone(),
            self.scope_attributes.as_ref().map(|a| a.bind(py)),
        );
        if let Ok(mut t) = self.target.lock()
            && t.generation == generation
        {
            t.scope_ref = Some(scope_ref);
        }
        Some(Current {
            file,
            generation,
            scope_ref,
        })
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

#[pymethods]
impl Tracer {
    /// A tracer of the instrumentation scope `name` (`version`,
    /// `schema_url`, `attributes`) under a resource with `resource_attributes`.
    #[new]
    #[pyo3(signature = (name, version=None, schema_url=None, attributes=None, resource_attributes=None))]
    fn new(
        name: Option<String>,
        version: Option<String>,
        schema_url: Option<String>,
        attributes: Option<Py<PyAny>>,
        resource_attributes: Option<Py<PyAny>>,
    ) -> Self {
        Tracer {
            name: name.unwrap_or_default(),
            version: non_empty(version),
            schema_url: non_empty(schema_url),
            scope_attributes: attributes,
            resource_attributes,
            target: Mutex::new(Target::default()),
        }
    }

    /// Writes into `file` from now on (`None`: nothing is written). Spans
    /// started in an earlier file write their whole start again at the end.
    #[pyo3(signature = (file=None))]
    fn set_file(&self, file: Option<PyRef<'_, MmapFile>>) {
        let file = file.and_then(|f| f.file.clone());
        if let Ok(mut t) = self.target.lock() {
            t.file = file;
            t.generation += 1;
            t.scope_ref = None;
        }
    }

    /// The tracing API's `Tracer.start_span`: a span whose `StartSpan` is
    /// written now. Sampling is parent-based, always on: a span whose parent
    /// is not sampled is a `NonRecordingSpan` (nothing written), every other
    /// span is recorded and sampled.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (name, context=None, kind=None, attributes=None, links=None, start_time=None, record_exception=true, set_status_on_exception=true))]
    fn start_span<'py>(
        slf: &Bound<'py, Self>,
        name: &Bound<'py, PyAny>,
        context: Option<&Bound<'py, PyAny>>,
        kind: Option<&Bound<'py, PyAny>>,
        attributes: Option<&Bound<'py, PyAny>>,
        links: Option<&Bound<'py, PyAny>>,
        start_time: Option<u64>,
        record_exception: bool,
        set_status_on_exception: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let parent = parent_of(py, context)?;
        let span_id = random_id(py, 64)? as u64;
        if let Some(p) = parent.as_ref().filter(|p| p.flags & 1 == 0) {
            // Not sampled: a non-recording span in the parent's trace.
            let ctx =
                crate::span::span_context(py, p.trace_id, span_id, 0, p.trace_state.as_ref())?;
            return NON_RECORDING_SPAN
                .import(py, "opentelemetry.trace", "NonRecordingSpan")?
                .call1((ctx,));
        }
        let trace_id: u128 = match &parent {
            Some(p) => p.trace_id,
            None => random_id(py, 128)?,
        };
        let name = match name.cast::<PyString>() {
            Ok(s) => s.to_cow()?.into_owned(),
            Err(_) => name.str()?.to_cow()?.into_owned(),
        };
        let kind = match kind {
            Some(k) if !k.is_none() => enum_value(k)?,
            _ => 0,
        };
        let mut span_links = Vec::new();
        if let Some(links) = links.filter(|l| !l.is_none()) {
            span_links.extend(
                links
                    .try_iter()?
                    .map_while(Result::ok)
                    .filter_map(|l| link_of(&l).ok())
                    .take(MAX_LINKS),
            );
        }
        let mut attributes = key_values(attributes);
        attributes.truncate(MAX_ATTRIBUTES);
        let fields = StartFields {
            trace_id,
            span_id,
            parent,
            name,
            kind,
            start_time_unix_nano: start_time.unwrap_or_else(now_unix_nano),
            attributes,
            links: span_links,
            record_exception,
            set_status_on_exception,
        };
        let span = Span::start(py, slf.clone().unbind(), fields);
        Ok(Bound::new(py, span)?.into_any())
    }
}
