//! Records the SDK cannot write whole are dropped and counted, never written
//! half-way: a record that needs a dictionary entry the file cannot store (the
//! dictionary is full, or the filesystem has no space to grow the file), and a
//! record whose encoding went wrong (its slot is published as one the reader
//! rejects).

mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;

use common::{read_all, start_of};
use opentelemetry::KeyValue;
use opentelemetry::logs::{LogRecord, Logger, LoggerProvider};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Span, Tracer, TracerProvider};
use opentelemetry_mmap::{
    DropStats, MmapExporterFile, MmapLoggerProvider, MmapMeterProvider, MmapTracerProvider,
};
use otlp_mmap_core::{FormatError, MmapReader, RingKind, Slot, WriteError};

/// A file whose dictionary cannot grow past its initial 64 KiB.
fn small_dictionary(dir: &tempfile::TempDir) -> MmapExporterFile {
    MmapExporterFile::builder()
        .with_path(dir.path().join("d.otlp"))
        .with_dictionary_max_size(64 << 10)
        .build()
        .unwrap()
}

#[test]
fn a_record_whose_key_cannot_be_stored_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let file = small_dictionary(&dir);
    let huge_key = "k".repeat(100 << 10);
    let tracer = MmapTracerProvider::new(&file).tracer("t");
    let mut span = tracer.start("with an unstorable key");
    span.set_attribute(KeyValue::new(huge_key.clone(), 1_i64));
    span.end();
    tracer
        .span_builder("started with it")
        .with_attributes([KeyValue::new(huge_key.clone(), 2_i64)])
        .start(&tracer)
        .end();
    tracer.start("fine").end();
    let logger = MmapLoggerProvider::new(&file).logger("l");
    let mut rec = logger.create_log_record();
    rec.add_attribute(huge_key.clone(), 3_i64);
    logger.emit(rec);
    let mut rec = logger.create_log_record();
    rec.add_attribute("small", 4_i64);
    logger.emit(rec);
    let meter = MmapMeterProvider::new(&file).meter("m");
    let counter = meter.u64_counter("c").build();
    counter.add(1, &[KeyValue::new(huge_key.clone(), 5_i64)]);
    counter.add(1, &[KeyValue::new("small", 6_i64)]);

    let stats = file.drop_stats();
    assert_eq!(
        stats,
        DropStats {
            spans: 2, // the UpdateAttributes and the StartSpan that carried the key
            logs: 1,
            measurements: 1,
            dictionary: 4, // each attempt to store the key
            dictionary_no_space: 0,
            missing_entry: 4,
            encoding_errors: 0,
        }
    );
    let r = read_all(file.path());
    // Everything else was written, and no record carries the key as ref 0.
    let starts: Vec<_> = r.spans.iter().filter_map(start_of).collect();
    assert_eq!(
        starts.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["with an unstorable key", "fine"]
    );
    assert_eq!(r.spans.len(), 5, "2 starts, 3 ends; no UpdateAttributes");
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.attrs(&r.events[0].attributes)[0].0, "small");
    assert_eq!(r.measurements.len(), 1);
    assert_eq!(r.attrs(&r.measurements[0].attributes)[0].0, "small");
}

#[test]
fn measurements_of_an_instrument_without_a_definition_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let file = small_dictionary(&dir);
    let meter = MmapMeterProvider::new(&file).meter("m");
    // The instrument's definition (a MetricRef with this name) does not fit.
    let counter = meter.u64_counter("n".repeat(100 << 10)).build();
    for _ in 0..3 {
        counter.add(1, &[]);
    }
    let stats = file.drop_stats();
    assert_eq!(stats.measurements, 3);
    assert_eq!(stats.missing_entry, 3);
    assert_eq!(stats.dictionary, 1);
    assert!(read_all(file.path()).measurements.is_empty());
}

#[test]
fn encoding_errors_are_counted_and_the_reader_skips_their_slots() {
    let dir = tempfile::tempdir().unwrap();
    let file = small_dictionary(&dir);
    let w = file.writer();
    assert_eq!(
        w.try_write_with(RingKind::Spans, 40, |_| 39),
        Err(WriteError::SizeMismatch)
    );
    let tracer = MmapTracerProvider::new(&file).tracer("t");
    tracer.start("after").end();
    let stats = file.drop_stats();
    assert_eq!(stats.encoding_errors, 1);
    assert_eq!(stats.spans, 1);

    let reader = MmapReader::open(file.path(), false).unwrap();
    let mut ring = reader.ring_reader(RingKind::Spans).unwrap();
    assert!(matches!(
        ring.peek(reader.region()),
        Slot::Corrupt(FormatError::SlotOverflow { .. })
    ));
    ring.advance();
    let mut after = 0;
    while let Slot::Ready(_) = ring.peek(reader.region()) {
        after += 1;
        ring.advance();
    }
    assert_eq!(after, 2, "StartSpan and EndSpan of the next span");
}

const CHILD_ENV: &str = "OPENTELEMETRY_MMAP_NO_SPACE_CHILD";
/// The child's RLIMIT_FSIZE: room for the file as created, not for a large key.
const LIMIT: u64 = 192 << 10;

/// The child's part: a key that needs the file to grow past its
/// `RLIMIT_FSIZE`. A no-op unless the parent started this binary for it.
#[test]
fn no_space_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let file = MmapExporterFile::builder()
        .with_path(path)
        .with_span_ring(16, 512)
        .with_log_ring(16, 512)
        .with_metric_ring(16, 256)
        .build()
        .unwrap();
    let len = std::fs::metadata(file.path()).unwrap().len();
    assert!(
        len < LIMIT,
        "the file as created ({len}) must fit the limit"
    );
    let tracer = MmapTracerProvider::new(&file).tracer("t");
    tracer
        .span_builder("needs space")
        .with_attributes([KeyValue::new("k".repeat(LIMIT as usize), 1_i64)])
        .start(&tracer)
        .end();
    tracer.start("fits").end();
    let stats = file.drop_stats();
    assert_eq!(
        stats,
        DropStats {
            spans: 1,
            dictionary: 1,
            dictionary_no_space: 1,
            missing_entry: 1,
            ..DropStats::default()
        }
    );
    assert!(std::fs::metadata(file.path()).unwrap().len() <= LIMIT);
    let r = read_all(file.path());
    let starts: Vec<_> = r.spans.iter().filter_map(start_of).collect();
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].name, "fits");
    println!("CHILD-OK {stats:?}");
}

#[test]
#[allow(unsafe_code)]
fn a_key_that_needs_space_the_filesystem_refuses_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "no_space_child",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, dir.path().join("s.otlp"));
    // SAFETY: between fork and exec the closure calls only setrlimit and
    // signal, both async-signal-safe, on values prepared before the fork.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0
                || libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed ({})\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("CHILD-OK"),
        "the child did not run\n{stdout}"
    );
}
