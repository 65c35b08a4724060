//! `IdleWatch`: one thread that watches every idle ("parked") file of a
//! process, so that the caller's own threads can sleep without timers.
//!
//! A caller whose reader found nothing to read parks it here with a token and
//! a deadline. Every `interval` the thread looks at each parked file: when a
//! writer claimed a record in one of the watched rings (one atomic load of
//! its `writer_index`) - in the measurements ring, as many as the caller
//! asked for ([`Wake::measurements`]) -, the writer started over in place
//! (a new start time, or a watched ring reset), or the deadline passed, the
//! file is unparked and its token handed to `notify`. The thread
//! reads its own mapping of each parked file (made when the file is first
//! parked and kept for its later parks, [`MmapReader::map_again`]: no file
//! descriptor, the file's length as the reader knows it), so it never
//! touches a [`FileReader`], which stays the
//! caller's alone. With nothing parked the thread sleeps until a park. An
//! idle process then costs one sleep of one thread per
//! `interval`, whatever the number of files; once no parked file has had
//! anything for [`QUIET_AFTER`], the sleeps double up to
//! [`QUIET_PERIOD_FACTOR`] × `interval` ([`WatchPeriod`]), and the next park
//! or ready file brings them back to `interval`. Whether a parked file's writer
//! is still alive the caller asks the reader itself
//! ([`FileReader::check_writer`]) now and then.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::sync::atomic::Ordering;

#[cfg(doc)]
use otlp_mmap_core::MmapReader;
use otlp_mmap_core::layout::{header, ring_header};
use otlp_mmap_core::{FormatError, RingReader, SharedRegion};

use crate::file_reader::{FileReader, Signal};

/// When a parked file is woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wake {
    /// At this time (unix nanoseconds) even when nothing was written.
    pub due_unix_nano: u64,
    /// Once writers claimed this many spans records past the reader's next
    /// one (0 or 1: the first). A caller that waits for a batch to fill
    /// passes what its ring may gather before the wait must end, so that a
    /// burst wakes it before the ring fills.
    pub traces: u64,
    /// The same for the log records ring.
    pub logs: u64,
    /// Once writers claimed this many measurements past the reader's next
    /// one (0 or 1: the first). Measurements only change aggregates until
    /// the next collection (which the caller's deadline covers), so a caller
    /// may leave some in the ring and read them in larger, rarer polls.
    pub measurements: u64,
}

impl Wake {
    /// Woken at `due_unix_nano` or by the first record of any ring.
    pub fn at(due_unix_nano: u64) -> Self {
        Wake {
            due_unix_nano,
            traces: 0,
            logs: 0,
            measurements: 0,
        }
    }

    fn records(&self, signal: Signal) -> u64 {
        match signal {
            Signal::Traces => self.traces,
            Signal::Logs => self.logs,
            Signal::Metrics => self.measurements,
        }
    }
}

/// A parked file: the watcher's own view of it.
#[derive(Debug)]
struct Parked {
    region: Arc<SharedRegion>,
    /// The start time in the file's header when it was parked.
    start_time: u64,
    /// The rings watched, positioned at the reader's next record, each with
    /// the records claimed past it that wake the file and the `reader_index`
    /// below which a ring reset wakes it (what the reader released, or the
    /// lower `reader_index` already in the file at the park).
    rings: Vec<(RingReader, u64, i64)>,
    /// Unpark at this time (unix nanoseconds) even when nothing was written.
    due_unix_nano: u64,
}

impl Parked {
    /// Whether writers claimed a record in a watched ring.
    fn has_claimed(&self) -> bool {
        self.rings
            .iter()
            .any(|(r, _, _)| r.has_claimed(&self.region))
    }

    fn ready(&self, now: u64) -> bool {
        now >= self.due_unix_nano
            || start_time(&self.region) != self.start_time
            || self.rings.iter().any(|(r, wake_at, reset_at)| {
                reset_behind(&self.region, r, *reset_at)
                    || match wake_at {
                        0 | 1 => r.has_claimed(&self.region),
                        &n => r.claimed_ahead(&self.region) >= n,
                    }
            })
    }
}

