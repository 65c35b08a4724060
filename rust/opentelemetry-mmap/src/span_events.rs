//! Writes `SpanEvent` records (start, end, rename, attribute update, links)
//! into the spans ring with the borrowed encoder. Shared by the API tracer and
//! the SDK span processor.

use opentelemetry::trace::{Link, SpanKind, Status, TraceState};
use otlp_mmap_core::RingKind;

use prost::encoding::encoded_len_varint;

use crate::encode::{
    Attrs, EncodedKey, NoKeys, ProtoWriter, SpanIds, SplitAttrs, put_attrs, put_status_parts,
    status_parts,
};
use crate::file::{FileInner, Oversized, TooLarge};
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
    /// `scope_ref` as the `SpanEvent` field ([`span_scope`]).
    pub scope: EncodedKey,
}

impl SpanKey {
    pub(crate) fn new(trace_id: [u8; 16], span_id: [u8; 8], scope_ref: i64) -> Self {
        SpanKey {
            trace_id,
            span_id,
            scope_ref,
            scope: span_scope(scope_ref),
        }
    }
}

/// The `scope_ref` field of a `SpanEvent`, encoded once per tracer.
pub(crate) fn span_scope(scope_ref: i64) -> EncodedKey {
    EncodedKey::varint_field(SCOPE_REF, scope_ref as u64)
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

/// Bytes of a `SpanEvent`'s `trace_id` and `span_id` fields.
const IDS_LEN: usize = 2 + 16 + 2 + 8;

/// Writes one `SpanEvent` whose event (field `field`) has the body `body` writes.
#[inline]
fn put_span_event(
    w: &mut ProtoWriter<'_>,
    key: &SpanKey,
    field: u32,
    body: impl FnOnce(&mut ProtoWriter<'_>),
) {
    // Both id fields in one block.
    let mut ids = [0u8; IDS_LEN];
    ids[0] = ((TRACE_ID as u8) << 3) | 2;
    ids[1] = 16;
    ids[2..18].copy_from_slice(&key.trace_id);
    ids[18] = ((SPAN_ID as u8) << 3) | 2;
    ids[19] = 8;
    ids[20..28].copy_from_slice(&key.span_id);
    w.short(&ids, IDS_LEN);
    let m = w.begin(field);
    body(w);
    w.end(m);
    w.encoded(&key.scope);
}

/// What a `StartSpan` carries besides its attributes.
pub(crate) struct StartInfo<'a> {
    pub parent_span_id: Option<[u8; 8]>,
    pub name: &'a str,
    pub kind: u64,
    pub start_time_unix_nano: u64,
    pub flags: u32,
}

/// Writes `StartSpan`; says whether it was too large for a slot (not
/// written; counted as `oversized` says).
#[inline]
fn write_start(
    keys: &mut Keys<'_>,
    key: &SpanKey,
    info: &StartInfo<'_>,
    attrs: &(impl Attrs + ?Sized),
    oversized: Oversized,
) -> TooLarge {
    keys.write_as(RingKind::Spans, oversized, |w, k| {
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
    })
}

/// No attributes.
const NO_ATTRIBUTES: &[opentelemetry::KeyValue] = &[];

/// Writes `StartSpan`. One too large for a slot with its attributes is
/// written again without them, each attribute then following in an
/// `UpdateAttributes` of its own: the span is kept, and so is every
/// attribute that fits a slot by itself. Only what is still too large is
/// dropped and counted (the start without attributes: its name; an
/// attribute by itself).
pub(crate) fn write_start_or_split(
    keys: &mut Keys<'_>,
    key: &SpanKey,
    info: &StartInfo<'_>,
    attrs: &(impl SplitAttrs + ?Sized),
) {
    if write_start(keys, key, info, attrs, Oversized::WrittenAgain).0 {
        split_start(keys, key, info, attrs);
    }
}

#[cold]
fn split_start(
    keys: &mut Keys<'_>,
    key: &SpanKey,
    info: &StartInfo<'_>,
    attrs: &(impl SplitAttrs + ?Sized),
) {
    if attrs.count() == 0 {
        // Too large without attributes: nothing to write smaller.
        keys.count_too_large(RingKind::Spans);
        return;
    }
    let _ = write_start(keys, key, info, NO_ATTRIBUTES, Oversized::Dropped);
    write_each_attribute(keys, key, attrs);
}

/// Writes `UpdateAttributes`; one too large for a slot is written again as
/// one record per attribute (what is still too large by itself is dropped
/// and counted).
pub(crate) fn write_attributes_or_split(
    keys: &mut Keys<'_>,
    key: &SpanKey,
    attrs: &(impl SplitAttrs + ?Sized),
) {
    if write_attributes_as(keys, key, attrs, Oversized::WrittenAgain).0 {
        if attrs.count() > 1 {
            write_each_attribute(keys, key, attrs);
        } else {
            keys.count_too_large(RingKind::Spans);
        }
    }
}

/// One `UpdateAttributes` per attribute (one still too large is dropped and
/// counted).
#[cold]
fn write_each_attribute(keys: &mut Keys<'_>, key: &SpanKey, attrs: &(impl SplitAttrs + ?Sized)) {
    for i in 0..attrs.count() {
        write_attributes(keys, key, &attrs.only(i));
    }
}

/// Bytes of a field of `body` bytes (a message, string or bytes) with a
/// one-byte key (a field number below 16).
#[inline]
fn len_field(body: usize) -> usize {
    1 + encoded_len_varint(body as u64) + body
}

/// Bytes of the `SpanEvent` [`write_end`] writes with the status message
/// `message`, counted from its fields (so that it is encoded once, straight
/// into its slot).
#[inline]
fn end_len_parts(key: &SpanKey, end_time_unix_nano: u64, status: &Status, message: &str) -> usize {
    let mut body = if end_time_unix_nano != 0 { 9 } else { 0 };
    if !matches!(status, Status::Unset) {
        let code = status_parts(status).0;
        let mut s = 0;
        if !message.is_empty() {
            s += len_field(message.len());
        }
        if code != 0 {
            s += 1 + encoded_len_varint(code);
        }
        body += len_field(s);
    }
    IDS_LEN + len_field(body) + key.scope.len()
}

/// Writes `EndSpan` (the status is left out when unset), encoded once,
/// straight into its slot: its size is counted first ([`end_len`]). (Were
/// that count ever wrong, the ring would publish the slot as a record the
/// reader rejects, and count it.)
#[inline]
pub(crate) fn write_end(file: &FileInner, key: &SpanKey, end_time_unix_nano: u64, status: &Status) {
    // A status message too long for the slot is cut (at a character
    // boundary) rather than losing the end: a span without it stays
    // incomplete for good.
    let mut message = status_parts(status).1;
    let mut len = end_len_parts(key, end_time_unix_nano, status, message);
    let most = file.writer.ring(RingKind::Spans).max_message_len();
    if len > most {
        let mut keep = message.len().saturating_sub(len - most + 2);
        while !message.is_char_boundary(keep) {
            keep -= 1;
        }
        message = &message[..keep];
        len = end_len_parts(key, end_time_unix_nano, status, message);
    }
    let _ = file.writer.try_write_with(RingKind::Spans, len, |slot| {
        let mut w = ProtoWriter::new(slot);
        put_span_event(&mut w, key, END, |w| {
            if end_time_unix_nano != 0 {
                w.fixed64_field(END_TIME, end_time_unix_nano);
            }
            if !matches!(status, Status::Unset) {
                put_status_parts(w, END_STATUS, status_parts(status).0, message);
            }
        });
        w.written()
    });
}

/// Writes `ChangeSpanName`.
#[inline]
pub(crate) fn write_name(file: &FileInner, key: &SpanKey, name: &str) {
    let mut scratch = [0; SMALL_SCRATCH];
    let _ = file.write_record(
        RingKind::Spans,
        &mut scratch,
        &mut NoKeys,
        Oversized::Dropped,
        |w, _| {
            put_span_event(w, key, NAME, |w| {
                w.bytes_field_ne(CHANGE_NAME, name.as_bytes())
            })
        },
    );
}

/// Writes `UpdateAttributes`; one too large for a slot is dropped and
/// counted.
#[inline]
pub(crate) fn write_attributes(keys: &mut Keys<'_>, key: &SpanKey, attrs: &(impl Attrs + ?Sized)) {
    let _ = write_attributes_as(keys, key, attrs, Oversized::Dropped);
}

/// Writes `UpdateAttributes`; says whether it was too large for a slot
/// (not written; counted as `oversized` says).
#[inline]
fn write_attributes_as(
    keys: &mut Keys<'_>,
    key: &SpanKey,
    attrs: &(impl Attrs + ?Sized),
    oversized: Oversized,
) -> TooLarge {
    keys.write_as(RingKind::Spans, oversized, |w, k| {
        put_span_event(w, key, ATTRIBUTES, |w| {
            put_attrs(w, UPDATE_ATTRIBUTES, attrs, k)
        })
    })
}

/// Writes one `AddLink` record with one link, to the span `link`, without
/// attributes or trace state.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn write_link(keys: &mut Keys<'_>, key: &SpanKey, link: &SpanIds) {
    let _ = keys.write(RingKind::Spans, |w, _| {
        put_span_event(w, key, LINK, |w| {
            let m = w.begin(LINKS);
            w.bytes_field(LINK_TRACE_ID, &link.trace_id);
            w.bytes_field(LINK_SPAN_ID, &link.span_id);
            if link.flags != 0 {
                w.fixed32_field(LINK_FLAGS, link.flags);
            }
            w.end(m);
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

/// Writes one `AddLink` record with all of `links`; when that is too large
/// for a slot, one per link (links append: the same links either way; what
/// is still too large by itself is dropped and counted).
pub(crate) fn write_links(keys: &mut Keys<'_>, key: &SpanKey, links: &[Link]) {
    if links.is_empty() {
        return;
    }
    if write_links_as(keys, key, links, Oversized::WrittenAgain).0 {
        if links.len() > 1 {
            for link in links.chunks(1) {
                let _ = write_links_as(keys, key, link, Oversized::Dropped);
            }
        } else {
            keys.count_too_large(RingKind::Spans);
        }
    }
}

/// Writes one `AddLink` record with `links`; says whether it was too large
/// for a slot (not written; counted as `oversized` says).
fn write_links_as(
    keys: &mut Keys<'_>,
    key: &SpanKey,
    links: &[Link],
    oversized: Oversized,
) -> TooLarge {
    keys.write_as(RingKind::Spans, oversized, |w, k| {
        put_span_event(w, key, LINK, |w| {
            for link in links {
                let sc = &link.span_context;
                // Allocated only for a link that has a trace state.
                let ts = trace_state_header(sc.trace_state());
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
    })
}

#[cfg(test)]
mod tests {
    use otlp_mmap_core::proto;
    use prost::Message;

    use super::*;

    #[test]
    fn an_end_is_as_long_as_counted_and_decodes_to_what_was_written() {
        let long = "m".repeat(200);
        let statuses = [
            Status::Unset,
            Status::Ok,
            Status::error(""),
            Status::error("boom"),
            Status::error(long.clone()),
        ];
        for scope_ref in [0, 1, 300, i64::MAX] {
            let key = SpanKey::new([7; 16], [9; 8], scope_ref);
            for end in [0, 1, u64::MAX] {
                for status in &statuses {
                    let mut buf = vec![0u8; 512];
                    let mut w = ProtoWriter::new(&mut buf);
                    put_span_event(&mut w, &key, END, |w| {
                        if end != 0 {
                            w.fixed64_field(END_TIME, end);
                        }
                        if !matches!(status, Status::Unset) {
                            let (code, message) = status_parts(status);
                            put_status_parts(w, END_STATUS, code, message);
                        }
                    });
                    let n = w.written();
                    assert_eq!(
                        n,
                        end_len_parts(&key, end, status, status_parts(status).1),
                        "{scope_ref} {end} {status:?}"
                    );
                    let event = proto::SpanEvent::decode(&buf[..n]).unwrap();
                    assert_eq!(event.encode_to_vec(), &buf[..n]);
                    assert_eq!(event.trace_id, [7; 16]);
                    assert_eq!(event.span_id, [9; 8]);
                    assert_eq!(event.scope_ref, scope_ref);
                }
            }
        }
    }
}
