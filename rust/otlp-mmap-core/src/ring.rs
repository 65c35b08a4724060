//! Ring buffers: the multi-producer writer side and the single-consumer reader side.
//!
//! Both are safe code over [`SharedRegion`]; the protocol (claim with a CAS on
//! `writer_index`, fill, publish the availability flag with release ordering;
//! read when the flag matches with acquire ordering, then store `reader_index`
//! with release ordering) is what makes the accesses exclusive.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::error::FormatError;
use crate::layout::{RingGeometry, ring_header};
use crate::region::SharedRegion;

/// Why a write did not happen. The record is dropped and counted either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// Every slot holds a record the reader has not released yet.
    Full,
    /// The length-delimited record is larger than a slot.
    TooLarge,
    /// The encoder wrote a different number of bytes than it announced. The
    /// slot was published holding a length prefix that overflows it, which
    /// every reader rejects as corrupt (see [`unframe`]).
    SizeMismatch,
    /// The encoder panicked. The panic was caught and the slot published as
    /// for [`SizeMismatch`](Self::SizeMismatch).
    EncoderPanicked,
}

/// Drop counters of one ring, kept in the writing process.
#[derive(Debug, Default)]
pub struct DropCounters {
    /// Records dropped because the ring was full.
    pub full: AtomicU64,
    /// Records dropped because they were larger than a slot.
    pub too_large: AtomicU64,
    /// Records whose encoder wrote a different number of bytes than it
    /// announced (a bug in the encoder); each one's slot was published as a
    /// record the reader rejects and counts as corrupt.
    pub size_mismatch: AtomicU64,
    /// Records whose encoder panicked (a bug in the encoder); each one's slot
    /// was published as a record the reader rejects and counts as corrupt.
    pub encoder_panics: AtomicU64,
    /// Records a writer dropped because a dictionary entry they needed (an
    /// attribute key, an event name, a metric definition) could not be
    /// stored. This ring never counts these itself: writers that intern
    /// before they write (the SDK) count them here, so that [`total`](Self::total)
    /// holds every record of this ring that was lost.
    pub missing_entry: AtomicU64,
}

impl DropCounters {
    /// All drops of this ring.
    pub fn total(&self) -> u64 {
        self.full.load(Ordering::Relaxed)
            + self.too_large.load(Ordering::Relaxed)
            + self.size_mismatch.load(Ordering::Relaxed)
            + self.encoder_panics.load(Ordering::Relaxed)
            + self.missing_entry.load(Ordering::Relaxed)
    }

    /// Records published as slots the reader rejects: size mismatches and
    /// encoder panics.
    pub fn encoding_errors(&self) -> u64 {
        self.size_mismatch.load(Ordering::Relaxed) + self.encoder_panics.load(Ordering::Relaxed)
    }
}

/// Number of bytes of the varint that encodes `v`.
pub fn varint_len(v: u64) -> usize {
    prost::encoding::encoded_len_varint(v)
}

/// Bytes at the start of the next slot that a write asks the CPU to fetch
/// for writing (four cache lines: a span start with a few attributes takes
/// three; four measured better than two for spans and counters in
/// `opentelemetry-mmap`'s `benches/spans.rs`).
///
/// A slot is last touched a whole ring lap earlier (or by the reader's core
/// since), so without this the next record's first stores to it miss the
/// cache, and the writer stalls on that miss at its next locked instruction
/// (the claim's compare-and-swap) or when its store buffer fills. When
/// another thread writes that slot next, the hint only moved lines it will
/// take back.
const NEXT_SLOT_PREFETCH: usize = 256;

/// The writer side of one ring. Many threads may write at once.
#[derive(Debug)]
pub struct RingWriter {
    geo: RingGeometry,
    /// Drop counters, readable by the application.
    pub drops: DropCounters,
}

impl RingWriter {
    pub(crate) fn new(geo: RingGeometry) -> Self {
        RingWriter {
            geo,
            drops: DropCounters::default(),
        }
    }

    /// The ring's geometry.
    pub fn geometry(&self) -> RingGeometry {
        self.geo
    }

    /// Largest message (before its length prefix) that fits a slot.
    pub fn max_message_len(&self) -> usize {
        let size = self.geo.buffer_size as usize;
        let mut len = size.saturating_sub(1);
        while len > 0 && len + varint_len(len as u64) > size {
            len -= 1;
        }
        len
    }

