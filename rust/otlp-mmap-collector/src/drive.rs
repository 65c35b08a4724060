//! Drives a [`FileReader`] over a whole file the way the Collector's receiver
//! does: `poll` and `commit` for every signal, `collect_metrics`, `stats`,
//! and at the end `abandon_spans`, until nothing moves. It is the production
//! path under the fuzz target (`fuzz/fuzz_targets/drive_file.rs`) and the
//! corpus replay test (`tests/fuzz_replay.rs`), so both exercise exactly what
//! the receiver runs, whatever the file holds.
//!
//! Each traces and logs batch also goes through a [`FlatWriter`] (the flat
//! hand-off of the Collector), whose tables live as long as the file.
//!
//! It panics (a finding) when the reader breaks a promise: a batch that is
//! not a valid OTLP request or does not hold the items it claims, a commit
//! of a stale token that is accepted, counters that do not add up, or a loop
//! that does not end within [`max_rounds`] rounds: every round that moves
//! takes at least one record out of a ring or one batch out of the reader,
//! and a ring yields each of its slots at most twice (once per flag
//! convention), so a file's rounds are bounded by its ring capacity.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use otlp_mmap_core::FormatError;
use prost::Message;

use crate::file_reader::{CollectOutcome, FileReader, ReaderOptions, ReaderStats, Signal};
use crate::flat::FlatWriter;

/// What one drive delivered.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DriveReport {
    /// Batches and items (spans, log records, data points) per signal.
    pub batches: [u64; 3],
    pub items: [u64; 3],
    /// Rounds until nothing moved.
    pub rounds: u64,
    pub stats: ReaderStats,
}

/// Options that make small files reach every limit: small batches, few
/// spans in flight, a small cache, small budgets.
pub fn tight_options() -> ReaderOptions {
    ReaderOptions {
        max_in_flight_spans: 8,
        max_batch_spans: 8,
        max_batch_logs: 8,
        metric_cardinality_limit: 4,
        dictionary_cache_max_entries: 16,
        dictionary_cache_max_bytes: 4096,
        max_record_bytes: 2048,
        max_batch_bytes: 4096,
        max_span_attributes: 4,
        max_span_links: 2,
        max_in_flight_span_bytes: 8192,
        max_metric_bytes: 16384,
        ..ReaderOptions::default()
    }
}

/// The most rounds a file with rings of `capacity` slots in all may take.
pub fn max_rounds(capacity: u64) -> u64 {
    4 * capacity + 64
}

/// Opens `path` with `options` and drives the reader until nothing moves
/// (see the module documentation). An error opening the file is returned;
/// an error later (the file went bad under the reader) ends the drive.
pub fn drive_file(path: &Path, options: ReaderOptions) -> Result<DriveReport, FormatError> {
    let mut r = FileReader::open(path, options)?;
    let capacity: u64 = r.stats().ring_capacity.iter().sum();
    let limit = max_rounds(capacity);
    let mut report = DriveReport::default();
    let mut now = otlp_mmap_core::now_unix_nano();
    let mut abandoned = false;
    // The flat hand-off of the same batches, file-long string tables and all.
    let mut flat = [FlatWriter::default(), FlatWriter::default()];
    let mut flat_out = Vec::new();
    loop {
        report.rounds += 1;
        assert!(
            report.rounds <= limit,
            "no end after {limit} rounds ({capacity} ring slots): {:?}",
            r.stats()
        );
        // Movement: records taken from a ring, or spans or log records out.
        // (A collection always has the cumulative series again.)
        let progress = |r: &FileReader, report: &DriveReport| {
            (
                [Signal::Traces, Signal::Logs, Signal::Metrics].map(|s| r.records_consumed(s)),
                report.batches[..2].to_vec(),
            )
        };
        let before = progress(&r, &report);
        let mut went_bad = false;
        for signal in [Signal::Traces, Signal::Logs, Signal::Metrics] {
            if signal == Signal::Metrics && r.collect_metrics(now) == CollectOutcome::Busy {
                panic!("a metrics batch is pending after it was committed");
            }
            match r.poll(signal, now) {
                Ok(Some(b)) => {
                    let (token, items, bytes) = (b.token, b.items, b.bytes.to_vec());
                    check_batch(signal, &bytes, items);
                    if signal != Signal::Metrics {
                        check_flat(&mut flat[signal as usize], signal, &bytes, &mut flat_out);
                    }
                    report.batches[signal as usize] += 1;
                    report.items[signal as usize] += items;
                    if r.commit(signal, token).is_err() {
                        went_bad = true;
                    }
                    assert!(
                        r.commit(signal, token).is_err(),
                        "a stale {signal:?} token was accepted"
                    );
                }
                Ok(None) => {}
                Err(_) => went_bad = true,
            }
        }
        let st = r.stats();
        check_stats(&st, &options);
        if went_bad {
            break;
        }
        if before != progress(&r, &report) {
            // Records came after the shutdown's abandon (a stuck slot was
            // skipped once its timeout passed): shut down again once idle.
            abandoned = false;
        } else {
            if abandoned {
                assert_eq!(st.in_flight_spans, 0, "spans left in flight after shutdown");
                break;
            }
            // Shutdown: spans still in flight come out as incomplete spans.
            r.abandon_spans(now);
            abandoned = true;
        }
        // Past the reader's check interval, so that its file checks and
        // span expiry run too.
        now += 1_000_000_000;
    }
    report.stats = r.stats();
    Ok(report)
}

