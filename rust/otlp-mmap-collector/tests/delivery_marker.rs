//! A Collector crash with storage duplicates at most the batch it was
//! offering: the delivery marker stored after each committed batch tells
//! the restored reader what not to emit again.

mod common;

use common::add;
use otlp_mmap_collector::file_reader::MarkerRejected;
use otlp_mmap_collector::opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use otlp_mmap_collector::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otlp_mmap_collector::opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point::Value,
};
use otlp_mmap_collector::{CollectOutcome, FileReader, ReaderOptions, Signal};
use otlp_mmap_core::proto::{self, metric_ref::Aggregation, span_event::Event};
use otlp_mmap_core::{FileConfig, MmapWriter, RingKind};
use prost::Message;

const START: u64 = 1_700_000_000_000_000_000;

fn scope(w: &MmapWriter) -> i64 {
    let resource = w.intern_message(&proto::Resource::default()).unwrap();
    w.intern_message(&proto::InstrumentationScope {
        name_ref: w.intern_str("marker").unwrap(),
        resource_ref: resource,
        ..Default::default()
    })
    .unwrap()
}

fn span_event(scope: i64, i: u64, event: Event) -> proto::SpanEvent {
    proto::SpanEvent {
        trace_id: [[0x33; 8], i.to_be_bytes()].concat(),
        span_id: (i + 1).to_be_bytes().to_vec(),
        scope_ref: scope,
        event: Some(event),
    }
}

fn start(w: &MmapWriter, scope: i64, i: u64) {
    let e = Event::Start(proto::span_event::StartSpan {
        name: format!("span {i}"),
        start_time_unix_nano: START + i,
        ..Default::default()
    });
    w.try_write(RingKind::Spans, &span_event(scope, i, e))
        .unwrap();
}

fn end(w: &MmapWriter, scope: i64, i: u64) {
    let e = Event::End(proto::span_event::EndSpan {
        end_time_unix_nano: START + i + 10,
        status: None,
    });
    w.try_write(RingKind::Spans, &span_event(scope, i, e))
        .unwrap();
}

/// The names of the spans of one traces batch, polled (and committed when
/// `commit`, with the marker returned).
fn one_batch(r: &mut FileReader, commit: bool) -> (Vec<String>, Option<Vec<u8>>) {
    let Some(b) = r.poll(Signal::Traces, START + 1000).unwrap() else {
        return (Vec::new(), None);
    };
    let req = ExportTraceServiceRequest::decode(b.bytes).unwrap();
    let token = b.token;
    let names = req
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| s.name.clone())
        .collect();
    if !commit {
        return (names, None);
    }
    r.commit(Signal::Traces, token).unwrap();
    (names, Some(r.delivery_marker()))
}

/// The names of every span emitted until the ring has nothing more, committed.
fn drain(r: &mut FileReader) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let before = r.records_consumed(Signal::Traces);
        let (names, _) = one_batch(r, true);
        if names.is_empty() && r.records_consumed(Signal::Traces) == before {
            return out;
        }
        out.extend(names);
    }
}

fn options() -> ReaderOptions {
    ReaderOptions {
        max_batch_spans: 3,
        ..ReaderOptions::default()
    }
}

