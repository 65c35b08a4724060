//! Span attributes a writer sends again and again (the same key ref and
//! value, encoded the same) are resolved once and then copied from the
//! reader's attribute cache: every span must come out exactly as the first
//! one, which was resolved, did, under the span limits and the record
//! budget too, and upserts must replace or keep values as they do.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use otlp_mmap_collector::{FileReader, ReaderOptions, ReaderStats, Signal};
use otlp_mmap_core::proto::{self, any_value::Value, span_event::Event};
use otlp_mmap_core::{FileConfig, MmapWriter, RingKind};
use prost::Message;

const T: u64 = 1_700_000_000_000_000_000;
const SPANS: u8 = 20;

fn event(id: u8, e: Event) -> proto::SpanEvent {
    proto::SpanEvent {
        trace_id: vec![7; 16],
        span_id: vec![id; 8],
        scope_ref: 0,
        event: Some(e),
    }
}

fn kv(key_ref: i64, v: Value) -> proto::KeyValueRef {
    proto::KeyValueRef {
        key_ref,
        value: Some(proto::AnyValue { value: Some(v) }),
    }
}

fn otlp(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

/// Writes `SPANS` spans, each started with `start` and then given `updates`
/// one event at a time, and reads them with `options`.
fn read(
    start: impl Fn(&MmapWriter) -> Vec<proto::KeyValueRef>,
    updates: impl Fn(&MmapWriter) -> Vec<Vec<proto::KeyValueRef>>,
    options: ReaderOptions,
) -> (Vec<Span>, ReaderStats) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repeated.otlp");
    let w = MmapWriter::create(&path, &FileConfig::default()).unwrap();
    let (attributes, updates) = (start(&w), updates(&w));
    for id in 1..=SPANS {
        let s = Event::Start(proto::span_event::StartSpan {
            name: "op".into(),
            start_time_unix_nano: T,
            attributes: attributes.clone(),
            ..Default::default()
        });
        w.try_write(RingKind::Spans, &event(id, s)).unwrap();
        for u in &updates {
            let e = Event::Attributes(proto::span_event::UpdateAttributes {
                attributes: u.clone(),
            });
            w.try_write(RingKind::Spans, &event(id, e)).unwrap();
        }
        let e = Event::End(proto::span_event::EndSpan {
            end_time_unix_nano: T + 1,
            status: None,
        });
        w.try_write(RingKind::Spans, &event(id, e)).unwrap();
    }
    let mut r = FileReader::open(&path, options).unwrap();
    let mut spans = Vec::new();
    while let Some(b) = r.poll(Signal::Traces, T).unwrap() {
        let req = ExportTraceServiceRequest::decode(b.bytes).unwrap();
        let token = b.token;
        r.commit(Signal::Traces, token).unwrap();
        for rs in req.resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    assert_eq!(spans.len(), SPANS as usize);
    (spans, r.stats())
}

/// Every span holds what the first one (resolved, not cached) holds.
fn all_alike(spans: &[Span]) -> &Span {
    let first = &spans[0];
    for s in spans {
        assert_eq!(s.attributes, first.attributes, "span {:?}", s.span_id);
        assert_eq!(s.dropped_attributes_count, first.dropped_attributes_count);
    }
    first
}

fn attributes(w: &MmapWriter) -> Vec<proto::KeyValueRef> {
    vec![
        kv(
            w.intern_str("http.method").unwrap(),
            Value::StringValue("GET".into()),
        ),
        kv(
            w.intern_str("http.status_code").unwrap(),
            Value::IntValue(200),
        ),
        kv(w.intern_str("ok").unwrap(), Value::BoolValue(true)),
        kv(
            w.intern_str("blob").unwrap(),
            Value::BytesValue(vec![1, 2, 3]),
        ),
        kv(w.intern_str("ratio").unwrap(), Value::DoubleValue(0.5)),
        proto::KeyValueRef {
            key_ref: w.intern_str("empty").unwrap(),
            value: None,
        },
    ]
}

#[test]
fn repeated_attributes_come_out_as_resolved() {
    let (spans, st) = read(attributes, |_| vec![], ReaderOptions::default());
    let first = all_alike(&spans);
    let want = vec![
        otlp("http.method", any_value::Value::StringValue("GET".into())),
        otlp("http.status_code", any_value::Value::IntValue(200)),
        otlp("ok", any_value::Value::BoolValue(true)),
        otlp("blob", any_value::Value::BytesValue(vec![1, 2, 3])),
        otlp("ratio", any_value::Value::DoubleValue(0.5)),
        KeyValue {
            key: "empty".into(),
            ..Default::default()
        },
    ];
    assert_eq!(first.attributes, want);
    assert_eq!((st.span_limit_drops, st.bad_refs), (0, 0));
}

#[test]
fn upserts_of_repeated_attributes_replace_and_keep_values() {
    let (spans, _) = read(
        attributes,
        |w| {
            let method = w.intern_str("http.method").unwrap();
            let code = w.intern_str("http.status_code").unwrap();
            vec![
                // A new value for a key the span holds (resolved once, then cached).
                vec![kv(code, Value::IntValue(404))],
                // The value it holds already (a cache hit replacing itself).
                vec![kv(method, Value::StringValue("GET".into()))],
                // A new key.
                vec![kv(w.intern_str("retry").unwrap(), Value::IntValue(1))],
            ]
        },
        ReaderOptions::default(),
    );
    let first = all_alike(&spans);
    let got: Vec<(&str, Option<&any_value::Value>)> = first
        .attributes
        .iter()
        .map(|a| {
            (
                a.key.as_str(),
                a.value.as_ref().and_then(|v| v.value.as_ref()),
            )
        })
        .collect();
    assert_eq!(
        got[0],
        (
            "http.method",
            Some(&any_value::Value::StringValue("GET".into()))
        )
    );
    assert_eq!(
        got[1],
        ("http.status_code", Some(&any_value::Value::IntValue(404)))
    );
    assert_eq!(got[6], ("retry", Some(&any_value::Value::IntValue(1))));
    assert_eq!(got.len(), 7);
}

#[test]
fn repeated_attributes_keep_to_the_span_limits() {
    // At most 3 attributes: the fourth and later are dropped, counted, in every span.
    let (spans, st) = read(
        attributes,
        |_| vec![],
        ReaderOptions {
            max_span_attributes: 3,
            ..ReaderOptions::default()
        },
    );
    let first = all_alike(&spans);
    assert_eq!(first.attributes.len(), 3);
    assert_eq!(first.dropped_attributes_count, 3);
    assert_eq!(st.span_limit_drops, 3 * u64::from(SPANS));
}

#[test]
fn repeated_attributes_keep_to_the_record_budget() {
    // Five values of 50 bytes against a budget of 700 bytes (the span
    // itself takes some): each span keeps what fits and drops the rest, the
    // same in every span.
    let long = |w: &MmapWriter| {
        (0..5)
            .map(|i| {
                kv(
                    w.intern_str(&format!("k{i}")).unwrap(),
                    Value::StringValue(format!("{i}").repeat(50)),
                )
            })
            .collect()
    };
    let (spans, st) = read(
        long,
        |_| vec![],
        ReaderOptions {
            max_record_bytes: 700,
            ..ReaderOptions::default()
        },
    );
    let first = all_alike(&spans);
    let kept = first.attributes.len();
    assert!((1..5).contains(&kept), "{kept} kept");
    assert_eq!(first.dropped_attributes_count as usize, 5 - kept);
    assert_eq!(
        st.oversized_records[Signal::Traces as usize],
        u64::from(SPANS)
    );
}

/// Reads spans started with the given attribute lists (one span each).
fn read_starts(lists: &[Vec<(&str, String)>], options: ReaderOptions) -> Vec<Span> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("starts.otlp");
    let w = MmapWriter::create(&path, &FileConfig::default()).unwrap();
    for (id, list) in lists.iter().enumerate() {
        let attributes = list
            .iter()
            .map(|(k, v)| kv(w.intern_str(k).unwrap(), Value::StringValue(v.clone())))
            .collect();
        let s = Event::Start(proto::span_event::StartSpan {
            name: "op".into(),
            start_time_unix_nano: T,
            attributes,
            ..Default::default()
        });
        w.try_write(RingKind::Spans, &event(id as u8 + 1, s))
            .unwrap();
        let e = Event::End(proto::span_event::EndSpan {
            end_time_unix_nano: T + 1,
            status: None,
        });
        w.try_write(RingKind::Spans, &event(id as u8 + 1, e))
            .unwrap();
    }
    let mut r = FileReader::open(&path, options).unwrap();
    let mut spans = Vec::new();
    while let Some(b) = r.poll(Signal::Traces, T).unwrap() {
        let req = ExportTraceServiceRequest::decode(b.bytes).unwrap();
        let token = b.token;
        r.commit(Signal::Traces, token).unwrap();
        for rs in req.resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    spans
}

#[test]
fn a_cached_attribute_that_no_longer_fits_is_dropped_as_a_resolved_one() {
    let a = |k: &'static str, c: &str| (k, c.repeat(50));
    // The second and third spans meet k0 and k1 (cached by the first span)
    // after others that take their budget or their attribute slots; over a
    // range of budgets, some cut a cached attribute at its key, some at its
    // value, some not at all.
    let first = vec![a("k0", "0"), a("k1", "1")];
    let second = vec![a("k2", "2"), a("k3", "3"), a("k0", "0"), a("k1", "1")];
    let third = vec![a("k3", "3"), a("k1", "1")];
    let mut cut = 0;
    for max_span_attributes in [3, 128] {
        for max_record_bytes in (300..900).step_by(5) {
            let options = ReaderOptions {
                max_record_bytes,
                max_span_attributes,
                ..ReaderOptions::default()
            };
            let warm = read_starts(&[first.clone(), second.clone(), third.clone()], options);
            for (i, alone) in [(1, &second), (2, &third)] {
                let cold = read_starts(std::slice::from_ref(alone), options);
                let (w, c) = (&warm[i], &cold[0]);
                assert_eq!(w.attributes, c.attributes, "{options:?}");
                assert_eq!(w.dropped_attributes_count, c.dropped_attributes_count);
                cut += (w.dropped_attributes_count > 0) as usize;
            }
        }
    }
    assert!(cut > 0);
}

/// Reads log records with the given attribute lists (one record each):
/// the attributes of the records delivered, and how many went over budget.
fn read_logs(lists: &[Vec<(&str, String)>], options: ReaderOptions) -> (Vec<Vec<KeyValue>>, u64) {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs.otlp");
    let w = MmapWriter::create(&path, &FileConfig::default()).unwrap();
    for list in lists {
        let attributes = list
            .iter()
            .map(|(k, v)| kv(w.intern_str(k).unwrap(), Value::StringValue(v.clone())))
            .collect();
        let ev = proto::Event {
            time_unix_nano: T,
            severity_number: 9,
            attributes,
            ..Default::default()
        };
        w.try_write(RingKind::Events, &ev).unwrap();
    }
    let mut r = FileReader::open(&path, options).unwrap();
    let mut records = Vec::new();
    while let Some(b) = r.poll(Signal::Logs, T).unwrap() {
        let req = ExportLogsServiceRequest::decode(b.bytes).unwrap();
        let token = b.token;
        r.commit(Signal::Logs, token).unwrap();
        for rl in req.resource_logs {
            for sl in rl.scope_logs {
                records.extend(sl.log_records.into_iter().map(|l| l.attributes));
            }
        }
    }
    (records, r.stats().oversized_records[Signal::Logs as usize])
}

#[test]
fn repeated_log_attributes_come_out_as_resolved() {
    let a = |k: &'static str, c: &str| (k, c.repeat(50));
    let list = vec![a("k0", "0"), a("k1", "1"), ("k2", String::new())];
    let (records, oversized) = read_logs(&vec![list; 20], ReaderOptions::default());
    assert_eq!((records.len(), oversized), (20, 0));
    let want = vec![
        otlp("k0", any_value::Value::StringValue("0".repeat(50))),
        otlp("k1", any_value::Value::StringValue("1".repeat(50))),
        otlp("k2", any_value::Value::StringValue(String::new())),
    ];
    assert!(records.iter().all(|r| *r == want));
    // Over a range of budgets, a record meeting cached attributes after
    // others is kept or dropped as a record resolved from scratch is.
    let first = vec![a("k0", "0"), a("k1", "1")];
    let second = vec![a("k2", "2"), a("k3", "3"), a("k0", "0"), a("k1", "1")];
    let mut dropped = 0;
    for max_record_bytes in (100..700).step_by(10) {
        let options = ReaderOptions {
            max_record_bytes,
            ..ReaderOptions::default()
        };
        let (warm, warm_over) = read_logs(&[first.clone(), second.clone()], options);
        let (alone, alone_over) = read_logs(std::slice::from_ref(&first), options);
        let (cold, cold_over) = read_logs(std::slice::from_ref(&second), options);
        assert_eq!(warm_over, alone_over + cold_over, "{max_record_bytes}");
        let mut want = alone;
        want.extend(cold);
        assert_eq!(warm, want, "{max_record_bytes}");
        dropped += cold_over;
    }
    assert!(dropped > 0);
}
