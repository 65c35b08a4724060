//! Proves that, once warm, the reader allocates nothing per span, log record
//! or measurement, with a counting global allocator (this test binary only):
//! a file is filled with many records between rounds (outside the count),
//! and every poll and commit that drains a round is counted. The first
//! rounds warm up what is kept across batches (the dictionary cache, span
//! buffers, batch buffers); the rounds after them must not allocate at all.
//!
//! Allocations are counted per thread, so other tests running at the same
//! time do not disturb the counts.

use otlp_mmap_collector::{CollectOutcome, FileReader, ReaderOptions, Signal};
use otlp_mmap_core::proto::{self, any_value::Value, span_event};
use otlp_mmap_core::{FileConfig, MmapWriter, RingConfig, RingKind};
use otlp_mmap_test_support::{CountingAllocator, thread_allocations_during as allocations};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Records per round, rounds of warm-up, rounds counted.
const PER_ROUND: u64 = 1500;
const WARM_UP: usize = 2;
const COUNTED: usize = 5;

struct Fixture {
    _dir: tempfile::TempDir,
    writer: MmapWriter,
    reader: FileReader,
    scope: i64,
}

fn fixture() -> Fixture {
    fixture_with(ReaderOptions::default())
}

fn fixture_with(options: ReaderOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no_alloc.otlp");
    let ring = RingConfig {
        num_buffers: 1 << 13,
        buffer_size: 1024,
    };
    let writer = MmapWriter::create(
        &path,
        &FileConfig {
            events: ring,
            spans: ring,
            measurements: ring,
            ..FileConfig::default()
        },
    )
    .unwrap();
    let resource = proto::Resource {
        attributes: vec![kv(&writer, "service.name", str_value("no-alloc"))],
        dropped_attributes_count: 0,
    };
    let scope = writer
        .intern_message(&proto::InstrumentationScope {
            name_ref: writer.intern_str("no-alloc").unwrap(),
            version_ref: writer.intern_str("1.0").unwrap(),
            resource_ref: writer.intern_message(&resource).unwrap(),
            ..Default::default()
        })
        .unwrap();
    let reader = FileReader::open(&path, options).unwrap();
    Fixture {
        _dir: dir,
        writer,
        reader,
        scope,
    }
}

fn str_value(s: &str) -> Value {
    Value::StringValue(s.into())
}

fn kv(w: &MmapWriter, k: &str, v: Value) -> proto::KeyValueRef {
    proto::KeyValueRef {
        key_ref: w.intern_str(k).unwrap(),
        value: Some(proto::AnyValue { value: Some(v) }),
    }
}

/// Attributes of every kind of value, one of them a value ref.
fn attributes(w: &MmapWriter) -> Vec<proto::KeyValueRef> {
    let shared = w
        .intern_message(&proto::AnyValue {
            value: Some(str_value("/api/users/{id}")),
        })
        .unwrap();
    vec![
        kv(w, "http.method", str_value("GET")),
        kv(w, "http.route", Value::ValueRef(shared)),
        kv(w, "http.status_code", Value::IntValue(200)),
        kv(w, "server.duration", Value::DoubleValue(1.25)),
        kv(w, "cache.hit", Value::BoolValue(true)),
        kv(
            w,
            "tags",
            Value::ArrayValue(proto::ArrayValue {
                values: vec![proto::AnyValue {
                    value: Some(str_value("a")),
                }],
            }),
        ),
        kv(
            w,
            "peer",
            Value::KvlistValue(proto::KeyValueList {
                values: vec![kv(w, "port", Value::IntValue(443))],
            }),
        ),
    ]
}

/// Drains `signal` until `want` items came out, polling and committing;
/// returns the allocations made on the way.
fn drain(reader: &mut FileReader, signal: Signal, want: u64) -> u64 {
    allocations(|| {
        let mut got = 0;
        while got < want {
            if let Some(batch) = reader.poll(signal, 1).unwrap() {
                if batch.bytes.starts_with(otlp_mmap_collector::flat::MAGIC) {
                    assert_eq!(batch.bytes[4], 0, "flat, not the OTLP fallback");
                }
                let (items, token) = (batch.items, batch.token);
                reader.commit(signal, token).unwrap();
                got += items;
            }
        }
    })
}

/// Counts what the rounds after the warm-up allocated.
fn counted_rounds(mut round: impl FnMut(usize) -> u64) -> Vec<u64> {
    (0..WARM_UP + COUNTED)
        .map(&mut round)
        .skip(WARM_UP)
        .collect()
}

