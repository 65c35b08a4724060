//! Measurements the reader aggregated after a collection whose
//! batch is not committed yet are delivered even when the writer starts
//! over in place meanwhile.

mod common;

use common::{add, config, monotonic_counter, named_sums, start_over_in_place};

use otlp_mmap_collector::{CollectOutcome, FileReader, ReaderOptions, Signal};
use otlp_mmap_core::MmapWriter;

const SECOND: u64 = 1_000_000_000;

/// The sum values of a metrics batch.
fn sums(bytes: &[u8]) -> Vec<i64> {
    named_sums(bytes).into_iter().map(|(_, v)| v).collect()
}

#[test]
fn measurements_read_while_a_metrics_batch_is_pending_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let w = MmapWriter::create_with_start_time(&path, &config(), 100).unwrap();
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let counter = monotonic_counter(&w, 0, "c");
    let add = |v| add(&w, counter, v);
    add(5);
    assert_eq!(r.collect_metrics(SECOND), CollectOutcome::Collected(1));
    // The batch (5) is handed out; the pipeline refuses it for now.
    let b = r.poll(Signal::Metrics, SECOND).unwrap().unwrap();
    let (first, token) = (sums(b.bytes), b.token);
    assert_eq!(first, [5]);
    // Another measurement is read meanwhile (as the receiver's collection
    // attempt does before it finds the previous batch still pending).
    add(7);
    r.read_measurements(2 * SECOND);
    assert_eq!(r.stats().records_read[Signal::Metrics as usize], 2);

    // The writer starts over in place; a logs poll follows it.
    let fresh = dir.path().join("fresh.otlp");
    let w2 = MmapWriter::create_with_start_time(&fresh, &config(), 200).unwrap();
    start_over_in_place(&path, &fresh);
    assert!(r.poll(Signal::Logs, 3 * SECOND).unwrap().is_none());
    assert_eq!(r.stats().writer_restarts, 1);

    r.commit(Signal::Metrics, token).unwrap();
    assert_eq!(r.stats().measurements_lost_at_restart, 0);
    // Every later batch: the old stream's last value, 12, must come.
    let mut later = vec![];
    for i in 4..8 {
        r.collect_metrics(i * SECOND);
        if let Some(b) = r.poll(Signal::Metrics, i * SECOND).unwrap() {
            later.extend(sums(b.bytes));
            let t = b.token;
            r.commit(Signal::Metrics, t).unwrap();
        }
    }
    assert!(
        later.contains(&12),
        "the 7 read before the restart was lost: {later:?}"
    );
    drop((w, w2));
}

/// A writer starts over ten times while a metrics batch is handed out and
/// refused, each incarnation adding 100 + i, which the reader reads (as the
/// receiver's collection attempts do); then the batch is accepted. Returns
/// the sums delivered after it, batch by batch, and the reader.
fn restart_ten_times_while_refused(opts: ReaderOptions) -> (Vec<i64>, FileReader) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let w = MmapWriter::create_with_start_time(&path, &config(), 100).unwrap();
    let mut r = FileReader::open(&path, opts).unwrap();
    add(&w, monotonic_counter(&w, 0, "c"), 1);
    assert_eq!(r.collect_metrics(SECOND), CollectOutcome::Collected(1));
    let token = r.poll(Signal::Metrics, SECOND).unwrap().unwrap().token;
    let mut writers = vec![w];
    for i in 1..=10u64 {
        let fresh = dir.path().join(format!("fresh-{i}.otlp"));
        let wi = MmapWriter::create_with_start_time(&fresh, &config(), 100 + i).unwrap();
        add(&wi, monotonic_counter(&wi, 0, "c"), 100 + i as i64);
        start_over_in_place(&path, &fresh);
        assert!(r.poll(Signal::Logs, (2 * i) * SECOND).unwrap().is_none());
        r.read_measurements((2 * i + 1) * SECOND);
        assert_eq!(r.stats().records_read[Signal::Metrics as usize], 1 + i);
        writers.push(wi);
    }
    assert_eq!(r.stats().writer_restarts, 10);
    r.commit(Signal::Metrics, token).unwrap();
    let mut later = vec![];
    for i in 30..50 {
        if let Some(b) = r.poll(Signal::Metrics, i * SECOND).unwrap() {
            later.extend(sums(b.bytes));
            let t = b.token;
            r.commit(Signal::Metrics, t).unwrap();
        }
    }
    // The current stream's aggregates come with the next collection.
    assert_eq!(r.collect_metrics(60 * SECOND), CollectOutcome::Collected(1));
    let b = r.poll(Signal::Metrics, 60 * SECOND).unwrap().unwrap();
    assert_eq!(sums(b.bytes), [110]);
    drop(writers);
    (later, r)
}

#[test]
fn a_writer_starting_over_again_and_again_while_a_metrics_batch_is_pending_loses_nothing() {
    // Each old stream's aggregates in a batch of their own, in order (the
    // first stream's sum again, as cumulative values are).
    let (later, r) = restart_ten_times_while_refused(ReaderOptions::default());
    assert_eq!(later, [1, 101, 102, 103, 104, 105, 106, 107, 108, 109]);
    assert_eq!(r.stats().measurements_lost_at_restart, 0);
}

#[test]
fn the_batches_kept_from_old_streams_are_bounded_and_what_they_drop_is_counted() {
    // Batches of old streams wait up to 4 x max_batch_bytes: a few of
    // these small ones.
    let opts = ReaderOptions {
        max_batch_bytes: 100,
        ..ReaderOptions::default()
    };
    let (later, r) = restart_ten_times_while_refused(opts);
    let kept = later.len();
    assert!((2..10).contains(&kept), "{later:?}");
    // The oldest are kept, in order; each later stream read one
    // measurement, counted lost (the first stream's was collected).
    let expected: Vec<i64> = std::iter::once(1).chain(101..).take(kept).collect();
    assert_eq!(later, expected);
    assert_eq!(
        r.stats().measurements_lost_at_restart,
        10 - kept as u64,
        "{later:?}"
    );
}
