//! Slots a writer claimed and never published, sequences past `writer_index`,
//! a `reader_index` that moved under the reader: none of them stops a ring or
//! lets a stale slot through.

mod common;

use std::sync::atomic::Ordering;

use common::{config, poke, ring_word};
use otlp_mmap_core::layout::ring_header;
use otlp_mmap_core::proto;
use otlp_mmap_core::ring::StrandedSlots;
use otlp_mmap_core::{FormatError, MmapReader, MmapWriter, RingGeometry, RingKind, Slot};
use proptest::prelude::*;
use prost::Message;

const TIMEOUT: u64 = 1_000;

fn event(i: i64) -> proto::Event {
    proto::Event {
        time_unix_nano: i as u64 + 1,
        ..Default::default()
    }
}

fn setup(
    slots: u64,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    MmapWriter,
    MmapReader,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stranded.otlp");
    let writer = MmapWriter::create(&path, &config(slots, 64, 4096)).unwrap();
    let reader = MmapReader::open(&path, true).unwrap();
    (dir, path, writer, reader)
}

/// Claims the next sequence of the events ring the way a writer does, and
/// never publishes it (the thread that held it was killed).
fn claim_without_publishing(reader: &MmapReader) -> i64 {
    let off = reader.layout().events.offset + ring_header::WRITER_INDEX;
    reader
        .region()
        .atomic_i64(off)
        .unwrap()
        .fetch_add(1, Ordering::AcqRel)
        + 1
}

/// Reads what the ring yields, skipping stranded slots by `policy`; returns
/// the decoded `time_unix_nano` values.
fn drain(
    reader: &MmapReader,
    ring: &mut otlp_mmap_core::ring::RingReader,
    now: u64,
    policy: StrandedSlots,
) -> Vec<u64> {
    let mut got = Vec::new();
    loop {
        match ring.peek(reader.region()) {
            Slot::Ready(b) => got.push(proto::Event::decode(b).unwrap().time_unix_nano),
            Slot::Corrupt(e) => panic!("corrupt: {e}"),
            Slot::Empty => {
                if ring.skip_abandoned(reader.region(), now, policy) {
                    continue;
                }
                break;
            }
        }
        ring.advance();
    }
    ring.release(reader.region()).unwrap();
    got
}

#[test]
fn a_dead_writers_claimed_slots_are_skipped_at_once() {
    let (_d, _p, w, r) = setup(16);
    let mut ring = r.ring_reader(RingKind::Events).unwrap();
    for i in 0..3 {
        w.try_write(RingKind::Events, &event(i)).unwrap();
    }
    claim_without_publishing(&r);
    w.try_write(RingKind::Events, &event(4)).unwrap();
    claim_without_publishing(&r);
    claim_without_publishing(&r);
    w.try_write(RingKind::Events, &event(7)).unwrap();
    claim_without_publishing(&r); // the last claim, with nothing behind it

    // Alive: the reader waits behind the first stranded slot.
    let alive = StrandedSlots::SkipAfter {
        timeout_nanos: TIMEOUT,
    };
    assert_eq!(drain(&r, &mut ring, 0, alive), vec![1, 2, 3]);
    assert_eq!(ring.abandoned(), 0);
    // Dead: every claimed, unpublished slot up to writer_index is skipped.
    assert_eq!(
        drain(&r, &mut ring, 0, StrandedSlots::WriterDead),
        vec![5, 8]
    );
    assert_eq!(
        ring.abandoned(),
        4,
        "abandoned slots equal unpublished claims"
    );
    assert_eq!(
        ring_word(&r, RingKind::Events, ring_header::READER_INDEX),
        8
    );
    // The ring goes on: the next records (were the writer alive) are read.
    w.try_write(RingKind::Events, &event(9)).unwrap();
    assert_eq!(drain(&r, &mut ring, 0, StrandedSlots::WriterDead), vec![10]);
}

