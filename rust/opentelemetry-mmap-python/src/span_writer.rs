//! `SpanWriter`: the `on_start` / `on_end` of `MmapSpanProcessor`, reading
//! the Python SDK's span objects directly (no Python frame per call).
//!
//! `on_start` writes `StartSpan` (ids, parent, name, kind, start time, the
//! attributes so far) and notes the name and a copy of the attributes dict;
//! `on_end` writes `ChangeSpanName` if the name changed, `UpdateAttributes`
//! with the attributes whose value object changed or that are new, one
//! `AddLink`, the events, and `EndSpan`. A span whose start this file does
//! not have (started before a fork, before the processor, or its note was
//! dropped) gets its whole `StartSpan` written at the end.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use opentelemetry::KeyValue;
use opentelemetry::trace::{
    Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry_mmap::MmapExporterFile;
use opentelemetry_mmap::records::{SpanEnd, SpanEventFields, SpanStart};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::convert::span_ref;
use crate::convert::{Pair, Pairs, attribute_value, key_values, key_values_of, pairs};
use crate::file::MmapFile;
use crate::gil::write;
use crate::target::{Target, report_once, scope_ref_of};

/// Spans started and not ended whose start is noted; more clears the notes
/// (those spans' ends then write their whole start again).
const MAX_NOTES: usize = 100_000;

/// What the start wrote: the name, and the attributes' key and value objects
/// (kept in a Rust vector: a Python container per span would feed the
/// garbage collector). Notes are dropped after the state's lock is released
/// (`_forgotten`): dropping a value may run its `__del__`, which may start or
/// end a span through this writer, which takes the lock.
struct Note {
    scope_ref: i64,
    name: Py<PyAny>,
    attributes: Vec<(Py<PyAny>, Py<PyAny>)>,
}

#[derive(Default)]
struct State {
    target: Target,
    notes: HashMap<u64, Note>,
}

/// Writes the spans of one `MmapSpanProcessor`.
#[pyclass(module = "opentelemetry_mmap._native", frozen, weakref)]
pub(crate) struct SpanWriter {
    state: Mutex<State>,
    reported: AtomicBool,
}

/// Python's `SpanKind` values (INTERNAL = 0 ... CONSUMER = 4).
pub(crate) fn span_kind(kind: u8) -> SpanKind {
    match kind {
        1 => SpanKind::Server,
        2 => SpanKind::Client,
        3 => SpanKind::Producer,
        4 => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

/// Python's `StatusCode` values (UNSET = 0, OK = 1, ERROR = 2).
pub(crate) fn status(code: u8, description: Option<&str>) -> Status {
    match code {
        1 => Status::Ok,
        2 => Status::error(description.unwrap_or_default().to_owned()),
        _ => Status::Unset,
    }
}

/// The ids of an SDK `SpanContext` (a tuple: trace_id, span_id, is_remote, trace_flags, trace_state, ...).
struct Ids {
    trace_id: u128,
    span_id: u64,
    remote: bool,
    flags: u8,
}

fn ids_of(ctx: &Bound<'_, PyAny>) -> PyResult<Ids> {
    let t = ctx.cast::<PyTuple>()?;
    Ok(Ids {
        trace_id: t.get_item(0)?.extract()?,
        span_id: t.get_item(1)?.extract()?,
        remote: t.get_item(2)?.extract()?,
        flags: t.get_item(3)?.extract()?,
    })
}

/// A field of an SDK object: its private attribute (a plain instance
/// attribute, cheap), else the public property of the same name.
fn field<'py>(
    obj: &Bound<'py, PyAny>,
    private: &Bound<'py, PyString>,
    public: &Bound<'py, PyString>,
) -> PyResult<Bound<'py, PyAny>> {
    match obj.getattr(private) {
        Ok(v) => Ok(v),
        Err(_) => obj.getattr(public),
    }
}

/// The value of a Python `Enum` member (`_value_`, which `.value` returns).
pub(crate) fn enum_value(member: &Bound<'_, PyAny>) -> PyResult<u8> {
    let py = member.py();
    field(member, intern!(py, "_value_"), intern!(py, "value"))?.extract()
}

/// The span's attributes as a dict (the SDK's `BoundedAttributes` keeps one).
fn attributes_of<'py>(span: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    let py = span.py();
    if let Ok(bounded) = span.getattr(intern!(py, "_attributes")) {
        if bounded.is_none() {
            return None;
        }
        if let Ok(d) = bounded.getattr(intern!(py, "_dict")) {
            return Some(d);
        }
        return Some(bounded);
    }
    span.getattr(intern!(py, "attributes"))
        .ok()
        .filter(|a| !a.is_none())
}

