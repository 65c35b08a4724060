//! What `MmapSpanProcessor::on_start` wrote for each span still in flight,
//! kept so that `on_end` writes only what changed since: a lock-free,
//! fixed-size hash table from span id to a 64-bit note (the start's attribute
//! count and a 48-bit hash of the start's name).
//!
//! An entry is a span id (0: free) and its note. `insert` claims a free entry
//! with a compare-and-swap among the [`PROBES`] entries after the span id's
//! home; `take` finds the span id among the same entries, reads the note and
//! frees the entry. Nothing is ever evicted, so a note that is found is the
//! span's own, and a span without a note is one whose `insert` failed (every
//! entry of its window was taken, or the note could not hold its attribute
//! count): `on_start` then writes nothing and `on_end` writes the whole span.
//! The table is allocated once, by the processor; inserting and taking never
//! allocate, lock or loop more than [`PROBES`] times.
//!
//! Orderings: `insert` claims the id with Acquire and then stores the note;
//! `take` loads the note before it frees the id with Release, so a later
//! `insert` that claims the freed entry (Acquire) stores its note after that
//! load. `on_end` runs after `on_start` of the same span (the SDK hands the
//! span from one to the other), so it sees the note `on_start` stored.

use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// Entries looked at for one span id, from its home entry on.
pub(crate) const PROBES: usize = 32;

/// The most entries a table has: 2^24, 256 MiB of notes (a larger
/// capacity asked for is this one, not an overflow).
pub(crate) const MAX_CAPACITY: usize = 1 << 24;

/// Attribute counts a note holds (16 bits).
const MAX_COUNT: usize = 0xFFFF;

/// The start name's hash takes the note's upper 48 bits.
const HASH_SHIFT: u32 = 16;

#[derive(Debug, Default)]
struct Entry {
    span_id: AtomicU64,
    note: AtomicU64,
}

/// What the start of a span wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Note(u64);

impl Note {
    /// The note of a start that wrote `name` and `attributes` attributes;
    /// `None` when the count does not fit.
    pub(crate) fn new(name: &str, attributes: usize) -> Option<Note> {
        (attributes <= MAX_COUNT).then(|| Note((name_hash(name) << HASH_SHIFT) | attributes as u64))
    }

    /// Attributes the start wrote.
    pub(crate) fn attributes(self) -> usize {
        (self.0 & MAX_COUNT as u64) as usize
    }

    /// Whether `name` is (as far as a 48-bit hash tells) the name the start wrote.
    pub(crate) fn same_name(self, name: &str) -> bool {
        self.0 >> HASH_SHIFT == name_hash(name)
    }
}

fn name_hash(name: &str) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(name.as_bytes());
    h.write_usize(name.len());
    h.finish() >> HASH_SHIFT
}

/// The table; see the module documentation.
#[derive(Debug)]
pub(crate) struct SpanNotes {
    entries: Box<[Entry]>,
}

impl SpanNotes {
    /// A table for about `capacity` spans in flight (rounded up to a power of
    /// two, at least [`PROBES`], at most [`MAX_CAPACITY`]).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let n = capacity.clamp(PROBES, MAX_CAPACITY).next_power_of_two();
        SpanNotes {
            entries: (0..n).map(|_| Entry::default()).collect(),
        }
    }

    #[inline]
    fn window(&self, span_id: u64) -> impl Iterator<Item = &Entry> {
        let mask = self.entries.len() - 1;
        // Span ids are random: their low bits spread spans evenly.
        let home = span_id as usize;
        (0..PROBES).map(move |i| &self.entries[home.wrapping_add(i) & mask])
    }

    /// Keeps `note` for `span_id` (not 0); false when every entry of its
    /// window is taken.
    #[inline]
    pub(crate) fn insert(&self, span_id: u64, note: Note) -> bool {
        if span_id == 0 {
            return false;
        }
        for e in self.window(span_id) {
            if e.span_id.load(Ordering::Relaxed) == 0
                && e.span_id
                    .compare_exchange(0, span_id, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                e.note.store(note.0, Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    /// The note kept for `span_id`, removed from the table; `None` if there
    /// is none.
    #[inline]
    pub(crate) fn take(&self, span_id: u64) -> Option<Note> {
        if span_id == 0 {
            return None;
        }
        for e in self.window(span_id) {
            if e.span_id.load(Ordering::Relaxed) == span_id {
                let note = e.note.load(Ordering::Relaxed);
                e.span_id.store(0, Ordering::Release);
                return Some(Note(note));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_are_rounded_and_bounded() {
        assert_eq!(SpanNotes::with_capacity(0).entries.len(), PROBES);
        assert_eq!(SpanNotes::with_capacity(1000).entries.len(), 1024);
        // Past the bound (and past what `next_power_of_two` can round):
        // the bound, not an overflow.
        let notes = SpanNotes::with_capacity(usize::MAX);
        assert_eq!(notes.entries.len(), MAX_CAPACITY);
        assert!(notes.insert(u64::MAX, Note::new("n", 1).unwrap()));
        assert_eq!(notes.take(u64::MAX), Note::new("n", 1));
    }

    #[test]
    fn notes_are_found_once_and_never_overwritten() {
        let notes = SpanNotes::with_capacity(1024);
        let ids: Vec<u64> = (1..=1000u64).map(|i| i * 1024 + 7).collect();
        let mut kept = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let note = Note::new(&format!("span {i}"), i % 7).unwrap();
            // All ids share one home entry: the window holds PROBES of them.
            kept.push(notes.insert(*id, note).then_some(note));
        }
        assert_eq!(kept.iter().flatten().count(), PROBES);
        for (id, note) in ids.iter().zip(&kept) {
            assert_eq!(notes.take(*id), *note);
            assert_eq!(notes.take(*id), None);
        }
        // Freed entries are used again.
        assert!(notes.insert(ids[999], Note::new("x", 1).unwrap()));
    }

    #[test]
    fn a_note_tells_the_count_and_whether_the_name_changed() {
        let note = Note::new("GET /items", 4).unwrap();
        assert_eq!(note.attributes(), 4);
        assert!(note.same_name("GET /items"));
        assert!(!note.same_name("GET /items/{id}"));
        assert!(!note.same_name(""));
        assert_eq!(Note::new("n", MAX_COUNT + 1), None);
        assert_eq!(Note::new("n", MAX_COUNT).unwrap().attributes(), MAX_COUNT);
    }

    #[test]
    fn zero_is_never_a_key() {
        let notes = SpanNotes::with_capacity(64);
        assert!(!notes.insert(0, Note::new("n", 0).unwrap()));
        assert_eq!(notes.take(0), None);
    }
}
