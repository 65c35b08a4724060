//! Write OpenTelemetry spans, logs and metrics into an OTLP-MMAP v1 file: a
//! memory-mapped file whose ring buffers a collector process reads. Records
//! are in shared pages the moment a call returns, so they survive the
//! application's crash (even `abort()` or `SIGKILL`): the collector still
//! finds every span started, every log written and every measurement taken.
//!
//! There are two ways in:
//!
//! 1. **Providers that implement the OpenTelemetry API directly**
//!    ([`MmapTracerProvider`], [`MmapMeterProvider`], [`MmapLoggerProvider`]),
//!    all built from one [`MmapExporterFile`]. Every span start and end,
//!    attribute update, log record and metric measurement is encoded straight
//!    into a ring slot: no queue, no batch, no background thread, no lock, and
//!    no heap allocation of this crate's once a key or instrument has been used
//!    (see `tests/no_alloc.rs`). See [`trace`], [`metrics`] and [`logs`] for
//!    exactly what each call writes.
//! 2. **Processors for applications that keep the OpenTelemetry SDK**:
//!    [`MmapSpanProcessor`] (writes `StartSpan` at `on_start`, so that a span
//!    in flight at a crash is known, and the rest at `on_end`) and
//!    [`MmapLogProcessor`].
//!
//! ```
//! use opentelemetry::logs::{LogRecord, Logger, LoggerProvider, Severity};
//! use opentelemetry::metrics::MeterProvider;
//! use opentelemetry::trace::{Span, SpanKind, Tracer, TracerProvider};
//! use opentelemetry::KeyValue;
//! use opentelemetry_mmap::{
//!     MmapExporterFile, MmapLoggerProvider, MmapMeterProvider, MmapTracerProvider,
//! };
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("app.otlp");
//! // Path and ring sizes from code, or from OTEL_MMAP_FILE & co (see `config`).
//! let file = MmapExporterFile::builder()
//!     .with_path(&path)
//!     .with_resource(
//!         opentelemetry_sdk::Resource::builder_empty()
//!             .with_service_name("checkout")
//!             .build(),
//!     )
//!     .build()?;
//!
//! let tracer = MmapTracerProvider::new(&file).tracer("checkout");
//! let mut span = tracer
//!     .span_builder("GET /cart")
//!     .with_kind(SpanKind::Server)
//!     .start(&tracer);
//! span.set_attribute(KeyValue::new("http.response.status_code", 200));
//! span.end();
//!
//! let meter = MmapMeterProvider::new(&file).meter("checkout");
//! let requests = meter.u64_counter("requests").build();
//! requests.add(1, &[KeyValue::new("route", "/cart")]);
//!
//! let logger = MmapLoggerProvider::new(&file).logger("checkout");
//! let mut record = logger.create_log_record();
//! record.set_severity_number(Severity::Info);
//! record.set_body("cart loaded".into());
//! logger.emit(record);
//!
//! assert_eq!(file.drop_stats().spans, 0);
//! # Ok::<(), opentelemetry_mmap::Error>(())
//! ```
//!
//! With the SDK:
//!
//! ```
//! use opentelemetry::trace::{Tracer, TracerProvider};
//! use opentelemetry_mmap::{MmapExporterFile, MmapSpanProcessor};
//! use opentelemetry_sdk::trace::SdkTracerProvider;
//!
//! # let dir = tempfile::tempdir().unwrap();
//! let file = MmapExporterFile::builder()
//!     .with_path(dir.path().join("app.otlp"))
//!     .build()?;
//! let provider = SdkTracerProvider::builder()
//!     .with_span_processor(MmapSpanProcessor::new(&file))
//!     .build();
//! provider.tracer("app").in_span("work", |_cx| { /* ... */ });
//! # Ok::<(), opentelemetry_mmap::Error>(())
//! ```
//!
//! # The file
//!
//! One process writes one file ([`MmapExporterFile`]); it is created (any
//! file at the path is replaced atomically) when the handle is built, with
//! the ring sizes of [`config`], and stays open until the last handle, provider
//! or processor is dropped. The resource (`OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, the SDK's `telemetry.sdk.*` attributes, then
//! [`MmapExporterFileBuilder::with_resource`]) is stored once as an interned
//! `Resource` message, and each instrumentation scope once as an interned
//! `InstrumentationScope` message pointing at it; attribute keys and event
//! names are interned strings.
//!
//! **Writer liveness**: creating the file takes the writer's liveness lock, a
//! Linux open-file-description read lock on the file's first 8 bytes
//! (`otlp_mmap_core::lock`). The kernel releases it when the process exits,
//! however it exits, so the collector can tell a live writer from a dead one
//! and knows when it has read everything a crashed process left.
//!
//! **Full rings drop**: a write never blocks. When the collector falls behind
//! and a ring is full, or a record is larger than a slot, the record is
//! dropped and counted: see [`MmapExporterFile::drop_stats`], and
//! [`MmapMeterProvider::export_drop_stats`] to report the counts as a metric.
//!
//! **No SIGBUS on a full disk**: the file's blocks are allocated
//! (`posix_fallocate`) when it is created and whenever the dictionary grows,
//! before any page of them is written, so a full filesystem, a full tmpfs, a
//! quota or `RLIMIT_FSIZE` never makes a store into the mapping fault. At
//! creation, [`MmapExporterFileBuilder::build`] then fails with a
//! "no space" error; later, the dictionary entry that needed the space is not
//! stored and the record that needed the entry is dropped and counted
//! ([`DropStats::dictionary_no_space`], [`DropStats::missing_entry`]). A
//! claimed slot is always published: if a record's encoding ever went wrong,
//! its slot holds a record the collector rejects, and the drop is counted
//! ([`DropStats::encoding_errors`]).
//!
//! **No page faults on the calling thread** for a file on tmpfs (such as
//! `/dev/shm`): when the file is created, its pages are also mapped into the
//! process (`MADV_POPULATE_WRITE`, Linux 5.14 and later), so the first record
//! written into each page of a ring does not stop the calling thread for a
//! page fault (about 2 µs per 4 KiB page in a VM). The price is paid once, by
//! the thread that builds the file: about 5 ms of CPU for the default rings
//! there, and the file counts in the process's RSS (as shared memory) from
//! the start instead of from the rings' first lap. A file on a disk is left
//! to fault (populating it would write the whole file back once, and the
//! kernel write-protects written-back pages again anyway).
//!
//! # Costs
//!
//! The hot path encodes each record in one pass with a borrowed protobuf
//! encoder (the private module `encode`; lengths of embedded messages
//! are filled in after their bodies) into a per-thread scratch buffer, then
//! claims a slot of exactly its size and copies it in; the ring writer of
//! `otlp-mmap-core` then asks the CPU to fetch the ring's next slot for
//! writing (a slot is otherwise cold, last touched a lap earlier or by the
//! reader, and the writer's next record would wait on that cache miss). Attribute keys are found in a per-thread cache; only a key's
//! first use on a thread allocates and takes the dictionary's lock. Timestamps
//! come from [`clock`], ids from the SDK's `RandomIdGenerator` (a per-thread
//! generator: no lock, no allocation). What the OpenTelemetry API itself
//! allocates (it is not this crate's choice) is measured in `tests/no_alloc.rs`
//! and listed in the README.

