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

use super::bytes_memo::BytesMemo;
use super::strings::quick_hash;

/// Slots (a power of two).
const SLOTS: usize = 512;
/// Most bytes kept; past it the memo starts over.
const MAX_BYTES: usize = 64 << 10;
/// Longest encoded attribute kept.
const MAX_ATTRIBUTE: usize = 256;

/// Flat forms of encoded attributes, each with the writer's key word (what
/// tells its key apart from others).
#[derive(Debug, Default)]
pub(crate) struct KeyValueMemo(BytesMemo<SLOTS, MAX_BYTES, MAX_ATTRIBUTE>);

/// The hash a slot is picked by (the top bits of `quick_hash`).
fn hash_of(encoded: &[u8]) -> u64 {
    quick_hash(encoded) >> 55
}

impl KeyValueMemo {
    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    /// The flat form and key word of `encoded`, if kept.
    #[inline]
    pub(crate) fn get(&self, encoded: &[u8]) -> Option<(&[u8], u64)> {
        self.0.get(encoded, hash_of(encoded))
    }

    /// Keeps the flat form `flat` (key word `key`) of `encoded`.
    pub(crate) fn put(&mut self, encoded: &[u8], flat: &[u8], key: u64) {
        self.0.put(encoded, hash_of(encoded), flat, key);
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
        assert!(m.0.bytes_len() <= MAX_BYTES);
    }
}
