//! Every record the collector drops for good is counted in `ReaderStats`
//! (issue 12, item 8), and two shapes the reference Java writer produces are
//! read as the spec asks (item 9): a slot published with all-zero bytes is a
//! corrupt record, and all-zero span context ids are no exemplar.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data};
use otlp_mmap_collector::{
    CollectOutcome, DictionaryCache, FileReader, MetricAggregator, ReaderOptions, ReaderStats,
    Signal,
};
use otlp_mmap_core::proto::{self, metric_ref::Aggregation, span_event::Event};
use otlp_mmap_core::{FileConfig, MmapWriter, RingKind};
use prost::Message;

const T: u64 = 1_700_000_000_000_000_000;

fn writer(dir: &tempfile::TempDir, name: &str) -> (std::path::PathBuf, MmapWriter) {
    let path = dir.path().join(name);
    let w = MmapWriter::create(&path, &FileConfig::default()).unwrap();
    (path, w)
}

/// Publishes a slot whose message is empty: what the reference Java writer
/// leaves when a record did not fit (the slot's bytes are all zero).
fn zero_slot(w: &MmapWriter, kind: RingKind) {
    w.try_write_with(kind, 0, |_| 0).unwrap();
}

fn span_event(id: u8, event: Event) -> proto::SpanEvent {
    proto::SpanEvent {
        trace_id: vec![7; 16],
        span_id: vec![id; 8],
        scope_ref: 0,
        event: Some(event),
    }
}

fn start(id: u8, name: &str) -> proto::SpanEvent {
    span_event(
        id,
        Event::Start(proto::span_event::StartSpan {
            name: name.into(),
            start_time_unix_nano: T,
            ..Default::default()
        }),
    )
}

fn end(id: u8) -> proto::SpanEvent {
    span_event(
        id,
        Event::End(proto::span_event::EndSpan {
            end_time_unix_nano: T + 1,
            status: None,
        }),
    )
}

fn spans(r: &mut FileReader) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
    let mut out = Vec::new();
    while let Some(b) = r.poll(Signal::Traces, T).unwrap() {
        let req = ExportTraceServiceRequest::decode(b.bytes).unwrap();
        let token = b.token;
        r.commit(Signal::Traces, token).unwrap();
        for rs in req.resource_spans {
            for ss in rs.scope_spans {
                out.extend(ss.spans);
            }
        }
    }
    out
}

fn logs(r: &mut FileReader) -> Vec<opentelemetry_proto::tonic::logs::v1::LogRecord> {
    let mut out = Vec::new();
    while let Some(b) = r.poll(Signal::Logs, T).unwrap() {
        let req = ExportLogsServiceRequest::decode(b.bytes).unwrap();
        let token = b.token;
        r.commit(Signal::Logs, token).unwrap();
        for rl in req.resource_logs {
            for sl in rl.scope_logs {
                out.extend(sl.log_records);
            }
        }
    }
    out
}

/// Ingests every measurement, collects, and returns the metrics.
fn metrics(r: &mut FileReader) -> Vec<Metric> {
    loop {
        let before = r.records_consumed(Signal::Metrics);
        r.poll(Signal::Metrics, T).unwrap();
        if r.records_consumed(Signal::Metrics) == before {
            break;
        }
    }
    if !matches!(r.collect_metrics(T + 10), CollectOutcome::Collected(_)) {
        return Vec::new();
    }
    let b = r.poll(Signal::Metrics, T + 10).unwrap().expect("collected");
    let req = ExportMetricsServiceRequest::decode(b.bytes).unwrap();
    let token = b.token;
    r.commit(Signal::Metrics, token).unwrap();
    req.resource_metrics
        .into_iter()
        .flat_map(|rm| rm.scope_metrics)
        .flat_map(|sm| sm.metrics)
        .collect()
}

fn metric(w: &MmapWriter, name: &str, aggregation: Aggregation) -> i64 {
    w.intern_message(&proto::MetricRef {
        name: name.into(),
        aggregation: Some(aggregation),
        ..Default::default()
    })
    .unwrap()
}

fn gauge(w: &MmapWriter) -> i64 {
    metric(w, "gauge", Aggregation::Gauge(proto::metric_ref::Gauge {}))
}

