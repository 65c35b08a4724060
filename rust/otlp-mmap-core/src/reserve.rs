//! Reserving a file's blocks before its pages are touched through the mapping.
//!
//! A store into a shared mapping of a sparse range needs the filesystem to
//! allocate a block at that moment; when it cannot (a full disk, a full tmpfs,
//! a quota), the kernel answers the page fault with `SIGBUS`, which kills the
//! application. The writer therefore never extends its file with `set_len`
//! alone: [`reserve`] allocates every block of the new range first, so that a
//! lack of space is an error at creation or a counted drop at dictionary
//! growth, and every page the writer later touches is backed.
//!
//! How the blocks are reserved:
//!
//! 1. A range ending past the process's `RLIMIT_FSIZE` is refused without
//!    asking the kernel: the kernel would refuse it too, but would also send
//!    `SIGXFSZ`, whose default action kills the process.
//! 2. `posix_fallocate` allocates the range and extends the file to its end.
//! 3. Where the filesystem cannot allocate without writing (`EOPNOTSUPP`: glibc
//!    already emulates this case itself, other C libraries return it), the
//!    range is written with zeros (`pwrite`), which allocates its blocks the
//!    same way. This is safe only because nobody else writes the range yet:
//!    the writer reserves a range before any reference into it exists (a new
//!    file before it is mapped; a dictionary growth past the `valid_len` every
//!    accessor checks against).
//!
//! Any other failure (`ENOSPC`, `EFBIG`, `EDQUOT`, `EIO`, ...) is returned.
//! A failed reservation may leave part of the range allocated and the file
//! longer than before (some filesystems extend as they go); that part is
//! zeros nobody has been told about, and is harmless.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// Allocates the blocks of `offset..offset + len` in `file` and extends the
/// file to at least `offset + len` bytes. See the module documentation.
pub(crate) fn reserve(file: &File, offset: u64, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let end = offset
        .checked_add(len)
        .filter(|&e| e <= i64::MAX as u64)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EFBIG))?;
    if let Some(limit) = file_size_limit()
        && end > limit
    {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("{end} bytes exceed the process's file size limit (RLIMIT_FSIZE) of {limit}"),
        ));
    }
    match fallocate(file, offset, len) {
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => write_zeros(file, offset, len),
        r => r,
    }
}

/// The soft `RLIMIT_FSIZE` of this process, `None` when unlimited.
#[allow(unsafe_code)]
fn file_size_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit that the call fills in.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim) };
    (rc == 0 && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

#[allow(unsafe_code)]
fn fallocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    loop {
        // SAFETY: the fd is open for the duration of the call; `offset` and
        // `len` were checked to fit an off_t.
        let rc = unsafe {
            libc::posix_fallocate(file.as_raw_fd(), offset as libc::off_t, len as libc::off_t)
        };
        match rc {
            0 => return Ok(()),
            libc::EINTR => continue,
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

fn write_zeros(file: &File, offset: u64, len: u64) -> io::Result<()> {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let mut at = offset;
    let end = offset + len;
    while at < end {
        let n = (end - at).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_extends_and_allocates() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        reserve(&file, 0, 1 << 20).unwrap();
        let meta = file.metadata().unwrap();
        assert_eq!(meta.len(), 1 << 20);
        // Every block is allocated: the file is not sparse.
        use std::os::unix::fs::MetadataExt;
        assert!(meta.blocks() * 512 >= 1 << 20, "{} blocks", meta.blocks());
        reserve(&file, 1 << 20, 4096).unwrap();
        assert_eq!(file.metadata().unwrap().len(), (1 << 20) + 4096);
    }

    #[test]
    fn zero_fill_extends_and_allocates() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        write_zeros(&file, 0, (200 << 10) + 3).unwrap();
        let meta = file.metadata().unwrap();
        assert_eq!(meta.len(), (200 << 10) + 3);
        use std::os::unix::fs::MetadataExt;
        assert!(meta.blocks() * 512 >= 200 << 10, "{} blocks", meta.blocks());
    }

    #[test]
    fn a_failure_is_returned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"").unwrap();
        // Read-only: the filesystem refuses to allocate (EBADF).
        let file = File::open(&path).unwrap();
        assert!(reserve(&file, 0, 4096).is_err());
        assert!(reserve(&file, u64::MAX - 1, 4096).is_err());
    }
}
