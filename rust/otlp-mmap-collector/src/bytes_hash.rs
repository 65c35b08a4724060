//! The hash the reader's tables key byte strings on (attribute keys, encoded
//! attributes, flat strings): rustc-hash's `FxHasher` over the bytes alone.
//! (`BuildHasher::hash_one` of a slice would hash its length too.)

use std::hash::Hasher;

use rustc_hash::FxHasher;

/// Hash of `bytes`.
#[inline]
pub(crate) fn bytes_hash(bytes: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(bytes);
    h.finish()
}
