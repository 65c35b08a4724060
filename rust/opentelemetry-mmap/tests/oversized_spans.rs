//! A span whose start (or attribute update, or links) is larger than a slot
//! of the spans ring keeps the span and every attribute (and link) that fits
//! a slot by itself: the record is written again without its attributes,
//! each attribute then in an `UpdateAttributes` of its own (each link in an
//! `AddLink` of its own). Only what is lost is counted as dropped. The same
//! for the API tracer, the SDK's span processor and the record API here,
//! and for the `tracing` layer in `tracing_layer.rs`.

use std::collections::HashMap;

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer, TracerProvider};
use opentelemetry_mmap::{MmapExporterFile, MmapSpanProcessor, MmapTracerProvider};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_sdk::trace::SdkTracerProvider;
use otlp_mmap_collector::dump::{DumpOptions, dump};

/// A file whose span slots (512 bytes) hold two of [`big`]'s values, not three.
fn small_slots(dir: &tempfile::TempDir) -> MmapExporterFile {
    MmapExporterFile::builder()
        .with_path(dir.path().join("small.otlp"))
        .with_span_ring(64, 512)
        .build()
        .unwrap()
}

/// An attribute whose value is 200 bytes of `c`.
fn big(key: &'static str, c: char) -> KeyValue {
    KeyValue::new(key, c.to_string().repeat(200))
}

/// The attributes the tests write: three at the start, three after it.
const SIX_ATTRIBUTES: [(&str, char); 6] = [
    ("a", 'a'),
    ("b", 'b'),
    ("c", 'c'),
    ("d", 'd'),
    ("e", 'e'),
    ("f", 'f'),
];

/// The spans of the file, as the Collector's reader assembles them.
fn spans(file: &MmapExporterFile) -> Vec<Span> {
    let d = dump(file.path(), DumpOptions::default()).unwrap();
    d.traces
        .into_iter()
        .flat_map(|r| r.resource_spans)
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .collect()
}

/// A span's string attributes, by key.
fn attributes(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some((kv.key.clone(), s.clone())),
            _ => None,
        })
        .collect()
}

/// The file holds one span, `big start`, with [`SIX_ATTRIBUTES`].
fn assert_one_span_with_six_attributes(file: &MmapExporterFile) {
    let spans = spans(file);
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name, "big start");
    assert_every_attribute(&spans[0], &SIX_ATTRIBUTES);
}

fn assert_every_attribute(span: &Span, keys: &[(&str, char)]) {
    let a = attributes(span);
    assert_eq!(a.len(), keys.len(), "{:?}", a.keys());
    for (k, c) in keys {
        assert_eq!(a[*k], c.to_string().repeat(200), "{k}");
    }
}

#[test]
fn the_api_tracer_keeps_a_span_whose_start_is_too_large_and_each_attribute() {
    let dir = tempfile::tempdir().unwrap();
    let file = small_slots(&dir);
    let tracer = MmapTracerProvider::new(&file).tracer("t");
    let mut span = tracer
        .span_builder("big start")
        .with_attributes([big("a", 'a'), big("b", 'b'), big("c", 'c')])
        .start(&tracer);
    // set_attributes writes its attributes in one record: too large too.
    span.set_attributes([big("d", 'd'), big("e", 'e'), big("f", 'f')]);
    span.end();
    // Nothing was lost: nothing is counted.
    assert_eq!(file.drop_stats(), Default::default());
    assert_one_span_with_six_attributes(&file);
}

#[test]
fn the_sdk_span_processor_keeps_a_span_whose_start_is_too_large_and_each_attribute() {
    let dir = tempfile::tempdir().unwrap();
    let file = small_slots(&dir);
    let provider = SdkTracerProvider::builder()
        .with_span_processor(MmapSpanProcessor::new(&file))
        .build();
    let tracer = provider.tracer("t");
    let mut span = tracer
        .span_builder("big start")
        .with_attributes([big("a", 'a'), big("b", 'b'), big("c", 'c')])
        .start(&tracer);
    // Added after the start: written at the end, too large as one record.
    span.set_attributes([big("d", 'd'), big("e", 'e'), big("f", 'f')]);
    span.end();
    let _ = provider.shutdown();
    assert_eq!(file.drop_stats(), Default::default());
    assert_one_span_with_six_attributes(&file);
}