    /// Writes one record of exactly `len` bytes, encoded by `encode` straight
    /// into the slot (after the length prefix). Never blocks and allocates
    /// nothing: when the ring is full or the record is larger than a slot, the
    /// record is dropped, counted, and the error says why.
    ///
    /// `encode` is given exactly `len` bytes and returns how many bytes the
    /// record took (those it wrote, or would have written had the slice been
    /// long enough). Once a slot is claimed it is always published, whatever
    /// `encode` does: when it returns a count other than `len`, or panics (the
    /// panic is caught here), the slot is published holding a length prefix
    /// larger than the slot, which [`unframe`] (and so every reader of this
    /// crate) rejects as corrupt and skips; the record is counted in
    /// [`DropCounters::size_mismatch`] or [`DropCounters::encoder_panics`].
    /// (Built with `panic = "abort"`, a panic ends the process, as any panic
    /// does; the reader then sees a dead writer.)
    ///
    /// Once it has claimed its slot and written the length prefix, it asks the
    /// CPU to fetch the first lines of the ring's next slot for writing (see
    /// `NEXT_SLOT_PREFETCH` in this module).
    #[allow(unsafe_code)]
    pub fn try_write(
        &self,
        region: &SharedRegion,
        len: usize,
        encode: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<i64, WriteError> {
        let framed = len.saturating_add(varint_len(len as u64));
        if framed as u64 > self.geo.buffer_size {
            self.drops.too_large.fetch_add(1, Ordering::Relaxed);
            return Err(WriteError::TooLarge);
        }
        let (writer_index, reader_index) = match (
            region.atomic_i64(self.geo.offset + ring_header::WRITER_INDEX),
            region.atomic_i64(self.geo.offset + ring_header::READER_INDEX),
        ) {
            (Ok(w), Ok(r)) => (w, r),
            // Unreachable for a layout this crate validated; counted as full, never a panic.
            _ => {
                self.drops.full.fetch_add(1, Ordering::Relaxed);
                return Err(WriteError::Full);
            }
        };
        let seq = match self.claim(writer_index, reader_index) {
            Some(seq) => seq,
            None => {
                self.drops.full.fetch_add(1, Ordering::Relaxed);
                return Err(WriteError::Full);
            }
        };
        // From here on nothing may return, unwind or panic before the publish below.
        let slot = self.geo.slot_of(seq);
        let offset = self.geo.slot_offset(slot);
        // SAFETY: the CAS in `claim` gave this thread sequence `seq`; its slot was
        // released by the reader (seq - n <= reader_index) and no other writer
        // can claim `seq`, so nobody reads or writes the slot until we publish.
        // One exception, outside this process's control: a reader gives a slot
        // up (and releases past it) when it stayed unpublished behind published
        // ones for its `stuck_slot_timeout` (2 s by default, 11x the longest
        // claim-to-publish stall measured). A writer thread stalled longer than
        // that while the ring laps shares its slot with the later lap's writer
        // (RELIABILITY.md, known gaps); the reader does so because a claim
        // that is never published (a forked child or another process that
        // died in it) would otherwise stop the ring for good.
        let outcome = match unsafe { region.bytes_mut(offset, framed) } {
            Ok(mut buf) => {
                prost::encoding::encode_varint(len as u64, &mut buf);
                // The next record's slot, fetched while this one is encoded.
                region.prefetch_for_writing(
                    self.geo.slot_offset(self.geo.slot_of(seq.wrapping_add(1))),
                    NEXT_SLOT_PREFETCH.min(self.geo.buffer_size as usize),
                );
                // `buf` is the `len` bytes after the prefix (`framed` was sized for both).
                match std::panic::catch_unwind(AssertUnwindSafe(|| encode(buf))) {
                    Ok(n) if n == len => Ok(seq),
                    Ok(_) => Err(WriteError::SizeMismatch),
                    Err(_) => Err(WriteError::EncoderPanicked),
                }
            }
            // Unreachable for a layout this crate validated (the slot lies in the file).
            Err(_) => Err(WriteError::SizeMismatch),
        };
        match outcome {
            Ok(_) => {}
            Err(WriteError::EncoderPanicked) => {
                self.drops.encoder_panics.fetch_add(1, Ordering::Relaxed);
                self.reject(region, offset);
            }
            Err(_) => {
                self.drops.size_mismatch.fetch_add(1, Ordering::Relaxed);
                self.reject(region, offset);
            }
        }
        if let Ok(flag) = region.atomic_i32(self.geo.flag_offset(slot)) {
            flag.store(self.geo.flag_of(seq), Ordering::Release);
        }
        outcome
    }

    /// Makes the claimed, unpublished slot at `offset` one that every reader
    /// rejects: its length prefix says `buffer_size` bytes follow, but at most
    /// `buffer_size - 1` do (the prefix takes at least one byte), so [`unframe`]
    /// fails with [`FormatError::SlotOverflow`]. The prefix always fits: a
    /// varint of `b >= 1` takes at most `b` bytes.
    #[allow(unsafe_code)]
    fn reject(&self, region: &SharedRegion, offset: u64) {
        let size = self.geo.buffer_size;
        // SAFETY: called only by `try_write` for the slot it claimed and has
        // not published yet (see there); the encoder that held a slice into it
        // has returned or unwound, so this is the only reference.
        if let Ok(mut buf) = unsafe { region.bytes_mut(offset, varint_len(size)) } {
            prost::encoding::encode_varint(size, &mut buf);
        }
    }

    /// Claims the next sequence number, or `None` when the ring is full.
    /// Lock-free: a failed CAS means another writer made progress.
    fn claim(&self, writer_index: &AtomicI64, reader_index: &AtomicI64) -> Option<i64> {
        let n = self.geo.num_buffers as i64;
        let mut w = writer_index.load(Ordering::Acquire);
        loop {
            let r = reader_index.load(Ordering::Acquire);
            let next = w.wrapping_add(1);
            // The slot of `next` was last used by `next - n`; it is free once the
            // reader finished that sequence.
            if next.wrapping_sub(n) > r {
                return None;
            }
            match writer_index.compare_exchange_weak(w, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(next),
                Err(current) => w = current,
            }
        }
    }
}

/// What the reader found at its next sequence.
#[derive(Debug)]
pub enum Slot<'a> {
    /// Nothing published yet.
    Empty,
    /// A published record: the message bytes after the length prefix.
    Ready(&'a [u8]),
    /// A published slot whose framing is broken; skip it.
    Corrupt(FormatError),
}

/// Most slots after a stuck one that [`RingReader::skip_abandoned`] looks at
/// for a published record (bounded work per call).
const LATER_SLOTS_SCANNED: i64 = 256;

/// How the reader treats a slot that a writer claimed and has not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrandedSlots {
    /// The writer is known to be dead (its liveness lock was released): no
    /// claimed slot will ever be published; skip them all at once.
    WriterDead,
    /// The writer may be alive (or takes no liveness lock): skip a claimed slot
    /// only once a later slot is published and this one stayed unpublished
    /// for `timeout_nanos` (reader clock).
    SkipAfter {
        /// How long a claimed slot may stay unpublished behind published ones.
        timeout_nanos: u64,
    },
}

