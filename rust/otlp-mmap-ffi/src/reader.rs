//! `om_reader_*`: the poll/commit reader over one file.

use std::ffi::{c_char, c_int};
use std::os::fd::BorrowedFd;

use otlp_mmap_collector::file_reader::{NotRemoved, RemoveOutcome};
use otlp_mmap_collector::{CollectOutcome, FileReader, ReaderError, ReaderOptions, Signal};
use otlp_mmap_core::FormatError;

use crate::handles;
use crate::status::*;

/// A reader of one OTLP-MMAP file (opaque).
pub struct OmReader {
    pub(crate) reader: FileReader,
    /// The last checkpoint taken (`om_reader_checkpoint`).
    checkpoint: Vec<u8>,
}

/// Reader settings; get the defaults with `om_reader_options_default`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct OmReaderOptions {
    /// Most spans kept in flight (default 100000); beyond it the oldest is emitted as incomplete.
    pub max_in_flight_spans: u64,
    /// Longest a span may stay open before it is emitted as incomplete (default 10 minutes).
    pub max_span_age_nanos: u64,
    /// Most spans per traces batch (default 1024).
    pub max_batch_spans: u64,
    /// Most log records per logs batch (default 1024).
    pub max_batch_logs: u64,
    /// Most series per metric (default 2000); the rest fold into the overflow series.
    pub metric_cardinality_limit: u64,
    /// How long a slot a live writer claimed may stay unpublished, with later
    /// slots published, before it is skipped as abandoned (default 2 s). A
    /// dead writer's claimed slots are skipped at once.
    pub stuck_slot_timeout_nanos: u64,
    /// Address space reserved for the file (default 256 MiB): a longer file
    /// is refused at open, and growth past it is not read.
    pub max_mapped_bytes: u64,
    /// Most entries in the dictionary cache (default 65536).
    pub dictionary_cache_max_entries: u64,
    /// Most bytes in the dictionary cache (default 16 MiB); when full it is cleared.
    pub dictionary_cache_max_bytes: u64,
    /// Most bytes of strings and values one record resolves to (default
    /// 1 MiB): a log record or measurement over it is dropped, a span drops
    /// the attributes and links past it; counted in `oversized_records`.
    pub max_record_bytes: u64,
    /// Most bytes of resolved strings and values per batch (default 3 MiB).
    pub max_batch_bytes: u64,
    /// Most attributes per span (default 128); the rest are dropped and counted.
    pub max_span_attributes: u64,
    /// Most links per span (default 128); the rest are dropped and counted.
    pub max_span_links: u64,
    /// Most bytes held by spans in flight (default 64 MiB); beyond it the
    /// oldest are emitted as incomplete spans.
    pub max_in_flight_span_bytes: u64,
    /// Most bytes held by metric aggregates (default 64 MiB); beyond it new
    /// series fold into the overflow series and new metrics are dropped.
    pub max_metric_bytes: u64,
    /// 1: hand traces and logs batches out in the flat layout (the
    /// collector crate's `flat` module) rather than as OTLP requests; 0
    /// (default): OTLP. Metrics batches are always OTLP. (A `u32`, not a
    /// `bool`: any value a C caller leaves in it is valid.)
    pub flat_handoff: u32,
}

/// One export request: OTLP protobuf bytes of an ExportTraceServiceRequest,
/// ExportLogsServiceRequest or ExportMetricsServiceRequest (with
/// `flat_handoff`, traces and logs in the flat layout). `data` belongs to
/// the reader and stays valid until the next poll or commit of the same
/// signal, or close.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct OmBatch {
    /// The encoded request, `len` bytes.
    pub data: *const u8,
    /// Length of `data` in bytes.
    pub len: usize,
    /// Pass to `om_reader_commit` once the pipeline accepted the batch.
    pub token: u64,
    /// Spans, log records or metric data points in the batch.
    pub items: u64,
    /// Records taken from the signal's ring so far (decoded or skipped as
    /// corrupt), set by every poll, `OM_EMPTY` included: a caller sees that a
    /// poll made progress without producing a batch by comparing it.
    pub records_consumed: u64,
}

