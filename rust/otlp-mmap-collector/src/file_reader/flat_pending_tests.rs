//! A traces batch handed out flat writes its OTLP request only when it is
//! needed: not when the caller drops the batch after
//! [`FileReader::start_flat_over`] (as the Go receiver does), only when the
//! batch is laid out again or checkpointed.

use otlp_mmap_core::proto::{self, span_event};
use otlp_mmap_core::{FileConfig, MmapWriter, RingKind};

use super::*;

const NOW: u64 = 1_700_000_000_000_000_000;

/// A reader with the flat hand-off of a file of `spans` ended spans.
fn reader(dir: &tempfile::TempDir, spans: u8) -> FileReader {
    let path = dir.path().join("flat.otlp");
    let w = MmapWriter::create(&path, &FileConfig::default()).unwrap();
    let scope = w
        .intern_message(&proto::InstrumentationScope {
            name_ref: w.intern_str("scope").unwrap(),
            ..Default::default()
        })
        .unwrap();
    for id in 1..=spans {
        let ev = |e| proto::SpanEvent {
            trace_id: vec![id; 16],
            span_id: vec![id; 8],
            scope_ref: scope,
            event: Some(e),
        };
        let start = span_event::Event::Start(span_event::StartSpan {
            name: "op".into(),
            start_time_unix_nano: NOW - 10,
            ..Default::default()
        });
        let end = span_event::Event::End(span_event::EndSpan {
            end_time_unix_nano: NOW,
            status: None,
        });
        w.try_write(RingKind::Spans, &ev(start)).unwrap();
        w.try_write(RingKind::Spans, &ev(end)).unwrap();
    }
    let options = ReaderOptions {
        flat_handoff: true,
        ..ReaderOptions::default()
    };
    FileReader::open(&path, options).unwrap()
}

/// The pending traces batch's (request, flat) bytes.
fn pending(r: &FileReader) -> (&[u8], &[u8]) {
    let p = r.pending[Signal::Traces as usize].as_ref().unwrap();
    (&p.bytes, &p.flat)
}

#[test]
fn a_flat_batch_dropped_after_starting_over_never_gets_its_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = reader(&dir, 3);
    let b = r.poll(Signal::Traces, NOW).unwrap().unwrap();
    assert_eq!((b.items, b.bytes[4]), (3, crate::flat::MODE_FLAT));
    let token = b.token;
    assert!(pending(&r).0.is_empty(), "no request yet");
    r.start_flat_over(Signal::Traces);
    assert_eq!(pending(&r), (&[][..], &[][..]), "nothing written");
    r.commit(Signal::Traces, token).unwrap();
    assert!(r.pending[Signal::Traces as usize].is_none());
}

#[test]
fn a_flat_batch_laid_out_again_gets_its_request_then() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = reader(&dir, 3);
    let token = r.poll(Signal::Traces, NOW).unwrap().unwrap().token;
    r.start_flat_over(Signal::Traces);
    let again = r.poll(Signal::Traces, NOW).unwrap().unwrap();
    assert_eq!(again.token, token);
    let again = again.bytes.to_vec();
    let (request, flat) = pending(&r);
    assert!(!request.is_empty());
    assert_eq!(flat, &again[..]);
    // The layout of that request under a table started over once.
    let mut w = crate::flat::FlatWriter::default();
    let mut first = Vec::new();
    w.write(Signal::Traces, request, &mut first);
    w.start_over();
    let mut expected = Vec::new();
    w.write(Signal::Traces, request, &mut expected);
    assert_eq!(again, expected);
    assert_eq!(again[4], crate::flat::MODE_FLAT);
}
