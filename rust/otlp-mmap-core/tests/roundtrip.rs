//! Every message type and every dictionary entry kind, written through
//! `MmapWriter` and read back through `MmapReader`/`RingReader`, equals what
//! was written; oversized records and full rings are refused without claiming
//! a slot and without blocking.

mod common;

use common::{config, read_all, reader_index, writer_index};
use otlp_mmap_core::proto::{self, any_value::Value};
use otlp_mmap_core::{MmapReader, MmapWriter, RingKind, Slot, WriteError};
use prost::Message;

fn setup(slots: u64, size: u64) -> (tempfile::TempDir, MmapWriter, MmapReader) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rt.otlp");
    let writer = MmapWriter::create(&path, &config(slots, size, 4096)).unwrap();
    let reader = MmapReader::open(&path, true).unwrap();
    (dir, writer, reader)
}

fn kv(key_ref: i64, v: Value) -> proto::KeyValueRef {
    proto::KeyValueRef {
        key_ref,
        value: Some(proto::AnyValue { value: Some(v) }),
    }
}

fn string_entry(reader: &MmapReader, r: i64) -> String {
    String::from_utf8(reader.entry(r).unwrap().to_vec()).unwrap()
}

/// A scope (with a resource) interned in the dictionary; returns its ref and value.
fn intern_scope(w: &MmapWriter) -> (i64, proto::InstrumentationScope, proto::Resource) {
    let resource = proto::Resource {
        attributes: vec![
            kv(
                w.intern_str("service.name").unwrap(),
                Value::StringValue("rt-svc".into()),
            ),
            kv(w.intern_str("host.cpus").unwrap(), Value::IntValue(2)),
        ],
        dropped_attributes_count: 3,
    };
    let scope = proto::InstrumentationScope {
        name_ref: w.intern_str("rt.scope").unwrap(),
        version_ref: w.intern_str("1.2.3").unwrap(),
        attributes: vec![kv(
            w.intern_str("scope.attr").unwrap(),
            Value::BoolValue(true),
        )],
        dropped_attributes_count: 1,
        resource_ref: w.intern_message(&resource).unwrap(),
    };
    (w.intern_message(&scope).unwrap(), scope, resource)
}

#[test]
fn span_events_of_every_variant_roundtrip() {
    use proto::span_event::{
        AddLink, ChangeSpanName, EndSpan, Event, StartSpan, UpdateAttributes, add_link::Link,
    };
    let (_d, w, r) = setup(16, 1024);
    let (scope_ref, scope, resource) = intern_scope(&w);
    let k_method = w.intern_str("http.method").unwrap();
    let k_status = w.intern_str("http.status").unwrap();
    let k_ratio = w.intern_str("ratio").unwrap();
    let k_link = w.intern_str("link.kind").unwrap();
    let trace_id = (1u8..=16).collect::<Vec<_>>();
    let span_id = vec![9u8, 8, 7, 6, 5, 4, 3, 2];
    let ev = |event: Event| proto::SpanEvent {
        trace_id: trace_id.clone(),
        span_id: span_id.clone(),
        scope_ref,
        event: Some(event),
    };
    let written = vec![
        ev(Event::Start(StartSpan {
            parent_span_id: vec![1, 1, 2, 3, 5, 8, 13, 21],
            name: "GET /".into(),
            kind: proto::SpanKind::Server as i32,
            start_time_unix_nano: 1_700_000_000_000_000_001,
            attributes: vec![
                kv(k_method, Value::StringValue("GET".into())),
                kv(k_status, Value::IntValue(200)),
                kv(k_ratio, Value::DoubleValue(0.25)),
            ],
            flags: 0x301,
        })),
        ev(Event::Name(ChangeSpanName {
            name: "GET /index".into(),
        })),
        ev(Event::Attributes(UpdateAttributes {
            attributes: vec![kv(k_status, Value::StringValue("ok".into()))],
        })),
        ev(Event::Link(AddLink {
            links: vec![
                Link {
                    trace_id: vec![0xaa; 16],
                    span_id: vec![0xbb; 8],
                    trace_state: "k=v".into(),
                    attributes: vec![kv(k_link, Value::StringValue("follows".into()))],
                    dropped_attributes_count: 2,
                    flags: 1,
                },
                Link {
                    trace_id: vec![0xcc; 16],
                    span_id: vec![0xdd; 8],
                    ..Default::default()
                },
            ],
        })),
        ev(Event::End(EndSpan {
            end_time_unix_nano: u64::MAX,
            status: Some(proto::Status {
                message: "boom".into(),
                code: proto::StatusCode::Error as i32,
            }),
        })),
        // An end without status, and an event with no oneof set at all.
        ev(Event::End(EndSpan::default())),
        proto::SpanEvent::default(),
    ];
    let mut seqs = Vec::new();
    for m in &written {
        seqs.push(w.try_write(RingKind::Spans, m).unwrap());
    }
    assert_eq!(seqs, (0..written.len() as i64).collect::<Vec<_>>());

    let got = read_all::<proto::SpanEvent>(&r, RingKind::Spans);
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), seqs);
    assert_eq!(
        got.into_iter().map(|g| g.1).collect::<Vec<_>>(),
        written,
        "span events differ"
    );
    // Refs resolve to what was interned, through the reader.
    let s = proto::InstrumentationScope::decode(r.entry(scope_ref).unwrap()).unwrap();
    assert_eq!(s, scope);
    assert_eq!(string_entry(&r, s.name_ref), "rt.scope");
    assert_eq!(string_entry(&r, s.version_ref), "1.2.3");
    let res = proto::Resource::decode(r.entry(s.resource_ref).unwrap()).unwrap();
    assert_eq!(res, resource);
    assert_eq!(string_entry(&r, res.attributes[0].key_ref), "service.name");
    assert_eq!(string_entry(&r, k_method), "http.method");
    assert_eq!(string_entry(&r, k_link), "link.kind");
    // Everything read was released; the other rings are untouched.
    assert_eq!(reader_index(&r, RingKind::Spans), written.len() as i64 - 1);
    assert_eq!(writer_index(&r, RingKind::Spans), written.len() as i64 - 1);
    assert_eq!(writer_index(&r, RingKind::Events), -1);
    assert_eq!(w.ring(RingKind::Spans).drops.total(), 0);
}