impl Default for OmBatch {
    fn default() -> Self {
        OmBatch {
            data: std::ptr::null(),
            len: 0,
            token: 0,
            items: 0,
            records_consumed: 0,
        }
    }
}

/// Counters and gauges of one reader. Arrays are indexed by `OM_SIGNAL_*`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct OmStats {
    /// Slots per ring.
    pub ring_capacity: [u64; 3],
    /// Slots claimed by writers and not yet released by the reader.
    pub ring_unread: [u64; 3],
    /// Records decoded.
    pub records_read: [u64; 3],
    /// Slots skipped because they did not decode, or held an empty message
    /// (an all-zero slot).
    pub corrupt_records: [u64; 3],
    /// Slots a writer claimed and never published (it died, or stalled past
    /// the stuck-slot timeout), skipped.
    pub abandoned_slots: [u64; 3],
    /// Records over `max_record_bytes`: log records and measurements
    /// dropped; span events whose attributes or links were (partly) dropped.
    pub oversized_records: [u64; 3],
    /// Spans emitted as incomplete (never ended).
    pub incomplete_spans: u64,
    /// Spans started and not yet ended.
    pub in_flight_spans: u64,
    /// Span events for a span never seen starting.
    pub orphan_span_events: u64,
    /// Span events dropped because their trace or span id is not 16 / 8 bytes.
    pub invalid_span_ids: u64,
    /// StartSpan events for a span already in flight (the later one replaces it).
    pub duplicate_span_starts: u64,
    /// Span attributes and links dropped by the span limits.
    pub span_limit_drops: u64,
    /// Dictionary refs that could not be resolved.
    pub bad_refs: u64,
    /// Measurements folded into an overflow series.
    pub metric_overflows: u64,
    /// Measurements dropped because their metric definition did not resolve.
    pub unknown_metric_measurements: u64,
    /// Measurements dropped because they had no value the aggregation can take.
    pub measurements_without_value: u64,
    /// Measurements dropped because their file has too many metrics.
    pub measurements_over_metric_limit: u64,
    /// Measurements lost because the writer started over in place while the
    /// batches kept from its earlier streams filled their bound.
    pub measurements_lost_at_restart: u64,
    /// Times the dictionary cache was full and cleared.
    pub dictionary_cache_clears: u64,
    /// Times the writer started over.
    pub writer_restarts: u64,
    /// 1 alive, 0 gone (its lock was released or the file removed), -1 unknown.
    pub writer_alive: i32,
    /// 1 when the file was removed and everything in it has been delivered.
    pub finished: i32,
}

pub(crate) fn signal(s: i32) -> Result<Signal, Failure> {
    match s {
        OM_SIGNAL_TRACES => Ok(Signal::Traces),
        OM_SIGNAL_LOGS => Ok(Signal::Logs),
        OM_SIGNAL_METRICS => Ok(Signal::Metrics),
        _ => Err(Failure::new(OM_ERR_ARGUMENT, format!("unknown signal {s}"))),
    }
}

fn failure(e: ReaderError) -> Failure {
    match e {
        ReaderError::Token { .. } => Failure::new(OM_ERR_TOKEN, e.to_string()),
        ReaderError::Format(FormatError::Locked) => Failure::new(OM_ERR_LOCKED, e.to_string()),
        ReaderError::Format(_) => Failure::new(OM_ERR_IO, e.to_string()),
    }
}

fn to_usize(v: u64, default: usize) -> usize {
    if v == 0 {
        default
    } else {
        usize::try_from(v).unwrap_or(usize::MAX)
    }
}