/// How soon a file parked with a writer's restart it has not followed yet
/// is woken to try again (see [`IdleWatch::park`]).
const RESTART_RETRY: Duration = Duration::from_secs(1);

/// The shortest sleep of the watcher: a deadline that passed while its file
/// stays parked (its token could not be handed on) is offered again this
/// often, not in a busy loop.
const MIN_SLEEP: Duration = Duration::from_millis(1);

/// How long until the earliest deadline of a parked file (at least
/// [`MIN_SLEEP`], or `interval` if shorter): a deadline is kept to about a
/// millisecond, not to the next look, so that a caller waiting for a batch
/// to fill is woken when it asked.
fn until_due(parked: &HashMap<u64, Parked>, interval: Duration) -> Duration {
    let now = otlp_mmap_core::now_unix_nano();
    parked
        .values()
        .map(|p| Duration::from_nanos(p.due_unix_nano.saturating_sub(now)))
        .min()
        .unwrap_or(Duration::MAX)
        .max(MIN_SLEEP.min(interval))
}

/// Whether the ring's `reader_index` went back behind `released`, what the
/// reader released: the writer started over in place and reset the ring
/// after the reader opened its new stream (at the old position, where the
/// new writer's records may never come; its next poll opens it again). A
/// checkpoint stored while parked only moves `reader_index` forward.
fn reset_behind(region: &SharedRegion, ring: &RingReader, released: i64) -> bool {
    reader_index(region, ring).is_some_and(|r| r < released)
}

/// The ring's `reader_index` in the file (`None` if it cannot be read).
fn reader_index(region: &SharedRegion, ring: &RingReader) -> Option<i64> {
    region
        .atomic_i64(ring.geometry().offset + ring_header::READER_INDEX)
        .ok()
        .map(|r| r.load(Ordering::Acquire))
}

/// The start time in the file header (0 if it cannot be read).
fn start_time(region: &SharedRegion) -> u64 {
    region
        .atomic_u64(header::START_TIME)
        .map(|t| t.load(Ordering::Acquire))
        .unwrap_or(0)
}

/// How long no parked file may have had anything before the watcher sleeps
/// longer than its `interval`.
pub const QUIET_AFTER: Duration = Duration::from_secs(10);

/// The longest sleep of a quiet watcher, in `interval`s. The first look at
/// a burst after a long silence comes up to this late, and a ring fills in
/// that time at a high enough rate (8,192 slots at 15 ms × 2: about 270,000
/// records/s), so it stays small.
pub const QUIET_PERIOD_FACTOR: u32 = 2;

/// The watcher's sleep between two looks at the parked files: `interval`
/// while files come and go, doubling up to [`QUIET_PERIOD_FACTOR`] ×
/// `interval` once nothing has happened for `quiet_after` ([`QUIET_AFTER`]).
/// A writer that writes at least that often is thus always looked at every
/// `interval`; a file silent for longer waits at most the longest sleep for
/// its first record, and idle files cost fewer wake-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchPeriod {
    interval: Duration,
    current: Duration,
    quiet_after: Duration,
}

impl WatchPeriod {
    /// A period that starts at `interval` and grows after [`QUIET_AFTER`].
    pub fn new(interval: Duration) -> Self {
        Self::with_quiet_after(interval, QUIET_AFTER)
    }

    /// A period that starts at `interval` and grows after `quiet_after`.
    pub fn with_quiet_after(interval: Duration, quiet_after: Duration) -> Self {
        WatchPeriod {
            interval,
            current: interval,
            quiet_after,
        }
    }

    /// The sleep before the next look.
    pub fn current(&self) -> Duration {
        self.current
    }

    /// After a look: `quiet_for` is the time since a file was last parked or
    /// found ready.
    pub fn after_look(&mut self, quiet_for: Duration) {
        self.current = if quiet_for < self.quiet_after {
            self.interval
        } else {
            let longest = self.interval.saturating_mul(QUIET_PERIOD_FACTOR);
            self.current.saturating_mul(2).min(longest)
        };
    }

