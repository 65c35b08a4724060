//! `AttributeListMemo`: the flat form of whole attribute lists a batch
//! repeats.
//!
//! Spans and log records of one kind carry the same list of attributes
//! again and again (the same encoded `KeyValue` fields, in the same order:
//! a span that took its start's attributes from the reader's attribute run
//! memo holds exactly the bytes the earlier ones held). Once their strings
//! are in the table, the list's flat form (its count and each attribute)
//! is the same bytes each time too. A direct-mapped memo keeps both, keyed
//! by a hash of the encoded list and checked against it: a repeated list
//! costs one hash, one comparison and one copy instead of an attribute
//! by attribute pass ([`super::kv_memo`]) and the check for a key twice.
//! A list is kept when each of its attributes came from that attribute
//! memo (so its strings are all table ids, as there: an inline string may
//! become an id later; and a list with a value met once, which would not
//! repeat, is not kept), and only when it goes flat (no key twice, not
//! long). The memo is emptied when the table starts over or forgets
//! entries. Its bytes are bounded; it allocates
//! nothing once grown.

use super::bytes_memo::BytesMemo;
use crate::bytes_hash::bytes_hash;

/// Slots (a power of two).
const SLOTS: usize = 256;
/// Most bytes kept; past it the memo starts over.
const MAX_BYTES: usize = 64 << 10;
/// Longest encoded list (and flat form) kept.
pub(crate) const MAX_LIST: usize = 2048;

/// Flat forms of encoded attribute lists.
#[derive(Debug, Default)]
pub(crate) struct AttributeListMemo(BytesMemo<SLOTS, MAX_BYTES, MAX_LIST>);

/// The hash an encoded list is kept by.
#[inline]
pub(crate) fn list_hash(encoded: &[u8]) -> u64 {
    bytes_hash(encoded)
}

impl AttributeListMemo {
    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    /// The flat form of the encoded list `encoded` (of hash `hash`), if kept.
    #[inline]
    pub(crate) fn get(&self, encoded: &[u8], hash: u64) -> Option<&[u8]> {
        self.0.get(encoded, hash).map(|(flat, _)| flat)
    }

    /// Keeps the flat form `flat` of the encoded list `encoded` (of hash `hash`).
    pub(crate) fn put(&mut self, encoded: &[u8], hash: u64, flat: &[u8]) {
        self.0.put(encoded, hash, flat, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_and_finds_by_the_bytes() {
        let mut m = AttributeListMemo::default();
        let list = b"\x4a\x03\x0a\x01k";
        let h = list_hash(list);
        assert!(m.get(list, h).is_none());
        m.put(list, h, b"flat");
        assert_eq!(m.get(list, h), Some(&b"flat"[..]));
        // Other bytes of the same slot are not found.
        assert!(m.get(b"\x4a\x03\x0a\x01j", h).is_none());
        m.clear();
        assert!(m.get(list, h).is_none());
        // Bounded: many entries start it over; too long ones are not kept.
        for i in 0..10_000u32 {
            let l = [&i.to_le_bytes()[..], &[0; 60]].concat();
            m.put(&l, list_hash(&l), &[1; 100]);
            assert_eq!(m.get(&l, list_hash(&l)), Some(&[1; 100][..]));
            assert!(m.0.bytes_len() <= MAX_BYTES);
        }
        let long = vec![1; MAX_LIST + 1];
        m.put(&long, list_hash(&long), b"f");
        assert!(m.get(&long, list_hash(&long)).is_none());
    }
}
