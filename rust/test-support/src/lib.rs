//! Helpers shared by the workspace's tests and benchmarks.
//!
//! [`CountingAllocator`] is a global allocator that forwards every call to
//! the system allocator and records what was asked of it, so a test can
//! prove that a path allocates nothing, or nothing large. A test binary
//! installs it with
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: otlp_mmap_test_support::CountingAllocator =
//!     otlp_mmap_test_support::CountingAllocator;
//! ```
//!
//! and reads the counts with the functions of this crate. Counts are only
//! meaningful in a binary that installed it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A global allocator that forwards to [`System`] and counts: allocations per
/// thread and in total, bytes asked for, live bytes and their peak, and the
/// largest single allocation. An allocation, a zeroed allocation and a
/// reallocation each count as one.
pub struct CountingAllocator;

thread_local! {
    static THREAD_ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// Records one allocation of `size` bytes that adds `grown` live bytes.
fn record(size: usize, grown: usize) {
    // `try_with`: the allocator may run while this thread's locals are torn down.
    let _ = THREAD_ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    ALLOCATED_BYTES.fetch_add(size as u64, Ordering::Relaxed);
    LARGEST.fetch_max(size, Ordering::Relaxed);
    let live = LIVE_BYTES.fetch_add(grown, Ordering::Relaxed) + grown;
    PEAK_LIVE_BYTES.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every method forwards its arguments unchanged to the system
// allocator, which upholds the `GlobalAlloc` contract; the counting touches
// only atomics and a const-initialized thread local (neither allocates).
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size(), layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size(), layout.size());
        // SAFETY: the caller's contract for `alloc_zeroed` is passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` (through this allocator) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Peak as if the block grew in place (a moving realloc briefly holds both).
        if new_size >= layout.size() {
            record(new_size, new_size - layout.size());
        } else {
            record(new_size, 0);
            LIVE_BYTES.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations made so far on the calling thread.
pub fn thread_allocations() -> u64 {
    THREAD_ALLOCATIONS.with(Cell::get)
}

/// Allocations made on the calling thread while `f` runs (other threads'
/// allocations, e.g. of tests running at the same time, are not counted).
pub fn thread_allocations_during(f: impl FnOnce()) -> u64 {
    let before = thread_allocations();
    f();
    thread_allocations() - before
}

/// Allocations made so far by every thread.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Bytes asked for so far by every thread (reallocations count their new size).
pub fn allocated_bytes() -> u64 {
    ALLOCATED_BYTES.load(Ordering::Relaxed)
}

/// The largest single allocation so far.
pub fn largest_allocation() -> usize {
    LARGEST.load(Ordering::Relaxed)
}

/// Runs `f` and returns its result and the peak of live heap bytes above what
/// was live when it started (allocations of every thread count: run such
/// measurements one at a time).
pub fn peak_live_bytes_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE_BYTES.load(Ordering::Relaxed);
    PEAK_LIVE_BYTES.store(base, Ordering::Relaxed);
    let out = f();
    (
        out,
        PEAK_LIVE_BYTES.load(Ordering::Relaxed).saturating_sub(base),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static GLOBAL: CountingAllocator = CountingAllocator;

    #[test]
    fn counts_what_is_allocated() {
        let mut kept = Vec::new();
        let n = thread_allocations_during(|| kept = vec![0u8; 3 << 20]);
        assert_eq!(n, 1);
        assert!(largest_allocation() >= 3 << 20);
        let (v, peak) = peak_live_bytes_during(|| vec![1u8; 5 << 20]);
        assert!(peak >= 5 << 20, "peak {peak}");
        drop(v);
        let before = (allocations(), allocated_bytes());
        let grown = thread_allocations_during(|| kept.reserve_exact(8 << 20));
        assert_eq!(grown, 1, "a reallocation counts once");
        assert!(allocations() > before.0);
        assert!(allocated_bytes() >= before.1 + (11 << 20));
        assert_eq!(thread_allocations_during(|| kept[0] = 1), 0);
    }
}
