//! The measurement slots a reader consumed stay counted when the
//! writer starts over in place (abandoned slots of the old stream included),
//! so the drained check does not see "new measurements" that never came.

mod common;

use common::{config, start_over_in_place};

use std::sync::atomic::Ordering;

use otlp_mmap_collector::file_reader::{NotRemoved, RemoveOutcome};
use otlp_mmap_collector::{FileReader, ReaderOptions, Signal};
use otlp_mmap_core::layout::ring_header;
use otlp_mmap_core::proto;
use otlp_mmap_core::{MmapReader, MmapWriter, RingKind};

const SECOND: u64 = 1_000_000_000;

#[test]
fn records_consumed_does_not_go_back_at_a_restart_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let w = MmapWriter::create_with_start_time(&path, &config(), 100).unwrap();
    let opts = ReaderOptions {
        stuck_slot_timeout_nanos: SECOND,
        ..ReaderOptions::default()
    };
    let mut r = FileReader::open(&path, opts).unwrap();
    // A measurement slot claimed and never published, then one published.
    let raw = MmapReader::open(&path, false).unwrap();
    let off = raw.layout().measurements.offset + ring_header::WRITER_INDEX;
    raw.region()
        .atomic_i64(off)
        .unwrap()
        .fetch_add(1, Ordering::AcqRel);
    w.try_write(RingKind::Measurements, &proto::Measurement::default())
        .unwrap();
    let mut now = SECOND;
    while r.records_consumed(Signal::Metrics) < 2 {
        now += SECOND / 2;
        assert!(r.poll(Signal::Metrics, now).unwrap().is_none());
        assert!(now < 10 * SECOND, "never skipped");
    }
    assert_eq!(r.stats().abandoned_slots[Signal::Metrics as usize], 1);
    r.collect_metrics(now);
    if let Some(b) = r.poll(Signal::Metrics, now).unwrap() {
        let t = b.token;
        r.commit(Signal::Metrics, t).unwrap();
    }
    let before = r.records_consumed(Signal::Metrics);

    // The writer starts over in place and writes no measurement.
    let fresh = dir.path().join("fresh.otlp");
    let w2 = MmapWriter::create_with_start_time(&fresh, &config(), 200).unwrap();
    start_over_in_place(&path, &fresh);
    now += SECOND;
    assert!(r.poll(Signal::Logs, now).unwrap().is_none());
    assert_eq!(r.stats().writer_restarts, 1);
    if let Some(b) = r.poll(Signal::Metrics, now).unwrap() {
        let t = b.token;
        r.commit(Signal::Metrics, t).unwrap();
    }
    // Taken from the ring so far: it never goes back.
    assert!(
        r.records_consumed(Signal::Metrics) >= before,
        "{} < {before}",
        r.records_consumed(Signal::Metrics)
    );
    // Nothing came since the last collection: the metrics are drained (the
    // file stays only because its writer is alive).
    assert_eq!(
        r.remove_if_drained(&[Signal::Metrics]),
        Err(RemoveOutcome::Kept(NotRemoved::WriterNotKnownGone))
    );
    drop((w, w2));
}
