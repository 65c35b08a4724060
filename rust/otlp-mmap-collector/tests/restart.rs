//! What a Collector restart does to the state a reader holds: without
//! storage, the spans in flight at a graceful stop come out as incomplete
//! spans with the reason `collector stopping`. And when the file of a writer
//! that is gone may be removed (`delete_after_drain`).

mod common;

use common::{add, monotonic_counter};
use otlp_mmap_collector::file_reader::{NotRemoved, RemoveOutcome};
use otlp_mmap_collector::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otlp_mmap_collector::opentelemetry_proto::tonic::common::v1::any_value;
use otlp_mmap_collector::opentelemetry_proto::tonic::trace::v1::Span;
use otlp_mmap_collector::{
    CollectOutcome, FileReader, INCOMPLETE_ATTRIBUTE, INCOMPLETE_REASON_ATTRIBUTE, ReaderOptions,
    Signal,
};
use otlp_mmap_core::proto::{self, metric_ref::Aggregation, span_event::Event};
use otlp_mmap_core::{FileConfig, MmapWriter, RingKind};
use prost::Message;

const START: u64 = 1_700_000_000_000_000_000;

fn scope(w: &MmapWriter) -> i64 {
    let resource = w.intern_message(&proto::Resource::default()).unwrap();
    w.intern_message(&proto::InstrumentationScope {
        name_ref: w.intern_str("restart").unwrap(),
        resource_ref: resource,
        ..Default::default()
    })
    .unwrap()
}

fn ids(i: u64) -> (Vec<u8>, Vec<u8>) {
    (
        [[0x22; 8], i.to_be_bytes()].concat(),
        (i + 1).to_be_bytes().to_vec(),
    )
}

fn start(scope: i64, i: u64) -> proto::SpanEvent {
    let (trace_id, span_id) = ids(i);
    proto::SpanEvent {
        trace_id,
        span_id,
        scope_ref: scope,
        event: Some(Event::Start(proto::span_event::StartSpan {
            name: format!("span {i}"),
            start_time_unix_nano: START + i,
            ..Default::default()
        })),
    }
}

fn end(scope: i64, i: u64) -> proto::SpanEvent {
    let (trace_id, span_id) = ids(i);
    proto::SpanEvent {
        trace_id,
        span_id,
        scope_ref: scope,
        event: Some(Event::End(proto::span_event::EndSpan {
            end_time_unix_nano: START + i + 10,
            status: None,
        })),
    }
}

/// Every span the reader emits, polled and committed until nothing is left.
fn drain_spans(r: &mut FileReader, now: u64) -> Vec<Span> {
    let mut out = Vec::new();
    while let Some(b) = r.poll(Signal::Traces, now).unwrap() {
        let req = ExportTraceServiceRequest::decode(b.bytes).unwrap();
        let token = b.token;
        for rs in req.resource_spans {
            for ss in rs.scope_spans {
                out.extend(ss.spans);
            }
        }
        r.commit(Signal::Traces, token).unwrap();
    }
    out
}

fn string_attr(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

#[test]
fn stopping_without_storage_emits_the_spans_in_flight_as_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    for i in 0..5 {
        w.try_write(RingKind::Spans, &start(scope, i)).unwrap();
    }
    for i in 0..2 {
        w.try_write(RingKind::Spans, &end(scope, i)).unwrap();
    }
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let ended = drain_spans(&mut r, START + 100);
    assert_eq!(ended.len(), 2);
    assert_eq!(r.stats().in_flight_spans, 3);

    assert_eq!(r.stop_spans(START + 200), 3);
    let stopped = drain_spans(&mut r, START + 200);
    let mut names: Vec<_> = stopped.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["span 2", "span 3", "span 4"]);
    for s in &stopped {
        assert!(
            s.attributes.iter().any(|a| a.key == INCOMPLETE_ATTRIBUTE),
            "{s:?}"
        );
        assert_eq!(
            string_attr(s, INCOMPLETE_REASON_ATTRIBUTE).as_deref(),
            Some("collector stopping")
        );
        assert_eq!(s.end_time_unix_nano, START + 200);
    }
    let st = r.stats();
    assert_eq!(st.incomplete_spans, 3);
    assert_eq!(st.in_flight_spans, 0);
    // A span started after the stop is left in the ring for the next
    // reader, not taken in flight and lost.
    w.try_write(RingKind::Spans, &start(scope, 9)).unwrap();
    assert!(drain_spans(&mut r, START + 300).is_empty());
    assert_eq!(r.stats().in_flight_spans, 0);
    assert_eq!(r.stop_spans(START + 300), 0);
    drop(r);
    let mut next = FileReader::open(&path, ReaderOptions::default()).unwrap();
    w.try_write(RingKind::Spans, &end(scope, 9)).unwrap();
    let later = drain_spans(&mut next, START + 400);
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].name, "span 9");
}

