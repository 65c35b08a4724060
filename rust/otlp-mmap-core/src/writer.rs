//! `MmapWriter`: creates a file and writes records into its rings and dictionary.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message;

use crate::dictionary::read_entry;
use crate::error::FormatError;
use crate::layout::{
    DICTIONARY_HEADER_LEN, FileConfig, FileLayout, RingKind, VERSION, dictionary_header, header,
    ring_header,
};
use crate::region::SharedRegion;
use crate::reserve::reserve;
use crate::ring::{RingWriter, WriteError, varint_len};

/// Dictionary entries that could not be stored, counted in the writing process.
#[derive(Debug, Default)]
pub struct DictionaryDrops {
    /// Entries refused because the dictionary reached its maximum size
    /// ([`FormatError::DictionaryFull`]).
    pub full: AtomicU64,
    /// Entries refused because the file could not be grown: the filesystem
    /// had no blocks for it (full disk or tmpfs, quota, `RLIMIT_FSIZE`,
    /// [`FormatError::NoSpace`]). The file keeps its size.
    pub no_space: AtomicU64,
}

/// The writing side of one OTLP-MMAP file. Share it between threads (`Arc`);
/// every method takes `&self`.
#[derive(Debug)]
pub struct MmapWriter {
    path: PathBuf,
    region: SharedRegion,
    layout: FileLayout,
    start_time_unix_nano: u64,
    rings: [RingWriter; 3],
    /// Serialises file growth (rare: only when the dictionary outgrows the file).
    file: Mutex<File>,
    /// Interned entries, so each distinct string or message is stored once.
    interned: Mutex<HashMap<Box<[u8]>, i64>>,
    dictionary_max_end: u64,
    dictionary_drops: DictionaryDrops,
}

impl MmapWriter {
    /// Creates a new file at `path` with the given sizes, replacing any file
    /// there atomically (it is prepared under a temporary name and renamed), and
    /// takes the writer's liveness lock (see [`crate::lock`]).
    pub fn create(path: impl AsRef<Path>, config: &FileConfig) -> Result<Self, FormatError> {
        Self::create_with_start_time(path, config, now_unix_nano())
    }

    /// As [`create`](Self::create), with a given start time.
    pub fn create_with_start_time(
        path: impl AsRef<Path>,
        config: &FileConfig,
        start_time_unix_nano: u64,
    ) -> Result<Self, FormatError> {
        let path = path.as_ref().to_path_buf();
        let (layout, file_len) = config.layout()?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .ok_or_else(|| FormatError::Config(format!("{} has no file name", path.display())))?;
        let (file, tmp) = create_temporary(dir, &name.to_string_lossy())?;
        let created = Self::prepare(
            file,
            &path,
            &tmp,
            layout,
            file_len,
            config,
            start_time_unix_nano,
        );
        if created.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        created
    }

    /// Everything of [`create_with_start_time`](Self::create_with_start_time)
    /// after the temporary file exists (which the caller removes on error).
    fn prepare(
        file: File,
        path: &Path,
        tmp: &Path,
        layout: FileLayout,
        file_len: u64,
        config: &FileConfig,
        start_time_unix_nano: u64,
    ) -> Result<Self, FormatError> {
        // Every block is allocated before the first page is touched: a store
        // into a sparse page of a full filesystem would SIGBUS (see `reserve`).
        reserve(&file, 0, file_len).map_err(|e| FormatError::NoSpace {
            len: file_len,
            reason: format!("{}: {e}", tmp.display()),
        })?;
        let dictionary_max_end = layout
            .dictionary
            .checked_add(DICTIONARY_HEADER_LEN)
            .and_then(|end| end.checked_add(config.dictionary_max_size))
            .filter(|&end| usize::try_from(end).is_ok())
            .ok_or_else(|| {
                FormatError::Config(format!(
                    "dictionary_max_size {} is larger than an address space",
                    config.dictionary_max_size
                ))
            })?;
        let region = SharedRegion::map(&file, dictionary_max_end as usize, file_len as usize)?;
        // On tmpfs the rings' pages are mapped now, not at the first record
        // written into each (best effort: see `SharedRegion::prefault`).
        region.prefault(&file, 0, file_len as usize);
        let writer = MmapWriter {
            path: path.to_path_buf(),
            region,
            layout,
            start_time_unix_nano,
            rings: RingKind::ALL.map(|k| RingWriter::new(layout.ring(k))),
            file: Mutex::new(file),
            interned: Mutex::new(HashMap::new()),
            dictionary_max_end,
            dictionary_drops: DictionaryDrops::default(),
        };
        writer.initialise()?;
        let guard = writer.file.lock().unwrap_or_else(|p| p.into_inner());
        crate::lock::lock_writer(&guard)
            .map_err(|e| FormatError::Io(format!("cannot take the writer lock: {e}")))?;
        drop(guard);
        std::fs::rename(tmp, path).map_err(|e| {
            FormatError::Io(format!(
                "cannot rename {} to {}: {e}",
                tmp.display(),
                path.display()
            ))
        })?;
        Ok(writer)
    }

