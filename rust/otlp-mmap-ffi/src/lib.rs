//! C ABI over the OTLP-MMAP reader (and a minimal writer), for the
//! Collector's Go `mmap` receiver and any C program. The header
//! `include/otlp_mmap.h` is generated from this crate by cbindgen.
//!
//! Contract, written again in the header:
//! - every function returns a status code (`OM_OK`, `OM_EMPTY`, `OM_BUSY` or an
//!   `OM_ERR_*`), and on error fills the caller-allocated `OmError` (if not NULL);
//! - no panic crosses the boundary: every entry point catches unwinding and
//!   reports `OM_ERR_PANIC`;
//! - handles are checked against a registry of live handles, so NULL, closed
//!   or freed handles give `OM_ERR_HANDLE`, never a crash;
//! - a handle may be used from one thread at a time; different handles from
//!   different threads at once;
//! - batch bytes returned by `om_reader_poll` belong to the reader and stay
//!   valid until the next poll or commit of the same signal, or close;
//! - every call does a bounded amount of work and never blocks.
//!
//! ```
//! use otlp_mmap_ffi::*;
//! use std::ptr;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = std::ffi::CString::new(dir.path().join("a.otlp").to_str().unwrap()).unwrap();
//! let mut err = OmError::default();
//! let mut w = ptr::null_mut();
//! unsafe {
//!     assert_eq!(om_writer_create(path.as_ptr(), 64, 512, &mut w, &mut err), OM_OK);
//!     let body = c"hello";
//!     assert_eq!(om_writer_log(w, body.as_ptr(), ptr::null(), ptr::null(), 1, &mut err), OM_OK);
//!     let mut r = ptr::null_mut();
//!     let mut opts = OmReaderOptions::default();
//!     om_reader_options_default(&mut opts);
//!     assert_eq!(om_reader_open(path.as_ptr(), &opts, &mut r, &mut err), OM_OK);
//!     let mut batch = OmBatch::default();
//!     assert_eq!(om_reader_poll(r, OM_SIGNAL_LOGS, 0, &mut batch, &mut err), OM_OK);
//!     assert_eq!(batch.items, 1);
//!     assert_eq!(om_reader_commit(r, OM_SIGNAL_LOGS, batch.token, &mut err), OM_OK);
//!     assert_eq!(om_reader_commit(r, OM_SIGNAL_LOGS, batch.token, &mut err), OM_ERR_TOKEN);
//!     assert_eq!(om_reader_close(r), OM_OK);
//!     assert_eq!(om_reader_close(r), OM_ERR_HANDLE);
//!     assert_eq!(om_writer_close(w), OM_OK);
//! }
//! ```

mod flat_layout;
mod handles;
mod reader;
mod status;
mod watcher;
mod writer;

pub use flat_layout::*;
pub use reader::*;
pub use status::*;
pub use watcher::*;
pub use writer::*;