#[test]
fn a_crash_after_a_marker_emits_only_what_was_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    for i in 0..12 {
        start(&w, scope, i);
    }
    for i in 0..4 {
        end(&w, scope, i);
    }
    let mut first = FileReader::open(&path, options()).unwrap();
    first.set_hold_until_checkpoint(true);
    // One batch delivered, one pending (read, not committed) and one span
    // completed when the checkpoint is taken.
    assert_eq!(
        one_batch(&mut first, true).0,
        ["span 0", "span 1", "span 2"]
    );
    for i in 4..6 {
        end(&w, scope, i);
    }
    first.poll(Signal::Traces, START + 1000).unwrap();
    let checkpoint = first.checkpoint();
    first.checkpoint_stored().unwrap();
    // After it: the pending batch, and the spans ending later, in batches of
    // 3; the last batch is offered and the Collector dies before its marker.
    for i in 6..11 {
        end(&w, scope, i);
    }
    let mut delivered = Vec::new();
    let mut marker = None;
    for _ in 0..2 {
        let (names, m) = one_batch(&mut first, true);
        delivered.extend(names);
        marker = m;
    }
    assert_eq!(
        delivered,
        ["span 3", "span 4", "span 5", "span 6", "span 7", "span 8"]
    );
    let (offered, _) = one_batch(&mut first, false);
    assert_eq!(offered, ["span 9", "span 10"]);
    drop(first);
    end(&w, scope, 11);

    let mut second = FileReader::open(&path, options()).unwrap();
    second.set_hold_until_checkpoint(true);
    second.restore(&checkpoint).unwrap();
    let skipped = second.restore_delivered(&marker.unwrap()).unwrap();
    assert_eq!(skipped.spans, 6);
    let again = drain(&mut second);
    // Only the batch being offered at the crash comes twice.
    assert_eq!(again, ["span 9", "span 10", "span 11"]);
    assert_eq!(second.stats().in_flight_spans, 0);
    assert_eq!(second.stats().orphan_span_events, 0);
}

#[test]
fn a_checkpoint_taken_while_skipping_carries_what_is_left_to_skip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    for i in 0..6 {
        start(&w, scope, i);
    }
    let mut first = FileReader::open(&path, options()).unwrap();
    first.set_hold_until_checkpoint(true);
    first.poll(Signal::Traces, START).unwrap();
    let checkpoint = first.checkpoint();
    first.checkpoint_stored().unwrap();
    for i in 0..6 {
        end(&w, scope, i);
    }
    let (names, _) = one_batch(&mut first, true);
    let (more, marker) = one_batch(&mut first, true);
    assert_eq!(names.len() + more.len(), 6);
    drop(first);

    // The second reader restores, and is checkpointed before it read the
    // ends again: that checkpoint still owes the skip of 6 spans.
    let mut second = FileReader::open(&path, options()).unwrap();
    second.set_hold_until_checkpoint(true);
    second.restore(&checkpoint).unwrap();
    assert_eq!(second.restore_delivered(&marker.unwrap()).unwrap().spans, 6);
    let again = second.checkpoint();
    drop(second);

    let mut third = FileReader::open(&path, options()).unwrap();
    third.restore(&again).unwrap();
    assert_eq!(drain(&mut third), Vec::<String>::new());
    assert_eq!(
        third.stats().in_flight_spans,
        0,
        "all 6 ended, none emitted"
    );
}

#[test]
fn a_marker_of_another_checkpoint_or_after_reading_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    start(&w, scope, 0);
    let mut first = FileReader::open(&path, options()).unwrap();
    first.set_hold_until_checkpoint(true);
    first.poll(Signal::Traces, START).unwrap();
    let old = first.checkpoint();
    let old_marker = first.delivery_marker();
    first.checkpoint_stored().unwrap();
    let newer = first.checkpoint();
    assert_ne!(old_marker, first.delivery_marker());
    first.checkpoint_stored().unwrap();
    drop(first);

    let mut r = FileReader::open(&path, options()).unwrap();
    assert_eq!(
        r.restore_delivered(&old_marker),
        Err(MarkerRejected::NotThisCheckpoint),
        "nothing restored"
    );
    r.restore(&newer).unwrap();
    assert_eq!(
        r.restore_delivered(&old_marker),
        Err(MarkerRejected::NotThisCheckpoint)
    );
    assert_eq!(
        r.restore_delivered(b"\xff\xff\xff"),
        Err(MarkerRejected::Corrupt)
    );
    // A marker of this checkpoint counting more spans than the reader holds
    // (one in flight, nothing in the ring) would silence spans never sent.
    let mut inflated = otlp_mmap_collector::checkpoint_proto::DeliveryMarker::decode(
        r.delivery_marker().as_slice(),
    )
    .unwrap();
    inflated.spans_delivered = 2;
    assert_eq!(
        r.restore_delivered(&inflated.encode_to_vec()),
        Err(MarkerRejected::Corrupt)
    );
    inflated.spans_delivered = 1;
    assert_eq!(
        r.restore_delivered(&inflated.encode_to_vec())
            .unwrap()
            .spans,
        1
    );
    // The marker of the checkpoint restored, but the reader read on since.
    drop(r);
    let mut second = FileReader::open(&path, options()).unwrap();
    second.set_hold_until_checkpoint(true);
    second.restore(&old).unwrap();
    let marker = second.delivery_marker();
    end(&w, scope, 0);
    assert_eq!(one_batch(&mut second, true).0, ["span 0"]);
    drop(second);
    let mut third = FileReader::open(&path, options()).unwrap();
    third.restore(&old).unwrap();
    third.poll(Signal::Traces, START).unwrap();
    assert_eq!(
        third.restore_delivered(&marker),
        Err(MarkerRejected::NotThisCheckpoint)
    );
}

