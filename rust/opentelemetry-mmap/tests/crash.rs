//! Crash safety: a child process writes spans and logs, leaves some spans
//! unfinished and aborts; everything it wrote is in the file afterwards.

mod common;

use std::collections::HashSet;
use std::process::Command;

use common::{end_of, read_all, start_of};
use opentelemetry::KeyValue;
use opentelemetry::logs::{LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::trace::{Span, Tracer, TracerProvider};
use opentelemetry_mmap::{MmapExporterFile, MmapLoggerProvider, MmapTracerProvider};

const CHILD_ENV: &str = "OPENTELEMETRY_MMAP_CRASH_CHILD";
const N: usize = 500;
const K: usize = 7;

/// The child's part; a no-op unless the parent started this binary for it.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let file = MmapExporterFile::builder().with_path(path).build().unwrap();
    let tracer = MmapTracerProvider::new(&file).tracer("crash");
    let logger = MmapLoggerProvider::new(&file).logger("crash");
    for i in 0..N {
        let mut span = tracer.start("finished");
        span.set_attribute(KeyValue::new("i", i as i64));
        let mut rec = logger.create_log_record();
        rec.set_severity_number(Severity::Info);
        rec.add_attribute("i", i as i64);
        logger.emit(rec);
        span.end();
    }
    let unfinished: Vec<_> = (0..K).map(|_| tracer.start("in flight")).collect();
    std::mem::forget(unfinished);
    std::process::abort();
}

#[test]
fn records_survive_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.otlp");
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .status()
        .unwrap();
    assert!(!status.success(), "the child must have aborted");

    // The kernel released the writer's liveness lock when the child died.
    let f = std::fs::File::open(&path).unwrap();
    assert!(!otlp_mmap_core::lock::writer_lock_held(&f).unwrap());
    let r = read_all(&path);
    let starts: Vec<_> = r.spans.iter().filter(|e| start_of(e).is_some()).collect();
    let ends: HashSet<_> = r
        .spans
        .iter()
        .filter(|e| end_of(e).is_some())
        .map(|e| e.span_id.clone())
        .collect();
    let finished: Vec<_> = starts
        .iter()
        .filter(|e| start_of(e).unwrap().name == "finished")
        .collect();
    let in_flight: Vec<_> = starts
        .iter()
        .filter(|e| start_of(e).unwrap().name == "in flight")
        .collect();
    assert_eq!(finished.len(), N);
    assert_eq!(ends.len(), N);
    assert!(finished.iter().all(|e| ends.contains(&e.span_id)));
    assert_eq!(in_flight.len(), K);
    assert!(in_flight.iter().all(|e| !ends.contains(&e.span_id)));
    assert_eq!(r.events.len(), N);
    let is: HashSet<_> = r
        .events
        .iter()
        .map(|e| match r.attrs(&e.attributes)[0].1 {
            otlp_mmap_core::proto::any_value::Value::IntValue(i) => i,
            ref other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(is.len(), N);
}