fn measure(
    w: &MmapWriter,
    metric_ref: i64,
    value: Option<f64>,
    span_context: Option<proto::SpanContext>,
) {
    let m = proto::Measurement {
        metric_ref,
        time_unix_nano: T,
        value: value.map(proto::measurement::Value::AsDouble),
        span_context,
        ..Default::default()
    };
    w.try_write(RingKind::Measurements, &m).unwrap();
}

/// Records dropped for good, whatever the reason.
fn drops(st: &ReaderStats) -> u64 {
    st.corrupt_records.iter().sum::<u64>()
        + st.oversized_records[Signal::Logs as usize]
        + st.oversized_records[Signal::Metrics as usize]
        + st.invalid_span_ids
        + st.unknown_metric_measurements
        + st.measurements_without_value
        + st.measurements_over_metric_limit
}

/// The rule: a published slot whose message is empty (length prefix 0, as
/// in an all-zero slot) is a corrupt record in every ring; the records
/// around it are delivered.
#[test]
fn an_all_zero_slot_is_a_corrupt_record_in_every_ring() {
    let dir = tempfile::tempdir().unwrap();
    let (path, w) = writer(&dir, "zero.otlp");
    w.try_write(RingKind::Spans, &start(1, "s")).unwrap();
    zero_slot(&w, RingKind::Spans);
    w.try_write(RingKind::Spans, &end(1)).unwrap();
    for i in 0..2 {
        let ev = proto::Event {
            time_unix_nano: T + i,
            severity_text: "INFO".into(),
            ..Default::default()
        };
        w.try_write(RingKind::Events, &ev).unwrap();
        if i == 0 {
            zero_slot(&w, RingKind::Events);
        }
    }
    let g = gauge(&w);
    measure(&w, g, Some(1.0), None);
    zero_slot(&w, RingKind::Measurements);
    measure(&w, g, Some(2.0), None);

    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let got = spans(&mut r);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].name, "s");
    let got = logs(&mut r);
    assert_eq!(
        got.iter().map(|l| l.time_unix_nano).collect::<Vec<_>>(),
        [T, T + 1],
        "no empty record (time 0) among them"
    );
    let got = metrics(&mut r);
    let Some(Data::Gauge(g)) = &got[0].data else {
        panic!("{got:?}")
    };
    assert_eq!(
        g.data_points[0].value,
        Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(2.0))
    );
    let st = r.stats();
    assert_eq!(st.corrupt_records, [1, 1, 1]);
    assert_eq!(st.records_read, [2, 2, 2]);
    assert_eq!(drops(&st), 3);
}

/// The reference Java writer attaches an all-zero span context to every
/// synchronous measurement: zero ids are no span context, so no exemplar.
#[test]
fn all_zero_exemplar_ids_are_no_exemplar() {
    let ctx = |trace: u8, span: u8| proto::SpanContext {
        trace_id: vec![trace; 16],
        span_id: vec![span; 8],
        flags: 1,
    };
    let dir = tempfile::tempdir().unwrap();
    let (path, w) = writer(&dir, "exemplars.otlp");
    let g = gauge(&w);
    measure(&w, g, Some(1.0), Some(ctx(3, 4)));
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let got = metrics(&mut r);
    let Some(Data::Gauge(gauge)) = &got[0].data else {
        panic!("{got:?}")
    };
    let ex = &gauge.data_points[0].exemplars;
    assert_eq!(ex.len(), 1, "a valid span context is an exemplar");
    assert_eq!(
        (ex[0].trace_id.as_slice(), ex[0].span_id.as_slice()),
        (&[3; 16][..], &[4; 8][..])
    );

    for (trace, span) in [(0, 0), (0, 4), (3, 0)] {
        measure(&w, g, Some(1.0), Some(ctx(trace, span)));
        let got = metrics(&mut r);
        let Some(Data::Gauge(gauge)) = &got[0].data else {
            panic!("{got:?}")
        };
        assert!(
            gauge.data_points[0].exemplars.is_empty(),
            "ids {trace}/{span}: {:?}",
            gauge.data_points[0].exemplars
        );
    }
    assert_eq!(drops(&r.stats()), 0, "the measurements themselves count");
}