const ALL: [Signal; 3] = [Signal::Traces, Signal::Logs, Signal::Metrics];

fn kept(why: NotRemoved) -> Result<(), RemoveOutcome> {
    Err(RemoveOutcome::Kept(why))
}

/// Polls and commits every pending batch of a signal.
fn deliver(r: &mut FileReader, signal: Signal, now: u64) -> u64 {
    let mut items = 0;
    while let Some(b) = r.poll(signal, now).unwrap() {
        items += b.items;
        let token = b.token;
        r.commit(signal, token).unwrap();
    }
    items
}

#[test]
fn a_dead_writers_file_is_removed_only_once_everything_in_it_was_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    let counter = monotonic_counter(&w, scope, "c");
    w.try_write(RingKind::Spans, &start(scope, 0)).unwrap();
    w.try_write(RingKind::Spans, &start(scope, 1)).unwrap();
    w.try_write(RingKind::Spans, &end(scope, 0)).unwrap();
    let log = proto::Event {
        scope_ref: scope,
        body: Some(proto::AnyValue {
            value: Some(proto::any_value::Value::StringValue("hello".into())),
        }),
        ..Default::default()
    };
    w.try_write(RingKind::Events, &log).unwrap();
    let m = proto::Measurement {
        metric_ref: counter,
        value: Some(proto::measurement::Value::AsLong(3)),
        ..Default::default()
    };
    w.try_write(RingKind::Measurements, &m).unwrap();

    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    // The writer is alive: the file stays whatever was delivered.
    assert_eq!(
        r.remove_if_drained(&ALL),
        kept(NotRemoved::NotDrained(Signal::Traces))
    );
    drop(w);
    let now = START + 1_000;
    // Gone, but nothing was delivered yet.
    r.poll(Signal::Logs, now).unwrap();
    assert_eq!(
        r.remove_if_drained(&[Signal::Logs]),
        kept(NotRemoved::NotDrained(Signal::Logs)),
        "a logs batch waits for its commit"
    );
    assert_eq!(deliver(&mut r, Signal::Logs, now), 1);
    assert_eq!(
        deliver(&mut r, Signal::Traces, now),
        2,
        "one span ended, the other given up"
    );
    assert_eq!(r.stats().writer_alive, 0);
    r.poll(Signal::Metrics, now).unwrap();
    assert_eq!(
        r.remove_if_drained(&ALL),
        kept(NotRemoved::NotDrained(Signal::Metrics)),
        "a measurement not collected yet"
    );
    assert_eq!(r.collect_metrics(now), CollectOutcome::Collected(1));
    assert_eq!(
        r.remove_if_drained(&ALL),
        kept(NotRemoved::NotDrained(Signal::Metrics)),
        "the collected batch is not committed yet"
    );
    assert_eq!(deliver(&mut r, Signal::Metrics, now), 1);
    assert!(path.exists());
    assert_eq!(r.remove_if_drained(&ALL), Ok(()));
    assert!(!path.exists());
    assert_eq!(
        r.remove_if_drained(&ALL),
        kept(NotRemoved::NotThisFile),
        "removed once"
    );
}

