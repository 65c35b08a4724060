//! `AttributeRunMemo`: what a span's whole run of attributes resolved to,
//! by the run's encoded bytes.
//!
//! A writer sends the same run of attributes (the same key refs and values,
//! encoded the same, in the same order) with span start after span start.
//! When such a run was set on a span that held no attribute yet, and every
//! attribute of it was kept as the attribute cache
//! ([`crate::attribute_cache`]) gave it (no drop, no bad ref, no value ref,
//! array or kvlist), what the span then held is kept here with the run as
//! its key: its encoded `KeyValue` fields, its attribute slots, what its
//! byte count grew by, and the byte budget the run needed (the most that
//! any attribute of it, charged in turn, took from what was left). The next
//! span that holds no attribute yet, meets the same run, and has that much
//! budget left and room for that many attributes, takes the result in one
//! step: each attribute would have been kept, in the same places, as
//! before. Anything else goes attribute by attribute.
//!
//! A log record's attributes are memoised the same way
//! ([`DictionaryCache::encode_log_attributes`](crate::dictionary::DictionaryCache)):
//! a run (the attribute fields of its event, one after the other) whose
//! attributes all came from the log attribute cache, all kept, is kept as
//! the fields it
//! wrote (no slots), with what it charged to the record budget; a record
//! with at least that much budget left takes them in one step.
//!
//! It lives in the [`DictionaryCache`](crate::dictionary::DictionaryCache)
//! of one stream, as the attribute cache does (refs mean other things in
//! another), is emptied with it, and is bounded: at most [`MAX_ENTRIES`]
//! runs, [`MAX_BYTES`] bytes of runs and fields and [`MAX_ATTRIBUTES`]
//! slots; when full it is cleared, keeping its memory, so it allocates
//! nothing once it has grown.

/// Most runs kept.
pub const MAX_ENTRIES: usize = 1024;
/// Slots of the index (a power of two).
const SLOTS: usize = 2 * MAX_ENTRIES;
/// An index slot without an entry.
const NO_ENTRY: u32 = u32::MAX;
/// Most bytes of runs and their fields kept.
pub const MAX_BYTES: usize = 128 << 10;
/// Most attribute slots kept.
pub const MAX_ATTRIBUTES: usize = 8 << 10;
/// Longest run looked up (its bytes).
pub const MAX_RUN: usize = MAX_BYTES / 32;

/// What a run resolved to (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunResult<'a, A> {
    /// The span's encoded `KeyValue` fields.
    pub(crate) fields: &'a [u8],
    /// The span's attribute slots.
    pub(crate) attributes: &'a [A],
    /// What the span's byte count grew by.
    pub(crate) bytes: usize,
    /// The byte budget the run needed: it is all kept when at least this
    /// much is left of the span's budget.
    pub(crate) headroom: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Field number of the run's entries.
    number: u32,
    /// The run, then its fields, in `arena`.
    run_at: u32,
    run_len: u32,
    fields_len: u32,
    /// Its slots in `attributes`.
    attributes_at: u32,
    attributes_len: u32,
    bytes: usize,
    headroom: usize,
}

