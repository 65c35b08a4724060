//! `om_watcher_*`: one thread that watches idle readers, so that the caller
//! needs no timer per file (the collector's `IdleWatch`).

use std::ffi::c_int;
use std::io::Write;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use otlp_mmap_collector::{IdleWatch, Wake};

use crate::handles;
use crate::reader::{OmReader, signal};
use crate::status::*;

/// A watcher of idle readers (opaque).
pub struct OmWatcher {
    watch: IdleWatch,
}

/// Starts a watcher thread that looks at the parked readers every
/// `interval_nanos` (2 × as long once no reader was parked or had records
/// for 10 seconds; the next park ends the long sleeps; with nothing parked
/// it sleeps until a park) and, for each one that has records to read (or whose
/// deadline passed), writes its token (8 bytes, native byte order) to
/// `notify_fd` and forgets it. `notify_fd` is the write end of a pipe; the
/// library keeps a duplicate (the caller may close its own). When the pipe is
/// full, the reader stays parked and is offered again at the next round. The
/// watcher, like every handle, is used from one thread at a time; its own
/// thread runs apart. On success `*out` is the handle, to be freed with
/// `om_watcher_close`.
///
/// # Safety
/// `notify_fd` is an open file descriptor for the duration of the call;
/// `out` and `err` are NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_watcher_start(
    interval_nanos: u64,
    notify_fd: c_int,
    out: *mut *mut OmWatcher,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        if out.is_null() {
            return Err(Failure::new(OM_ERR_NULL, "out is NULL"));
        }
        if interval_nanos == 0 || notify_fd < 0 {
            return Err(Failure::new(
                OM_ERR_ARGUMENT,
                format!("interval {interval_nanos} ns, fd {notify_fd}: both must be positive"),
            ));
        }
        // SAFETY: `notify_fd` is not negative and is open for the duration of
        // this call by the caller's contract; the borrow does not outlive it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(notify_fd) };
        let mut pipe = borrowed
            .try_clone_to_owned()
            .map(std::fs::File::from)
            .map_err(|e| {
                Failure::new(OM_ERR_IO, format!("cannot duplicate fd {notify_fd}: {e}"))
            })?;
        let watch = IdleWatch::start(Duration::from_nanos(interval_nanos), move |token| {
            match pipe.write(&token.to_ne_bytes()) {
                Ok(8) => true,
                // Full (a non-blocking pipe) or closed: keep it parked.
                Ok(_) | Err(_) => false,
            }
        })
        .map_err(|e| Failure::new(OM_ERR_IO, format!("cannot start the watcher thread: {e}")))?;
        // SAFETY: `out` is non-NULL and valid for writes by the caller's contract.
        unsafe { *out = handles::register(OmWatcher { watch }) };
        Ok(OM_OK)
    })
}

/// Parks `reader` under `token` until a writer claims a record in the ring of
/// one of the signals whose bit (`1 << OM_SIGNAL_*`) is set in `signals` (in
/// each ring: `traces_wake_at`, `logs_wake_at` or `measurements_wake_at`
/// records past the reader's next one; 0 or 1: the first), the writer starts over, or the
/// clock passes `due_unix_nano`; then the watcher writes `token` to its pipe.
/// Measurements only change aggregates until the next collection, so a
/// caller whose deadline is that collection may leave some in the ring and
/// read them in larger, rarer polls; a caller waiting for a spans or logs
/// batch to fill passes what the ring may gather before it must be read, so
/// that a burst wakes it in time. Parking a token again replaces the
/// earlier park. Park a reader only when its last polls of those signals
/// found nothing (no pending batch): the watcher starts at the records the
/// reader released. The watcher reads its own mapping of the file (no file
/// descriptor), never the reader, which the caller may use and close while
/// it is parked. The watcher does not look at the writer's liveness: ask the
/// reader with `om_reader_check_writer` now and then.
///
/// # Safety
/// `err` is NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_watcher_park(
    watcher: *mut OmWatcher,
    reader: *mut OmReader,
    token: u64,
    signals: u32,
    due_unix_nano: u64,
    traces_wake_at: u64,
    logs_wake_at: u64,
    measurements_wake_at: u64,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        let w = handles::get(watcher)?;
        let r = handles::get(reader)?;
        if signals & !0b111 != 0 {
            return Err(Failure::new(
                OM_ERR_ARGUMENT,
                format!("unknown signal bits in {signals:#x}"),
            ));
        }
        let sigs = (0..3)
            .filter(|i| signals & (1 << i) != 0)
            .map(signal)
            .collect::<Result<Vec<_>, _>>()?;
        w.watch
            .park(
                token,
                &r.reader,
                &sigs,
                Wake {
                    due_unix_nano,
                    traces: traces_wake_at,
                    logs: logs_wake_at,
                    measurements: measurements_wake_at,
                },
            )
            .map_err(|e| Failure::new(OM_ERR_IO, e.to_string()))?;
        Ok(OM_OK)
    })
}

/// Forgets the reader parked under `token`: `OM_OK` if it was parked,
/// `OM_EMPTY` if not (it was woken already, or never parked).
///
/// # Safety
/// `err` is NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_watcher_unpark(
    watcher: *mut OmWatcher,
    token: u64,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        Ok(if handles::get(watcher)?.watch.unpark(token) {
            OM_OK
        } else {
            OM_EMPTY
        })
    })
}

/// Stops the watcher's thread (waiting for it) and frees the watcher; the
/// library's duplicate of the pipe is closed. A NULL, closed or unknown
/// handle gives `OM_ERR_HANDLE`.
///
/// # Safety
/// `watcher` must not be in use by another thread.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_watcher_close(watcher: *mut OmWatcher) -> i32 {
    guard(std::ptr::null_mut(), || {
        handles::release(watcher)?;
        Ok(OM_OK)
    })
}