#[test]
fn a_file_whose_writer_was_never_seen_alive_or_that_was_replaced_stays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    drop(w);
    // Opened after its writer exited: the reader cannot tell a dead writer
    // from one that takes no lock.
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    deliver(&mut r, Signal::Logs, START);
    assert_eq!(
        r.remove_if_drained(&[Signal::Logs]),
        kept(NotRemoved::WriterNotKnownGone)
    );
    drop(r);

    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    drop(w);
    // Another writer's file now sits at the path.
    let other = dir.path().join("b.otlp");
    let _next =
        MmapWriter::create_with_start_time(&other, &FileConfig::default(), START + 1).unwrap();
    std::fs::rename(&other, &path).unwrap();
    deliver(&mut r, Signal::Logs, START);
    assert_eq!(
        r.remove_if_drained(&[Signal::Logs]),
        kept(NotRemoved::NotThisFile)
    );
    assert!(path.exists());
}

/// Collects and delivers the metrics: (start time, value) of the one series.
fn collect_sum(r: &mut FileReader, now: u64) -> (u64, i64) {
    use otlp_mmap_collector::opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use otlp_mmap_collector::opentelemetry_proto::tonic::metrics::v1::{
        metric::Data, number_data_point::Value,
    };
    r.poll(Signal::Metrics, now).unwrap();
    r.collect_metrics(now);
    let b = r
        .poll(Signal::Metrics, now)
        .unwrap()
        .expect("a metrics batch");
    let req = ExportMetricsServiceRequest::decode(b.bytes).unwrap();
    let token = b.token;
    r.commit(Signal::Metrics, token).unwrap();
    let Some(Data::Sum(sum)) = &req.resource_metrics[0].scope_metrics[0].metrics[0].data else {
        panic!("a sum")
    };
    assert_eq!(sum.data_points.len(), 1, "one series: {sum:?}");
    let p = &sum.data_points[0];
    let Some(Value::AsInt(v)) = p.value else {
        panic!("{p:?}")
    };
    (p.start_time_unix_nano, v)
}

#[test]
fn a_checkpoint_carries_spans_in_flight_and_cumulative_sums_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    let c = monotonic_counter(&w, scope, "c");
    for i in 0..5 {
        w.try_write(RingKind::Spans, &start(scope, i)).unwrap();
    }
    for i in 0..2 {
        w.try_write(RingKind::Spans, &end(scope, i)).unwrap();
    }
    add(&w, c, 5);

    let mut first = FileReader::open(&path, ReaderOptions::default()).unwrap();
    assert_eq!(drain_spans(&mut first, START + 100).len(), 2);
    assert_eq!(collect_sum(&mut first, START + 100), (START, 5));
    let checkpoint = first.checkpoint();
    drop(first);

    for i in 2..5 {
        w.try_write(RingKind::Spans, &end(scope, i)).unwrap();
    }
    add(&w, c, 7);
    let mut second = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let restored = second.restore(&checkpoint).unwrap();
    assert_eq!(
        (restored.in_flight_spans, restored.series, restored.refused),
        (3, 1, 0)
    );
    let spans = drain_spans(&mut second, START + 200);
    let mut names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["span 2", "span 3", "span 4"]);
    for s in &spans {
        assert!(s.attributes.is_empty(), "ended normally: {s:?}");
        let i: u64 = s.name[5..].parse().unwrap();
        assert_eq!(
            (s.start_time_unix_nano, s.end_time_unix_nano),
            (START + i, START + i + 10)
        );
    }
    assert_eq!(second.stats().orphan_span_events, 0);
    assert_eq!(
        collect_sum(&mut second, START + 200),
        (START, 12),
        "the cumulative sum goes on with its start time"
    );
}

