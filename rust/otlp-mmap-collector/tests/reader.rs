//! FileReader behaviour on files written by our own writer: golden output for
//! every signal and every metric kind, back-pressure and re-offers, the
//! incomplete-span path, and bounded memory with a million spans that never end.

use std::path::{Path, PathBuf};

use otlp_mmap_collector::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otlp_mmap_collector::{
    DumpOptions, FileReader, INCOMPLETE_ATTRIBUTE, ReaderOptions, Signal, dump,
};
use otlp_mmap_core::proto::{self, any_value::Value, metric_ref::Aggregation, span_event::Event};
use otlp_mmap_core::{FileConfig, MmapWriter, RingConfig, RingKind};
use prost::Message;

const START: u64 = 1_700_000_000_000_000_000;

fn kv(w: &MmapWriter, k: &str, v: Value) -> proto::KeyValueRef {
    proto::KeyValueRef {
        key_ref: w.intern_str(k).unwrap(),
        value: Some(proto::AnyValue { value: Some(v) }),
    }
}

fn small_rings(slots: u64) -> FileConfig {
    let ring = RingConfig {
        num_buffers: slots,
        buffer_size: 512,
    };
    FileConfig {
        events: ring,
        spans: ring,
        measurements: ring,
        ..FileConfig::default()
    }
}

fn scope(w: &MmapWriter) -> i64 {
    let resource = proto::Resource {
        attributes: vec![kv(w, "service.name", Value::StringValue("golden".into()))],
        dropped_attributes_count: 0,
    };
    w.intern_message(&proto::InstrumentationScope {
        name_ref: w.intern_str("golden.scope").unwrap(),
        version_ref: w.intern_str("1.0.0").unwrap(),
        resource_ref: w.intern_message(&resource).unwrap(),
        ..Default::default()
    })
    .unwrap()
}

fn start_event(w: &MmapWriter, scope: i64, i: u64, name: &str) -> proto::SpanEvent {
    proto::SpanEvent {
        trace_id: [[0x11; 8], i.to_be_bytes()].concat(),
        span_id: (i + 1).to_be_bytes().to_vec(),
        scope_ref: scope,
        event: Some(Event::Start(proto::span_event::StartSpan {
            name: name.into(),
            kind: 2,
            start_time_unix_nano: START + i,
            attributes: vec![kv(w, "index", Value::IntValue(i as i64))],
            flags: 1,
            ..Default::default()
        })),
    }
}

fn end_event(scope: i64, i: u64) -> proto::SpanEvent {
    proto::SpanEvent {
        trace_id: [[0x11; 8], i.to_be_bytes()].concat(),
        span_id: (i + 1).to_be_bytes().to_vec(),
        scope_ref: scope,
        event: Some(Event::End(proto::span_event::EndSpan {
            end_time_unix_nano: START + i + 10,
            status: None,
        })),
    }
}