/// The items of an SDK sequence (a `BoundedList` keeps them in a deque, whose
/// iteration needs no lock and no copy); `None` when there are none.
fn items_of<'py>(seq: Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    let py = seq.py();
    let items = seq.getattr(intern!(py, "_dq")).unwrap_or(seq);
    match items.len() {
        Ok(0) => None,
        _ => Some(items),
    }
}

fn opt_u64(v: PyResult<Bound<'_, PyAny>>) -> u64 {
    v.ok()
        .and_then(|v| v.extract::<Option<u64>>().ok().flatten())
        .unwrap_or(0)
}

/// A link to the span of an API `SpanContext` (a tuple), with its attributes.
pub(crate) fn link_to(
    ctx: &Bound<'_, PyAny>,
    attributes: Option<&Bound<'_, PyAny>>,
    dropped: u32,
) -> PyResult<Link> {
    let py = ctx.py();
    let ids = ids_of(ctx)?;
    let state = ctx
        .cast::<PyTuple>()?
        .get_item(4)
        .ok()
        .filter(|s| s.len().map(|n| n > 0).unwrap_or(false))
        .and_then(|s| s.call_method0(intern!(py, "to_header")).ok())
        .and_then(|h| h.extract::<String>().ok())
        .and_then(|h| h.parse::<TraceState>().ok())
        .unwrap_or_default();
    let cx = SpanContext::new(
        TraceId::from_bytes(ids.trace_id.to_be_bytes()),
        SpanId::from_bytes(ids.span_id.to_be_bytes()),
        TraceFlags::new(ids.flags),
        ids.remote,
        state,
    );
    Ok(Link::new(cx, key_values(attributes), dropped))
}

/// An SDK or API `Link` object.
pub(crate) fn link_of(link: &Bound<'_, PyAny>) -> PyResult<Link> {
    let py = link.py();
    let ctx = field(link, intern!(py, "_context"), intern!(py, "context"))?;
    let attributes = field(link, intern!(py, "_attributes"), intern!(py, "attributes")).ok();
    let dropped = link
        .getattr(intern!(py, "dropped_attributes"))
        .and_then(|d| d.extract::<u32>())
        .unwrap_or(0);
    link_to(&ctx, attributes.as_ref(), dropped)
}

impl SpanWriter {
    fn file(&self) -> Option<MmapExporterFile> {
        self.state.lock().ok()?.target.file.clone()
    }

    fn scope_ref(&self, file: &MmapExporterFile, span: &Bound<'_, PyAny>) -> PyResult<i64> {
        let py = span.py();
        let scope = field(
            span,
            intern!(py, "_instrumentation_scope"),
            intern!(py, "instrumentation_scope"),
        )?;
        let resource = field(span, intern!(py, "_resource"), intern!(py, "resource"))?;
        if let Some(r) = self
            .state
            .lock()
            .ok()
            .and_then(|s| s.target.cached_scope(&scope, &resource))
        {
            return Ok(r);
        }
        let r = scope_ref_of(file, &scope, &resource);
        // Dropped after the lock (see `Released`).
        let _released =
            (self.state.lock().ok()).map(|mut s| s.target.remember_scope(&scope, &resource, r));
        Ok(r)
    }

