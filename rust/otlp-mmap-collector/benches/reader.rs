//! Reader-side throughput on one core (the workloads are in `workload`):
//! - `spans`: 4-attribute spans (StartSpan + EndSpan) assembled and encoded
//!   into ExportTraceServiceRequest bytes, per span;
//! - `logs`: log records (3 attributes) converted and encoded, per record;
//! - `spans_flat`, `logs_flat`: the same with the flat hand-off (what the
//!   Collector's receiver uses);
//! - `measurements`: counter measurements with 3 attributes aggregated, per measurement;
//! - `ring_decode`: span events (StartSpan, 4 attributes) taken from the ring
//!   and parsed into views, nothing else, per record.
//!
//! The ring is refilled by the writer outside the timed part.

mod workload;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use otlp_mmap_core::proto::{self, any_value::Value, span_event};
use otlp_mmap_core::view::SpanEventView;
use otlp_mmap_core::{FileConfig, MmapReader, MmapWriter, RingConfig, RingKind, Slot};
use workload::{Logs, Measurements, ROUND, SLOTS, Spans, kv};

/// Runs `fill(n)` untimed and `drain()` timed until `iters` items were drained.
fn timed(iters: u64, mut fill: impl FnMut(u64), mut drain: impl FnMut() -> u64) -> Duration {
    let mut left = iters;
    let mut elapsed = Duration::ZERO;
    while left > 0 {
        let batch = left.min(ROUND);
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

    // The workloads fill and drain through `&mut self`: a cell lends them to both closures.
    let spans = std::cell::RefCell::new(Spans::new());
    g.bench_function("spans", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                |n| spans.borrow_mut().fill(n),
                || spans.borrow_mut().drain(),
            )
        })
    });

    let logs = std::cell::RefCell::new(Logs::new());
    g.bench_function("logs", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                |n| logs.borrow_mut().fill(n),
                || logs.borrow_mut().drain(),
            )
        })
    });

    let spans_flat = std::cell::RefCell::new(Spans::flat());
    g.bench_function("spans_flat", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                |n| spans_flat.borrow_mut().fill(n),
                || spans_flat.borrow_mut().drain(),
            )
        })
    });

    let logs_flat = std::cell::RefCell::new(Logs::flat());
    g.bench_function("logs_flat", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                |n| logs_flat.borrow_mut().fill(n),
                || logs_flat.borrow_mut().drain(),
            )
        })
    });

    let measurements = std::cell::RefCell::new(Measurements::new());
    g.bench_function("measurements", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                |n| measurements.borrow_mut().fill(n),
                || measurements.borrow_mut().drain(),
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
