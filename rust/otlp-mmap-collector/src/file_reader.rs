//! `FileReader`: the poll/commit API over one OTLP-MMAP file, one signal at a time.
//!
//! `poll(signal, now)` does a bounded amount of work and returns the signal's
//! pending export request (OTLP protobuf bytes) with a token, or nothing. The
//! same batch is returned again until `commit(signal, token)` says the pipeline
//! accepted it; meanwhile nothing more is read for that signal, so a refusing
//! pipeline fills the ring (the writer's drops go up), not the reader's memory.
//! It decides nothing about timers or threads: the caller passes `now`.
//!
//! What a Collector crash can lose or duplicate, per signal:
//! - logs: `reader_index` is advanced only when a batch is committed, so a
//!   restart re-reads the uncommitted batch: at most one batch is duplicated,
//!   nothing is lost;
//! - spans: span events are released as soon as they are in the assembler's
//!   memory, so spans in flight in the Collector (open spans, completed spans
//!   not yet committed) are lost with it; their later events come out as spans
//!   with [`crate::spans::START_MISSING_ATTRIBUTE`];
//! - metrics: measurements are released once aggregated, so the aggregates
//!   since the last committed collection are lost.
//!
//! Unless the caller keeps checkpoints ([`FileReader::checkpoint`],
//! [`FileReader::restore`]) and holds the rings until each is stored
//! ([`FileReader::set_hold_until_checkpoint`]): span events and measurements
//! then stay in their slots until a stored checkpoint covers them, and a
//! restarted reader goes on from the last one, losing nothing; with the
//! delivery marker stored after each commit ([`FileReader::delivery_marker`],
//! [`FileReader::restore_delivered`]) it duplicates at most one batch.
//!
//! Whatever the file holds, a reader's memory is bounded ([`ReaderOptions`]):
//! the mapping by `max_mapped_bytes`, the dictionary cache by
//! `dictionary_cache_max_entries`/`_bytes`, each record by `max_record_bytes`
//! (a record over it is dropped and counted in `oversized_records`), each
//! batch by `max_batch_bytes` plus one record, spans in flight by
//! `max_in_flight_spans`/`max_in_flight_span_bytes` and the span limits, and
//! metrics by `max_metric_bytes`. Every record dropped for good is counted
//! in [`ReaderStats`].
//!
//! A published slot whose message is empty (length prefix 0) is a corrupt
//! record in every ring: no record means anything without a single field,
//! and the reference Java writer publishes an all-zero slot when a record
//! did not fit its slot. It is counted in `corrupt_records`, never delivered.

use std::collections::VecDeque;

use otlp_mmap_core::ring::StrandedSlots;
use otlp_mmap_core::view::{EventView, SpanEventView};
use otlp_mmap_core::{
    FileChange, FormatError, MmapReader, RingKind, RingReader, Slot, WriterState,
};

use crate::dictionary::{CacheLimits, DictionaryCache};
use crate::encode;
use crate::flat::FlatWriter;
use crate::flat::log::LogFields;
use crate::group::RequestEncoder;
use crate::logs::{encode_log_record, encode_log_record_fields};
use crate::metrics::{MetricAggregator, MetricCounters};
use crate::spans::{GiveUpReason, InFlight, SpanAssembler, SpanLimits, encode_spans};

mod checkpoint;
mod delivery;
mod drained;
mod queued_batches;
pub use checkpoint::{CHECKPOINT_VERSION, CheckpointRejected, Restored};
pub use delivery::{DELIVERY_MARKER_MAX_BYTES, MarkerRejected, Skipped};
pub use drained::{NotRemoved, RemoveOutcome};

/// How often (reader clock) the path and the writer's lock are checked.
const CHECK_INTERVAL_NANOS: u64 = 200_000_000;
/// How long (reader clock) a writer's restart in place may stay impossible
/// to follow (its new stream does not open: still being initialised, or a
/// file this reader cannot read) before polls return the reason: 10 s, far
/// longer than any writer takes to initialise a file.
const RESTART_FOLLOW_TIMEOUT_NANOS: u64 = 10_000_000_000;
/// Most span events or measurements ingested by one poll.
const INGEST_BUDGET: usize = 65_536;
/// Default of [`ReaderOptions::stuck_slot_timeout_nanos`]: 2 s. A writer
/// thread preempted between its claim and its publish stalls far less than
/// that even on an overloaded machine (RELIABILITY.md gives the measurement),
/// and a dead writer of ours is detected by its lock, not by this timeout.
pub const DEFAULT_STUCK_SLOT_TIMEOUT_NANOS: u64 = 2_000_000_000;

/// The three signals, in the order of the C API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Spans, assembled from the spans ring.
    Traces = 0,
    /// Log records, one per event of the events ring.
    Logs = 1,
    /// Metrics, aggregated from the measurements ring.
    Metrics = 2,
}

impl Signal {
    /// The ring this signal is read from.
    pub fn ring(self) -> RingKind {
        match self {
            Signal::Traces => RingKind::Spans,
            Signal::Logs => RingKind::Events,
            Signal::Metrics => RingKind::Measurements,
        }
    }
}

