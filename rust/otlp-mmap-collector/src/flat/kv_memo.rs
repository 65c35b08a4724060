//! `KeyValueMemo`: the flat form of the attributes a batch repeats.
//!
//! Spans and log records of one kind carry the same attributes again and
//! again (a method, a status code, a flag). Their encoded `KeyValue`
//! messages are the same bytes each time, and so is their flat form once
//! their strings are in the table. A direct-mapped memo keeps both, keyed by
//! a cheap hash of the encoded bytes and checked against them: a repeated
//! attribute costs one comparison and one copy instead of its parsing and
//! string lookups. Only flat forms whose strings are all table ids are kept
//! (an inline string may become an id later), and the memo is emptied when
//! the table starts over or forgets entries. Its bytes are bounded; it
//! allocates nothing once grown.

use super::strings::quick_hash;

/// Slots (a power of two).
const SLOTS: usize = 512;
/// Most bytes kept; past it the memo starts over.
const MAX_BYTES: usize = 64 << 10;
/// Longest encoded attribute kept.
const MAX_ATTRIBUTE: usize = 256;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Encoded attribute, then its flat form, in `bytes`.
    at: u32,
    encoded: u16,
    flat: u16,
    /// What tells the key apart from others (the writer's key word).
    key: u64,
}

/// Flat forms of encoded attributes.
#[derive(Debug)]
pub(crate) struct KeyValueMemo {
    slots: Box<[Slot]>,
    bytes: Vec<u8>,
}

impl Default for KeyValueMemo {
    fn default() -> Self {
        KeyValueMemo {
            slots: vec![Slot::default(); SLOTS].into_boxed_slice(),
            bytes: Vec::new(),
        }
    }
}

fn slot_of(encoded: &[u8]) -> usize {
    (quick_hash(encoded) >> 55) as usize & (SLOTS - 1)
}

impl KeyValueMemo {
    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.slots.fill(Slot::default());
        self.bytes.clear();
    }

    /// The flat form and key word of `encoded`, if kept.
    #[inline]
    pub(crate) fn get(&self, encoded: &[u8]) -> Option<(&[u8], u64)> {
        let s = self.slots[slot_of(encoded)];
        if s.encoded == 0 {
            return None;
        }
        let at = s.at as usize;
        let mid = at + s.encoded as usize;
        (&self.bytes[at..mid] == encoded).then(|| (&self.bytes[mid..mid + s.flat as usize], s.key))
    }

    /// Keeps the flat form `flat` (key word `key`) of `encoded`.
    pub(crate) fn put(&mut self, encoded: &[u8], flat: &[u8], key: u64) {
        if encoded.is_empty() || encoded.len() > MAX_ATTRIBUTE || flat.len() > MAX_ATTRIBUTE {
            return;
        }
        if self.bytes.len() + encoded.len() + flat.len() > MAX_BYTES {
            self.clear();
        }
        let at = self.bytes.len() as u32;
        self.bytes.extend_from_slice(encoded);
        self.bytes.extend_from_slice(flat);
        self.slots[slot_of(encoded)] = Slot {
            at,
            encoded: encoded.len() as u16,
            flat: flat.len() as u16,
            key,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_and_finds_by_the_bytes() {
        let mut m = KeyValueMemo::default();
        assert!(m.get(b"\x0a\x01k").is_none());
        m.put(b"\x0a\x01k", b"flat", 7);
        assert_eq!(m.get(b"\x0a\x01k"), Some((&b"flat"[..], 7)));
        // Same slot or not, other bytes are not found.
        assert!(m.get(b"\x0a\x01j").is_none());
        m.clear();
        assert!(m.get(b"\x0a\x01k").is_none());
        // Bounded: many entries start it over.
        for i in 0..10_000u32 {
            m.put(&i.to_le_bytes(), b"f", 1);
        }
        assert!(m.bytes.len() <= MAX_BYTES);
    }
}