#[test]
fn a_live_writers_stuck_slot_is_skipped_only_behind_published_ones_after_the_timeout() {
    let (_d, _p, w, r) = setup(16);
    let mut ring = r.ring_reader(RingKind::Events).unwrap();
    let policy = StrandedSlots::SkipAfter {
        timeout_nanos: TIMEOUT,
    };
    w.try_write(RingKind::Events, &event(0)).unwrap();
    claim_without_publishing(&r);
    // Nothing published behind it: never skipped, however long it waits.
    assert_eq!(drain(&r, &mut ring, 100, policy), vec![1]);
    assert_eq!(drain(&r, &mut ring, 100 + 10 * TIMEOUT, policy), vec![]);
    assert_eq!(ring.abandoned(), 0);
    // A later slot is published: the clock runs from when the stuck slot was
    // first seen (100), so it is skipped once TIMEOUT has passed since then.
    w.try_write(RingKind::Events, &event(2)).unwrap();
    assert_eq!(drain(&r, &mut ring, 100 + TIMEOUT - 1, policy), vec![]);
    assert_eq!(ring.abandoned(), 0);
    assert_eq!(drain(&r, &mut ring, 100 + TIMEOUT, policy), vec![3]);
    assert_eq!(ring.abandoned(), 1);
}

#[test]
fn a_late_publish_of_a_skipped_slot_is_never_read() {
    // 4 slots: the skipped sequence's slot comes round every 4 sequences.
    let (_d, path, w, r) = setup(4);
    let mut ring = r.ring_reader(RingKind::Events).unwrap();
    let g = r.layout().events;
    let stuck = claim_without_publishing(&r);
    w.try_write(RingKind::Events, &event(1)).unwrap();
    assert_eq!(drain(&r, &mut ring, 0, StrandedSlots::WriterDead), vec![2]);
    // The ring comes round to the skipped sequence's slot a few times.
    let mut i = 2;
    while i < 10 || g.slot_of(ring.next_sequence()) != g.slot_of(stuck) {
        w.try_write(RingKind::Events, &event(i)).unwrap();
        assert_eq!(
            drain(&r, &mut ring, 0, StrandedSlots::WriterDead),
            vec![i as u64 + 1]
        );
        i += 1;
    }
    // A writer claims the slot's current sequence; before it publishes, the
    // slow writer wakes up and publishes the skipped sequence there.
    let current = claim_without_publishing(&r);
    assert_eq!(current, ring.next_sequence());
    let flag = r
        .region()
        .atomic_i32(g.flag_offset(g.slot_of(stuck)))
        .unwrap();
    flag.store(g.flag_of(stuck), Ordering::Release);
    assert!(
        matches!(ring.peek(r.region()), Slot::Empty),
        "the late flag is not read as {current}"
    );
    let policy = StrandedSlots::SkipAfter {
        timeout_nanos: TIMEOUT,
    };
    assert_eq!(drain(&r, &mut ring, 0, policy), vec![]);
    // The current writer publishes: its record is read.
    let rec = event(i).encode_length_delimited_to_vec();
    poke(&path, g.slot_offset(g.slot_of(current)), &rec);
    flag.store(g.flag_of(current), Ordering::Release);
    assert_eq!(drain(&r, &mut ring, 0, policy), vec![i as u64 + 1]);
    assert_eq!(ring.abandoned(), 1);
}

proptest! {
    /// The flag arithmetic behind skipping: a late publish of sequence `s`
    /// (either writer convention) never publishes a later sequence `s + m*n`
    /// of the same slot, for any m below 2^(32-k) laps.
    #[test]
    fn a_late_flag_never_publishes_a_later_lap(
        k in 1u32..=24,
        s in prop_oneof![0i64..1 << 40, ((1i64 << 32) - 4096)..((1i64 << 32) + 4096)],
        m in 1i64..(1 << 7),
    ) {
        let g = RingGeometry { offset: 64, num_buffers: 1 << k, buffer_size: 64 };
        let later = s + m * (1 << k);
        prop_assert!(!g.publishes(g.flag_of(s), later));
        prop_assert!(!g.publishes(g.upstream_flag_of(s), later));
    }
}

