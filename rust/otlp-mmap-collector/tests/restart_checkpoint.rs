//! A checkpoint taken while batches of a stream the writer started over
//! from still wait (behind a batch the pipeline has not accepted) keeps
//! them as they were made: restored by the next reader, the old stream's
//! spans keep their scope and its aggregates their metric, although the
//! file's dictionary names other ones at the same refs by then.

mod common;

use common::{
    add, config, monotonic_counter as counter, named_scope as scope, named_sums,
    start_over_in_place,
};

use otlp_mmap_collector::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otlp_mmap_collector::{CollectOutcome, FileReader, ReaderOptions, Signal};
use otlp_mmap_core::proto::{self, span_event::Event};
use otlp_mmap_core::{MmapWriter, RingKind};
use prost::Message;

const SECOND: u64 = 1_000_000_000;

fn span_event(scope: i64, i: u8, event: Event) -> proto::SpanEvent {
    proto::SpanEvent {
        trace_id: vec![i; 16],
        span_id: vec![i; 8],
        scope_ref: scope,
        event: Some(event),
    }
}

fn start(scope: i64, i: u8) -> proto::SpanEvent {
    span_event(
        scope,
        i,
        Event::Start(proto::span_event::StartSpan {
            name: format!("old-span-{i}"),
            start_time_unix_nano: 1,
            ..Default::default()
        }),
    )
}

fn end(scope: i64, i: u8) -> proto::SpanEvent {
    span_event(
        scope,
        i,
        Event::End(proto::span_event::EndSpan {
            end_time_unix_nano: 2,
            status: None,
        }),
    )
}

/// (span name, scope name) of a traces batch.
fn spans(bytes: &[u8]) -> Vec<(String, String)> {
    let req = ExportTraceServiceRequest::decode(bytes).unwrap();
    let mut got = vec![];
    for rs in req.resource_spans {
        for ss in rs.scope_spans {
            let scope = ss.scope.map(|s| s.name).unwrap_or_default();
            for s in ss.spans {
                got.push((s.name, scope.clone()));
            }
        }
    }
    got
}

/// Every batch of `signal` the reader offers now, each committed.
fn drain(r: &mut FileReader, signal: Signal, now: u64) -> Vec<Vec<u8>> {
    let mut batches = vec![];
    while let Some(b) = r.poll(signal, now).unwrap() {
        let token = b.token;
        batches.push(b.bytes.to_vec());
        r.commit(signal, token).unwrap();
    }
    batches
}

fn s(name: &str, scope: &str) -> (String, String) {
    (name.to_string(), scope.to_string())
}

/// A reader that holds, behind a traces batch and a metrics batch it
/// handed out and that were not accepted, the old stream's given-up span
/// (one batch per span) and its aggregates read after the collection; the
/// writer started over in place with another scope and another metric at
/// the old refs. Returns the reader and the writers.
fn reader_with_queued_batches(path: &std::path::Path) -> (FileReader, MmapWriter, MmapWriter) {
    let w = MmapWriter::create_with_start_time(path, &config(), 100).unwrap();
    let opts = ReaderOptions {
        max_batch_spans: 1,
        ..ReaderOptions::default()
    };
    let mut r = FileReader::open(path, opts).unwrap();
    let old_scope = scope(&w, "old.scope");
    let old_counter = counter(&w, 0, "old.counter");
    // Spans 0 and 1 are read and stay in flight; span 9 ends.
    for i in [0, 1, 9] {
        w.try_write(RingKind::Spans, &start(old_scope, i)).unwrap();
    }
    w.try_write(RingKind::Spans, &end(old_scope, 9)).unwrap();
    add(&w, old_counter, 1);
    // Handed out, not accepted: span 9, and the sum 1.
    assert_eq!(
        spans(r.poll(Signal::Traces, SECOND).unwrap().unwrap().bytes),
        [s("old-span-9", "old.scope")]
    );
    assert_eq!(r.collect_metrics(SECOND), CollectOutcome::Collected(1));
    assert!(r.poll(Signal::Metrics, SECOND).unwrap().is_some());
    // Read after that collection.
    add(&w, old_counter, 7);
    r.read_measurements(SECOND);

    let fresh = path.with_extension("fresh");
    let w2 = MmapWriter::create_with_start_time(&fresh, &config(), 200).unwrap();
    assert_eq!(scope(&w2, "new.scope"), old_scope);
    assert_eq!(counter(&w2, 0, "new.counter"), old_counter);
    start_over_in_place(path, &fresh);
    assert!(r.poll(Signal::Logs, 2 * SECOND).unwrap().is_none());
    assert_eq!(r.stats().writer_restarts, 1);
    (r, w, w2)
}

#[test]
fn batches_of_an_old_stream_survive_a_collector_restart_with_their_scopes_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let (mut first, w, w2) = reader_with_queued_batches(&path);
    // The Collector stops before the pipeline accepts anything.
    let checkpoint = first.checkpoint();
    drop(first);

    let mut second = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let restored = second.restore(&checkpoint).unwrap();
    assert_eq!(restored.refused, 0);
    let traces: Vec<_> = drain(&mut second, Signal::Traces, 3 * SECOND)
        .iter()
        .map(|b| spans(b))
        .collect();
    assert_eq!(
        traces,
        [
            vec![s("old-span-9", "old.scope")],
            vec![s("old-span-0", "old.scope")],
            vec![s("old-span-1", "old.scope")],
        ]
    );
    let metrics: Vec<_> = drain(&mut second, Signal::Metrics, 3 * SECOND)
        .iter()
        .map(|b| named_sums(b))
        .collect();
    assert_eq!(
        metrics,
        [
            vec![("old.counter".to_string(), 1)],
            vec![("old.counter".to_string(), 8)],
        ]
    );
    drop((w, w2));
}