/// The index slot of `hash` (its low bits: `FxHasher::finish` puts its
/// best-mixed bits there).
#[inline]
fn slot(hash: u64) -> usize {
    hash as usize & (SLOTS - 1)
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct AttributeRunMemo<A> {
    /// Slot of a run's hash -> its entry (or [`NO_ENTRY`]); direct-mapped.
    /// Empty until the first entry.
    index: Vec<u32>,
    entries: Vec<Entry>,
    /// The runs and their fields.
    arena: Vec<u8>,
    attributes: Vec<A>,
}

impl<A> Default for AttributeRunMemo<A> {
    fn default() -> Self {
        AttributeRunMemo {
            index: Vec::new(),
            entries: Vec::new(),
            arena: Vec::new(),
            attributes: Vec::new(),
        }
    }
}

impl<A: Copy> AttributeRunMemo<A> {
    /// What the run `run` of entries of field `number` (of hash `hash`)
    /// resolved to.
    #[inline]
    pub(crate) fn get(&self, run: &[u8], number: u32, hash: u64) -> Option<RunResult<'_, A>> {
        let e = self.entries.get(*self.index.get(slot(hash))? as usize)?;
        let at = e.run_at as usize;
        let mid = at + e.run_len as usize;
        if e.number != number || self.arena.get(at..mid)? != run {
            return None;
        }
        let a = e.attributes_at as usize;
        Some(RunResult {
            fields: self.arena.get(mid..mid + e.fields_len as usize)?,
            attributes: self.attributes.get(a..a + e.attributes_len as usize)?,
            bytes: e.bytes,
            headroom: e.headroom,
        })
    }

    /// Keeps what the run `run` of entries of field `number` (of hash
    /// `hash`) resolved to.
    pub(crate) fn insert(&mut self, run: &[u8], number: u32, hash: u64, result: RunResult<'_, A>) {
        let size = run.len() + result.fields.len();
        if run.len() > MAX_RUN
            || size > MAX_BYTES / 16
            || result.attributes.len() > MAX_ATTRIBUTES / 16
        {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES
            || self.arena.len() + size > MAX_BYTES
            || self.attributes.len() + result.attributes.len() > MAX_ATTRIBUTES
        {
            self.clear();
        }
        if self.index.is_empty() {
            self.index = vec![NO_ENTRY; SLOTS];
        }
        // All fit in u32: the arena and the slots are bounded.
        let entry = Entry {
            number,
            run_at: self.arena.len() as u32,
            run_len: run.len() as u32,
            fields_len: result.fields.len() as u32,
            attributes_at: self.attributes.len() as u32,
            attributes_len: result.attributes.len() as u32,
            bytes: result.bytes,
            headroom: result.headroom,
        };
        self.arena.extend_from_slice(run);
        self.arena.extend_from_slice(result.fields);
        self.attributes.extend_from_slice(result.attributes);
        self.index[slot(hash)] = self.entries.len() as u32;
        self.entries.push(entry);
    }

    /// Forgets every run, keeping the memory.
    pub(crate) fn clear(&mut self) {
        self.index.fill(NO_ENTRY);
        self.entries.clear();
        self.arena.clear();
        self.attributes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes_hash::bytes_hash;

    fn result<'a>(fields: &'a [u8], attributes: &'a [u32]) -> RunResult<'a, u32> {
        RunResult {
            fields,
            attributes,
            bytes: 100,
            headroom: 60,
        }
    }

    #[test]
    fn finds_what_it_keeps_and_stays_bounded() {
        let mut m = AttributeRunMemo::<u32>::default();
        let run = [0x4a, 2, 0x08, 5, 0x4a, 2, 0x08, 6];
        let h = bytes_hash(&run);
        assert!(m.get(&run, 9, h).is_none());
        m.insert(&run, 9, h, result(b"fields", &[1, 2]));
        let r = m.get(&run, 9, h).unwrap();
        assert_eq!((r.fields, r.attributes), (&b"fields"[..], &[1u32, 2][..]));
        assert_eq!((r.bytes, r.headroom), (100, 60));
        // The same bytes as entries of another field, or other bytes of
        // the same hash, are not taken for it.
        assert!(m.get(&run, 1, h).is_none());
        assert!(m.get(&run[..4], 9, h).is_none());
        // Past its bounds it starts over.
        for i in 0..4 * MAX_ENTRIES as u32 {
            let r = i.to_le_bytes();
            m.insert(&r, 9, bytes_hash(&r), result(&[0; 100], &[i; 7]));
            assert!(m.entries.len() <= MAX_ENTRIES);
            assert!(m.arena.len() <= MAX_BYTES && m.attributes.len() <= MAX_ATTRIBUTES);
            assert_eq!(m.get(&r, 9, bytes_hash(&r)).unwrap().attributes, &[i; 7]);
        }
        // Two runs of one slot: the later takes it.
        m.clear();
        m.insert(&[1], 9, 5, result(b"a", &[1]));
        m.insert(&[2], 9, 5 + SLOTS as u64, result(b"b", &[2]));
        assert!(m.get(&[1], 9, 5).is_none());
        assert_eq!(m.get(&[2], 9, 5 + SLOTS as u64).unwrap().fields, b"b");
        // Too large to keep.
        let big = vec![1u8; MAX_RUN + 1];
        m.insert(&big, 9, bytes_hash(&big), result(b"", &[]));
        assert!(m.get(&big, 9, bytes_hash(&big)).is_none());
        let many = vec![0u32; MAX_ATTRIBUTES / 16 + 1];
        m.insert(&[3], 9, 3, result(b"", &many));
        assert!(m.get(&[3], 9, 3).is_none());
    }
}