/// Reader settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderOptions {
    /// Most spans kept in flight (default 100,000); beyond it the oldest is
    /// emitted as incomplete.
    pub max_in_flight_spans: usize,
    /// Longest a span may stay open, in nanoseconds on the reader's clock
    /// from when its StartSpan was read (default 10 minutes), before it is
    /// emitted as incomplete.
    pub max_span_age_nanos: u64,
    /// Most spans per traces batch (default 1024).
    pub max_batch_spans: usize,
    /// Most log records per logs batch (default 1024).
    pub max_batch_logs: usize,
    /// Most series per metric, its overflow series included (default 2000);
    /// measurements of further attribute sets fold into the overflow series.
    pub metric_cardinality_limit: usize,
    /// How long a slot a writer claimed may stay unpublished, with later
    /// slots published, before the reader skips it as abandoned (for writers
    /// that may be alive; a dead writer's claims are skipped at once). In
    /// nanoseconds; default [`DEFAULT_STUCK_SLOT_TIMEOUT_NANOS`] (2 s).
    pub stuck_slot_timeout_nanos: u64,
    /// Whether to take the exclusive reader lock and store `reader_index`
    /// (default true; false for tools that only look at a file).
    pub consume: bool,
    /// Address space reserved for the file: a longer file is refused
    /// ([`FormatError::FileTooLarge`]) and growth past it is not read. The
    /// default, 256 MiB, is 3.4 times the largest file our SDK writes with
    /// its defaults (74 MiB: 10 MiB of rings and a 64 MiB dictionary), and it
    /// bounds the file pages a hostile file can make this reader touch.
    pub max_mapped_bytes: usize,
    /// Most entries in the dictionary cache (default 65,536).
    pub dictionary_cache_max_entries: usize,
    /// Most bytes in the dictionary cache (default 16 MiB); when full it is cleared.
    pub dictionary_cache_max_bytes: usize,
    /// Most bytes of strings and values one record resolves to (a log
    /// record, a measurement, a span; default 1 MiB). A log record or
    /// measurement over it is dropped; a span drops the attributes and links
    /// past it. Both are counted in `oversized_records`.
    pub max_record_bytes: usize,
    /// Most bytes of resolved strings and values per batch (default 3 MiB):
    /// a batch ends once it holds that much, so it holds at most this plus
    /// one record, under the 4 MiB a gRPC receiver accepts by default.
    pub max_batch_bytes: usize,
    /// Most attributes per span (default 128, the SDKs' span limit).
    pub max_span_attributes: usize,
    /// Most links per span (default 128, the SDKs' span limit).
    pub max_span_links: usize,
    /// Most bytes held by the spans in flight (default 64 MiB); beyond it the
    /// oldest are emitted as incomplete spans.
    pub max_in_flight_span_bytes: usize,
    /// Most bytes held by the metric aggregates (default 64 MiB); beyond it
    /// new series fold into the overflow series and new metrics are dropped.
    pub max_metric_bytes: usize,
    /// Hand traces and logs batches out in the flat layout of [`crate::flat`]
    /// rather than as OTLP export requests (default false; metrics are
    /// always OTLP).
    pub flat_handoff: bool,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        let cache = CacheLimits::default();
        let spans = SpanLimits::default();
        ReaderOptions {
            max_in_flight_spans: spans.max_in_flight,
            max_span_age_nanos: spans.max_age_nanos,
            max_batch_spans: 1024,
            max_batch_logs: 1024,
            metric_cardinality_limit: 2000,
            stuck_slot_timeout_nanos: DEFAULT_STUCK_SLOT_TIMEOUT_NANOS,
            consume: true,
            max_mapped_bytes: 256 << 20,
            dictionary_cache_max_entries: cache.max_entries,
            dictionary_cache_max_bytes: cache.max_bytes,
            max_record_bytes: spans.max_span_bytes,
            max_batch_bytes: 3 << 20,
            max_span_attributes: spans.max_attributes,
            max_span_links: spans.max_links,
            max_in_flight_span_bytes: spans.max_in_flight_bytes,
            max_metric_bytes: crate::metrics::DEFAULT_MAX_METRIC_BYTES,
            flat_handoff: false,
        }
    }
}

impl ReaderOptions {
    fn cache_limits(&self) -> CacheLimits {
        CacheLimits {
            max_entries: self.dictionary_cache_max_entries,
            max_bytes: self.dictionary_cache_max_bytes,
            max_entry_bytes: self.max_record_bytes,
        }
    }

    fn span_limits(&self) -> SpanLimits {
        SpanLimits {
            max_in_flight: self.max_in_flight_spans,
            max_age_nanos: self.max_span_age_nanos,
            max_attributes: self.max_span_attributes,
            max_links: self.max_span_links,
            max_span_bytes: self.max_record_bytes,
            max_in_flight_bytes: self.max_in_flight_span_bytes,
        }
    }
}

/// A pending export request.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// OTLP protobuf bytes of the export request, or with
    /// [`ReaderOptions::flat_handoff`] a traces or logs batch in the flat
    /// layout of [`crate::flat`].
    pub bytes: &'a [u8],
    /// Token to commit once the pipeline accepted the batch.
    pub token: u64,
    /// Spans, log records or data points in it.
    pub items: u64,
}

/// What `collect_metrics` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectOutcome {
    /// A metrics batch with this many data points is pending.
    Collected(u64),
    /// No series had data.
    Nothing,
    /// A metrics batch is pending (the previous one, not committed yet, or
    /// one kept from a stream the writer started over from, made pending
    /// now): nothing was collected; the aggregates keep accumulating into
    /// the next collection.
    Busy,
}

/// Errors of the poll/commit API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReaderError {
    /// The file cannot be read: opening it failed (not a valid OTLP-MMAP
    /// file, too large, an I/O error), or it shrank under the reader, which
    /// then gives it up.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A commit whose token is not that of the signal's pending batch.
    #[error("token {got} is not the pending {signal:?} batch's (double commit or stale token)")]
    Token {
        /// The signal the commit was for.
        signal: Signal,
        /// The token the caller passed.
        got: u64,
    },
}

