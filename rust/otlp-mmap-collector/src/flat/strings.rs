//! `StringTable`: the strings a flat writer sent to Go, by id (see the
//! parent module for how Go keeps its copy in step).
//!
//! A string is found by a 64-bit hash of its bytes, checked against the
//! bytes kept. Strings that are always interned (keys, names, scope and
//! resource strings) go in at once; a string value goes in the second time
//! it is seen (a small table of recent hashes remembers the first time), so
//! that values that never repeat (ids, timestamps written as text) are sent
//! inline and do not fill the table. Nothing is allocated once the table's
//! buffers have grown: a table that starts over keeps them.
//!
//! In front of the hash map, a small direct-mapped memo finds the strings
//! a batch repeats (the same keys and names span after span) from a cheap
//! hash of their length and first and last bytes, checked against the
//! bytes kept: most lookups cost one comparison and no full hash.

use rustc_hash::FxHashMap as HashMap;

use crate::bytes_hash::bytes_hash;

/// Most entries before the table starts over (at the next batch).
pub const MAX_ENTRIES: usize = 1 << 15;
/// Most bytes of strings before the table starts over (at the next batch).
/// With [`MAX_ENTRIES`] and one batch's new strings (a batch holds at most
/// `max_batch_bytes` plus a record) this bounds what Go keeps per signal
/// of a file.
pub const MAX_BYTES: usize = 1 << 20;
/// Longest string interned; longer ones are always sent inline.
pub const MAX_STRING: usize = 1024;
/// Slots of the table of recently seen value hashes (a power of two).
const SEEN_SLOTS: usize = 4096;
/// Slots of the memo of ids (a power of two).
const MEMO_SLOTS: usize = 1024;
/// An empty memo slot.
const NO_ID: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Entry {
    start: u32,
    len: u32,
    hash: u64,
}

/// Interned strings of one writer.
#[derive(Debug)]
pub struct StringTable {
    index: HashMap<u64, u32>,
    entries: Vec<Entry>,
    bytes: Vec<u8>,
    seen: Box<[u64]>,
    memo: Box<[u32]>,
    epoch: u32,
    /// Entries sent with earlier batches (the current batch's start from here).
    base: usize,
    /// Start over at the next batch, whatever the table holds.
    start_over: bool,
}

impl Default for StringTable {
    fn default() -> Self {
        StringTable {
            index: HashMap::default(),
            entries: Vec::new(),
            bytes: Vec::new(),
            seen: vec![0; SEEN_SLOTS].into_boxed_slice(),
            memo: vec![NO_ID; MEMO_SLOTS].into_boxed_slice(),
            epoch: 0,
            base: 0,
            start_over: false,
        }
    }
}

/// The memo slot of a string.
#[inline]
fn memo_slot(s: &[u8]) -> usize {
    (quick_hash(s) >> 54) as usize & (MEMO_SLOTS - 1)
}

