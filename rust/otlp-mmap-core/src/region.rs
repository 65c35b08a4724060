//! `SharedRegion`: the one type that owns the memory mapping and every `unsafe`
//! access to it. Everything else in the crate is safe code on top of it.
//!
//! The mapping reserves a large virtual range up front (mapping past the end of
//! a file is allowed; only touching such pages faults). `valid_len` is the
//! number of bytes known to exist in the file: every accessor checks its range
//! against it, so nothing ever touches a page past the end of the file. The
//! writer reserves the file's blocks (`reserve`: `posix_fallocate`) before it raises `valid_len`; the reader
//! raises `valid_len` only after `fstat` showed the file is that long. The
//! reservation is therefore never remapped while other threads hold references
//! into it, which is what lets many writer threads share one mapping without a
//! lock.
//!
//! A reader cannot stop the writer (or anyone else) from truncating the file
//! while it reads; reader mappings are therefore registered with the SIGBUS
//! guard ([`crate::sigbus`]), which turns a vanished page into zeros and a
//! poison flag rather than a dead process.

use std::fs::File;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, AtomicUsize, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::FormatError;
use crate::sigbus::Registration;

/// A shared mapping of an OTLP-MMAP file.
#[derive(Debug)]
pub struct SharedRegion {
    /// The SIGBUS guard of a reader's mapping. Declared before `map` so that it
    /// is dropped (unregistered) before the mapping is unmapped.
    guard: Option<Registration>,
    map: MmapRaw,
    /// Bytes of the file that are known to exist (never more than `map.len()`).
    valid_len: AtomicUsize,
}

impl SharedRegion {
    /// Maps `file` reserving `reserve` bytes of address space, of which the first
    /// `valid_len` are known to exist in the file.
    pub(crate) fn map(file: &File, reserve: usize, valid_len: usize) -> Result<Self, FormatError> {
        let reserve = reserve.max(valid_len);
        let map = MmapOptions::new()
            .len(reserve)
            .map_raw(file)
            .map_err(|e| FormatError::Io(format!("mmap of {reserve} bytes failed: {e}")))?;
        Ok(Self {
            guard: None,
            map,
            valid_len: AtomicUsize::new(valid_len),
        })
    }

    /// As [`map`](Self::map), for a reader: the mapping is registered with the
    /// SIGBUS guard ([`crate::sigbus`]), so a page that vanishes because another
    /// process truncated the file reads as zeros and poisons the region
    /// instead of killing the process.
    pub(crate) fn map_guarded(
        file: &File,
        reserve: usize,
        valid_len: usize,
    ) -> Result<Self, FormatError> {
        let mut region = Self::map(file, reserve, valid_len)?;
        region.guard = Some(
            Registration::new(region.map.as_ptr(), region.map.len()).map_err(FormatError::Io)?,
        );
        Ok(region)
    }

    /// Whether a page of this (guarded) mapping vanished under the reader: the
    /// file shrank, and bytes read since may be zeros. A poisoned region stays
    /// poisoned; its reader gives the file up.
    pub fn poisoned(&self) -> bool {
        self.guard.as_ref().is_some_and(Registration::poisoned)
    }

    /// Bytes of the reservation (the largest the file can grow to without a new mapping).
    pub fn reserved_len(&self) -> usize {
        self.map.len()
    }

    /// Bytes known to exist in the file.
    #[inline]
    pub fn valid_len(&self) -> usize {
        self.valid_len.load(Ordering::Acquire)
    }

    /// Raises `valid_len` to `len` (never lowers it, never past the reservation).
    /// The caller must have made sure that the file really is at least `len` long.
    pub(crate) fn extend_valid_len(&self, len: usize) {
        let len = len.min(self.map.len());
        self.valid_len.fetch_max(len, Ordering::AcqRel);
    }

    /// On a memory-backed file (tmpfs, such as `/dev/shm`), maps the pages
    /// of `offset..offset + len` (bytes known to exist in the file) into this
    /// process's page tables, writable, now (`MADV_POPULATE_WRITE`), rather
    /// than at the first store into each: the writer's first pass over its
    /// rings would otherwise take a page fault every few records, on the
    /// application's calling thread. Returns whether it did.
    ///
    /// The file's blocks are already reserved (see [`crate::reserve`]), so on
    /// tmpfs this allocates nothing the file does not already own. A file on
    /// a disk is left alone: populating it would dirty every page (the whole
    /// file written back once), and after each writeback the kernel
    /// write-protects the pages again, so the faults would come back anyway.
    /// It is an optimisation only: an error (a kernel older than 5.14 answers
    /// `EINVAL`) leaves the pages to fault on first use, as they would
    /// without it.
    pub(crate) fn prefault(&self, file: &File, offset: usize, len: usize) -> bool {
        let in_file = offset
            .checked_add(len)
            .is_some_and(|end| end <= self.valid_len());
        in_file && len > 0 && memory_backed(file) && self.populate_write(offset, len)
    }

    #[cfg(target_os = "linux")]
    fn populate_write(&self, offset: usize, len: usize) -> bool {
        self.map
            .advise_range(memmap2::Advice::PopulateWrite, offset, len)
            .is_ok()
    }

