//! The tracing API implemented directly on the file: [`MmapTracerProvider`],
//! [`MmapTracer`] and [`MmapSpan`].
//!
//! Each call writes one record at once, so that a crash loses nothing already
//! called:
//!
//! | API call | record in the spans ring |
//! |---|---|
//! | start (`Tracer::start`, `build`, ...) | `StartSpan` (ids, parent, name, kind, start time, the builder's attributes, flags) |
//! | `set_attribute` | `UpdateAttributes` with that attribute |
//! | `set_attributes` | `UpdateAttributes` with all of them (one record per 8) |
//! | `update_name` | `ChangeSpanName` |
//! | `add_link` (and the builder's links) | `AddLink` |
//! | `set_status` | nothing yet: kept in the span, written with `EndSpan` |
//! | `end`, `end_with_timestamp`, drop | `EndSpan` (end time, status) |
//! | `add_event` (and the builder's events) | an `Event` in the **events (logs) ring**, carrying the span's context, the event name as `event_name_ref` and its attributes |
//!
//! Span events go to the events ring because the v1 `SpanEvent` message has no
//! event variant; a reader that wants them back on the span can match them by
//! span context.
//!
//! **Sampling**: always on. Every span is recorded and carries the sampled
//! flag; the parent's sampling decision is not consulted (sampling, if
//! wanted, belongs in the collector). A context with suppressed telemetry
//! gives a non-recording span that writes nothing.
//!
//! **Ids**: random, from the SDK's `RandomIdGenerator` (a per-thread
//! generator); the trace id and trace state come from the parent span in
//! the context, if any.
//!
//! **Flags**: `StartSpan.flags` holds the W3C trace flags in bits 0-7 and, as
//! OTLP's `Span.flags` does, bit 8 (the parent's remoteness is known) and bit
//! 9 (the parent is remote).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::trace::{
    Link, SpanBuilder, SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, TraceState,
    Tracer, TracerProvider,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

use crate::clock::{now_unix_nano, unix_nano};
use crate::encode::{EncodedKey, SpanIds};
use crate::file::{FileInner, MmapExporterFile};
use crate::key_cache::with_keys;
use crate::log_events::{EventInfo, event_scope, write_log_event};
use crate::span_events::{
    FLAG_HAS_IS_REMOTE, FLAG_IS_REMOTE, SpanKey, StartInfo, kind_number, span_scope,
    write_attributes, write_attributes_or_split, write_end, write_links, write_name,
    write_start_or_split,
};

/// A `TracerProvider` whose spans are written straight into the file.
#[derive(Clone, Debug)]
pub struct MmapTracerProvider {
    file: MmapExporterFile,
}

impl MmapTracerProvider {
    /// A provider writing into `file`.
    pub fn new(file: &MmapExporterFile) -> Self {
        MmapTracerProvider { file: file.clone() }
    }

    /// The file written to.
    pub fn file(&self) -> &MmapExporterFile {
        &self.file
    }
}

impl TracerProvider for MmapTracerProvider {
    type Tracer = MmapTracer;

    fn tracer_with_scope(&self, scope: InstrumentationScope) -> MmapTracer {
        let scope_ref = self.file.scope_ref(&scope);
        MmapTracer {
            scope_ref,
            scope: span_scope(scope_ref),
            file: self.file.inner.clone(),
        }
    }
}

/// A `Tracer` of one instrumentation scope (interned once, when it was created).
#[derive(Clone, Debug)]
pub struct MmapTracer {
    file: Arc<FileInner>,
    scope_ref: i64,
    /// `scope_ref` as the field of every `SpanEvent`, encoded once.
    scope: EncodedKey,
}

impl Tracer for MmapTracer {
    type Span = MmapSpan;

    fn build_with_context(&self, builder: SpanBuilder, parent_cx: &Context) -> MmapSpan {
        if parent_cx.is_telemetry_suppressed() {
            return MmapSpan {
                file: self.file.clone(),
                key: None,
                span_context: SpanContext::empty_context(),
                status: Status::Unset,
            };
        }
        let parent = if parent_cx.has_active_span() {
            let sc = parent_cx.span().span_context().clone();
            sc.is_valid().then_some(sc)
        } else {
            None
        };
        let (trace_id, parent_span_id, trace_state, remote_flags) = match &parent {
            Some(p) => (
                p.trace_id(),
                Some(p.span_id().to_bytes()),
                p.trace_state().clone(),
                FLAG_HAS_IS_REMOTE | if p.is_remote() { FLAG_IS_REMOTE } else { 0 },
            ),
            None => (
                RandomIdGenerator::default().new_trace_id(),
                None,
                TraceState::NONE,
                FLAG_HAS_IS_REMOTE,
            ),
        };
        let span_id = RandomIdGenerator::default().new_span_id();
        let span_context =
            SpanContext::new(trace_id, span_id, TraceFlags::SAMPLED, false, trace_state);
        let key = SpanKey {
            trace_id: trace_id.to_bytes(),
            span_id: span_id.to_bytes(),
            scope_ref: self.scope_ref,
            scope: self.scope,
        };
        let start_time_unix_nano = builder.start_time.map_or_else(now_unix_nano, unix_nano);
        let info = StartInfo {
            parent_span_id,
            name: &builder.name,
            kind: kind_number(builder.span_kind.as_ref().unwrap_or(&SpanKind::Internal)),
            start_time_unix_nano,
            flags: TraceFlags::SAMPLED.to_u8() as u32 | remote_flags,
        };
        let file = &*self.file;
        with_keys(file, |keys| {
            let attrs: &[KeyValue] = builder.attributes.as_deref().unwrap_or(&[]);
            write_start_or_split(keys, &key, &info, attrs);
            if let Some(links) = &builder.links {
                write_links(keys, &key, links);
            }
        });
        let mut span = MmapSpan {
            file: self.file.clone(),
            key: Some(key),
            span_context,
            status: Status::Unset,
        };
        if let Some(events) = builder.events {
            for e in events {
                span.write_span_event(&e.name, unix_nano(e.timestamp), &e.attributes);
            }
        }
        span
    }
}