/// Fills `out` with the default options.
///
/// # Safety
/// `out` is NULL (ignored) or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_options_default(out: *mut OmReaderOptions) {
    if out.is_null() {
        return;
    }
    let d = ReaderOptions::default();
    // SAFETY: non-NULL and valid for writes by the caller's contract.
    unsafe {
        *out = OmReaderOptions {
            max_in_flight_spans: d.max_in_flight_spans as u64,
            max_span_age_nanos: d.max_span_age_nanos,
            max_batch_spans: d.max_batch_spans as u64,
            max_batch_logs: d.max_batch_logs as u64,
            metric_cardinality_limit: d.metric_cardinality_limit as u64,
            stuck_slot_timeout_nanos: d.stuck_slot_timeout_nanos,
            max_mapped_bytes: d.max_mapped_bytes as u64,
            dictionary_cache_max_entries: d.dictionary_cache_max_entries as u64,
            dictionary_cache_max_bytes: d.dictionary_cache_max_bytes as u64,
            max_record_bytes: d.max_record_bytes as u64,
            max_batch_bytes: d.max_batch_bytes as u64,
            max_span_attributes: d.max_span_attributes as u64,
            max_span_links: d.max_span_links as u64,
            max_in_flight_span_bytes: d.max_in_flight_span_bytes as u64,
            max_metric_bytes: d.max_metric_bytes as u64,
            flat_handoff: d.flat_handoff.into(),
        }
    };
}

/// The reader settings from `options` (NULL: defaults; a zero field takes its default).
#[allow(unsafe_code)]
fn reader_options(options: *const OmReaderOptions) -> ReaderOptions {
    let d = ReaderOptions::default();
    // SAFETY: NULL or valid for reads by the caller's contract.
    let o = unsafe { options.as_ref() }.copied().unwrap_or_default();
    ReaderOptions {
        max_in_flight_spans: to_usize(o.max_in_flight_spans, d.max_in_flight_spans),
        max_span_age_nanos: if o.max_span_age_nanos == 0 {
            d.max_span_age_nanos
        } else {
            o.max_span_age_nanos
        },
        max_batch_spans: to_usize(o.max_batch_spans, d.max_batch_spans),
        max_batch_logs: to_usize(o.max_batch_logs, d.max_batch_logs),
        metric_cardinality_limit: to_usize(o.metric_cardinality_limit, d.metric_cardinality_limit),
        stuck_slot_timeout_nanos: if o.stuck_slot_timeout_nanos == 0 {
            d.stuck_slot_timeout_nanos
        } else {
            o.stuck_slot_timeout_nanos
        },
        consume: true,
        max_mapped_bytes: to_usize(o.max_mapped_bytes, d.max_mapped_bytes),
        dictionary_cache_max_entries: to_usize(
            o.dictionary_cache_max_entries,
            d.dictionary_cache_max_entries,
        ),
        dictionary_cache_max_bytes: to_usize(
            o.dictionary_cache_max_bytes,
            d.dictionary_cache_max_bytes,
        ),
        max_record_bytes: to_usize(o.max_record_bytes, d.max_record_bytes),
        max_batch_bytes: to_usize(o.max_batch_bytes, d.max_batch_bytes),
        max_span_attributes: to_usize(o.max_span_attributes, d.max_span_attributes),
        max_span_links: to_usize(o.max_span_links, d.max_span_links),
        max_in_flight_span_bytes: to_usize(o.max_in_flight_span_bytes, d.max_in_flight_span_bytes),
        max_metric_bytes: to_usize(o.max_metric_bytes, d.max_metric_bytes),
        flat_handoff: o.flat_handoff != 0,
    }
}

/// The path of an open call, once `out` is known to be non-NULL.
fn open_arguments<'a>(path: *const c_char, out: *mut *mut OmReader) -> Result<&'a str, Failure> {
    let path = c_str(path, "path")?;
    if out.is_null() {
        return Err(Failure::new(OM_ERR_NULL, "out is NULL"));
    }
    Ok(path)
}

/// Stores a newly opened reader in `*out`, or turns the open's error into a failure.
#[allow(unsafe_code)]
fn register_reader(
    opened: Result<FileReader, FormatError>,
    path: &str,
    out: *mut *mut OmReader,
) -> Result<i32, Failure> {
    let reader = opened.map_err(|e| match e {
        FormatError::Locked => Failure::new(OM_ERR_LOCKED, format!("{path}: {e}")),
        _ => Failure::new(OM_ERR_OPEN, format!("{path}: {e}")),
    })?;
    // SAFETY: `out` is non-NULL (checked by the callers) and valid for writes
    // by the caller's contract.
    unsafe {
        *out = handles::register(OmReader {
            reader,
            checkpoint: Vec::new(),
        })
    };
    Ok(OM_OK)
}