    #[cfg(not(target_os = "linux"))]
    fn populate_write(&self, _offset: usize, _len: usize) -> bool {
        false
    }

    #[inline]
    fn check(&self, offset: u64, len: usize, align: usize) -> Result<usize, FormatError> {
        let off = usize::try_from(offset).map_err(|_| FormatError::OutOfBounds { offset, len })?;
        let end = off
            .checked_add(len)
            .ok_or(FormatError::OutOfBounds { offset, len })?;
        if end > self.valid_len() {
            return Err(FormatError::OutOfBounds { offset, len });
        }
        if off % align != 0 {
            return Err(FormatError::Misaligned { offset, align });
        }
        Ok(off)
    }

    /// The 8-byte atomic word at `offset` (must be in the file and 8-aligned).
    #[allow(unsafe_code)]
    #[inline]
    pub fn atomic_i64(&self, offset: u64) -> Result<&AtomicI64, FormatError> {
        let off = self.check(offset, 8, 8)?;
        // SAFETY: `off..off+8` lies inside the mapping (checked against valid_len,
        // which never exceeds the reservation), the mapping's base is page-aligned
        // and `off` is 8-aligned, so the pointer is valid and aligned for an
        // AtomicI64 for as long as `self` lives. Every process accesses these
        // header words only atomically, as the format requires.
        Ok(unsafe { AtomicI64::from_ptr(self.map.as_mut_ptr().add(off).cast::<i64>()) })
    }

    /// The 8-byte atomic word at `offset`, read as unsigned.
    #[allow(unsafe_code)]
    pub fn atomic_u64(&self, offset: u64) -> Result<&AtomicU64, FormatError> {
        let off = self.check(offset, 8, 8)?;
        // SAFETY: as for `atomic_i64`: in bounds, 8-aligned, lives as long as `self`.
        Ok(unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().add(off).cast::<u64>()) })
    }

    /// The 4-byte atomic word at `offset` (must be in the file and 4-aligned).
    #[allow(unsafe_code)]
    #[inline]
    pub fn atomic_i32(&self, offset: u64) -> Result<&AtomicI32, FormatError> {
        let off = self.check(offset, 4, 4)?;
        // SAFETY: in bounds, 4-aligned, lives as long as `self`; availability
        // flags are only ever accessed atomically.
        Ok(unsafe { AtomicI32::from_ptr(self.map.as_mut_ptr().add(off).cast::<i32>()) })
    }

    /// `len` bytes at `offset`, for reading.
    ///
    /// The bytes live in memory shared with another process. By the format's
    /// protocol nobody writes them while they are being read (a published,
    /// unreleased slot; a dictionary entry, which never changes once its ref is
    /// published). A hostile or buggy writer can break that protocol; the
    /// reader then sees garbage bytes, which every decoder here handles as
    /// untrusted input, but never memory outside the mapping.
    #[allow(unsafe_code)]
    pub fn bytes(&self, offset: u64, len: usize) -> Result<&[u8], FormatError> {
        let off = self.check(offset, len, 1)?;
        // SAFETY: `off..off+len` lies inside the mapping (checked above) and the
        // mapping lives as long as `self`. See the doc comment for concurrent writers.
        Ok(unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(off), len) })
    }

    /// Asks the CPU to fetch, for writing, the cache lines of the `len` bytes
    /// at `offset`: a hint, which reads and writes nothing. A range outside
    /// the mapping is ignored.
    #[inline]
    pub(crate) fn prefetch_for_writing(&self, offset: u64, len: usize) {
        let Ok(off) = usize::try_from(offset) else {
            return;
        };
        if off.saturating_add(len) > self.map.len() {
            return;
        }
        crate::prefetch::lines_for_writing(self.map.as_ptr().wrapping_add(off), len);
    }

    /// `len` bytes at `offset`, for writing.
    ///
    /// # Safety
    /// The caller must have exclusive write access to this range by the format's
    /// protocol for as long as the slice lives: a ring slot it claimed with the
    /// CAS on `writer_index` and has not published yet, or a dictionary range it
    /// reserved with the fetch-add on `end`. No other thread or process reads or
    /// writes the range meanwhile.
    #[allow(clippy::mut_from_ref)]
    #[allow(unsafe_code)]
    #[inline]
    pub(crate) unsafe fn bytes_mut(
        &self,
        offset: u64,
        len: usize,
    ) -> Result<&mut [u8], FormatError> {
        let off = self.check(offset, len, 1)?;
        // SAFETY: in bounds (checked above); exclusivity is the caller's contract.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(off), len) })
    }
}

/// Whether `file` lives in memory (tmpfs), where its pages are the file.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn memory_backed(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero `statfs` is a valid value of this plain C struct.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the fd is open for the duration of the call and `fs` is a
    // valid, writable statfs that the call fills in.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), &mut fs) };
    rc == 0 && fs.f_type == libc::TMPFS_MAGIC
}

#[cfg(not(target_os = "linux"))]
fn memory_backed(_file: &File) -> bool {
    false
}