/// Writes `bytes` to a fresh file in `dir` and drives it with
/// [`tight_options`] and then, on a second copy, the defaults: what the
/// fuzz target does with each input. Returns the second drive's report.
pub fn drive_bytes_in(dir: &Path, bytes: &[u8]) -> Result<DriveReport, FormatError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut result = Err(FormatError::Io("not driven".into()));
    for options in [tight_options(), ReaderOptions::default()] {
        let path = dir.join(format!(
            "otlp-mmap-drive-{}-{}.otlp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, bytes)?;
        result = drive_file(&path, options);
        let _ = std::fs::remove_file(&path);
    }
    result
}

/// A batch is a valid export request holding the items it claims, written
/// exactly as prost writes that request (what the reader encodes itself
/// agrees with the opentelemetry-proto structs field for field).
fn check_batch(signal: Signal, bytes: &[u8], items: u64) {
    fn decode<M: Message + Default>(signal: Signal, bytes: &[u8]) -> M {
        let m = M::decode(bytes).unwrap_or_else(|e| panic!("a {signal:?} batch decodes: {e}"));
        let again = m.encode_to_vec();
        let at = again.iter().zip(bytes).position(|(a, b)| a != b);
        assert!(
            again == bytes,
            "a {signal:?} batch is encoded as prost encodes it (first difference at {at:?} of {}; prost {:02x?}, reader {:02x?})",
            bytes.len(),
            &again[at.unwrap_or(0).saturating_sub(20)..again.len().min(at.unwrap_or(0) + 20)],
            &bytes[at.unwrap_or(0).saturating_sub(20)..bytes.len().min(at.unwrap_or(0) + 20)],
        );
        m
    }
    let found: u64 = match signal {
        Signal::Traces => decode::<ExportTraceServiceRequest>(signal, bytes)
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len() as u64)
            .sum(),
        Signal::Logs => decode::<ExportLogsServiceRequest>(signal, bytes)
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len() as u64)
            .sum(),
        Signal::Metrics => decode::<ExportMetricsServiceRequest>(signal, bytes)
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(|m| match &m.data {
                Some(Data::Sum(d)) => d.data_points.len(),
                Some(Data::Gauge(d)) => d.data_points.len(),
                Some(Data::Histogram(d)) => d.data_points.len(),
                Some(Data::ExponentialHistogram(d)) => d.data_points.len(),
                Some(Data::Summary(d)) => d.data_points.len(),
                None => 0,
            } as u64)
            .sum(),
    };
    assert!(items > 0, "an empty {signal:?} batch");
    assert_eq!(found, items, "{signal:?} batch items");
}

/// The flat writer takes every batch the reader makes: a flat batch, or the
/// OTLP request as it is.
fn check_flat(w: &mut FlatWriter, signal: Signal, bytes: &[u8], out: &mut Vec<u8>) {
    out.clear();
    w.write(signal, bytes, out);
    assert_eq!(&out[..4], crate::flat::MAGIC, "a {signal:?} flat batch");
    match out[4] {
        crate::flat::MODE_FLAT => {}
        crate::flat::MODE_OTLP => assert_eq!(&out[5..], bytes, "a {signal:?} batch as OTLP"),
        mode => panic!("a {signal:?} flat batch of mode {mode}"),
    }
}

/// Counters that must add up whatever the file held.
fn check_stats(st: &ReaderStats, options: &ReaderOptions) {
    for s in [Signal::Logs, Signal::Metrics] {
        let i = s as usize;
        assert!(
            st.oversized_records[i] <= st.records_read[i],
            "{s:?}: more oversized than read: {st:?}"
        );
    }
    assert!(
        st.in_flight_spans <= options.max_in_flight_spans as u64,
        "{} spans in flight",
        st.in_flight_spans
    );
}