#[test]
fn a_sequence_past_writer_index_is_never_read_even_with_a_matching_stale_flag() {
    // Indices placed just below 2^32; every other slot holds a flag 0 left
    // from an earlier lap. For sequences just past 2^32 the reference Rust
    // writer's flag is 0, so without the writer_index check those slots would
    // pass as published.
    const N: u64 = 16;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wrap.otlp");
    let w = MmapWriter::create(&path, &config(N, 64, 4096)).unwrap();
    let g = w.layout().events;
    let start: i64 = (1 << 32) - 3;
    for field in [ring_header::READER_INDEX, ring_header::WRITER_INDEX] {
        poke(&path, g.offset + field, &start.to_le_bytes());
    }
    for slot in 0..N {
        poke(&path, g.flag_offset(slot), &0i32.to_le_bytes());
        // Stale bytes that decode: a record from the earlier lap.
        let stale = event(1000 + slot as i64).encode_length_delimited_to_vec();
        poke(&path, g.slot_offset(slot), &stale);
    }
    for i in 0..5 {
        w.try_write(RingKind::Events, &event(i)).unwrap(); // sequences 2^32-2 ..= 2^32+2
    }
    let r = MmapReader::open(&path, true).unwrap();
    let mut ring = r.ring_reader(RingKind::Events).unwrap();
    assert_eq!(
        drain(
            &r,
            &mut ring,
            0,
            StrandedSlots::SkipAfter {
                timeout_nanos: TIMEOUT
            }
        ),
        vec![1, 2, 3, 4, 5],
        "exactly the five records, nothing stale past writer_index"
    );
    assert_eq!(ring.next_sequence(), (1 << 32) + 3);
}

#[test]
fn release_is_a_compare_and_swap_that_notices_a_writer_restart() {
    let (_d, path, w, r) = setup(16);
    let mut ring = r.ring_reader(RingKind::Events).unwrap();
    for i in 0..3 {
        w.try_write(RingKind::Events, &event(i)).unwrap();
    }
    assert_eq!(drain(&r, &mut ring, 0, StrandedSlots::WriterDead).len(), 3);
    // The writer starts over in place: the ring is reset under the reader.
    let g = r.layout().events;
    poke(
        &path,
        g.offset + ring_header::READER_INDEX,
        &(-1i64).to_le_bytes(),
    );
    w.try_write(RingKind::Events, &event(3)).unwrap();
    ring.advance();
    let err = ring.release(r.region()).unwrap_err();
    assert_eq!(
        err,
        FormatError::ReaderIndexMoved {
            expected: 2,
            found: -1
        }
    );
    assert_eq!(
        ring_word(&r, RingKind::Events, ring_header::READER_INDEX),
        -1,
        "nothing stored over the writer's reset"
    );
}

#[test]
fn a_reader_index_reset_under_an_idle_reader_is_noticed_without_a_release() {
    // A reader with nothing left to release never stores (so never fails a
    // compare-and-swap): it waits for a sequence a reset ring may never
    // reach, unless it looks at reader_index.
    let (_d, path, w, r) = setup(4);
    let mut ring = r.ring_reader(RingKind::Events).unwrap();
    assert!(!ring.reader_index_moved(r.region()));
    for round in 0..3 {
        for i in 0..3 {
            w.try_write(RingKind::Events, &event(round * 3 + i))
                .unwrap();
        }
        assert_eq!(drain(&r, &mut ring, 0, StrandedSlots::WriterDead).len(), 3);
        assert!(!ring.reader_index_moved(r.region()), "its own release");
    }
    let g = r.layout().events;
    for field in [ring_header::READER_INDEX, ring_header::WRITER_INDEX] {
        poke(&path, g.offset + field, &(-1i64).to_le_bytes());
    }
    assert!(ring.reader_index_moved(r.region()));
    // The new writer's records are past nothing the reader waits for.
    w.try_write(RingKind::Events, &event(0)).unwrap();
    assert!(matches!(ring.peek(r.region()), Slot::Empty));
    assert!(ring.reader_index_moved(r.region()));
    // A reader opened now starts with the new writer's first record.
    let mut fresh = r.ring_reader(RingKind::Events).unwrap();
    assert!(!fresh.reader_index_moved(r.region()));
    assert_eq!(drain(&r, &mut fresh, 0, StrandedSlots::WriterDead).len(), 1);
}