#[test]
fn spans_allocate_nothing_once_warm() {
    spans_allocate_nothing_once_warm_with(ReaderOptions::default());
}

/// Also when batches are handed out in the flat layout (its string table
/// holds every string that repeats by the end of the warm-up).
#[test]
fn flat_spans_allocate_nothing_once_warm() {
    spans_allocate_nothing_once_warm_with(ReaderOptions {
        flat_handoff: true,
        ..ReaderOptions::default()
    });
}

fn spans_allocate_nothing_once_warm_with(options: ReaderOptions) {
    let Fixture {
        writer,
        mut reader,
        scope,
        ..
    } = fixture_with(options);
    let attrs = attributes(&writer);
    let update = vec![
        kv(&writer, "http.status_code", Value::IntValue(404)),
        kv(&writer, "error.type", str_value("not found")),
    ];
    let link_attr = vec![kv(&writer, "link.kind", str_value("follows"))];
    let mut id = 0u64;
    let counts = counted_rounds(|_| {
        for _ in 0..PER_ROUND {
            id += 1;
            let event = |e| proto::SpanEvent {
                trace_id: [id.to_le_bytes(), [7; 8]].concat(),
                span_id: id.to_le_bytes().to_vec(),
                scope_ref: scope,
                event: Some(e),
            };
            let events = [
                span_event::Event::Start(span_event::StartSpan {
                    name: "GET /api/users/{id}".into(),
                    kind: 2,
                    start_time_unix_nano: id,
                    attributes: attrs.clone(),
                    flags: 1,
                    parent_span_id: vec![9; 8],
                }),
                // An upsert of a key present and a new key, a rename, a link.
                span_event::Event::Attributes(span_event::UpdateAttributes {
                    attributes: update.clone(),
                }),
                span_event::Event::Name(span_event::ChangeSpanName {
                    name: "GET /api/users/42".into(),
                }),
                span_event::Event::Link(span_event::AddLink {
                    links: vec![span_event::add_link::Link {
                        trace_id: vec![3; 16],
                        span_id: vec![4; 8],
                        trace_state: "k=v".into(),
                        attributes: link_attr.clone(),
                        dropped_attributes_count: 0,
                        flags: 1,
                    }],
                }),
                span_event::Event::End(span_event::EndSpan {
                    end_time_unix_nano: id + 1,
                    status: Some(proto::Status {
                        message: "not found".into(),
                        code: 2,
                    }),
                }),
            ];
            for e in events {
                writer.try_write(RingKind::Spans, &event(e)).unwrap();
            }
        }
        drain(&mut reader, Signal::Traces, PER_ROUND)
    });
    assert_eq!(
        counts,
        vec![0; COUNTED],
        "allocations per round of {PER_ROUND} spans"
    );
    let st = reader.stats();
    assert_eq!(
        st.records_read[Signal::Traces as usize],
        5 * PER_ROUND * (WARM_UP + COUNTED) as u64
    );
    assert_eq!(
        st.bad_refs + st.orphan_span_events + st.span_limit_drops,
        0,
        "{st:?}"
    );
}

#[test]
fn log_records_allocate_nothing_once_warm() {
    log_records_allocate_nothing_once_warm_with(ReaderOptions::default());
}

#[test]
fn flat_log_records_allocate_nothing_once_warm() {
    log_records_allocate_nothing_once_warm_with(ReaderOptions {
        flat_handoff: true,
        ..ReaderOptions::default()
    });
}

fn log_records_allocate_nothing_once_warm_with(options: ReaderOptions) {
    let Fixture {
        writer,
        mut reader,
        scope,
        ..
    } = fixture_with(options);
    let attrs = attributes(&writer);
    let name = writer.intern_str("user.login").unwrap();
    let counts = counted_rounds(|round| {
        for i in 0..PER_ROUND {
            let ev = proto::Event {
                scope_ref: scope,
                time_unix_nano: i + 1,
                severity_number: 9,
                severity_text: "INFO".into(),
                body: Some(proto::AnyValue {
                    value: Some(str_value("request handled")),
                }),
                attributes: attrs.clone(),
                event_name_ref: name,
                span_context: Some(proto::SpanContext {
                    span_id: (i + 1).to_le_bytes().to_vec(),
                    trace_id: vec![round as u8 + 1; 16],
                    flags: 1,
                }),
            };
            writer.try_write(RingKind::Events, &ev).unwrap();
        }
        drain(&mut reader, Signal::Logs, PER_ROUND)
    });
    assert_eq!(
        counts,
        vec![0; COUNTED],
        "allocations per round of {PER_ROUND} log records"
    );
    let st = reader.stats();
    assert_eq!(
        st.records_read[Signal::Logs as usize],
        PER_ROUND * (WARM_UP + COUNTED) as u64
    );
    assert_eq!(
        st.bad_refs + st.oversized_records[Signal::Logs as usize],
        0,
        "{st:?}"
    );
}