// `unsafe_code` is denied for the workspace; the exception is the real-time
// clock read in `clock`.

pub mod clock;
pub mod config;
mod encode;
mod file;
mod key_cache;
mod key_table;
mod log_events;
mod log_processor;
pub mod logs;
pub mod metrics;
mod observable;
pub mod records;
mod resource;
mod span_events;
mod span_notes;
mod span_processor;
pub mod trace;
#[cfg(feature = "tracing")]
mod tracing_context;
#[cfg(feature = "tracing")]
pub mod tracing_layer;

pub use file::{DropStats, MmapExporterFile, MmapExporterFileBuilder};
pub use log_processor::MmapLogProcessor;
pub use logs::{MmapLogRecord, MmapLogger, MmapLoggerProvider};
pub use metrics::MmapMeterProvider;
pub use span_processor::MmapSpanProcessor;
pub use trace::{MmapSpan, MmapTracer, MmapTracerProvider};
#[cfg(feature = "tracing")]
pub use tracing_layer::MmapLayer;

/// Why the file could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither the builder nor `OTEL_MMAP_FILE` / `SDK_MMAP_EXPORTER_FILE` gave a path.
    #[error("no file path: set OTEL_MMAP_FILE or call MmapExporterFileBuilder::with_path")]
    NoPath,
    /// An environment variable does not hold a number.
    #[error("environment variable {name}={value:?} is not a valid number")]
    BadEnv {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
    },
    /// The file could not be created (bad sizes, I/O error).
    #[error(transparent)]
    Format(#[from] otlp_mmap_core::FormatError),
}
