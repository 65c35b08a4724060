//! Writes `SpanEvent` records (start, end, rename, attribute update, links)
//! into the spans ring with the borrowed encoder. Shared by the API tracer and
//! the SDK span processor.

use opentelemetry::trace::{Link, SpanKind, Status, TraceState};
use otlp_mmap_core::RingKind;

use crate::encode::{Attrs, NoKeys, ProtoWriter, put_attrs, put_status};
use crate::file::FileInner;
use crate::key_cache::Keys;

// Field numbers, from `proto/mmap.proto`.
use otlp_mmap_core::tags::span_event::add_link::LINKS;
use otlp_mmap_core::tags::span_event::add_link::link::{
    ATTRIBUTES as LINK_ATTRIBUTES, DROPPED_ATTRIBUTES_COUNT as LINK_DROPPED, FLAGS as LINK_FLAGS,
    SPAN_ID as LINK_SPAN_ID, TRACE_ID as LINK_TRACE_ID, TRACE_STATE as LINK_TRACE_STATE,
};
use otlp_mmap_core::tags::span_event::change_span_name::NAME as CHANGE_NAME;
use otlp_mmap_core::tags::span_event::end_span::{
    END_TIME_UNIX_NANO as END_TIME, STATUS as END_STATUS,
};
use otlp_mmap_core::tags::span_event::start_span::{
    ATTRIBUTES as START_ATTRIBUTES, FLAGS as START_FLAGS, KIND as START_KIND, NAME as START_NAME,
    PARENT_SPAN_ID as START_PARENT, START_TIME_UNIX_NANO as START_TIME,
};
use otlp_mmap_core::tags::span_event::update_attributes::ATTRIBUTES as UPDATE_ATTRIBUTES;
use otlp_mmap_core::tags::span_event::{
    ATTRIBUTES, END, LINK, NAME, SCOPE_REF, SPAN_ID, START, TRACE_ID,
};

/// OTLP span flags: the parent's remoteness is known (bit 8) and remote (bit 9).
pub(crate) const FLAG_HAS_IS_REMOTE: u32 = 0x100;
pub(crate) const FLAG_IS_REMOTE: u32 = 0x200;

/// Which span a record is about.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpanKey {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub scope_ref: i64,
}

/// The wire value of a span kind.
#[inline]
pub(crate) fn kind_number(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// Scratch for records without attributes (end, rename); a longer one (a
/// long status message or name) is encoded twice.
const SMALL_SCRATCH: usize = 128;

/// Writes one `SpanEvent` whose event (field `field`) has the body `body` writes.
#[inline]
fn put_span_event(
    w: &mut ProtoWriter<'_>,
    key: &SpanKey,
    field: u32,
    body: impl FnOnce(&mut ProtoWriter<'_>),
) {
    w.bytes_field(TRACE_ID, &key.trace_id);
    w.bytes_field(SPAN_ID, &key.span_id);
    let m = w.begin(field);
    body(w);
    w.end(m);
    w.varint_field_nz(SCOPE_REF, key.scope_ref as u64);
}

/// What a `StartSpan` carries besides its attributes.
pub(crate) struct StartInfo<'a> {
    pub parent_span_id: Option<[u8; 8]>,
    pub name: &'a str,
    pub kind: u64,
    pub start_time_unix_nano: u64,
    pub flags: u32,
}

/// Writes `StartSpan`.
#[inline]
pub(crate) fn write_start(
    keys: &mut Keys<'_>,
    key: &SpanKey,
    info: &StartInfo<'_>,
    attrs: &(impl Attrs + ?Sized),
) {
    keys.write(RingKind::Spans, |w, k| {
        put_span_event(w, key, START, |w| {
            if let Some(parent) = &info.parent_span_id {
                w.bytes_field(START_PARENT, parent);
            }
            w.bytes_field_ne(START_NAME, info.name.as_bytes());
            w.varint_field_nz(START_KIND, info.kind);
            if info.start_time_unix_nano != 0 {
                w.fixed64_field(START_TIME, info.start_time_unix_nano);
            }
            put_attrs(w, START_ATTRIBUTES, attrs, k);
            if info.flags != 0 {
                w.fixed32_field(START_FLAGS, info.flags);
            }
        })
    });
}

/// Writes `EndSpan` (the status is left out when unset).
#[inline]
pub(crate) fn write_end(file: &FileInner, key: &SpanKey, end_time_unix_nano: u64, status: &Status) {
    let mut scratch = [0; SMALL_SCRATCH];
    file.write_record(RingKind::Spans, &mut scratch, &mut NoKeys, |w, _| {
        put_span_event(w, key, END, |w| {
            if end_time_unix_nano != 0 {
                w.fixed64_field(END_TIME, end_time_unix_nano);
            }
            if !matches!(status, Status::Unset) {
                put_status(w, END_STATUS, status);
            }
        })
    });
}

/// Writes `ChangeSpanName`.
#[inline]
pub(crate) fn write_name(file: &FileInner, key: &SpanKey, name: &str) {
    let mut scratch = [0; SMALL_SCRATCH];
    file.write_record(RingKind::Spans, &mut scratch, &mut NoKeys, |w, _| {
        put_span_event(w, key, NAME, |w| {
            w.bytes_field_ne(CHANGE_NAME, name.as_bytes())
        })
    });
}

/// Writes `UpdateAttributes`.
#[inline]
pub(crate) fn write_attributes(keys: &mut Keys<'_>, key: &SpanKey, attrs: &(impl Attrs + ?Sized)) {
    keys.write(RingKind::Spans, |w, k| {
        put_span_event(w, key, ATTRIBUTES, |w| {
            put_attrs(w, UPDATE_ATTRIBUTES, attrs, k)
        })
    });
}

/// The W3C header form of a trace state; empty (and nothing allocated) when
/// there is none.
fn trace_state_header(ts: &TraceState) -> String {
    if *ts == TraceState::NONE {
        String::new()
    } else {
        ts.header()
    }
}

/// Writes one `AddLink` record with all of `links`.
pub(crate) fn write_links(keys: &mut Keys<'_>, key: &SpanKey, links: &[Link]) {
    if links.is_empty() {
        return;
    }
    let states: Vec<String> = links
        .iter()
        .map(|l| trace_state_header(l.span_context.trace_state()))
        .collect();
    keys.write(RingKind::Spans, |w, k| {
        put_span_event(w, key, LINK, |w| {
            for (link, ts) in links.iter().zip(&states) {
                let sc = &link.span_context;
                let flags = sc.trace_flags().to_u8() as u32;
                let m = w.begin(LINKS);
                w.bytes_field(LINK_TRACE_ID, &sc.trace_id().to_bytes());
                w.bytes_field(LINK_SPAN_ID, &sc.span_id().to_bytes());
                w.bytes_field_ne(LINK_TRACE_STATE, ts.as_bytes());
                put_attrs(w, LINK_ATTRIBUTES, link.attributes.as_slice(), k);
                w.varint_field_nz(LINK_DROPPED, link.dropped_attributes_count as u64);
                if flags != 0 {
                    w.fixed32_field(LINK_FLAGS, flags);
                }
                w.end(m);
            }
        })
    });
}
