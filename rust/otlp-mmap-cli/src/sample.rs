//! `otlp-mmap write-sample`: a small, deterministic file with every signal.

use std::path::Path;

use otlp_mmap_core::proto::{self, any_value::Value, span_event::Event};
use otlp_mmap_core::{FileConfig, FormatError, MmapWriter, RingKind, now_unix_nano};

fn string(s: &str) -> Option<proto::AnyValue> {
    Some(proto::AnyValue {
        value: Some(Value::StringValue(s.into())),
    })
}

fn int(i: i64) -> Option<proto::AnyValue> {
    Some(proto::AnyValue {
        value: Some(Value::IntValue(i)),
    })
}

/// Writes `count` spans (plus one that never ends), `count` logs and `count` measurements.
pub fn write(path: &Path, count: u32) -> Result<(), FormatError> {
    let w = MmapWriter::create(path, &FileConfig::default())?;
    let kv = |k: &str, v| -> Result<proto::KeyValueRef, FormatError> {
        Ok(proto::KeyValueRef {
            key_ref: w.intern_str(k)?,
            value: v,
        })
    };
    let resource = proto::Resource {
        attributes: vec![kv("service.name", string("otlp-mmap-sample"))?],
        dropped_attributes_count: 0,
    };
    let scope = proto::InstrumentationScope {
        name_ref: w.intern_str("otlp-mmap-sample")?,
        version_ref: w.intern_str(env!("CARGO_PKG_VERSION"))?,
        resource_ref: w.intern_message(&resource)?,
        ..Default::default()
    };
    let scope_ref = w.intern_message(&scope)?;
    let counter = w.intern_message(&proto::MetricRef {
        name: "sample.requests".into(),
        description: "Requests handled".into(),
        unit: "{request}".into(),
        instrumentation_scope_ref: scope_ref,
        aggregation: Some(proto::metric_ref::Aggregation::Sum(
            proto::metric_ref::Sum {
                aggregation_temporality: proto::AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            },
        )),
    })?;
    let t0 = now_unix_nano();
    let dropped = |r: Result<i64, otlp_mmap_core::WriteError>| {
        r.map(|_| ())
            .map_err(|e| FormatError::Io(format!("record dropped: {e:?}")))
    };
    for i in 0..=count {
        let trace_id = [[0xab; 8], (i as u64 + 1).to_be_bytes()].concat();
        let span_id = (i as u64 + 1).to_be_bytes().to_vec();
        let start = proto::SpanEvent {
            trace_id: trace_id.clone(),
            span_id: span_id.clone(),
            scope_ref,
            event: Some(Event::Start(proto::span_event::StartSpan {
                name: if i == count {
                    "never ends".into()
                } else {
                    format!("request {i}")
                },
                kind: proto::SpanKind::Server as i32,
                start_time_unix_nano: t0 + i as u64 * 1000,
                attributes: vec![
                    kv("request.index", int(i as i64))?,
                    kv("http.route", string("/sample"))?,
                ],
                flags: 1,
                ..Default::default()
            })),
        };
        dropped(w.try_write(RingKind::Spans, &start))?;
        if i == count {
            break;
        }
        let end = proto::SpanEvent {
            trace_id: trace_id.clone(),
            span_id: span_id.clone(),
            scope_ref,
            event: Some(Event::End(proto::span_event::EndSpan {
                end_time_unix_nano: t0 + i as u64 * 1000 + 500,
                status: Some(proto::Status {
                    message: String::new(),
                    code: proto::StatusCode::Ok as i32,
                }),
            })),
        };
        dropped(w.try_write(RingKind::Spans, &end))?;
        let log = proto::Event {
            scope_ref,
            time_unix_nano: t0 + i as u64 * 1000 + 250,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: string(&format!("handled request {i}")),
            span_context: Some(proto::SpanContext {
                span_id: span_id.clone(),
                trace_id: trace_id.clone(),
                flags: 1,
            }),
            attributes: vec![kv("request.index", int(i as i64))?],
            ..Default::default()
        };
        dropped(w.try_write(RingKind::Events, &log))?;
        let m = proto::Measurement {
            metric_ref: counter,
            attributes: vec![kv("http.route", string("/sample"))?],
            time_unix_nano: t0 + i as u64 * 1000 + 400,
            value: Some(proto::measurement::Value::AsLong(1)),
            span_context: None,
        };
        dropped(w.try_write(RingKind::Measurements, &m))?;
    }
    Ok(())
}