#[test]
fn events_with_every_any_value_kind_roundtrip() {
    let (_d, w, r) = setup(32, 1024);
    let (scope_ref, _, _) = intern_scope(&w);
    let k = |s: &str| w.intern_str(s).unwrap();
    let av = |v: Value| proto::AnyValue { value: Some(v) };
    // value_ref: an AnyValue stored in the dictionary, itself holding a kvlist.
    let stored = av(Value::KvlistValue(proto::KeyValueList {
        values: vec![kv(k("inner"), Value::IntValue(-7))],
    }));
    let value_ref = w.intern_message(&stored).unwrap();
    let bodies = vec![
        None,
        Some(proto::AnyValue { value: None }),
        Some(av(Value::StringValue("héllo ✓".into()))),
        Some(av(Value::StringValue(String::new()))),
        Some(av(Value::BoolValue(true))),
        Some(av(Value::BoolValue(false))),
        Some(av(Value::IntValue(i64::MIN))),
        Some(av(Value::IntValue(i64::MAX))),
        Some(av(Value::IntValue(9_007_199_254_740_993))),
        Some(av(Value::DoubleValue(-0.5))),
        Some(av(Value::DoubleValue(f64::INFINITY))),
        Some(av(Value::DoubleValue(f64::MIN_POSITIVE))),
        Some(av(Value::BytesValue(vec![0, 1, 2, 0xff]))),
        Some(av(Value::BytesValue(Vec::new()))),
        Some(av(Value::ArrayValue(proto::ArrayValue {
            values: vec![
                av(Value::IntValue(1)),
                av(Value::StringValue("two".into())),
                av(Value::ArrayValue(proto::ArrayValue {
                    values: vec![av(Value::BoolValue(false)), proto::AnyValue::default()],
                })),
                av(Value::ValueRef(value_ref)),
            ],
        }))),
        Some(av(Value::KvlistValue(proto::KeyValueList {
            values: vec![
                kv(k("a"), Value::DoubleValue(1.5)),
                kv(k("b"), Value::BytesValue(vec![7; 20])),
                proto::KeyValueRef {
                    key_ref: k("empty"),
                    value: None,
                },
                kv(
                    k("nested"),
                    Value::KvlistValue(proto::KeyValueList {
                        values: vec![kv(k("deep"), Value::StringValue("x".into()))],
                    }),
                ),
            ],
        }))),
        Some(av(Value::ValueRef(value_ref))),
    ];
    let mut written = Vec::new();
    for (i, body) in bodies.into_iter().enumerate() {
        written.push(proto::Event {
            scope_ref: if i % 2 == 0 { scope_ref } else { 0 },
            time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
            severity_number: (i % 25) as i32,
            severity_text: format!("SEV{i}"),
            body,
            event_name_ref: if i % 3 == 0 { k("my.event") } else { 0 },
            span_context: (i % 4 == 1).then(|| proto::SpanContext {
                span_id: vec![i as u8; 8],
                trace_id: vec![i as u8; 16],
                flags: 1,
            }),
            attributes: vec![
                kv(k("attr.str"), Value::StringValue("v".into())),
                kv(k("attr.ref"), Value::ValueRef(value_ref)),
            ],
        });
    }
    // Every severity number, too.
    for sev in 0..=24 {
        written.push(proto::Event {
            severity_number: sev,
            ..Default::default()
        });
    }
    // More records than slots: read in two halves, releasing in between.
    let (first, second) = written.split_at(20);
    for m in first {
        w.try_write(RingKind::Events, m).unwrap();
    }
    let mut got = read_all::<proto::Event>(&r, RingKind::Events);
    for m in second {
        w.try_write(RingKind::Events, m).unwrap();
    }
    got.extend(read_all::<proto::Event>(&r, RingKind::Events));
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        (0..written.len() as i64).collect::<Vec<_>>()
    );
    assert_eq!(got.into_iter().map(|g| g.1).collect::<Vec<_>>(), written);
    // The value_ref resolves to the stored AnyValue.
    let v = proto::AnyValue::decode(r.entry(value_ref).unwrap()).unwrap();
    assert_eq!(v, stored);
    assert_eq!(string_entry(&r, k("deep")), "deep");
}

