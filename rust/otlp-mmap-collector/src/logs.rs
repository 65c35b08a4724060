//! Log records: each `Event` of the events ring becomes one OTLP `LogRecord`,
//! encoded straight from the slot into the batch's buffer.

use opentelemetry_proto::tonic::logs::v1::LogRecord;
use otlp_mmap_core::MmapReader;
use otlp_mmap_core::view::EventView;
use prost::Message;

use crate::dictionary::DictionaryCache;
use crate::encode;
use crate::flat::log::LogFields;

/// Field numbers of `opentelemetry.proto.logs.v1.LogRecord`.
mod tag {
    pub const TIME_UNIX_NANO: u32 = 1;
    pub const SEVERITY_NUMBER: u32 = 2;
    pub const SEVERITY_TEXT: u32 = 3;
    pub const BODY: u32 = 5;
    pub const ATTRIBUTES: u32 = 6;
    pub const FLAGS: u32 = 8;
    pub const TRACE_ID: u32 = 9;
    pub const SPAN_ID: u32 = 10;
    pub const OBSERVED_TIME_UNIX_NANO: u32 = 11;
    pub const EVENT_NAME: u32 = 12;
}

/// Converts one event, read straight from its slot. `observed` is when the reader read it.
pub fn log_record(
    file: &MmapReader,
    dict: &mut DictionaryCache,
    ev: &EventView<'_>,
    observed: u64,
) -> LogRecord {
    let mut out = Vec::new();
    encode_log_record(file, dict, ev, observed, &mut out);
    LogRecord::decode(&out[..]).unwrap_or_default()
}

/// Appends the `LogRecord` message of one event (its content, without key
/// and length, fields in the order prost writes them: by number) to `out`. What is
/// resolved from the dictionary is charged to its record budget; a record
/// over budget is incomplete, for the caller to drop.
pub fn encode_log_record(
    file: &MmapReader,
    dict: &mut DictionaryCache,
    ev: &EventView<'_>,
    observed: u64,
    out: &mut Vec<u8>,
) {
    encode_log_record_fields(file, dict, ev, observed, out);
}

/// [`encode_log_record`], which also returns what the record holds, for
/// its flat layout to be written from (ranges of `out`). Inlined: what
/// [`encode_log_record`] does not use is not computed there.
#[inline(always)]
pub(crate) fn encode_log_record_fields(
    file: &MmapReader,
    dict: &mut DictionaryCache,
    ev: &EventView<'_>,
    observed: u64,
    out: &mut Vec<u8>,
) -> LogFields {
    let (trace_id, span_id, flags) = match ev.span_context {
        Some(sc) => (valid_id(sc.trace_id, 16), valid_id(sc.span_id, 8), sc.flags),
        None => (&[][..], &[][..], 0),
    };
    let mut fields = LogFields {
        time_unix_nano: ev.time_unix_nano,
        severity_number: ev.severity_number,
        flags,
        observed_time_unix_nano: observed,
        ..LogFields::default()
    };
    // Valid ids are all or nothing: absent ones stay zeros.
    if let Ok(id) = trace_id.try_into() {
        fields.trace_id = id;
    }
    if let Ok(id) = span_id.try_into() {
        fields.span_id = id;
    }
    encode::fixed64(out, tag::TIME_UNIX_NANO, ev.time_unix_nano);
    encode::varint(out, tag::SEVERITY_NUMBER, ev.severity_number as i64 as u64);
    let text = encode::lossy_bytes(ev.severity_text);
    encode::bytes(out, tag::SEVERITY_TEXT, &text);
    fields.severity_text = out.len() - text.len()..out.len();
    if let Some(body) = ev.body {
        let at = encode::begin(out, tag::BODY);
        dict.encode_value(file, body, out);
        let len = out.len() - at;
        encode::end(out, at);
        fields.body = out.len() - len..out.len();
    }
    let start = out.len();
    dict.encode_log_attributes(file, ev.attributes, tag::ATTRIBUTES, out);
    fields.attributes = start..out.len();
    encode::fixed32(out, tag::FLAGS, flags);
    encode::bytes(out, tag::TRACE_ID, trace_id);
    encode::bytes(out, tag::SPAN_ID, span_id);
    encode::fixed64(out, tag::OBSERVED_TIME_UNIX_NANO, observed);
    let len = dict.encode_string(file, ev.event_name_ref, tag::EVENT_NAME, out);
    fields.event_name = out.len() - len..out.len();
    fields
}

/// An id of the right length, or empty (OTLP: an invalid id is an absent one).
fn valid_id(id: &[u8], len: usize) -> &[u8] {
    if id.len() == len && id.iter().any(|&b| b != 0) {
        id
    } else {
        &[]
    }
}