#[test]
fn a_corrupt_foreign_or_stale_checkpoint_is_refused_and_changes_nothing() {
    use otlp_mmap_collector::file_reader::CheckpointRejected;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let other = dir.path().join("b.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let _w2 = MmapWriter::create_with_start_time(&other, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    w.try_write(RingKind::Spans, &start(scope, 0)).unwrap();
    let mut first = FileReader::open(&path, ReaderOptions::default()).unwrap();
    drain_spans(&mut first, START);
    let checkpoint = first.checkpoint();
    drop(first);

    let mut foreign = FileReader::open(&other, ReaderOptions::default()).unwrap();
    assert_eq!(
        foreign.restore(&checkpoint),
        Err(CheckpointRejected::OtherFile)
    );
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    assert_eq!(
        r.restore(b"\xff\xff not a checkpoint"),
        Err(CheckpointRejected::Corrupt)
    );
    let mut truncated = checkpoint.clone();
    truncated.truncate(checkpoint.len() - 3);
    assert_eq!(r.restore(&truncated), Err(CheckpointRejected::Corrupt));
    // The writer went on and this reader read it: the checkpoint is stale.
    w.try_write(RingKind::Spans, &end(scope, 0)).unwrap();
    assert_eq!(drain_spans(&mut r, START).len(), 1, "a start_missing span");
    assert_eq!(r.restore(&checkpoint), Err(CheckpointRejected::Stale));
    assert_eq!(r.stats().in_flight_spans, 0);
}

#[test]
fn holding_the_rings_until_a_checkpoint_is_stored_loses_nothing_in_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    for i in 0..4 {
        w.try_write(RingKind::Spans, &start(scope, i)).unwrap();
    }
    w.try_write(RingKind::Spans, &end(scope, 0)).unwrap();

    let mut first = FileReader::open(&path, ReaderOptions::default()).unwrap();
    first.set_hold_until_checkpoint(true);
    assert_eq!(drain_spans(&mut first, START).len(), 1);
    assert_eq!(
        first.stats().ring_unread[0],
        5,
        "held until a checkpoint is stored"
    );
    let stored = first.checkpoint();
    first.checkpoint_stored().unwrap();
    assert_eq!(first.stats().ring_unread[0], 0);
    // Read on past the stored checkpoint, take one more that is never
    // stored, and crash.
    w.try_write(RingKind::Spans, &end(scope, 1)).unwrap();
    assert_eq!(drain_spans(&mut first, START).len(), 1);
    let _never_stored = first.checkpoint();
    assert_eq!(first.stats().ring_unread[0], 1);
    drop(first);
    w.try_write(RingKind::Spans, &end(scope, 2)).unwrap();

    let mut second = FileReader::open(&path, ReaderOptions::default()).unwrap();
    second.set_hold_until_checkpoint(true);
    let restored = second.restore(&stored).unwrap();
    assert_eq!(restored.in_flight_spans, 3);
    let spans = drain_spans(&mut second, START);
    let mut names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    // Span 1 was delivered after the stored checkpoint: it comes again (the
    // duplicate a crash costs); span 2 ended while no Collector ran.
    assert_eq!(names, ["span 1", "span 2"]);
    assert!(spans.iter().all(|s| s.attributes.is_empty()));
    assert_eq!(second.stats().in_flight_spans, 1);
    assert_eq!(second.stats().orphan_span_events, 0);
}

#[test]
fn a_stopped_reader_reads_measurements_only_to_collect_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let c = monotonic_counter(&w, scope(&w), "c");
    add(&w, c, 5);
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    r.stop_measurements();
    add(&w, c, 7);
    r.poll(Signal::Metrics, START).unwrap();
    assert_eq!(r.stats().records_read[2], 0, "a poll reads nothing");
    assert_eq!(
        collect_sum(&mut r, START),
        (START, 12),
        "a collection reads all"
    );
    add(&w, c, 1);
    assert!(r.poll(Signal::Metrics, START).unwrap().is_none());
    assert_eq!(r.stats().ring_unread[2], 1, "left for the next reader");
}

/// A checkpoint is untrusted input: 2000 mutations of a valid one (bytes
/// flipped, cut short, spliced) are each refused or restored within the
/// limits, never a panic.
#[test]
fn mutated_checkpoints_are_refused_or_restored_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    let c = monotonic_counter(&w, scope, "c");
    for i in 0..20 {
        w.try_write(RingKind::Spans, &start(scope, i)).unwrap();
    }
    add(&w, c, 4);
    let mut first = FileReader::open(&path, ReaderOptions::default()).unwrap();
    drain_spans(&mut first, START);
    first.poll(Signal::Metrics, START).unwrap();
    let good = first.checkpoint();
    drop(first);

    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut restored, mut refused) = (0, 0);
    for _ in 0..2000 {
        let mut bytes = good.clone();
        match next() % 3 {
            0 => {
                for _ in 0..1 + next() % 8 {
                    let i = (next() as usize) % bytes.len();
                    bytes[i] ^= 1 << (next() % 8);
                }
            }
            1 => bytes.truncate((next() as usize) % bytes.len()),
            _ => {
                let from = (next() as usize) % bytes.len();
                let to = (next() as usize) % bytes.len();
                let chunk = bytes[from..].to_vec();
                bytes.truncate(to);
                bytes.extend_from_slice(&chunk);
            }
        }
        let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
        match r.restore(&bytes) {
            Ok(_) => {
                restored += 1;
                // Whatever came back stays within the limits and can be sent.
                let most = ReaderOptions::default().max_in_flight_spans as u64;
                assert!(r.stats().in_flight_spans <= most);
                drain_spans(&mut r, START + 1);
                r.collect_metrics(START + 1);
            }
            Err(_) => refused += 1,
        }
    }
    assert!(
        refused > 0 && restored > 0,
        "{refused} refused, {restored} restored"
    );
}

