//! Writes `Event` records (log records, and span events) into the events ring
//! with the borrowed encoder.

use otlp_mmap_core::RingKind;

use crate::encode::{
    Attrs, KeyMemo, KeyRefs, SlotWriter, SpanIds, Val, attrs_len, bytes_field_ne_len,
    fixed64_field_len, len_field_len, put_attrs, put_span_context, put_value, span_context_len,
    value_len, varint_field_nz_len,
};
use crate::file::FileInner;

// Event field numbers, from `proto/mmap.proto`.
use otlp_mmap_core::tags::event::{
    ATTRIBUTES, BODY, EVENT_NAME_REF, SCOPE_REF, SEVERITY_NUMBER, SEVERITY_TEXT, SPAN_CONTEXT,
    TIME_UNIX_NANO as TIME,
};

/// Everything of an `Event` except its attributes.
pub(crate) struct EventInfo<'a> {
    pub scope_ref: i64,
    pub time_unix_nano: u64,
    pub severity_number: u64,
    pub severity_text: &'a str,
    pub body: Option<Val<'a>>,
    /// Interned; empty for none.
    pub event_name: &'a str,
    pub span: Option<SpanIds>,
}

/// Writes one `Event`.
#[inline]
pub(crate) fn write_log_event(
    file: &FileInner,
    keys: &mut dyn KeyRefs,
    info: &EventInfo<'_>,
    attrs: &(impl Attrs + ?Sized),
) {
    let mut memo = KeyMemo::new();
    let unresolved = keys.unresolved();
    let name_ref = keys.key_ref(info.event_name);
    let body_len = info.body.map(|b| value_len(b, keys));
    let len = varint_field_nz_len(SCOPE_REF, info.scope_ref as u64)
        + if info.time_unix_nano != 0 {
            fixed64_field_len(TIME)
        } else {
            0
        }
        + varint_field_nz_len(SEVERITY_NUMBER, info.severity_number)
        + bytes_field_ne_len(SEVERITY_TEXT, info.severity_text.len())
        + body_len.map_or(0, |n| len_field_len(BODY, n))
        + varint_field_nz_len(EVENT_NAME_REF, name_ref as u64)
        + info
            .span
            .as_ref()
            .map_or(0, |s| len_field_len(SPAN_CONTEXT, span_context_len(s)))
        + attrs_len(ATTRIBUTES, attrs, keys, &mut memo);
    if keys.unresolved() != unresolved {
        file.drop_for_missing_entry(RingKind::Events);
        return;
    }
    let _ = file.writer.try_write_with(RingKind::Events, len, |buf| {
        let mut w = SlotWriter::new(buf);
        w.varint_field_nz(SCOPE_REF, info.scope_ref as u64);
        if info.time_unix_nano != 0 {
            w.fixed64_field(TIME, info.time_unix_nano);
        }
        w.varint_field_nz(SEVERITY_NUMBER, info.severity_number);
        w.bytes_field_ne(SEVERITY_TEXT, info.severity_text.as_bytes());
        if let (Some(body), Some(n)) = (info.body, body_len) {
            w.message_header(BODY, n);
            put_value(&mut w, body, keys);
        }
        w.varint_field_nz(EVENT_NAME_REF, name_ref as u64);
        if let Some(span) = &info.span {
            w.message_header(SPAN_CONTEXT, span_context_len(span));
            put_span_context(&mut w, span);
        }
        put_attrs(&mut w, ATTRIBUTES, attrs, keys, &mut memo);
        w.written()
    });
}