/// A StartSpan for a span already in flight is counted; the later start
/// replaces the earlier one.
#[test]
fn a_duplicate_start_span_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (path, w) = writer(&dir, "dup.otlp");
    for e in [
        start(1, "first"),
        start(1, "second"),
        end(1),
        start(1, "again"),
        end(1),
    ] {
        w.try_write(RingKind::Spans, &e).unwrap();
    }
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let got = spans(&mut r);
    assert_eq!(
        got.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["second", "again"],
        "a start after the end is a new span, not a duplicate"
    );
    let st = r.stats();
    assert_eq!(st.duplicate_span_starts, 1);
    assert_eq!(st.in_flight_spans, 0);
}

/// Span events whose ids have the wrong length are dropped and counted.
#[test]
fn invalid_span_ids_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (path, w) = writer(&dir, "ids.otlp");
    let mut bad = start(1, "bad");
    bad.trace_id = vec![1; 3];
    w.try_write(RingKind::Spans, &bad).unwrap();
    let mut bad = end(2);
    bad.span_id.clear();
    w.try_write(RingKind::Spans, &bad).unwrap();
    w.try_write(RingKind::Spans, &start(3, "good")).unwrap();
    w.try_write(RingKind::Spans, &end(3)).unwrap();
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    assert_eq!(spans(&mut r).len(), 1);
    let st = r.stats();
    assert_eq!(st.invalid_span_ids, 2);
    assert_eq!(drops(&st), 2);
}

/// Measurements the aggregator cannot take are dropped and each reason
/// is counted: an unresolvable metric, no value, a value the aggregation
/// refuses (NaN; infinity for an exponential histogram), a file whose
/// metrics hold max_metric_bytes.
#[test]
fn dropped_measurements_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (path, w) = writer(&dir, "measurements.otlp");
    let g = gauge(&w);
    let hist = metric(
        &w,
        "hist",
        Aggregation::Histogram(proto::metric_ref::Histogram {
            aggregation_temporality: 2,
            bucket_boundaries: vec![1.0],
        }),
    );
    let exp = metric(
        &w,
        "exp",
        Aggregation::ExpHist(proto::metric_ref::ExponentialHistogram {
            aggregation_temporality: 2,
            ..Default::default()
        }),
    );
    measure(&w, 1 << 40, Some(1.0), None);
    measure(&w, g, None, None);
    measure(&w, hist, Some(f64::NAN), None);
    measure(&w, exp, Some(f64::INFINITY), None);
    measure(&w, g, Some(1.0), None);
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    assert_eq!(metrics(&mut r).len(), 3);
    let st = r.stats();
    assert_eq!(st.records_read[Signal::Metrics as usize], 5);
    assert_eq!(st.unknown_metric_measurements, 1);
    assert_eq!(st.measurements_without_value, 3);
    assert_eq!(drops(&st), 4);
    drop(r);

    // Room for the gauge's definition and one series (as much as they take
    // in an aggregator of their own), not for another metric.
    let other = metric(&w, "other", Aggregation::Gauge(proto::metric_ref::Gauge {}));
    let file = otlp_mmap_core::MmapReader::open(&path, false).unwrap();
    let mut dict = DictionaryCache::default();
    let one = proto::Measurement {
        metric_ref: g,
        value: Some(proto::measurement::Value::AsDouble(1.0)),
        ..Default::default()
    };
    let mut agg = MetricAggregator::new(2000, 0);
    agg.record(&file, &mut dict, &one);
    let room = agg.bytes();
    assert!(room > 0);
    let mut agg = MetricAggregator::with_max_bytes(2000, 0, room);
    agg.record(&file, &mut dict, &one);
    agg.record(
        &file,
        &mut dict,
        &proto::Measurement {
            metric_ref: other,
            ..one.clone()
        },
    );
    assert_eq!(agg.counters.too_many_metrics, 1);
    assert_eq!(agg.series_count(), 1);

    measure(&w, g, Some(1.0), None);
    measure(&w, other, Some(1.0), None);
    let mut r = FileReader::open(
        &path,
        ReaderOptions {
            max_metric_bytes: room,
            ..ReaderOptions::default()
        },
    )
    .unwrap();
    let got = metrics(&mut r);
    assert_eq!(
        got.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["gauge"]
    );
    let st = r.stats();
    assert_eq!(st.measurements_over_metric_limit, 1);
    assert_eq!(
        drops(&st),
        1,
        "this reader starts after the records read above"
    );
}