/// Histograms and gauges go on from a checkpoint too (same start time,
/// counts added to), and a restored series is adopted by the measurements of
/// its attributes rather than doubled.
#[test]
fn histograms_and_gauges_go_on_from_a_checkpoint() {
    use otlp_mmap_collector::opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use otlp_mmap_collector::opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    let histogram = w
        .intern_message(&proto::MetricRef {
            name: "h".into(),
            instrumentation_scope_ref: scope,
            aggregation: Some(Aggregation::Histogram(proto::metric_ref::Histogram {
                aggregation_temporality: 2,
                bucket_boundaries: vec![1.0, 10.0],
            })),
            ..Default::default()
        })
        .unwrap();
    let gauge = w
        .intern_message(&proto::MetricRef {
            name: "g".into(),
            instrumentation_scope_ref: scope,
            aggregation: Some(Aggregation::Gauge(proto::metric_ref::Gauge {})),
            ..Default::default()
        })
        .unwrap();
    let record = |metric_ref, v: f64| {
        let m = proto::Measurement {
            metric_ref,
            value: Some(proto::measurement::Value::AsDouble(v)),
            ..Default::default()
        };
        w.try_write(RingKind::Measurements, &m).unwrap();
    };
    record(histogram, 0.5);
    record(histogram, 5.0);
    record(gauge, 3.0);
    let mut first = FileReader::open(&path, ReaderOptions::default()).unwrap();
    first.poll(Signal::Metrics, START).unwrap();
    let checkpoint = first.checkpoint();
    drop(first);
    record(histogram, 50.0);

    let mut second = FileReader::open(&path, ReaderOptions::default()).unwrap();
    assert_eq!(second.restore(&checkpoint).unwrap().series, 2);
    second.poll(Signal::Metrics, START + 10).unwrap();
    second.collect_metrics(START + 10);
    let b = second.poll(Signal::Metrics, START + 10).unwrap().unwrap();
    let req = ExportMetricsServiceRequest::decode(b.bytes).unwrap();
    let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
    let h = metrics.iter().find(|m| m.name == "h").unwrap();
    let Some(Data::Histogram(h)) = &h.data else {
        panic!("{h:?}")
    };
    assert_eq!(h.data_points.len(), 1, "one series, not two: {h:?}");
    let p = &h.data_points[0];
    assert_eq!((p.start_time_unix_nano, p.count), (START, 3));
    assert_eq!(p.bucket_counts, [1, 1, 1]);
    assert_eq!((p.sum, p.min, p.max), (Some(55.5), Some(0.5), Some(50.0)));
    let g = metrics.iter().find(|m| m.name == "g").unwrap();
    let Some(Data::Gauge(g)) = &g.data else {
        panic!("{g:?}")
    };
    assert_eq!(g.data_points.len(), 1);
}

/// A checkpoint taken before the writer started over in place covers the
/// old stream: storing it releases nothing of the new stream.
#[test]
fn a_checkpoint_of_an_earlier_stream_releases_nothing_of_the_new_one() {
    use otlp_mmap_core::layout::header;
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    for i in 0..3 {
        w.try_write(RingKind::Spans, &start(scope, i)).unwrap();
    }
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    r.set_hold_until_checkpoint(true);
    drain_spans(&mut r, START);
    let _old = r.checkpoint();
    // The writer starts over in the same file (a new start time).
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_at(&(START + 1).to_le_bytes(), header::START_TIME)
        .unwrap();
    drain_spans(&mut r, START + 1);
    assert_eq!(r.stats().writer_restarts, 1);
    let unread = r.stats().ring_unread[0];
    assert!(unread > 0, "the new stream holds what it read");
    r.checkpoint_stored().unwrap();
    assert_eq!(
        r.stats().ring_unread[0],
        unread,
        "nothing released by the old checkpoint"
    );
}

