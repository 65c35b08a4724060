//! The reader side of the Collector: turns what the three rings of one
//! OTLP-MMAP file deliver into OTLP export requests (encoded straight into
//! the batch's buffer, byte for byte as prost would encode the
//! opentelemetry-proto types), grouped by Resource and InstrumentationScope
//! from the dictionary.
//!
//! - [`SpanAssembler`] builds spans from span events, bounded in memory, and
//!   emits spans that never ended as incomplete spans;
//! - [`logs::log_record`] turns each event into a LogRecord;
//! - [`MetricAggregator`] aggregates raw measurements as each metric asks;
//! - [`FileReader`] is the poll/commit API the Collector's receiver calls
//!   (through the C ABI): non-blocking, bounded work per call, back-pressure
//!   until a batch is committed;
//! - [`dump()`] reads everything in a file once, for tools and tests;
//! - [`span_checkpoint`] and [`metric_checkpoint`] give the state of the
//!   assembler and the aggregator as OTLP bytes and take it back, for the
//!   checkpoints of [`FileReader::checkpoint`].
//!
//! ```
//! use otlp_mmap_collector::{FileReader, ReaderOptions, Signal};
//! use otlp_mmap_core::{proto, FileConfig, MmapWriter, RingKind};
//! use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
//! use prost::Message;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("app.otlp");
//! let writer = MmapWriter::create(&path, &FileConfig::default()).unwrap();
//! let body = proto::AnyValue { value: Some(proto::any_value::Value::StringValue("hello".into())) };
//! writer.try_write(RingKind::Events, &proto::Event { body: Some(body), ..Default::default() }).unwrap();
//!
//! let mut reader = FileReader::open(&path, ReaderOptions::default()).unwrap();
//! let batch = reader.poll(Signal::Logs, 0).unwrap().expect("one log record");
//! let request = ExportLogsServiceRequest::decode(batch.bytes).unwrap();
//! assert_eq!(request.resource_logs[0].scope_logs[0].log_records.len(), 1);
//! let token = batch.token;
//! reader.commit(Signal::Logs, token).unwrap();
//! assert!(reader.poll(Signal::Logs, 0).unwrap().is_none());
//! ```

#![forbid(unsafe_code)]

mod attribute_cache;
mod attribute_run_memo;
mod bytes_hash;
mod canonical;
pub mod dictionary;
#[doc(hidden)]
pub mod drive;
pub mod dump;
mod encode;
pub mod exponential;
pub mod file_reader;
pub mod flat;
pub mod group;
pub mod idle_watch;
pub mod logs;
pub mod metric_checkpoint;
pub mod metrics;
pub mod raw;
pub mod span_checkpoint;
pub mod spans;

/// The Collector's checkpoint of one file (`proto/checkpoint.proto`).
#[allow(missing_docs)]
pub mod checkpoint_proto {
    include!(concat!(env!("OUT_DIR"), "/otelcol_mmap.checkpoint.v1.rs"));
}

pub use dictionary::DictionaryCache;
pub use dump::{Dump, DumpOptions, dump};
pub use file_reader::{
    Batch, CollectOutcome, FileReader, ReaderError, ReaderOptions, ReaderStats, Signal,
};
pub use idle_watch::{IdleWatch, Wake};
pub use metrics::MetricAggregator;
pub use opentelemetry_proto;
pub use spans::{
    INCOMPLETE_ATTRIBUTE, INCOMPLETE_REASON_ATTRIBUTE, START_MISSING_ATTRIBUTE, SpanAssembler,
};
