//! [`MmapSpanProcessor`]: for applications that keep the OpenTelemetry SDK's
//! `SdkTracerProvider`, a span processor that writes into the file.
//!
//! | SDK callback | records in the spans ring |
//! |---|---|
//! | `on_start` | `StartSpan` (ids, parent, name, kind, start time, attributes known at start, flags), so that a span still in flight at a crash is known |
//! | `on_end` | `ChangeSpanName` if the name changed since the start; `UpdateAttributes` with the attributes added after the start; one `AddLink` with all links; the span's events as `Event`s in the events ring (as [`crate::trace`] does); then `EndSpan` (end time, status) |
//!
//! To know at the end what the start already wrote, `on_start` keeps a
//! note for the span in a lock-free table indexed by span id
//! ([`crate::span_notes`]): the start's attribute count and a 48-bit hash of
//! its name. The SDK only appends attributes, so the ones after that count are
//! exactly those added later, and the name is written again only when it
//! changed: no span's name or attribute is written twice, at any number of
//! spans in flight. The table holds about
//! [`MmapSpanProcessor::DEFAULT_SPANS_IN_FLIGHT`] spans (see
//! [`MmapSpanProcessor::with_spans_in_flight`]); a span that finds no room in
//! it (or starts with more than 65,535 attributes) is written whole at its
//! end instead (`StartSpan` with its final name and all attributes, then the
//! rest), so only a crash while it is in flight loses it. Links are written
//! only at the end (the SDK lets them be added after the start), so an
//! unfinished span's links are lost in a crash.
//!
//! The resource is the SDK provider's (given to the processor through
//! `set_resource`), interned once; without one, the file's.

use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::trace::TraceFlags;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use crate::clock::unix_nano;
use crate::encode::SpanIds;
use crate::file::MmapExporterFile;
use crate::key_cache::with_keys;
use crate::log_events::{EventInfo, event_scope, write_log_event};
use crate::span_events::{
    FLAG_HAS_IS_REMOTE, FLAG_IS_REMOTE, SpanKey, StartInfo, kind_number, write_attributes_or_split,
    write_end, write_links, write_name, write_start_or_split,
};
use crate::span_notes::{Note, SpanNotes};

/// A span processor that writes every span's start and end into the file.
#[derive(Debug)]
pub struct MmapSpanProcessor {
    file: MmapExporterFile,
    resource_ref: i64,
    notes: SpanNotes,
}

impl MmapSpanProcessor {
    /// Spans in flight the processor keeps notes for by default (16 bytes
    /// each, allocated once: 128 KiB, which stays in cache; a 1 MiB table
    /// cost about 150 ns more per span in `benches/spans.rs`).
    pub const DEFAULT_SPANS_IN_FLIGHT: usize = 1 << 13;

    /// A processor writing into `file`.
    pub fn new(file: &MmapExporterFile) -> Self {
        Self::with_spans_in_flight(file, Self::DEFAULT_SPANS_IN_FLIGHT)
    }

    /// A processor writing into `file` with room for notes on about
    /// `spans_in_flight` spans at once (a power of two, 16 bytes each, at
    /// most 2^24). Spans beyond it are written whole at their end (see the
    /// module documentation).
    pub fn with_spans_in_flight(file: &MmapExporterFile, spans_in_flight: usize) -> Self {
        MmapSpanProcessor {
            resource_ref: file.resource_ref(),
            file: file.clone(),
            notes: SpanNotes::with_capacity(spans_in_flight),
        }
    }

    /// The file written to.
    pub fn file(&self) -> &MmapExporterFile {
        &self.file
    }
}

fn span_key(data: &SpanData, scope_ref: i64) -> SpanKey {
    SpanKey::new(
        data.span_context.trace_id().to_bytes(),
        data.span_context.span_id().to_bytes(),
        scope_ref,
    )
}

impl MmapSpanProcessor {
    /// Writes `StartSpan` with the span's name and attributes as they are now.
    fn write_start(&self, data: &SpanData) {
        let file = &*self.file.inner;
        let parent = data.parent_span_id;
        let has_parent = parent != opentelemetry::trace::SpanId::INVALID;
        let info = StartInfo {
            parent_span_id: has_parent.then(|| parent.to_bytes()),
            name: &data.name,
            kind: kind_number(&data.span_kind),
            start_time_unix_nano: unix_nano(data.start_time),
            flags: data.span_context.trace_flags().to_u8() as u32
                | FLAG_HAS_IS_REMOTE
                | if has_parent && data.parent_span_is_remote {
                    FLAG_IS_REMOTE
                } else {
                    0
                },
        };
        with_keys(file, |keys| {
            let scope_ref = keys.scope_ref(&data.instrumentation_scope, self.resource_ref);
            write_start_or_split(
                keys,
                &span_key(data, scope_ref),
                &info,
                data.attributes.as_slice(),
            );
        });
    }

    /// Writes what follows the start: `ChangeSpanName` when `renamed`,
    /// `UpdateAttributes` with `added`, the links, the events, `EndSpan`.
    fn write_rest(&self, data: &SpanData, renamed: bool, added: &[opentelemetry::KeyValue]) {
        let file = &*self.file.inner;
        with_keys(file, |keys| {
            let scope_ref = keys.scope_ref(&data.instrumentation_scope, self.resource_ref);
            let key = span_key(data, scope_ref);
            if renamed {
                write_name(file, &key, &data.name);
            }
            if !added.is_empty() {
                write_attributes_or_split(keys, &key, added);
            }
            write_links(keys, &key, &data.links.links);
            let ids = SpanIds::of(&data.span_context).or(Some(SpanIds {
                trace_id: key.trace_id,
                span_id: key.span_id,
                flags: TraceFlags::SAMPLED.to_u8() as u32,
            }));
            for event in data.events.events.iter() {
                let info = EventInfo {
                    scope: event_scope(scope_ref),
                    time_unix_nano: unix_nano(event.timestamp),
                    severity_number: 0,
                    severity_text: "",
                    body: None,
                    event_name: &event.name,
                    span: ids,
                };
                write_log_event(keys, &info, event.attributes.as_slice());
            }
            write_end(file, &key, unix_nano(data.end_time), &data.status);
        });
    }
}

impl SpanProcessor for MmapSpanProcessor {
    fn on_start(&self, span: &mut Span, _cx: &Context) {
        let Some(data) = span.exported_data() else {
            return;
        };
        let id = u64::from_be_bytes(data.span_context.span_id().to_bytes());
        let noted = Note::new(&data.name, data.attributes.len())
            .is_some_and(|note| self.notes.insert(id, note));
        if noted {
            self.write_start(&data);
        }
    }

    fn on_end(&self, data: SpanData) {
        let id = u64::from_be_bytes(data.span_context.span_id().to_bytes());
        let Some(note) = self.notes.take(id) else {
            // The start wrote nothing: write it now, whole.
            self.write_start(&data);
            self.write_rest(&data, false, &[]);
            return;
        };
        let first_new = note.attributes().min(data.attributes.len());
        self.write_rest(
            &data,
            !note.same_name(&data.name),
            &data.attributes[first_new..],
        );
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource_ref = self.file.inner.resource_ref_of(resource);
    }
}