/// The events of one span with attributes and a link, in two parts: what
/// comes before a restart and what comes after it.
fn span_with_attributes(
    w: &MmapWriter,
    scope: i64,
) -> (Vec<proto::SpanEvent>, Vec<proto::SpanEvent>) {
    use proto::any_value::Value;
    let kv = |key: &str, v: Value| proto::KeyValueRef {
        key_ref: w.intern_str(key).unwrap(),
        value: Some(proto::AnyValue { value: Some(v) }),
    };
    let (trace_id, span_id) = ids(40);
    let event = |e: Event| proto::SpanEvent {
        trace_id: trace_id.clone(),
        span_id: span_id.clone(),
        scope_ref: scope,
        event: Some(e),
    };
    let mut attributes: Vec<_> = (0..18)
        .map(|i| kv(&format!("k{i}"), Value::IntValue(i)))
        .collect();
    attributes.push(kv("s", Value::StringValue("before".into())));
    let before = vec![
        event(Event::Start(proto::span_event::StartSpan {
            name: "attributed".into(),
            start_time_unix_nano: START,
            attributes,
            ..Default::default()
        })),
        event(Event::Link(proto::span_event::AddLink {
            links: vec![proto::span_event::add_link::Link {
                trace_id: vec![9; 16],
                span_id: vec![9; 8],
                trace_state: "t=1".into(),
                attributes: vec![kv("l", Value::BoolValue(true))],
                ..Default::default()
            }],
        })),
    ];
    let after = vec![
        event(Event::Attributes(proto::span_event::UpdateAttributes {
            attributes: vec![
                kv("k3", Value::StringValue("replaced".into())),
                kv("s", Value::StringValue("after".into())),
                kv("new", Value::DoubleValue(1.5)),
            ],
        })),
        event(Event::End(proto::span_event::EndSpan {
            end_time_unix_nano: START + 10,
            status: None,
        })),
    ];
    (before, after)
}

#[test]
fn a_restored_span_takes_later_attribute_updates_as_if_never_restored() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, restart: bool| -> Vec<Span> {
        let path = dir.path().join(name);
        let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
        let scope = scope(&w);
        let (before, after) = span_with_attributes(&w, scope);
        for e in &before {
            w.try_write(RingKind::Spans, e).unwrap();
        }
        let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
        assert!(drain_spans(&mut r, START + 1).is_empty());
        if restart {
            let checkpoint = r.checkpoint();
            drop(r);
            r = FileReader::open(&path, ReaderOptions::default()).unwrap();
            let restored = r.restore(&checkpoint).unwrap();
            assert_eq!((restored.in_flight_spans, restored.refused), (1, 0));
        }
        for e in &after {
            w.try_write(RingKind::Spans, e).unwrap();
        }
        let spans = drain_spans(&mut r, START + 20);
        assert_eq!(r.stats().span_limit_drops, 0);
        spans
    };
    let straight = run("straight.otlp", false);
    let restored = run("restored.otlp", true);
    assert_eq!(straight.len(), 1);
    assert_eq!(restored, straight);
    let s = &restored[0];
    assert_eq!(string_attr(s, "k3").as_deref(), Some("replaced"));
    assert_eq!(string_attr(s, "s").as_deref(), Some("after"));
    assert_eq!(s.attributes.len(), 20);
    assert_eq!(
        s.attributes[3].key, "k3",
        "a replaced attribute keeps its place"
    );
    assert_eq!(s.links.len(), 1);
}

#[test]
fn a_restored_series_is_taken_up_again_at_the_cardinality_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    let c = monotonic_counter(&w, scope, "c");
    // One series and the overflow series.
    let options = ReaderOptions {
        metric_cardinality_limit: 2,
        ..ReaderOptions::default()
    };
    add(&w, c, 5);
    let mut first = FileReader::open(&path, options).unwrap();
    assert_eq!(collect_sum(&mut first, START + 100), (START, 5));
    let checkpoint = first.checkpoint();
    drop(first);

    add(&w, c, 7);
    let mut second = FileReader::open(&path, options).unwrap();
    assert_eq!(second.restore(&checkpoint).unwrap().series, 1);
    assert_eq!(
        collect_sum(&mut second, START + 200),
        (START, 12),
        "the measurement goes on in the restored series, not in the overflow series"
    );
}

