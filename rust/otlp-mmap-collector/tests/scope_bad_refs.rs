//! A scope whose own refs do not resolve is counted in `bad_refs` when a
//! span of it is encoded (as before `warm_scope`).

mod common;

use common::{add, monotonic_counter};
use otlp_mmap_collector::{CollectOutcome, FileReader, ReaderOptions, Signal};
use otlp_mmap_core::proto::{self, span_event::Event};
use otlp_mmap_core::{FileConfig, MmapWriter, RingKind};

const SECOND: u64 = 1_000_000_000;
/// A ref that leads nowhere.
const NOWHERE: i64 = 1 << 40;

fn bad_scope(w: &MmapWriter) -> i64 {
    w.intern_message(&proto::InstrumentationScope {
        name_ref: NOWHERE,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn a_scope_with_a_bad_name_ref_counts_a_bad_ref_for_spans() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), 100).unwrap();
    let scope = bad_scope(&w);
    let ev = |event| proto::SpanEvent {
        trace_id: vec![1; 16],
        span_id: vec![1; 8],
        scope_ref: scope,
        event: Some(event),
    };
    w.try_write(
        RingKind::Spans,
        &ev(Event::Start(proto::span_event::StartSpan {
            name: "s".into(),
            start_time_unix_nano: 1,
            ..Default::default()
        })),
    )
    .unwrap();
    w.try_write(
        RingKind::Spans,
        &ev(Event::End(proto::span_event::EndSpan {
            end_time_unix_nano: 2,
            status: None,
        })),
    )
    .unwrap();
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let b = r.poll(Signal::Traces, SECOND).unwrap().unwrap();
    assert_eq!(b.items, 1);
    let t = b.token;
    r.commit(Signal::Traces, t).unwrap();
    assert!(r.stats().bad_refs > 0, "{:?}", r.stats());
}

#[test]
fn a_scope_with_a_bad_name_ref_counts_a_bad_ref_for_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), 100).unwrap();
    let scope = bad_scope(&w);
    add(&w, monotonic_counter(&w, scope, "c"), 1);
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    assert_eq!(r.collect_metrics(SECOND), CollectOutcome::Collected(1));
    assert!(r.stats().bad_refs > 0, "{:?}", r.stats());
}