/// The reader side of one ring. There is exactly one per ring.
///
/// It keeps its own copy of the next sequence to read, so that it touches the
/// shared `reader_index` (which shares a cache line with `writer_index`) only
/// when it releases slots, and its own copy of the last `writer_index` it saw,
/// so that it loads `writer_index` only when it has caught up with it.
///
/// Invariants:
/// - `released < next`: every sequence up to `released` was handed back to the
///   writers; `next` is the first sequence not consumed yet.
/// - `writer_seen` is a value `writer_index` held; a sequence above it is never
///   read, whatever its slot's flag says (a writer claims before it publishes,
///   so a flag that seems to publish such a sequence is stale).
#[derive(Debug)]
pub struct RingReader {
    geo: RingGeometry,
    next: i64,
    released: i64,
    writer_seen: i64,
    /// The sequence found claimed but unpublished, and when that was first seen.
    stuck: Option<(i64, u64)>,
    abandoned: u64,
}

impl RingReader {
    /// Starts reading after the file's current `reader_index`.
    pub fn new(region: &SharedRegion, geo: RingGeometry) -> Result<Self, FormatError> {
        let r = region
            .atomic_i64(geo.offset + ring_header::READER_INDEX)?
            .load(Ordering::Acquire);
        Ok(RingReader {
            geo,
            next: r.wrapping_add(1),
            released: r,
            writer_seen: r,
            stuck: None,
            abandoned: 0,
        })
    }

    /// A reader that only watches the ring ([`has_claimed`](Self::has_claimed))
    /// from `next`, the sequence another reader of the ring reads next (past
    /// what that one released while it holds slots). It must not read or
    /// release.
    pub fn watching(geo: RingGeometry, next: i64) -> Self {
        let before = next.wrapping_sub(1);
        RingReader {
            geo,
            next,
            released: before,
            writer_seen: before,
            stuck: None,
            abandoned: 0,
        }
    }

    /// The ring's geometry.
    pub fn geometry(&self) -> RingGeometry {
        self.geo
    }

    /// The next sequence number this reader will read.
    pub fn next_sequence(&self) -> i64 {
        self.next
    }

    /// The last sequence released to writers.
    pub fn released(&self) -> i64 {
        self.released
    }