/// Opens the file at `path` (NUL-terminated UTF-8). `options` may be NULL
/// (defaults); a zero field takes its default. On success `*out` is the
/// handle, to be freed with `om_reader_close`.
///
/// # Safety
/// Pointers are NULL or valid for the call; `out` valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_open(
    path: *const c_char,
    options: *const OmReaderOptions,
    out: *mut *mut OmReader,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        let path = open_arguments(path, out)?;
        register_reader(FileReader::open(path, reader_options(options)), path, out)
    })
}

/// Reads the file open as `fd` (read-write), found at `path` (NUL-terminated
/// UTF-8; used in messages and to notice when the file is removed or
/// replaced). The caller opens and checks the file (for example with
/// `O_NOFOLLOW`, then `fstat` on the descriptor), so that nothing is opened
/// by path after its checks. The library duplicates `fd` (close-on-exec):
/// the caller keeps `fd` and closes it whenever it likes. Otherwise as
/// `om_reader_open`.
///
/// # Safety
/// `fd` is an open file descriptor for the duration of the call; pointers are
/// NULL or valid for the call; `out` valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_open_fd(
    fd: c_int,
    path: *const c_char,
    options: *const OmReaderOptions,
    out: *mut *mut OmReader,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        let path = open_arguments(path, out)?;
        if fd < 0 {
            return Err(Failure::new(
                OM_ERR_ARGUMENT,
                format!("fd {fd} is not a file descriptor"),
            ));
        }
        // SAFETY: `fd` is not -1 and is open for the duration of this call by
        // the caller's contract; the borrow does not outlive the call.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let file = borrowed
            .try_clone_to_owned()
            .map(std::fs::File::from)
            .map_err(|e| {
                Failure::new(
                    OM_ERR_OPEN,
                    format!("{path}: cannot duplicate fd {fd}: {e}"),
                )
            })?;
        register_reader(
            FileReader::open_file(file, path, reader_options(options)),
            path,
            out,
        )
    })
}

/// Returns the signal's pending batch in `*out` (`OM_OK`), reading more of its
/// ring first if none is pending, or `OM_EMPTY`. The same batch comes back
/// until it is committed. `now_unix_nano` is the caller's clock (used to age
/// in-flight spans). Bounded work; never blocks.
///
/// # Safety
/// `out` and `err` are NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_poll(
    reader: *mut OmReader,
    signal_: i32,
    now_unix_nano: u64,
    out: *mut OmBatch,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        let r = handles::get(reader)?;
        let sig = signal(signal_)?;
        if out.is_null() {
            return Err(Failure::new(OM_ERR_NULL, "out is NULL"));
        }
        let batch = r.reader.poll(sig, now_unix_nano).map_err(failure)?;
        let (code, mut b) = match batch {
            Some(b) => (
                OM_OK,
                OmBatch {
                    data: b.bytes.as_ptr(),
                    len: b.bytes.len(),
                    token: b.token,
                    items: b.items,
                    records_consumed: 0,
                },
            ),
            None => (OM_EMPTY, OmBatch::default()),
        };
        b.records_consumed = r.reader.records_consumed(sig);
        // SAFETY: `out` is non-NULL and valid for writes by the caller's contract.
        unsafe { *out = b };
        Ok(code)
    })
}

/// Marks the signal's pending batch (the one with `token`) as accepted. For
/// logs this is when the ring's `reader_index` advances. A token that is not
/// the pending batch's gives `OM_ERR_TOKEN`.
///
/// # Safety
/// `err` is NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_commit(
    reader: *mut OmReader,
    signal_: i32,
    token: u64,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        let r = handles::get(reader)?;
        r.reader.commit(signal(signal_)?, token).map_err(failure)?;
        Ok(OM_OK)
    })
}

/// Call when a flat traces or logs batch (`flat_handoff`) could not be
/// decoded: the signal's string table starts over under a new epoch, so that
/// later batches do not refer to strings the caller never got. The pending
/// batch, if any, is laid out again under the new table at the next poll
/// (commit it to drop it). Not needed on the good path; no effect on metrics.
///
/// # Safety
/// `err` is NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_flat_start_over(
    reader: *mut OmReader,
    signal_: i32,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        let r = handles::get(reader)?;
        r.reader.start_flat_over(signal(signal_)?);
        Ok(OM_OK)
    })
}

