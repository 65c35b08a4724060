//! A writer that starts over in place (same file, new `start_time_unix_nano`,
//! which the spec allows) is followed through the file the reader already
//! has open: it keeps its reader lock and does not open the path again.

use std::os::unix::fs::FileExt;

use otlp_mmap_collector::opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use otlp_mmap_collector::opentelemetry_proto::tonic::common::v1::any_value::Value as OtlpValue;
use otlp_mmap_collector::{FileReader, ReaderOptions, Signal};
use otlp_mmap_core::layout::header;
use otlp_mmap_core::proto::{self, any_value::Value};
use otlp_mmap_core::{FileConfig, MmapWriter, RingKind};
use prost::Message;

const SECOND: u64 = 1_000_000_000;

fn log(w: &MmapWriter, body: &str) {
    let ev = proto::Event {
        body: Some(proto::AnyValue {
            value: Some(Value::StringValue(body.into())),
        }),
        ..Default::default()
    };
    w.try_write(RingKind::Events, &ev).unwrap();
}

/// Bodies of the next logs batch, committed.
fn next_logs(r: &mut FileReader, now: u64) -> Vec<String> {
    let Some(b) = r.poll(Signal::Logs, now).unwrap() else {
        return vec![];
    };
    let token = b.token;
    let req = ExportLogsServiceRequest::decode(b.bytes).unwrap();
    r.commit(Signal::Logs, token).unwrap();
    req.resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .flat_map(|sl| &sl.log_records)
        .map(|lr| match lr.body.as_ref().and_then(|v| v.value.as_ref()) {
            Some(OtlpValue::StringValue(s)) => s.clone(),
            other => panic!("unexpected body {other:?}"),
        })
        .collect()
}

#[test]
fn restart_in_place_is_followed_through_the_open_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let w = MmapWriter::create(&path, &FileConfig::default()).unwrap();
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    log(&w, "before");
    assert_eq!(next_logs(&mut r, SECOND), ["before"]);

    // The writer starts over in the same file.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let restarted = w.start_time_unix_nano() + 1;
    file.write_at(&restarted.to_le_bytes(), header::START_TIME)
        .unwrap();
    log(&w, "after");

    let mut got = vec![];
    for i in 2..10 {
        got.extend(next_logs(&mut r, i * SECOND));
    }
    assert_eq!(got, ["after"]);
    assert_eq!(r.stats().writer_restarts, 1);
    assert_eq!(r.file().start_time_unix_nano(), restarted);

    // The reader still holds the file's reader lock.
    let second = FileReader::open(&path, ReaderOptions::default());
    assert!(
        matches!(second, Err(otlp_mmap_core::FormatError::Locked)),
        "{second:?}"
    );
}
