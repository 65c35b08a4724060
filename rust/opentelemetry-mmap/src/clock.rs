//! The clock for timestamps: the real-time (wall) clock, read at each event
//! as the OpenTelemetry SDKs do, so timestamps follow the clock when NTP sets
//! or steps it and agree with explicit `SystemTime` timestamps. Reading it is
//! one `clock_gettime(CLOCK_REALTIME)`, a vDSO call (no system call), read
//! directly rather than through `SystemTime::now` and `duration_since`, whose
//! checked `timespec` arithmetic cost as much again as the read itself. (Like
//! any wall clock it can be stepped back, so an end can come before its
//! start; the SDKs have the same behaviour.)

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in nanoseconds since the Unix epoch (0 before the epoch).
#[allow(unsafe_code)]
#[inline]
pub fn now_unix_nano() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` only writes one `timespec` through the pointer,
    // which points to `ts`, a valid and exclusively borrowed `timespec`.
    // (CLOCK_REALTIME is always available; on a failure `ts` would keep its
    // zeros, a timestamp of 0, never a fault.)
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    if ts.tv_sec < 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
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
    fn timestamps_are_the_wall_clock() {
        let before = unix_nano(SystemTime::now());
        let a = now_unix_nano();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = now_unix_nano();
        let after = unix_nano(SystemTime::now());
        // Read at each call: between the SystemTime reads around them (the
        // same clock), and the sleep shows.
        assert!(
            before <= a && a <= b && b <= after,
            "{before} {a} {b} {after}"
        );
        assert!(b - a >= 2_000_000, "{a} {b}");
    }
}