/// Snapshots the metric aggregates into a batch that the next
/// `OM_SIGNAL_METRICS` poll returns. `OM_EMPTY` when no series had data,
/// `OM_BUSY` when a metrics batch is pending (the previous one, not
/// committed yet, or one kept from a stream the writer started over from):
/// nothing was collected.
///
/// # Safety
/// `err` is NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_collect_metrics(
    reader: *mut OmReader,
    now_unix_nano: u64,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        let r = handles::get(reader)?;
        Ok(match r.reader.collect_metrics(now_unix_nano) {
            CollectOutcome::Collected(_) => OM_OK,
            CollectOutcome::Nothing => OM_EMPTY,
            CollectOutcome::Busy => OM_BUSY,
        })
    })
}

/// Gives up every in-flight span: they come out of the next traces polls as
/// incomplete spans.
///
/// # Safety
/// `err` is NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_abandon_spans(
    reader: *mut OmReader,
    now_unix_nano: u64,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        handles::get(reader)?.reader.abandon_spans(now_unix_nano);
        Ok(OM_OK)
    })
}

/// The Collector is stopping and keeps no state across its restart: gives
/// up every in-flight span with the reason `collector stopping` (attribute
/// `otlp_mmap.incomplete.reason`). They come out of the next traces polls as
/// incomplete spans and are counted in `incomplete_spans`; drain the ring
/// first, so that spans whose end is already there end normally.
/// `*given_up` (if not NULL) is set to the number of spans given up.
///
/// # Safety
/// `given_up` and `err` are NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_stop_spans(
    reader: *mut OmReader,
    now_unix_nano: u64,
    given_up: *mut u64,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        let n = handles::get(reader)?.reader.stop_spans(now_unix_nano);
        if !given_up.is_null() {
            // SAFETY: non-NULL and valid for writes by the caller's contract.
            unsafe { *given_up = n };
        }
        Ok(OM_OK)
    })
}

/// The Collector is stopping: metrics polls read no more measurements (a
/// measurement aggregated after the last collection would be lost with the
/// reader); `om_reader_collect_metrics` still reads the ring up to the moment
/// it collects. What is not read stays in the ring for the next reader.
///
/// # Safety
/// `err` is NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_stop_measurements(
    reader: *mut OmReader,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        handles::get(reader)?.reader.stop_measurements();
        Ok(OM_OK)
    })
}

/// Reads the measurements the ring holds into the metric aggregates, as
/// `om_reader_collect_metrics` does first, without collecting (also after
/// `om_reader_stop_measurements`). They count in the stats' records read, so
/// that a caller can tell whether any came since its last collection before
/// it collects.
///
/// # Safety
/// `err` is NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_read_measurements(
    reader: *mut OmReader,
    now_unix_nano: u64,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        handles::get(reader)?
            .reader
            .read_measurements(now_unix_nano);
        Ok(OM_OK)
    })
}

/// Removes the file from its path when its writer is gone (its liveness
/// lock was seen held, then released) and every record of the signals in
/// `signal_mask` (bit `1 << OM_SIGNAL_*` per signal) has been delivered:
/// rings empty, no batch waiting for its commit, no span in flight, metric
/// aggregates collected after the last measurement and committed. The
/// writer's lock and the path's identity (device, inode, start time) are
/// checked again just before the removal. `OM_OK`: removed (close the
/// reader next); `OM_BUSY`: kept, `err` says why; `OM_ERR_IO`: the removal
/// failed.
///
/// # Safety
/// `err` is NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_remove_if_drained(
    reader: *mut OmReader,
    signal_mask: u32,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        let r = handles::get(reader)?;
        if signal_mask & !0b111 != 0 {
            return Err(Failure::new(
                OM_ERR_ARGUMENT,
                format!("signal mask {signal_mask:#x} has unknown bits"),
            ));
        }
        let signals: Vec<Signal> = [Signal::Traces, Signal::Logs, Signal::Metrics]
            .into_iter()
            .filter(|s| signal_mask & (1 << *s as u32) != 0)
            .collect();
        match r.reader.remove_if_drained(&signals) {
            Ok(()) => Ok(OM_OK),
            Err(RemoveOutcome::Failed(kind)) => Err(Failure::new(
                OM_ERR_IO,
                format!("{}: cannot remove: {kind}", r.reader.path().display()),
            )),
            Err(RemoveOutcome::Kept(why)) => {
                let why = match why {
                    NotRemoved::NotConsuming => "the reader does not consume the file".to_string(),
                    NotRemoved::WriterNotKnownGone => {
                        "its writer is alive or not known to be gone".to_string()
                    }
                    NotRemoved::NotThisFile => "the path no longer leads to this file".to_string(),
                    NotRemoved::NotDrained(s) => format!("{s:?} not delivered yet"),
                };
                Err(Failure::new(OM_BUSY, why))
            }
        }
    })
}