/// A file with every signal and every metric kind, fully deterministic.
fn golden_file(path: &Path) {
    let w = MmapWriter::create_with_start_time(path, &small_rings(256), START).unwrap();
    let scope = scope(&w);
    for i in 0..3 {
        w.try_write(
            RingKind::Spans,
            &start_event(&w, scope, i, &format!("span {i}")),
        )
        .unwrap();
    }
    let rename = proto::SpanEvent {
        event: Some(Event::Name(proto::span_event::ChangeSpanName {
            name: "renamed".into(),
        })),
        ..start_event(&w, scope, 1, "")
    };
    w.try_write(RingKind::Spans, &rename).unwrap();
    let update = proto::SpanEvent {
        event: Some(Event::Attributes(proto::span_event::UpdateAttributes {
            attributes: vec![
                kv(&w, "index", Value::StringValue("one".into())),
                kv(&w, "late", Value::BoolValue(true)),
            ],
        })),
        ..start_event(&w, scope, 1, "")
    };
    w.try_write(RingKind::Spans, &update).unwrap();
    for i in 0..2 {
        w.try_write(RingKind::Spans, &end_event(scope, i)).unwrap();
    }
    // Span 2 never ends.
    for i in 0..3u64 {
        let ev = proto::Event {
            scope_ref: scope,
            time_unix_nano: START + 100 + i,
            severity_number: 9 + i as i32,
            severity_text: "INFO".into(),
            body: Some(proto::AnyValue {
                value: Some(Value::StringValue(format!("log {i}"))),
            }),
            event_name_ref: if i == 0 {
                w.intern_str("golden.event").unwrap()
            } else {
                0
            },
            span_context: (i == 1).then(|| proto::SpanContext {
                span_id: 1u64.to_be_bytes().to_vec(),
                trace_id: [[0x11; 8], 0u64.to_be_bytes()].concat(),
                flags: 1,
            }),
            attributes: vec![kv(&w, "index", Value::IntValue(i as i64))],
        };
        w.try_write(RingKind::Events, &ev).unwrap();
    }
    let metric = |name: &str, aggregation: Aggregation| {
        w.intern_message(&proto::MetricRef {
            name: name.into(),
            description: format!("{name} description"),
            unit: "1".into(),
            instrumentation_scope_ref: scope,
            aggregation: Some(aggregation),
        })
        .unwrap()
    };
    let kinds = [
        metric(
            "sum.cumulative",
            Aggregation::Sum(proto::metric_ref::Sum {
                aggregation_temporality: 2,
                is_monotonic: true,
            }),
        ),
        metric(
            "sum.delta.updown",
            Aggregation::Sum(proto::metric_ref::Sum {
                aggregation_temporality: 1,
                is_monotonic: false,
            }),
        ),
        metric("gauge", Aggregation::Gauge(proto::metric_ref::Gauge {})),
        metric(
            "histogram",
            Aggregation::Histogram(proto::metric_ref::Histogram {
                aggregation_temporality: 2,
                bucket_boundaries: vec![1.0, 5.0, 10.0],
            }),
        ),
        metric(
            "exponential",
            Aggregation::ExpHist(proto::metric_ref::ExponentialHistogram {
                aggregation_temporality: 2,
                max_buckets: 8,
                max_scale: 3,
            }),
        ),
    ];
    for (k, metric_ref) in kinds.into_iter().enumerate() {
        for (j, v) in [1.0, 5.0, 7.5, -2.0, 0.0, 12.0].into_iter().enumerate() {
            let value = if k == 0 {
                proto::measurement::Value::AsLong(j as i64 + 1)
            } else {
                proto::measurement::Value::AsDouble(v)
            };
            let m = proto::Measurement {
                metric_ref,
                attributes: vec![kv(&w, "set", Value::StringValue(["a", "b"][j % 2].into()))],
                time_unix_nano: START + 200 + j as u64,
                value: Some(value),
                span_context: (j == 5).then(|| proto::SpanContext {
                    span_id: 1u64.to_be_bytes().to_vec(),
                    trace_id: [[0x11; 8], 0u64.to_be_bytes()].concat(),
                    flags: 1,
                }),
            };
            w.try_write(RingKind::Measurements, &m).unwrap();
        }
    }
}

/// The dump as JSON with the reader-clock fields (observed time, collection
/// time, incomplete end time) masked.
fn normalized_json(path: &Path, include_incomplete: bool) -> String {
    let d = dump(
        path,
        DumpOptions {
            include_incomplete,
            ..DumpOptions::default()
        },
    )
    .unwrap();
    let mut out = String::new();
    for line in d.to_json_lines().unwrap().lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        mask(&mut v);
        out.push_str(&serde_json::to_string_pretty(&v).unwrap());
        out.push('\n');
    }
    out
}

fn mask(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            let incomplete = m
                .get("attributes")
                .map(|a| a.to_string().contains(INCOMPLETE_ATTRIBUTE))
                .unwrap_or(false);
            for (k, x) in m.iter_mut() {
                let reader_clock = k == "observedTimeUnixNano"
                    || (k == "timeUnixNano"
                        && x.as_str()
                            .is_some_and(|s| s.parse::<u64>().unwrap_or(0) > START + 1_000_000))
                    || (k == "endTimeUnixNano" && incomplete);
                if reader_clock {
                    *x = serde_json::Value::String("<reader clock>".into());
                } else {
                    mask(x);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(mask),
        _ => {}
    }
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/golden")
        .join(name)
}

fn check_golden(name: &str, got: &str) {
    let path = golden_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        want == got,
        "{} differs from the reader's output (UPDATE_GOLDEN=1 rewrites it):\n{got}",
        path.display()
    );
}

#[test]
fn golden_output_for_every_signal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("golden.otlp");
    golden_file(&path);
    check_golden("all-signals.json", &normalized_json(&path, false));
    check_golden(
        "all-signals-with-incomplete.json",
        &normalized_json(&path, true),
    );
}

