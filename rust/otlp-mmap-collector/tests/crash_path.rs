//! The crash path through `FileReader`: a writer that died holding claimed
//! slots, and a writer that started over in place.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;

use otlp_mmap_collector::opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use otlp_mmap_collector::opentelemetry_proto::tonic::common::v1::any_value::Value as OtlpValue;
use otlp_mmap_collector::{FileReader, ReaderOptions, Signal};
use otlp_mmap_core::layout::ring_header;
use otlp_mmap_core::{MmapReader, MmapWriter};
use prost::Message;

use common::{config, log, start_over_in_place};

const SECOND: u64 = 1_000_000_000;

/// Claims the next events sequence like a writer thread that is then killed.
fn claim_and_die(path: &Path) {
    let r = MmapReader::open(path, false).unwrap();
    let off = r.layout().events.offset + ring_header::WRITER_INDEX;
    r.region()
        .atomic_i64(off)
        .unwrap()
        .fetch_add(1, Ordering::AcqRel);
}

/// Polls and commits logs until `rounds` polls in a row give nothing;
/// returns the bodies in order.
fn drain_logs(r: &mut FileReader, now: &mut u64) -> Vec<String> {
    let mut bodies = Vec::new();
    let mut idle = 0;
    while idle < 3 {
        *now += SECOND / 2;
        match r.poll(Signal::Logs, *now).unwrap() {
            Some(b) => {
                let req = ExportLogsServiceRequest::decode(b.bytes).unwrap();
                let token = b.token;
                for rl in req.resource_logs {
                    for sl in rl.scope_logs {
                        for lr in sl.log_records {
                            match lr.body.and_then(|b| b.value) {
                                Some(OtlpValue::StringValue(s)) => bodies.push(s),
                                other => panic!("unexpected body {other:?}"),
                            }
                        }
                    }
                }
                r.commit(Signal::Logs, token).unwrap();
                idle = 0;
            }
            None => idle += 1,
        }
    }
    bodies
}

#[test]
fn a_dead_writers_claimed_slots_are_skipped_and_everything_published_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let w = MmapWriter::create(&path, &config()).unwrap();
    let opts = ReaderOptions {
        stuck_slot_timeout_nanos: 3600 * SECOND,
        ..ReaderOptions::default()
    };
    let mut r = FileReader::open(&path, opts).unwrap();
    let mut now = SECOND;
    log(&w, "a0");
    claim_and_die(&path); // thread 1 killed holding a slot
    log(&w, "a1");
    claim_and_die(&path); // thread 2 too
    log(&w, "a2");
    // While the writer lives, the ring waits (well inside stuck_slot_timeout).
    assert_eq!(r.poll(Signal::Logs, now).unwrap().map(|b| b.items), Some(1));
    let t = r.poll(Signal::Logs, now).unwrap().unwrap().token;
    r.commit(Signal::Logs, t).unwrap();
    assert!(r.poll(Signal::Logs, now + 1).unwrap().is_none());
    assert_eq!(r.stats().abandoned_slots, [0, 0, 0]);
    // The process dies: its lock goes with it, and the reader skips its
    // claimed slots at once (the timeout is an hour).
    drop(w);
    let bodies = drain_logs(&mut r, &mut now);
    assert_eq!(bodies, ["a1", "a2"]);
    let st = r.stats();
    assert_eq!(st.abandoned_slots[Signal::Logs as usize], 2);
    assert_eq!(st.records_read[Signal::Logs as usize], 3);
}

#[test]
fn a_live_writers_stuck_slot_is_skipped_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let w = MmapWriter::create(&path, &config()).unwrap();
    let opts = ReaderOptions {
        stuck_slot_timeout_nanos: 3 * SECOND,
        ..ReaderOptions::default()
    };
    let mut r = FileReader::open(&path, opts).unwrap();
    let mut now = SECOND;
    claim_and_die(&path);
    log(&w, "b0");
    let mut bodies = Vec::new();
    // Half a second per poll: the slot is skipped once 3 s have passed.
    while bodies.is_empty() {
        bodies = drain_logs(&mut r, &mut now);
        assert!(now < 10 * SECOND, "never skipped");
    }
    assert_eq!(bodies, ["b0"]);
    assert!(now >= 4 * SECOND, "skipped before the timeout ({now})");
    assert_eq!(r.stats().abandoned_slots[Signal::Logs as usize], 1);
    drop(w);
}

#[test]
fn a_writer_that_starts_over_in_place_loses_nothing_of_its_new_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let w = MmapWriter::create_with_start_time(&path, &config(), 100).unwrap();
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let mut now = SECOND;
    for i in 0..5 {
        log(&w, &format!("old{i}"));
    }
    assert_eq!(drain_logs(&mut r, &mut now).len(), 5);
    // The writer starts over in place: the same file (same inode) is
    // rewritten with a new start time, reset rings and new records.
    let fresh = dir.path().join("fresh.otlp");
    let w2 = MmapWriter::create_with_start_time(&fresh, &config(), 200).unwrap();
    for i in 0..3 {
        log(&w2, &format!("new{i}"));
    }
    start_over_in_place(&path, &fresh);
    assert_eq!(drain_logs(&mut r, &mut now), ["new0", "new1", "new2"]);
    assert_eq!(r.stats().writer_restarts, 1);
    drop((w, w2));
}
