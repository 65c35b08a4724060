//! The OTLP-MMAP v1 file format: a file header, three lock-free
//! multi-producer/single-consumer ring buffers (log events, span events,
//! metric measurements) and an append-only dictionary, shared through a
//! memory mapping between an application (the writer) and a collector (the
//! reader). Because the records sit in shared pages, they survive the
//! application's crash.
//!
//! - [`MmapWriter`] creates a file and writes records: a write never blocks and
//!   allocates nothing; a full ring drops the record and counts it.
//! - [`MmapReader`] opens a file written by another process, validates every
//!   offset and size first, and reads rings ([`RingReader`]) and dictionary
//!   entries, returning a [`FormatError`] for anything malformed.
//! - [`proto`] holds the v1 messages (generated with prost).
//!
//! ```
//! use otlp_mmap_core::{proto, FileConfig, MmapReader, MmapWriter, RingKind, Slot};
//! use prost::Message;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("app.otlp");
//! let writer = MmapWriter::create(&path, &FileConfig::default()).unwrap();
//! let key = writer.intern_str("http.method").unwrap();
//! let event = proto::Event {
//!     severity_text: "INFO".into(),
//!     attributes: vec![proto::KeyValueRef { key_ref: key, value: None }],
//!     ..Default::default()
//! };
//! writer.try_write(RingKind::Events, &event).unwrap();
//!
//! let reader = MmapReader::open(&path, true).unwrap();
//! let mut ring = reader.ring_reader(RingKind::Events).unwrap();
//! let Slot::Ready(bytes) = ring.peek(reader.region()) else { panic!("nothing published") };
//! let got = proto::Event::decode(bytes).unwrap();
//! assert_eq!(reader.entry(got.attributes[0].key_ref).unwrap(), b"http.method");
//! ring.advance();
//! ring.release(reader.region()).unwrap();
//! ```

#[doc(hidden)]
pub mod check;
pub mod dictionary;
pub mod error;
pub mod layout;
pub mod lock;
pub mod reader;
pub mod region;
mod reserve;
pub mod ring;
pub mod sigbus;
pub mod view;
pub mod writer;

/// The OTLP-MMAP v1 messages, generated from `proto/mmap.proto`.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.mmap.v1.rs"));
}

pub use error::FormatError;
pub use layout::{FileConfig, FileLayout, RingConfig, RingGeometry, RingKind};
pub use reader::{FileChange, MmapReader, WriterState};
pub use region::SharedRegion;
pub use ring::{DropCounters, RingReader, RingWriter, Slot, WriteError};
pub use writer::{DictionaryDrops, MmapWriter, now_unix_nano};