/// A cheap hash of `s`, for direct-mapped memos that check the bytes:
/// from its length and its first and last 8 bytes (all of a string of up
/// to 16 bytes). Its high bits are the best mixed.
#[inline]
pub(crate) fn quick_hash(s: &[u8]) -> u64 {
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(w)
    };
    let n = s.len();
    let (first, last) = if n >= 8 {
        (word(&s[..8]), word(&s[n - 8..]))
    } else {
        (word(s), 0)
    };
    (first ^ last.rotate_left(29) ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl StringTable {
    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The table's generation: it changes each time the table starts over.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The string of entry `id`.
    pub fn get(&self, id: u32) -> Option<&[u8]> {
        let e = self.entries.get(id as usize)?;
        Some(&self.bytes[e.start as usize..(e.start + e.len) as usize])
    }

    /// Makes the next batch start the table over under a new epoch (Go lost
    /// its copy: it could not read a batch's new entries).
    pub(crate) fn start_over(&mut self) {
        self.start_over = true;
    }

    /// Starts a batch: a table past its bounds, or told to, starts over
    /// (returns true then).
    pub(crate) fn begin_batch(&mut self) -> bool {
        let full =
            self.start_over || self.entries.len() >= MAX_ENTRIES || self.bytes.len() >= MAX_BYTES;
        if full {
            self.start_over = false;
            self.index.clear();
            self.entries.clear();
            self.bytes.clear();
            self.memo.fill(NO_ID);
            self.epoch = self.epoch.wrapping_add(1);
            self.base = 0;
        }
        full
    }

    /// Forgets the entries added since the batch began (it was not sent).
    pub(crate) fn abandon_batch(&mut self) {
        for e in &self.entries[self.base..] {
            self.index.remove(&e.hash);
        }
        for id in self.memo.iter_mut() {
            if *id != NO_ID && *id as usize >= self.base {
                *id = NO_ID;
            }
        }
        if let Some(first) = self.entries.get(self.base) {
            self.bytes.truncate(first.start as usize);
        }
        self.entries.truncate(self.base);
    }

    /// Writes the batch's table header (epoch, base, the new entries) and
    /// counts them as sent.
    #[cfg(test)]
    pub(crate) fn write_new(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header());
        self.write_entries(out);
    }

    /// The batch's table header: epoch, base, how many entries are new.
    pub(crate) fn header(&self) -> [u8; 12] {
        let mut h = [0; 12];
        h[..4].copy_from_slice(&self.epoch.to_le_bytes());
        h[4..8].copy_from_slice(&(self.base as u32).to_le_bytes());
        h[8..].copy_from_slice(&((self.entries.len() - self.base) as u32).to_le_bytes());
        h
    }

    /// Appends the entries new with the batch (each its length and bytes)
    /// and counts them as sent.
    pub(crate) fn write_entries(&mut self, out: &mut Vec<u8>) {
        for e in &self.entries[self.base..] {
            out.extend_from_slice(&e.len.to_le_bytes());
            out.extend_from_slice(&self.bytes[e.start as usize..(e.start + e.len) as usize]);
        }
        self.base = self.entries.len();
    }

    /// The id of `s` if the memo knows it (no hash computed).
    #[inline]
    pub(crate) fn memoized(&self, s: &[u8]) -> Option<u32> {
        let id = self.memo[memo_slot(s)];
        (id != NO_ID && self.get(id) == Some(s)).then_some(id)
    }

    /// The id of `s`, interning it when `always` or when it was seen
    /// before; None: send it inline.
    #[inline]
    pub(crate) fn intern(&mut self, s: &[u8], always: bool) -> Option<u32> {
        match self.memoized(s) {
            Some(id) => Some(id),
            None => self.intern_hashed(s, bytes_hash(s), always),
        }
    }

    /// [`intern`](Self::intern) of a string whose hash `h` is known.
    pub(crate) fn intern_hashed(&mut self, s: &[u8], h: u64, always: bool) -> Option<u32> {
        let id = self.lookup(s, h, always)?;
        self.memo[memo_slot(s)] = id;
        Some(id)
    }

    fn lookup(&mut self, s: &[u8], h: u64, always: bool) -> Option<u32> {
        if let Some(&id) = self.index.get(&h) {
            // Another string with the same hash keeps its place: this one goes inline.
            return (self.get(id) == Some(s)).then_some(id);
        }
        if s.len() > MAX_STRING {
            return None;
        }
        if !always {
            let slot = &mut self.seen[h as usize & (SEEN_SLOTS - 1)];
            if *slot != h {
                *slot = h;
                return None;
            }
        }
        let id = self.entries.len() as u32;
        self.entries.push(Entry {
            start: self.bytes.len() as u32,
            len: s.len() as u32,
            hash: h,
        });
        self.bytes.extend_from_slice(s);
        self.index.insert(h, id);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(t: &mut StringTable) -> (u32, u32, Vec<Vec<u8>>) {
        let mut out = Vec::new();
        t.write_new(&mut out);
        let u = |i: usize| u32::from_le_bytes(out[i..i + 4].try_into().unwrap());
        let (epoch, base, n) = (u(0), u(4), u(8));
        let mut at = 12;
        let mut strings = Vec::new();
        for _ in 0..n {
            let len = u(at) as usize;
            strings.push(out[at + 4..at + 4 + len].to_vec());
            at += 4 + len;
        }
        assert_eq!(at, out.len());
        (epoch, base, strings)
    }

    #[test]
    fn interns_keys_at_once_and_values_the_second_time() {
        let mut t = StringTable::default();
        t.begin_batch();
        let k = b"http.method";
        assert_eq!(t.intern_hashed(k, bytes_hash(k), true), Some(0));
        assert_eq!(t.intern_hashed(k, bytes_hash(k), true), Some(0));
        let v = b"GET";
        assert_eq!(
            t.intern_hashed(v, bytes_hash(v), false),
            None,
            "first time: inline"
        );
        assert_eq!(
            t.intern_hashed(v, bytes_hash(v), false),
            Some(1),
            "second time: interned"
        );
        assert_eq!(header(&mut t), (0, 0, vec![k.to_vec(), v.to_vec()]));
        t.begin_batch();
        assert_eq!(t.intern_hashed(k, bytes_hash(k), true), Some(0));
        let w = b"POST";
        assert_eq!(t.intern_hashed(w, bytes_hash(w), true), Some(2));
        assert_eq!(header(&mut t), (0, 2, vec![w.to_vec()]));
        let long = vec![b'x'; MAX_STRING + 1];
        assert_eq!(t.intern_hashed(&long, bytes_hash(&long), true), None);
    }

    #[test]
    fn a_batch_not_sent_leaves_nothing_behind() {
        let mut t = StringTable::default();
        t.begin_batch();
        t.intern_hashed(b"a", bytes_hash(b"a"), true);
        header(&mut t);
        t.begin_batch();
        t.intern_hashed(b"b", bytes_hash(b"b"), true);
        t.abandon_batch();
        assert_eq!(t.len(), 1);
        t.begin_batch();
        assert_eq!(t.intern_hashed(b"c", bytes_hash(b"c"), true), Some(1));
        assert_eq!(header(&mut t), (0, 1, vec![b"c".to_vec()]));
    }

    #[test]
    fn a_full_table_starts_over_under_a_new_epoch() {
        let mut t = StringTable::default();
        t.begin_batch();
        for i in 0..MAX_ENTRIES {
            let s = i.to_string();
            t.intern_hashed(s.as_bytes(), bytes_hash(s.as_bytes()), true);
        }
        header(&mut t);
        t.begin_batch();
        assert_eq!((t.epoch(), t.len()), (1, 0));
        assert_eq!(t.intern_hashed(b"k", bytes_hash(b"k"), true), Some(0));
        assert_eq!(header(&mut t), (1, 0, vec![b"k".to_vec()]));
    }

    #[test]
    fn a_hash_collision_goes_inline() {
        let mut t = StringTable::default();
        t.begin_batch();
        assert_eq!(t.intern_hashed(b"a", 7, true), Some(0));
        assert_eq!(t.intern_hashed(b"b", 7, true), None);
        assert_eq!(t.get(0), Some(&b"a"[..]));
    }
}