fn counter(w: &MmapWriter, scope: i64, name: &str, temporality: i32) -> i64 {
    w.intern_message(&proto::MetricRef {
        name: name.into(),
        instrumentation_scope_ref: scope,
        aggregation: Some(Aggregation::Sum(proto::metric_ref::Sum {
            aggregation_temporality: temporality,
            is_monotonic: true,
        })),
        ..Default::default()
    })
    .unwrap()
}

/// Collects at `now`; returns the pending batch's (name, start, time,
/// value) per metric and its token.
fn collect(r: &mut FileReader, now: u64) -> (Vec<(String, u64, u64, i64)>, u64) {
    assert!(matches!(
        r.collect_metrics(now),
        CollectOutcome::Collected(_)
    ));
    let b = r.poll(Signal::Metrics, now).unwrap().unwrap();
    let req = ExportMetricsServiceRequest::decode(b.bytes).unwrap();
    let mut out = Vec::new();
    for m in &req.resource_metrics[0].scope_metrics[0].metrics {
        let Some(Data::Sum(sum)) = &m.data else {
            panic!("{m:?}")
        };
        let p = &sum.data_points[0];
        let Some(Value::AsInt(v)) = p.value else {
            panic!("{p:?}")
        };
        out.push((m.name.clone(), p.start_time_unix_nano, p.time_unix_nano, v));
    }
    out.sort();
    (out, b.token)
}

#[test]
fn a_delta_sum_is_not_counted_twice_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    let cumulative = counter(&w, scope, "cumulative", 2);
    let delta = counter(&w, scope, "delta", 1);
    let both = |v| {
        add(&w, cumulative, v);
        add(&w, delta, v);
    };
    both(5);
    let mut first = FileReader::open(&path, ReaderOptions::default()).unwrap();
    first.set_hold_until_checkpoint(true);
    let (_, token) = collect(&mut first, START + 100);
    first.commit(Signal::Metrics, token).unwrap();
    let checkpoint = first.checkpoint();
    first.checkpoint_stored().unwrap();
    // Collected and delivered after the checkpoint; the marker says so.
    both(7);
    let (points, token) = collect(&mut first, START + 200);
    assert_eq!(
        points,
        [
            ("cumulative".into(), START, START + 200, 12),
            ("delta".into(), START + 100, START + 200, 7)
        ]
    );
    first.commit(Signal::Metrics, token).unwrap();
    let marker = first.delivery_marker();
    // Collected, offered, and the Collector dies before the commit.
    both(11);
    let (points, _) = collect(&mut first, START + 300);
    assert_eq!(points[1].3, 11);
    drop(first);
    both(13);

    let mut second = FileReader::open(&path, ReaderOptions::default()).unwrap();
    second.set_hold_until_checkpoint(true);
    second.restore(&checkpoint).unwrap();
    let skipped = second.restore_delivered(&marker).unwrap();
    assert_eq!(skipped.measurements, 2, "the two measurements of 7");
    second.poll(Signal::Metrics, START + 400).unwrap();
    let (points, _) = collect(&mut second, START + 400);
    assert_eq!(
        points,
        [
            ("cumulative".into(), START, START + 400, 36),
            // 11 + 13: the 7 delivered before the crash is not in it again,
            // and the interval starts where the delivered one ended.
            ("delta".into(), START + 200, START + 400, 24),
        ]
    );
}

