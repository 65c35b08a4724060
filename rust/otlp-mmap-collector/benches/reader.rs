//! Reader-side throughput on one core:
//! - `spans`: 4-attribute spans (StartSpan + EndSpan) assembled and encoded
//!   into ExportTraceServiceRequest bytes, per span;
//! - `logs`: log records (3 attributes) converted and encoded, per record;
//! - `measurements`: counter measurements with 3 attributes aggregated, per measurement;
//! - `ring_decode`: span events (StartSpan, 4 attributes) taken from the ring
//!   and parsed into views, nothing else, per record.
//!
//! The ring is refilled by the writer outside the timed part.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use otlp_mmap_collector::{FileReader, ReaderOptions, Signal};
use otlp_mmap_core::proto::{self, any_value::Value, span_event};
use otlp_mmap_core::view::SpanEventView;
use otlp_mmap_core::{FileConfig, MmapReader, MmapWriter, RingConfig, RingKind, Slot};

/// Ring slots: the fill-then-drain batches stay in the cache, as they do for a
/// Collector that keeps up with its writers.
const SLOTS: u64 = 1024;

fn kv(w: &MmapWriter, k: &str, v: Value) -> proto::KeyValueRef {
    proto::KeyValueRef {
        key_ref: w.intern_str(k).unwrap(),
        value: Some(proto::AnyValue { value: Some(v) }),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    writer: MmapWriter,
    reader: FileReader,
    scope: i64,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.otlp");
    let ring = RingConfig {
        num_buffers: SLOTS,
        buffer_size: 512,
    };
    let cfg = FileConfig {
        events: ring,
        spans: ring,
        measurements: ring,
        ..FileConfig::default()
    };
    let writer = MmapWriter::create(&path, &cfg).unwrap();
    let resource = proto::Resource {
        attributes: vec![kv(
            &writer,
            "service.name",
            Value::StringValue("bench".into()),
        )],
        dropped_attributes_count: 0,
    };
    let scope = writer
        .intern_message(&proto::InstrumentationScope {
            name_ref: writer.intern_str("bench").unwrap(),
            resource_ref: writer.intern_message(&resource).unwrap(),
            ..Default::default()
        })
        .unwrap();
    let reader = FileReader::open(
        &path,
        ReaderOptions {
            max_batch_spans: 1024,
            max_batch_logs: 1024,
            ..ReaderOptions::default()
        },
    )
    .unwrap();
    Fixture {
        _dir: dir,
        writer,
        reader,
        scope,
    }
}

/// Runs `fill(n)` untimed and `drain()` timed until `iters` items were drained.
fn timed(iters: u64, mut fill: impl FnMut(u64), mut drain: impl FnMut() -> u64) -> Duration {
    let mut left = iters;
    let mut elapsed = Duration::ZERO;
    while left > 0 {
        let batch = left.min(SLOTS / 2 - 1);
        fill(batch);
        let t0 = Instant::now();
        let mut got = 0;
        while got < batch {
            got += drain();
        }
        elapsed += t0.elapsed();
        left -= batch;
    }
    elapsed
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("reader");
    g.throughput(Throughput::Elements(1));

    let mut f = fixture();
    let attrs = vec![
        kv(&f.writer, "http.method", Value::StringValue("GET".into())),
        kv(
            &f.writer,
            "http.route",
            Value::StringValue("/api/users/{id}".into()),
        ),
        kv(&f.writer, "http.status_code", Value::IntValue(200)),
        kv(&f.writer, "net.peer.port", Value::IntValue(44321)),
    ];
    let mut next_id = 0u64;
    g.bench_function("spans", |b| {
        b.iter_custom(|iters| {
            let Fixture {
                writer,
                reader,
                scope,
                ..
            } = &mut f;
            timed(
                iters,
                |n| {
                    for _ in 0..n {
                        next_id += 1;
                        let trace_id = [next_id.to_le_bytes(), [1; 8]].concat();
                        let span_id = next_id.to_le_bytes().to_vec();
                        let start = proto::SpanEvent {
                            trace_id: trace_id.clone(),
                            span_id: span_id.clone(),
                            scope_ref: *scope,
                            event: Some(span_event::Event::Start(span_event::StartSpan {
                                name: "GET /api/users/{id}".into(),
                                kind: 2,
                                start_time_unix_nano: next_id,
                                attributes: attrs.clone(),
                                flags: 1,
                                ..Default::default()
                            })),
                        };
                        let end = proto::SpanEvent {
                            trace_id,
                            span_id,
                            scope_ref: *scope,
                            event: Some(span_event::Event::End(span_event::EndSpan {
                                end_time_unix_nano: next_id + 1,
                                status: None,
                            })),
                        };
                        writer.try_write(RingKind::Spans, &start).unwrap();
                        writer.try_write(RingKind::Spans, &end).unwrap();
                    }
                },
                || match reader.poll(Signal::Traces, 0).unwrap() {
                    Some(batch) => {
                        let (items, token) = (batch.items, batch.token);
                        reader.commit(Signal::Traces, token).unwrap();
                        items
                    }
                    None => 0,
                },
            )
        })
    });

    let mut f = fixture();
    // Keys interned in this file (refs of the spans fixture's file would not resolve here).
    let log_attrs = vec![
        kv(&f.writer, "http.method", Value::StringValue("GET".into())),
        kv(
            &f.writer,
            "http.route",
            Value::StringValue("/api/users/{id}".into()),
        ),
        kv(&f.writer, "http.status_code", Value::IntValue(200)),
    ];
    g.bench_function("logs", |b| {
        b.iter_custom(|iters| {
            let Fixture {
                writer,
                reader,
                scope,
                ..
            } = &mut f;
            timed(
                iters,
                |n| {
                    for i in 0..n {
                        let ev = proto::Event {
                            scope_ref: *scope,
                            time_unix_nano: i,
                            severity_number: 9,
                            severity_text: "INFO".into(),
                            body: Some(proto::AnyValue {
                                value: Some(Value::StringValue("request handled".into())),
                            }),
                            attributes: log_attrs.clone(),
                            ..Default::default()
                        };
                        writer.try_write(RingKind::Events, &ev).unwrap();
                    }
                },
                || match reader.poll(Signal::Logs, 0).unwrap() {
                    Some(batch) => {
                        let (items, token) = (batch.items, batch.token);
                        reader.commit(Signal::Logs, token).unwrap();
                        items
                    }
                    None => 0,
                },
            )
        })
    });

    let mut f = fixture();
    let counter = f
        .writer
        .intern_message(&proto::MetricRef {
            name: "requests".into(),
            instrumentation_scope_ref: f.scope,
            aggregation: Some(proto::metric_ref::Aggregation::Sum(
                proto::metric_ref::Sum {
                    aggregation_temporality: 2,
                    is_monotonic: true,
                },
            )),
            ..Default::default()
        })
        .unwrap();
    let sets: Vec<Vec<proto::KeyValueRef>> = (0..10)
        .map(|i| {
            vec![
                kv(&f.writer, "http.method", Value::StringValue("GET".into())),
                kv(
                    &f.writer,
                    "http.route",
                    Value::StringValue(format!("/route/{i}")),
                ),
                kv(&f.writer, "http.status_code", Value::IntValue(200)),
            ]
        })
        .collect();
    g.bench_function("measurements", |b| {
        b.iter_custom(|iters| {
            let Fixture { writer, reader, .. } = &mut f;
            let mut read_before = reader.stats().records_read[2];
            timed(
                iters,
                |n| {
                    for i in 0..n {
                        let m = proto::Measurement {
                            metric_ref: counter,
                            attributes: sets[(i % 10) as usize].clone(),
                            time_unix_nano: i,
                            value: Some(proto::measurement::Value::AsLong(1)),
                            span_context: None,
                        };
                        writer.try_write(RingKind::Measurements, &m).unwrap();
                    }
                },
                || {
                    reader.poll(Signal::Metrics, 0).unwrap();
                    let now = reader.stats().records_read[2];
                    let got = now - read_before;
                    read_before = now;
                    got
                },
            )
        })
    });

    // Ring decode: a file of its own, read through the core API only.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decode.otlp");
    let ring = RingConfig {
        num_buffers: SLOTS,
        buffer_size: 512,
    };
    let writer = MmapWriter::create(
        &path,
        &FileConfig {
            spans: ring,
            ..FileConfig::default()
        },
    )
    .unwrap();
    let attrs = vec![
        kv(&writer, "http.method", Value::StringValue("GET".into())),
        kv(
            &writer,
            "http.route",
            Value::StringValue("/api/users/{id}".into()),
        ),
        kv(&writer, "http.status_code", Value::IntValue(200)),
        kv(&writer, "net.peer.port", Value::IntValue(44321)),
    ];
    let file = MmapReader::open(&path, true).unwrap();
    let mut ring = file.ring_reader(RingKind::Spans).unwrap();
    g.bench_function("ring_decode", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                |n| {
                    for i in 0..n {
                        let start = proto::SpanEvent {
                            trace_id: vec![1; 16],
                            span_id: i.to_le_bytes().to_vec(),
                            scope_ref: 1,
                            event: Some(span_event::Event::Start(span_event::StartSpan {
                                name: "GET /api/users/{id}".into(),
                                kind: 2,
                                start_time_unix_nano: i,
                                attributes: attrs.clone(),
                                flags: 1,
                                ..Default::default()
                            })),
                        };
                        writer.try_write(RingKind::Spans, &start).unwrap();
                    }
                },
                || {
                    let mut got = 0;
                    while let Slot::Ready(bytes) = ring.peek(file.region()) {
                        let ev = SpanEventView::parse(bytes).unwrap();
                        std::hint::black_box(&ev);
                        ring.advance();
                        got += 1;
                    }
                    ring.release(file.region()).unwrap();
                    got
                },
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
