//! A claimed slot is always published, whatever its encoder does: when the
//! encoder writes a different number of bytes than it announced, or panics,
//! the slot is published as a record every reader rejects (a length prefix
//! that overflows the slot), the drop is counted, and the ring goes on.

mod common;

use std::sync::atomic::Ordering;

use common::config;
use otlp_mmap_core::proto;
use otlp_mmap_core::{FormatError, MmapReader, MmapWriter, RingKind, Slot, WriteError};
use prost::Message;

fn event(text: &str) -> proto::Event {
    proto::Event {
        severity_text: text.into(),
        ..Default::default()
    }
}

/// The next slot of `ring`, which must be a published record, decoded.
fn next_event(reader: &MmapReader, ring: &mut otlp_mmap_core::RingReader) -> proto::Event {
    let got = match ring.peek(reader.region()) {
        Slot::Ready(b) => proto::Event::decode(b).unwrap(),
        other => panic!("expected a record at {}: {other:?}", ring.next_sequence()),
    };
    ring.advance();
    got
}

/// The next slot of `ring`, which must be published and rejected.
fn next_is_rejected(reader: &MmapReader, ring: &mut otlp_mmap_core::RingReader) {
    match ring.peek(reader.region()) {
        Slot::Corrupt(FormatError::SlotOverflow { len, max }) => {
            assert!(len > max, "{len} <= {max}");
        }
        other => panic!(
            "expected a rejected slot at {}: {other:?}",
            ring.next_sequence()
        ),
    }
    ring.advance();
}

#[test]
fn size_mismatch_and_panic_publish_a_rejected_slot_and_the_ring_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mismatch.otlp");
    let w = MmapWriter::create(&path, &config(4, 128, 4096)).unwrap();
    let reader = MmapReader::open(&path, true).unwrap();
    let mut ring = reader.ring_reader(RingKind::Events).unwrap();
    let ok = event("ok");
    let len = ok.encoded_len();

    // Lap 1: valid records in every slot, read and released, so that each
    // slot holds bytes a stale reuse would pass off as a record.
    for i in 0..4 {
        w.try_write(RingKind::Events, &event(&format!("lap1-{i}")))
            .unwrap();
    }
    for i in 0..4 {
        assert_eq!(next_event(&reader, &mut ring), event(&format!("lap1-{i}")));
    }
    ring.release(reader.region()).unwrap();

    // Fewer bytes than announced.
    let short = w.try_write_with(RingKind::Events, len, |buf| {
        let mut b = &mut buf[..];
        ok.encode(&mut b).unwrap();
        len - 1
    });
    assert_eq!(short, Err(WriteError::SizeMismatch));
    // More bytes than announced (an encoder that stopped at the slot's end).
    let long = w.try_write_with(RingKind::Events, len, |buf| {
        buf.fill(0);
        len + 5
    });
    assert_eq!(long, Err(WriteError::SizeMismatch));
    // A panicking encoder, after it wrote part of the record.
    let panicked = w.try_write_with(RingKind::Events, len, |buf| {
        buf[0] = 0x0a;
        panic!("encoder bug (expected by this test)")
    });
    assert_eq!(panicked, Err(WriteError::EncoderPanicked));
    // And a good record after them.
    assert_eq!(w.try_write(RingKind::Events, &ok), Ok(7));

    let drops = &w.ring(RingKind::Events).drops;
    assert_eq!(drops.size_mismatch.load(Ordering::Relaxed), 2);
    assert_eq!(drops.encoder_panics.load(Ordering::Relaxed), 1);
    assert_eq!(drops.encoding_errors(), 3);
    assert_eq!(drops.total(), 3);

    // The reader skips the three rejected slots and reads the good record.
    for _ in 0..3 {
        next_is_rejected(&reader, &mut ring);
    }
    assert_eq!(next_event(&reader, &mut ring), ok);
    assert!(matches!(ring.peek(reader.region()), Slot::Empty));
    ring.release(reader.region()).unwrap();
    // Nothing is stranded: the ring takes a full lap of new records.
    for i in 0..4 {
        w.try_write(RingKind::Events, &event(&format!("lap3-{i}")))
            .unwrap();
    }
    for i in 0..4 {
        assert_eq!(next_event(&reader, &mut ring), event(&format!("lap3-{i}")));
    }
}

/// The rejecting prefix overflows slots of every size a writer may choose,
/// around each point where the prefix grows by a byte.
#[test]
fn the_rejected_slot_is_rejected_for_every_slot_size() {
    let dir = tempfile::tempdir().unwrap();
    for size in [16, 127, 128, 129, 255, 16383, 16384, 16385, 1 << 20] {
        let path = dir.path().join(format!("size-{size}.otlp"));
        let w = MmapWriter::create(&path, &config(2, size, 0)).unwrap();
        let reader = MmapReader::open(&path, true).unwrap();
        let max = w.ring(RingKind::Spans).max_message_len();
        for len in [0, 1, max] {
            let r = w.try_write_with(RingKind::Spans, len, |_| len + 1);
            assert_eq!(r, Err(WriteError::SizeMismatch), "size {size}, len {len}");
            let mut ring = reader.ring_reader(RingKind::Spans).unwrap();
            match ring.peek(reader.region()) {
                Slot::Corrupt(FormatError::SlotOverflow { len: got, max }) => {
                    assert_eq!(got, size, "size {size}, len {len}");
                    assert!(got > max);
                }
                other => panic!("size {size}, len {len}: {other:?}"),
            }
            ring.advance();
            ring.release(reader.region()).unwrap();
        }
    }
}