#[test]
fn the_checkpoints_pending_metrics_batch_is_dropped_once_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    let delta = counter(&w, scope, "delta", 1);
    add(&w, delta, 5);
    let mut first = FileReader::open(&path, ReaderOptions::default()).unwrap();
    first.set_hold_until_checkpoint(true);
    let (_, token) = collect(&mut first, START + 100);
    let checkpoint = first.checkpoint();
    first.checkpoint_stored().unwrap();
    first.commit(Signal::Metrics, token).unwrap();
    let marker = first.delivery_marker();
    drop(first);
    add(&w, delta, 7);

    let mut second = FileReader::open(&path, ReaderOptions::default()).unwrap();
    second.restore(&checkpoint).unwrap();
    let skipped = second.restore_delivered(&marker).unwrap();
    assert!(skipped.metrics_batch);
    assert!(second.poll(Signal::Metrics, START + 200).unwrap().is_none());
    let (points, _) = collect(&mut second, START + 200);
    assert_eq!(
        points,
        [("delta".into(), START + 100, START + 200, 7)],
        "the 5 delivered is not in it again, and the interval starts where its point ended"
    );
}

#[test]
fn deliveries_are_counted_under_the_last_checkpoint_actually_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    for i in 0..9 {
        start(&w, scope, i);
    }
    let mut first = FileReader::open(&path, options()).unwrap();
    first.set_hold_until_checkpoint(true);
    first.poll(Signal::Traces, START).unwrap();
    let stored = first.checkpoint();
    first.checkpoint_stored().unwrap();
    for i in 0..9 {
        end(&w, scope, i);
    }
    let (names, _) = one_batch(&mut first, true);
    assert_eq!(names.len(), 3);
    // A checkpoint is taken, and storing it fails (never stored): the
    // marker goes on counting under the stored one.
    let _lost = first.checkpoint();
    let (more, marker) = one_batch(&mut first, true);
    assert_eq!(more.len(), 3);
    drop(first);

    let mut second = FileReader::open(&path, options()).unwrap();
    second.set_hold_until_checkpoint(true);
    second.restore(&stored).unwrap();
    assert_eq!(second.restore_delivered(&marker.unwrap()).unwrap().spans, 6);
    assert_eq!(drain(&mut second), ["span 6", "span 7", "span 8"]);
}

#[test]
fn readers_restoring_one_checkpoint_number_their_checkpoints_apart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    start(&w, scope, 0);
    let mut first = FileReader::open(&path, options()).unwrap();
    first.poll(Signal::Traces, START).unwrap();
    let stored = first.checkpoint();
    first.checkpoint_stored().unwrap();
    drop(first);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut r = FileReader::open(&path, options()).unwrap();
        r.restore(&stored).unwrap();
        r.checkpoint();
        r.checkpoint_stored().unwrap();
        ids.push(r.delivery_marker());
    }
    // The markers (nothing delivered yet) differ only by checkpoint id.
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn a_checkpoint_cannot_skip_more_spans_than_the_reader_holds() {
    use otlp_mmap_collector::checkpoint_proto::ReaderCheckpoint;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    for i in 0..3 {
        start(&w, scope, i);
    }
    let mut first = FileReader::open(&path, options()).unwrap();
    first.set_hold_until_checkpoint(true);
    first.poll(Signal::Traces, START).unwrap();
    let mut cp = ReaderCheckpoint::decode(first.checkpoint().as_slice()).unwrap();
    first.checkpoint_stored().unwrap();
    drop(first);
    // A crafted checkpoint: every span from now on already delivered.
    cp.spans_delivered_ahead = u64::MAX;

    let mut second = FileReader::open(&path, options()).unwrap();
    second.restore(&cp.encode_to_vec()).unwrap();
    // At most the 3 spans it holds are skipped; a marker adding one more
    // than it can emit is refused.
    let marker = otlp_mmap_collector::checkpoint_proto::DeliveryMarker {
        checkpoint_id: cp.checkpoint_id,
        spans_delivered: 1,
        ..Default::default()
    };
    assert_eq!(
        second.restore_delivered(&marker.encode_to_vec()),
        Err(MarkerRejected::Corrupt)
    );
    for i in 0..3 {
        end(&w, scope, i);
    }
    for i in 3..6 {
        start(&w, scope, i);
        end(&w, scope, i);
    }
    assert_eq!(drain(&mut second), ["span 3", "span 4", "span 5"]);
}