/// Takes a checkpoint of the reader's state (spans in flight, completed
/// spans and batches not committed, metric aggregates with their start
/// times, the file's identity and ring positions) for the Collector's
/// storage. `*data`/`*len` are set to its bytes, which belong to the reader
/// and stay valid until the next checkpoint or close. It covers every span
/// event and measurement read so far; once it is stored, say so with
/// `om_reader_checkpoint_stored`.
///
/// # Safety
/// `data`, `len` and `err` are NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_checkpoint(
    reader: *mut OmReader,
    data: *mut *const u8,
    len: *mut usize,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        let r = handles::get(reader)?;
        if data.is_null() || len.is_null() {
            return Err(Failure::new(OM_ERR_NULL, "data or len is NULL"));
        }
        r.checkpoint = r.reader.checkpoint();
        // SAFETY: both non-NULL and valid for writes by the caller's contract.
        unsafe {
            *data = r.checkpoint.as_ptr();
            *len = r.checkpoint.len();
        }
        Ok(OM_OK)
    })
}

/// The last checkpoint taken (`om_reader_checkpoint`) is stored: the span
/// events and measurements it covers are given back to the writers (with
/// `om_reader_hold_until_checkpoint`).
///
/// # Safety
/// `err` is NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_checkpoint_stored(
    reader: *mut OmReader,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        handles::get(reader)?
            .reader
            .checkpoint_stored()
            .map_err(|e| failure(ReaderError::Format(e)))?;
        Ok(OM_OK)
    })
}

/// With `hold` non-zero, span events and measurements stay in their rings
/// once read until a checkpoint covering them was stored
/// (`om_reader_checkpoint_stored`), so that a crash loses nothing the last
/// stored checkpoint did not cover. The rings then hold what was read since.
///
/// # Safety
/// `err` is NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_hold_until_checkpoint(
    reader: *mut OmReader,
    hold: i32,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        handles::get(reader)?
            .reader
            .set_hold_until_checkpoint(hold != 0);
        Ok(OM_OK)
    })
}

/// Restores a checkpoint (`len` bytes at `data`, untrusted) into a reader
/// that has not read anything yet. `OM_OK`: restored; `OM_BUSY`: refused as a
/// whole (corrupt, another version, another file or an earlier writer of
/// it, rings moved since, too large), `err` says why, nothing changed.
/// `*refused` (if not NULL) is set to the spans and metrics of an accepted
/// checkpoint that did not fit the reader's limits and were dropped.
///
/// # Safety
/// `data` is valid for reads of `len` bytes (or NULL with `len` 0);
/// `refused` and `err` are NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_restore(
    reader: *mut OmReader,
    data: *const u8,
    len: usize,
    refused: *mut u64,
    err: *mut OmError,
) -> i32 {
    // SAFETY: the caller's contract is `apply_stored`'s.
    unsafe {
        apply_stored(reader, data, len, refused, err, |r, bytes| {
            r.restore(bytes)
                .map(|restored| restored.refused)
                .map_err(|e| e.to_string())
        })
    }
}

