//! `MmapReader`: opens a file written by another process and reads its rings
//! and dictionary, treating every byte as untrusted.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::dictionary;
use crate::error::FormatError;
use crate::layout::{FILE_HEADER_LEN, FileLayout, RingKind, header, ring_header};
use crate::region::SharedRegion;
use crate::ring::RingReader;

/// Address space a reader reserves for a file by default, so the dictionary
/// can grow without a remap; the largest file it opens. Refs past it are
/// reported as errors. See [`MmapReader::open_with_max_mapped`].
pub const DEFAULT_READER_RESERVATION: usize = 1 << 30;

/// Whether the file's writer is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterState {
    /// The writer's liveness lock is held.
    Alive,
    /// The lock was seen held before and is now released: the writer died or closed.
    Gone,
    /// No lock was ever seen (a writer that does not take it).
    Unknown,
}

/// How the file at the reader's path changed since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileChange {
    /// Same file, same stream.
    None,
    /// `start_time_unix_nano` changed in the mapped file: the writer started
    /// over in place; what the old stream left unread is gone.
    Restarted,
    /// Another file now sits at the path (a new writer created it): the mapped
    /// file still holds the old stream, which can be drained first.
    Replaced,
    /// Nothing is at the path any more.
    Removed,
}

/// The reading side of one OTLP-MMAP file.
#[derive(Debug)]
pub struct MmapReader {
    path: PathBuf,
    file: File,
    region: SharedRegion,
    layout: FileLayout,
    start_time_unix_nano: u64,
    dev_ino: (u64, u64),
    saw_writer_lock: bool,
    last_writer_state: WriterState,
    /// The dictionary `end` when the file's length was last looked at.
    dictionary_end_seen: AtomicI64,
    /// The second mapping [`map_again`](Self::map_again) made, for its next
    /// calls.
    second: Mutex<Option<Arc<SharedRegion>>>,
}

impl MmapReader {
    /// Opens an existing file read-write (the reader stores `reader_index`),
    /// never creating, extending or truncating it, and validates the header and
    /// every ring's geometry before anything else is read. Takes the exclusive
    /// reader lock unless `exclusive` is false (tools that only look).
    pub fn open(path: impl AsRef<Path>, exclusive: bool) -> Result<Self, FormatError> {
        Self::open_with_max_mapped(path, exclusive, DEFAULT_READER_RESERVATION)
    }

