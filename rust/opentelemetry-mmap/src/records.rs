//! Record-level writing for SDKs of other languages (the Python package
//! `opentelemetry-mmap`, `rust/opentelemetry-mmap-python`): they keep their
//! own spans, log records and instruments and hand this module the plain
//! fields, which are encoded by the same borrowed encoders as the Rust
//! providers use, into the same file. Nothing here is needed by a Rust
//! application.
//!
//! | call | records |
//! |---|---|
//! | [`MmapExporterFile::write_span_start`] | `StartSpan` |
//! | [`MmapExporterFile::write_span_end`] | `ChangeSpanName` (when renamed), `UpdateAttributes` (when given), one `AddLink`, the span's events as `Event`s in the events ring, then `EndSpan` |
//! | [`MmapExporterFile::write_log_record`] | one `Event` |
//! | [`MmapExporterFile::metric_ref`] | the interned `MetricRef` of an instrument |
//! | [`MmapExporterFile::write_measurement`] | one `Measurement` |
//!
//! Like every write of this crate, a full ring drops and counts.

use opentelemetry::logs::AnyValue;
use opentelemetry::trace::{Link, SpanKind, Status};
use opentelemetry::{InstrumentationScope, Key, KeyValue};
use opentelemetry_sdk::Resource;

use crate::encode::SpanIds;
use crate::file::MmapExporterFile;
use crate::key_cache::with_keys;
use crate::log_events::{EventInfo, event_scope, write_log_event};
use crate::metrics::{
    Aggregation, Dated, NumberValue, intern_metric_ref, measurement_metric, write_measurement,
};
use crate::span_events::{
    FLAG_HAS_IS_REMOTE, FLAG_IS_REMOTE, SpanKey, StartInfo, kind_number, write_attributes_or_split,
    write_end, write_links, write_name, write_start_or_split,
};

/// The ids of a span (or of the span a log record or measurement belongs to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanRef {
    /// The trace id (big-endian bytes, as on the wire).
    pub trace_id: [u8; 16],
    /// The span id.
    pub span_id: [u8; 8],
    /// W3C trace flags (bit 0: sampled).
    pub trace_flags: u8,
}

impl SpanRef {
    fn ids(&self) -> Option<SpanIds> {
        (self.trace_id != [0; 16] && self.span_id != [0; 8]).then_some(SpanIds {
            trace_id: self.trace_id,
            span_id: self.span_id,
            flags: self.trace_flags as u32,
        })
    }
}

/// What a span's start writes.
#[derive(Debug)]
pub struct SpanStart<'a> {
    /// The span.
    pub span: SpanRef,
    /// The scope's ref ([`MmapExporterFile::scope_ref_in`]).
    pub scope_ref: i64,
    /// The parent's span id, and whether the parent is remote.
    pub parent: Option<([u8; 8], bool)>,
    /// The name at the start.
    pub name: &'a str,
    /// The kind.
    pub kind: SpanKind,
    /// Start time (ns since the Unix epoch).
    pub start_time_unix_nano: u64,
    /// The attributes known at the start.
    pub attributes: &'a [KeyValue],
}

/// An event of a span (written as an `Event` in the events ring).
#[derive(Debug)]
pub struct SpanEventFields<'a> {
    /// The event's name.
    pub name: &'a str,
    /// When it happened (ns since the Unix epoch).
    pub time_unix_nano: u64,
    /// Its attributes.
    pub attributes: &'a [KeyValue],
}

/// What a span's end writes.
#[derive(Debug)]
pub struct SpanEnd<'a> {
    /// The span.
    pub span: SpanRef,
    /// The scope's ref (as at the start).
    pub scope_ref: i64,
    /// The name, when it changed since the start.
    pub renamed: Option<&'a str>,
    /// Attributes added or changed since the start (an upsert).
    pub attributes: &'a [KeyValue],
    /// Every link.
    pub links: &'a [Link],
    /// Every event.
    pub events: &'a [SpanEventFields<'a>],
    /// End time (ns since the Unix epoch).
    pub end_time_unix_nano: u64,
    /// The status.
    pub status: &'a Status,
}

/// One log record.
#[derive(Debug)]
pub struct LogRecordFields<'a> {
    /// The scope's ref ([`MmapExporterFile::scope_ref_in`]).
    pub scope_ref: i64,
    /// When it happened (ns since the Unix epoch).
    pub time_unix_nano: u64,
    /// OpenTelemetry severity number (0: unset).
    pub severity_number: u64,
    /// Severity text.
    pub severity_text: &'a str,
    /// The body.
    pub body: Option<&'a AnyValue>,
    /// The event name (empty for none).
    pub event_name: &'a str,
    /// The span it was written in.
    pub span: Option<SpanRef>,
    /// Its attributes.
    pub attributes: &'a [(Key, AnyValue)],
}

