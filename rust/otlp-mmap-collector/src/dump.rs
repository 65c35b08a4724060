//! One-shot reading of everything currently in a file, as OTLP/JSON lines:
//! what `otlp-mmap dump` prints and what tests compare against.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otlp_mmap_core::{FormatError, now_unix_nano};
use prost::Message;

use crate::file_reader::{FileReader, ReaderError, ReaderOptions, Signal};

/// What to dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpOptions {
    /// Read the spans ring into [`Dump::traces`] (default true).
    pub traces: bool,
    /// Read the events ring into [`Dump::logs`] (default true).
    pub logs: bool,
    /// Aggregate the measurements ring into [`Dump::metrics`] (default true).
    pub metrics: bool,
    /// Also report spans that have started and not ended, as incomplete spans.
    pub include_incomplete: bool,
    /// Advance the file's `reader_index` (and take the reader lock).
    pub consume: bool,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            traces: true,
            logs: true,
            metrics: true,
            include_incomplete: false,
            consume: false,
        }
    }
}

/// Everything read from a file, as export requests.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Dump {
    /// One request per traces batch, in the order read; empty unless
    /// [`DumpOptions::traces`].
    pub traces: Vec<ExportTraceServiceRequest>,
    /// One request per logs batch, in ring order; empty unless
    /// [`DumpOptions::logs`].
    pub logs: Vec<ExportLogsServiceRequest>,
    /// At most one request: a single collection of every measurement read;
    /// empty unless [`DumpOptions::metrics`] and some series had data.
    pub metrics: Vec<ExportMetricsServiceRequest>,
}

impl Dump {
    /// OTLP/JSON, one export request per line (traces, then logs, then
    /// metrics), written as the Collector's own JSON marshaller writes it (the
    /// `file` exporter's form): see [`canonical_otlp_json`].
    pub fn to_json_lines(&self) -> Result<String, serde_json::Error> {
        let requests = self
            .traces
            .iter()
            .map(serde_json::to_value)
            .chain(self.logs.iter().map(serde_json::to_value))
            .chain(self.metrics.iter().map(serde_json::to_value));
        let mut out = String::new();
        for request in requests {
            out.push_str(&serde_json::to_string(&canonical_otlp_json(request?))?);
            out.push('\n');
        }
        Ok(out)
    }
}

/// Message fields the Collector always writes, as `{}` when unset.
const ALWAYS_WRITTEN: [&str; 7] = [
    "resource", "scope", "status", "body", "value", "positive", "negative",
];
/// Fields written even when they hold their type's default value: the members
/// of a oneof and proto3 `optional` fields.
const WRITTEN_WHEN_SET: [&str; 10] = [
    "stringValue",
    "boolValue",
    "intValue",
    "doubleValue",
    "bytesValue",
    "asInt",
    "asDouble",
    "sum",
    "min",
    "max",
];
/// 64-bit integer fields (written as strings): "0" is their default.
const UINT64_FIELDS: [&str; 6] = [
    "timeUnixNano",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "observedTimeUnixNano",
    "count",
    "zeroCount",
];

/// Rewrites the serde form of an OTLP message (camelCase keys, hex ids, enums
/// as integers, 64-bit integers as strings) into the Collector's canonical
/// JSON, the form its `file` exporter writes:
/// - fields holding their default value (`0`, `"0"` for 64-bit integers,
///   `""`, `false`, `[]`, unset) are left out, except oneof members and
///   optional fields that are set;
/// - the resource, scope, status, log body, attribute value and exponential
///   histogram buckets are always written (`{}` when empty);
/// - keys come in the Collector's order, which differs from the proto
///   declaration order in two places: a data point's or exemplar's value comes
///   right after its time, and an exemplar's trace id before its span id;
/// - a double with an integral value is written without a fraction (`15`,
///   not `15.0`), as Go formats it.
pub fn canonical_otlp_json(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(fields) => {
            let mut kept: Vec<(String, Value)> = Vec::with_capacity(fields.len());
            for (key, value) in fields {
                let value = canonical_otlp_json(value);
                let written_when_set = WRITTEN_WHEN_SET.contains(&key.as_str());
                let value = match value {
                    Value::Null if ALWAYS_WRITTEN.contains(&key.as_str()) => {
                        Value::Object(serde_json::Map::new())
                    }
                    Value::Null => continue,
                    Value::Bool(false) if !written_when_set => continue,
                    Value::Number(n) if !written_when_set && n.as_f64() == Some(0.0) => continue,
                    Value::String(s)
                        if !written_when_set
                            && (s.is_empty()
                                || (s == "0" && UINT64_FIELDS.contains(&key.as_str()))) =>
                    {
                        continue;
                    }
                    Value::Array(a) if a.is_empty() => continue,
                    v => v,
                };
                kept.push((key, value));
            }
            let position = |kept: &[(String, Value)], keys: &[&str]| {
                kept.iter().position(|(k, _)| keys.contains(&k.as_str()))
            };
            // NumberDataPoint and Exemplar: the value before the exemplars and
            // flags (data point) or the ids (exemplar).
            if let Some(i) = position(&kept, &["asInt", "asDouble"]) {
                let entry = kept.remove(i);
                let at = position(&kept, &["exemplars", "flags", "traceId", "spanId"])
                    .unwrap_or(kept.len());
                kept.insert(at, entry);
            }
            if let (Some(span), Some(trace)) =
                (position(&kept, &["spanId"]), position(&kept, &["traceId"]))
                && span < trace
            {
                let entry = kept.remove(trace);
                kept.insert(span, entry);
            }
            Value::Object(kept.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical_otlp_json).collect()),
        Value::Number(n) => Value::Number(integral_as_integer(n)),
        v => v,
    }
}

