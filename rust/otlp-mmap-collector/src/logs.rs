//! Log records: each `Event` of the events ring becomes one OTLP `LogRecord`.

use opentelemetry_proto::tonic::logs::v1::LogRecord;
use otlp_mmap_core::MmapReader;
use otlp_mmap_core::view::EventView;

use crate::dictionary::DictionaryCache;

/// Converts one event, read straight from its slot. `observed` is when the reader read it.
pub fn log_record(
    file: &MmapReader,
    dict: &mut DictionaryCache,
    ev: &EventView<'_>,
    observed: u64,
) -> LogRecord {
    let (trace_id, span_id, flags) = match ev.span_context {
        Some(sc) => (valid_id(sc.trace_id, 16), valid_id(sc.span_id, 8), sc.flags),
        None => (Vec::new(), Vec::new(), 0),
    };
    LogRecord {
        time_unix_nano: ev.time_unix_nano,
        observed_time_unix_nano: observed,
        severity_number: ev.severity_number,
        severity_text: String::from_utf8_lossy(ev.severity_text).into_owned(),
        body: ev.body.map(|b| dict.value(file, b)),
        attributes: dict.attributes(file, ev.attributes),
        dropped_attributes_count: 0,
        flags,
        trace_id,
        span_id,
        event_name: dict.string(file, ev.event_name_ref),
    }
}

/// An id of the right length, or empty (OTLP: an invalid id is an absent one).
fn valid_id(id: &[u8], len: usize) -> Vec<u8> {
    if id.len() == len && id.iter().any(|&b| b != 0) {
        id.to_vec()
    } else {
        Vec::new()
    }
}
