//! What the API providers write, read back with the format crate's reader.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{end_of, read_all, start_of};
use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{
    Span, SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, TraceState, Tracer,
    TracerProvider,
};
use opentelemetry::{Context, InstrumentationScope, Key, KeyValue, StringValue, Value};
use opentelemetry_mmap::{
    MmapExporterFile, MmapLoggerProvider, MmapMeterProvider, MmapTracerProvider,
};
use otlp_mmap_core::proto::{self, any_value::Value as V, metric_ref::Aggregation, span_event};

fn file(dir: &tempfile::TempDir) -> MmapExporterFile {
    MmapExporterFile::builder()
        .with_path(dir.path().join("t.otlp"))
        .with_resource(
            opentelemetry_sdk::Resource::builder_empty()
                .with_service_name("api-test")
                .with_attribute(KeyValue::new("deployment.environment", "test"))
                .build(),
        )
        .build()
        .unwrap()
}

#[test]
fn span_lifecycle_writes_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let file = file(&dir);
    let tracer = MmapTracerProvider::new(&file).tracer_with_scope(
        InstrumentationScope::builder("lib")
            .with_version("1.2.3")
            .build(),
    );
    let mut parent = tracer
        .span_builder("parent")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("b", true),
            KeyValue::new("i", -42_i64),
            KeyValue::new("f", 1.5),
            KeyValue::new("s", "text"),
            KeyValue::new("owned", String::from("owned value")),
            KeyValue::new(
                "arr",
                Value::Array(vec![StringValue::from("x"), StringValue::from("y")].into()),
            ),
            KeyValue::new("ints", Value::Array(vec![1_i64, -2].into())),
        ])
        .start(&tracer);
    parent.set_attribute(KeyValue::new("later", 7_i64));
    parent.set_attributes((0..16).map(|i| KeyValue::new("n", i as i64)));
    parent.update_name("parent renamed");
    let linked = SpanContext::new(
        opentelemetry::trace::TraceId::from_bytes([7; 16]),
        opentelemetry::trace::SpanId::from_bytes([8; 8]),
        TraceFlags::SAMPLED,
        true,
        TraceState::from_key_value([("k", "v")]).unwrap(),
    );
    parent.add_link(linked, vec![KeyValue::new("link.attr", 1_i64)]);
    parent.add_event("something happened", vec![KeyValue::new("ev", "x")]);
    parent.set_status(Status::error("boom"));
    parent.set_status(Status::Unset); // ignored
    let parent_sc = parent.span_context().clone();
    let cx = Context::current_with_span(parent);
    let mut child = tracer.start_with_context("child", &cx);
    let child_sc = child.span_context().clone();
    child.set_status(Status::Ok);
    child.set_status(Status::error("ignored after Ok"));
    child.end();
    drop(cx); // ends the parent

    let r = read_all(file.path());
    let s = &r.spans;
    // parent: start, attrs, attrs(8), attrs(8), name, link; child: start, end; parent: end
    assert_eq!(s.len(), 9, "{s:#?}");
    let start = start_of(&s[0]).unwrap();
    assert_eq!(s[0].trace_id, parent_sc.trace_id().to_bytes());
    assert_eq!(s[0].span_id, parent_sc.span_id().to_bytes());
    assert_eq!(start.name, "parent");
    assert_eq!(start.kind, proto::SpanKind::Server as i32);
    assert!(start.parent_span_id.is_empty());
    assert_eq!(start.flags, 0x101);
    assert!(start.start_time_unix_nano > 1_600_000_000_000_000_000);
    let attrs = r.attrs(&start.attributes);
    assert_eq!(attrs[0], ("b".into(), V::BoolValue(true)));
    assert_eq!(attrs[1], ("i".into(), V::IntValue(-42)));
    assert_eq!(attrs[2], ("f".into(), V::DoubleValue(1.5)));
    assert_eq!(attrs[3], ("s".into(), V::StringValue("text".into())));
    assert_eq!(
        attrs[4],
        ("owned".into(), V::StringValue("owned value".into()))
    );
    let V::ArrayValue(arr) = &attrs[5].1 else {
        panic!()
    };
    assert_eq!(arr.values.len(), 2);
    assert_eq!(arr.values[1].value, Some(V::StringValue("y".into())));
    let V::ArrayValue(ints) = &attrs[6].1 else {
        panic!()
    };
    assert_eq!(ints.values[1].value, Some(V::IntValue(-2)));

    // scope and resource from the dictionary
    let scope: proto::InstrumentationScope = r.message(s[0].scope_ref);
    assert_eq!(r.string(scope.name_ref), "lib");
    assert_eq!(r.string(scope.version_ref), "1.2.3");
    let resource: proto::Resource = r.message(scope.resource_ref);
    let res = r.attrs(&resource.attributes);
    assert!(res.contains(&("service.name".into(), V::StringValue("api-test".into()))));
    assert!(res.contains(&(
        "deployment.environment".into(),
        V::StringValue("test".into())
    )));
    assert_eq!(resource.attributes.len(), res.len());

    let Some(span_event::Event::Attributes(u)) = &s[1].event else {
        panic!()
    };
    assert_eq!(
        r.attrs(&u.attributes),
        vec![("later".into(), V::IntValue(7))]
    );
    let Some(span_event::Event::Attributes(u)) = &s[2].event else {
        panic!()
    };
    assert_eq!(u.attributes.len(), 8);
    let Some(span_event::Event::Attributes(u)) = &s[3].event else {
        panic!()
    };
    assert_eq!(r.attrs(&u.attributes)[7], ("n".into(), V::IntValue(15)));
    let Some(span_event::Event::Name(n)) = &s[4].event else {
        panic!()
    };
    assert_eq!(n.name, "parent renamed");
    let Some(span_event::Event::Link(l)) = &s[5].event else {
        panic!()
    };
    assert_eq!(l.links[0].trace_id, vec![7; 16]);
    assert_eq!(l.links[0].span_id, vec![8; 8]);
    assert_eq!(l.links[0].trace_state, "k=v");
    assert_eq!(l.links[0].flags, 1);
    assert_eq!(
        r.attrs(&l.links[0].attributes),
        vec![("link.attr".into(), V::IntValue(1))]
    );

    let child_start = start_of(&s[6]).unwrap();
    assert_eq!(s[6].trace_id, parent_sc.trace_id().to_bytes());
    assert_eq!(child_start.parent_span_id, parent_sc.span_id().to_bytes());
    assert_eq!(child_start.kind, proto::SpanKind::Internal as i32);
    let child_end = end_of(&s[7]).unwrap();
    assert_eq!(s[7].span_id, child_sc.span_id().to_bytes());
    assert_eq!(
        child_end.status.as_ref().unwrap().code,
        proto::StatusCode::Ok as i32
    );
    assert!(child_end.end_time_unix_nano >= child_start.start_time_unix_nano);
    let parent_end = end_of(&s[8]).unwrap();
    assert_eq!(s[8].span_id, parent_sc.span_id().to_bytes());
    let status = parent_end.status.as_ref().unwrap();
    assert_eq!((status.code, status.message.as_str()), (2, "boom"));

    // the span event went to the events ring, with the span's context
    assert_eq!(r.events.len(), 1);
    let e = &r.events[0];
    assert_eq!(r.string(e.event_name_ref), "something happened");
    let sc = e.span_context.as_ref().unwrap();
    assert_eq!(sc.span_id, parent_sc.span_id().to_bytes());
    assert_eq!(sc.trace_id, parent_sc.trace_id().to_bytes());
    assert_eq!(
        r.attrs(&e.attributes),
        vec![("ev".into(), V::StringValue("x".into()))]
    );
    assert_eq!(file.drop_stats(), Default::default());
}

