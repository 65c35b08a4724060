//! What the flat hand-off adds to a batch in the library: `FlatWriter`
//! turning an encoded export request of 1024 items (the bench app's shapes:
//! a server span with 4 attributes of 4 types; a log record with severity,
//! a string body and 3 attributes; one resource with 4 attributes, one
//! scope) into a flat batch, per item, once its string table holds them.
//!
//!     cargo bench -p otlp-mmap-collector --bench flat

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use otlp_mmap_collector::Signal;
use otlp_mmap_collector::flat::FlatWriter;
use prost::Message;

const BATCH: u64 = 1024;

fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", Value::StringValue("otlp-mmap-bench".into())),
            kv("telemetry.sdk.language", Value::StringValue("rust".into())),
            kv(
                "telemetry.sdk.name",
                Value::StringValue("opentelemetry".into()),
            ),
            kv("telemetry.sdk.version", Value::StringValue("0.33.1".into())),
        ],
        ..Default::default()
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "bench".into(),
        ..Default::default()
    })
}

fn spans() -> Vec<u8> {
    let spans = (0..BATCH)
        .map(|i| Span {
            trace_id: [i.to_le_bytes(), [7; 8]].concat(),
            span_id: i.to_le_bytes().to_vec(),
            flags: 257,
            name: "GET /items".into(),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000 + i,
            end_time_unix_nano: 1_700_000_000_000_001_000 + i,
            attributes: vec![
                kv("http.request.method", Value::StringValue("GET".into())),
                kv("http.response.status_code", Value::IntValue(200)),
                kv("server.duration", Value::DoubleValue(1.25)),
                kv("cache.hit", Value::BoolValue(true)),
            ],
            status: Some(Status::default()),
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                scope: scope(),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn logs() -> Vec<u8> {
    let log_records = (0..BATCH)
        .map(|i| LogRecord {
            time_unix_nano: 1_700_000_000_000_000_000 + i,
            observed_time_unix_nano: 1_700_000_000_000_000_000 + i,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(AnyValue {
                value: Some(Value::StringValue("served an item".into())),
            }),
            attributes: vec![
                kv("item.id", Value::IntValue(i as i64)),
                kv("item.kind", Value::StringValue("book".into())),
                kv("cached", Value::BoolValue(true)),
            ],
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                scope: scope(),
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("flat");
    g.throughput(Throughput::Elements(BATCH));
    for (name, signal, request) in [
        ("spans", Signal::Traces, spans()),
        ("logs", Signal::Logs, logs()),
    ] {
        let mut w = FlatWriter::default();
        let mut out = Vec::new();
        // Twice: the second batch interns the values seen before.
        for _ in 0..2 {
            out.clear();
            w.write(signal, &request, &mut out);
        }
        assert_eq!(out[4], 0, "flat");
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                w.write(signal, &request, &mut out);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
