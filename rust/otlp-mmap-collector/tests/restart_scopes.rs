//! Spans of the old stream still in the assembler when a writer
//! starts over in place are encoded with the old stream's scopes, however
//! many batches they take.

mod common;

use common::{config, named_scope as scope, start_over_in_place};

use otlp_mmap_collector::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otlp_mmap_collector::{FileReader, ReaderOptions, Signal};
use otlp_mmap_core::proto::{self, span_event::Event};
use otlp_mmap_core::{FileConfig, MmapWriter, RingConfig, RingKind};
use prost::Message;

const SECOND: u64 = 1_000_000_000;

fn end(scope: i64, i: u8) -> proto::SpanEvent {
    proto::SpanEvent {
        trace_id: vec![i; 16],
        span_id: vec![i; 8],
        scope_ref: scope,
        event: Some(Event::End(proto::span_event::EndSpan {
            end_time_unix_nano: 2,
            status: None,
        })),
    }
}

fn start(scope: i64, i: u8) -> proto::SpanEvent {
    proto::SpanEvent {
        trace_id: vec![i; 16],
        span_id: vec![i; 8],
        scope_ref: scope,
        event: Some(Event::Start(proto::span_event::StartSpan {
            name: format!("old-span-{i}"),
            start_time_unix_nano: 1,
            ..Default::default()
        })),
    }
}

/// (span name, scope name) of every span of the next traces batches, committed.
fn drain_spans(r: &mut FileReader, now: u64) -> Vec<(String, String)> {
    let mut got = vec![];
    for _ in 0..10 {
        let Some(b) = r.poll(Signal::Traces, now).unwrap() else {
            continue;
        };
        let token = b.token;
        let req = ExportTraceServiceRequest::decode(b.bytes).unwrap();
        r.commit(Signal::Traces, token).unwrap();
        for rs in req.resource_spans {
            for ss in rs.scope_spans {
                let scope = ss.scope.map(|s| s.name).unwrap_or_default();
                for s in ss.spans {
                    got.push((s.name, scope.clone()));
                }
            }
        }
    }
    got.sort();
    got
}

#[test]
fn old_streams_spans_given_up_at_a_restart_keep_their_scope_past_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let w = MmapWriter::create_with_start_time(&path, &config(), 100).unwrap();
    let opts = ReaderOptions {
        max_batch_spans: 1,
        ..ReaderOptions::default()
    };
    let mut r = FileReader::open(&path, opts).unwrap();
    let old_scope = scope(&w, "old.scope");
    // A span of the old stream delivered with its scope (which the reader
    // has resolved, and cached, before the restart).
    w.try_write(RingKind::Spans, &start(old_scope, 9)).unwrap();
    w.try_write(RingKind::Spans, &end(old_scope, 9)).unwrap();
    assert_eq!(
        drain_spans(&mut r, SECOND),
        [("old-span-9".to_string(), "old.scope".to_string())]
    );
    for i in 0..2 {
        w.try_write(RingKind::Spans, &start(old_scope, i)).unwrap();
    }
    // Both spans are read and stay in flight.
    assert!(r.poll(Signal::Traces, SECOND).unwrap().is_none());

    // The writer starts over in place: its new dictionary has another scope
    // at the same ref.
    let fresh = dir.path().join("fresh.otlp");
    let w2 = MmapWriter::create_with_start_time(&fresh, &config(), 200).unwrap();
    assert_eq!(scope(&w2, "new.scope"), old_scope);
    start_over_in_place(&path, &fresh);

    let got = drain_spans(&mut r, 2 * SECOND);
    assert_eq!(r.stats().writer_restarts, 1);
    assert_eq!(
        got,
        [
            ("old-span-0".to_string(), "old.scope".to_string()),
            ("old-span-1".to_string(), "old.scope".to_string()),
        ]
    );
    drop((w, w2));
}

#[test]
fn old_streams_spans_given_up_while_a_traces_batch_is_pending_keep_their_scope() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let w = MmapWriter::create_with_start_time(&path, &config(), 100).unwrap();
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let old_scope = scope(&w, "old.scope");
    w.try_write(RingKind::Spans, &start(old_scope, 9)).unwrap();
    w.try_write(RingKind::Spans, &end(old_scope, 9)).unwrap();
    w.try_write(RingKind::Spans, &start(old_scope, 0)).unwrap();
    // A traces batch (span 9, its scope resolved and cached) is handed out
    // and not committed yet (the pipeline refused it, say); span 0 is in flight.
    let token = r.poll(Signal::Traces, SECOND).unwrap().unwrap().token;

    // The writer starts over in place; a logs poll follows it.
    let fresh = dir.path().join("fresh.otlp");
    let w2 = MmapWriter::create_with_start_time(&fresh, &config(), 200).unwrap();
    assert_eq!(scope(&w2, "new.scope"), old_scope);
    start_over_in_place(&path, &fresh);
    assert!(r.poll(Signal::Logs, 2 * SECOND).unwrap().is_none());
    assert_eq!(r.stats().writer_restarts, 1);

    r.commit(Signal::Traces, token).unwrap();
    assert_eq!(
        drain_spans(&mut r, 3 * SECOND),
        [("old-span-0".to_string(), "old.scope".to_string())]
    );
    drop((w, w2));
}