    /// [`open`](Self::open), reserving `max_mapped_bytes` of address space:
    /// a file already longer than that is refused with
    /// [`FormatError::FileTooLarge`], and the file's growth past it is not
    /// read (refs there are errors).
    pub fn open_with_max_mapped(
        path: impl AsRef<Path>,
        exclusive: bool,
        max_mapped_bytes: usize,
    ) -> Result<Self, FormatError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| FormatError::Io(format!("cannot open {}: {e}", path.display())))?;
        Self::open_file_with_max_mapped(file, path, exclusive, max_mapped_bytes)
    }

    /// Like [`open`](Self::open), over a file the caller has already opened
    /// read-write (for example without following links, after checking the
    /// open descriptor). `path` is where the file was found: it names the file
    /// in errors, and [`file_change`](Self::file_change) compares what is at
    /// `path` later with this file's device and inode.
    pub fn open_file(
        file: File,
        path: impl AsRef<Path>,
        exclusive: bool,
    ) -> Result<Self, FormatError> {
        Self::open_file_with_max_mapped(file, path, exclusive, DEFAULT_READER_RESERVATION)
    }

    /// [`open_file`](Self::open_file) with the address-space cap of
    /// [`open_with_max_mapped`](Self::open_with_max_mapped).
    pub fn open_file_with_max_mapped(
        file: File,
        path: impl AsRef<Path>,
        exclusive: bool,
        max_mapped_bytes: usize,
    ) -> Result<Self, FormatError> {
        let path = path.as_ref().to_path_buf();
        if exclusive {
            crate::lock::lock_reader(&file).map_err(|e| {
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    FormatError::Locked
                } else {
                    FormatError::Io(format!("cannot lock {}: {e}", path.display()))
                }
            })?;
        }
        let meta = file.metadata()?;
        let file_len = meta.len();
        if file_len < FILE_HEADER_LEN {
            return Err(FormatError::Truncated {
                what: "file header",
                len: file_len,
                need: FILE_HEADER_LEN,
            });
        }
        let valid = usize::try_from(file_len)
            .ok()
            .filter(|&len| len <= max_mapped_bytes)
            .ok_or(FormatError::FileTooLarge {
                len: file_len,
                max: max_mapped_bytes as u64,
            })?;
        let region = SharedRegion::map_guarded(&file, max_mapped_bytes, valid)?;
        let word = |off: u64| -> Result<i64, FormatError> {
            Ok(region.atomic_i64(off)?.load(Ordering::Acquire))
        };
        let version = word(header::VERSION)?;
        let offsets = [
            word(header::EVENTS)?,
            word(header::SPANS)?,
            word(header::MEASUREMENTS)?,
            word(header::DICTIONARY)?,
        ];
        let layout = FileLayout::validate(version, offsets, file_len, |off| {
            Ok((
                word(off + ring_header::NUM_BUFFERS)?,
                word(off + ring_header::BUFFER_SIZE)?,
            ))
        })?;
        let (end, _) = dictionary::read_header(&region, layout.dictionary)?;
        if end < (layout.dictionary + crate::layout::DICTIONARY_HEADER_LEN) as i64 {
            return Err(FormatError::BadDictionaryEnd {
                end,
                reason: "before the first entry",
            });
        }
        let start_time_unix_nano = region
            .atomic_u64(header::START_TIME)?
            .load(Ordering::Acquire);
        let mut reader = MmapReader {
            path,
            dev_ino: (meta.dev(), meta.ino()),
            file,
            region,
            layout,
            start_time_unix_nano,
            saw_writer_lock: false,
            last_writer_state: WriterState::Unknown,
            dictionary_end_seen: AtomicI64::new(i64::MIN),
            second: Mutex::new(None),
        };
        reader.writer_state();
        Ok(reader)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Another handle on the open file (the same open file description, so
    /// it holds the same locks).
    pub fn try_clone_file(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }

    /// The validated layout.
    pub fn layout(&self) -> &FileLayout {
        &self.layout
    }

    /// The shared mapping (for ring readers and dictionary lookups).
    pub fn region(&self) -> &SharedRegion {
        &self.region
    }

    /// `start_time_unix_nano` as it was when the file was opened.
    pub fn start_time_unix_nano(&self) -> u64 {
        self.start_time_unix_nano
    }

    /// A second mapping of the file, of the length known to exist, guarded
    /// like the reader's own, for a thread that watches the ring headers
    /// while this reader sleeps. It holds no file descriptor: the file is
    /// only borrowed to map it. Made at the first call and shared by the
    /// later ones (a file parked again and again is not mapped and unmapped
    /// each time), unless a page of it vanished since (poisoned).
    pub fn map_again(&self) -> Result<Arc<SharedRegion>, FormatError> {
        let mut second = self.second.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(region) = second.as_ref().filter(|r| !r.poisoned()) {
            return Ok(Arc::clone(region));
        }
        let len = self.region.valid_len();
        let region = Arc::new(SharedRegion::map_guarded(&self.file, len, len)?);
        *second = Some(Arc::clone(&region));
        Ok(region)
    }

    /// A reader for one ring, starting after the file's `reader_index`.
    pub fn ring_reader(&self, kind: RingKind) -> Result<RingReader, FormatError> {
        RingReader::new(&self.region, self.layout.ring(kind))
    }

    /// The raw bytes of the dictionary entry at `reference`. When the ref lies
    /// past what is known of the file and the dictionary grew since the file's
    /// length was last looked at, the length is checked again first (the
    /// writer makes the file long enough before it publishes the larger
    /// dictionary `end`). Refs that never resolve (a file full of random refs)
    /// therefore cost no syscall each.
    pub fn entry(&self, reference: i64) -> Result<&[u8], FormatError> {
        match dictionary::read_entry(&self.region, self.layout.dictionary, reference) {
            Err(FormatError::BadRef { .. }) if self.dictionary_grew() && self.refresh_len() => {
                dictionary::read_entry(&self.region, self.layout.dictionary, reference)
            }
            other => other,
        }
    }

    /// Whether the dictionary `end` moved since the last call.
    fn dictionary_grew(&self) -> bool {
        let end = self.dictionary_header().map_or(0, |(end, _)| end);
        self.dictionary_end_seen.swap(end, Ordering::Relaxed) != end
    }

    /// Re-reads the file length; returns whether more of the file became readable.
    pub fn refresh_len(&self) -> bool {
        let Ok(meta) = self.file.metadata() else {
            return false;
        };
        let before = self.region.valid_len();
        self.region.extend_valid_len(meta.len() as usize);
        self.region.valid_len() > before
    }

    /// Whether the file is now shorter than the bytes this reader knows exist
    /// (someone truncated it). One `fstat`.
    pub fn shrunk(&self) -> bool {
        self.file
            .metadata()
            .is_ok_and(|m| m.len() < self.region.valid_len() as u64)
    }

    /// `(end, num_entries)` from the dictionary header.
    pub fn dictionary_header(&self) -> Result<(i64, i64), FormatError> {
        dictionary::read_header(&self.region, self.layout.dictionary)
    }

    /// Whether `start_time_unix_nano` in the mapped file differs from the one
    /// seen at open: the writer started over in place. One atomic load.
    pub fn start_time_changed(&self) -> bool {
        self.region
            .atomic_u64(header::START_TIME)
            .map(|t| t.load(Ordering::Acquire) != self.start_time_unix_nano)
            .unwrap_or(false)
    }

    /// Checks whether the writer started over or the file went away.
    pub fn file_change(&self) -> FileChange {
        let now = self
            .region
            .atomic_u64(header::START_TIME)
            .map(|t| t.load(Ordering::Acquire))
            .unwrap_or(0);
        if now != self.start_time_unix_nano {
            return FileChange::Restarted;
        }
        match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == self.dev_ino => FileChange::None,
            Ok(_) => FileChange::Replaced,
            Err(_) => FileChange::Removed,
        }
    }

    /// Whether the writer still holds its liveness lock.
    pub fn writer_state(&mut self) -> WriterState {
        self.last_writer_state = match crate::lock::writer_lock_held(&self.file) {
            Ok(true) => {
                self.saw_writer_lock = true;
                WriterState::Alive
            }
            Ok(false) if self.saw_writer_lock => WriterState::Gone,
            _ => WriterState::Unknown,
        };
        self.last_writer_state
    }

    /// Device and inode of the mapped file.
    pub fn dev_ino(&self) -> (u64, u64) {
        self.dev_ino
    }

    /// Whether a writer's liveness lock was ever seen held on this file.
    pub fn saw_writer_lock(&self) -> bool {
        self.saw_writer_lock
    }

    /// Takes it as known that a writer held its liveness lock on this file
    /// (an earlier reader of the same file saw it, by its checkpoint): a
    /// released lock then means the writer is gone.
    pub fn note_writer_lock_seen(&mut self) {
        self.saw_writer_lock = true;
    }

    /// The writer state found by the last [`writer_state`](Self::writer_state) call.
    pub fn writer_state_cached(&self) -> WriterState {
        self.last_writer_state
    }
}