#[test]
fn a_replay_reads_every_measurement_up_to_the_delivered_collection() {
    use otlp_mmap_core::RingConfig;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let config = FileConfig {
        measurements: RingConfig {
            num_buffers: 1 << 17,
            buffer_size: 64,
        },
        ..FileConfig::default()
    };
    let w = MmapWriter::create_with_start_time(&path, &config, START).unwrap();
    let scope = scope(&w);
    let delta = counter(&w, scope, "delta", 1);
    add(&w, delta, 1);
    let mut first = FileReader::open(&path, ReaderOptions::default()).unwrap();
    first.set_hold_until_checkpoint(true);
    let (_, token) = collect(&mut first, START + 100);
    first.commit(Signal::Metrics, token).unwrap();
    let checkpoint = first.checkpoint();
    first.checkpoint_stored().unwrap();
    // More measurements after the checkpoint than one pass reads (65,536),
    // delivered in two collections.
    for _ in 0..70_000 {
        add(&w, delta, 1);
    }
    let mut total = 0;
    for now in [START + 200, START + 300] {
        let (points, token) = collect(&mut first, now);
        total += points[0].3;
        first.commit(Signal::Metrics, token).unwrap();
    }
    assert_eq!(total, 70_000);
    let marker = first.delivery_marker();
    drop(first);
    add(&w, delta, 13);

    let mut second = FileReader::open(&path, ReaderOptions::default()).unwrap();
    second.set_hold_until_checkpoint(true);
    second.restore(&checkpoint).unwrap();
    let skipped = second.restore_delivered(&marker).unwrap();
    assert_eq!(skipped.measurements, 70_000);
    let (points, _) = collect(&mut second, START + 400);
    assert_eq!(points, [("delta".into(), START + 300, START + 400, 13)]);
}

/// Names of every span emitted at `now` until nothing more comes, committed.
fn drain_at(r: &mut FileReader, now: u64) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..100 {
        let before = r.records_consumed(Signal::Traces);
        let Some(b) = r.poll(Signal::Traces, now).unwrap() else {
            if r.records_consumed(Signal::Traces) == before {
                return out;
            }
            continue;
        };
        let req = ExportTraceServiceRequest::decode(b.bytes).unwrap();
        let token = b.token;
        out.extend(
            req.resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| &ss.spans)
                .map(|s| s.name.clone()),
        );
        r.commit(Signal::Traces, token).unwrap();
    }
    panic!("no end: {out:?}")
}

