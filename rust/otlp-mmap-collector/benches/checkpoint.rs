//! Cost of a checkpoint (`FileReader::checkpoint`, what the receiver stores
//! every `checkpoint_interval` with `storage`) as a function of the spans in
//! flight: each span has 4 attributes; also 100 counter series. Prints the
//! checkpoint's size once per case.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use otlp_mmap_collector::{FileReader, ReaderOptions, Signal};
use otlp_mmap_core::proto::{self, any_value::Value, metric_ref::Aggregation, span_event};
use otlp_mmap_core::{FileConfig, MmapWriter, RingConfig, RingKind};

fn kv(w: &MmapWriter, k: &str, v: Value) -> proto::KeyValueRef {
    proto::KeyValueRef {
        key_ref: w.intern_str(k).unwrap(),
        value: Some(proto::AnyValue { value: Some(v) }),
    }
}

/// A reader holding `open` spans in flight and 100 counter series.
fn reader_with(open: u64) -> (tempfile::TempDir, MmapWriter, FileReader) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.otlp");
    let ring = RingConfig {
        num_buffers: 1 << 15,
        buffer_size: 512,
    };
    let cfg = FileConfig {
        spans: ring,
        measurements: ring,
        ..FileConfig::default()
    };
    let w = MmapWriter::create(&path, &cfg).unwrap();
    let resource = w.intern_message(&proto::Resource::default()).unwrap();
    let scope = w
        .intern_message(&proto::InstrumentationScope {
            name_ref: w.intern_str("bench").unwrap(),
            resource_ref: resource,
            ..Default::default()
        })
        .unwrap();
    let mut reader = FileReader::open(&path, ReaderOptions::default()).unwrap();
    for i in 0..open {
        let ev = proto::SpanEvent {
            trace_id: [[7; 8], i.to_be_bytes()].concat(),
            span_id: (i + 1).to_be_bytes().to_vec(),
            scope_ref: scope,
            event: Some(span_event::Event::Start(span_event::StartSpan {
                name: "GET /api/orders/{id}".into(),
                kind: 2,
                start_time_unix_nano: 1,
                attributes: vec![
                    kv(&w, "http.method", Value::StringValue("GET".into())),
                    kv(
                        &w,
                        "http.route",
                        Value::StringValue("/api/orders/{id}".into()),
                    ),
                    kv(&w, "http.status_code", Value::IntValue(200)),
                    kv(&w, "i", Value::IntValue(i as i64)),
                ],
                ..Default::default()
            })),
        };
        while w.try_write(RingKind::Spans, &ev).is_err() {
            reader.poll(Signal::Traces, 0).unwrap();
        }
    }
    reader.poll(Signal::Traces, 0).unwrap();
    let counter = w
        .intern_message(&proto::MetricRef {
            name: "requests".into(),
            instrumentation_scope_ref: scope,
            aggregation: Some(Aggregation::Sum(proto::metric_ref::Sum {
                aggregation_temporality: 2,
                is_monotonic: true,
            })),
            ..Default::default()
        })
        .unwrap();
    for s in 0..100 {
        let m = proto::Measurement {
            metric_ref: counter,
            value: Some(proto::measurement::Value::AsLong(1)),
            attributes: vec![kv(&w, "series", Value::IntValue(s))],
            ..Default::default()
        };
        w.try_write(RingKind::Measurements, &m).unwrap();
    }
    reader.poll(Signal::Metrics, 0).unwrap();
    // Past max_in_flight_span_bytes (64 MiB) the oldest are given up.
    assert!(reader.stats().in_flight_spans <= open);
    (dir, w, reader)
}

fn checkpoint(c: &mut Criterion) {
    let mut g = c.benchmark_group("checkpoint");
    for open in [0u64, 1_000, 10_000, 100_000] {
        let (_dir, _w, mut reader) = reader_with(open);
        println!(
            "checkpoint with {open} spans in flight: {} bytes",
            reader.checkpoint().len()
        );
        g.bench_with_input(BenchmarkId::from_parameter(open), &open, |b, _| {
            b.iter(|| reader.checkpoint().len())
        });
    }
    g.finish();
}

criterion_group!(benches, checkpoint);
criterion_main!(benches);