#[test]
fn logs_carry_every_field_and_the_active_span() {
    let dir = tempfile::tempdir().unwrap();
    let file = file(&dir);
    let tracer = MmapTracerProvider::new(&file).tracer("t");
    let logger = MmapLoggerProvider::new(&file).logger("log-scope");

    let span = tracer.start("op");
    let span_sc = span.span_context().clone();
    let _guard = Context::current_with_span(span).attach();
    let mut rec = logger.create_log_record();
    rec.set_severity_number(Severity::Warn);
    rec.set_severity_text("WARN");
    rec.set_event_name("user.login");
    rec.set_body(AnyValue::Map(Box::new(HashMap::from([
        (Key::from("user"), AnyValue::from("alice")),
        (
            Key::from("tries"),
            AnyValue::ListAny(Box::new(vec![AnyValue::Int(1), AnyValue::Double(2.5)])),
        ),
    ]))));
    for i in 0..10 {
        rec.add_attribute(format!("k{i}"), i as i64);
    }
    rec.add_attribute("bytes", AnyValue::Bytes(Box::new(vec![1, 2, 3])));
    let ts = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    rec.set_timestamp(ts);
    logger.emit(rec);

    // explicit trace context wins over the active span
    let mut rec = logger.create_log_record();
    rec.set_trace_context(
        opentelemetry::trace::TraceId::from_bytes([1; 16]),
        opentelemetry::trace::SpanId::from_bytes([2; 8]),
        Some(TraceFlags::SAMPLED),
    );
    logger.emit(rec);
    drop(_guard);

    let r = read_all(file.path());
    assert_eq!(r.events.len(), 2);
    let e = &r.events[0];
    assert_eq!(e.time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(e.severity_number, 13);
    assert_eq!(e.severity_text, "WARN");
    assert_eq!(r.string(e.event_name_ref), "user.login");
    let scope: proto::InstrumentationScope = r.message(e.scope_ref);
    assert_eq!(r.string(scope.name_ref), "log-scope");
    let sc = e.span_context.as_ref().unwrap();
    assert_eq!(sc.span_id, span_sc.span_id().to_bytes());
    assert_eq!(sc.flags, 1);
    let attrs = r.attrs(&e.attributes);
    assert_eq!(attrs.len(), 11);
    assert_eq!(attrs[9], ("k9".into(), V::IntValue(9)));
    assert_eq!(attrs[10], ("bytes".into(), V::BytesValue(vec![1, 2, 3])));
    let Some(V::KvlistValue(body)) = e.body.clone().unwrap().value else {
        panic!()
    };
    let body = r.attrs(&body.values);
    assert!(body.contains(&("user".into(), V::StringValue("alice".into()))));
    let tries = &body.iter().find(|(k, _)| k == "tries").unwrap().1;
    let V::ArrayValue(tries) = tries else {
        panic!()
    };
    assert_eq!(tries.values[1].value, Some(V::DoubleValue(2.5)));

    let e = &r.events[1];
    assert!(e.time_unix_nano > 0);
    let sc = e.span_context.as_ref().unwrap();
    assert_eq!(
        (sc.trace_id.clone(), sc.span_id.clone()),
        (vec![1; 16], vec![2; 8])
    );
}

#[test]
fn metrics_intern_definitions_and_write_measurements() {
    let dir = tempfile::tempdir().unwrap();
    let file = file(&dir);
    let provider = MmapMeterProvider::with_interval(&file, Duration::from_secs(3600));
    let meter = provider.meter("m");
    let counter = meter
        .u64_counter("requests")
        .with_description("served")
        .with_unit("{request}")
        .build();
    let updown = meter.i64_up_down_counter("queue").build();
    let hist = meter.f64_histogram("latency").with_unit("ms").build();
    let custom = meter
        .u64_histogram("sizes")
        .with_boundaries(vec![1.0, 10.0])
        .build();
    let gauge = meter.f64_gauge("temperature").build();
    let fcounter = meter.f64_counter("bytes").build();

    counter.add(3, &[KeyValue::new("route", "/a")]);
    counter.add(u64::MAX, &[]);
    updown.add(-2, &[]);
    let tracer = MmapTracerProvider::new(&file).tracer("t");
    let span = tracer.start("op");
    let span_id = span.span_context().span_id();
    Context::current_with_span(span).attach_and(|| hist.record(12.5, &[]));
    custom.record(4, &[]);
    gauge.record(21.5, &[KeyValue::new("room", "a")]);
    fcounter.add(0.25, &[]);

    let last = std::sync::atomic::AtomicU64::new(0);
    let _obs = meter
        .u64_observable_counter("total")
        .with_callback(move |o| {
            let total = last.fetch_add(10, std::sync::atomic::Ordering::Relaxed) + 10;
            o.observe(total, &[KeyValue::new("x", 1_i64)])
        })
        .build();
    let _g = meter
        .i64_observable_gauge("level")
        .with_callback(|o| o.observe(-5, &[]))
        .build();
    provider.observe_now();
    provider.observe_now();

    let r = read_all(file.path());
    let m = &r.measurements;
    assert_eq!(m.len(), 7 + 4, "{m:#?}");
    let def = |i: usize| -> proto::MetricRef { r.message(m[i].metric_ref) };
    use proto::measurement::Value::{AsDouble, AsLong};
    assert_eq!(def(0).name, "requests");
    assert_eq!(def(0).description, "served");
    assert_eq!(def(0).unit, "{request}");
    assert_eq!(
        def(0).aggregation,
        Some(Aggregation::Sum(proto::metric_ref::Sum {
            aggregation_temporality: 2,
            is_monotonic: true
        }))
    );
    let scope: proto::InstrumentationScope = r.message(def(0).instrumentation_scope_ref);
    assert_eq!(r.string(scope.name_ref), "m");
    assert_eq!(m[0].value, Some(AsLong(3)));
    assert_eq!(
        r.attrs(&m[0].attributes),
        vec![("route".into(), V::StringValue("/a".into()))]
    );
    // A sum's measurement without a span context carries no time (its
    // aggregate is dated by its collection: no clock is read for it).
    assert_eq!(m[0].time_unix_nano, 0);
    assert!(m[0].span_context.is_none());
    assert_eq!(m[1].metric_ref, m[0].metric_ref);
    assert_eq!(m[1].value, Some(AsDouble(u64::MAX as f64)));
    assert_eq!(m[2].value, Some(AsLong(-2)));
    assert!(matches!(def(2).aggregation, Some(Aggregation::Sum(s)) if !s.is_monotonic));
    let Some(Aggregation::Histogram(h)) = def(3).aggregation else {
        panic!()
    };
    assert_eq!(
        h.bucket_boundaries,
        opentelemetry_mmap::metrics::DEFAULT_HISTOGRAM_BOUNDARIES
    );
    assert_eq!(h.aggregation_temporality, 2);
    assert_eq!(m[3].value, Some(AsDouble(12.5)));
    assert_eq!(
        m[3].span_context.as_ref().unwrap().span_id,
        span_id.to_bytes()
    );
    // A measurement with a span context is dated: its exemplar's time.
    assert!(m[3].time_unix_nano > 1_600_000_000_000_000_000);
    assert_eq!(m[4].time_unix_nano, 0, "a histogram's, without a span");
    let Some(Aggregation::Histogram(h)) = def(4).aggregation else {
        panic!()
    };
    assert_eq!(h.bucket_boundaries, vec![1.0, 10.0]);
    assert!(matches!(def(5).aggregation, Some(Aggregation::Gauge(_))));
    // A gauge's value is dated by its last measurement: always a time.
    assert!(m[5].time_unix_nano > 1_600_000_000_000_000_000);
    assert_eq!(m[6].value, Some(AsDouble(0.25)));
    // observable counter: totals 10 then 20 are written as +10, +10
    assert_eq!(def(7).name, "total");
    assert_eq!(m[7].value, Some(AsLong(10)));
    assert_eq!(m[7].time_unix_nano, 0);
    assert_eq!(def(8).name, "level");
    assert_eq!(m[8].value, Some(AsLong(-5)));
    assert!(
        m[8].time_unix_nano > 1_600_000_000_000_000_000,
        "an observable gauge's"
    );
    assert_eq!(m[9].value, Some(AsLong(10)));
    assert_eq!(m[10].value, Some(AsLong(-5)));
    provider.shutdown();
}

trait AttachAnd {
    fn attach_and(self, f: impl FnOnce());
}

impl AttachAnd for Context {
    fn attach_and(self, f: impl FnOnce()) {
        let _g = self.attach();
        f();
    }
}

#[test]
fn full_ring_drops_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let file = MmapExporterFile::builder()
        .with_path(dir.path().join("small.otlp"))
        .with_span_ring(4, 512)
        .with_log_ring(2, 64)
        .build()
        .unwrap();
    let tracer = MmapTracerProvider::new(&file).tracer("t");
    for _ in 0..10 {
        tracer.start("s").end();
    }
    let logger = MmapLoggerProvider::new(&file).logger("l");
    let mut rec = logger.create_log_record();
    rec.set_body(AnyValue::from("x".repeat(100)));
    logger.emit(rec);
    let stats = file.drop_stats();
    assert_eq!(stats.spans, 16);
    assert_eq!(stats.logs, 1);
    assert_eq!(file.dropped_spans(), 16);
    assert_eq!(file.dropped_logs(), 1);
    assert_eq!(file.dropped_measurements(), 0);
    let r = read_all(file.path());
    assert_eq!(r.spans.len(), 4);
}

