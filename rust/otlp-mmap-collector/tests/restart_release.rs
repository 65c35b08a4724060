//! A writer that starts over in place while the stream's first batch is
//! pending or held (`reader_index` still -1, which a ring reset stores too):
//! giving that batch back to the writers (a commit, a stored checkpoint)
//! must not release the new writer's records unread. (An app in a crash
//! loop restarts while its previous run's first batch is being exported.)

mod common;

use common::{config, log, start_over_in_place};

use otlp_mmap_collector::opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use otlp_mmap_collector::opentelemetry_proto::tonic::common::v1::any_value::Value as OtlpValue;
use otlp_mmap_collector::{FileReader, ReaderOptions, Signal};
use otlp_mmap_core::proto;
use otlp_mmap_core::{MmapWriter, RingKind};
use prost::Message;

const SECOND: u64 = 1_000_000_000;

fn bodies(bytes: &[u8]) -> Vec<String> {
    let req = ExportLogsServiceRequest::decode(bytes).unwrap();
    let mut out = vec![];
    for rl in req.resource_logs {
        for sl in rl.scope_logs {
            for lr in sl.log_records {
                match lr.body.and_then(|b| b.value) {
                    Some(OtlpValue::StringValue(s)) => out.push(s),
                    other => panic!("unexpected body {other:?}"),
                }
            }
        }
    }
    out
}

#[test]
fn committing_the_first_logs_batch_after_a_restart_loses_no_new_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let w = MmapWriter::create_with_start_time(&path, &config(), 100).unwrap();
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    for i in 0..3 {
        log(&w, &format!("old{i}"));
    }
    // The file's first logs batch is handed out (reader_index still -1).
    let b = r.poll(Signal::Logs, SECOND).unwrap().unwrap();
    let (mut got, token) = (bodies(b.bytes), b.token);
    assert_eq!(got, ["old0", "old1", "old2"]);

    // Meanwhile the writer starts over in place: new start time, rings
    // reset (reader_index -1 again) and five new records.
    let fresh = dir.path().join("fresh.otlp");
    let w2 = MmapWriter::create_with_start_time(&fresh, &config(), 200).unwrap();
    for i in 0..5 {
        log(&w2, &format!("new{i}"));
    }
    start_over_in_place(&path, &fresh);

    // The pipeline accepts the old batch; then everything else is read.
    r.commit(Signal::Logs, token).unwrap();
    for i in 2..8 {
        if let Some(b) = r.poll(Signal::Logs, i * SECOND).unwrap() {
            got.extend(bodies(b.bytes));
            let t = b.token;
            r.commit(Signal::Logs, t).unwrap();
        }
    }
    assert_eq!(
        got,
        [
            "old0", "old1", "old2", "new0", "new1", "new2", "new3", "new4"
        ]
    );
    drop((w, w2));
}

fn span_start(i: u8, name: &str) -> proto::SpanEvent {
    use otlp_mmap_core::proto::span_event::Event;
    proto::SpanEvent {
        trace_id: vec![i; 16],
        span_id: vec![i; 8],
        scope_ref: 0,
        event: Some(Event::Start(proto::span_event::StartSpan {
            name: name.into(),
            start_time_unix_nano: 1,
            ..Default::default()
        })),
    }
}

fn span_end(i: u8) -> proto::SpanEvent {
    use otlp_mmap_core::proto::span_event::Event;
    proto::SpanEvent {
        trace_id: vec![i; 16],
        span_id: vec![i; 8],
        scope_ref: 0,
        event: Some(Event::End(proto::span_event::EndSpan {
            end_time_unix_nano: 2,
            status: None,
        })),
    }
}

#[test]
fn storing_the_first_checkpoint_after_a_restart_loses_no_new_span_event() {
    use otlp_mmap_collector::opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let w = MmapWriter::create_with_start_time(&path, &config(), 100).unwrap();
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    r.set_hold_until_checkpoint(true);
    for i in 0..3 {
        w.try_write(RingKind::Spans, &span_start(i, &format!("old{i}")))
            .unwrap();
    }
    // Read and held (reader_index still -1) until the first checkpoint is stored.
    assert!(r.poll(Signal::Traces, SECOND).unwrap().is_none());
    let _checkpoint = r.checkpoint();

    // While it is being stored the writer starts over in place, with a
    // span of its own.
    let fresh = dir.path().join("fresh.otlp");
    let w2 = MmapWriter::create_with_start_time(&fresh, &config(), 200).unwrap();
    w2.try_write(RingKind::Spans, &span_start(7, "new"))
        .unwrap();
    w2.try_write(RingKind::Spans, &span_end(7)).unwrap();
    start_over_in_place(&path, &fresh);
    r.checkpoint_stored().unwrap();

    let mut names = vec![];
    for i in 2..8 {
        if let Some(b) = r.poll(Signal::Traces, i * SECOND).unwrap() {
            let req = ExportTraceServiceRequest::decode(b.bytes).unwrap();
            for rs in req.resource_spans {
                for ss in rs.scope_spans {
                    names.extend(ss.spans.into_iter().map(|s| s.name));
                }
            }
            let t = b.token;
            r.commit(Signal::Traces, t).unwrap();
        }
    }
    assert!(
        names.contains(&"new".to_string()),
        "the new writer's span was lost: {names:?}"
    );
    drop((w, w2));
}
