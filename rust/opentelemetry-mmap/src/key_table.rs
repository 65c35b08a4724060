//! One thread's table of the attribute keys (and event names) it has used
//! with one file: each key's dictionary ref and its encoded `key_ref` field.
//!
//! A lookup first tries the two entries the key's *address* picks in a small
//! two-way table of recent keys ([`RECENT`] entries, in pairs): applications
//! mostly pass the same `&'static str` keys again and again, so the address
//! finds them without hashing, and two keys whose addresses pick the same
//! pair both stay in it. The address only chooses the pair: a hit still
//! compares the key's bytes with the entry's own copy, so a string freed and
//! another one allocated at the same address is never taken for the old key.
//! Otherwise the key's bytes are hashed (rustc-hash's FxHash) into the table
//! of every key, and the pair's first entry takes it over (its previous key
//! moves to the second; a reference count, no allocation). Only a key's first
//! use on the thread allocates (the shared copy of the key).

use std::rc::Rc;

use rustc_hash::FxHashMap;

use crate::encode::EncodedKey;

/// Entries of the table of recent keys (a power of two): 64 pairs.
const RECENT: usize = 128;

/// A key's ref and its encoded `key_ref` field.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EncodedKeyRef {
    pub key_ref: i64,
    pub encoded: EncodedKey,
}

/// A recently used key: where its bytes were, a copy of them, and its ref.
struct Recent {
    addr: usize,
    key: Rc<str>,
    found: EncodedKeyRef,
}

impl Recent {
    /// This entry is `key`, at `addr`.
    #[inline]
    fn is(&self, addr: usize, key: &str) -> bool {
        self.addr == addr && same_bytes(self.key.as_bytes(), key.as_bytes())
    }
}

/// See the module documentation.
pub(crate) struct KeyTable {
    all: FxHashMap<Rc<str>, EncodedKeyRef>,
    recent: Box<[Option<Recent>]>,
}

impl KeyTable {
    pub(crate) fn new() -> Self {
        KeyTable {
            all: FxHashMap::default(),
            recent: (0..RECENT).map(|_| None).collect(),
        }
    }

    /// The first entry of the pair of recent keys for a key at `addr` (the
    /// top bits of a multiplicative hash of the address; even).
    #[inline]
    fn recent_index(addr: usize) -> usize {
        let h = (addr as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((h >> (64 - RECENT.trailing_zeros())) as usize) & (RECENT - 2)
    }

    /// The ref of `key`, if the thread has used it before.
    #[inline(always)]
    pub(crate) fn get(&mut self, key: &str) -> Option<EncodedKeyRef> {
        let addr = key.as_ptr() as usize;
        let i = Self::recent_index(addr);
        if let Some([first, second]) = self.recent.get(i..).and_then(|s| s.first_chunk::<2>()) {
            if let Some(r) = first
                && r.is(addr, key)
            {
                return Some(r.found);
            }
            if let Some(r) = second
                && r.is(addr, key)
            {
                return Some(r.found);
            }
        }
        self.miss_recent(key, i)
    }

    /// `key` is in neither entry of its pair (at `i`): finds it by its bytes,
    /// and makes it the pair's first entry.
    #[cold]
    fn miss_recent(&mut self, key: &str, i: usize) -> Option<EncodedKeyRef> {
        let (shared, found) = self.all.get_key_value(key)?;
        let found = *found;
        let recent = Recent {
            addr: key.as_ptr() as usize,
            key: shared.clone(),
            found,
        };
        if let Some(pair) = self.recent.get_mut(i..i + 2) {
            pair[1] = pair[0].replace(recent);
        }
        Some(found)
    }

    /// Keeps the ref of a key used for the first time.
    pub(crate) fn insert(&mut self, key: &str, found: EncodedKeyRef) {
        self.all.insert(key.into(), found);
    }
}

/// `a == b`, without a call to `memcmp` for keys of up to 32 bytes (two or
/// four words, overlapping when the length is not a multiple of a word).
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| s.get(at..).and_then(|s| s.first_chunk::<8>()).copied();
    let half = |s: &[u8], at: usize| s.get(at..).and_then(|s| s.first_chunk::<4>()).copied();
    match n {
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        17..=32 => {
            word(a, 0) == word(b, 0)
                && word(a, 8) == word(b, 8)
                && word(a, n - 16) == word(b, n - 16)
                && word(a, n - 8) == word(b, n - 8)
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key_ref: i64) -> EncodedKeyRef {
        EncodedKeyRef {
            key_ref,
            encoded: EncodedKey::new(key_ref),
        }
    }

    #[test]
    fn a_key_is_found_by_its_bytes_wherever_they_are() {
        let mut t = KeyTable::new();
        assert!(t.get("http.method").is_none());
        t.insert("http.method", entry(100));
        t.insert("http.route", entry(200));
        assert_eq!(t.get("http.method").unwrap().key_ref, 100);
        assert_eq!(t.get("http.method").unwrap().key_ref, 100);
        let owned = String::from("http.route");
        assert_eq!(t.get(&owned).unwrap().key_ref, 200);
        assert!(t.get("http.other").is_none());
    }

    #[test]
    fn two_keys_whose_addresses_pick_the_same_pair_both_stay_recent() {
        // Among 65 keys, two pick the same pair (there are 64).
        let keys: Vec<String> = (0..65).map(|i| format!("key.{i}")).collect();
        let mut seen = std::collections::HashMap::new();
        let (a, b) = keys
            .iter()
            .find_map(|k| {
                seen.insert(KeyTable::recent_index(k.as_ptr() as usize), k)
                    .map(|other| (other, k))
            })
            .unwrap();
        let mut t = KeyTable::new();
        t.insert(a, entry(1));
        t.insert(b, entry(2));
        assert_eq!(t.get(a).unwrap().key_ref, 1);
        assert_eq!(t.get(b).unwrap().key_ref, 2);
        // Found again without the table of every key.
        t.all.clear();
        for _ in 0..3 {
            assert_eq!(t.get(a).unwrap().key_ref, 1);
            assert_eq!(t.get(b).unwrap().key_ref, 2);
        }
    }

    #[test]
    fn bytes_are_compared_at_every_length() {
        for n in 0..48 {
            let a: Vec<u8> = (0..n as u8).collect();
            assert!(same_bytes(&a, &a.clone()));
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x40;
                assert!(!same_bytes(&a, &b), "length {n}, byte {i}");
            }
            assert!(!same_bytes(&a, &a[..n.saturating_sub(1)]) || n == 0);
        }
    }

    #[test]
    fn another_string_at_a_recent_keys_address_is_not_taken_for_it() {
        let mut t = KeyTable::new();
        t.insert("aaaa", entry(1));
        t.insert("bbbb", entry(2));
        // One buffer, rewritten in place: the same address holds one key,
        // then another of the same length, then one never used.
        let mut buf = String::from("aaaa");
        assert_eq!(t.get(&buf).unwrap().key_ref, 1);
        buf.replace_range(.., "bbbb");
        assert_eq!(t.get(&buf).unwrap().key_ref, 2);
        buf.replace_range(.., "cccc");
        assert!(t.get(&buf).is_none());
        buf.replace_range(.., "aaaa");
        assert_eq!(t.get(&buf).unwrap().key_ref, 1);
    }
}