    /// Writes `StartSpan` with the attributes `attributes` (taken by
    /// [`pairs`]); returns the span id.
    fn write_start<'py>(
        &self,
        file: &MmapExporterFile,
        span: &Bound<'py, PyAny>,
        scope_ref: i64,
        attributes: &[Pair<'py>],
    ) -> PyResult<(Ids, Bound<'py, PyAny>)> {
        let py = span.py();
        let ids = ids_of(&field(
            span,
            intern!(py, "_context"),
            intern!(py, "context"),
        )?)?;
        let parent = field(span, intern!(py, "_parent"), intern!(py, "parent"))?;
        let parent = if parent.is_none() {
            None
        } else {
            let p = ids_of(&parent)?;
            Some((p.span_id.to_be_bytes(), p.remote))
        };
        let name = field(span, intern!(py, "_name"), intern!(py, "name"))?;
        let name_str = name.cast::<PyString>()?.to_cow()?;
        let kind = enum_value(&field(span, intern!(py, "_kind"), intern!(py, "kind"))?)?;
        let attrs = key_values_of(attributes);
        let start = SpanStart {
            span: span_ref(ids.trace_id, ids.span_id, ids.flags),
            scope_ref,
            parent,
            name: &name_str,
            kind: span_kind(kind),
            start_time_unix_nano: opt_u64(field(
                span,
                intern!(py, "_start_time"),
                intern!(py, "start_time"),
            )),
            attributes: &attrs,
        };
        write(py, || file.write_span_start(&start));
        Ok((ids, name))
    }

    fn start(&self, span: &Bound<'_, PyAny>) -> PyResult<()> {
        let Some(file) = self.file() else {
            return Ok(());
        };
        let scope_ref = self.scope_ref(&file, span)?;
        let attributes = attributes_of(span);
        let pairs = pairs(attributes.as_ref());
        let (ids, name) = self.write_start(&file, span, scope_ref, &pairs)?;
        // The pairs the start was written from (converting them may have
        // changed the dict); only of the SDK's dict: any other mapping is
        // written whole again at the end.
        let copy: Vec<(Py<PyAny>, Py<PyAny>)> = match &attributes {
            Some(a) if a.is_instance_of::<PyDict>() => pairs
                .into_iter()
                .map(|(k, v)| (k.unbind(), v.unbind()))
                .collect(),
            _ => Vec::new(),
        };
        let note = Note {
            scope_ref,
            name: name.unbind(),
            attributes: copy,
        };
        let _forgotten = self.state.lock().ok().map(|mut s| {
            let cleared = if s.notes.len() >= MAX_NOTES {
                std::mem::take(&mut s.notes)
            } else {
                HashMap::new()
            };
            (cleared, s.notes.insert(ids.span_id, note))
        });
        Ok(())
    }

