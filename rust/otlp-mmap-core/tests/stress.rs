//! Many writer threads and one concurrent reader on one file, with a small
//! ring that wraps thousands of times: every record arrives exactly once,
//! intact and in each thread's order; without retries, what is not delivered
//! is exactly what was counted as dropped.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use common::config;
use otlp_mmap_core::proto::{self, measurement::Value};
use otlp_mmap_core::{MmapReader, MmapWriter, RingKind, Slot, WriteError};
use prost::Message;

const THREADS: u64 = 4;
const SLOTS: u64 = 64;

/// A record that names its thread and counter, with a checksum over both
/// (and a payload) so a torn or mixed-up slot is detected.
fn record(thread: u64, counter: u64, metric_ref: i64) -> proto::Measurement {
    proto::Measurement {
        metric_ref,
        attributes: Vec::new(),
        time_unix_nano: thread << 48 | counter,
        value: Some(Value::AsLong(check(thread, counter))),
        span_context: Some(proto::SpanContext {
            span_id: thread.to_le_bytes().to_vec(),
            trace_id: [counter.to_le_bytes(), (!counter).to_le_bytes()].concat(),
            flags: counter as u32 ^ 0x5a5a_5a5a,
        }),
    }
}

fn check(thread: u64, counter: u64) -> i64 {
    (thread.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ counter.wrapping_mul(0xbf58_476d_1ce4_e5b9))
        as i64
}

/// Checks that a record is one `record()` made, and returns its (thread, counter).
fn parse(m: &proto::Measurement, metric_ref: i64) -> (u64, u64) {
    let thread = m.time_unix_nano >> 48;
    let counter = m.time_unix_nano & ((1 << 48) - 1);
    assert!(thread < THREADS, "bad thread {thread}");
    assert_eq!(m, &record(thread, counter, metric_ref), "torn record");
    (thread, counter)
}

/// Drains the ring on this thread until `done` is set and the ring is empty.
/// Calls `on_record` for each decoded record; releases after each record.
fn read_until_done(
    reader: &MmapReader,
    done: &AtomicBool,
    mut on_record: impl FnMut(&proto::Measurement),
) -> u64 {
    let mut ring = reader.ring_reader(RingKind::Measurements).unwrap();
    let mut n = 0u64;
    loop {
        match ring.peek(reader.region()) {
            Slot::Ready(b) => {
                on_record(&proto::Measurement::decode(b).expect("decodes"));
                ring.advance();
                ring.release(reader.region()).unwrap();
                n += 1;
            }
            Slot::Corrupt(e) => panic!("corrupt slot {}: {e}", ring.next_sequence()),
            Slot::Empty => {
                // Writers are done only after their last publish; the flag
                // of the record after the last one read is then visible.
                if done.load(Ordering::Acquire) && matches!(ring.peek(reader.region()), Slot::Empty)
                {
                    return n;
                }
                thread::yield_now();
            }
        }
    }
}

fn setup() -> (tempfile::TempDir, Arc<MmapWriter>, MmapReader, i64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stress.otlp");
    let writer = Arc::new(MmapWriter::create(&path, &config(SLOTS, 128, 1024)).unwrap());
    let metric_ref = writer
        .intern_message(&proto::MetricRef {
            name: "stress".into(),
            ..Default::default()
        })
        .unwrap();
    let reader = MmapReader::open(&path, true).unwrap();
    (dir, writer, reader, metric_ref)
}

#[test]
fn four_writers_one_reader_every_record_exactly_once_in_thread_order() {
    const PER_THREAD: u64 = 50_000;
    let (_d, writer, reader, metric_ref) = setup();
    let done = AtomicBool::new(false);
    let mut next = vec![0u64; THREADS as usize];
    thread::scope(|s| {
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let writer = Arc::clone(&writer);
                s.spawn(move || {
                    let mut retries = 0u64;
                    for c in 0..PER_THREAD {
                        let m = record(t, c, metric_ref);
                        loop {
                            match writer.try_write(RingKind::Measurements, &m) {
                                Ok(_) => break,
                                Err(WriteError::Full) => {
                                    retries += 1;
                                    if retries.is_multiple_of(8) {
                                        thread::yield_now();
                                    } else {
                                        std::hint::spin_loop();
                                    }
                                }
                                Err(e) => panic!("{e:?}"),
                            }
                        }
                    }
                    retries
                })
            })
            .collect();
        let reader_thread = s.spawn(|| {
            read_until_done(&reader, &done, |m| {
                let (t, c) = parse(m, metric_ref);
                assert_eq!(c, next[t as usize], "thread {t}: out of order or lost");
                next[t as usize] += 1;
            })
        });
        let retries: u64 = writers.into_iter().map(|h| h.join().unwrap()).sum();
        done.store(true, Ordering::Release);
        let read = reader_thread.join().unwrap();
        assert_eq!(read, THREADS * PER_THREAD);
        eprintln!("{read} records, {retries} retries on Full");
    });
    assert_eq!(next, vec![PER_THREAD; THREADS as usize]);
    // Retried writes were counted as drops; every written record was delivered.
    let wi = common::writer_index(&reader, RingKind::Measurements);
    assert_eq!(wi, (THREADS * PER_THREAD) as i64 - 1);
    assert_eq!(common::reader_index(&reader, RingKind::Measurements), wi);
    assert!(
        wi as u64 / SLOTS > 3000,
        "the ring wrapped {} times",
        wi as u64 / SLOTS
    );
}

#[test]
fn writers_that_never_retry_delivered_plus_dropped_equals_written() {
    const PER_THREAD: u64 = 20_000;
    let (_d, writer, reader, metric_ref) = setup();
    let done = AtomicBool::new(false);
    let mut delivered = vec![Vec::new(); THREADS as usize];
    let mut ok_counts = Vec::new();
    thread::scope(|s| {
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let writer = Arc::clone(&writer);
                s.spawn(move || {
                    let mut ok = Vec::new();
                    for c in 0..PER_THREAD {
                        match writer.try_write(RingKind::Measurements, &record(t, c, metric_ref)) {
                            Ok(_) => ok.push(c),
                            Err(WriteError::Full) => {}
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                    ok
                })
            })
            .collect();
        let reader_thread = s.spawn(|| {
            read_until_done(&reader, &done, |m| {
                let (t, c) = parse(m, metric_ref);
                delivered[t as usize].push(c);
            })
        });
        ok_counts = writers.into_iter().map(|h| h.join().unwrap()).collect();
        done.store(true, Ordering::Release);
        reader_thread.join().unwrap();
    });
    let drops = &writer.ring(RingKind::Measurements).drops;
    let full = drops.full.load(Ordering::Relaxed);
    let n_delivered: u64 = delivered.iter().map(|d| d.len() as u64).sum();
    assert_eq!(drops.too_large.load(Ordering::Relaxed), 0);
    assert_eq!(n_delivered + full, THREADS * PER_THREAD);
    // Exactly the accepted writes were delivered, in each thread's order.
    assert_eq!(delivered, ok_counts);
    eprintln!("delivered {n_delivered}, dropped {full}");
}
