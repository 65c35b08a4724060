//! [`MmapSpanProcessor`]: for applications that keep the OpenTelemetry SDK's
//! `SdkTracerProvider`, a span processor that writes into the file.
//!
//! | SDK callback | records in the spans ring |
//! |---|---|
//! | `on_start` | `StartSpan` (ids, parent, name, kind, start time, attributes known at start, flags), so that a span still in flight at a crash is known |
//! | `on_end` | `ChangeSpanName` if the name changed since the start; `UpdateAttributes` with the attributes added after the start; one `AddLink` with all links; the span's events as `Event`s in the events ring (as [`crate::trace`] does); then `EndSpan` (end time, status) |
//!
//! To know at the end what the start already wrote, `on_start` leaves a
//! 64-bit note in a fixed table indexed by span id (no lock, no allocation):
//! 20 more bits of the span id, a 31-bit hash of the start name and the
//! attribute count. The SDK only appends attributes, so the ones after that
//! count are exactly those added later. When the note is gone (another span
//! in flight took its place, or more than 4095 attributes) `on_end` falls back
//! to writing the name and all attributes again, which the collector treats as
//! an upsert (same key, new value), so nothing is lost or wrong either way.
//! Links are written only at the end (the SDK lets them be added after the
//! start), so an unfinished span's links are lost in a crash.
//!
//! The resource is the SDK provider's (given to the processor through
//! `set_resource`), interned once; without one, the file's.

use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering};
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
use crate::log_events::{EventInfo, write_log_event};
use crate::span_events::{
    FLAG_HAS_IS_REMOTE, FLAG_IS_REMOTE, SpanKey, StartInfo, kind_number, write_attributes,
    write_end, write_links, write_name, write_start,
};

const NOTES: usize = 4096;
const PRESENT: u64 = 1 << 63;
const MAX_COUNT: u64 = 0xFFF;

/// A span processor that writes every span's start and end into the file.
#[derive(Debug)]
pub struct MmapSpanProcessor {
    file: MmapExporterFile,
    resource_ref: i64,
    notes: Box<[AtomicU64]>,
}

impl MmapSpanProcessor {
    /// A processor writing into `file`.
    pub fn new(file: &MmapExporterFile) -> Self {
        MmapSpanProcessor {
            resource_ref: file.resource_ref(),
            file: file.clone(),
            notes: (0..NOTES).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The file written to.
    pub fn file(&self) -> &MmapExporterFile {
        &self.file
    }
}

fn name_hash(name: &str) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(name.as_bytes());
    h.finish() & 0x7FFF_FFFF
}

/// `(slot, note)` for a span started with `name` and `attrs` attributes.
fn note_for(span_id: u64, name: &str, attrs: usize) -> (usize, u64) {
    let slot = (span_id as usize) & (NOTES - 1);
    let check = (span_id >> 12) & 0xF_FFFF;
    let note = PRESENT | (check << 43) | (name_hash(name) << 12) | (attrs as u64).min(MAX_COUNT);
    (slot, note)
}

fn span_key(data: &SpanData, scope_ref: i64) -> SpanKey {
    SpanKey {
        trace_id: data.span_context.trace_id().to_bytes(),
        span_id: data.span_context.span_id().to_bytes(),
        scope_ref,
    }
}

impl SpanProcessor for MmapSpanProcessor {
    fn on_start(&self, span: &mut Span, _cx: &Context) {
        let Some(data) = span.exported_data() else {
            return;
        };
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
            write_start(
                file,
                keys,
                &span_key(&data, scope_ref),
                &info,
                data.attributes.as_slice(),
            );
        });
        let id = u64::from_be_bytes(data.span_context.span_id().to_bytes());
        let (slot, note) = note_for(id, &data.name, data.attributes.len());
        self.notes[slot].store(note, Ordering::Relaxed);
    }

    fn on_end(&self, data: SpanData) {
        let file = &*self.file.inner;
        let id = u64::from_be_bytes(data.span_context.span_id().to_bytes());
        let (slot, empty_note) = note_for(id, "", 0);
        let note = self.notes[slot].load(Ordering::Relaxed);
        // Bits 43..64: the presence bit and the span id check bits.
        let known = (note >> 43) == (empty_note >> 43)
            && (note & MAX_COUNT) < MAX_COUNT
            && self.notes[slot]
                .compare_exchange(note, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        let (renamed, first_new_attr) = if known {
            (
                (note >> 12) & 0x7FFF_FFFF != name_hash(&data.name),
                ((note & MAX_COUNT) as usize).min(data.attributes.len()),
            )
        } else {
            (true, 0)
        };
        with_keys(file, |keys| {
            let scope_ref = keys.scope_ref(&data.instrumentation_scope, self.resource_ref);
            let key = span_key(&data, scope_ref);
            if renamed {
                write_name(file, &key, &data.name);
            }
            let added = &data.attributes[first_new_attr..];
            if !added.is_empty() {
                write_attributes(file, keys, &key, added);
            }
            write_links(file, keys, &key, &data.links.links);
            let ids = SpanIds::of(&data.span_context).or(Some(SpanIds {
                trace_id: key.trace_id,
                span_id: key.span_id,
                flags: TraceFlags::SAMPLED.to_u8() as u32,
            }));
            for event in data.events.events.iter() {
                let info = EventInfo {
                    scope_ref,
                    time_unix_nano: unix_nano(event.timestamp),
                    severity_number: 0,
                    severity_text: "",
                    body: None,
                    event_name: &event.name,
                    span: ids,
                };
                write_log_event(file, keys, &info, event.attributes.as_slice());
            }
            write_end(file, &key, unix_nano(data.end_time), &data.status);
        });
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
