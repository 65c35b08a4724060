//! Prefetch-for-write hints: ask the CPU to bring cache lines into this
//! core's cache, in the state that lets it write them, before the program
//! stores to them.
//!
//! A prefetch is only a hint: it never faults and changes no memory, whatever
//! the address. [`RingWriter::try_write`](crate::ring::RingWriter::try_write)
//! uses it for the ring's next slot (see there).

/// Bytes of a cache line.
const LINE: usize = 64;

/// Fetches, for writing, every cache line of the `len` bytes from `start`
/// (an address only: nothing is read or written there).
#[inline]
pub(crate) fn lines_for_writing(start: *const u8, len: usize) {
    let mut line = 0;
    while line < len {
        for_writing(start.wrapping_add(line));
        line += LINE;
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