/// What an instrument asks the collector to aggregate.
#[derive(Clone, Copy, Debug)]
pub enum InstrumentKind<'a> {
    /// Counters and observable counters: a cumulative monotonic sum.
    Counter,
    /// Up-down counters and their observable form: a cumulative sum.
    UpDownCounter,
    /// Histograms, with these explicit bucket boundaries.
    Histogram(&'a [f64]),
    /// Gauges and observable gauges.
    Gauge,
}

/// A measured value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Measured {
    /// An integer (`as_long`).
    Long(i64),
    /// A floating-point number (`as_double`).
    Double(f64),
}

impl MmapExporterFile {
    /// Interns a resource given by another SDK and returns its ref.
    pub fn resource_ref_of(&self, resource: &Resource) -> i64 {
        self.inner.resource_ref_of(resource)
    }

    /// Interns `scope` under `resource_ref` (cached per thread) and returns its ref.
    pub fn scope_ref_in(&self, scope: &InstrumentationScope, resource_ref: i64) -> i64 {
        with_keys(&self.inner, |keys| keys.scope_ref(scope, resource_ref))
    }

    /// Writes `StartSpan`.
    pub fn write_span_start(&self, start: &SpanStart<'_>) {
        let file = &*self.inner;
        let flags = start.span.trace_flags as u32
            | FLAG_HAS_IS_REMOTE
            | match start.parent {
                Some((_, true)) => FLAG_IS_REMOTE,
                _ => 0,
            };
        let info = StartInfo {
            parent_span_id: start.parent.map(|(id, _)| id),
            name: start.name,
            kind: kind_number(&start.kind),
            start_time_unix_nano: start.start_time_unix_nano,
            flags,
        };
        let key = SpanKey::new(start.span.trace_id, start.span.span_id, start.scope_ref);
        with_keys(file, |keys| {
            write_start_or_split(keys, &key, &info, start.attributes)
        });
    }

    /// Writes what a span's end carries, `EndSpan` last.
    pub fn write_span_end(&self, end: &SpanEnd<'_>) {
        let file = &*self.inner;
        let key = SpanKey::new(end.span.trace_id, end.span.span_id, end.scope_ref);
        with_keys(file, |keys| {
            if let Some(name) = end.renamed {
                write_name(file, &key, name);
            }
            if !end.attributes.is_empty() {
                write_attributes_or_split(keys, &key, end.attributes);
            }
            write_links(keys, &key, end.links);
            let ids = end.span.ids();
            for event in end.events {
                let info = EventInfo {
                    scope: event_scope(end.scope_ref),
                    time_unix_nano: event.time_unix_nano,
                    severity_number: 0,
                    severity_text: "",
                    body: None,
                    event_name: event.name,
                    span: ids,
                };
                write_log_event(keys, &info, event.attributes);
            }
        });
        write_end(file, &key, end.end_time_unix_nano, end.status);
    }

    /// Writes one log record.
    pub fn write_log_record(&self, record: &LogRecordFields<'_>) {
        let file = &*self.inner;
        with_keys(file, |keys| {
            let info = EventInfo {
                scope: event_scope(record.scope_ref),
                time_unix_nano: record.time_unix_nano,
                severity_number: record.severity_number,
                severity_text: record.severity_text,
                body: record.body.map(crate::encode::Val::Any),
                event_name: record.event_name,
                span: record.span.as_ref().and_then(SpanRef::ids),
            };
            write_log_event(keys, &info, record.attributes);
        });
    }

    /// Interns an instrument's definition and returns the ref its
    /// measurements carry (0 when the dictionary could not store it: its
    /// measurements are then dropped and counted).
    pub fn metric_ref(
        &self,
        scope_ref: i64,
        name: &str,
        description: &str,
        unit: &str,
        kind: InstrumentKind<'_>,
    ) -> i64 {
        let aggregation = match kind {
            InstrumentKind::Counter => Aggregation::MonotonicSum,
            InstrumentKind::UpDownCounter => Aggregation::Sum,
            InstrumentKind::Histogram(bounds) => Aggregation::Histogram(bounds),
            InstrumentKind::Gauge => Aggregation::Gauge,
        };
        intern_metric_ref(&self.inner, scope_ref, name, description, unit, aggregation)
    }

    /// Writes one `Measurement` of the instrument `metric_ref`, timed now.
    pub fn write_measurement(
        &self,
        metric_ref: i64,
        value: Measured,
        attributes: &[KeyValue],
        span: Option<SpanRef>,
    ) {
        let value = match value {
            Measured::Long(v) => NumberValue::Long(v),
            Measured::Double(v) => NumberValue::Double(v),
        };
        write_measurement(
            &self.inner,
            &measurement_metric(metric_ref),
            value,
            attributes,
            span.as_ref().and_then(SpanRef::ids),
            Dated::Always,
        );
    }
}