    /// Claimed slots this reader skipped because they were never published.
    pub fn abandoned(&self) -> u64 {
        self.abandoned
    }

    fn load_writer_index(&mut self, region: &SharedRegion) -> i64 {
        if let Ok(w) = region.atomic_i64(self.geo.offset + ring_header::WRITER_INDEX) {
            self.writer_seen = w.load(Ordering::Acquire);
        }
        self.writer_seen
    }

    /// Whether `seq` was claimed by a writer, as far as `writer_seen` tells.
    fn claimed(&self, seq: i64) -> bool {
        seq.wrapping_sub(self.writer_seen) <= 0
    }

    /// Whether writers claimed the next sequence (or later ones): there is
    /// something to read, or a claimed slot to wait for. One atomic load of
    /// `writer_index`, no other access to the ring; it may run while a writer
    /// claims, it then only answers as of its load.
    pub fn has_claimed(&self, region: &SharedRegion) -> bool {
        region
            .atomic_i64(self.geo.offset + ring_header::WRITER_INDEX)
            .is_ok_and(|w| self.next.wrapping_sub(w.load(Ordering::Acquire)) <= 0)
    }

    /// How many sequences from the next one on writers claimed (0: none;
    /// at most the ring's slots, whatever the header says). Like
    /// [`has_claimed`](Self::has_claimed), one atomic load of `writer_index`.
    pub fn claimed_ahead(&self, region: &SharedRegion) -> u64 {
        region
            .atomic_i64(self.geo.offset + ring_header::WRITER_INDEX)
            .map_or(0, |w| {
                let last = w.load(Ordering::Acquire).wrapping_sub(self.next);
                if last < 0 {
                    0
                } else {
                    (last as u64).saturating_add(1).min(self.geo.num_buffers)
                }
            })
    }