/// Hands the caller's stored bytes (`data`, `len`) to `apply` on the
/// reader; on success writes the count it returns to `count` (when not
/// NULL), on failure returns `OM_BUSY` with its message.
///
/// # Safety
/// `data` is valid for reads of `len` bytes (or NULL with `len` 0);
/// `count` and `err` are NULL or valid for writes.
#[allow(unsafe_code)]
unsafe fn apply_stored(
    reader: *mut OmReader,
    data: *const u8,
    len: usize,
    count: *mut u64,
    err: *mut OmError,
    apply: impl FnOnce(&mut FileReader, &[u8]) -> Result<u64, String>,
) -> i32 {
    guard(err, || {
        let r = handles::get(reader)?;
        // SAFETY: `data` is valid for reads of `len` bytes (or NULL with
        // `len` 0) by this function's contract.
        let bytes = unsafe { caller_bytes(data, len) }?;
        let n = apply(&mut r.reader, bytes).map_err(|e| Failure::new(OM_BUSY, e))?;
        if !count.is_null() {
            // SAFETY: non-NULL and valid for writes by this function's contract.
            unsafe { *count = n };
        }
        Ok(OM_OK)
    })
}

/// The caller's `len` bytes at `data` (empty when `len` is 0, whatever
/// `data` is); an error when `data` is NULL with a nonzero `len`.
///
/// # Safety
/// `data` is NULL or valid for reads of `len` bytes for `'a`.
#[allow(unsafe_code)]
unsafe fn caller_bytes<'a>(data: *const u8, len: usize) -> Result<&'a [u8], Failure> {
    if len == 0 {
        Ok(&[])
    } else if data.is_null() {
        Err(Failure::new(OM_ERR_NULL, "data is NULL"))
    } else {
        // SAFETY: non-NULL and valid for reads of `len` bytes by this
        // function's contract.
        Ok(unsafe { std::slice::from_raw_parts(data, len) })
    }
}

/// Room for a delivery marker (`om_reader_delivery_marker`), in bytes.
pub const OM_DELIVERY_MARKER_MAX_BYTES: usize = 64;
const _: () = assert!(
    OM_DELIVERY_MARKER_MAX_BYTES >= otlp_mmap_collector::file_reader::DELIVERY_MARKER_MAX_BYTES
);

/// Writes what the reader delivered since its last checkpoint (the delivery
/// marker, at most `OM_DELIVERY_MARKER_MAX_BYTES`) to `buf` (room for `cap`
/// bytes) and its length to `*len`, to store after each committed traces or
/// metrics batch beside the checkpoint: a restored reader then does not
/// emit again what it says was delivered (`om_reader_restore_delivered`).
/// `OM_ERR_ARGUMENT` if `cap` is too small.
///
/// # Safety
/// `buf` is valid for writes of `cap` bytes; `len` and `err` are NULL or
/// valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_delivery_marker(
    reader: *mut OmReader,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        let r = handles::get(reader)?;
        if buf.is_null() || len.is_null() {
            return Err(Failure::new(OM_ERR_NULL, "buf or len is NULL"));
        }
        let marker = r.reader.delivery_marker();
        if marker.len() > cap {
            return Err(Failure::new(
                OM_ERR_ARGUMENT,
                "buf is too small for the marker",
            ));
        }
        // SAFETY: `buf` is valid for writes of `cap` >= marker.len() bytes
        // and `len` for one write, by the caller's contract; the marker is
        // the reader's own vector, which does not overlap them.
        unsafe {
            std::ptr::copy_nonoverlapping(marker.as_ptr(), buf, marker.len());
            *len = marker.len();
        }
        Ok(OM_OK)
    })
}

/// Applies the delivery marker (`len` bytes at `data`, untrusted) stored
/// after the checkpoint just restored, before anything is polled: what it
/// says was delivered is not emitted again. `OM_OK`: applied, `*skipped`
/// (if not NULL) set to the spans it skips; `OM_BUSY`: refused (corrupt,
/// another checkpoint's, or the reader read since), `err` says why,
/// nothing changed.
///
/// # Safety
/// `data` is valid for reads of `len` bytes (or NULL with `len` 0);
/// `skipped` and `err` are NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_restore_delivered(
    reader: *mut OmReader,
    data: *const u8,
    len: usize,
    skipped: *mut u64,
    err: *mut OmError,
) -> i32 {
    // SAFETY: the caller's contract is `apply_stored`'s.
    unsafe {
        apply_stored(reader, data, len, skipped, err, |r, bytes| {
            r.restore_delivered(bytes)
                .map(|s| s.spans)
                .map_err(|e| e.to_string())
        })
    }
}