/// Counters and gauges of one reader. Arrays are indexed by [`Signal`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReaderStats {
    /// Gauge: slots in each ring (its `num_buffers`).
    pub ring_capacity: [u64; 3],
    /// Gauge: sequences writers have claimed in each ring and this reader has
    /// not released yet, at most the ring's capacity (0 once the file shrank
    /// under the reader). Logs are released when their batch is committed, so
    /// a pending logs batch counts here; span events and measurements are
    /// released once ingested.
    pub ring_unread: [u64; 3],
    /// Records decoded (including those then dropped and counted below).
    pub records_read: [u64; 3],
    /// Slots skipped because they did not decode, or held an empty message
    /// (an all-zero slot).
    pub corrupt_records: [u64; 3],
    /// Claimed slots skipped because their writer never published them.
    pub abandoned_slots: [u64; 3],
    /// Records over `max_record_bytes`: log records and measurements
    /// dropped; span events whose attributes or links were (partly) dropped.
    pub oversized_records: [u64; 3],
    /// Spans given up before their EndSpan and emitted as incomplete (too
    /// old, over the in-flight count or bytes, writer restarted or gone,
    /// reader stopping).
    pub incomplete_spans: u64,
    /// Gauge: spans started and not ended that the reader holds now.
    pub in_flight_spans: u64,
    /// Span events for no span in flight: an EndSpan without its StartSpan
    /// (emitted as a span with [`crate::spans::START_MISSING_ATTRIBUTE`]), a
    /// rename, attributes or links for a span never seen starting (dropped),
    /// or a span event with no event set (dropped).
    pub orphan_span_events: u64,
    /// Span events dropped because their trace or span id is not 16 / 8 bytes.
    pub invalid_span_ids: u64,
    /// StartSpan events for a span already in flight (the later one replaces it).
    pub duplicate_span_starts: u64,
    /// Span attributes and links dropped by the span limits (also in the
    /// spans' `dropped_attributes_count` / `dropped_links_count`).
    pub span_limit_drops: u64,
    /// Dictionary refs and encoded values that could not be resolved (ref
    /// past the end, bad length or protobuf, values nested too deep, a scope
    /// or resource over `max_record_bytes`): each leaves the field it fills
    /// empty, or skips the attribute.
    pub bad_refs: u64,
    /// Measurements folded into their metric's overflow series (no room for
    /// a new series under `metric_cardinality_limit` or `max_metric_bytes`).
    pub metric_overflows: u64,
    /// Measurements dropped because their metric definition did not resolve.
    pub unknown_metric_measurements: u64,
    /// Measurements dropped because they had no value the aggregation can take.
    pub measurements_without_value: u64,
    /// Measurements dropped because their file has too many metrics
    /// (10,000, or `max_metric_bytes`).
    pub measurements_over_metric_limit: u64,
    /// Measurements read since a writer's last collection that could not be
    /// delivered because the writer started over in place while the batches
    /// kept from its earlier streams filled their bound (see
    /// `queued_batches.rs`).
    pub measurements_lost_at_restart: u64,
    /// Times the dictionary cache was full and cleared.
    pub dictionary_cache_clears: u64,
    /// Times the writer started over in place (same file, new start time)
    /// and the reader moved on to the new stream (noticed only when
    /// `consume`). The counters (not the gauges) are summed over all the
    /// streams.
    pub writer_restarts: u64,
    /// 1 alive, 0 gone, -1 unknown.
    pub writer_alive: i32,
    /// The file was removed and everything in it has been read.
    pub finished: bool,
}

#[derive(Debug)]
struct Pending {
    bytes: Vec<u8>,
    token: u64,
    items: u64,
    /// For logs: the sequence to release on commit, in stream `generation`.
    release: Option<(u64, i64)>,
    /// With [`ReaderOptions::flat_handoff`]: `bytes` in the flat layout
    /// (written with the batch; from `bytes` for a batch restored from a
    /// checkpoint or laid out again). `bytes` stay the OTLP request, which
    /// checkpoints keep.
    flat: Vec<u8>,
    /// A traces batch handed out flat: its spans, whose request `bytes`
    /// are written only when needed (empty until then), see
    /// [`FileReader::encode_pending_spans`]. Given back on commit.
    #[allow(clippy::vec_box)]
    spans: Vec<Box<InFlight>>,
}

impl Pending {
    /// A batch that is an OTLP request only (nothing to release on commit,
    /// no flat layout yet).
    fn request(bytes: Vec<u8>, token: u64, items: u64) -> Self {
        Pending {
            bytes,
            token,
            items,
            release: None,
            flat: Vec::new(),
            spans: Vec::new(),
        }
    }
}

/// Most batch buffers kept for the next batches: as many as can be in
/// flight at once, so that a steady state allocates none: a traces batch
/// (flat, and its request once a checkpoint needs it), a logs batch (its
/// request and, flat, its layout) and a metrics batch. Each holds at most
/// [`encode::KEEP_MAX`] bytes when kept.
const SPARE_BUFFERS: usize = 5;

/// One writer's stream: the mapping and what is derived from its refs.
#[derive(Debug)]
struct Stream {
    file: MmapReader,
    dict: DictionaryCache,
    rings: [RingReader; 3],
    generation: u64,
}

/// The writer started over in place: a ring of the old stream was not given
/// back to the writers.
struct StartedOver;

impl Stream {
    /// Gives ring `i`'s slots up to and including `seq` back to the writers,
    /// unless the writer started over in place since this stream was opened.
    /// The new writer's rings are not this stream's to release: a reset ring
    /// stores -1 in `reader_index`, which is also what a stream that never
    /// released expects, so the compare-and-swap alone would give the new
    /// writer's first records back unread. (A start time stored between this
    /// check and the swap still gets through; the format fixes no order
    /// between the two.)
    fn release_to(&mut self, i: usize, seq: i64) -> Result<(), StartedOver> {
        if self.file.start_time_changed() {
            return Err(StartedOver);
        }
        self.rings[i]
            .release_to(self.file.region(), seq)
            .map_err(|_| StartedOver)
    }

    /// [`release_to`](Self::release_to) everything read from ring `i`.
    fn release(&mut self, i: usize) -> Result<(), StartedOver> {
        let last = self.rings[i].next_sequence().wrapping_sub(1);
        self.release_to(i, last)
    }

    /// The stream a writer started over in place, in the same file: opened
    /// through the file already open (its reader lock, and no new open of
    /// the path, which may lead elsewhere by now).
    fn reopen(&self, options: &ReaderOptions, generation: u64) -> Result<Self, FormatError> {
        let file = self.file.try_clone_file()?;
        Self::new(
            MmapReader::open_file_with_max_mapped(
                file,
                self.file.path(),
                options.consume,
                options.max_mapped_bytes,
            )?,
            options,
            generation,
        )
    }

    fn new(
        file: MmapReader,
        options: &ReaderOptions,
        generation: u64,
    ) -> Result<Self, FormatError> {
        let rings = [
            file.ring_reader(Signal::Traces.ring())?,
            file.ring_reader(Signal::Logs.ring())?,
            file.ring_reader(Signal::Metrics.ring())?,
        ];
        Ok(Stream {
            file,
            dict: DictionaryCache::new(options.cache_limits()),
            rings,
            generation,
        })
    }
}

