//! Whether the ring write runs with the GIL released: measured, and kept
//! (`python/GIL.md`); the switch stays for repeating the measurement.

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;

/// Whether writes run with the GIL released (see `set_release_gil`).
static RELEASE_GIL: AtomicBool = AtomicBool::new(false);

/// Makes every later write release the GIL around the ring write (`True`) or
/// keep it (`False`, the default). For the measurements of
/// `python/GIL.md` only.
#[pyfunction]
pub(crate) fn set_release_gil(release: bool) {
    RELEASE_GIL.store(release, Ordering::Relaxed);
}

/// Runs a ring write, with the GIL released when so set.
#[inline]
pub(crate) fn write<R: Send>(py: Python<'_>, f: impl FnOnce() -> R + Send) -> R {
    if RELEASE_GIL.load(Ordering::Relaxed) {
        py.detach(f)
    } else {
        f()
    }
}