#[test]
fn measurements_and_metric_refs_of_every_aggregation_roundtrip() {
    use proto::measurement::Value as MV;
    use proto::metric_ref::{Aggregation, ExponentialHistogram, Gauge, Histogram, Sum};
    let (_d, w, r) = setup(16, 256);
    let (scope_ref, _, _) = intern_scope(&w);
    let aggs = [
        Aggregation::Gauge(Gauge {}),
        Aggregation::Sum(Sum {
            aggregation_temporality: proto::AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
        Aggregation::Sum(Sum {
            aggregation_temporality: proto::AggregationTemporality::Delta as i32,
            is_monotonic: false,
        }),
        Aggregation::Histogram(Histogram {
            aggregation_temporality: proto::AggregationTemporality::Delta as i32,
            bucket_boundaries: vec![1.0, 2.5, 5.0, 10.0, 300.0],
        }),
        Aggregation::ExpHist(ExponentialHistogram {
            aggregation_temporality: proto::AggregationTemporality::Cumulative as i32,
            max_buckets: 160,
            max_scale: 20,
        }),
    ];
    let metrics: Vec<(i64, proto::MetricRef)> = aggs
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let m = proto::MetricRef {
                name: format!("metric.{i}"),
                description: "a metric".into(),
                unit: "ms".into(),
                instrumentation_scope_ref: scope_ref,
                aggregation: Some(a),
            };
            (w.intern_message(&m).unwrap(), m)
        })
        .collect();
    // A metric without aggregation is an entry like any other.
    let bare = proto::MetricRef::default();
    let bare_ref = w.intern_message(&bare).unwrap();
    let key = w.intern_str("route").unwrap();
    let mut written = Vec::new();
    for (i, (mref, _)) in metrics.iter().enumerate() {
        for j in 0..2 {
            written.push(proto::Measurement {
                metric_ref: *mref,
                attributes: vec![kv(key, Value::StringValue(format!("/r{j}")))],
                time_unix_nano: 1_700_000_000_000_000_000 + (i * 2 + j) as u64,
                value: Some(if j == 0 {
                    MV::AsLong(-(i as i64) - 1)
                } else {
                    MV::AsDouble(i as f64 + 0.125)
                }),
                span_context: (j == 1).then(|| proto::SpanContext {
                    span_id: vec![3; 8],
                    trace_id: vec![4; 16],
                    flags: 1,
                }),
            });
        }
    }
    written.push(proto::Measurement {
        metric_ref: bare_ref,
        value: Some(MV::AsLong(i64::MIN)),
        ..Default::default()
    });
    written.push(proto::Measurement {
        value: Some(MV::AsDouble(f64::MAX)),
        ..Default::default()
    });
    for m in &written {
        w.try_write(RingKind::Measurements, m).unwrap();
    }
    let got = read_all::<proto::Measurement>(&r, RingKind::Measurements);
    assert_eq!(got.into_iter().map(|g| g.1).collect::<Vec<_>>(), written);
    for (mref, m) in &metrics {
        let back = proto::MetricRef::decode(r.entry(*mref).unwrap()).unwrap();
        assert_eq!(&back, m);
        // Interning again gives the same ref.
        assert_eq!(w.intern_message(m).unwrap(), *mref);
    }
    assert_eq!(
        proto::MetricRef::decode(r.entry(bare_ref).unwrap()).unwrap(),
        bare
    );
}