/// A double that holds an integer (in the range where doubles are exact
/// integers) as that integer, so that it prints as `15` rather than `15.0`.
/// Negative zero stays a double.
fn integral_as_integer(n: serde_json::Number) -> serde_json::Number {
    const EXACT: f64 = (1u64 << 53) as f64;
    match n.as_f64() {
        Some(f)
            if n.is_f64()
                && f.fract() == 0.0
                && f.abs() < EXACT
                && !(f == 0.0 && f.is_sign_negative()) =>
        {
            serde_json::Number::from(f as i64)
        }
        _ => n,
    }
}

/// Reads everything currently in the file at `path`.
pub fn dump(path: impl AsRef<std::path::Path>, opts: DumpOptions) -> Result<Dump, ReaderError> {
    let mut reader = FileReader::open(
        path,
        ReaderOptions {
            consume: opts.consume,
            max_in_flight_spans: usize::MAX,
            max_in_flight_span_bytes: usize::MAX,
            max_span_age_nanos: u64::MAX,
            ..ReaderOptions::default()
        },
    )?;
    let now = now_unix_nano();
    let mut out = Dump::default();
    let decode_err =
        |e: prost::DecodeError| ReaderError::Format(FormatError::Decode(e.to_string()));
    if opts.traces {
        let mut abandoned = false;
        loop {
            match reader.poll(Signal::Traces, now)? {
                Some(b) => {
                    out.traces
                        .push(ExportTraceServiceRequest::decode(b.bytes).map_err(decode_err)?);
                    let token = b.token;
                    reader.commit(Signal::Traces, token)?;
                }
                None if opts.include_incomplete && !abandoned => {
                    reader.abandon_spans(now);
                    abandoned = true;
                }
                None => break,
            }
        }
    }
    if opts.logs {
        while let Some(b) = reader.poll(Signal::Logs, now)? {
            out.logs
                .push(ExportLogsServiceRequest::decode(b.bytes).map_err(decode_err)?);
            let token = b.token;
            reader.commit(Signal::Logs, token)?;
        }
    }
    if opts.metrics {
        loop {
            let before = reader.stats().records_read[Signal::Metrics as usize]
                + reader.stats().corrupt_records[Signal::Metrics as usize];
            reader.poll(Signal::Metrics, now)?;
            let after = reader.stats().records_read[Signal::Metrics as usize]
                + reader.stats().corrupt_records[Signal::Metrics as usize];
            if after == before {
                break;
            }
        }
        reader.collect_metrics(now);
        if let Some(b) = reader.poll(Signal::Metrics, now)? {
            out.metrics
                .push(ExportMetricsServiceRequest::decode(b.bytes).map_err(decode_err)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::canonical_otlp_json;
    use serde_json::json;

    #[test]
    fn defaults_are_left_out_and_set_values_kept() {
        let span = json!({
            "traceId": "0102", "spanId": "", "traceState": "", "parentSpanId": "",
            "flags": 0, "name": "n", "kind": 0, "startTimeUnixNano": "0",
            "attributes": [
                {"key": "zero", "value": {"intValue": "0"}},
                {"key": "no", "value": {"boolValue": false}},
                {"key": "empty", "value": {"stringValue": ""}},
                {"key": "unset", "value": null},
            ],
            "events": [], "droppedAttributesCount": 0, "status": null,
        });
        assert_eq!(
            canonical_otlp_json(span).to_string(),
            r#"{"traceId":"0102","name":"n","attributes":[{"key":"zero","value":{"intValue":"0"}},{"key":"no","value":{"boolValue":false}},{"key":"empty","value":{"stringValue":""}},{"key":"unset","value":{}}],"status":{}}"#
        );
    }

    #[test]
    fn points_and_exemplars_in_the_collectors_order() {
        let point = json!({
            "attributes": [], "startTimeUnixNano": "5", "timeUnixNano": "6",
            "exemplars": [{"filteredAttributes": [], "timeUnixNano": "6", "spanId": "02",
                           "traceId": "01", "asDouble": 0.0}],
            "flags": 0, "asDouble": 15.0,
        });
        assert_eq!(
            canonical_otlp_json(point).to_string(),
            r#"{"startTimeUnixNano":"5","timeUnixNano":"6","asDouble":15,"exemplars":[{"timeUnixNano":"6","asDouble":0,"traceId":"01","spanId":"02"}]}"#
        );
        let histogram =
            json!({"count": "0", "sum": 0.5, "min": null, "max": -0.0, "isMonotonic": false});
        assert_eq!(
            canonical_otlp_json(histogram).to_string(),
            r#"{"sum":0.5,"max":-0.0}"#
        );
    }
}
