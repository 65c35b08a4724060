//! Writes `SpanEvent` records (start, end, rename, attribute update, links)
//! into the spans ring with the borrowed encoder. Shared by the API tracer and
//! the SDK span processor.

use opentelemetry::trace::{Link, SpanKind, Status, TraceState};
use otlp_mmap_core::RingKind;

use crate::encode::{
    Attrs, KeyMemo, KeyRefs, SlotWriter, attrs_len, bytes_field_ne_len, fixed32_field_len,
    fixed64_field_len, len_field_len, put_attrs, put_status, status_len, varint_field_nz_len,
};
use crate::file::FileInner;

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

/// Writes one `SpanEvent` whose event body has `body_len` bytes and is
/// written by `body`.
#[inline]
fn write_event(
    file: &FileInner,
    key: &SpanKey,
    field: u32,
    body_len: usize,
    body: impl FnOnce(&mut SlotWriter<'_>),
) {
    let len = len_field_len(TRACE_ID, 16)
        + len_field_len(SPAN_ID, 8)
        + len_field_len(field, body_len)
        + varint_field_nz_len(SCOPE_REF, key.scope_ref as u64);
    let _ = file.writer.try_write_with(RingKind::Spans, len, |buf| {
        let mut w = SlotWriter::new(buf);
        w.bytes_field(TRACE_ID, &key.trace_id);
        w.bytes_field(SPAN_ID, &key.span_id);
        w.message_header(field, body_len);
        body(&mut w);
        w.varint_field_nz(SCOPE_REF, key.scope_ref as u64);
        w.written()
    });
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
    file: &FileInner,
    keys: &mut dyn KeyRefs,
    key: &SpanKey,
    info: &StartInfo<'_>,
    attrs: &(impl Attrs + ?Sized),
) {
    let mut memo = KeyMemo::new();
    let unresolved = keys.unresolved();
    let time_len = if info.start_time_unix_nano != 0 {
        fixed64_field_len(START_TIME)
    } else {
        0
    };
    let body_len = info
        .parent_span_id
        .map_or(0, |_| len_field_len(START_PARENT, 8))
        + bytes_field_ne_len(START_NAME, info.name.len())
        + varint_field_nz_len(START_KIND, info.kind)
        + time_len
        + attrs_len(START_ATTRIBUTES, attrs, keys, &mut memo)
        + if info.flags != 0 {
            fixed32_field_len(START_FLAGS)
        } else {
            0
        };
    if keys.unresolved() != unresolved {
        file.drop_for_missing_entry(RingKind::Spans);
        return;
    }
    write_event(file, key, START, body_len, |w| {
        if let Some(parent) = &info.parent_span_id {
            w.bytes_field(START_PARENT, parent);
        }
        w.bytes_field_ne(START_NAME, info.name.as_bytes());
        w.varint_field_nz(START_KIND, info.kind);
        if info.start_time_unix_nano != 0 {
            w.fixed64_field(START_TIME, info.start_time_unix_nano);
        }
        put_attrs(w, START_ATTRIBUTES, attrs, keys, &mut memo);
        if info.flags != 0 {
            w.fixed32_field(START_FLAGS, info.flags);
        }
    });
}

/// Writes `EndSpan` (the status is left out when unset).
#[inline]
pub(crate) fn write_end(file: &FileInner, key: &SpanKey, end_time_unix_nano: u64, status: &Status) {
    let time_len = if end_time_unix_nano != 0 {
        fixed64_field_len(END_TIME)
    } else {
        0
    };
    let unset = matches!(status, Status::Unset);
    let status_body = status_len(status);
    let body_len = time_len
        + if unset {
            0
        } else {
            len_field_len(END_STATUS, status_body)
        };
    write_event(file, key, END, body_len, |w| {
        if end_time_unix_nano != 0 {
            w.fixed64_field(END_TIME, end_time_unix_nano);
        }
        if !unset {
            w.message_header(END_STATUS, status_body);
            put_status(w, status);
        }
    });
}

/// Writes `ChangeSpanName`.
#[inline]
pub(crate) fn write_name(file: &FileInner, key: &SpanKey, name: &str) {
    let body_len = bytes_field_ne_len(CHANGE_NAME, name.len());
    write_event(file, key, NAME, body_len, |w| {
        w.bytes_field_ne(CHANGE_NAME, name.as_bytes())
    });
}

/// Writes `UpdateAttributes`.
#[inline]
pub(crate) fn write_attributes(
    file: &FileInner,
    keys: &mut dyn KeyRefs,
    key: &SpanKey,
    attrs: &(impl Attrs + ?Sized),
) {
    let mut memo = KeyMemo::new();
    let unresolved = keys.unresolved();
    let body_len = attrs_len(UPDATE_ATTRIBUTES, attrs, keys, &mut memo);
    if keys.unresolved() != unresolved {
        file.drop_for_missing_entry(RingKind::Spans);
        return;
    }
    write_event(file, key, ATTRIBUTES, body_len, |w| {
        put_attrs(w, UPDATE_ATTRIBUTES, attrs, keys, &mut memo)
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

fn link_len(link: &Link, trace_state: &str, keys: &mut dyn KeyRefs) -> usize {
    let sc = &link.span_context;
    let flags = sc.trace_flags().to_u8() as u32;
    len_field_len(LINK_TRACE_ID, 16)
        + len_field_len(LINK_SPAN_ID, 8)
        + bytes_field_ne_len(LINK_TRACE_STATE, trace_state.len())
        + attrs_len(
            LINK_ATTRIBUTES,
            link.attributes.as_slice(),
            keys,
            &mut KeyMemo::new(),
        )
        + varint_field_nz_len(LINK_DROPPED, link.dropped_attributes_count as u64)
        + if flags != 0 {
            fixed32_field_len(LINK_FLAGS)
        } else {
            0
        }
}

/// Writes one `AddLink` record with all of `links`.
pub(crate) fn write_links(file: &FileInner, keys: &mut dyn KeyRefs, key: &SpanKey, links: &[Link]) {
    if links.is_empty() {
        return;
    }
    let unresolved = keys.unresolved();
    let states: Vec<String> = links
        .iter()
        .map(|l| trace_state_header(l.span_context.trace_state()))
        .collect();
    let body_len: usize = links
        .iter()
        .zip(&states)
        .map(|(l, ts)| len_field_len(LINKS, link_len(l, ts, keys)))
        .sum();
    if keys.unresolved() != unresolved {
        file.drop_for_missing_entry(RingKind::Spans);
        return;
    }
    write_event(file, key, LINK, body_len, |w| {
        for (link, ts) in links.iter().zip(&states) {
            let sc = &link.span_context;
            let flags = sc.trace_flags().to_u8() as u32;
            w.message_header(LINKS, link_len(link, ts, keys));
            w.bytes_field(LINK_TRACE_ID, &sc.trace_id().to_bytes());
            w.bytes_field(LINK_SPAN_ID, &sc.span_id().to_bytes());
            w.bytes_field_ne(LINK_TRACE_STATE, ts.as_bytes());
            put_attrs(
                w,
                LINK_ATTRIBUTES,
                link.attributes.as_slice(),
                keys,
                &mut KeyMemo::new(),
            );
            w.varint_field_nz(LINK_DROPPED, link.dropped_attributes_count as u64);
            if flags != 0 {
                w.fixed32_field(LINK_FLAGS, flags);
            }
        }
    });
}
