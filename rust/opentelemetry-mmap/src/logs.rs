//! The logs bridge API implemented directly on the file:
//! [`MmapLoggerProvider`], [`MmapLogger`] and [`MmapLogRecord`].
//!
//! Each emitted record becomes one `Event` in the events ring:
//!
//! | record | `Event` field |
//! |---|---|
//! | timestamp (else observed timestamp, else now) | `time_unix_nano` (v1 has no observed-time field) |
//! | severity number / text | `severity_number` / `severity_text` |
//! | body | `body` |
//! | event name | `event_name_ref` (interned) |
//! | trace context set on the record, else the active span of the current context | `span_context` |
//! | attributes | `attributes` (keys interned) |
//! | target | not stored (v1 has no field for it) |
//!
//! A record keeps its first [`INLINE_ATTRIBUTES`] attributes inline (no heap
//! allocation, in a `SmallVec`); it moves to the heap only beyond them.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry::{InstrumentationScope, Key};
use smallvec::SmallVec;

use crate::clock::{now_unix_nano, unix_nano};
use crate::encode::{EncodedKey, SpanIds, Val};
use crate::file::{FileInner, MmapExporterFile};
use crate::key_cache::with_keys;
use crate::log_events::{EventInfo, event_scope, write_log_event};
use crate::trace::active_span_ids;

/// Attributes a [`MmapLogRecord`] holds without allocating.
pub const INLINE_ATTRIBUTES: usize = 8;

/// A `LoggerProvider` whose records are written straight into the file.
#[derive(Clone, Debug)]
pub struct MmapLoggerProvider {
    file: MmapExporterFile,
}

impl MmapLoggerProvider {
    /// A provider writing into `file`.
    pub fn new(file: &MmapExporterFile) -> Self {
        MmapLoggerProvider { file: file.clone() }
    }

    /// The file written to.
    pub fn file(&self) -> &MmapExporterFile {
        &self.file
    }
}

impl LoggerProvider for MmapLoggerProvider {
    type Logger = MmapLogger;

    fn logger_with_scope(&self, scope: InstrumentationScope) -> MmapLogger {
        MmapLogger {
            scope: event_scope(self.file.scope_ref(&scope)),
            file: self.file.inner.clone(),
        }
    }
}

/// A `Logger` of one instrumentation scope.
#[derive(Clone, Debug)]
pub struct MmapLogger {
    file: Arc<FileInner>,
    /// The scope's ref as the field of every `Event`, encoded once.
    scope: EncodedKey,
}

/// A log record being built; written by [`MmapLogger::emit`](Logger::emit).
#[derive(Debug, Default)]
pub struct MmapLogRecord {
    event_name: Option<&'static str>,
    timestamp: Option<SystemTime>,
    observed_timestamp: Option<SystemTime>,
    severity_text: Option<&'static str>,
    severity_number: Option<Severity>,
    body: Option<AnyValue>,
    trace_context: Option<SpanIds>,
    attributes: SmallVec<[(Key, AnyValue); INLINE_ATTRIBUTES]>,
}

impl LogRecord for MmapLogRecord {
    fn set_event_name(&mut self, name: &'static str) {
        self.event_name = Some(name);
    }

    /// The target is not stored: the v1 format has no field for it.
    fn set_target<T>(&mut self, _target: T)
    where
        T: Into<Cow<'static, str>>,
    {
    }

    fn set_timestamp(&mut self, timestamp: SystemTime) {
        self.timestamp = Some(timestamp);
    }

    fn set_observed_timestamp(&mut self, timestamp: SystemTime) {
        self.observed_timestamp = Some(timestamp);
    }

    fn set_severity_text(&mut self, text: &'static str) {
        self.severity_text = Some(text);
    }

    fn set_severity_number(&mut self, number: Severity) {
        self.severity_number = Some(number);
    }

    fn set_body(&mut self, body: AnyValue) {
        self.body = Some(body);
    }

    fn add_attributes<I, K, V>(&mut self, attributes: I)
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<Key>,
        V: Into<AnyValue>,
    {
        for (k, v) in attributes {
            self.add_attribute(k, v);
        }
    }

    fn add_attribute<K, V>(&mut self, key: K, value: V)
    where
        K: Into<Key>,
        V: Into<AnyValue>,
    {
        self.attributes.push((key.into(), value.into()));
    }

    fn set_trace_context(
        &mut self,
        trace_id: TraceId,
        span_id: SpanId,
        trace_flags: Option<TraceFlags>,
    ) {
        self.trace_context = SpanIds::from_parts(
            trace_id,
            span_id,
            trace_flags.unwrap_or(TraceFlags::NOT_SAMPLED).to_u8(),
        );
    }
}

impl Logger for MmapLogger {
    type LogRecord = MmapLogRecord;

    fn create_log_record(&self) -> MmapLogRecord {
        MmapLogRecord::default()
    }

    fn emit(&self, record: MmapLogRecord) {
        let time_unix_nano = record
            .timestamp
            .or(record.observed_timestamp)
            .map_or_else(now_unix_nano, unix_nano);
        let span = record.trace_context.or_else(active_span_ids);
        let info = EventInfo {
            scope: self.scope,
            time_unix_nano,
            severity_number: record.severity_number.map_or(0, |s| s as u64),
            severity_text: record.severity_text.unwrap_or(""),
            body: record.body.as_ref().map(Val::Any),
            event_name: record.event_name.unwrap_or(""),
            span,
        };
        let file = &*self.file;
        with_keys(file, |keys| {
            write_log_event(keys, &info, record.attributes.as_slice());
        });
    }

    /// Always true: every record is written (a full ring drops and counts).
    fn event_enabled(&self, _level: Severity, _target: &str, _name: Option<&str>) -> bool {
        true
    }
}
