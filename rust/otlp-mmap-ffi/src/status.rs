//! Status codes, the error out-parameter, and the guard every entry point runs in.

use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Success.
pub const OM_OK: i32 = 0;
/// Poll: nothing to deliver now.
pub const OM_EMPTY: i32 = 1;
/// Collect: the previous metrics batch is not committed yet; measurements keep aggregating.
pub const OM_BUSY: i32 = 2;
/// A required pointer argument was NULL.
pub const OM_ERR_NULL: i32 = 10;
/// Bad argument (unknown signal, non-UTF-8 path, ...).
pub const OM_ERR_ARGUMENT: i32 = 11;
/// The file cannot be opened: missing, too short, wrong version, corrupt header.
pub const OM_ERR_OPEN: i32 = 12;
/// Another reader (Collector) already reads this file.
pub const OM_ERR_LOCKED: i32 = 13;
/// Commit with a token that is not the pending batch's (double commit, stale token).
pub const OM_ERR_TOKEN: i32 = 14;
/// I/O or format error while reading or writing.
pub const OM_ERR_IO: i32 = 15;
/// Writer: ring full or record larger than a slot; the record was dropped and counted.
pub const OM_ERR_FULL: i32 = 16;
/// The handle is NULL, closed or was never returned by this library.
pub const OM_ERR_HANDLE: i32 = 17;
/// Internal bug caught at the boundary; close the handle.
pub const OM_ERR_PANIC: i32 = 99;

/// Signal: traces (the spans ring).
pub const OM_SIGNAL_TRACES: i32 = 0;
/// Signal: logs (the events ring).
pub const OM_SIGNAL_LOGS: i32 = 1;
/// Signal: metrics (the measurements ring).
pub const OM_SIGNAL_METRICS: i32 = 2;

/// Bytes of `OmError::message`.
pub const OM_ERROR_MESSAGE_LEN: usize = 512;

/// Caller-allocated error out-parameter. `message` is NUL-terminated UTF-8,
/// truncated to fit.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct OmError {
    /// The `OM_*` status code of the failure.
    pub code: i32,
    /// What went wrong, NUL-terminated.
    pub message: [c_char; OM_ERROR_MESSAGE_LEN],
}

impl Default for OmError {
    fn default() -> Self {
        OmError {
            code: OM_OK,
            message: [0; OM_ERROR_MESSAGE_LEN],
        }
    }
}

impl OmError {
    /// The message as a Rust string.
    pub fn message(&self) -> String {
        let bytes: Vec<u8> = self
            .message
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// An error on its way to C.
pub(crate) struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub(crate) fn new(code: i32, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// Runs `f`, catching panics, and reports a failure into `err`.
pub(crate) fn guard(err: *mut OmError, f: impl FnOnce() -> Result<i32, Failure>) -> i32 {
    let outcome = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Failure::new(
            OM_ERR_PANIC,
            format!("internal error: {what}"),
        ))
    });
    match outcome {
        Ok(code) => {
            write_error(err, code, "");
            code
        }
        Err(f) => {
            write_error(err, f.code, &f.message);
            f.code
        }
    }
}

#[allow(unsafe_code)]
fn write_error(err: *mut OmError, code: i32, message: &str) {
    if err.is_null() {
        return;
    }
    // SAFETY: the caller passes either NULL (handled above) or a pointer to an
    // OmError it owns, valid for writes for the duration of the call.
    let err = unsafe { &mut *err };
    err.code = code;
    let bytes = message.as_bytes();
    let mut n = bytes.len().min(OM_ERROR_MESSAGE_LEN - 1);
    while n > 0 && !message.is_char_boundary(n) {
        n -= 1;
    }
    for (dst, &src) in err.message.iter_mut().zip(&bytes[..n]) {
        *dst = src as c_char;
    }
    err.message[n] = 0;
}

/// Reads a C string argument.
#[allow(unsafe_code)]
pub(crate) fn c_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::new(OM_ERR_NULL, format!("{what} is NULL")));
    }
    // SAFETY: the caller passes a NUL-terminated string valid for the call.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Failure::new(OM_ERR_ARGUMENT, format!("{what} is not UTF-8")))
}

/// Reads an optional C string argument (NULL is None).
pub(crate) fn opt_c_str<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, Failure> {
    if p.is_null() {
        Ok(None)
    } else {
        c_str(p, what).map(Some)
    }
}