#[test]
fn an_attribute_too_large_by_itself_is_the_only_one_lost() {
    let dir = tempfile::tempdir().unwrap();
    let file = small_slots(&dir);
    let tracer = MmapTracerProvider::new(&file).tracer("t");
    let huge = KeyValue::new("huge", "h".repeat(2_000));
    tracer
        .span_builder("one too large")
        .with_attributes([big("a", 'a'), huge, big("b", 'b')])
        .start(&tracer)
        .end();
    // The huge attribute alone was lost.
    assert_eq!(file.drop_stats().spans, 1, "{:?}", file.drop_stats());
    let spans = spans(&file);
    assert_eq!(spans.len(), 1);
    assert_every_attribute(&spans[0], &[("a", 'a'), ("b", 'b')]);
}

#[test]
fn the_record_api_keeps_a_span_whose_start_and_end_are_too_large() {
    use opentelemetry::trace::{SpanKind, Status};
    use opentelemetry_mmap::records::{SpanEnd, SpanRef, SpanStart};
    let dir = tempfile::tempdir().unwrap();
    let file = small_slots(&dir);
    let scope_ref = file.scope_ref_in(
        &opentelemetry::InstrumentationScope::builder("records").build(),
        file.resource_ref(),
    );
    let span = SpanRef {
        trace_id: [1; 16],
        span_id: [2; 8],
        trace_flags: 1,
    };
    file.write_span_start(&SpanStart {
        span,
        scope_ref,
        parent: None,
        name: "big start",
        kind: SpanKind::Server,
        start_time_unix_nano: 1_000,
        attributes: &[big("a", 'a'), big("b", 'b'), big("c", 'c')],
    });
    file.write_span_end(&SpanEnd {
        span,
        scope_ref,
        renamed: None,
        attributes: &[big("d", 'd'), big("e", 'e'), big("f", 'f')],
        links: &[],
        events: &[],
        end_time_unix_nano: 2_000,
        status: &Status::Unset,
    });
    assert_eq!(file.drop_stats(), Default::default());
    assert_one_span_with_six_attributes(&file);
}

#[test]
fn links_too_many_for_one_slot_are_written_one_by_one() {
    use opentelemetry::trace::{Link, SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let dir = tempfile::tempdir().unwrap();
    let file = small_slots(&dir);
    let tracer = MmapTracerProvider::new(&file).tracer("t");
    // About 35 bytes each: 40 do not fit one 512-byte slot.
    let links: Vec<Link> = (1..=40u64)
        .map(|i| {
            let sc = SpanContext::new(
                TraceId::from(i as u128),
                SpanId::from(i),
                TraceFlags::SAMPLED,
                true,
                TraceState::NONE,
            );
            Link::with_context(sc)
        })
        .collect();
    tracer
        .span_builder("many links")
        .with_links(links)
        .start(&tracer)
        .end();
    assert_eq!(file.drop_stats(), Default::default());
    let spans = spans(&file);
    assert_eq!(spans.len(), 1);
    let mut ids: Vec<Vec<u8>> = spans[0].links.iter().map(|l| l.span_id.clone()).collect();
    ids.sort();
    let mut expected: Vec<Vec<u8>> = (1..=40u64).map(|i| i.to_be_bytes().to_vec()).collect();
    expected.sort();
    assert_eq!(ids, expected);
}

#[test]
fn a_start_too_large_without_attributes_is_one_counted_drop() {
    let dir = tempfile::tempdir().unwrap();
    let file = small_slots(&dir);
    let tracer = MmapTracerProvider::new(&file).tracer("t");
    let name = "n".repeat(600);
    tracer.start(name).end();
    // The start (not tried twice), and nothing else lost: the end is there.
    assert_eq!(file.drop_stats().spans, 1, "{:?}", file.drop_stats());
}