#[test]
fn a_span_in_flight_at_a_restart_keeps_a_scope_never_resolved_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let w = MmapWriter::create_with_start_time(&path, &config(), 100).unwrap();
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let old_scope = scope(&w, "old.scope");
    w.try_write(RingKind::Spans, &start(old_scope, 0)).unwrap();
    // Read; in flight, its scope not resolved yet (only a batch resolves it).
    assert!(r.poll(Signal::Traces, SECOND).unwrap().is_none());

    let fresh = dir.path().join("fresh.otlp");
    let w2 = MmapWriter::create_with_start_time(&fresh, &config(), 200).unwrap();
    assert_eq!(scope(&w2, "new.scope"), old_scope);
    start_over_in_place(&path, &fresh);

    assert_eq!(
        drain_spans(&mut r, 2 * SECOND),
        [("old-span-0".to_string(), "old.scope".to_string())]
    );
    drop((w, w2));
}

/// Slots of 64 KiB: a span end with a 30,000-byte status message fits one.
fn big_slots() -> FileConfig {
    let ring = RingConfig {
        num_buffers: 16,
        buffer_size: 65_536,
    };
    FileConfig {
        events: ring,
        spans: ring,
        measurements: ring,
        dictionary_initial_size: 4096,
        dictionary_max_size: 1 << 20,
    }
}

fn orphan_ev(scope: i64, i: u8, event: Event) -> proto::SpanEvent {
    proto::SpanEvent {
        trace_id: vec![i; 16],
        span_id: vec![i; 8],
        scope_ref: scope,
        event: Some(event),
    }
}

fn end_with_message(scope: i64, i: u8, message: &str) -> proto::SpanEvent {
    orphan_ev(
        scope,
        i,
        Event::End(proto::span_event::EndSpan {
            end_time_unix_nano: 2,
            status: Some(proto::Status {
                message: message.into(),
                code: 2,
            }),
        }),
    )
}

#[test]
fn an_orphan_end_left_over_from_a_batch_keeps_its_scope_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let w = MmapWriter::create_with_start_time(&path, &big_slots(), 100).unwrap();
    let first = scope(&w, "aaa.scope");
    let orphan_scope = scope(&w, "old.scope");
    let opts = ReaderOptions {
        max_batch_bytes: 20_000,
        ..ReaderOptions::default()
    };
    let mut r = FileReader::open(&path, opts).unwrap();
    w.try_write(
        RingKind::Spans,
        &orphan_ev(
            first,
            9,
            Event::Start(proto::span_event::StartSpan {
                name: "span-9".into(),
                start_time_unix_nano: 1,
                ..Default::default()
            }),
        ),
    )
    .unwrap();
    w.try_write(RingKind::Spans, &end_with_message(first, 9, ""))
        .unwrap();
    // Span 0's start was read by an earlier reader: its end alone, large
    // enough (its status message) not to fit the batch of span 9.
    w.try_write(
        RingKind::Spans,
        &end_with_message(orphan_scope, 0, &"x".repeat(30_000)),
    )
    .unwrap();
    // Span 9's batch is handed out and refused; span 0 is left over.
    let b = r.poll(Signal::Traces, SECOND).unwrap().unwrap();
    assert_eq!(b.items, 1);
    let token = b.token;

    // The writer starts over in place: its dictionary has another scope at
    // span 0's scope ref.
    let fresh = dir.path().join("fresh.otlp");
    let w2 = MmapWriter::create_with_start_time(&fresh, &big_slots(), 200).unwrap();
    assert_eq!(scope(&w2, "bbb.scope"), first);
    assert_eq!(scope(&w2, "new.scope"), orphan_scope);
    start_over_in_place(&path, &fresh);
    assert!(r.poll(Signal::Logs, 2 * SECOND).unwrap().is_none());
    assert_eq!(r.stats().writer_restarts, 1);
    r.commit(Signal::Traces, token).unwrap();

    let b = r.poll(Signal::Traces, 3 * SECOND).unwrap().unwrap();
    let req = ExportTraceServiceRequest::decode(b.bytes).unwrap();
    let scopes: Vec<String> = req
        .resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter())
        .map(|ss| {
            ss.scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(scopes, ["old.scope"]);
    drop((w, w2));
}