#[test]
fn refused_batches_are_offered_again_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create(&path, &small_rings(64)).unwrap();
    let scope = scope(&w);
    let mut r = FileReader::open(
        &path,
        ReaderOptions {
            max_batch_spans: 10,
            ..ReaderOptions::default()
        },
    )
    .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let mut written = 0u64;
    let mut full = 0;
    while written < 500 {
        // Write until the ring is full: the reader holds a refused batch and reads nothing more.
        while w
            .try_write(RingKind::Spans, &start_event(&w, scope, written, "s"))
            .is_ok()
        {
            if w.try_write(RingKind::Spans, &end_event(scope, written))
                .is_err()
            {
                break;
            }
            written += 1;
        }
        full += 1;
        let first = r
            .poll(Signal::Traces, 0)
            .unwrap()
            .map(|b| (b.token, b.bytes.to_vec()));
        let Some((token, bytes)) = first else {
            continue;
        };
        // Refused twice: the same batch comes back, nothing new is read meanwhile.
        for _ in 0..2 {
            let again = r.poll(Signal::Traces, 0).unwrap().unwrap();
            assert_eq!((again.token, again.bytes), (token, bytes.as_slice()));
        }
        r.commit(Signal::Traces, token).unwrap();
        assert!(
            r.commit(Signal::Traces, token).is_err(),
            "double commit is refused"
        );
        let req = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        for span in req
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
        {
            assert!(seen.insert(span.span_id.clone()), "duplicate span");
        }
    }
    // Drain the rest.
    while let Some(b) = r.poll(Signal::Traces, 0).unwrap() {
        let (token, bytes) = (b.token, b.bytes.to_vec());
        r.commit(Signal::Traces, token).unwrap();
        let req = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        for span in req
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
        {
            assert!(seen.insert(span.span_id.clone()), "duplicate span");
        }
    }
    assert!(full > 1, "the ring filled up while batches were refused");
    // A span whose end did not fit (ring full) stays open; every completed one arrived once.
    assert!(
        seen.len() as u64 >= written && seen.len() as u64 <= written + 1,
        "{} of {written}",
        seen.len()
    );
}

#[test]
fn a_million_never_ended_spans_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create(&path, &small_rings(4096)).unwrap();
    let scope = scope(&w);
    const LIMIT: usize = 10_000;
    const SPANS: u64 = 1_000_000;
    let mut r = FileReader::open(
        &path,
        ReaderOptions {
            max_in_flight_spans: LIMIT,
            max_batch_spans: 4096,
            ..ReaderOptions::default()
        },
    )
    .unwrap();
    // One encoded StartSpan, patched per span (only the ids change): keeps the test fast.
    let template = start_event(&w, scope, 0, "never ends").encode_to_vec();
    let id_at = template
        .windows(16)
        .position(|x| x == [[0x11; 8], 0u64.to_be_bytes()].concat())
        .unwrap();
    let sid_at = template
        .windows(8)
        .position(|x| x == 1u64.to_be_bytes())
        .unwrap();
    let mut emitted = 0u64;
    let mut max_in_flight = 0;
    let mut i = 0u64;
    while i < SPANS || emitted < SPANS - LIMIT as u64 {
        while i < SPANS {
            let ok = w.try_write_with(RingKind::Spans, template.len(), |slot| {
                slot.copy_from_slice(&template);
                slot[id_at + 8..id_at + 16].copy_from_slice(&i.to_be_bytes());
                slot[sid_at..sid_at + 8].copy_from_slice(&(i + 1).to_be_bytes());
                slot.len()
            });
            if ok.is_err() {
                break;
            }
            i += 1;
        }
        while let Some(b) = r.poll(Signal::Traces, 0).unwrap() {
            emitted += b.items;
            let t = b.token;
            r.commit(Signal::Traces, t).unwrap();
        }
        max_in_flight = max_in_flight.max(r.stats().in_flight_spans);
    }
    assert_eq!(max_in_flight, LIMIT as u64);
    assert_eq!(
        emitted,
        SPANS - LIMIT as u64,
        "every evicted span is emitted as incomplete"
    );
    assert_eq!(r.stats().incomplete_spans, emitted);
    // The rest come out when the reader gives up on them.
    r.abandon_spans(1);
    let mut rest = 0;
    while let Some(b) = r.poll(Signal::Traces, 0).unwrap() {
        rest += b.items;
        let t = b.token;
        r.commit(Signal::Traces, t).unwrap();
    }
    assert_eq!(rest, LIMIT as u64);
    assert_eq!(r.stats().in_flight_spans, 0);
}