use proto::metric_ref::Aggregation;

/// Allocations of the counted rounds of `per_round` measurements of
/// `metrics` (each one's aggregation; 10 attribute sets, every other
/// measurement with a span context), a collection after each round.
fn measurement_rounds(aggregations: &[Aggregation], per_round: u64) -> Vec<u64> {
    let Fixture {
        writer,
        mut reader,
        scope,
        ..
    } = fixture();
    let metrics: Vec<i64> = aggregations
        .iter()
        .enumerate()
        .map(|(i, aggregation)| {
            writer
                .intern_message(&proto::MetricRef {
                    name: format!("m{i}"),
                    instrumentation_scope_ref: scope,
                    aggregation: Some(aggregation.clone()),
                    ..Default::default()
                })
                .unwrap()
        })
        .collect();
    let sets: Vec<Vec<proto::KeyValueRef>> = (0..10)
        .map(|i| {
            vec![
                kv(&writer, "http.method", str_value("GET")),
                kv(
                    &writer,
                    "http.route",
                    Value::StringValue(format!("/route/{i}")),
                ),
            ]
        })
        .collect();
    let read = |reader: &FileReader| reader.stats().records_read[Signal::Metrics as usize];
    let counts = counted_rounds(|round| {
        for i in 0..per_round {
            let m = proto::Measurement {
                metric_ref: metrics[i as usize % metrics.len()],
                attributes: sets[(i % 10) as usize].clone(),
                time_unix_nano: i + 1,
                value: Some(proto::measurement::Value::AsDouble(i as f64)),
                span_context: (i % 2 == 0).then(|| proto::SpanContext {
                    span_id: (i + 1).to_le_bytes().to_vec(),
                    trace_id: vec![round as u8 + 1; 16],
                    flags: 1,
                }),
            };
            writer.try_write(RingKind::Measurements, &m).unwrap();
        }
        let before = read(&reader);
        let n = allocations(|| {
            while read(&reader) - before < per_round {
                assert!(reader.poll(Signal::Metrics, 1).unwrap().is_none());
            }
        });
        // A collection (once per interval, not per measurement) is not counted.
        assert!(matches!(
            reader.collect_metrics(1),
            CollectOutcome::Collected(_)
        ));
        let token = reader.poll(Signal::Metrics, 1).unwrap().unwrap().token;
        reader.commit(Signal::Metrics, token).unwrap();
        n
    });
    let st = reader.stats();
    assert_eq!(
        st.records_read[Signal::Metrics as usize],
        per_round * (WARM_UP + COUNTED) as u64
    );
    assert_eq!(
        st.bad_refs + st.metric_overflows + st.measurements_without_value,
        0,
        "{st:?}"
    );
    counts
}

#[test]
fn measurements_of_cumulative_metrics_allocate_nothing_once_warm() {
    let counts = measurement_rounds(
        &[
            Aggregation::Sum(proto::metric_ref::Sum {
                aggregation_temporality: 2,
                is_monotonic: true,
            }),
            Aggregation::Histogram(proto::metric_ref::Histogram {
                aggregation_temporality: 2,
                bucket_boundaries: vec![1.0, 10.0, 100.0],
            }),
            Aggregation::ExpHist(proto::metric_ref::ExponentialHistogram {
                aggregation_temporality: 2,
                max_buckets: 160,
                max_scale: 20,
            }),
        ],
        PER_ROUND,
    );
    assert_eq!(
        counts,
        vec![0; COUNTED],
        "allocations per round of {PER_ROUND} measurements"
    );
}

/// Delta series and gauges start over after each collection: creating them
/// again allocates, once per series and interval, whatever the number of
/// measurements.
#[test]
fn measurements_of_delta_metrics_allocate_per_series_not_per_measurement() {
    let aggregations = [
        Aggregation::Sum(proto::metric_ref::Sum {
            aggregation_temporality: 1,
            is_monotonic: true,
        }),
        Aggregation::Gauge(proto::metric_ref::Gauge {}),
    ];
    let few = measurement_rounds(&aggregations, PER_ROUND);
    let many = measurement_rounds(&aggregations, 3 * PER_ROUND);
    assert!(few[0] > 0, "series are created again: {few:?}");
    assert_eq!(
        few,
        many,
        "allocations per round: {PER_ROUND} vs {} measurements",
        3 * PER_ROUND
    );
}