#[test]
fn dictionary_entries_roundtrip_and_intern_once() {
    let (_d, w, r) = setup(4, 64);
    let dict = r.layout().dictionary;
    let (end0, n0) = r.dictionary_header().unwrap();
    assert_eq!((end0, n0), (dict as i64 + 64, 0));
    assert_eq!(w.intern_str("").unwrap(), 0, "empty string is ref 0");
    let a = w.intern_str("alpha").unwrap();
    assert_eq!(a, dict as i64 + 64, "first entry right after the header");
    assert_eq!(w.intern_str("alpha").unwrap(), a);
    let b = w.intern(b"beta").unwrap();
    assert_eq!(b, a + 1 + 5);
    let long = "x".repeat(300); // a two-byte varint length
    let l = w.intern_str(&long).unwrap();
    let raw1 = w.append_entry(b"beta").unwrap();
    let raw2 = w.append_entry(b"beta").unwrap();
    assert_ne!(raw1, raw2, "append_entry does not intern");
    assert_ne!(raw1, b);
    let empty = w.append_entry(b"").unwrap();
    let binary = w.append_entry(&[0xff, 0, 0x80]).unwrap();
    for (reference, want) in [
        (a, b"alpha".as_slice()),
        (b, b"beta"),
        (l, long.as_bytes()),
        (raw1, b"beta"),
        (raw2, b"beta"),
        (empty, b""),
        (binary, &[0xff, 0, 0x80]),
    ] {
        assert_eq!(r.entry(reference).unwrap(), want);
        assert_eq!(w.read_entry(reference).unwrap(), want);
    }
    let (end, n) = r.dictionary_header().unwrap();
    assert_eq!(n, 7);
    assert_eq!(end, binary + 4);
    // Ref 0 and refs that are not entry starts inside the header are errors.
    assert!(r.entry(0).is_err());
    assert!(r.entry(dict as i64).is_err());
    assert!(r.entry(end).is_err());
}