    fn initialise(&self) -> Result<(), FormatError> {
        let r = &self.region;
        let l = &self.layout;
        r.atomic_i64(header::VERSION)?
            .store(VERSION, Ordering::Release);
        for kind in RingKind::ALL {
            let g = l.ring(kind);
            r.atomic_i64(g.offset + ring_header::NUM_BUFFERS)?
                .store(g.num_buffers as i64, Ordering::Relaxed);
            r.atomic_i64(g.offset + ring_header::BUFFER_SIZE)?
                .store(g.buffer_size as i64, Ordering::Relaxed);
            r.atomic_i64(g.offset + ring_header::READER_INDEX)?
                .store(-1, Ordering::Relaxed);
            r.atomic_i64(g.offset + ring_header::WRITER_INDEX)?
                .store(-1, Ordering::Relaxed);
            for i in 0..g.num_buffers {
                r.atomic_i32(g.flag_offset(i))?.store(-1, Ordering::Relaxed);
            }
        }
        r.atomic_i64(l.dictionary + dictionary_header::END)?.store(
            (l.dictionary + DICTIONARY_HEADER_LEN) as i64,
            Ordering::Relaxed,
        );
        r.atomic_i64(l.dictionary + dictionary_header::NUM_ENTRIES)?
            .store(0, Ordering::Relaxed);
        for (field, kind) in [
            (header::EVENTS, RingKind::Events),
            (header::SPANS, RingKind::Spans),
            (header::MEASUREMENTS, RingKind::Measurements),
        ] {
            r.atomic_i64(field)?
                .store(l.ring(kind).offset as i64, Ordering::Release);
        }
        r.atomic_i64(header::DICTIONARY)?
            .store(l.dictionary as i64, Ordering::Release);
        r.atomic_u64(header::START_TIME)?
            .store(self.start_time_unix_nano, Ordering::Release);
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's layout.
    pub fn layout(&self) -> &FileLayout {
        &self.layout
    }

    /// `start_time_unix_nano` from the file header.
    pub fn start_time_unix_nano(&self) -> u64 {
        self.start_time_unix_nano
    }

    /// The writer of one ring (its drop counters are public).
    pub fn ring(&self, kind: RingKind) -> &RingWriter {
        &self.rings[kind as usize]
    }

    /// Dictionary entries refused so far, by reason.
    pub fn dictionary_drops(&self) -> &DictionaryDrops {
        &self.dictionary_drops
    }

    /// Writes one record of `len` bytes, encoded by `encode` straight into the
    /// slot; `encode` returns how many bytes the record took. A claimed slot
    /// is always published, also when `encode` miscounts or panics. See
    /// [`RingWriter::try_write`].
    #[inline]
    pub fn try_write_with(
        &self,
        kind: RingKind,
        len: usize,
        encode: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<i64, WriteError> {
        self.rings[kind as usize].try_write(&self.region, len, encode)
    }

    /// Writes one protobuf message (its encoding is sized first and written
    /// straight into the slot; nothing is allocated).
    pub fn try_write<M: Message>(&self, kind: RingKind, msg: &M) -> Result<i64, WriteError> {
        let len = msg.encoded_len();
        self.try_write_with(kind, len, |mut buf| {
            let room = buf.len();
            match msg.encode(&mut buf) {
                Ok(()) => room - buf.len(),
                // Only if the message changed since it was sized.
                Err(e) => e.required_capacity(),
            }
        })
    }

    /// Appends an entry to the dictionary (not interned) and returns its ref.
    ///
    /// When the entry needs the file to grow and the filesystem has no blocks
    /// for it, the file is not grown, nothing is written, and the entry is
    /// refused with [`FormatError::NoSpace`] (counted in
    /// [`dictionary_drops`](Self::dictionary_drops)); a later call may succeed
    /// once space is freed.
    #[allow(unsafe_code)]
    pub fn append_entry(&self, bytes: &[u8]) -> Result<i64, FormatError> {
        let dict = self.layout.dictionary;
        let total = (varint_len(bytes.len() as u64) + bytes.len()) as u64;
        let first = dict + DICTIONARY_HEADER_LEN;
        let end = self.region.atomic_i64(dict + dictionary_header::END)?;
        // Space is reserved by a compare-and-swap on `end` (the same atomic
        // reservation as the format's fetch-add) made only once the entry is
        // known to fit, so a refused entry never moves `end`.
        let mut old_end = end.load(Ordering::Acquire);
        let start = loop {
            // `end` lives in the shared file, where another process can corrupt it:
            // never let it place an entry outside the dictionary (over the file
            // header or a ring) or overflow the arithmetic below.
            if old_end < first as i64 {
                return Err(FormatError::BadDictionaryEnd {
                    end: old_end,
                    reason: "before the first entry",
                });
            }
            let new_end = old_end as u64 + total;
            if new_end > self.dictionary_max_end {
                self.dictionary_drops.full.fetch_add(1, Ordering::Relaxed);
                return Err(FormatError::DictionaryFull {
                    need: new_end - first,
                    max: self.dictionary_max_end - first,
                });
            }
            if let Err(e) = self.ensure_len(new_end) {
                if matches!(e, FormatError::NoSpace { .. }) {
                    self.dictionary_drops
                        .no_space
                        .fetch_add(1, Ordering::Relaxed);
                }
                return Err(e);
            }
            match end.compare_exchange_weak(
                old_end,
                new_end as i64,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break old_end as u64,
                Err(current) => old_end = current,
            }
        };
        // SAFETY: the CAS on `end` reserved `start..start + total` for this call
        // alone, and `ensure_len` made the file at least that long.
        let mut buf = unsafe { self.region.bytes_mut(start, total as usize)? };
        prost::encoding::encode_varint(bytes.len() as u64, &mut buf);
        buf.copy_from_slice(bytes);
        self.region
            .atomic_i64(dict + dictionary_header::NUM_ENTRIES)?
            .fetch_add(1, Ordering::AcqRel);
        Ok(start as i64)
    }

    /// Stores `bytes` once and returns the ref of the entry; the same bytes
    /// always give the same ref.
    pub fn intern(&self, bytes: &[u8]) -> Result<i64, FormatError> {
        let mut map = self.interned.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&r) = map.get(bytes) {
            return Ok(r);
        }
        let r = self.append_entry(bytes)?;
        map.insert(bytes.into(), r);
        Ok(r)
    }

    /// Interns a string.
    pub fn intern_str(&self, s: &str) -> Result<i64, FormatError> {
        if s.is_empty() {
            return Ok(0);
        }
        self.intern(s.as_bytes())
    }

    /// Interns a protobuf message (resource, scope, metric definition, value).
    pub fn intern_message<M: Message>(&self, msg: &M) -> Result<i64, FormatError> {
        self.intern(&msg.encode_to_vec())
    }

    /// Reads back an entry (for tests and tools).
    pub fn read_entry(&self, reference: i64) -> Result<&[u8], FormatError> {
        read_entry(&self.region, self.layout.dictionary, reference)
    }

    /// Makes the file at least `len` bytes long, its blocks allocated, before
    /// `valid_len` lets anyone touch them. Grows by doubling (up to the
    /// dictionary's maximum); when the filesystem cannot give that much, by
    /// exactly what is needed; when not even that, not at all
    /// ([`FormatError::NoSpace`]).
    fn ensure_len(&self, len: u64) -> Result<(), FormatError> {
        if len as usize <= self.region.valid_len() {
            return Ok(());
        }
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.region.valid_len() as u64;
        if len <= cur {
            return Ok(());
        }
        let target = len.max(cur.saturating_mul(2)).min(self.dictionary_max_end);
        let grown = match reserve(&file, cur, target - cur) {
            Ok(()) => Ok(target),
            Err(_) if target > len => reserve(&file, cur, len - cur).map(|()| len),
            Err(e) => Err(e),
        }
        .map_err(|e| FormatError::NoSpace {
            len,
            reason: format!("{}: {e}", self.path.display()),
        })?;
        self.region.extend_valid_len(grown as usize);
        Ok(())
    }
}

/// Temporary files this process created (part of their names).
static TEMPORARIES: AtomicU64 = AtomicU64::new(0);

/// Creates a new, empty temporary file in `dir` for a file to be named
/// `name`, open for reading and writing: `.{name}.{pid}.{n}.tmp`, with `n`
/// unique in this process and the file created exclusively, so that two
/// threads building files at the same path never share one (each would
/// truncate the file the other had mapped: a `SIGBUS` at the next store).
fn create_temporary(dir: &Path, name: &str) -> Result<(File, PathBuf), FormatError> {
    let pid = std::process::id();
    let mut last = None;
    // A name left by a crashed process whose pid came back is skipped.
    for _ in 0..16 {
        let n = TEMPORARIES.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{pid}.{n}.tmp"));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(file) => return Ok((file, tmp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(tmp),
            Err(e) => {
                return Err(FormatError::Io(format!(
                    "cannot create {}: {e}",
                    tmp.display()
                )));
            }
        }
    }
    Err(FormatError::Io(format!(
        "cannot create a temporary file in {}: {} and 15 other names exist",
        dir.display(),
        last.map(|p| p.display().to_string()).unwrap_or_default()
    )))
}

/// The wall clock in nanoseconds since the Unix epoch.
pub fn now_unix_nano() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
