//! Asks the CPU to fetch, for writing, the ring slot after the one just
//! written, so that the next record's stores find its first lines already in
//! this core's cache.
//!
//! A slot is last touched a whole ring lap earlier (or by the reader's core
//! since), so without this the next record's first stores to it miss the
//! cache, and the writer stalls on that miss at its next locked instruction
//! (the claim's compare-and-swap) or when its store buffer fills: on a shared
//! 2-core machine this was most of a counter add's time. A prefetch is only
//! a hint: it never faults and changes no memory, whatever the address. When
//! another thread writes that slot next, the hint only moved a line it will
//! take back.

/// Lines (64 bytes each) of the next slot fetched ahead: a span start with a
/// few attributes takes three. Four measured better than two for spans and
/// counters in `benches/spans.rs`.
const LINES: usize = 4;

/// Fetches, for writing, the first lines of the slot that starts
/// `slot_size` bytes after `slot_start` (an address only: nothing is read or
/// written there).
#[inline]
pub(crate) fn next_slot_for_writing(slot_start: *const u8, slot_size: usize) {
    let next = slot_start.wrapping_add(slot_size);
    for line in 0..LINES.min(slot_size.div_ceil(64)) {
        for_writing(next.wrapping_add(line * 64));
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline]
fn for_writing(p: *const u8) {
    use core::arch::x86_64::{_MM_HINT_ET0, _mm_prefetch};
    // SAFETY: `_mm_prefetch` needs the `sse` target feature, which every
    // x86_64 CPU has (it is in the x86_64 baseline). The prefetch itself
    // never faults and neither reads nor writes memory for the program,
    // whatever `p` is.
    unsafe { _mm_prefetch::<_MM_HINT_ET0>(p.cast::<i8>()) }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn for_writing(_p: *const u8) {}