/// Whether the writer of a file whose liveness lock the reader never saw
/// held is presumed gone (it died before the reader opened the file): `*out`
/// is 1 when the lock is not held, the file's start time is at least
/// `grace_nanos` before `now_unix_nano`, and nothing was written to the
/// file nor read from it over `grace_nanos` of these calls (the first call
/// starts the watch), else 0. From then on the writer is handled as gone
/// (its spans in flight are given up once the ring is empty;
/// `om_reader_remove_if_drained` may remove the file).
///
/// # Safety
/// `out` and `err` are NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_writer_presumed_gone(
    reader: *mut OmReader,
    now_unix_nano: u64,
    grace_nanos: u64,
    out: *mut i32,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        let r = handles::get(reader)?;
        if out.is_null() {
            return Err(Failure::new(OM_ERR_NULL, "out is NULL"));
        }
        let gone = r.reader.writer_presumed_gone(now_unix_nano, grace_nanos);
        // SAFETY: `out` is non-NULL and valid for writes by the caller's contract.
        unsafe { *out = i32::from(gone) };
        Ok(OM_OK)
    })
}

/// Looks at the writer's liveness lock now (one `fcntl`), for a caller that
/// does not poll an idle reader (one parked with `om_watcher_park`): `*out`
/// is 1 when this call found the writer gone, which it was not known to be
/// (wake the reader: its next traces poll gives up the spans in flight),
/// else 0.
///
/// # Safety
/// `out` and `err` are NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_check_writer(
    reader: *mut OmReader,
    out: *mut i32,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        let r = handles::get(reader)?;
        if out.is_null() {
            return Err(Failure::new(OM_ERR_NULL, "out is NULL"));
        }
        let gone = r.reader.check_writer();
        // SAFETY: `out` is non-NULL and valid for writes by the caller's contract.
        unsafe { *out = i32::from(gone) };
        Ok(OM_OK)
    })
}

/// Fills `*out` with the reader's counters.
///
/// # Safety
/// `out` and `err` are NULL or valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_stats(
    reader: *mut OmReader,
    out: *mut OmStats,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        let r = handles::get(reader)?;
        if out.is_null() {
            return Err(Failure::new(OM_ERR_NULL, "out is NULL"));
        }
        let s = r.reader.stats();
        let st = OmStats {
            ring_capacity: s.ring_capacity,
            ring_unread: s.ring_unread,
            records_read: s.records_read,
            corrupt_records: s.corrupt_records,
            abandoned_slots: s.abandoned_slots,
            oversized_records: s.oversized_records,
            incomplete_spans: s.incomplete_spans,
            in_flight_spans: s.in_flight_spans,
            orphan_span_events: s.orphan_span_events,
            invalid_span_ids: s.invalid_span_ids,
            duplicate_span_starts: s.duplicate_span_starts,
            span_limit_drops: s.span_limit_drops,
            bad_refs: s.bad_refs,
            metric_overflows: s.metric_overflows,
            unknown_metric_measurements: s.unknown_metric_measurements,
            measurements_without_value: s.measurements_without_value,
            measurements_over_metric_limit: s.measurements_over_metric_limit,
            measurements_lost_at_restart: s.measurements_lost_at_restart,
            dictionary_cache_clears: s.dictionary_cache_clears,
            writer_restarts: s.writer_restarts,
            writer_alive: s.writer_alive,
            finished: s.finished as i32,
        };
        // SAFETY: `out` is non-NULL and valid for writes by the caller's contract.
        unsafe { *out = st };
        Ok(OM_OK)
    })
}

/// Frees the reader (releasing its lock and mapping); every batch it returned
/// becomes invalid. A NULL, closed or unknown handle gives `OM_ERR_HANDLE`.
///
/// # Safety
/// `reader` must not be in use by another thread.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_reader_close(reader: *mut OmReader) -> i32 {
    guard(std::ptr::null_mut(), || {
        handles::release(reader)?;
        Ok(OM_OK)
    })
}
