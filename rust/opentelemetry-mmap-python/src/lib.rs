//! The native module `opentelemetry_mmap._native` of the Python package
//! `opentelemetry-mmap` (`python/`): `MmapFile` (one open file: interning,
//! measurements, drop counts), `SpanWriter` and `LogWriter` (the processors'
//! callbacks, reading the Python SDK's objects), `Tracer` and `Span` (the
//! tracing API of `MmapTracerProvider`, without the SDK), all writing through the
//! record writers of the Rust SDK (`opentelemetry_mmap::records`). Python values are converted
//! with the GIL held; nothing here raises on a bad value (it is left out) or
//! on a full ring (the record is dropped and counted).

mod convert;
mod file;
mod gil;
mod log_writer;
mod span;
mod span_writer;
mod target;
mod tracer;

use pyo3::prelude::*;

/// The module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<file::MmapFile>()?;
    m.add_class::<span_writer::SpanWriter>()?;
    m.add_class::<log_writer::LogWriter>()?;
    m.add_class::<tracer::Tracer>()?;
    m.add_class::<span::Span>()?;
    m.add_function(wrap_pyfunction!(gil::set_release_gil, m)?)?;
    Ok(())
}
