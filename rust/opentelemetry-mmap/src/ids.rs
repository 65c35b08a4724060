//! Random trace and span ids from a per-thread generator (SplitMix64, seeded
//! once per thread from the standard library's randomly keyed hasher, the
//! clock and the thread's identity). Fast, lock-free and allocation-free; ids
//! are unique with overwhelming probability, not unpredictable.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

use opentelemetry::trace::{SpanId, TraceId};

thread_local! {
    static STATE: Cell<u64> = const { Cell::new(0) };
}

fn seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_usize(&h as *const _ as usize);
    h.write_u64(std::process::id() as u64);
    h.finish() | 1
}

#[inline]
fn next_u64() -> u64 {
    let step = |s: &Cell<u64>| {
        let mut x = s.get();
        if x == 0 {
            x = seed();
        }
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    STATE.try_with(step).unwrap_or_else(|_| seed())
}

/// A new random, valid (non-zero) span id.
#[inline]
pub fn new_span_id() -> SpanId {
    loop {
        let v = next_u64();
        if v != 0 {
            return SpanId::from_bytes(v.to_be_bytes());
        }
    }
}

/// A new random, valid (non-zero) trace id.
#[inline]
pub fn new_trace_id() -> TraceId {
    loop {
        let hi = next_u64() as u128;
        let lo = next_u64() as u128;
        let v = (hi << 64) | lo;
        if v != 0 {
            return TraceId::from_bytes(v.to_be_bytes());
        }
    }
}