#[test]
fn no_span_is_given_up_for_its_age_while_delivered_spans_are_skipped() {
    const AGE: u64 = 1_000_000_000;
    let options = || ReaderOptions {
        max_batch_spans: 1,
        max_span_age_nanos: AGE,
        ..ReaderOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    for i in 0..3 {
        start(&w, scope, i);
    }
    let mut first = FileReader::open(&path, options()).unwrap();
    first.set_hold_until_checkpoint(true);
    first.poll(Signal::Traces, START).unwrap();
    let checkpoint = first.checkpoint();
    first.checkpoint_stored().unwrap();
    end(&w, scope, 2);
    end(&w, scope, 1);
    assert_eq!(drain_at(&mut first, START + 1), ["span 2", "span 1"]);
    let marker = first.delivery_marker();
    drop(first);

    // Restored when every span is past its age: span 0 (never delivered)
    // is given up once the two delivered ones were read again and skipped.
    let mut second = FileReader::open(&path, options()).unwrap();
    second.restore(&checkpoint).unwrap();
    assert_eq!(second.restore_delivered(&marker).unwrap().spans, 2);
    assert_eq!(drain_at(&mut second, START + 10 * AGE), ["span 0"]);
}

#[test]
fn a_span_the_restore_refuses_shortens_the_skip() {
    use otlp_mmap_collector::checkpoint_proto::ReaderCheckpoint;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let scope = scope(&w);
    for i in 0..3 {
        start(&w, scope, i);
    }
    let mut first = FileReader::open(&path, options()).unwrap();
    first.set_hold_until_checkpoint(true);
    first.poll(Signal::Traces, START).unwrap();
    let mut cp = ReaderCheckpoint::decode(first.checkpoint().as_slice()).unwrap();
    first.checkpoint_stored().unwrap();
    for i in 0..3 {
        end(&w, scope, i);
    }
    assert_eq!(drain(&mut first), ["span 0", "span 1", "span 2"]);
    drop(first);
    // Spans 0 and 1 were delivered (a marker of 2); span 0's state in the
    // checkpoint does not decode.
    assert_eq!(cp.in_flight.len(), 3);
    cp.in_flight[0].span = b"\xff\xff not a span".to_vec();
    let marker = otlp_mmap_collector::checkpoint_proto::DeliveryMarker {
        checkpoint_id: cp.checkpoint_id,
        spans_delivered: 2,
        ..Default::default()
    };

    let mut second = FileReader::open(&path, options()).unwrap();
    let restored = second.restore(&cp.encode_to_vec()).unwrap();
    assert_eq!(restored.refused, 1);
    assert_eq!(
        second
            .restore_delivered(&marker.encode_to_vec())
            .unwrap()
            .spans,
        1
    );
    // Span 0 comes from its end alone and is skipped; span 1 comes again
    // rather than span 2 being lost.
    assert_eq!(drain(&mut second), ["span 1", "span 2"]);
}

#[test]
fn skipped_spans_are_dropped_without_being_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    // A scope ref that leads nowhere: encoding such a span counts a bad ref.
    let nowhere = 1 << 40;
    for i in 0..3 {
        start(&w, nowhere, i);
    }
    let mut first = FileReader::open(&path, options()).unwrap();
    first.set_hold_until_checkpoint(true);
    first.poll(Signal::Traces, START).unwrap();
    let checkpoint = first.checkpoint();
    first.checkpoint_stored().unwrap();
    for i in 0..3 {
        end(&w, nowhere, i);
    }
    assert_eq!(drain(&mut first).len(), 3);
    assert!(first.stats().bad_refs > 0);
    let marker = first.delivery_marker();
    drop(first);

    let mut second = FileReader::open(&path, options()).unwrap();
    second.restore(&checkpoint).unwrap();
    assert_eq!(second.restore_delivered(&marker).unwrap().spans, 3);
    assert_eq!(drain(&mut second), Vec::<String>::new());
    assert_eq!(second.stats().in_flight_spans, 0);
    assert_eq!(second.stats().bad_refs, 0, "nothing was encoded");
}

#[test]
fn a_restored_checkpoint_id_at_its_largest_does_not_overflow() {
    use otlp_mmap_collector::checkpoint_proto::ReaderCheckpoint;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let _w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), START).unwrap();
    let mut first = FileReader::open(&path, options()).unwrap();
    let mut cp = ReaderCheckpoint::decode(first.checkpoint().as_slice()).unwrap();
    drop(first);
    cp.checkpoint_id = u64::MAX;
    let mut second = FileReader::open(&path, options()).unwrap();
    second.restore(&cp.encode_to_vec()).unwrap();
    let next = ReaderCheckpoint::decode(second.checkpoint().as_slice()).unwrap();
    assert!(next.checkpoint_id != 0 && next.checkpoint_id != u64::MAX);
}