    /// Looks at the next sequence without consuming it.
    pub fn peek<'a>(&mut self, region: &'a SharedRegion) -> Slot<'a> {
        if !self.claimed(self.next) {
            self.load_writer_index(region);
            if !self.claimed(self.next) {
                return Slot::Empty;
            }
        }
        let slot = self.geo.slot_of(self.next);
        let flag = match region.atomic_i32(self.geo.flag_offset(slot)) {
            Ok(f) => f.load(Ordering::Acquire),
            Err(e) => return Slot::Corrupt(e),
        };
        if !self.geo.publishes(flag, self.next) {
            return Slot::Empty;
        }
        match region.bytes(self.geo.slot_offset(slot), self.geo.buffer_size as usize) {
            Ok(bytes) => match unframe(bytes) {
                Ok(msg) => Slot::Ready(msg),
                Err(e) => Slot::Corrupt(e),
            },
            Err(e) => Slot::Corrupt(e),
        }
    }

    /// Called after [`peek`](Self::peek) found nothing: when the next sequence
    /// was claimed by a writer that will never publish it (see
    /// [`StrandedSlots`]), moves past it, counts it as abandoned and returns
    /// true. Returns false when the reader should wait.
    ///
    /// A skipped slot that a slow (not dead) writer publishes later is never
    /// taken for a record: its flag publishes the skipped sequence `s`, and the
    /// reader only ever looks for sequences above `s` in that slot, whose flags
    /// differ (see [`RingGeometry::publishes`]).
    pub fn skip_abandoned(
        &mut self,
        region: &SharedRegion,
        now: u64,
        policy: StrandedSlots,
    ) -> bool {
        let w = self.load_writer_index(region);
        if !self.claimed(self.next) {
            self.stuck = None;
            return false;
        }
        let skip = match policy {
            StrandedSlots::WriterDead => true,
            StrandedSlots::SkipAfter { timeout_nanos } => {
                let since = match self.stuck {
                    Some((seq, since)) if seq == self.next => since,
                    _ => {
                        self.stuck = Some((self.next, now));
                        now
                    }
                };
                now.saturating_sub(since) >= timeout_nanos && self.later_published(region, w)
            }
        };
        if skip {
            self.stuck = None;
            self.abandoned += 1;
            self.advance();
        }
        skip
    }

    /// Whether a sequence after `next` (up to `w`, at most
    /// [`LATER_SLOTS_SCANNED`] of them) is published.
    fn later_published(&self, region: &SharedRegion, w: i64) -> bool {
        let last = w.min(self.next.saturating_add(LATER_SLOTS_SCANNED));
        let mut seq = self.next.wrapping_add(1);
        while seq.wrapping_sub(last) <= 0 {
            let published = region
                .atomic_i32(self.geo.flag_offset(self.geo.slot_of(seq)))
                .map(|f| self.geo.publishes(f.load(Ordering::Acquire), seq))
                .unwrap_or(false);
            if published {
                return true;
            }
            seq = seq.wrapping_add(1);
        }
        false
    }

    /// Moves past the current sequence (locally; see [`release`](Self::release)).
    pub fn advance(&mut self) {
        self.next = self.next.wrapping_add(1);
    }

    /// Gives every slot before the next sequence back to the writers.
    pub fn release(&mut self, region: &SharedRegion) -> Result<(), FormatError> {
        self.release_to(region, self.next.wrapping_sub(1))
    }

    /// Gives the slots up to and including `seq` back to the writers.
    ///
    /// The store is a compare-and-swap from the value this reader last
    /// released: if `reader_index` holds anything else, the writer started
    /// over in place (it reset the ring) or another reader is at work, and
    /// [`FormatError::ReaderIndexMoved`] says so; nothing is stored then.
    pub fn release_to(&mut self, region: &SharedRegion, seq: i64) -> Result<(), FormatError> {
        if seq == self.released {
            return Ok(());
        }
        region
            .atomic_i64(self.geo.offset + ring_header::READER_INDEX)?
            .compare_exchange(self.released, seq, Ordering::Release, Ordering::Relaxed)
            .map_err(|found| FormatError::ReaderIndexMoved {
                expected: self.released,
                found,
            })?;
        self.released = seq;
        Ok(())
    }

    /// Whether the ring's `reader_index` no longer holds what this reader
    /// released: someone else stored there (a writer that started over in
    /// place reset the ring, or another reader is at work), so the sequence
    /// this reader waits for may never come. One atomic load.
    pub fn reader_index_moved(&self, region: &SharedRegion) -> bool {
        region
            .atomic_i64(self.geo.offset + ring_header::READER_INDEX)
            .is_ok_and(|r| r.load(Ordering::Acquire) != self.released)
    }

    /// Moves a reader that has not read anything yet past `seq`, which an
    /// earlier reader consumed without releasing it (its state, kept in a
    /// checkpoint, covers it), and releases up to it. False, and nothing
    /// changes, when this reader already read, when `seq` is behind what is
    /// released, or when writers never claimed it.
    pub fn skip_to(&mut self, region: &SharedRegion, seq: i64) -> bool {
        let Some(w) = self.skippable_to(region, seq) else {
            return false;
        };
        if self.release_to(region, seq).is_err() {
            return false;
        }
        self.next = seq.wrapping_add(1);
        self.writer_seen = self.writer_seen.max(w);
        true
    }

    /// Whether [`skip_to`](Self::skip_to) `seq` would succeed now, with the
    /// `writer_index` it saw. Changes nothing. It stays so, writers only
    /// moving `writer_index` on, unless the writer starts over in place or
    /// another reader releases meanwhile.
    pub fn skippable_to(&self, region: &SharedRegion, seq: i64) -> Option<i64> {
        if self.next != self.released.wrapping_add(1) || seq < self.released {
            return None;
        }
        let w = region
            .atomic_i64(self.geo.offset + ring_header::WRITER_INDEX)
            .ok()?
            .load(Ordering::Acquire);
        (seq <= w).then_some(w)
    }

    /// Sequences claimed by writers and not yet released by this reader.
    pub fn unreleased(&self, region: &SharedRegion) -> u64 {
        let w = region
            .atomic_i64(self.geo.offset + ring_header::WRITER_INDEX)
            .map(|w| w.load(Ordering::Relaxed))
            .unwrap_or(self.released);
        (w.wrapping_sub(self.released)).clamp(0, self.geo.num_buffers as i64) as u64
    }
}

/// Splits a slot into its message: a varint length that must fit inside the slot.
#[inline]
pub fn unframe(slot: &[u8]) -> Result<&[u8], FormatError> {
    // A record under 128 bytes has a one-byte length: read directly.
    let (len, buf) = match slot {
        [b, rest @ ..] if *b < 0x80 => (u64::from(*b), rest),
        _ => long_frame_len(slot)?,
    };
    if len > buf.len() as u64 {
        return Err(FormatError::SlotOverflow {
            len,
            max: buf.len() as u64,
        });
    }
    Ok(&buf[..len as usize])
}

/// The length prefix of a slot when it is not one byte, and what follows it.
fn long_frame_len(mut buf: &[u8]) -> Result<(u64, &[u8]), FormatError> {
    let len = prost::encoding::decode_varint(&mut buf)
        .map_err(|_| FormatError::BadLength("not a valid varint"))?;
    Ok((len, buf))
}
