//! The clock for timestamps: the wall clock read once, at first use, plus the
//! monotonic clock's progress since then. Reading it costs one monotonic
//! clock read (a vDSO call, no system call); timestamps of one process never
//! go backwards, so an end is never before its start even if the wall clock is
//! stepped. (The monotonic clock does not advance while the machine is
//! suspended, so after a suspend timestamps lag the wall clock by its length.)

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

struct Base {
    wall_unix_nano: u64,
    at: Instant,
}

static BASE: OnceLock<Base> = OnceLock::new();

fn base() -> &'static Base {
    BASE.get_or_init(|| Base {
        wall_unix_nano: unix_nano(SystemTime::now()),
        at: Instant::now(),
    })
}

/// Now, in nanoseconds since the Unix epoch.
#[inline]
pub fn now_unix_nano() -> u64 {
    let b = base();
    b.wall_unix_nano
        .wrapping_add(b.at.elapsed().as_nanos() as u64)
}

/// A `SystemTime` in nanoseconds since the Unix epoch (0 before the epoch).
#[inline]
pub fn unix_nano(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