    /// Back to `interval` (a file was parked).
    pub fn restart(&mut self) {
        self.current = self.interval;
    }

    /// Whether a file parked now should wake the watcher from its sleep
    /// (it sleeps longer than `interval`).
    pub fn sleeps_long(&self) -> bool {
        self.current > self.interval
    }
}

#[derive(Debug)]
struct State {
    parked: HashMap<u64, Parked>,
    stop: bool,
    /// When a file was last parked or found ready.
    active_at: Instant,
    period: WatchPeriod,
    /// Looks at the parked files so far.
    rounds: u64,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    stopped: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The watcher thread and the files parked with it. Dropping it stops the
/// thread (and waits for it).
#[derive(Debug)]
pub struct IdleWatch {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl IdleWatch {
    /// Starts the thread, which looks at the parked files every `interval`
    /// and calls `notify(token)` for each file it unparks. `notify` returns
    /// false when it could not pass the token on now (the file then stays
    /// parked and is offered again at the next round).
    pub fn start(
        interval: Duration,
        notify: impl FnMut(u64) -> bool + Send + 'static,
    ) -> std::io::Result<Self> {
        Self::start_quiet_after(interval, QUIET_AFTER, notify)
    }

    /// [`IdleWatch::start`] with sleeps that grow once nothing happened for
    /// `quiet_after` instead of [`QUIET_AFTER`].
    pub fn start_quiet_after(
        interval: Duration,
        quiet_after: Duration,
        mut notify: impl FnMut(u64) -> bool + Send + 'static,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                parked: HashMap::new(),
                stop: false,
                active_at: Instant::now(),
                period: WatchPeriod::with_quiet_after(interval, quiet_after),
                rounds: 0,
            }),
            stopped: Condvar::new(),
        });
        let watched = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("otlp-mmap-idle".into())
            .spawn(move || {
                let mut ready = Vec::new();
                let mut state = watched.lock();
                loop {
                    // Before every wait: a stop may have come before this
                    // thread first took the lock (its notify then woke no one).
                    if state.stop {
                        return;
                    }
                    state = if state.parked.is_empty() {
                        // Nothing to look at: sleep until a park (or stop).
                        watched
                            .stopped
                            .wait(state)
                            .unwrap_or_else(|p| p.into_inner())
                    } else {
                        let sleep = state
                            .period
                            .current()
                            .min(until_due(&state.parked, interval));
                        watched
                            .stopped
                            .wait_timeout(state, sleep)
                            .unwrap_or_else(|p| p.into_inner())
                            .0
                    };
                    if state.stop {
                        return;
                    }
                    if state.parked.is_empty() {
                        continue;
                    }
                    state.rounds += 1;
                    let now = otlp_mmap_core::now_unix_nano();
                    ready.clear();
                    ready.extend(
                        state
                            .parked
                            .iter()
                            .filter_map(|(&token, p)| p.ready(now).then_some(token)),
                    );
                    for &token in &ready {
                        if notify(token) {
                            state.parked.remove(&token);
                        }
                    }
                    // Activity: a file ready, or records claimed in a parked
                    // file that waits for more of them (a measurements batch).
                    if !ready.is_empty() || state.parked.values().any(Parked::has_claimed) {
                        state.active_at = Instant::now();
                    }
                    let quiet_for = state.active_at.elapsed();
                    state.period.after_look(quiet_for);
                }
            })?;
        Ok(IdleWatch {
            shared,
            thread: Some(thread),
        })
    }

    /// Parks `reader` under `token` (replacing an earlier park of the same
    /// token): the watcher unparks it once a writer claims a record in the
    /// ring of one of `signals` (in the measurements ring: the number
    /// `wake.measurements` asks for), the writer starts over, or at
    /// `wake.due_unix_nano`. Call it only while the reader has no pending
    /// batch of those signals (its next poll would find nothing, or only
    /// fewer measurements than that): the watcher starts at the reader's
    /// next record.
    pub fn park(
        &self,
        token: u64,
        reader: &FileReader,
        signals: &[Signal],
        wake: Wake,
    ) -> Result<(), FormatError> {
        let file = reader.file();
        let region = file.map_again()?;
        // From the reader's next record: the slots it holds until a
        // checkpoint is stored are not new records. A ring reset wakes the
        // file when `reader_index` goes back behind what the reader released
        // (or behind where it already is, if it went back before the park).
        let mut reset_pending = false;
        let rings: Vec<_> = signals
            .iter()
            .map(|&s| {
                let ring =
                    RingReader::watching(file.layout().ring(s.ring()), reader.next_sequence(s));
                let released = reader.released_sequence(s);
                let index = reader_index(&region, &ring);
                reset_pending |= index.is_some_and(|r| r < released);
                (
                    ring,
                    wake.records(s),
                    index.map_or(released, |r| r.min(released)),
                )
            })
            .collect();
        // A writer that started over before the park, which the reader has
        // not followed (its next poll will, or cannot open the new stream
        // yet): the file is woken within RESTART_RETRY rather than at once,
        // so that a restart that cannot be followed yet (or a hostile file
        // faking one) is retried once a second, not at every look.
        let start_now = start_time(&region);
        let restart_pending = start_now != file.start_time_unix_nano() || reset_pending;
        let due_unix_nano = if restart_pending {
            let retry = otlp_mmap_core::now_unix_nano() + RESTART_RETRY.as_nanos() as u64;
            wake.due_unix_nano.min(retry)
        } else {
            wake.due_unix_nano
        };
        let parked = Parked {
            region,
            start_time: start_now,
            rings,
            due_unix_nano,
        };
        let mut state = self.shared.lock();
        let was_empty = state.parked.is_empty();
        state.parked.insert(token, parked);
        state.active_at = Instant::now();
        if was_empty || state.period.sleeps_long() {
            // The watcher sleeps until a park when nothing is parked; and a
            // file that just had records is looked at every `interval` from
            // now on, not after the rest of a long sleep.
            state.period.restart();
            self.shared.stopped.notify_all();
        }
        Ok(())
    }

    /// Forgets the file parked under `token`; returns whether it was parked.
    pub fn unpark(&self, token: u64) -> bool {
        self.shared.lock().parked.remove(&token).is_some()
    }

    /// The watcher's sleep between two looks now: `interval`, or longer
    /// while it is quiet ([`WatchPeriod`]).
    pub fn period(&self) -> Duration {
        self.shared.lock().period.current()
    }

    /// How many times the watcher looked at the parked files so far (it
    /// does not wake while nothing is parked).
    pub fn rounds(&self) -> u64 {
        self.shared.lock().rounds
    }

    /// Files parked now.
    pub fn parked(&self) -> usize {
        self.shared.lock().parked.len()
    }
}

impl Drop for IdleWatch {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.stopped.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_period_stays_at_the_interval_while_files_come_and_go() {
        let mut p = WatchPeriod::new(15 * MS);
        for quiet in [Duration::ZERO, 200 * MS, QUIET_AFTER - MS] {
            p.after_look(quiet);
            assert_eq!(p.current(), 15 * MS);
            assert!(!p.sleeps_long());
        }
    }

    #[test]
    fn a_quiet_watcher_doubles_its_sleep_up_to_the_factor_and_comes_back() {
        let mut p = WatchPeriod::new(15 * MS);
        let mut seen = Vec::new();
        for _ in 0..6 {
            p.after_look(QUIET_AFTER);
            seen.push(p.current());
        }
        let longest = 15 * MS * QUIET_PERIOD_FACTOR;
        assert_eq!(seen[0], 30 * MS);
        assert!(seen.iter().all(|&d| d <= longest));
        assert_eq!(*seen.last().unwrap(), longest);
        assert!(p.sleeps_long());
        p.after_look(10 * MS);
        assert_eq!(p.current(), 15 * MS);
    }
}