/// Flat traces, flat logs and metrics read together, with a checkpoint
/// while a traces batch is pending (it writes the batch's request) and a
/// collection in every round: every batch buffer in flight at once (traces
/// flat and request, logs request and flat, metrics) is kept for the next
/// round. (The checkpoint and the collection allocate what they hand out:
/// they are not counted.)
#[test]
fn flat_traces_logs_and_metrics_with_checkpoints_allocate_nothing_once_warm() {
    const N: u64 = 200;
    let Fixture {
        writer,
        mut reader,
        scope,
        ..
    } = fixture_with(ReaderOptions {
        flat_handoff: true,
        ..ReaderOptions::default()
    });
    let attrs = attributes(&writer);
    let metric = writer
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
    let mut id = 0u64;
    let counts = counted_rounds(|_| {
        for _ in 0..N {
            id += 1;
            let span = |e| proto::SpanEvent {
                trace_id: [id.to_le_bytes(), [7; 8]].concat(),
                span_id: id.to_le_bytes().to_vec(),
                scope_ref: scope,
                event: Some(e),
            };
            let start = span_event::Event::Start(span_event::StartSpan {
                name: "GET /api/users/{id}".into(),
                kind: 2,
                start_time_unix_nano: id,
                attributes: attrs.clone(),
                flags: 1,
                parent_span_id: vec![9; 8],
            });
            let end = span_event::Event::End(span_event::EndSpan {
                end_time_unix_nano: id + 1,
                status: None,
            });
            writer.try_write(RingKind::Spans, &span(start)).unwrap();
            writer.try_write(RingKind::Spans, &span(end)).unwrap();
            let log = proto::Event {
                scope_ref: scope,
                time_unix_nano: id,
                severity_number: 9,
                body: Some(proto::AnyValue {
                    value: Some(str_value("request handled")),
                }),
                attributes: attrs.clone(),
                ..Default::default()
            };
            writer.try_write(RingKind::Events, &log).unwrap();
            let m = proto::Measurement {
                metric_ref: metric,
                attributes: attrs[..1].to_vec(),
                time_unix_nano: id,
                value: Some(proto::measurement::Value::AsDouble(id as f64)),
                span_context: None,
            };
            writer.try_write(RingKind::Measurements, &m).unwrap();
        }
        let mut traces = None;
        let mut n = allocations(|| {
            while traces.is_none() {
                traces = reader.poll(Signal::Traces, 1).unwrap().map(|b| b.token);
            }
        });
        let traces = traces.unwrap();
        // The traces batch stays pending across both.
        reader.checkpoint();
        assert!(matches!(
            reader.collect_metrics(1),
            CollectOutcome::Collected(_)
        ));
        n += allocations(|| {
            let mut logs = None;
            while logs.is_none() {
                logs = reader
                    .poll(Signal::Logs, 1)
                    .unwrap()
                    .map(|b| (b.items, b.token));
            }
            let (mut logs_read, logs) = logs.unwrap();
            let metrics = reader.poll(Signal::Metrics, 1).unwrap().unwrap().token;
            reader.commit(Signal::Logs, logs).unwrap();
            reader.commit(Signal::Metrics, metrics).unwrap();
            let mut spans_read = reader.poll(Signal::Traces, 1).unwrap().unwrap().items;
            reader.commit(Signal::Traces, traces).unwrap();
            // What did not fit the first batches.
            for (signal, read) in [
                (Signal::Traces, &mut spans_read),
                (Signal::Logs, &mut logs_read),
            ] {
                while *read < N {
                    if let Some(b) = reader.poll(signal, 1).unwrap() {
                        let (items, token) = (b.items, b.token);
                        reader.commit(signal, token).unwrap();
                        *read += items;
                    }
                }
            }
            assert_eq!((spans_read, logs_read), (N, N));
        });
        n
    });
    assert_eq!(
        counts,
        vec![0; COUNTED],
        "allocations per round of {N} spans, log records and measurements"
    );
    let st = reader.stats();
    assert_eq!(
        st.records_read,
        [2 * N, N, N].map(|n| n * (WARM_UP + COUNTED) as u64),
        "{st:?}"
    );
    assert_eq!(st.bad_refs, 0, "{st:?}");
}