#[test]
fn drop_stats_as_a_metric() {
    let dir = tempfile::tempdir().unwrap();
    let file = MmapExporterFile::builder()
        .with_path(dir.path().join("d.otlp"))
        .with_span_ring(2, 512)
        .build()
        .unwrap();
    let tracer = MmapTracerProvider::new(&file).tracer("t");
    for _ in 0..3 {
        tracer.start("s").end();
    }
    let provider = MmapMeterProvider::with_interval(&file, Duration::from_secs(3600));
    let _c = provider.export_drop_stats();
    provider.observe_now();
    let r = read_all(file.path());
    let spans = r
        .measurements
        .iter()
        .find(|m| r.attrs(&m.attributes) == vec![("signal".into(), V::StringValue("spans".into()))])
        .unwrap();
    assert_eq!(spans.value, Some(proto::measurement::Value::AsLong(4)));
    let def: proto::MetricRef = r.message(spans.metric_ref);
    assert_eq!(def.name, "otlp_mmap.dropped");
}

#[test]
fn missing_path_is_an_error() {
    // Only meaningful when the environment does not name a file.
    if std::env::var_os("OTEL_MMAP_FILE").is_none()
        && std::env::var_os("SDK_MMAP_EXPORTER_FILE").is_none()
    {
        assert!(matches!(
            MmapExporterFile::builder().build(),
            Err(opentelemetry_mmap::Error::NoPath)
        ));
    }
}

