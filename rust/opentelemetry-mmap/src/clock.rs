//! The clock for timestamps: the wall clock read once, at first use, plus the
//! monotonic clock's progress since then. Reading it costs one monotonic
//! clock read (`clock_gettime(CLOCK_MONOTONIC)`, the clock `Instant` uses: a
//! vDSO call, no system call) and an addition; timestamps of one process never
//! go backwards, so an end is never before its start even if the wall clock is
//! stepped. (The monotonic clock does not advance while the machine is
//! suspended, so after a suspend timestamps lag the wall clock by its length.)

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

struct Base {
    wall_unix_nano: u64,
    monotonic_nano: u64,
}

static BASE: OnceLock<Base> = OnceLock::new();

fn base() -> &'static Base {
    BASE.get_or_init(|| Base {
        wall_unix_nano: unix_nano(SystemTime::now()),
        monotonic_nano: monotonic_nano(),
    })
}

/// The monotonic clock, in nanoseconds. Read directly rather than through
/// `Instant::elapsed`, whose checked `timespec` subtraction cost as much
/// again as the read itself.
#[allow(unsafe_code)]
#[inline]
fn monotonic_nano() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` only writes one `timespec` through the pointer,
    // which points to `ts`, a valid and exclusively borrowed `timespec`.
    // (CLOCK_MONOTONIC is always available; on a failure `ts` would keep its
    // zeros, a timestamp at the base, never a fault.)
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Now, in nanoseconds since the Unix epoch.
#[inline]
pub fn now_unix_nano() -> u64 {
    let b = base();
    b.wall_unix_nano
        .wrapping_add(monotonic_nano().saturating_sub(b.monotonic_nano))
}

/// A `SystemTime` in nanoseconds since the Unix epoch (0 before the epoch).
#[inline]
pub fn unix_nano(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_follow_the_wall_clock_and_never_go_back() {
        let before = unix_nano(SystemTime::now());
        let a = now_unix_nano();
        let b = now_unix_nano();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let c = now_unix_nano();
        let after = unix_nano(SystemTime::now());
        assert!(a <= b && b < c, "{a} {b} {c}");
        assert!(c - b >= 2_000_000, "{b} {c}");
        // The base is the wall clock at first use; within a second of it.
        assert!(a + 1_000_000_000 > before && c < after + 1_000_000_000);
    }
}
