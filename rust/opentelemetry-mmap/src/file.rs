//! [`MmapExporterFile`]: the one OTLP-MMAP file of a process, shared by the
//! tracer, meter and logger providers and by the SDK processors.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;
use otlp_mmap_core::ring::WriteError;
use otlp_mmap_core::{MmapWriter, RingKind};
use prost::Message;
use prost::encoding::encoded_len_varint;

use crate::Error;
use crate::config::{RingOverride, Settings};
use crate::encode::{KeyRefs, ProtoWriter};
use crate::resource::{build_resource, resource_message, scope_message};

/// A handle to an open OTLP-MMAP file. Cloning it is cheap (a reference
/// count); the file stays open, and the writer's liveness lock held, until
/// the last clone (including those inside providers and processors) is dropped.
#[derive(Clone, Debug)]
pub struct MmapExporterFile {
    pub(crate) inner: Arc<FileInner>,
}

/// Whether a record was not written for being larger than a slot, which a
/// caller may write again smaller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TooLarge(pub bool);

/// What becomes of a record larger than a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Oversized {
    /// It is dropped and counted in the ring's drops.
    Dropped,
    /// It is not counted: the caller writes it again smaller, and counts
    /// what it still loses ([`FileInner::count_too_large`]).
    WrittenAgain,
}

#[derive(Debug)]
pub(crate) struct FileInner {
    /// Distinguishes files in the per-thread caches.
    pub id: u64,
    /// True until the file is dropped: every thread's cache for it holds a
    /// clone, and drops the cache once it sees the file gone.
    pub alive: Arc<AtomicBool>,
    pub writer: MmapWriter,
    pub resource_ref: i64,
    /// Dictionary entries that could not be stored (the dictionary was full,
    /// or the filesystem had no space to grow the file). A record that needed
    /// one of them for an attribute key, an event name or its metric is
    /// dropped (counted in its ring's `missing_entry`); scope and resource
    /// refs that could not be stored are written as 0 (none).
    pub intern_failures: AtomicU64,
}

impl Drop for FileInner {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Relaxed);
        crate::key_cache::forget_file(self.id);
    }
}

impl FileInner {
    /// Interns a string; 0 (and a counted failure) when the dictionary is full.
    pub(crate) fn intern_str(&self, s: &str) -> i64 {
        self.writer.intern_str(s).unwrap_or_else(|_| {
            self.intern_failures.fetch_add(1, Ordering::Relaxed);
            0
        })
    }

    pub(crate) fn intern_message(&self, msg: &impl Message) -> i64 {
        self.writer.intern_message(msg).unwrap_or_else(|_| {
            self.intern_failures.fetch_add(1, Ordering::Relaxed);
            0
        })
    }

