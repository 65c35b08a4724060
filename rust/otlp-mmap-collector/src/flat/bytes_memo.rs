//! `BytesMemo`: a bounded, direct-mapped memo from encoded bytes to the flat
//! bytes they were laid out as, for [`super::kv_memo`] (single attributes)
//! and [`super::list_memo`] (whole attribute lists).
//!
//! Each slot of a power-of-two table, picked by the caller's hash, holds
//! one entry: the encoded bytes and their flat form side by side in one
//! arena, plus a word the caller keeps with them. A lookup compares the
//! encoded bytes, so a hash collision only costs a miss; a later entry of
//! the same slot replaces the earlier one. Entries longer than `MAX_ENTRY`
//! are not kept; past `MAX_BYTES` the memo starts over, keeping its memory,
//! so it allocates nothing once grown.

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Encoded bytes, then their flat form, in `bytes` (`encoded` 0: empty).
    at: u32,
    encoded: u32,
    flat: u32,
    /// The caller's word kept with the entry.
    word: u64,
}

/// See the module documentation. `SLOTS` is a power of two.
#[derive(Debug)]
pub(crate) struct BytesMemo<const SLOTS: usize, const MAX_BYTES: usize, const MAX_ENTRY: usize> {
    slots: Box<[Slot]>,
    bytes: Vec<u8>,
}

impl<const SLOTS: usize, const MAX_BYTES: usize, const MAX_ENTRY: usize> Default
    for BytesMemo<SLOTS, MAX_BYTES, MAX_ENTRY>
{
    fn default() -> Self {
        BytesMemo {
            slots: vec![Slot::default(); SLOTS].into_boxed_slice(),
            bytes: Vec::new(),
        }
    }
}

impl<const SLOTS: usize, const MAX_BYTES: usize, const MAX_ENTRY: usize>
    BytesMemo<SLOTS, MAX_BYTES, MAX_ENTRY>
{
    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.slots.fill(Slot::default());
        self.bytes.clear();
    }

    /// Bytes of the arena (at most `MAX_BYTES`).
    #[cfg(test)]
    pub(crate) fn bytes_len(&self) -> usize {
        self.bytes.len()
    }

    /// The flat form and word kept for `encoded` (of hash `hash`), if any.
    #[inline]
    pub(crate) fn get(&self, encoded: &[u8], hash: u64) -> Option<(&[u8], u64)> {
        let s = self.slots[hash as usize & (SLOTS - 1)];
        if s.encoded == 0 {
            return None;
        }
        let at = s.at as usize;
        let mid = at + s.encoded as usize;
        if self.bytes.get(at..mid)? != encoded {
            return None;
        }
        Some((self.bytes.get(mid..mid + s.flat as usize)?, s.word))
    }

    /// Keeps the flat form `flat` and the word `word` for `encoded` (of hash `hash`).
    pub(crate) fn put(&mut self, encoded: &[u8], hash: u64, flat: &[u8], word: u64) {
        if encoded.is_empty() || encoded.len() > MAX_ENTRY || flat.len() > MAX_ENTRY {
            return;
        }
        if self.bytes.len() + encoded.len() + flat.len() > MAX_BYTES {
            self.clear();
        }
        // Fits in u32: the arena holds at most MAX_BYTES.
        let at = self.bytes.len() as u32;
        self.bytes.extend_from_slice(encoded);
        self.bytes.extend_from_slice(flat);
        self.slots[hash as usize & (SLOTS - 1)] = Slot {
            at,
            encoded: encoded.len() as u32,
            flat: flat.len() as u32,
            word,
        };
    }
}