#[test]
fn oversized_record_is_refused_without_claiming_a_slot() {
    let (_d, w, r) = setup(4, 256);
    let ring = w.ring(RingKind::Events);
    let max = ring.max_message_len();
    assert_eq!(
        max, 254,
        "a 254-byte message plus its 2-byte length fills 256"
    );
    // One byte too many: refused, counted, nothing claimed.
    assert_eq!(
        w.try_write_with(RingKind::Events, max + 1, |_| panic!("must not encode")),
        Err(WriteError::TooLarge)
    );
    let huge = proto::Event {
        severity_text: "x".repeat(10_000),
        ..Default::default()
    };
    assert_eq!(
        w.try_write(RingKind::Events, &huge),
        Err(WriteError::TooLarge)
    );
    assert_eq!(
        ring.drops
            .too_large
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(
        ring.drops.full.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(writer_index(&r, RingKind::Events), -1, "no slot claimed");
    let mut ring_reader = r.ring_reader(RingKind::Events).unwrap();
    assert!(matches!(ring_reader.peek(r.region()), Slot::Empty));
    // The largest message that fits goes through, and so does the next one.
    assert_eq!(
        w.try_write_with(RingKind::Events, max, |b| {
            assert_eq!(b.len(), max);
            b.fill(0xa5);
            b.len()
        }),
        Ok(0)
    );
    let small = proto::Event {
        severity_text: "ok".into(),
        ..Default::default()
    };
    assert_eq!(w.try_write(RingKind::Events, &small), Ok(1));
    let Slot::Ready(bytes) = ring_reader.peek(r.region()) else {
        panic!("slot 0 not ready")
    };
    assert_eq!(bytes, vec![0xa5; max].as_slice());
    ring_reader.advance();
    let Slot::Ready(bytes) = ring_reader.peek(r.region()) else {
        panic!("slot 1 not ready")
    };
    assert_eq!(proto::Event::decode(bytes).unwrap(), small);
    ring_reader.advance();
    assert!(matches!(ring_reader.peek(r.region()), Slot::Empty));
}

#[test]
fn full_ring_drops_and_counts_and_uses_every_slot() {
    const N: i64 = 8;
    let (_d, w, r) = setup(N as u64, 64);
    let m = |i: i64| proto::Measurement {
        value: Some(proto::measurement::Value::AsLong(i)),
        ..Default::default()
    };
    // All N slots can be used (the reference writer leaves one free).
    for i in 0..N {
        assert_eq!(w.try_write(RingKind::Measurements, &m(i)), Ok(i));
    }
    let started = std::time::Instant::now();
    for _ in 0..1000 {
        assert_eq!(
            w.try_write(RingKind::Measurements, &m(-1)),
            Err(WriteError::Full)
        );
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "Full must not block"
    );
    let drops = &w.ring(RingKind::Measurements).drops;
    assert_eq!(drops.full.load(std::sync::atomic::Ordering::Relaxed), 1000);
    assert_eq!(drops.total(), 1000);
    assert_eq!(writer_index(&r, RingKind::Measurements), N - 1);
    // Reading without releasing does not free anything.
    let mut ring = r.ring_reader(RingKind::Measurements).unwrap();
    let Slot::Ready(b) = ring.peek(r.region()) else {
        panic!()
    };
    assert_eq!(proto::Measurement::decode(b).unwrap(), m(0));
    ring.advance();
    assert_eq!(
        w.try_write(RingKind::Measurements, &m(-1)),
        Err(WriteError::Full)
    );
    // Releasing one slot lets exactly one more record in.
    ring.release(r.region()).unwrap();
    assert_eq!(reader_index(&r, RingKind::Measurements), 0);
    assert_eq!(w.try_write(RingKind::Measurements, &m(N)), Ok(N));
    assert_eq!(
        w.try_write(RingKind::Measurements, &m(-1)),
        Err(WriteError::Full)
    );
    let got = read_all::<proto::Measurement>(&r, RingKind::Measurements);
    assert_eq!(
        got,
        (1..=N).map(|i| (i, m(i))).collect::<Vec<_>>(),
        "the dropped records never appear"
    );
    // Availability flags follow the published form (seq >> log2 n).
    let g = r.layout().measurements;
    for seq in 1..=N {
        let flag = r
            .region()
            .atomic_i32(g.flag_offset(g.slot_of(seq)))
            .unwrap()
            .load(std::sync::atomic::Ordering::Acquire);
        assert_eq!(flag, g.flag_of(seq));
    }
    assert_eq!(drops.full.load(std::sync::atomic::Ordering::Relaxed), 1002);
}

#[test]
fn peek_is_idempotent_and_a_new_ring_reader_resumes_after_release() {
    let (_d, w, r) = setup(4, 64);
    let e = |t: u64| proto::Event {
        time_unix_nano: t,
        ..Default::default()
    };
    for t in 0..3 {
        w.try_write(RingKind::Events, &e(t)).unwrap();
    }
    let mut ring = r.ring_reader(RingKind::Events).unwrap();
    for _ in 0..3 {
        let Slot::Ready(b) = ring.peek(r.region()) else {
            panic!()
        };
        assert_eq!(proto::Event::decode(b).unwrap(), e(0));
    }
    ring.advance();
    ring.release(r.region()).unwrap();
    assert_eq!(ring.unreleased(r.region()), 2);
    let got = read_all::<proto::Event>(&r, RingKind::Events);
    assert_eq!(got, vec![(1, e(1)), (2, e(2))]);
}
