//! The native module `opentelemetry_mmap._native` of the Python package
//! `opentelemetry-mmap` (`python/`): one class, `MmapFile`, whose methods
//! write spans, log records and measurements through the record writers of
//! the Rust SDK (`opentelemetry_mmap::records`). Python values are converted
//! with the GIL held; nothing here raises on a bad value (it is left out) or
//! on a full ring (the record is dropped and counted).

mod convert;
mod file;

use pyo3::prelude::*;

/// The module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<file::MmapFile>()?;
    m.add_function(wrap_pyfunction!(file::set_release_gil, m)?)?;
    Ok(())
}
