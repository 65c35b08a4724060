//! The clock for timestamps: the real-time (wall) clock, read at each event
//! as the OpenTelemetry SDKs do, so timestamps follow the clock when NTP sets
//! or steps it and agree with explicit `SystemTime` timestamps. Reading it is
//! one `clock_gettime(CLOCK_REALTIME)`, a vDSO call (no system call), read
//! directly rather than through `SystemTime::now` and `duration_since`, whose
//! checked `timespec` arithmetic cost as much again as the read itself. (Like
//! any wall clock it can be stepped back, so an end can come before its
//! start; the SDKs have the same behaviour.)
//!
//! Metric measurements are stamped from the coarse variant of the same clock
//! ([`measurement_now_unix_nano`]), which is exact to a kernel tick.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in nanoseconds since the Unix epoch (0 before the epoch).
#[inline]
pub fn now_unix_nano() -> u64 {
    read_clock(libc::CLOCK_REALTIME)
}

/// Reads `clock` in nanoseconds since the Unix epoch (0 before it).
#[allow(unsafe_code)]
#[inline]
fn read_clock(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` only writes one `timespec` through the pointer,
    // which points to `ts`, a valid and exclusively borrowed `timespec`.
    // (The real-time clocks read here always exist; on a failure `ts` would
    // keep its zeros, a timestamp of 0, never a fault.)
    unsafe { libc::clock_gettime(clock, &mut ts) };
    if ts.tv_sec < 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// The clock measurements are stamped with: the kernel's coarse real-time
/// clock, where there is one (`CLOCK_REALTIME_COARSE`, Linux).
#[cfg(any(target_os = "linux", target_os = "android"))]
const MEASUREMENT_CLOCK: libc::clockid_t = libc::CLOCK_REALTIME_COARSE;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const MEASUREMENT_CLOCK: libc::clockid_t = libc::CLOCK_REALTIME;

/// Now, for a metric measurement, in nanoseconds since the Unix epoch: the
/// wall clock as of the kernel's last tick ([`measurement_clock_resolution`],
/// 1 to 10 ms), read without the time counter, at about a third of the cost
/// of [`now_unix_nano`] (8 against 30 ns here). A measurement's time only
/// dates a gauge's last value and an exemplar (sums and histograms are dated
/// by their collection, as in the OpenTelemetry SDKs, which read no clock per
/// measurement at all), so a tick's precision is enough there; spans and log
/// records keep the precise clock.
#[inline]
pub fn measurement_now_unix_nano() -> u64 {
    read_clock(MEASUREMENT_CLOCK)
}

/// How far [`measurement_now_unix_nano`] may lag the precise clock, in
/// nanoseconds (the kernel's tick on Linux).
#[allow(unsafe_code)]
pub fn measurement_clock_resolution() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_getres` only writes one `timespec` through the pointer,
    // which points to `ts`, a valid and exclusively borrowed `timespec`.
    unsafe { libc::clock_getres(MEASUREMENT_CLOCK, &mut ts) };
    (ts.tv_sec.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec.max(0) as u64)
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

    #[test]
    fn measurement_times_are_the_wall_clock_to_a_tick() {
        let resolution = measurement_clock_resolution();
        assert!(
            (1..=100_000_000).contains(&resolution),
            "resolution {resolution} ns"
        );
        for _ in 0..1000 {
            let before = now_unix_nano();
            let m = measurement_now_unix_nano();
            let after = now_unix_nano();
            // The coarse clock is the precise one as of its last tick: never
            // ahead of it, and about a tick behind.
            assert!(m <= after, "{m} > {after}");
            // (Four ticks, not one: a busy virtual machine may run a tick late.)
            assert!(
                before.saturating_sub(m) <= 4 * resolution,
                "{before} - {m} > 4 * {resolution}"
            );
        }
        // It moves on with the wall clock.
        let first = measurement_now_unix_nano();
        std::thread::sleep(std::time::Duration::from_nanos(2 * resolution));
        assert!(measurement_now_unix_nano() > first);
    }
}
