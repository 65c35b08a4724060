//! The reader workloads the benches share (`reader` under criterion,
//! `reader_instructions` under callgrind): a file per signal, a writer that
//! fills its ring, and the reader's drain of it.
//!
//! - spans: 4-attribute spans (StartSpan + EndSpan) assembled and encoded
//!   into ExportTraceServiceRequest bytes;
//! - logs: log records (3 attributes) converted and encoded;
//! - measurements: counter measurements with 3 attributes (10 sets) aggregated.
//!
//! Spans and logs also come with the flat hand-off (`Spans::flat`,
//! `Logs::flat`: `ReaderOptions::flat_handoff`, what the Collector's
//! receiver uses).

#![allow(dead_code)]

use otlp_mmap_collector::{FileReader, ReaderOptions, Signal};
use otlp_mmap_core::proto::{self, any_value::Value, span_event};
use otlp_mmap_core::{FileConfig, MmapWriter, RingConfig, RingKind};

/// Ring slots: the fill-then-drain batches stay in the cache, as they do for a
/// Collector that keeps up with its writers.
pub const SLOTS: u64 = 1024;

/// Most items filled before a drain (spans take two slots each).
pub const ROUND: u64 = SLOTS / 2 - 1;

pub fn kv(w: &MmapWriter, k: &str, v: Value) -> proto::KeyValueRef {
    proto::KeyValueRef {
        key_ref: w.intern_str(k).unwrap(),
        value: Some(proto::AnyValue { value: Some(v) }),
    }
}

/// One file with its writer and reader.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub writer: MmapWriter,
    pub reader: FileReader,
    pub scope: i64,
}

pub fn fixture() -> Fixture {
    fixture_with(false)
}

/// A fixture whose reader hands batches out in the flat layout when `flat`.
pub fn fixture_with(flat: bool) -> Fixture {
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
            flat_handoff: flat,
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

/// Spans written as StartSpan + EndSpan, read back as traces batches.
pub struct Spans {
    pub f: Fixture,
    attrs: Vec<proto::KeyValueRef>,
    next_id: u64,
}

impl Spans {
    pub fn new() -> Self {
        Self::with(fixture())
    }

    /// With the flat hand-off.
    pub fn flat() -> Self {
        Self::with(fixture_with(true))
    }

    fn with(f: Fixture) -> Self {
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
        Spans {
            f,
            attrs,
            next_id: 0,
        }
    }

    pub fn fill(&mut self, n: u64) {
        for _ in 0..n {
            self.next_id += 1;
            let id = self.next_id;
            let trace_id = [id.to_le_bytes(), [1; 8]].concat();
            let span_id = id.to_le_bytes().to_vec();
            let start = proto::SpanEvent {
                trace_id: trace_id.clone(),
                span_id: span_id.clone(),
                scope_ref: self.f.scope,
                event: Some(span_event::Event::Start(span_event::StartSpan {
                    name: "GET /api/users/{id}".into(),
                    kind: 2,
                    start_time_unix_nano: id,
                    attributes: self.attrs.clone(),
                    flags: 1,
                    ..Default::default()
                })),
            };
            let end = proto::SpanEvent {
                trace_id,
                span_id,
                scope_ref: self.f.scope,
                event: Some(span_event::Event::End(span_event::EndSpan {
                    end_time_unix_nano: id + 1,
                    status: None,
                })),
            };
            self.f.writer.try_write(RingKind::Spans, &start).unwrap();
            self.f.writer.try_write(RingKind::Spans, &end).unwrap();
        }
    }

    /// One poll and commit; returns the spans it delivered.
    pub fn drain(&mut self) -> u64 {
        poll_and_commit(&mut self.f.reader, Signal::Traces)
    }
}

/// Log records, read back as logs batches.
pub struct Logs {
    pub f: Fixture,
    attrs: Vec<proto::KeyValueRef>,
}

impl Logs {
    pub fn new() -> Self {
        Self::with(fixture())
    }

    /// With the flat hand-off.
    pub fn flat() -> Self {
        Self::with(fixture_with(true))
    }

    fn with(f: Fixture) -> Self {
        let attrs = vec![
            kv(&f.writer, "http.method", Value::StringValue("GET".into())),
            kv(
                &f.writer,
                "http.route",
                Value::StringValue("/api/users/{id}".into()),
            ),
            kv(&f.writer, "http.status_code", Value::IntValue(200)),
        ];
        Logs { f, attrs }
    }

    pub fn fill(&mut self, n: u64) {
        for i in 0..n {
            let ev = proto::Event {
                scope_ref: self.f.scope,
                time_unix_nano: i,
                severity_number: 9,
                severity_text: "INFO".into(),
                body: Some(proto::AnyValue {
                    value: Some(Value::StringValue("request handled".into())),
                }),
                attributes: self.attrs.clone(),
                ..Default::default()
            };
            self.f.writer.try_write(RingKind::Events, &ev).unwrap();
        }
    }

    /// One poll and commit; returns the records it delivered.
    pub fn drain(&mut self) -> u64 {
        poll_and_commit(&mut self.f.reader, Signal::Logs)
    }
}

/// Counter measurements over 10 attribute sets, aggregated.
pub struct Measurements {
    pub f: Fixture,
    counter: i64,
    sets: Vec<Vec<proto::KeyValueRef>>,
    read_before: u64,
}

impl Measurements {
    pub fn new() -> Self {
        let f = fixture();
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
        let sets = (0..10)
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
        let read_before = f.reader.stats().records_read[2];
        Measurements {
            f,
            counter,
            sets,
            read_before,
        }
    }

    pub fn fill(&mut self, n: u64) {
        for i in 0..n {
            let m = proto::Measurement {
                metric_ref: self.counter,
                attributes: self.sets[(i % 10) as usize].clone(),
                time_unix_nano: i,
                value: Some(proto::measurement::Value::AsLong(1)),
                span_context: None,
            };
            self.f.writer.try_write(RingKind::Measurements, &m).unwrap();
        }
    }

    /// One poll; returns the measurements it aggregated.
    pub fn drain(&mut self) -> u64 {
        self.f.reader.poll(Signal::Metrics, 0).unwrap();
        let now = self.f.reader.stats().records_read[2];
        let got = now - self.read_before;
        self.read_before = now;
        got
    }
}

fn poll_and_commit(reader: &mut FileReader, signal: Signal) -> u64 {
    match reader.poll(signal, 0).unwrap() {
        Some(batch) => {
            if let Some(mode) = batch.bytes.strip_prefix(otlp_mmap_collector::flat::MAGIC) {
                assert_eq!(
                    mode[0],
                    otlp_mmap_collector::flat::MODE_FLAT,
                    "flat, not OTLP"
                );
            }
            let (items, token) = (batch.items, batch.token);
            reader.commit(signal, token).unwrap();
            items
        }
        None => 0,
    }
}
