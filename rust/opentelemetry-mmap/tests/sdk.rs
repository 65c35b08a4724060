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

/// What the spans ring says about each span, by span id: the names written
/// (start name first, then renames), the attribute keys written (start and
/// updates, in order), and whether it started and ended.
#[derive(Default, Debug)]
struct Written {
    names: Vec<String>,
    keys: Vec<String>,
    starts: usize,
    ends: usize,
}

fn written_per_span(r: &common::Records) -> std::collections::HashMap<Vec<u8>, Written> {
    let mut spans: std::collections::HashMap<Vec<u8>, Written> = Default::default();
    for e in &r.spans {
        let w = spans.entry(e.span_id.clone()).or_default();
        match e.event.as_ref().unwrap() {
            span_event::Event::Start(s) => {
                w.starts += 1;
                w.names.push(s.name.clone());
                w.keys
                    .extend(r.attrs(&s.attributes).into_iter().map(|(k, _)| k));
            }
            span_event::Event::Name(n) => w.names.push(n.name.clone()),
            span_event::Event::Attributes(u) => w
                .keys
                .extend(r.attrs(&u.attributes).into_iter().map(|(k, _)| k)),
            span_event::Event::End(_) => w.ends += 1,
            span_event::Event::Link(_) => {}
        }
    }
    spans
}

/// Starts `n` spans (2 attributes at the start), then, with all of them in
/// flight, adds an attribute to each, renames every third, and ends them all;
/// checks that every span's name and attributes were each written once.
fn spans_in_flight_are_written_exactly(processor: impl Fn(&MmapExporterFile) -> MmapSpanProcessor) {
    const N: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let file = MmapExporterFile::builder()
        .with_path(dir.path().join("in_flight.otlp"))
        .with_span_ring(1 << 16, 256)
        .build()
        .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor(&file))
        .build();
    let tracer = provider.tracer("in-flight");
    let mut spans: Vec<_> = (0..N)
        .map(|i| {
            tracer
                .span_builder(format!("op {i}"))
                .with_attributes([KeyValue::new("a", i as i64), KeyValue::new("b", true)])
                .start(&tracer)
        })
        .collect();
    for (i, span) in spans.iter_mut().enumerate() {
        span.set_attribute(KeyValue::new("c", "later"));
        if i % 3 == 0 {
            span.update_name(format!("renamed {i}"));
        }
    }
    let ids: Vec<Vec<u8>> = spans
        .iter()
        .map(|s| s.span_context().span_id().to_bytes().to_vec())
        .collect();
    spans.iter_mut().for_each(|s| s.end());
    assert_eq!(file.drop_stats().spans, 0);

    let r = read_all(file.path());
    let written = written_per_span(&r);
    assert_eq!(written.len(), N);
    for (i, id) in ids.iter().enumerate() {
        let w = &written[id];
        assert_eq!((w.starts, w.ends), (1, 1), "span {i}: {w:?}");
        let mut keys = w.keys.clone();
        keys.sort();
        assert_eq!(keys, ["a", "b", "c"], "span {i}: a key repeated or missing");
        let last = w.names.last().unwrap();
        if i % 3 == 0 {
            assert_eq!(last, &format!("renamed {i}"));
        } else {
            assert_eq!(w.names, [format!("op {i}")], "span {i}: name written again");
        }
        assert!(w.names.len() <= 2, "span {i}: {:?}", w.names);
    }
    provider.shutdown().unwrap();
}

#[test]
fn span_processor_writes_nothing_twice_with_10000_spans_in_flight() {
    spans_in_flight_are_written_exactly(MmapSpanProcessor::new);
}

#[test]
fn span_processor_beyond_its_note_table_writes_whole_spans_at_the_end() {
    // 64 notes for 10,000 spans: most are written whole at their end, still once.
    spans_in_flight_are_written_exactly(|f| MmapSpanProcessor::with_spans_in_flight(f, 64));
}

#[test]
fn span_processor_is_exact_when_spans_start_and_end_on_different_threads() {
    // 4 threads start 2,500 spans each, all in flight at once; the spans are
    // handed to other threads, which add an attribute and end them.
    const THREADS: usize = 4;
    const EACH: usize = 2_500;
    let dir = tempfile::tempdir().unwrap();
    let file = MmapExporterFile::builder()
        .with_path(dir.path().join("threads.otlp"))
        .with_span_ring(1 << 16, 256)
        .build()
        .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(MmapSpanProcessor::new(&file))
        .build();
    let tracer = provider.tracer("threads");
    let started: Vec<Vec<_>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let tracer = &tracer;
                s.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            tracer
                                .span_builder(format!("t{t} op {i}"))
                                .with_attributes([KeyValue::new("a", i as i64)])
                                .start(tracer)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ids: Vec<Vec<u8>> = started
        .iter()
        .flatten()
        .map(|s| s.span_context().span_id().to_bytes().to_vec())
        .collect();
    std::thread::scope(|s| {
        // Thread t ends the spans thread (t + 1) % THREADS started.
        let mut batches: Vec<_> = started.into_iter().collect();
        batches.rotate_left(1);
        for batch in batches {
            s.spawn(move || {
                for mut span in batch {
                    span.set_attribute(KeyValue::new("b", "end"));
                    span.end();
                }
            });
        }
    });
    assert_eq!(file.drop_stats().spans, 0);
    let written = written_per_span(&read_all(file.path()));
    assert_eq!(written.len(), THREADS * EACH);
    for id in &ids {
        let w = &written[id];
        assert_eq!((w.starts, w.ends, w.names.len()), (1, 1, 1), "{w:?}");
        let mut keys = w.keys.clone();
        keys.sort();
        assert_eq!(keys, ["a", "b"], "{w:?}");
    }
    provider.shutdown().unwrap();
}
