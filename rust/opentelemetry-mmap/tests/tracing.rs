//! `tracing` users: the `tracing` example's two subscribers (this crate's
//! `MmapLayer`; `tracing-opentelemetry` over `MmapTracerProvider` with the
//! appender bridge over `MmapLoggerProvider`) write the same spans and
//! events, which the collector crate's dump (what `otlp-mmap dump` prints)
//! reads back as OTLP; an OpenTelemetry API span made inside a `tracing` span
//! is its child either way.

#[path = "../examples/tracing.rs"]
mod example;

use std::collections::HashMap;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_mmap::{MmapExporterFile, MmapTracerProvider};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use otlp_mmap_collector::dump::{DumpOptions, dump};

fn attrs(kvs: &[KeyValue]) -> HashMap<String, Value> {
    kvs.iter()
        .filter_map(|kv| {
            let v = kv.value.as_ref().and_then(|v: &AnyValue| v.value.clone())?;
            Some((kv.key.clone(), v))
        })
        .collect()
}

fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        other => panic!("not a string: {other:?}"),
    }
}

#[test]
fn tracing_spans_and_events_reach_the_file_through_tracing_opentelemetry() {
    let dir = tempfile::tempdir().unwrap();
    let file = MmapExporterFile::builder()
        .with_path(dir.path().join("tracing.otlp"))
        .build()
        .unwrap();
    let api = MmapTracerProvider::new(&file).tracer("payment-client");
    tracing::subscriber::with_default(example::subscriber(&file), || {
        example::handle_request(7, &api)
    });
    check_request(&file);
}

#[test]
fn tracing_spans_and_events_reach_the_file_through_the_mmap_layer() {
    let dir = tempfile::tempdir().unwrap();
    let file = MmapExporterFile::builder()
        .with_path(dir.path().join("tracing.otlp"))
        .build()
        .unwrap();
    let api = MmapTracerProvider::new(&file).tracer("payment-client");
    tracing::subscriber::with_default(example::layer_subscriber(&file), || {
        example::handle_request(7, &api)
    });
    check_request(&file);
}

/// What `handle_request(7)` wrote, as the dump reads it back.
fn check_request(file: &MmapExporterFile) {
    assert_eq!(file.drop_stats(), Default::default());

    let d = dump(file.path(), DumpOptions::default()).unwrap();
    let spans: Vec<&Span> = d
        .traces
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .collect();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let request = spans.iter().find(|s| s.name == "GET /items").unwrap();
    let db = spans.iter().find(|s| s.name == "SELECT items").unwrap();
    assert_eq!(db.parent_span_id, request.span_id);
    assert_eq!(db.trace_id, request.trace_id);
    // The OpenTelemetry API span inside the entered request span.
    let payment = spans.iter().find(|s| s.name == "POST /payments").unwrap();
    assert_eq!(payment.parent_span_id, request.span_id);
    assert_eq!(payment.trace_id, request.trace_id);
    assert!(request.parent_span_id.is_empty());
    assert!(request.end_time_unix_nano >= db.end_time_unix_nano);
    assert!(db.start_time_unix_nano >= request.start_time_unix_nano);
    let ra = attrs(&request.attributes);
    assert_eq!(ra["http.request.method"], Value::StringValue("GET".into()));
    assert_eq!(ra["item.id"], Value::IntValue(7));
    // Recorded after the start: written as an attribute update, applied on read.
    assert_eq!(ra["http.response.status_code"], Value::IntValue(200));
    assert_eq!(
        attrs(&db.attributes)["db.system"],
        Value::StringValue("postgresql".into())
    );
    // Events are log records, not span events.
    assert!(spans.iter().all(|s| s.events.is_empty()));

    let logs: Vec<&LogRecord> = d
        .logs
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|rl| &rl.scope_logs)
        .flat_map(|sl| &sl.log_records)
        .collect();
    let by_body: HashMap<String, &LogRecord> = logs.iter().map(|l| (text(&l.body), *l)).collect();
    assert_eq!(logs.len(), 4, "{logs:#?}");
    let starting = by_body["starting"];
    assert!(starting.span_id.is_empty(), "outside any span");
    assert_eq!(starting.severity_number, 9); // INFO
    assert_eq!(
        attrs(&starting.attributes)["service"],
        Value::StringValue("shop".into())
    );
    let loading = by_body["loading item"];
    assert_eq!(loading.span_id, request.span_id);
    assert_eq!(loading.trace_id, request.trace_id);
    assert_eq!(attrs(&loading.attributes)["item.id"], Value::IntValue(7));
    let query = by_body["query done"];
    assert_eq!(query.span_id, db.span_id);
    assert_eq!(query.severity_number, 5); // DEBUG
    let warned = by_body["item was not cached"];
    assert_eq!(warned.span_id, request.span_id);
    assert_eq!(warned.severity_number, 13); // WARN
    assert_eq!(attrs(&warned.attributes)["cached"], Value::BoolValue(false));
    // The same, as the OTLP/JSON lines `otlp-mmap dump` prints.
    let json = d.to_json_lines().unwrap();
    assert!(json.contains("\"name\":\"GET /items\""), "{json}");
    assert!(
        json.contains("\"stringValue\":\"item was not cached\""),
        "{json}"
    );
}
