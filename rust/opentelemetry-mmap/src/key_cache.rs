//! The per-thread cache of dictionary refs: attribute keys, event names and
//! instrumentation scopes are interned in the file once (under the writer's
//! lock) and then found again by each thread without any lock.
//!
//! Every thread keeps one small table per live file it has written to (keys
//! in a [`KeyTable`]); only the first use of a key on a thread allocates and
//! takes the writer's interning lock. The table also
//! holds the thread's scratch buffer for the file's records (allocated once,
//! at the thread's first record).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::InstrumentationScope;
use otlp_mmap_core::RingKind;

use crate::encode::{EncodedKey, KeyRefs, ProtoWriter};
use crate::file::{FileInner, Oversized, TooLarge};
use crate::key_table::{EncodedKeyRef, KeyTable};

/// Most bytes of a thread's scratch buffer for one file: records up to this
/// size (or the file's largest slot, if smaller) are encoded once, into the
/// scratch, and copied into their slot; larger ones are encoded a second
/// time, straight into their slot.
const SCRATCH_MAX: u64 = 4096;

/// Scratch for records written without this thread's cache (during thread
/// teardown, or re-entered); larger records are encoded twice.
const FALLBACK_SCRATCH: usize = 256;

/// One thread's refs for one file.
struct FileCache {
    file_id: u64,
    /// The file's liveness flag: false once it was dropped.
    alive: Arc<AtomicBool>,
    keys: KeyTable,
    /// `(resource_ref, scope, scope_ref)`; a handful per file.
    scopes: Vec<(i64, InstrumentationScope, i64)>,
    /// Where records are encoded before they are copied into a slot.
    scratch: Box<[u8]>,
}

thread_local! {
    static CACHES: RefCell<Vec<FileCache>> = const { RefCell::new(Vec::new()) };
}

/// Resolves keys for one file: through this thread's cache, or straight
/// through the writer's interning when the cache is unavailable.
pub(crate) struct KeyLookup<'a> {
    file: &'a FileInner,
    cache: Option<&'a mut KeyTable>,
    /// Non-empty keys that could not be interned (see [`KeyRefs::unresolved`]).
    unresolved: u64,
}

impl KeyLookup<'_> {
    /// The key's ref and encoded field, through the cache when there is one.
    #[inline(always)]
    fn lookup(&mut self, key: &str) -> EncodedKeyRef {
        if key.is_empty() {
            return EncodedKeyRef {
                key_ref: 0,
                encoded: EncodedKey::new(0),
            };
        }
        if let Some(cache) = &mut self.cache
            && let Some(found) = cache.get(key)
        {
            return found;
        }
        self.miss(key)
    }

    /// Interns `key` (not empty; cached when it could be stored).
    #[cold]
    fn miss(&mut self, key: &str) -> EncodedKeyRef {
        let key_ref = self.file.intern_str(key);
        let found = EncodedKeyRef {
            key_ref,
            encoded: EncodedKey::new(key_ref),
        };
        if key_ref == 0 {
            self.unresolved += 1;
        } else if let Some(cache) = &mut self.cache {
            cache.insert(key, found);
        }
        found
    }
}

impl KeyRefs for KeyLookup<'_> {
    #[inline]
    fn key_ref(&mut self, key: &str) -> i64 {
        self.lookup(key).key_ref
    }

    #[inline]
    fn encoded_key(&mut self, key: &str) -> EncodedKey {
        self.lookup(key).encoded
    }

    #[inline]
    fn unresolved(&self) -> u64 {
        self.unresolved
    }
}

/// What a thread writes one file's records with: its key refs, its scope
/// refs and its scratch buffer.
pub(crate) struct Keys<'a> {
    lookup: KeyLookup<'a>,
    scopes: Option<&'a mut Vec<(i64, InstrumentationScope, i64)>>,
    scratch: &'a mut [u8],
}