/// A span being recorded. Ends (writing `EndSpan`) when `end` is called or
/// when it is dropped.
#[derive(Debug)]
pub struct MmapSpan {
    file: Arc<FileInner>,
    /// `None` once ended (or for a non-recording span).
    key: Option<SpanKey>,
    span_context: SpanContext,
    status: Status,
}

impl MmapSpan {
    fn write_span_event(&mut self, name: &str, time_unix_nano: u64, attrs: &[KeyValue]) {
        let (Some(key), Some(ids)) = (&self.key, SpanIds::of(&self.span_context)) else {
            return;
        };
        let file = &*self.file;
        with_keys(file, |keys| {
            let info = EventInfo {
                scope: event_scope(key.scope_ref),
                time_unix_nano,
                severity_number: 0,
                severity_text: "",
                body: None,
                event_name: name,
                span: Some(ids),
            };
            write_log_event(keys, &info, attrs);
        });
    }
}

/// Attributes collected on the stack by `set_attributes` before they are
/// written as one record.
const ATTRIBUTE_BATCH: usize = 8;

impl opentelemetry::trace::Span for MmapSpan {
    fn add_event_with_timestamp<T>(
        &mut self,
        name: T,
        timestamp: SystemTime,
        attributes: Vec<KeyValue>,
    ) where
        T: Into<Cow<'static, str>>,
    {
        let name = name.into();
        self.write_span_event(&name, unix_nano(timestamp), &attributes);
    }

    fn span_context(&self) -> &SpanContext {
        &self.span_context
    }

    fn is_recording(&self) -> bool {
        self.key.is_some()
    }

    fn set_attribute(&mut self, attribute: KeyValue) {
        if let Some(key) = &self.key {
            let file = &*self.file;
            with_keys(file, |keys| {
                write_attributes(keys, key, std::slice::from_ref(&attribute))
            });
        }
    }

    fn set_attributes(&mut self, attributes: impl IntoIterator<Item = KeyValue>) {
        let Some(key) = &self.key else {
            return;
        };
        let file = &*self.file;
        let mut batch: [Option<KeyValue>; ATTRIBUTE_BATCH] = [const { None }; ATTRIBUTE_BATCH];
        let mut n = 0;
        let flush = |batch: &mut [Option<KeyValue>], n: usize| {
            with_keys(file, |keys| {
                write_attributes_or_split(keys, key, &batch[..n])
            });
            batch[..n].iter_mut().for_each(|kv| *kv = None);
        };
        for kv in attributes {
            batch[n] = Some(kv);
            n += 1;
            if n == ATTRIBUTE_BATCH {
                flush(&mut batch, n);
                n = 0;
            }
        }
        if n > 0 {
            flush(&mut batch, n);
        }
    }

    fn set_status(&mut self, status: Status) {
        // Ok is final; setting Unset changes nothing (as the SDK does).
        match (&self.status, &status) {
            (Status::Ok, _) | (_, Status::Unset) => {}
            _ => self.status = status,
        }
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        if let Some(key) = &self.key {
            write_name(&self.file, key, &new_name.into());
        }
    }

    fn add_link(&mut self, span_context: SpanContext, attributes: Vec<KeyValue>) {
        if let Some(key) = &self.key {
            if !span_context.is_valid() {
                return;
            }
            let file = &*self.file;
            let links = [Link::new(span_context, attributes, 0)];
            with_keys(file, |keys| write_links(keys, key, &links));
        }
    }

    fn end_with_timestamp(&mut self, timestamp: SystemTime) {
        self.end_at(unix_nano(timestamp));
    }

    fn end(&mut self) {
        self.end_at(now_unix_nano());
    }
}

impl MmapSpan {
    #[inline]
    fn end_at(&mut self, end_time_unix_nano: u64) {
        if let Some(key) = self.key.take() {
            write_end(&self.file, &key, end_time_unix_nano, &self.status);
        }
    }
}

impl Drop for MmapSpan {
    fn drop(&mut self) {
        self.end_at(now_unix_nano());
    }
}

/// The span context of the active span in the current context, if any.
#[inline]
pub(crate) fn active_span_ids() -> Option<SpanIds> {
    Context::map_current(|cx| {
        if cx.has_active_span() {
            SpanIds::of(cx.span().span_context())
        } else {
            None
        }
    })
}
