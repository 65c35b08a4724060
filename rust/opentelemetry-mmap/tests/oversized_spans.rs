//! A span whose start (or attribute update) is larger than a slot of the
//! spans ring keeps the span and every attribute that fits a slot by itself:
//! the record is written again without its attributes, each attribute then
//! in an `UpdateAttributes` of its own. Only the first, whole attempt is
//! dropped (and counted). The same for the API tracer, the SDK's span
//! processor and the `tracing` layer (`tracing_layer.rs`).

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
    // The two whole attempts are the only drops.
    assert_eq!(file.drop_stats().spans, 2, "{:?}", file.drop_stats());
    let spans = spans(&file);
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name, "big start");
    assert_every_attribute(
        &spans[0],
        &[
            ("a", 'a'),
            ("b", 'b'),
            ("c", 'c'),
            ("d", 'd'),
            ("e", 'e'),
            ("f", 'f'),
        ],
    );
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
    assert_eq!(file.drop_stats().spans, 2, "{:?}", file.drop_stats());
    let spans = spans(&file);
    assert_eq!(spans.len(), 1);
    assert_every_attribute(
        &spans[0],
        &[
            ("a", 'a'),
            ("b", 'b'),
            ("c", 'c'),
            ("d", 'd'),
            ("e", 'e'),
            ("f", 'f'),
        ],
    );
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
    // The whole start, then the huge attribute alone.
    assert_eq!(file.drop_stats().spans, 2, "{:?}", file.drop_stats());
    let spans = spans(&file);
    assert_eq!(spans.len(), 1);
    assert_every_attribute(&spans[0], &[("a", 'a'), ("b", 'b')]);
}