    /// Counts a record of `kind` dropped because a dictionary entry it needs
    /// could not be stored.
    #[cold]
    pub(crate) fn drop_for_missing_entry(&self, kind: RingKind) {
        self.writer
            .ring(kind)
            .drops
            .missing_entry
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a record of `kind` that was dropped for being larger than a
    /// slot, after [`Oversized::WrittenAgain`].
    #[cold]
    pub(crate) fn count_too_large(&self, kind: RingKind) {
        self.writer
            .ring(kind)
            .drops
            .too_large
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Writes one record into the ring of `kind`: `encode` writes it (with
    /// keys from `keys`) into `scratch`, which is then copied into a slot
    /// claimed for its exact size. A record larger than `scratch` is encoded
    /// a second time, straight into its slot. A record that needed a key the
    /// dictionary could not store is dropped and counted; so is one the ring
    /// has no room for. Returns whether the record was larger than a slot
    /// (so not written; counted as `oversized` says).
    #[inline]
    pub(crate) fn write_record<K: KeyRefs + ?Sized>(
        &self,
        kind: RingKind,
        scratch: &mut [u8],
        keys: &mut K,
        oversized: Oversized,
        mut encode: impl FnMut(&mut ProtoWriter<'_>, &mut K),
    ) -> TooLarge {
        let unresolved = keys.unresolved();
        let mut w = ProtoWriter::new(scratch);
        encode(&mut w, keys);
        let len = w.written();
        if keys.unresolved() != unresolved {
            self.drop_for_missing_entry(kind);
            return TooLarge(false);
        }
        if oversized == Oversized::WrittenAgain
            && (len + encoded_len_varint(len as u64)) as u64
                > self.writer.ring(kind).geometry().buffer_size
        {
            return TooLarge(true);
        }
        let written = match scratch.get(..len) {
            Some(record) => self.writer.try_write_with(kind, len, |slot| {
                // `slot` holds exactly `len` bytes; were it shorter, the
                // record would be counted as wrongly encoded.
                match slot.get_mut(..len) {
                    Some(dst) => {
                        dst.copy_from_slice(record);
                        len
                    }
                    None => 0,
                }
            }),
            None => self.writer.try_write_with(kind, len, |slot| {
                let mut w = ProtoWriter::new(slot);
                encode(&mut w, keys);
                w.written()
            }),
        };
        TooLarge(matches!(written, Err(WriteError::TooLarge)))
    }

    /// Interns an instrumentation scope under `resource_ref`.
    pub(crate) fn scope_ref_with(&self, scope: &InstrumentationScope, resource_ref: i64) -> i64 {
        let msg = scope_message(scope, resource_ref, &mut |s| self.intern_str(s));
        self.intern_message(&msg)
    }

    /// Interns a resource.
    pub(crate) fn resource_ref_of(&self, resource: &Resource) -> i64 {
        let msg = resource_message(resource, &mut |s| self.intern_str(s));
        self.intern_message(&msg)
    }
}

static NEXT_FILE_ID: AtomicU64 = AtomicU64::new(1);

/// Records dropped so far, per signal, for every reason (the ring was full,
/// the record was larger than a slot, a dictionary entry it needed could not
/// be stored, or it was encoded wrongly), and dictionary entries that could
/// not be stored. The last three fields break some of these counts down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropStats {
    /// Span events (start, end, name, attributes, links) dropped.
    pub spans: u64,
    /// Log records (and span events written as log records) dropped.
    pub logs: u64,
    /// Metric measurements dropped.
    pub measurements: u64,
    /// Attempts to store a dictionary entry that failed: the dictionary was
    /// full, or the filesystem had no space to grow the file. An entry that
    /// is not stored is tried again by the next record that needs it, and
    /// counted again.
    pub dictionary: u64,
    /// Of `dictionary`: attempts refused because the filesystem had no space
    /// for the file to grow (full disk or tmpfs, quota, `RLIMIT_FSIZE`).
    pub dictionary_no_space: u64,
    /// Of `spans + logs + measurements`: records dropped because a dictionary
    /// entry they needed (an attribute key, an event name, their metric's
    /// definition) could not be stored.
    pub missing_entry: u64,
    /// Of `spans + logs + measurements`: records whose encoding went wrong (a
    /// size other than announced, or a panic; a bug in this crate). Their
    /// slots were published as records the reader counts as corrupt and skips.
    pub encoding_errors: u64,
}

impl MmapExporterFile {
    /// A builder; see [`MmapExporterFileBuilder`].
    pub fn builder() -> MmapExporterFileBuilder {
        MmapExporterFileBuilder::default()
    }

    /// Creates the file from environment variables alone (see [`crate::config`]).
    pub fn from_env() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.inner.writer.path()
    }

    /// The underlying format writer (for tools and tests).
    pub fn writer(&self) -> &MmapWriter {
        &self.inner.writer
    }

    /// The ref of the interned `Resource` message.
    pub fn resource_ref(&self) -> i64 {
        self.inner.resource_ref
    }

    /// Interns `scope` (once) and returns the ref of its `InstrumentationScope` message.
    pub fn scope_ref(&self, scope: &InstrumentationScope) -> i64 {
        crate::key_cache::with_keys(&self.inner, |keys| {
            keys.scope_ref(scope, self.inner.resource_ref)
        })
    }

    /// Everything dropped so far.
    pub fn drop_stats(&self) -> DropStats {
        let w = &self.inner.writer;
        let rings = RingKind::ALL.map(|k| &w.ring(k).drops);
        DropStats {
            spans: w.ring(RingKind::Spans).drops.total(),
            logs: w.ring(RingKind::Events).drops.total(),
            measurements: w.ring(RingKind::Measurements).drops.total(),
            dictionary: self.inner.intern_failures.load(Ordering::Relaxed),
            dictionary_no_space: w.dictionary_drops().no_space.load(Ordering::Relaxed),
            missing_entry: rings
                .iter()
                .map(|d| d.missing_entry.load(Ordering::Relaxed))
                .sum(),
            encoding_errors: rings.iter().map(|d| d.encoding_errors()).sum(),
        }
    }

    /// Span events dropped so far.
    pub fn dropped_spans(&self) -> u64 {
        self.inner.writer.ring(RingKind::Spans).drops.total()
    }

    /// Log records dropped so far.
    pub fn dropped_logs(&self) -> u64 {
        self.inner.writer.ring(RingKind::Events).drops.total()
    }

    /// Measurements dropped so far.
    pub fn dropped_measurements(&self) -> u64 {
        self.inner.writer.ring(RingKind::Measurements).drops.total()
    }
}

/// Configures and creates an [`MmapExporterFile`]. Anything not set here comes
/// from the environment (see [`crate::config`]), then from defaults.
#[derive(Debug, Default, Clone)]
pub struct MmapExporterFileBuilder {
    settings: Settings,
    resource: Option<Resource>,
}

impl MmapExporterFileBuilder {
    /// The file's path (otherwise `OTEL_MMAP_FILE`, then `SDK_MMAP_EXPORTER_FILE`).
    pub fn with_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.settings.path = Some(path.into());
        self
    }

    /// Slots (a power of two) and bytes per slot of the spans ring.
    pub fn with_span_ring(mut self, slots: u64, slot_size: u64) -> Self {
        self.settings.spans = RingOverride {
            slots: Some(slots),
            slot_size: Some(slot_size),
        };
        self
    }

    /// Slots (a power of two) and bytes per slot of the logs (events) ring.
    pub fn with_log_ring(mut self, slots: u64, slot_size: u64) -> Self {
        self.settings.logs = RingOverride {
            slots: Some(slots),
            slot_size: Some(slot_size),
        };
        self
    }

    /// Slots (a power of two) and bytes per slot of the measurements ring.
    pub fn with_metric_ring(mut self, slots: u64, slot_size: u64) -> Self {
        self.settings.metrics = RingOverride {
            slots: Some(slots),
            slot_size: Some(slot_size),
        };
        self
    }

    /// Largest size of the dictionary (default 64 MiB).
    pub fn with_dictionary_max_size(mut self, bytes: u64) -> Self {
        self.settings.dictionary_max_size = Some(bytes);
        self
    }

    /// Resource attributes given in code; they win over `OTEL_SERVICE_NAME`,
    /// `OTEL_RESOURCE_ATTRIBUTES` and the SDK's defaults, which are kept otherwise.
    pub fn with_resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Creates the file (and its directory), takes the writer's liveness lock
    /// and stores the resource.
    pub fn build(self) -> Result<MmapExporterFile, Error> {
        let (path, config) = self.settings.resolve()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::Format(otlp_mmap_core::FormatError::Io(format!(
                    "cannot create {}: {e}",
                    dir.display()
                )))
            })?;
        }
        let writer = MmapWriter::create(&path, &config)?;
        let mut inner = FileInner {
            id: NEXT_FILE_ID.fetch_add(1, Ordering::Relaxed),
            alive: Arc::new(AtomicBool::new(true)),
            writer,
            resource_ref: 0,
            intern_failures: AtomicU64::new(0),
        };
        let resource = build_resource(self.resource.as_ref());
        inner.resource_ref = inner.resource_ref_of(&resource);
        Ok(MmapExporterFile {
            inner: Arc::new(inner),
        })
    }
}
