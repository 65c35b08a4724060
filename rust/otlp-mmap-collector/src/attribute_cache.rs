//! `AttributeCache`: span attributes already resolved, by their encoded
//! `KeyValueRef`.
//!
//! A writer sends the same attribute (the same key ref and value) with span
//! after span, encoded the same way. What the first one resolved to, the
//! OTLP `KeyValue` field a span holds, is kept with those bytes as its key,
//! so that the next ones are copied rather than parsed and resolved again.
//! An entry is kept only when its resolution went cleanly (no bad ref,
//! within the budget) and its value holds no value ref (refs have their own
//! expansion bounds, counted per resolution), so a hit gives exactly what a
//! resolution would; the caller charges the record budget the same amounts.
//!
//! It lives in the [`DictionaryCache`](crate::dictionary::DictionaryCache)
//! of one stream (refs mean other things in another) and is bounded: at
//! most [`MAX_ENTRIES`] entries and [`MAX_BYTES`] bytes of keys and fields;
//! when full it is cleared, keeping its memory, so it allocates nothing
//! once it has grown, whatever the attributes.

/// Most entries kept.
pub const MAX_ENTRIES: usize = 4096;
/// Slots of the index (a power of two).
const SLOTS: usize = 2 * MAX_ENTRIES;
/// An index slot without an entry.
const NO_ENTRY: u32 = u32::MAX;
/// Most bytes of encoded `KeyValueRef`s and `KeyValue` fields kept.
pub const MAX_BYTES: usize = 256 << 10;

/// One attribute resolved: where its `KeyValue` field is in the cache, and
/// what the span keeps about it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CachedAttribute {
    field_at: u32,
    field_len: u32,
    /// Where the key's bytes are, from the field's start.
    pub(crate) key_at: usize,
    pub(crate) key_len: usize,
    /// Hash of the key (`spans::key_hash`).
    pub(crate) key_hash: u64,
    /// What the value costs in the record budget (0 without a value).
    pub(crate) value_bytes: usize,
    /// Whether the `KeyValueRef` has a value.
    pub(crate) has_value: bool,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    raw_at: u32,
    raw_len: u32,
    attribute: CachedAttribute,
}

/// The index slot of `hash` (its low bits: `FxHasher::finish` puts its
/// best-mixed bits there).
#[inline]
fn slot(hash: u64) -> usize {
    hash as usize & (SLOTS - 1)
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct AttributeCache {
    /// Slot of the hash of an encoded `KeyValueRef` -> its entry (or
    /// [`NO_ENTRY`]). Direct-mapped: a later entry of the same slot takes
    /// its place (the earlier one is then resolved again when met).
    /// Empty until the first entry.
    index: Vec<u32>,
    entries: Vec<Entry>,
    /// The encoded `KeyValueRef`s and `KeyValue` fields.
    arena: Vec<u8>,
}

impl AttributeCache {
    /// The attribute the encoded `KeyValueRef` `raw` (of hash `hash`) resolved to.
    #[inline]
    pub(crate) fn get(&self, raw: &[u8], hash: u64) -> Option<CachedAttribute> {
        let e = self.entries.get(*self.index.get(slot(hash))? as usize)?;
        let at = e.raw_at as usize;
        (self.arena.get(at..at + e.raw_len as usize)? == raw).then_some(e.attribute)
    }

    /// The `KeyValue` field of an attribute [`get`](Self::get) gave.
    #[inline]
    pub(crate) fn field(&self, a: &CachedAttribute) -> &[u8] {
        let at = a.field_at as usize;
        self.arena.get(at..at + a.field_len as usize).unwrap_or(&[])
    }

    /// Keeps what `raw` (of hash `hash`) resolved to: the `KeyValue` field
    /// `field`, its key at `key_at` (`key_len` bytes, hash `key_hash`) and
    /// its value's cost.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert(
        &mut self,
        raw: &[u8],
        hash: u64,
        field: &[u8],
        key_at: usize,
        key_len: usize,
        key_hash: u64,
        value_bytes: usize,
        has_value: bool,
    ) {
        let size = raw.len() + field.len();
        if size > MAX_BYTES / 16 {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES || self.arena.len() + size > MAX_BYTES {
            self.clear();
        }
        if self.index.is_empty() {
            self.index = vec![NO_ENTRY; SLOTS];
        }
        let raw_at = self.arena.len();
        self.arena.extend_from_slice(raw);
        let field_at = self.arena.len();
        self.arena.extend_from_slice(field);
        // Both fit in u32: the arena holds at most MAX_BYTES.
        self.index[slot(hash)] = self.entries.len() as u32;
        self.entries.push(Entry {
            raw_at: raw_at as u32,
            raw_len: raw.len() as u32,
            attribute: CachedAttribute {
                field_at: field_at as u32,
                field_len: field.len() as u32,
                key_at,
                key_len,
                key_hash,
                value_bytes,
                has_value,
            },
        });
    }

    /// Forgets every entry, keeping the memory.
    pub(crate) fn clear(&mut self) {
        self.index.fill(NO_ENTRY);
        self.entries.clear();
        self.arena.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes_hash::bytes_hash;

    #[test]
    fn finds_what_it_keeps_and_stays_bounded() {
        let mut c = AttributeCache::default();
        let raw = [0x08, 5, 0x12, 2, 0x18, 1];
        let h = bytes_hash(&raw);
        assert!(c.get(&raw, h).is_none());
        c.insert(&raw, h, b"field", 2, 1, 77, 24, true);
        let a = c.get(&raw, h).unwrap();
        assert_eq!(c.field(&a), b"field");
        assert_eq!((a.key_at, a.key_len, a.key_hash), (2, 1, 77));
        assert_eq!((a.value_bytes, a.has_value), (24, true));
        // Another encoding with the same hash is not taken for it.
        assert!(c.get(&[0x08, 6], h).is_none());
        // Past its bounds it starts over.
        for i in 0..2 * MAX_ENTRIES as u32 {
            let r = i.to_le_bytes();
            c.insert(&r, bytes_hash(&r), &[0; 40], 0, 0, 0, 0, false);
            assert!(c.entries.len() <= MAX_ENTRIES && c.arena.len() <= MAX_BYTES);
            assert!(c.get(&r, bytes_hash(&r)).is_some());
        }
        // Two encodings of one slot: the later takes it, the earlier is
        // then not found (resolved again), never taken for the later.
        let (a, b) = ([0x08u8, 1], [0x08u8, 2]);
        c.clear();
        c.insert(&a, 5, b"a", 0, 0, 0, 0, false);
        c.insert(&b, 5 + SLOTS as u64, b"b", 0, 0, 0, 0, false);
        assert!(c.get(&a, 5).is_none());
        assert_eq!(c.field(&c.get(&b, 5 + SLOTS as u64).unwrap()), b"b");
        // Too large to keep.
        let big = vec![1u8; MAX_BYTES];
        c.insert(&big, bytes_hash(&big), &[], 0, 0, 0, 0, false);
        assert!(c.get(&big, bytes_hash(&big)).is_none());
    }
}
