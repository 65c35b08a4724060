//! What the SDK processors write.

mod common;

use common::{end_of, read_all, start_of};
use opentelemetry::logs::{LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_mmap::{MmapExporterFile, MmapLogProcessor, MmapSpanProcessor};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use otlp_mmap_core::proto::{self, any_value::Value as V, span_event};

fn file(dir: &tempfile::TempDir) -> MmapExporterFile {
    MmapExporterFile::builder()
        .with_path(dir.path().join("sdk.otlp"))
        .build()
        .unwrap()
}

#[test]
fn span_processor_writes_start_and_end_with_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = file(&dir);
    let provider = SdkTracerProvider::builder()
        .with_span_processor(MmapSpanProcessor::new(&file))
        .with_resource(
            Resource::builder_empty()
                .with_service_name("sdk-svc")
                .build(),
        )
        .build();
    let tracer = provider.tracer("sdk-scope");
    let mut span = tracer
        .span_builder("original")
        .with_kind(SpanKind::Client)
        .with_attributes([KeyValue::new("a", 1_i64)])
        .start(&tracer);
    let sc = span.span_context().clone();
    span.set_attribute(KeyValue::new("b", 2_i64));
    span.update_name("renamed");
    span.add_event("evt", vec![]);
    span.set_status(Status::error("bad"));
    let cx = Context::current_with_span(span);
    // a child that does not change anything
    tracer.start_with_context("child", &cx).end();
    cx.span().end();

    let r = read_all(file.path());
    let s = &r.spans;
    // parent start, child start, child end, parent: name, attrs, end
    assert_eq!(s.len(), 6, "{s:#?}");
    let start = start_of(&s[0]).unwrap();
    assert_eq!(start.name, "original");
    assert_eq!(start.kind, proto::SpanKind::Client as i32);
    assert_eq!(
        r.attrs(&start.attributes),
        vec![("a".into(), V::IntValue(1))]
    );
    assert_eq!(s[0].span_id, sc.span_id().to_bytes());
    let scope: proto::InstrumentationScope = r.message(s[0].scope_ref);
    assert_eq!(r.string(scope.name_ref), "sdk-scope");
    let resource: proto::Resource = r.message(scope.resource_ref);
    assert_eq!(
        r.attrs(&resource.attributes),
        vec![("service.name".into(), V::StringValue("sdk-svc".into()))]
    );
    let child = start_of(&s[1]).unwrap();
    assert_eq!(child.parent_span_id, sc.span_id().to_bytes());
    assert!(end_of(&s[2]).is_some());
    let Some(span_event::Event::Name(n)) = &s[3].event else {
        panic!("{:?}", s[3])
    };
    assert_eq!(n.name, "renamed");
    let Some(span_event::Event::Attributes(u)) = &s[4].event else {
        panic!()
    };
    assert_eq!(r.attrs(&u.attributes), vec![("b".into(), V::IntValue(2))]);
    let end = end_of(&s[5]).unwrap();
    assert_eq!(end.status.as_ref().unwrap().code, 2);
    assert!(end.end_time_unix_nano >= start.start_time_unix_nano);
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.string(r.events[0].event_name_ref), "evt");
    provider.shutdown().unwrap();
}

#[test]
fn log_processor_writes_records() {
    let dir = tempfile::tempdir().unwrap();
    let file = file(&dir);
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(MmapLogProcessor::new(&file))
        .build();
    let logger = provider.logger("sdk-logs");
    let mut rec = logger.create_log_record();
    rec.set_severity_number(Severity::Error);
    rec.set_body("failed".into());
    rec.add_attribute("code", 500_i64);
    logger.emit(rec);

    let r = read_all(file.path());
    assert_eq!(r.events.len(), 1);
    let e = &r.events[0];
    assert_eq!(e.severity_number, 17);
    assert_eq!(
        e.body.clone().unwrap().value,
        Some(V::StringValue("failed".into()))
    );
    assert_eq!(
        r.attrs(&e.attributes),
        vec![("code".into(), V::IntValue(500))]
    );
    let scope: proto::InstrumentationScope = r.message(e.scope_ref);
    assert_eq!(r.string(scope.name_ref), "sdk-logs");
    assert!(e.time_unix_nano > 0);
    provider.shutdown().unwrap();
}