impl Keys<'_> {
    /// The ref of an interned `InstrumentationScope` message (with
    /// `resource_ref`), cached on this thread.
    pub(crate) fn scope_ref(&mut self, scope: &InstrumentationScope, resource_ref: i64) -> i64 {
        let file = self.lookup.file;
        if let Some(scopes) = &mut self.scopes {
            let found = scopes
                .iter()
                .find(|(res, s, _)| *res == resource_ref && same_scope(s, scope));
            if let Some((_, _, r)) = found {
                return *r;
            }
            let r = file.scope_ref_with(scope, resource_ref);
            scopes.push((resource_ref, scope.clone(), r));
            return r;
        }
        file.scope_ref_with(scope, resource_ref)
    }

    /// Writes one record into the ring of `kind` (see
    /// [`FileInner::write_record`]); one larger than a slot is dropped and
    /// counted.
    #[inline]
    pub(crate) fn write(
        &mut self,
        kind: RingKind,
        encode: impl FnMut(&mut ProtoWriter<'_>, &mut KeyLookup<'_>),
    ) -> TooLarge {
        self.write_as(kind, Oversized::Dropped, encode)
    }

    /// [`write`](Self::write), with what becomes of a record larger than a
    /// slot.
    #[inline]
    pub(crate) fn write_as(
        &mut self,
        kind: RingKind,
        oversized: Oversized,
        encode: impl FnMut(&mut ProtoWriter<'_>, &mut KeyLookup<'_>),
    ) -> TooLarge {
        let file = self.lookup.file;
        file.write_record(kind, self.scratch, &mut self.lookup, oversized, encode)
    }

    /// Counts a record of `kind` dropped for being larger than a slot,
    /// after [`Oversized::WrittenAgain`].
    pub(crate) fn count_too_large(&self, kind: RingKind) {
        self.lookup.file.count_too_large(kind);
    }
}

/// Name, version, schema URL and attributes (in order) are equal. Cheaper
/// than `InstrumentationScope`'s own `PartialEq`, which sorts copies.
fn same_scope(a: &InstrumentationScope, b: &InstrumentationScope) -> bool {
    a.name() == b.name()
        && a.version() == b.version()
        && a.schema_url() == b.schema_url()
        && a.attributes().eq(b.attributes())
}

/// The scratch size for `file`: its largest slot, at most [`SCRATCH_MAX`].
fn scratch_len(file: &FileInner) -> usize {
    RingKind::ALL
        .iter()
        .map(|k| file.writer.ring(*k).geometry().buffer_size)
        .max()
        .unwrap_or(0)
        .min(SCRATCH_MAX) as usize
}