#[test]
fn batches_of_an_old_stream_delivered_after_the_checkpoint_are_not_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let (mut first, w, w2) = reader_with_queued_batches(&path);
    let checkpoint = first.checkpoint();
    first.checkpoint_stored().unwrap();
    // After the checkpoint: the pending traces batch and the first queued
    // one, and both metrics batches, are delivered; then the Collector
    // crashes with the last marker stored.
    let mut delivered_spans = vec![];
    for _ in 0..2 {
        let b = first.poll(Signal::Traces, 3 * SECOND).unwrap().unwrap();
        let token = b.token;
        delivered_spans.extend(spans(b.bytes));
        first.commit(Signal::Traces, token).unwrap();
    }
    assert_eq!(
        delivered_spans,
        [s("old-span-9", "old.scope"), s("old-span-0", "old.scope")]
    );
    assert_eq!(drain(&mut first, Signal::Metrics, 3 * SECOND).len(), 2);
    let marker = first.delivery_marker();
    drop(first);

    let mut second = FileReader::open(&path, ReaderOptions::default()).unwrap();
    second.restore(&checkpoint).unwrap();
    let skipped = second.restore_delivered(&marker).unwrap();
    assert_eq!(skipped.spans, 2);
    assert!(skipped.metrics_batch);
    let traces: Vec<_> = drain(&mut second, Signal::Traces, 4 * SECOND)
        .iter()
        .flat_map(|b| spans(b))
        .collect();
    assert_eq!(traces, [s("old-span-1", "old.scope")]);
    assert!(drain(&mut second, Signal::Metrics, 4 * SECOND).is_empty());
    drop((w, w2));
}

#[test]
fn a_span_the_restore_refuses_does_not_send_a_delivered_queued_batch_again() {
    use otlp_mmap_collector::checkpoint_proto::{CheckpointSpan, DeliveryMarker, ReaderCheckpoint};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let (mut first, w, w2) = reader_with_queued_batches(&path);
    let mut cp = ReaderCheckpoint::decode(first.checkpoint().as_slice()).unwrap();
    drop(first);
    // A span of the checkpoint that does not decode: refused by the restore.
    cp.in_flight.push(CheckpointSpan {
        scope_ref: 0,
        seen_at: 0,
        span: b"\xff\xff not a span".to_vec(),
    });
    // The pending batch (span 9) and the first queued one (span 0) were
    // delivered after the checkpoint.
    let marker = DeliveryMarker {
        checkpoint_id: cp.checkpoint_id,
        spans_delivered: 2,
        ..Default::default()
    };

    let mut second = FileReader::open(&path, ReaderOptions::default()).unwrap();
    assert_eq!(second.restore(&cp.encode_to_vec()).unwrap().refused, 1);
    assert_eq!(
        second
            .restore_delivered(&marker.encode_to_vec())
            .unwrap()
            .spans,
        2
    );
    let traces: Vec<_> = drain(&mut second, Signal::Traces, 3 * SECOND)
        .iter()
        .flat_map(|b| spans(b))
        .collect();
    assert_eq!(traces, [s("old-span-1", "old.scope")]);
    drop((w, w2));
}

#[test]
fn a_checkpoint_with_too_many_queued_batches_or_of_the_old_version_is_refused() {
    use otlp_mmap_collector::checkpoint_proto::{QueuedBatch, ReaderCheckpoint};
    use otlp_mmap_collector::file_reader::CheckpointRejected;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let (mut first, w, w2) = reader_with_queued_batches(&path);
    let cp = ReaderCheckpoint::decode(first.checkpoint().as_slice()).unwrap();
    drop(first);
    assert_eq!(cp.version, 2, "a checkpoint with queued batches");
    // Small limits: the queue holds at most 6 x 64 KiB of batches and a
    // metrics batch of 64 KiB (and the spans in flight's 64 KiB).
    let refused = |cp: &ReaderCheckpoint| {
        let opts = ReaderOptions {
            max_batch_bytes: 64 << 10,
            max_metric_bytes: 64 << 10,
            max_in_flight_span_bytes: 64 << 10,
            ..ReaderOptions::default()
        };
        let mut r = FileReader::open(&path, opts).unwrap();
        r.restore(&cp.encode_to_vec()).err()
    };

    let mut many = cp.clone();
    many.queued_traces.extend((0..100_000).map(|_| QueuedBatch {
        request: vec![0x0a, 0x00],
        items: u64::MAX,
    }));
    assert_eq!(refused(&many), Some(CheckpointRejected::TooLarge));

    let mut large = cp.clone();
    large.queued_metrics.push(QueuedBatch {
        request: vec![0; 1 << 20],
        items: 1,
    });
    assert_eq!(refused(&large), Some(CheckpointRejected::TooLarge));

    // Version 1 has no queued batches: a reader of that version would drop
    // them, and this one refuses such a checkpoint whole.
    let mut old = cp.clone();
    old.version = 1;
    assert_eq!(refused(&old), Some(CheckpointRejected::Corrupt));
    assert_eq!(refused(&cp), None);
    drop((w, w2));
}