#[test]
fn an_exponential_histogram_goes_on_from_a_checkpoint() {
    use otlp_mmap_collector::opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use otlp_mmap_collector::opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogramDataPoint, metric::Data,
    };
    let dir = tempfile::tempdir().unwrap();
    // The same values with a restart in the middle, and without.
    let run = |name: &str, restart: bool| -> ExponentialHistogramDataPoint {
        let path = dir.path().join(name);
        let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
        let scope = scope(&w);
        let histogram = w
            .intern_message(&proto::MetricRef {
                name: "e".into(),
                instrumentation_scope_ref: scope,
                aggregation: Some(Aggregation::ExpHist(
                    proto::metric_ref::ExponentialHistogram {
                        aggregation_temporality: 2,
                        max_buckets: 8,
                        max_scale: 4,
                    },
                )),
                ..Default::default()
            })
            .unwrap();
        let record = |v: f64| {
            let m = proto::Measurement {
                metric_ref: histogram,
                value: Some(proto::measurement::Value::AsDouble(v)),
                ..Default::default()
            };
            w.try_write(RingKind::Measurements, &m).unwrap();
        };
        for v in [0.0, 1.5, 3.0, -2.0, 7.0] {
            record(v);
        }
        let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
        r.poll(Signal::Metrics, START).unwrap();
        if restart {
            let checkpoint = r.checkpoint();
            drop(r);
            r = FileReader::open(&path, ReaderOptions::default()).unwrap();
            let restored = r.restore(&checkpoint).unwrap();
            assert_eq!((restored.series, restored.refused), (1, 0));
        }
        // Wide enough to lower the scale after the restart.
        for v in [100.0, 5000.0, 0.25] {
            record(v);
        }
        r.poll(Signal::Metrics, START + 10).unwrap();
        r.collect_metrics(START + 10);
        let b = r.poll(Signal::Metrics, START + 10).unwrap().unwrap();
        let req = ExportMetricsServiceRequest::decode(b.bytes).unwrap();
        let Some(Data::ExponentialHistogram(h)) =
            &req.resource_metrics[0].scope_metrics[0].metrics[0].data
        else {
            panic!("{req:?}")
        };
        assert_eq!(h.data_points.len(), 1, "one series: {h:?}");
        h.data_points[0].clone()
    };
    let straight = run("straight.otlp", false);
    let restored = run("restored.otlp", true);
    assert_eq!(restored, straight);
    assert_eq!((restored.count, restored.zero_count), (8, 1));
    assert_eq!(restored.start_time_unix_nano, START);
    assert!(restored.scale < 4, "downscaled: {restored:?}");
}

/// A writer that died while no Collector ran (its lock never seen held):
/// presumed gone once its file is older than the grace period and idle for
/// that long; then its spans in flight come out and the drained file goes.
#[test]
fn a_file_whose_writer_died_before_the_reader_came_is_removed_after_the_grace_period() {
    const GRACE: u64 = 60_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    w.try_write(RingKind::Spans, &start(scope, 0)).unwrap();
    w.try_write(RingKind::Spans, &start(scope, 1)).unwrap();
    w.try_write(RingKind::Spans, &end(scope, 1)).unwrap();
    drop(w);
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let all = [Signal::Traces, Signal::Logs, Signal::Metrics];
    assert_eq!(drain_spans(&mut r, START).len(), 1);
    // A file younger than the grace period: a writer may be starting up.
    assert!(!r.writer_presumed_gone(START + GRACE - 1, GRACE));
    assert!(!r.writer_presumed_gone(START + 2 * GRACE, GRACE));
    assert_eq!(
        r.remove_if_drained(&[Signal::Logs]),
        kept(NotRemoved::WriterNotKnownGone)
    );
    // Idle, but not for the whole grace period yet.
    assert!(!r.writer_presumed_gone(START + 3 * GRACE - 1, GRACE));
    assert!(r.writer_presumed_gone(START + 3 * GRACE, GRACE));
    assert_eq!(r.stats().writer_alive, 0, "handled as gone");
    assert_eq!(
        r.remove_if_drained(&all),
        kept(NotRemoved::NotDrained(Signal::Traces)),
        "span 0 is still in flight"
    );
    let spans = drain_spans(&mut r, START + 3 * GRACE);
    assert_eq!(spans.len(), 1);
    assert_eq!(
        string_attr(&spans[0], INCOMPLETE_REASON_ATTRIBUTE).as_deref(),
        Some("writer process is gone")
    );
    r.collect_metrics(START + 3 * GRACE);
    assert_eq!(r.remove_if_drained(&all), Ok(()));
    assert!(!path.exists());
}

