//! What a Collector restart does to the state a reader holds: without
//! storage, the spans in flight at a graceful stop come out as incomplete
//! spans with the reason `collector stopping`. And when the file of a writer
//! that is gone may be removed (`delete_after_drain`).

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
    // Nothing left to give up.
    assert_eq!(r.stop_spans(START + 300), 0);
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