/// Reads one file and turns its rings into OTLP export requests.
#[derive(Debug)]
pub struct FileReader {
    path: std::path::PathBuf,
    options: ReaderOptions,
    stream: Stream,
    assembler: SpanAssembler,
    aggregator: MetricAggregator,
    pending: [Option<Pending>; 3],
    next_token: u64,
    stats: ReaderStats,
    last_check: Option<u64>,
    change: FileChange,
    writer_gone: bool,
    /// Counters of the streams before the current one (writer restarts).
    retired: Retired,
    /// Batches of streams the writer started over from, waiting behind
    /// each signal's pending batch (see `queued_batches.rs`).
    queued: [VecDeque<Pending>; 3],
    /// Bytes of the `queued` batches.
    queued_bytes: usize,
    /// See [`ReaderStats::measurements_lost_at_restart`].
    measurements_lost_at_restart: u64,
    /// Measurement slots consumed when the current stream began (a writer's
    /// restart in place).
    consumed_at_stream_start: u64,
    /// Measurements taken from the ring when the aggregates were last
    /// collected (a file is drained only when none came since).
    consumed_at_collect: u64,
    /// Since when (reader clock) the writer's restart in place could not be
    /// followed (the new stream would not open), if it cannot now.
    restart_unfollowed_since: Option<u64>,
    /// Why a restart could not be followed for [`RESTART_FOLLOW_TIMEOUT_NANOS`]:
    /// every poll returns it from then on.
    restart_failed: Option<FormatError>,
    /// Keep span events and measurements in their rings until a checkpoint
    /// that covers them is stored ([`FileReader::set_hold_until_checkpoint`]).
    hold_until_checkpoint: bool,
    /// Stream generation and positions of the spans and measurements rings
    /// that the last checkpoint taken covers, until it is stored.
    checkpoint_positions: Option<(u64, [i64; 2])>,
    /// What was delivered since the last checkpoint ([`FileReader::delivery_marker`]).
    delivery: delivery::Delivery,
    /// Watch of a file whose writer's lock is not held and was never seen
    /// held ([`FileReader::writer_presumed_gone`]).
    unlocked: Option<drained::UnlockedWatch>,
    /// [`FileReader::stop_spans`] was called: traces polls deliver what was
    /// given up and read no more span events (the next reader reads them).
    spans_stopped: bool,
    /// [`FileReader::stop_measurements`] was called: metrics polls read no
    /// more measurements (only `collect_metrics` does).
    measurements_stopped: bool,
    /// Buffers of committed batches, for the next ones.
    spare: Vec<Vec<u8>>,
    /// The log records of the batch being read, and the request they are grouped into.
    log_arena: Vec<u8>,
    /// With [`ReaderOptions::flat_handoff`]: where each record of the batch
    /// is in `log_arena` and what it holds.
    log_fields: Vec<(usize, LogFields)>,
    request: RequestEncoder,
    /// With [`ReaderOptions::flat_handoff`]: the flat writers of traces and logs.
    flat: [FlatWriter; 2],
    /// The pending traces batch handed out flat as grouped when it was laid
    /// out (its scopes and resources resolved then), which its request is
    /// written from (see `encode_pending_spans`).
    spans_request: RequestEncoder,
    /// The list of a traces batch's spans (see `Pending::spans`), kept for the next.
    #[allow(clippy::vec_box)]
    spare_spans: Vec<Box<InFlight>>,
}

/// Counters kept by a stream's dictionary cache and aggregator, summed over
/// the streams a reader left behind.
#[derive(Debug, Default, Clone, Copy)]
struct Retired {
    bad_refs: u64,
    cache_clears: u64,
    metrics: MetricCounters,
}

impl Retired {
    fn add(&mut self, dict: &DictionaryCache, m: MetricCounters) {
        self.bad_refs += dict.bad_refs;
        self.cache_clears += dict.clears;
        self.metrics.overflows += m.overflows;
        self.metrics.unknown_metric += m.unknown_metric;
        self.metrics.no_value += m.no_value;
        self.metrics.too_many_metrics += m.too_many_metrics;
    }
}

impl FileReader {
    /// Opens the file at `path`.
    pub fn open(
        path: impl AsRef<std::path::Path>,
        options: ReaderOptions,
    ) -> Result<Self, FormatError> {
        let file =
            MmapReader::open_with_max_mapped(path, options.consume, options.max_mapped_bytes)?;
        Self::with_file(file, options)
    }

    /// Reads `file`, which the caller opened read-write (see
    /// [`MmapReader::open_file`]); `path` is where it was found.
    pub fn open_file(
        file: std::fs::File,
        path: impl AsRef<std::path::Path>,
        options: ReaderOptions,
    ) -> Result<Self, FormatError> {
        let file = MmapReader::open_file_with_max_mapped(
            file,
            path,
            options.consume,
            options.max_mapped_bytes,
        )?;
        Self::with_file(file, options)
    }