#[test]
fn a_file_written_to_or_locked_is_not_presumed_gone() {
    const GRACE: u64 = 60_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    // Held by a live writer: never presumed gone, however old.
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    assert!(!r.writer_presumed_gone(START + 2 * GRACE, GRACE));
    assert!(!r.writer_presumed_gone(START + 4 * GRACE, GRACE));
    drop(r);
    // A record read during the watch starts it over.
    w.try_write(RingKind::Spans, &start(scope, 0)).unwrap();
    drop(w);
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    assert!(!r.writer_presumed_gone(START + 2 * GRACE, GRACE));
    drain_spans(&mut r, START);
    assert!(
        !r.writer_presumed_gone(START + 3 * GRACE, GRACE),
        "a record was read since the watch began"
    );
    assert!(r.writer_presumed_gone(START + 4 * GRACE, GRACE));
}

/// A writer that takes no lock, presumed gone, then starts over in place
/// (new start time in the same file): the new stream's writer is not
/// presumed gone with the old one, and its file stays.
#[test]
fn a_lockless_writer_starting_over_in_place_is_not_presumed_gone() {
    use std::os::unix::fs::FileExt;
    const GRACE: u64 = 60_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    drop(w);
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let all = [Signal::Traces, Signal::Logs, Signal::Metrics];
    assert!(!r.writer_presumed_gone(START + 2 * GRACE, GRACE));
    assert!(r.writer_presumed_gone(START + 3 * GRACE, GRACE));

    // It starts over in place, just now.
    let restarted = START + 3 * GRACE;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_at(
        &restarted.to_le_bytes(),
        otlp_mmap_core::layout::header::START_TIME,
    )
    .unwrap();
    for i in 1..10 {
        r.poll(Signal::Logs, restarted + i * 1_000_000_000).unwrap();
    }
    assert_eq!(r.stats().writer_restarts, 1);
    assert_eq!(
        r.remove_if_drained(&all),
        kept(NotRemoved::WriterNotKnownGone)
    );
    assert!(path.exists());
}

#[test]
fn a_checkpoint_refused_for_one_ring_moves_neither() {
    use otlp_mmap_collector::checkpoint_proto::ReaderCheckpoint;
    use otlp_mmap_collector::file_reader::CheckpointRejected;
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    for i in 0..3 {
        w.try_write(RingKind::Spans, &start(scope, i)).unwrap();
    }
    let mut first = FileReader::open(&path, ReaderOptions::default()).unwrap();
    first.set_hold_until_checkpoint(true);
    drain_spans(&mut first, START);
    let mut cp = ReaderCheckpoint::decode(first.checkpoint().as_slice()).unwrap();
    // A crash before the checkpoint was stored: the rings hold the 3 events.
    drop(first);
    // Its spans position is good; its measurements position is past
    // anything written.
    cp.measurements_released = 1_000;
    let mut second = FileReader::open(&path, ReaderOptions::default()).unwrap();
    assert_eq!(second.stats().ring_unread[0], 3);
    assert_eq!(
        second.restore(&cp.encode_to_vec()),
        Err(CheckpointRejected::Stale)
    );
    assert_eq!(
        second.stats().ring_unread[0],
        3,
        "the spans ring gave nothing back to the writers"
    );
    // Read as without a checkpoint: the 3 spans are still there to read.
    assert_eq!(second.stats().in_flight_spans, 0);
}