#[test]
fn cumulative_series_restart_with_a_new_start_time_after_a_reader_restart() {
    use otlp_mmap_collector::opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use otlp_mmap_collector::opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.otlp");
    let w = MmapWriter::create_with_start_time(&path, &small_rings(64), START).unwrap();
    let scope = scope(&w);
    let counter = w
        .intern_message(&proto::MetricRef {
            name: "c".into(),
            instrumentation_scope_ref: scope,
            aggregation: Some(Aggregation::Sum(proto::metric_ref::Sum {
                aggregation_temporality: 2,
                is_monotonic: true,
            })),
            ..Default::default()
        })
        .unwrap();
    let add = |v| {
        let m = proto::Measurement {
            metric_ref: counter,
            value: Some(proto::measurement::Value::AsLong(v)),
            ..Default::default()
        };
        w.try_write(RingKind::Measurements, &m).unwrap();
    };
    let collect = |r: &mut FileReader| -> (u64, i64) {
        r.poll(Signal::Metrics, 0).unwrap();
        r.collect_metrics(START + 1_000);
        let b = r.poll(Signal::Metrics, 0).unwrap().unwrap();
        let req = ExportMetricsServiceRequest::decode(b.bytes).unwrap();
        let t = b.token;
        r.commit(Signal::Metrics, t).unwrap();
        let Some(Data::Sum(sum)) = &req.resource_metrics[0].scope_metrics[0].metrics[0].data else {
            panic!("a sum")
        };
        let p = &sum.data_points[0];
        let v = match p.value {
            Some(otlp_mmap_collector::opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(i)) => i,
            other => panic!("{other:?}"),
        };
        (p.start_time_unix_nano, v)
    };
    add(5);
    let mut first = FileReader::open(&path, ReaderOptions::default()).unwrap();
    assert_eq!(
        collect(&mut first),
        (START, 5),
        "a fresh stream starts at the file's start time"
    );
    drop(first);
    add(7);
    let mut second = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let (start, value) = collect(&mut second);
    assert_eq!(value, 7, "the restarted reader counts from zero");
    assert!(start > START, "and says so with a new start time");
}

/// Records the reader drops for what they are (a span event with a short id, a
/// measurement of an unknown metric, a measurement without a value) are
/// counted in `stats()`, and the good records around them still arrive.
#[test]
fn dropped_records_are_reported_in_stats() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drops.otlp");
    let w = MmapWriter::create_with_start_time(&path, &small_rings(64), START).unwrap();
    let scope = scope(&w);
    let short_id = proto::SpanEvent {
        trace_id: vec![1, 2, 3],
        ..start_event(&w, scope, 0, "short trace id")
    };
    w.try_write(RingKind::Spans, &short_id).unwrap();
    w.try_write(RingKind::Spans, &start_event(&w, scope, 1, "good"))
        .unwrap();
    w.try_write(RingKind::Spans, &end_event(scope, 1)).unwrap();

    let gauge = w
        .intern_message(&proto::MetricRef {
            name: "g".into(),
            instrumentation_scope_ref: scope,
            aggregation: Some(Aggregation::Gauge(proto::metric_ref::Gauge {})),
            ..Default::default()
        })
        .unwrap();
    let measurement = |metric_ref, value| proto::Measurement {
        metric_ref,
        time_unix_nano: START + 1,
        value,
        ..Default::default()
    };
    let long = |v| Some(proto::measurement::Value::AsLong(v));
    for m in [
        measurement(gauge, long(7)),
        measurement(gauge, None),
        measurement(gauge, None),
        measurement(0, long(1)),
    ] {
        w.try_write(RingKind::Measurements, &m).unwrap();
    }

    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let b = r.poll(Signal::Traces, START + 10).unwrap().unwrap();
    let (token, bytes) = (b.token, b.bytes.to_vec());
    r.commit(Signal::Traces, token).unwrap();
    let req = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
    let names: Vec<_> = req
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["good"]);
    assert!(r.poll(Signal::Metrics, START + 10).unwrap().is_none());

    let st = r.stats();
    assert_eq!(st.invalid_span_ids, 1);
    assert_eq!(st.measurements_without_value, 2);
    assert_eq!(st.unknown_metric_measurements, 1);
    assert_eq!(st.measurements_over_metric_limit, 0);
}