    fn with_file(file: MmapReader, options: ReaderOptions) -> Result<Self, FormatError> {
        let path = file.path().to_path_buf();
        let stream = Stream::new(file, &options, 0)?;
        // Cumulative series start with the stream. When an earlier reader
        // already consumed measurements (a Collector restart), what it had
        // aggregated is gone: the series restart now, with a new start time,
        // so that a backend sees a reset rather than a counter going down.
        let start = if stream.rings[Signal::Metrics as usize].released() < 0 {
            stream.file.start_time_unix_nano()
        } else {
            otlp_mmap_core::now_unix_nano()
        };
        Ok(FileReader {
            path,
            options,
            stream,
            assembler: SpanAssembler::with_limits(options.span_limits()),
            aggregator: MetricAggregator::with_max_bytes(
                options.metric_cardinality_limit,
                start,
                options.max_metric_bytes,
            ),
            pending: [None, None, None],
            next_token: 1,
            stats: ReaderStats::default(),
            last_check: None,
            change: FileChange::None,
            writer_gone: false,
            retired: Retired::default(),
            queued: Default::default(),
            queued_bytes: 0,
            measurements_lost_at_restart: 0,
            consumed_at_stream_start: 0,
            consumed_at_collect: 0,
            restart_unfollowed_since: None,
            restart_failed: None,
            hold_until_checkpoint: false,
            checkpoint_positions: None,
            delivery: delivery::Delivery::default(),
            unlocked: None,
            spans_stopped: false,
            measurements_stopped: false,
            spare: Vec::new(),
            log_arena: Vec::new(),
            log_fields: Vec::new(),
            request: RequestEncoder::default(),
            flat: Default::default(),
            spans_request: RequestEncoder::default(),
            spare_spans: Vec::new(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The sequence the reader reads next in the ring of `signal`.
    pub fn next_sequence(&self, signal: Signal) -> i64 {
        self.stream.rings[signal as usize].next_sequence()
    }

    /// The last sequence the reader gave back to the writers in the ring of
    /// `signal` (what it stored in `reader_index`).
    pub fn released_sequence(&self, signal: Signal) -> i64 {
        self.stream.rings[signal as usize].released()
    }

    /// The file of the current stream.
    pub fn file(&self) -> &MmapReader {
        &self.stream.file
    }

    /// The dictionary cache of the current stream.
    pub fn dictionary_cache(&self) -> &DictionaryCache {
        &self.stream.dict
    }

    /// Returns the signal's pending batch, reading more of its ring first if
    /// none is pending. Bounded work; never blocks.
    pub fn poll(&mut self, signal: Signal, now: u64) -> Result<Option<Batch<'_>>, ReaderError> {
        // A page that vanished because the file was truncated reads as zeros
        // (the SIGBUS guard) and poisons the mapping: the file is given up.
        self.check_poisoned()?;
        self.check_file(signal, now);
        if let Some(e) = &self.restart_failed {
            return Err(e.clone().into());
        }
        // Batches of a stream the writer started over from come first.
        if signal == Signal::Traces {
            self.skip_delivered_spans();
        }
        self.take_queued(signal);
        // A restart not followed yet (the new stream cannot be opened yet):
        // the rings may hold the new writer's records, which the old
        // stream must not read. Only a batch already made is handed out.
        if self.pending[signal as usize].is_none() && self.change != FileChange::Restarted {
            let made = match signal {
                Signal::Traces => self.poll_traces(now),
                Signal::Logs => self.poll_logs(now),
                Signal::Metrics => {
                    if !self.measurements_stopped {
                        self.ingest_measurements(now);
                    }
                    None
                }
            };
            self.pending[signal as usize] = made;
        }
        self.flatten_pending(signal);
        self.check_poisoned()?;
        Ok(self.pending[signal as usize].as_ref().map(|p| Batch {
            bytes: if p.flat.is_empty() { &p.bytes } else { &p.flat },
            token: p.token,
            items: p.items,
        }))
    }

    /// Marks the signal's pending batch as accepted by the pipeline.
    pub fn commit(&mut self, signal: Signal, token: u64) -> Result<(), ReaderError> {
        let (release, items) = match &self.pending[signal as usize] {
            Some(p) if p.token == token => (p.release, p.items),
            _ => return Err(ReaderError::Token { signal, got: token }),
        };
        if let Some(mut done) = self.pending[signal as usize].take() {
            self.recycle(done.bytes);
            self.recycle(done.flat);
            if done.spans.capacity() > 0 {
                self.assembler.give_back(&mut done.spans);
                self.spare_spans = done.spans;
            }
        }
        self.note_delivered(signal, items);
        if let Some((generation, seq)) = release
            && generation == self.stream.generation
            && self.options.consume
        {
            self.check_poisoned()?;
            if self.stream.release_to(signal as usize, seq).is_err() {
                // reader_index moved under us: the writer started over in
                // place. The batch was delivered; the next poll switches to
                // the new stream.
                self.change = FileChange::Restarted;
            }
        }
        Ok(())
    }

    /// Snapshots the metric aggregates into the pending metrics batch.
    pub fn collect_metrics(&mut self, now: u64) -> CollectOutcome {
        if self.pending[Signal::Metrics as usize].is_some() {
            return CollectOutcome::Busy;
        }
        if self.check_poisoned().is_err() {
            // The file shrank: its aggregates are lost with it.
            return CollectOutcome::Nothing;
        }
        // As a poll: a writer that started over is followed first (which
        // collects the old stream's aggregates into a batch of their own);
        // the batches of old streams go before this collection.
        self.check_file(Signal::Metrics, now);
        self.take_queued(Signal::Metrics);
        if self.pending[Signal::Metrics as usize].is_some() {
            return CollectOutcome::Busy;
        }
        if self.change != FileChange::Restarted {
            self.ingest_measurements(now);
        }
        self.collect_aggregates(now)
    }

    /// What [`collect_metrics`](Self::collect_metrics) does after reading
    /// the measurements ring: the aggregates as they are, into a pending batch.
    fn collect_aggregates(&mut self, now: u64) -> CollectOutcome {
        self.consumed_at_collect = self.records_consumed(Signal::Metrics);
        let mut bytes = self.spare.pop().unwrap_or_default();
        let s = &mut self.stream;
        match self
            .aggregator
            .collect(&s.file, &mut s.dict, now, &mut bytes)
        {
            Some(points) => {
                self.note_collection(now);
                let token = self.token();
                self.pending[Signal::Metrics as usize] =
                    Some(Pending::request(bytes, token, points));
                CollectOutcome::Collected(points)
            }
            None => {
                self.recycle(bytes);
                CollectOutcome::Nothing
            }
        }
    }

    /// Gives up every in-flight span: they come out of the next traces polls
    /// as incomplete spans.
    pub fn abandon_spans(&mut self, now: u64) {
        self.assembler.give_up_all(now, GiveUpReason::Abandoned);
    }

    /// The Collector is stopping and keeps no state across its restart:
    /// gives up every span in flight with the reason `collector stopping`.
    /// They come out of the next traces polls as incomplete spans (the
    /// caller first drains the ring, so that a span whose end is there
    /// ends normally). From then on traces polls read no more span events:
    /// a span started later would be neither sent nor given up; the next
    /// reader reads them. Returns how many spans were given up.
    pub fn stop_spans(&mut self, now: u64) -> u64 {
        self.spans_stopped = true;
        let before = self.assembler.counters.incomplete;
        self.assembler
            .give_up_all(now, GiveUpReason::CollectorStopping);
        self.assembler.counters.incomplete - before
    }

    /// The Collector is stopping: metrics polls read no more measurements,
    /// so that none is aggregated after the last collection and lost with
    /// the reader; [`collect_metrics`](Self::collect_metrics) still reads
    /// the ring up to the moment it collects. What is not read stays in the
    /// ring for the next reader.
    pub fn stop_measurements(&mut self) {
        self.measurements_stopped = true;
    }

    /// Reads the measurements the ring holds into the aggregates, as
    /// [`collect_metrics`](Self::collect_metrics) does first, without
    /// collecting (also after [`stop_measurements`](Self::stop_measurements)):
    /// the measurements read show in the stats, so that a caller can tell
    /// whether any came since its last collection before it collects.
    pub fn read_measurements(&mut self, now: u64) {
        if self.check_poisoned().is_err() {
            return;
        }
        // As a poll: a writer that started over is followed first.
        self.check_file(Signal::Metrics, now);
        if self.change != FileChange::Restarted {
            self.ingest_measurements(now);
        }
    }

    /// The caller could not read a flat batch of `signal` (it drops it):
    /// the signal's string table starts over under a new epoch, and a
    /// pending batch is laid out again under it at the next poll.
    pub fn start_flat_over(&mut self, signal: Signal) {
        if signal == Signal::Metrics {
            return;
        }
        self.flat[signal as usize].start_over();
        // Laid out again at the next poll, if it is not committed first:
        // a traces batch's request is written only then.
        if let Some(p) = self.pending[signal as usize].as_mut() {
            let stale = std::mem::take(&mut p.flat);
            self.recycle(stale);
        }
    }

    /// Records taken from the signal's ring so far (decoded, or skipped as
    /// corrupt or abandoned), in every stream of the file: a caller sees
    /// progress without a batch by comparing it; it never goes back.
    pub fn records_consumed(&self, signal: Signal) -> u64 {
        self.stats.records_read[signal as usize]
            + self.stats.corrupt_records[signal as usize]
            + self.stats.abandoned_slots[signal as usize]
            + self.stream.rings[signal as usize].abandoned()
    }

    /// Looks at the writer's liveness lock now (one `fcntl`), as every poll
    /// does now and then, for a caller that does not poll an idle file.
    /// Returns true when this call found the writer gone (it was not known
    /// to be): the next traces poll then gives up the spans in flight.
    pub fn check_writer(&mut self) -> bool {
        if self.writer_gone || !self.options.consume {
            return false;
        }
        self.writer_gone = self.stream.file.writer_state() == WriterState::Gone;
        self.writer_gone
    }

    /// Current counters.
    pub fn stats(&self) -> ReaderStats {
        let mut st = self.stats;
        let region = self.stream.file.region();
        // A shrunk file's ring headers may read as zeros: no gauge from them.
        let intact = self.check_poisoned().is_ok();
        for (i, ring) in self.stream.rings.iter().enumerate() {
            st.ring_capacity[i] = ring.geometry().num_buffers;
            st.ring_unread[i] = if intact { ring.unreleased(region) } else { 0 };
            st.abandoned_slots[i] += ring.abandoned();
        }
        let c = self.assembler.counters;
        st.incomplete_spans = c.incomplete;
        st.orphan_span_events = c.orphan_events;
        st.invalid_span_ids = c.invalid_ids;
        st.duplicate_span_starts = c.duplicate_starts;
        st.span_limit_drops = c.limit_drops;
        st.oversized_records[Signal::Traces as usize] = c.oversized_events;
        st.in_flight_spans = self.assembler.in_flight() as u64;
        let mut retired = self.retired;
        retired.add(&self.stream.dict, self.aggregator.counters);
        st.bad_refs = retired.bad_refs;
        st.dictionary_cache_clears = retired.cache_clears;
        st.metric_overflows = retired.metrics.overflows;
        st.unknown_metric_measurements = retired.metrics.unknown_metric;
        st.measurements_without_value = retired.metrics.no_value;
        st.measurements_over_metric_limit = retired.metrics.too_many_metrics;
        st.measurements_lost_at_restart = self.measurements_lost_at_restart;
        st.writer_alive = if self.writer_gone || self.gone_from_path() {
            0
        } else if matches!(self.stream.file.writer_state_cached(), WriterState::Alive) {
            1
        } else {
            -1
        };
        st.finished = self.gone_from_path()
            && self.pending.iter().all(Option::is_none)
            && self.assembler.in_flight() == 0
            && self.assembler.completed_len() == 0
            && self.queued.iter().all(VecDeque::is_empty);
        st
    }

    /// The file was removed, or replaced by another writer's file.
    fn gone_from_path(&self) -> bool {
        matches!(self.change, FileChange::Removed | FileChange::Replaced)
    }

    /// Fails once the SIGBUS guard replaced a page of the mapping.
    fn check_poisoned(&self) -> Result<(), FormatError> {
        // While a restart is not followed the rings are not read, so a
        // truncation would touch no vanished page: the length is checked.
        if self.stream.file.region().poisoned()
            || (self.change == FileChange::Restarted && self.stream.file.shrunk())
        {
            return Err(FormatError::Shrunk);
        }
        Ok(())
    }

    /// How the rings treat slots claimed and not published.
    fn stranded_policy(&self) -> StrandedSlots {
        if self.writer_gone {
            StrandedSlots::WriterDead
        } else {
            StrandedSlots::SkipAfter {
                timeout_nanos: self.options.stuck_slot_timeout_nanos,
            }
        }
    }

    /// With [`ReaderOptions::flat_handoff`], puts the signal's pending
    /// traces or logs batch in the flat layout, from its request, if it is
    /// not yet (a batch restored from a checkpoint, or to lay out again; a
    /// traces batch handed out flat gets its request first if it has none).
    fn flatten_pending(&mut self, signal: Signal) {
        if !self.options.flat_handoff || signal == Signal::Metrics {
            return;
        }
        if signal == Signal::Traces
            && self.pending[signal as usize]
                .as_ref()
                .is_some_and(|p| p.flat.is_empty())
        {
            self.encode_pending_spans();
        }
        let Some(p) = self.pending[signal as usize].as_mut() else {
            return;
        };
        if p.flat.is_empty() {
            let mut out = self.spare.pop().unwrap_or_default();
            self.flat[signal as usize].write(signal, &p.bytes, &mut out);
            p.flat = out;
        }
    }

    /// Keeps the buffer of a batch for the next one (up to
    /// [`SPARE_BUFFERS`] of them).
    fn recycle(&mut self, mut bytes: Vec<u8>) {
        encode::reuse(&mut bytes, encode::KEEP_MAX);
        if self.spare.len() < SPARE_BUFFERS && bytes.capacity() > 0 {
            self.spare.push(bytes);
        }
    }

    fn token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    /// Notices a writer that started over, went away, or a removed file,
    /// before `signal`'s ring is read.
    fn check_file(&mut self, signal: Signal, now: u64) {
        if !self.options.consume {
            return;
        }
        // A writer that starts over in place rewrites the start time and
        // resets the rings, in an order the format leaves open. Both are
        // checked at every poll (an atomic load each), before the ring is
        // read: no record of the new stream is read as the old stream's, and
        // a stream opened between the two (at the old stream's position,
        // where the new writer's sequences may never come) is opened again
        // once the ring is reset.
        if self.change == FileChange::None
            && (self.stream.file.start_time_changed()
                || self.stream.rings[signal as usize].reader_index_moved(self.stream.file.region()))
        {
            self.change = FileChange::Restarted;
        }
        if self.change == FileChange::Restarted {
            self.switch_stream(now);
            if self.change == FileChange::Restarted {
                return;
            }
        }
        if self
            .last_check
            .is_some_and(|t| now.saturating_sub(t) < CHECK_INTERVAL_NANOS)
        {
            return;
        }
        self.last_check = Some(now);
        // Another file at the path, or none, is another writer's stream: this
        // reader only drains the old one, and the caller opens the new file
        // with a reader of its own. (A restart in place was handled above.)
        if self.change == FileChange::None {
            self.change = self.stream.file.file_change();
        }
        if self.stream.file.writer_state() == WriterState::Gone {
            self.writer_gone = true;
        }
    }

    fn switch_stream(&mut self, now: u64) {
        let generation = self.stream.generation + 1;
        let next = match self.stream.reopen(&self.options, generation) {
            Ok(next) => next,
            Err(e) => {
                // The new file is not readable yet (still being initialised):
                // tried again at the next check, and given up once it stayed
                // unreadable for RESTART_FOLLOW_TIMEOUT_NANOS (a file this
                // reader cannot read: another version, too large), so that
                // the file is not waited on for ever in silence.
                let since = *self.restart_unfollowed_since.get_or_insert(now);
                if now.saturating_sub(since) >= RESTART_FOLLOW_TIMEOUT_NANOS {
                    self.restart_failed = Some(e);
                }
                return;
            }
        };
        self.restart_unfollowed_since = None;
        // Nothing more is read from the old stream: once the start time
        // changed, a record in the rings may be the new writer's, which the
        // old stream's dictionary would misread (and the new stream, which
        // starts at the rings' released position, would read it again).
        // Spans still open in the old stream will never end.
        self.assembler
            .give_up_all(now, GiveUpReason::WriterRestarted);
        // The old stream's measurements since its last collection (not
        // those of streams before it).
        let consumed = self.records_consumed(Signal::Metrics);
        let measurements_since_collection =
            consumed.saturating_sub(self.consumed_at_collect.max(self.consumed_at_stream_start));
        // The old stream's aggregates and completed spans name its scopes,
        // resources and metrics: encoded now, with its dictionary cache, into
        // batches (see `queued_batches.rs`).
        if !self.queue_old_aggregates(now) {
            // No room: the measurements it read since its last collection
            // are lost.
            self.measurements_lost_at_restart += measurements_since_collection;
        }
        self.consumed_at_stream_start = consumed;
        self.queue_old_spans();
        self.retired
            .add(&self.stream.dict, self.aggregator.counters);
        for (i, ring) in self.stream.rings.iter().enumerate() {
            self.stats.abandoned_slots[i] += ring.abandoned();
        }
        // A stream opened again because its rings were reset after its
        // start time changed is the same restart.
        if next.file.start_time_unix_nano() != self.stream.file.start_time_unix_nano() {
            self.stats.writer_restarts += 1;
        }
        self.stream = next;
        self.aggregator = MetricAggregator::with_max_bytes(
            self.options.metric_cardinality_limit,
            self.stream.file.start_time_unix_nano(),
            self.options.max_metric_bytes,
        );
        self.change = FileChange::None;
        self.writer_gone = false;
        // The new stream's writer is watched afresh: the old one's
        // presumption (gone) says nothing of it.
        self.unlocked = None;
    }

    fn poll_traces(&mut self, now: u64) -> Option<Pending> {
        if self.spans_stopped {
            return self.encode_traces();
        }
        let ring_empty = self.ingest_spans(now);
        // While spans an earlier reader delivered are skipped, none is given
        // up for its age: that would put it in another place of the order
        // the skip counts (the window ends once they are read again).
        if self.delivery.skipping() == 0 {
            self.assembler.expire(now);
        }
        if ring_empty
            && (self.writer_gone || self.gone_from_path())
            && self.assembler.in_flight() > 0
        {
            self.assembler.give_up_all(now, GiveUpReason::WriterGone);
        }
        self.encode_traces()
    }

    /// Reads span events until a batch is complete or the ring is empty.
    /// Returns whether the ring was found empty.
    fn ingest_spans(&mut self, now: u64) -> bool {
        let max_batch = self.options.max_batch_spans;
        let policy = self.stranded_policy();
        let s = &mut self.stream;
        let i = Signal::Traces as usize;
        let mut empty = false;
        for _ in 0..INGEST_BUDGET {
            if self.assembler.completed_len() >= max_batch
                || self.assembler.completed_bytes() >= self.options.max_batch_bytes
            {
                break;
            }
            match s.rings[i].peek(s.file.region()) {
                Slot::Empty if s.rings[i].skip_abandoned(s.file.region(), now, policy) => continue,
                Slot::Empty => {
                    empty = true;
                    break;
                }
                Slot::Ready([]) => self.stats.corrupt_records[i] += 1,
                Slot::Ready(bytes) => match SpanEventView::parse(bytes) {
                    Ok(ev) => {
                        self.stats.records_read[i] += 1;
                        self.assembler.apply(&s.file, &mut s.dict, &ev, now);
                    }
                    Err(_) => self.stats.corrupt_records[i] += 1,
                },
                Slot::Corrupt(_) => self.stats.corrupt_records[i] += 1,
            }
            s.rings[i].advance();
        }
        if self.options.consume && !self.hold_until_checkpoint && s.release(i).is_err() {
            // The events are in the assembler's memory now; reader_index moved
            // under us: the writer started over.
            self.change = FileChange::Restarted;
        }
        empty
    }

    fn encode_traces(&mut self) -> Option<Pending> {
        self.skip_delivered_spans();
        let s = &mut self.stream;
        let (dict, max_spans) = (&mut s.dict, self.options.max_batch_spans);
        if self.options.flat_handoff {
            // The flat batch is written from the spans; their request only
            // if it is needed (see `encode_pending_spans`).
            let mut flat = self.spare.pop().unwrap_or_default();
            let mut spans = std::mem::take(&mut self.spare_spans);
            let items = self.assembler.flat_completed(
                max_spans,
                self.options.max_batch_bytes,
                &s.file,
                dict,
                &mut self.request,
                &mut self.flat[Signal::Traces as usize],
                &mut flat,
                &mut spans,
            );
            if items == 0 {
                self.recycle(flat);
                self.spare_spans = spans;
                return None;
            }
            // The batch stays grouped for its request; the last one's
            // grouping (if it had no request) is forgotten.
            std::mem::swap(&mut self.request, &mut self.spans_request);
            self.request.finish();
            let token = self.token();
            return Some(Pending {
                bytes: Vec::new(),
                token,
                items: items as u64,
                release: None,
                flat,
                spans,
            });
        }
        let mut bytes = self.spare.pop().unwrap_or_default();
        let items = self.assembler.encode_completed(
            max_spans,
            self.options.max_batch_bytes,
            &s.file,
            dict,
            &mut self.request,
            &mut bytes,
        );
        if items == 0 {
            self.recycle(bytes);
            return None;
        }
        let token = self.token();
        Some(Pending::request(bytes, token, items as u64))
    }

    /// Writes the export request of the pending traces batch if it was
    /// handed out flat without it (the checkpoint keeps it, a batch laid out
    /// again is laid out from it): from its spans, grouped as when they
    /// were laid out (`spans_request`), whatever stream is current now.
    fn encode_pending_spans(&mut self) {
        let Some(p) = self.pending[Signal::Traces as usize].as_mut() else {
            return;
        };
        if p.bytes.is_empty() && !p.spans.is_empty() {
            p.bytes = self.spare.pop().unwrap_or_default();
            encode_spans(&p.spans, &mut self.spans_request, &mut p.bytes);
        }
    }

    fn poll_logs(&mut self, now: u64) -> Option<Pending> {
        let i = Signal::Logs as usize;
        let policy = self.stranded_policy();
        let s = &mut self.stream;
        self.log_arena.clear();
        self.log_fields.clear();
        let mut items = 0u64;
        let mut batch_bytes = 0usize;
        let mut advanced = false;
        for _ in 0..self.options.max_batch_logs {
            if batch_bytes >= self.options.max_batch_bytes {
                break;
            }
            match s.rings[i].peek(s.file.region()) {
                Slot::Empty if s.rings[i].skip_abandoned(s.file.region(), now, policy) => {
                    advanced = true;
                    continue;
                }
                Slot::Empty => break,
                Slot::Ready([]) => self.stats.corrupt_records[i] += 1,
                Slot::Ready(bytes) => match EventView::parse(bytes) {
                    Ok(ev) => {
                        self.stats.records_read[i] += 1;
                        s.dict.begin_record(self.options.max_record_bytes);
                        let at = self.log_arena.len();
                        // With the flat hand-off, what the record holds is
                        // noted for its flat layout.
                        let fields = if self.options.flat_handoff {
                            Some(encode_log_record_fields(
                                &s.file,
                                &mut s.dict,
                                &ev,
                                now,
                                &mut self.log_arena,
                            ))
                        } else {
                            encode_log_record(&s.file, &mut s.dict, &ev, now, &mut self.log_arena);
                            None
                        };
                        let cost = s.dict.end_record();
                        if cost.over_budget {
                            self.log_arena.truncate(at);
                            self.stats.oversized_records[i] += 1;
                        } else {
                            batch_bytes += cost.bytes + bytes.len();
                            // The item is the record's place in the arena,
                            // or in `log_fields`.
                            let item = match fields {
                                Some(f) => {
                                    self.log_fields.push((at, f));
                                    self.log_fields.len() - 1
                                }
                                None => at,
                            };
                            self.request
                                .push(ev.scope_ref, item, self.log_arena.len() - at);
                            items += 1;
                        }
                    }
                    Err(_) => self.stats.corrupt_records[i] += 1,
                },
                Slot::Corrupt(_) => self.stats.corrupt_records[i] += 1,
            }
            s.rings[i].advance();
            advanced = true;
        }
        let last = s.rings[i].next_sequence().wrapping_sub(1);
        if items == 0 {
            if advanced && self.options.consume && s.release(i).is_err() {
                // Only corrupt or abandoned slots: nothing to deliver, they
                // were given back now, unless the writer started over.
                self.change = FileChange::Restarted;
            }
            return None;
        }
        let mut out = self.spare.pop().unwrap_or_default();
        let (arena, fields) = (&self.log_arena, &self.log_fields);
        let flat_handoff = self.options.flat_handoff;
        let record_at = |item: usize| if flat_handoff { fields[item].0 } else { item };
        self.request.group(&s.file, &mut s.dict);
        self.request.write_request(&mut out, |item, len, out| {
            let at = record_at(item);
            out.extend_from_slice(&arena[at..at + len])
        });
        // With the flat hand-off, the flat batch is written from what the
        // records hold.
        let mut flat = Vec::new();
        if flat_handoff {
            flat = self.spare.pop().unwrap_or_default();
            self.flat[i].write_logs(
                &self.request,
                &out,
                arena,
                |item| &fields[item].1,
                &mut flat,
            );
        }
        self.request.finish();
        self.log_fields.clear();
        encode::reuse(&mut self.log_arena, encode::KEEP_MAX);
        let generation = s.generation;
        let token = self.token();
        Some(Pending {
            bytes: out,
            token,
            items,
            release: Some((generation, last)),
            flat,
            spans: Vec::new(),
        })
    }

    fn ingest_measurements(&mut self, now: u64) {
        self.ingest_measurements_upto(now, self.stranded_policy(), i64::MAX);
    }

    /// Aggregates measurements from the ring, up to the sequence `last`.
    fn ingest_measurements_upto(&mut self, now: u64, policy: StrandedSlots, last: i64) {
        let i = Signal::Metrics as usize;
        let s = &mut self.stream;
        for _ in 0..INGEST_BUDGET {
            if s.rings[i].next_sequence() > last {
                break;
            }
            match s.rings[i].peek(s.file.region()) {
                Slot::Empty if s.rings[i].skip_abandoned(s.file.region(), now, policy) => continue,
                Slot::Empty => break,
                Slot::Ready([]) => self.stats.corrupt_records[i] += 1,
                Slot::Ready(bytes) => {
                    s.dict.begin_record(self.options.max_record_bytes);
                    let decoded = self.aggregator.record_encoded(&s.file, &mut s.dict, bytes);
                    let cost = s.dict.end_record();
                    if !decoded {
                        self.stats.corrupt_records[i] += 1;
                    } else {
                        self.stats.records_read[i] += 1;
                        if cost.over_budget {
                            self.stats.oversized_records[i] += 1;
                        }
                    }
                }
                Slot::Corrupt(_) => self.stats.corrupt_records[i] += 1,
            }
            s.rings[i].advance();
        }
        if self.options.consume && !self.hold_until_checkpoint && s.release(i).is_err() {
            self.change = FileChange::Restarted;
        }
    }
}

#[cfg(test)]
mod flat_pending_tests;
