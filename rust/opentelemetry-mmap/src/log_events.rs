//! Writes `Event` records (log records, and span events) into the events ring
//! with the borrowed encoder.

use otlp_mmap_core::RingKind;

use crate::encode::{
    Attrs, EncodedKey, KeyRefs, SpanIds, Val, put_attrs, put_span_context, put_value_field,
};
use crate::file::{Oversized, TooLarge};
use crate::key_cache::Keys;

// Event field numbers, from `proto/mmap.proto`.
use otlp_mmap_core::tags::event::{
    ATTRIBUTES, BODY, EVENT_NAME_REF, SCOPE_REF, SEVERITY_NUMBER, SEVERITY_TEXT, SPAN_CONTEXT,
    TIME_UNIX_NANO as TIME,
};

/// Everything of an `Event` except its attributes.
pub(crate) struct EventInfo<'a> {
    /// The scope's ref as the event's field ([`event_scope`]).
    pub scope: EncodedKey,
    pub time_unix_nano: u64,
    pub severity_number: u64,
    pub severity_text: &'a str,
    pub body: Option<Val<'a>>,
    /// Interned; empty for none.
    pub event_name: &'a str,
    pub span: Option<SpanIds>,
}

/// The `scope_ref` field of an `Event`, encoded (once per logger).
pub(crate) fn event_scope(scope_ref: i64) -> EncodedKey {
    EncodedKey::varint_field(SCOPE_REF, scope_ref as u64)
}

/// Writes one `Event`; says whether it was too large for a slot (dropped
/// and counted).
#[inline]
pub(crate) fn write_log_event(
    keys: &mut Keys<'_>,
    info: &EventInfo<'_>,
    attrs: &(impl Attrs + ?Sized),
) -> TooLarge {
    write_log_event_as(keys, info, attrs, Oversized::Dropped)
}

/// [`write_log_event`], with what becomes of an `Event` larger than a slot.
#[inline]
pub(crate) fn write_log_event_as(
    keys: &mut Keys<'_>,
    info: &EventInfo<'_>,
    attrs: &(impl Attrs + ?Sized),
    oversized: Oversized,
) -> TooLarge {
    keys.write_as(RingKind::Events, oversized, |w, k| {
        let name_ref = k.key_ref(info.event_name);
        w.encoded(&info.scope);
        if info.time_unix_nano != 0 {
            w.fixed64_field(TIME, info.time_unix_nano);
        }
        w.varint_field_nz(SEVERITY_NUMBER, info.severity_number);
        w.bytes_field_ne(SEVERITY_TEXT, info.severity_text.as_bytes());
        if let Some(body) = info.body {
            put_value_field(w, BODY, body, k);
        }
        w.varint_field_nz(EVENT_NAME_REF, name_ref as u64);
        if let Some(span) = &info.span {
            put_span_context(w, SPAN_CONTEXT, span);
        }
        put_attrs(w, ATTRIBUTES, attrs, k);
    })
}