/// Records whose nested lengths take more than one byte (bodies of 128 bytes
/// or more), and records larger than the thread's scratch buffer (encoded
/// straight into their slot), come out exactly as prost encodes them
/// (`read_all` checks every record's bytes against prost's encoding).
#[test]
fn long_records_are_encoded_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let file = MmapExporterFile::builder()
        .with_path(dir.path().join("long.otlp"))
        .with_span_ring(64, 16_384)
        .with_log_ring(16, 16_384)
        .build()
        .unwrap();
    let tracer = MmapTracerProvider::new(&file).tracer("t");
    let logger = MmapLoggerProvider::new(&file).logger("l");
    for len in [127, 128, 200, 3_000, 5_000] {
        let text = "v".repeat(len);
        let mut span = tracer
            .span_builder("n".repeat(len))
            .with_attributes([
                KeyValue::new("short", 1_i64),
                KeyValue::new("long", text.clone()),
                KeyValue::new(
                    "list",
                    Value::Array(vec![StringValue::from(text.clone()), "x".into()].into()),
                ),
            ])
            .start(&tracer);
        span.update_name("r".repeat(len));
        span.set_status(Status::error("e".repeat(len)));
        span.end();
        let mut rec = logger.create_log_record();
        rec.set_body(AnyValue::ListAny(Box::new(vec![
            AnyValue::from(text.clone()),
            AnyValue::Map(Box::new(HashMap::from([(
                Key::from("inner"),
                AnyValue::from(text.clone()),
            )]))),
        ])));
        rec.add_attribute("long", text.clone());
        logger.emit(rec);
    }
    assert_eq!(file.drop_stats(), Default::default());
    let r = read_all(file.path());
    assert_eq!(r.spans.len(), 15);
    assert_eq!(r.events.len(), 5);
    for (i, len) in [127, 128, 200, 3_000, 5_000].into_iter().enumerate() {
        let text = "v".repeat(len);
        let start = start_of(&r.spans[3 * i]).unwrap();
        assert_eq!(start.name, "n".repeat(len));
        let attrs = r.attrs(&start.attributes);
        assert_eq!(attrs[1], ("long".into(), V::StringValue(text.clone())));
        let Some(span_event::Event::Name(name)) = &r.spans[3 * i + 1].event else {
            panic!("no rename")
        };
        assert_eq!(name.name, "r".repeat(len));
        let end = end_of(&r.spans[3 * i + 2]).unwrap();
        assert_eq!(end.status.as_ref().unwrap().message, "e".repeat(len));
        let e = &r.events[i];
        assert_eq!(
            r.attrs(&e.attributes),
            vec![("long".into(), V::StringValue(text.clone()))]
        );
        let Some(V::ArrayValue(body)) = e.body.clone().unwrap().value else {
            panic!("no body")
        };
        assert_eq!(body.values[0].value, Some(V::StringValue(text)));
    }
}

#[test]
fn a_status_message_longer_than_a_slot_is_cut_and_the_span_still_ends() {
    let dir = tempfile::tempdir().unwrap();
    let file = MmapExporterFile::builder()
        .with_path(dir.path().join("status.otlp"))
        .with_span_ring(64, 512)
        .build()
        .unwrap();
    let tracer = MmapTracerProvider::new(&file).tracer("t");
    let long = "é".repeat(1_000); // 2,000 bytes
    let mut span = tracer.start("s");
    span.set_status(Status::error(long.clone()));
    span.end();
    assert_eq!(file.drop_stats(), Default::default());
    let r = read_all(file.path());
    assert_eq!(r.spans.len(), 2);
    let end = end_of(&r.spans[1]).unwrap();
    let message = &end.status.as_ref().unwrap().message;
    // Cut at a character boundary, as much as the slot holds.
    assert!(
        message.len() > 400 && message.len() < 512,
        "{}",
        message.len()
    );
    assert!(long.starts_with(message.as_str()));
}