    fn end(&self, span: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = span.py();
        let Some(file) = self.file() else {
            return Ok(());
        };
        let ids = ids_of(&field(
            span,
            intern!(py, "_context"),
            intern!(py, "context"),
        )?)?;
        let note = self
            .state
            .lock()
            .ok()
            .and_then(|mut s| s.notes.remove(&ids.span_id));
        let scope_ref = match &note {
            Some(note) => note.scope_ref,
            None => self.scope_ref(&file, span)?,
        };
        let attributes = attributes_of(span);
        let name = field(span, intern!(py, "_name"), intern!(py, "name"))?;
        let mut renamed = None;
        let mut changed: Vec<KeyValue> = Vec::new();
        match note {
            Some(note) => {
                if !name.is(note.name.bind(py)) && !name.eq(note.name.bind(py))? {
                    renamed = Some(name.cast::<PyString>()?.to_cow()?.into_owned());
                }
                match attributes.as_ref().map(|a| a.cast::<PyDict>()) {
                    None => {}
                    // Not the SDK's dict: every attribute again (an upsert).
                    Some(Err(_)) => changed = key_values(attributes.as_ref()),
                    Some(Ok(attrs)) => {
                        // All taken before any is converted (converting may change the dict).
                        let current: Pairs<'_> = attrs.iter().collect();
                        for (i, (k, v)) in current.into_iter().enumerate() {
                            // Keys keep their order and objects; a value set again is a new object.
                            let same = match note.attributes.get(i) {
                                Some((ok, ov)) if ok.is(&k) => ov.is(&v),
                                _ => note
                                    .attributes
                                    .iter()
                                    .any(|(ok, ov)| ok.is(&k) && ov.is(&v)),
                            };
                            if same {
                                continue;
                            }
                            if let (Ok(k), Some(v)) = (k.cast::<PyString>(), attribute_value(&v)) {
                                changed.push(KeyValue::new(k.to_cow()?.into_owned(), v));
                            }
                        }
                    }
                }
            }
            None => {
                self.write_start(&file, span, scope_ref, &pairs(attributes.as_ref()))?;
            }
        }
        let mut links: Vec<Link> = Vec::new();
        if let Some(items) = items_of(field(span, intern!(py, "_links"), intern!(py, "links"))?) {
            // All taken before any is converted (converting may change them).
            let items: Vec<_> = items.try_iter()?.map_while(Result::ok).collect();
            links.extend(items.iter().filter_map(|l| link_of(l).ok()));
        }
        let mut events: Vec<(String, u64, Vec<KeyValue>)> = Vec::new();
        let event_items: Vec<_> =
            match items_of(field(span, intern!(py, "_events"), intern!(py, "events"))?) {
                Some(items) => items.try_iter()?.map_while(Result::ok).collect(),
                None => Vec::new(),
            };
        for e in event_items {
            let name: String = field(&e, intern!(py, "_name"), intern!(py, "name"))?.extract()?;
            let time = opt_u64(field(
                &e,
                intern!(py, "_timestamp"),
                intern!(py, "timestamp"),
            ));
            let attrs = field(&e, intern!(py, "_attributes"), intern!(py, "attributes")).ok();
            events.push((name, time, key_values(attrs.as_ref())));
        }
        let events: Vec<SpanEventFields<'_>> = events
            .iter()
            .map(|(name, time, attrs)| SpanEventFields {
                name,
                time_unix_nano: *time,
                attributes: attrs,
            })
            .collect();
        let st = field(span, intern!(py, "_status"), intern!(py, "status"))?;
        let code = enum_value(&field(
            &st,
            intern!(py, "_status_code"),
            intern!(py, "status_code"),
        )?)?;
        let description: Option<String> =
            field(&st, intern!(py, "_description"), intern!(py, "description"))?.extract()?;
        let status = status(code, description.as_deref());
        let end = SpanEnd {
            span: span_ref(ids.trace_id, ids.span_id, ids.flags),
            scope_ref,
            renamed: renamed.as_deref(),
            attributes: &changed,
            links: &links,
            events: &events,
            end_time_unix_nano: opt_u64(field(
                span,
                intern!(py, "_end_time"),
                intern!(py, "end_time"),
            )),
            status: &status,
        };
        write(py, || file.write_span_end(&end));
        Ok(())
    }
}

#[pymethods]
impl SpanWriter {
    #[new]
    fn new() -> Self {
        SpanWriter {
            state: Mutex::new(State::default()),
            reported: AtomicBool::new(false),
        }
    }

    /// Writes into `file` from now on (`None`: nothing is written); forgets
    /// the scopes and starts noted in the previous file.
    #[pyo3(signature = (file=None))]
    fn set_file(&self, file: Option<PyRef<'_, MmapFile>>) {
        let file = file.and_then(|f| f.file.clone());
        // Both dropped after the lock (see `Released`).
        let _forgotten = self.state.lock().ok().map(|mut s| {
            let released = s.target.set_file(file);
            (released, std::mem::take(&mut s.notes))
        });
    }

    /// The SDK's `SpanProcessor.on_start`. Never raises.
    #[pyo3(signature = (span, parent_context=None))]
    fn on_start(
        &self,
        py: Python<'_>,
        span: &Bound<'_, PyAny>,
        parent_context: Option<&Bound<'_, PyAny>>,
    ) {
        let _ = parent_context;
        if let Err(e) = self.start(span) {
            report_once(py, &self.reported, "span start", &e);
        }
    }

    /// The SDK's `SpanProcessor.on_end`. Never raises.
    fn on_end(&self, py: Python<'_>, span: &Bound<'_, PyAny>) {
        if let Err(e) = self.end(span) {
            report_once(py, &self.reported, "span end", &e);
        }
    }

    /// Forgets the noted starts.
    fn clear(&self) {
        let _forgotten = self
            .state
            .lock()
            .ok()
            .map(|mut s| std::mem::take(&mut s.notes));
    }
}