/// Runs `f` with the key resolver of `file` on this thread.
#[inline]
pub(crate) fn with_keys<R>(file: &FileInner, f: impl FnOnce(&mut Keys<'_>) -> R) -> R {
    let mut f = Some(f);
    let done = CACHES.try_with(|caches| {
        let Ok(mut caches) = caches.try_borrow_mut() else {
            return None;
        };
        let index = match caches.iter().position(|c| c.file_id == file.id) {
            Some(i) => i,
            None => {
                // The caches of files dropped since (on other threads) go
                // now: a long-lived thread that writes to file after file
                // keeps only the live ones.
                caches.retain(|c| c.alive.load(Ordering::Relaxed));
                caches.push(FileCache {
                    file_id: file.id,
                    alive: file.alive.clone(),
                    keys: KeyTable::new(),
                    scopes: Vec::new(),
                    scratch: vec![0; scratch_len(file)].into_boxed_slice(),
                });
                caches.len() - 1
            }
        };
        let f = f.take()?;
        let cache = &mut caches[index];
        let mut keys = Keys {
            lookup: KeyLookup {
                file,
                cache: Some(&mut cache.keys),
                unresolved: 0,
            },
            scopes: Some(&mut cache.scopes),
            scratch: &mut cache.scratch,
        };
        Some(f(&mut keys))
    });
    match (done, f) {
        (Ok(Some(r)), _) => r,
        (_, Some(f)) => f(&mut Keys {
            lookup: KeyLookup {
                file,
                cache: None,
                unresolved: 0,
            },
            scopes: None,
            scratch: &mut [0; FALLBACK_SCRATCH],
        }),
        // `f` ran and returned `None`-free; unreachable in practice.
        (_, None) => unreachable!("key resolver ran without a result"),
    }
}

/// Forgets the caches of a file that is gone (called when the file is dropped,
/// on the dropping thread; other threads drop theirs when they next make a
/// cache for another file, or with the thread).
pub(crate) fn forget_file(file_id: u64) {
    let _ = CACHES.try_with(|caches| {
        if let Ok(mut caches) = caches.try_borrow_mut() {
            caches.retain(|c| c.file_id != file_id);
        }
    });
}

#[cfg(test)]
mod tests {
    use opentelemetry::Key;
    use opentelemetry::logs::AnyValue;
    use otlp_mmap_core::{MmapReader, Slot, proto};
    use prost::Message;

    use super::*;
    use crate::MmapExporterFile;
    use crate::log_events::{EventInfo, write_log_event};

    #[test]
    fn a_threads_caches_of_dropped_files_are_released() {
        use std::sync::mpsc;
        let dir = tempfile::tempdir().unwrap();
        let (to_worker, work) = mpsc::channel::<Option<MmapExporterFile>>();
        let (done, from_worker) = mpsc::channel::<usize>();
        // A long-lived thread writes to one file after another; the last
        // handle of each is dropped on this thread.
        let worker = std::thread::spawn(move || {
            while let Ok(Some(file)) = work.recv() {
                with_keys(&file.inner, |keys| {
                    let info = EventInfo {
                        scope: crate::log_events::event_scope(0),
                        time_unix_nano: 1,
                        severity_number: 9,
                        severity_text: "",
                        body: None,
                        event_name: "",
                        span: None,
                    };
                    write_log_event(keys, &info, &[(Key::from("k"), AnyValue::from(1))][..]);
                });
                drop(file);
                done.send(CACHES.with(|c| c.borrow().len())).unwrap();
            }
        });
        let mut most = 0;
        for i in 0..20 {
            let file = MmapExporterFile::builder()
                .with_path(dir.path().join(format!("f{i}.otlp")))
                .with_span_ring(64, 256)
                .with_log_ring(64, 256)
                .with_metric_ring(64, 256)
                .build()
                .unwrap();
            to_worker.send(Some(file.clone())).unwrap();
            most = most.max(from_worker.recv().unwrap());
            drop(file);
        }
        to_worker.send(None).unwrap();
        worker.join().unwrap();
        // The live file's cache, and the one dropped since its last record.
        assert!(most <= 2, "the worker thread held {most} file caches");
    }

    #[test]
    fn records_written_without_the_threads_cache_are_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let file = MmapExporterFile::builder()
            .with_path(dir.path().join("f.otlp"))
            .build()
            .unwrap();
        let inner = &*file.inner;
        // Longer than the fallback's scratch: encoded straight into its slot.
        let long = "x".repeat(600);
        let attrs = [
            (Key::from("short"), AnyValue::from("v")),
            (Key::from("long"), AnyValue::from(long.clone())),
        ];
        let write = |keys: &mut Keys<'_>| {
            let info = EventInfo {
                scope: crate::log_events::event_scope(0),
                time_unix_nano: 1,
                severity_number: 9,
                severity_text: "",
                body: None,
                event_name: "ev",
                span: None,
            };
            write_log_event(keys, &info, &attrs[..1]);
            write_log_event(keys, &info, &attrs[..]);
        };
        with_keys(inner, write);
        // Re-entered, the thread's cache is taken: the fallback writes.
        with_keys(inner, |_| with_keys(inner, write));

        let reader = MmapReader::open(file.path(), false).unwrap();
        let mut ring = reader.ring_reader(RingKind::Events).unwrap();
        let mut records = Vec::new();
        while let Slot::Ready(bytes) = ring.peek(reader.region()) {
            records.push(bytes.to_vec());
            ring.advance();
        }
        assert_eq!(records.len(), 4);
        assert_eq!(records[0], records[2]);
        assert_eq!(records[1], records[3]);
        let event = proto::Event::decode(&records[1][..]).unwrap();
        assert_eq!(event.encode_to_vec(), records[1]);
        assert_eq!(event.attributes.len(), 2);
        assert_eq!(
            event.attributes[1].value.clone().unwrap().value,
            Some(proto::any_value::Value::StringValue(long))
        );
        assert_eq!(file.drop_stats(), Default::default());
    }
}
