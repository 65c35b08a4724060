//! Advisory locks that tell a reader whether the writer is alive and keep a
//! second reader away.
//!
//! Both are Linux open-file-description (OFD) byte-range locks taken with
//! `fcntl(F_OFD_SETLK)`: the kernel releases them when the holding process
//! dies, however it dies, and they do not conflict with each other because
//! they cover different bytes:
//!
//! - the writer holds a read lock on bytes `[0, 8)` (the version word) for as
//!   long as it lives; a reader asks `F_OFD_GETLK` whether a write lock there
//!   would conflict, which is true exactly while some writer holds its lock;
//! - the reader holds a write lock on bytes `[8, 16)`; a second reader's
//!   attempt fails with `EAGAIN`.
//!
//! Writers of other implementations take no lock; a reader therefore only
//! concludes "writer gone" after it has once seen the lock held.

use std::fs::File;
use std::os::fd::AsRawFd;

const WRITER_RANGE: (i64, i64) = (0, 8);
const READER_RANGE: (i64, i64) = (8, 8);

#[allow(unsafe_code)]
fn flock(kind: libc::c_short, range: (i64, i64)) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = range.0;
    fl.l_len = range.1;
    fl
}

#[allow(unsafe_code)]
fn set_lock(file: &File, kind: libc::c_short, range: (i64, i64)) -> std::io::Result<()> {
    let fl = flock(kind, range);
    // SAFETY: the fd is open for the duration of the call and `fl` is a valid flock.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if rc == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Takes the writer's liveness lock (held until `file` is closed).
pub fn lock_writer(file: &File) -> std::io::Result<()> {
    set_lock(file, libc::F_RDLCK as libc::c_short, WRITER_RANGE)
}

/// Takes the exclusive reader lock; fails with `WouldBlock` if another reader holds it.
pub fn lock_reader(file: &File) -> std::io::Result<()> {
    set_lock(file, libc::F_WRLCK as libc::c_short, READER_RANGE)
}

/// Whether some process holds the writer's liveness lock on this file.
#[allow(unsafe_code)]
pub fn writer_lock_held(file: &File) -> std::io::Result<bool> {
    let mut fl = flock(libc::F_WRLCK as libc::c_short, WRITER_RANGE);
    // SAFETY: the fd is open for the duration of the call and `fl` is a valid,
    // writable flock that the kernel fills in.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    if rc == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}
