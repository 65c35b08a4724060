//! The per-thread cache of dictionary refs: attribute keys, event names and
//! instrumentation scopes are interned in the file once (under the writer's
//! lock) and then found again by each thread without any lock.
//!
//! Every thread keeps one small table per file it has written to. A lookup
//! hashes the key's bytes with rustc-hash's FxHash (keys are short) and
//! compares them; only the first use of a key on a thread allocates (the boxed
//! copy of the key) and takes the writer's interning lock.

use std::cell::RefCell;

use opentelemetry::InstrumentationScope;
use rustc_hash::FxHashMap;

use crate::encode::KeyRefs;
use crate::file::FileInner;

/// One thread's refs for one file.
struct FileCache {
    file_id: u64,
    keys: FxHashMap<Box<str>, i64>,
    /// `(resource_ref, scope, scope_ref)`; a handful per file.
    scopes: Vec<(i64, InstrumentationScope, i64)>,
}

thread_local! {
    static CACHES: RefCell<Vec<FileCache>> = const { RefCell::new(Vec::new()) };
}

/// Resolves keys for one file: through this thread's cache, or straight
/// through the writer's interning when the cache is unavailable (during thread
/// teardown, or re-entered).
pub(crate) struct Keys<'a> {
    file: &'a FileInner,
    cache: Option<&'a mut FileCache>,
    /// Non-empty keys that could not be interned (see [`KeyRefs::unresolved`]).
    unresolved: u64,
}

impl KeyRefs for Keys<'_> {
    #[inline]
    fn key_ref(&mut self, key: &str) -> i64 {
        if key.is_empty() {
            return 0;
        }
        let r = match &mut self.cache {
            Some(cache) => {
                if let Some(&r) = cache.keys.get(key) {
                    return r;
                }
                let r = self.file.intern_str(key);
                if r != 0 {
                    cache.keys.insert(key.into(), r);
                }
                r
            }
            None => self.file.intern_str(key),
        };
        if r == 0 {
            self.unresolved += 1;
        }
        r
    }

    #[inline]
    fn unresolved(&self) -> u64 {
        self.unresolved
    }
}

impl Keys<'_> {
    /// The ref of an interned `InstrumentationScope` message (with
    /// `resource_ref`), cached on this thread.
    pub(crate) fn scope_ref(&mut self, scope: &InstrumentationScope, resource_ref: i64) -> i64 {
        if let Some(cache) = &mut self.cache {
            let found = cache
                .scopes
                .iter()
                .find(|(res, s, _)| *res == resource_ref && same_scope(s, scope));
            if let Some((_, _, r)) = found {
                return *r;
            }
            let r = self.file.scope_ref_with(scope, resource_ref);
            cache.scopes.push((resource_ref, scope.clone(), r));
            return r;
        }
        self.file.scope_ref_with(scope, resource_ref)
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
                caches.push(FileCache {
                    file_id: file.id,
                    keys: FxHashMap::default(),
                    scopes: Vec::new(),
                });
                caches.len() - 1
            }
        };
        let f = f.take()?;
        let mut keys = Keys {
            file,
            cache: Some(&mut caches[index]),
            unresolved: 0,
        };
        Some(f(&mut keys))
    });
    match (done, f) {
        (Ok(Some(r)), _) => r,
        (_, Some(f)) => f(&mut Keys {
            file,
            cache: None,
            unresolved: 0,
        }),
        // `f` ran and returned `None`-free; unreachable in practice.
        (_, None) => unreachable!("key resolver ran without a result"),
    }
}

/// Forgets the caches of a file that is gone (called when the file is dropped,
/// on the dropping thread only; other threads' tables die with the threads).
pub(crate) fn forget_file(file_id: u64) {
    let _ = CACHES.try_with(|caches| {
        if let Ok(mut caches) = caches.try_borrow_mut() {
            caches.retain(|c| c.file_id != file_id);
        }
    });
}
