//! The registry of live handles: every pointer handed to C is recorded here
//! and checked on every call, so that NULL, closed or foreign handles give
//! `OM_ERR_HANDLE` instead of undefined behaviour.

use std::any::TypeId;
use std::collections::HashSet;
use std::sync::Mutex;

use crate::status::{Failure, OM_ERR_HANDLE};

/// Live handles with the type each points to.
static LIVE: Mutex<Option<HashSet<(usize, TypeId)>>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut HashSet<(usize, TypeId)>) -> R) -> R {
    let mut guard = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(HashSet::new))
}

/// Moves `value` to the heap and registers it; returns the handle.
pub(crate) fn register<T: 'static>(value: T) -> *mut T {
    let p = Box::into_raw(Box::new(value));
    with(|live| live.insert((p as usize, TypeId::of::<T>())));
    p
}

/// The live object behind `handle`.
///
/// The caller must not use one handle from two threads at once (the documented
/// contract); the registry guarantees the pointer came from `register::<T>`
/// and has not been released.
#[allow(unsafe_code)]
pub(crate) fn get<'a, T: 'static>(handle: *mut T) -> Result<&'a mut T, Failure> {
    if handle.is_null() || !with(|live| live.contains(&(handle as usize, TypeId::of::<T>()))) {
        return Err(Failure::new(
            OM_ERR_HANDLE,
            "handle is NULL, closed or unknown",
        ));
    }
    // SAFETY: `handle` was produced by `register::<T>` (it is in the registry,
    // and each registry entry is removed when released) and is not used by
    // another thread at the same time (the API contract).
    Ok(unsafe { &mut *handle })
}

/// Unregisters and frees the object behind `handle`.
#[allow(unsafe_code)]
pub(crate) fn release<T: 'static>(handle: *mut T) -> Result<(), Failure> {
    if handle.is_null() || !with(|live| live.remove(&(handle as usize, TypeId::of::<T>()))) {
        return Err(Failure::new(
            OM_ERR_HANDLE,
            "handle is NULL, closed or unknown",
        ));
    }
    // SAFETY: the registry held `handle`, so it came from `Box::into_raw` in
    // `register::<T>` and has not been freed; it was removed above, so this is
    // the only release.
    drop(unsafe { Box::from_raw(handle) });
    Ok(())
}
