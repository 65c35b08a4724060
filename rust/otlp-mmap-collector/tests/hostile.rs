//! Hostile files against the collector crate's `FileReader` and aggregators
//! (GitHub issue 9): lengths and counts that claim a lot must not cost a lot,
//! ref cycles must end, and a file truncated under the reader must give
//! errors, not SIGBUS. Allocations are measured with a counting allocator.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use otlp_mmap_collector::exponential::ExponentialBuckets;
use otlp_mmap_collector::metrics::{MAX_HISTOGRAM_BOUNDS, MAX_METRICS};
use otlp_mmap_collector::{
    CollectOutcome, DictionaryCache, FileReader, MetricAggregator, ReaderOptions, Signal,
};
use otlp_mmap_core::proto::{self, any_value::Value};
use otlp_mmap_core::{FileConfig, MmapReader, MmapWriter, RingKind};
use otlp_mmap_test_support::{CountingAllocator, peak_live_bytes_during as peak_during};
use prost::Message;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The tests measure peaks of the one global allocator: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const MIB: usize = 1 << 20;

fn string(s: &str) -> proto::AnyValue {
    proto::AnyValue {
        value: Some(Value::StringValue(s.into())),
    }
}

fn value_ref(r: i64) -> proto::AnyValue {
    proto::AnyValue {
        value: Some(Value::ValueRef(r)),
    }
}

fn options() -> ReaderOptions {
    ReaderOptions {
        metric_cardinality_limit: 100,
        ..Default::default()
    }
}

fn big_dictionary() -> FileConfig {
    FileConfig {
        dictionary_max_size: 64 << 20,
        ..Default::default()
    }
}

/// The ref the next `append_entry` of `len` bytes will get, after the entry
/// at `prev` of `prev_len` bytes.
fn next_ref(prev: i64, prev_len: usize) -> i64 {
    prev + prost::length_delimiter_len(prev_len) as i64 + prev_len as i64
}

fn log_with_value(w: &MmapWriter, v: proto::AnyValue) {
    let ev = proto::Event {
        body: Some(string("hostile")),
        attributes: vec![proto::KeyValueRef {
            key_ref: w.intern_str("v").unwrap(),
            value: Some(v),
        }],
        ..Default::default()
    };
    w.try_write(RingKind::Events, &ev).unwrap();
}

fn poll_logs(r: &mut FileReader) -> ExportLogsServiceRequest {
    let b = r.poll(Signal::Logs, 1).unwrap().expect("a logs batch");
    let req = ExportLogsServiceRequest::decode(b.bytes).unwrap();
    let token = b.token;
    r.commit(Signal::Logs, token).unwrap();
    req
}

/// Value refs that refer to themselves or to each other end (as empty values).
#[test]
fn value_ref_cycles_end() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cycle.otlp");
    let w = MmapWriter::create(&path, &FileConfig::default()).unwrap();
    let dummy = b"dummy";
    let d = w.append_entry(dummy).unwrap();
    // A refers to itself.
    let a = next_ref(d, dummy.len());
    let a_bytes = value_ref(a).encode_to_vec();
    assert_eq!(w.append_entry(&a_bytes).unwrap(), a);
    // B -> C -> B.
    let b = next_ref(a, a_bytes.len());
    let mut c = b + 16;
    let b_bytes = loop {
        let bytes = value_ref(c).encode_to_vec();
        let want = next_ref(b, bytes.len());
        if want == c {
            break bytes;
        }
        c = want;
    };
    assert_eq!(w.append_entry(&b_bytes).unwrap(), b);
    assert_eq!(w.append_entry(&value_ref(b).encode_to_vec()).unwrap(), c);
    log_with_value(&w, value_ref(a));
    log_with_value(&w, value_ref(b));

    let mut r = FileReader::open(&path, options()).unwrap();
    let started = Instant::now();
    let req = poll_logs(&mut r);
    assert!(started.elapsed() < Duration::from_secs(5));
    let records: Vec<_> = req.resource_logs[0].scope_logs[0].log_records.clone();
    assert_eq!(records.len(), 2, "both records still arrive");
}

/// "Billion laughs": 6 levels of arrays of 64 refs to the level below: a
/// few KiB of dictionary describing 64^6 values. Resolving it stays within
/// the record budget: the records are dropped and counted as oversized, the
/// record after them arrives.
#[test]
fn multiplying_value_refs_are_cut_off() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("laughs.otlp");
    let w = MmapWriter::create(&path, &FileConfig::default()).unwrap();
    let mut level = w.intern_message(&string(&"x".repeat(100))).unwrap();
    for _ in 0..6 {
        let arr = proto::AnyValue {
            value: Some(Value::ArrayValue(proto::ArrayValue {
                values: (0..64).map(|_| value_ref(level)).collect(),
            })),
        };
        level = w.intern_message(&arr).unwrap();
    }
    log_with_value(&w, value_ref(level));
    log_with_value(&w, value_ref(level));
    log_with_value(&w, string("ordinary"));
    let copy = dir.path().join("laughs-copy.otlp");
    std::fs::copy(&path, &copy).unwrap();
    let mut r = FileReader::open(&path, options()).unwrap();
    let (req, peak) = peak_during(|| poll_logs(&mut r));
    // One record's budget (1 MiB) plus the cached levels below the cut.
    assert!(peak < 8 * MIB, "resolving took {} KiB", peak >> 10);
    let records = &req.resource_logs[0].scope_logs[0].log_records;
    assert_eq!(records.len(), 1, "only the ordinary record");
    assert_eq!(r.stats().oversized_records[Signal::Logs as usize], 2);
    // Without a record budget, the expansion limit cuts it off instead.
    let mut unbounded = FileReader::open(
        &copy,
        ReaderOptions {
            max_record_bytes: usize::MAX,
            max_batch_bytes: usize::MAX,
            ..options()
        },
    )
    .unwrap();
    let (req, peak) = peak_during(|| poll_logs(&mut unbounded));
    assert!(peak < 256 * MIB, "resolving took {} MiB", peak / MIB);
    assert_eq!(req.resource_logs[0].scope_logs[0].log_records.len(), 3);
    assert!(unbounded.stats().bad_refs > 0, "the cut-off is counted");
    // Ordinary refs still resolve in full.
    let dir2 = tempfile::tempdir().unwrap();
    let path2 = dir2.path().join("ok.otlp");
    let w2 = MmapWriter::create(&path2, &FileConfig::default()).unwrap();
    let s = w2.intern_message(&string("shared")).unwrap();
    let arr = proto::AnyValue {
        value: Some(Value::ArrayValue(proto::ArrayValue {
            values: (0..100).map(|_| value_ref(s)).collect(),
        })),
    };
    log_with_value(&w2, value_ref(w2.intern_message(&arr).unwrap()));
    let mut r2 = FileReader::open(&path2, options()).unwrap();
    let req = poll_logs(&mut r2);
    let attr = &req.resource_logs[0].scope_logs[0].log_records[0].attributes[0];
    let Some(opentelemetry_proto::tonic::common::v1::any_value::Value::ArrayValue(a)) =
        &attr.value.as_ref().unwrap().value
    else {
        panic!("{attr:?}")
    };
    assert_eq!(a.values.len(), 100);
    assert_eq!(r2.stats().bad_refs, 0);
}

/// A file whose histogram definition has `bounds` bucket bounds, measured
/// 200 times in 200 attribute sets.
fn histogram_file(dir: &std::path::Path, bounds: u32) -> std::path::PathBuf {
    let path = dir.join(format!("buckets-{bounds}.otlp"));
    let w = MmapWriter::create(&path, &big_dictionary()).unwrap();
    let def = proto::MetricRef {
        name: "huge".into(),
        aggregation: Some(proto::metric_ref::Aggregation::Histogram(
            proto::metric_ref::Histogram {
                aggregation_temporality: 2,
                bucket_boundaries: (0..bounds).map(f64::from).collect(),
            },
        )),
        ..Default::default()
    };
    let mref = w.intern_message(&def).unwrap();
    let key = w.intern_str("k").unwrap();
    for i in 0..200i64 {
        let m = proto::Measurement {
            metric_ref: mref,
            attributes: vec![proto::KeyValueRef {
                key_ref: key,
                value: Some(proto::AnyValue {
                    value: Some(Value::IntValue(i)),
                }),
            }],
            value: Some(proto::measurement::Value::AsDouble(i as f64 * 1000.0)),
            ..Default::default()
        };
        w.try_write(RingKind::Measurements, &m).unwrap();
    }
    path
}

/// A histogram definition with 100,000 bucket bounds (800 KB), measured in
/// 100 series: each series keeps at most MAX_HISTOGRAM_BOUNDS + 1 counts. A
/// definition with a million bounds (8 MB) is more than a record may cost:
/// its measurements are dropped and counted, the definition never decoded.
#[test]
fn huge_bucket_lists_are_capped() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = histogram_file(dir.path(), 100_000);
    let mut r = FileReader::open(&path, options()).unwrap();
    let (_, peak) = peak_during(|| {
        assert!(r.poll(Signal::Metrics, 1).unwrap().is_none());
    });
    // The definition is decoded once (800 KB of bounds, then cut to 4096);
    // 100 series of 4097 counts.
    assert!(peak < 16 * MIB, "aggregating took {} MiB", peak / MIB);
    assert!(matches!(r.collect_metrics(2), CollectOutcome::Collected(_)));
    let b = r.poll(Signal::Metrics, 2).unwrap().unwrap();
    let req = ExportMetricsServiceRequest::decode(b.bytes).unwrap();
    let Some(Data::Histogram(h)) = &req.resource_metrics[0].scope_metrics[0].metrics[0].data else {
        panic!()
    };
    assert_eq!(h.data_points.len(), 100, "cardinality limit 100");
    for p in &h.data_points {
        assert_eq!(p.explicit_bounds.len(), MAX_HISTOGRAM_BOUNDS);
        assert_eq!(p.bucket_counts.len(), MAX_HISTOGRAM_BOUNDS + 1);
    }
    // Values past the last kept bound count in the last bucket.
    let total: u64 = h
        .data_points
        .iter()
        .map(|p| p.bucket_counts.iter().sum::<u64>())
        .sum();
    assert_eq!(total, 200);

    let path = histogram_file(dir.path(), 1_000_000);
    let mut r = FileReader::open(&path, options()).unwrap();
    let (_, peak) = peak_during(|| {
        assert!(r.poll(Signal::Metrics, 1).unwrap().is_none());
    });
    assert!(peak < MIB, "dropping took {} KiB", peak >> 10);
    let st = r.stats();
    assert_eq!(st.records_read[Signal::Metrics as usize], 200);
    assert_eq!(st.oversized_records[Signal::Metrics as usize], 200);
    assert_eq!(st.unknown_metric_measurements, 0);
    assert_eq!(r.collect_metrics(2), CollectOutcome::Nothing);
}

/// Exponential histogram definitions claiming absurd sizes are clamped.
#[test]
fn exponential_histogram_claims_are_clamped() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for (max_buckets, max_scale) in [
        (i64::MAX, i64::MAX),
        (i64::MAX, i64::MIN),
        (i64::MIN, 0),
        (1, 20),
    ] {
        let (h, peak) = peak_during(|| {
            let mut h = ExponentialBuckets::new(max_buckets, max_scale);
            let mut v = 1e-300f64;
            while v < 1e300 {
                h.record(v);
                h.record(-v);
                v *= 1.001;
            }
            h
        });
        assert!((-10..=20).contains(&h.scale), "scale {}", h.scale);
        assert!(h.positive.counts.len() <= 16384);
        assert!(h.negative.counts.len() <= 16384);
        assert!(peak < 16 * MIB, "{} MiB", peak / MIB);
    }
}

/// More metric definitions than MAX_METRICS in one file: the rest are dropped
/// and counted, so the series of a file stay bounded.
#[test]
fn metrics_per_file_are_bounded() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.otlp");
    let w = MmapWriter::create(&path, &big_dictionary()).unwrap();
    let n = MAX_METRICS + 500;
    let refs: Vec<i64> = (0..n)
        .map(|i| {
            w.intern_message(&proto::MetricRef {
                name: format!("m{i}"),
                aggregation: Some(proto::metric_ref::Aggregation::Gauge(
                    proto::metric_ref::Gauge {},
                )),
                ..Default::default()
            })
            .unwrap()
        })
        .collect();
    let file = MmapReader::open(&path, false).unwrap();
    let mut dict = DictionaryCache::default();
    let mut agg = MetricAggregator::new(2000, 0);
    for r in refs {
        let m = proto::Measurement {
            metric_ref: r,
            value: Some(proto::measurement::Value::AsLong(1)),
            ..Default::default()
        };
        agg.record(&file, &mut dict, &m);
    }
    assert_eq!(agg.series_count(), MAX_METRICS);
    assert_eq!(agg.counters.too_many_metrics, 500);
}

/// A file truncated under the reader: no call kills the process (the SIGBUS
/// guard turns vanished pages into zeros); once the reader touched a vanished
/// page, every poll fails, and nothing read from the zeros is delivered.
#[test]
fn truncated_file_gives_errors_not_sigbus() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for len in [0u64, 64, 4096, 5_000_000] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.otlp");
        let w = MmapWriter::create(&path, &FileConfig::default()).unwrap();
        for _ in 0..3 {
            log_with_value(&w, string("v"));
        }
        let mut r = FileReader::open(&path, options()).unwrap();
        let token = r.poll(Signal::Logs, 1).unwrap().unwrap().token;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len)
            .unwrap();
        // The batch was delivered before the truncation: committing it is fine
        // whether or not it touches a vanished page.
        let _ = r.commit(Signal::Logs, token);
        let mut failed = false;
        for s in [Signal::Traces, Signal::Logs, Signal::Metrics] {
            let res = r.poll(s, 1_000_000_000);
            assert!(!failed || res.is_err(), "{s:?} after a failure, len {len}");
            failed |= res.is_err();
        }
        assert!(failed, "the truncation was noticed, len {len}");
        for s in [Signal::Traces, Signal::Logs, Signal::Metrics] {
            assert!(r.poll(s, 2_000_000_000).is_err(), "{s:?}, len {len}");
        }
        assert_eq!(r.collect_metrics(2_000_000_000), CollectOutcome::Nothing);
        r.abandon_spans(3_000_000_000);
        let st = r.stats();
        assert_eq!(st.ring_unread, [0, 0, 0]);
        drop(w);
    }
}

// ---------------------------------------------------------------------------
// Issue 12: bounded memory whatever the file holds. Each test documents its
// bound; heap is measured with the counting allocator, the mapping's pages
// with the process's RSS.

/// Resident set size of this process.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in kB");
    kib << 10
}

/// Polls every signal (committing each batch) until nothing moves; returns
/// the log records and spans delivered.
fn drain(
    r: &mut FileReader,
) -> (
    Vec<opentelemetry_proto::tonic::logs::v1::LogRecord>,
    Vec<opentelemetry_proto::tonic::trace::v1::Span>,
) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    let (mut logs, mut spans) = (Vec::new(), Vec::new());
    loop {
        let mut moved = false;
        if let Some(b) = r.poll(Signal::Logs, 1).unwrap() {
            let req = ExportLogsServiceRequest::decode(b.bytes).unwrap();
            let token = b.token;
            r.commit(Signal::Logs, token).unwrap();
            for rl in req.resource_logs {
                for sl in rl.scope_logs {
                    logs.extend(sl.log_records);
                }
            }
            moved = true;
        }
        if let Some(b) = r.poll(Signal::Traces, 1).unwrap() {
            let req = ExportTraceServiceRequest::decode(b.bytes).unwrap();
            let token = b.token;
            r.commit(Signal::Traces, token).unwrap();
            for rs in req.resource_spans {
                for ss in rs.scope_spans {
                    spans.extend(ss.spans);
                }
            }
            moved = true;
        }
        let before = r.records_consumed(Signal::Metrics);
        r.poll(Signal::Metrics, 1).unwrap();
        moved |= r.records_consumed(Signal::Metrics) != before;
        if !moved {
            return (logs, spans);
        }
    }
}

fn ordinary_log(w: &MmapWriter, i: i64) {
    let ev = proto::Event {
        body: Some(string("ordinary")),
        attributes: vec![proto::KeyValueRef {
            key_ref: w.intern_str("i").unwrap(),
            value: Some(proto::AnyValue {
                value: Some(Value::IntValue(i)),
            }),
        }],
        ..Default::default()
    };
    w.try_write(RingKind::Events, &ev).unwrap();
}

fn int_attr(log: &opentelemetry_proto::tonic::logs::v1::LogRecord) -> Option<i64> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as O;
    match log.attributes.first()?.value.as_ref()?.value {
        Some(O::IntValue(i)) => Some(i),
        _ => None,
    }
}

/// An 8 MiB string referenced by two records in three, as an event name, as
/// an attribute key and through a value ref. Bound: those records are
/// dropped and counted before anything is copied, so reading 3,000 records
/// peaks under 4 MiB of heap and grows RSS by under 16 MiB (the string's
/// pages are never touched), and the cache holds under 64 KiB; every
/// ordinary record arrives.
#[test]
fn a_multi_megabyte_string_in_every_record_is_dropped_not_copied() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big-string.otlp");
    let w = MmapWriter::create(&path, &big_dictionary()).unwrap();
    let big = "x".repeat(8 * MIB);
    let big_str = w.append_entry(big.as_bytes()).unwrap();
    let big_value = w.intern_message(&string(&big)).unwrap();
    drop(big);
    for i in 0..3000i64 {
        let ev = match i % 3 {
            0 => proto::Event {
                event_name_ref: big_str,
                ..Default::default()
            },
            1 => proto::Event {
                body: Some(value_ref(big_value)),
                attributes: vec![proto::KeyValueRef {
                    key_ref: big_str,
                    value: None,
                }],
                ..Default::default()
            },
            _ => {
                ordinary_log(&w, i);
                continue;
            }
        };
        w.try_write(RingKind::Events, &ev).unwrap();
    }
    drop(w);
    let mut r = FileReader::open(&path, options()).unwrap();
    let rss_before = rss();
    let ((logs, _), peak) = peak_during(|| drain(&mut r));
    let grown = rss().saturating_sub(rss_before);
    eprintln!(
        "big string: heap peak {} KiB, RSS +{} KiB",
        peak >> 10,
        grown >> 10
    );
    assert!(peak < 4 * MIB, "heap peak {} KiB", peak >> 10);
    assert!(grown < 16 * MIB, "RSS grew by {} KiB", grown >> 10);
    assert!(r.dictionary_cache().cached_bytes() < 64 << 10);
    let st = r.stats();
    assert_eq!(st.oversized_records[Signal::Logs as usize], 2000);
    assert_eq!(st.records_read[Signal::Logs as usize], 3000);
    let got: Vec<i64> = logs.iter().filter_map(int_attr).collect();
    let want: Vec<i64> = (0..3000).filter(|i| i % 3 == 2).collect();
    assert_eq!(got, want, "every ordinary record, in order");
}

/// A small xorshift generator: the tests' "random" refs, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Records whose every ref is random. Refs that point outside the
/// dictionary are counted at each use and never cached; refs that point
/// anywhere inside it cache at most one entry per dictionary byte. Bound:
/// the cache holds at most as many entries as the dictionary has bytes
/// (here under 8 KiB of entries), reading 4,000 such records peaks under
/// 4 MiB of heap, and the ordinary records arrive intact.
#[test]
fn random_refs_are_counted_not_cached() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("random.otlp");
    let w = MmapWriter::create(&path, &FileConfig::default()).unwrap();
    ordinary_log(&w, -1);
    let dict = w.layout().dictionary as i64;
    let dict_end = {
        let r = MmapReader::open(&path, false).unwrap();
        r.dictionary_header().unwrap().0
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Phase 1: refs outside the dictionary (before it, past its end, negative, huge).
    let outside = |rng: &mut Rng| -> i64 {
        match rng.next() % 4 {
            0 => (rng.next() % dict as u64) as i64 + 1,
            1 => dict_end + (rng.next() % (1 << 30)) as i64,
            2 => -((rng.next() >> 1) as i64) - 1,
            _ => (rng.next() >> 1) as i64 | (1 << 61),
        }
    };
    let hostile = |rng: &mut Rng, r: &dyn Fn(&mut Rng) -> i64| proto::Event {
        event_name_ref: r(rng),
        attributes: (0..16)
            .map(|_| proto::KeyValueRef {
                key_ref: r(rng),
                value: Some(value_ref(r(rng))),
            })
            .collect(),
        ..Default::default()
    };
    for i in 0..2000 {
        let ev = hostile(&mut rng, &outside);
        w.try_write(RingKind::Events, &ev).unwrap();
        if i % 10 == 0 {
            ordinary_log(&w, i);
        }
    }
    let mut r = FileReader::open(&path, options()).unwrap();
    let ((logs, _), peak) = peak_during(|| drain(&mut r));
    eprintln!("random refs outside: heap peak {} KiB", peak >> 10);
    assert!(peak < 4 * MIB, "heap peak {} KiB", peak >> 10);
    let st = r.stats();
    // Each use of each bad ref is counted: 1 event name + 16 keys + 16 values per record.
    assert_eq!(st.bad_refs, 2000 * 33);
    assert_eq!(logs.len(), 2000 + 201);
    let ordinary: Vec<i64> = logs.iter().filter_map(int_attr).collect();
    assert_eq!(ordinary.len(), 201);
    // Only the ordinary records' key ("i") is cached.
    assert_eq!(r.dictionary_cache().cached_entries(), 1);

    // Phase 2: refs anywhere inside the dictionary (into the middle of
    // entries, into its header, at its end).
    let inside = |rng: &mut Rng| dict + (rng.next() % (dict_end - dict + 1) as u64) as i64;
    for _ in 0..2000 {
        let ev = hostile(&mut rng, &inside);
        w.try_write(RingKind::Events, &ev).unwrap();
    }
    ordinary_log(&w, 7);
    let ((logs, _), peak) = peak_during(|| drain(&mut r));
    let cache = r.dictionary_cache();
    eprintln!(
        "random refs inside: heap peak {} KiB, cache {} entries / {} KiB",
        peak >> 10,
        cache.cached_entries(),
        cache.cached_bytes() >> 10
    );
    assert!(peak < 4 * MIB, "heap peak {} KiB", peak >> 10);
    assert!(cache.cached_entries() <= (dict_end - dict) as usize);
    assert!(
        cache.cached_bytes() < 8 * 1024 * 64,
        "{}",
        cache.cached_bytes()
    );
    assert_eq!(logs.last().and_then(int_attr), Some(7));
}

/// A span with 10,000 attributes at its start, 10,000 attribute updates
/// and 1,000 links, next to an ordinary span. Bound: it keeps the SDKs'
/// 128 attributes and 128 links and counts the rest in its dropped_*_count,
/// so reading it peaks under 4 MiB of heap; the ordinary span is intact.
/// With the attribute limit raised to 20,000 the same updates take the key
/// index (no quadratic upsert) and give the right values.
#[test]
fn ten_thousand_attributes_per_span_are_capped() {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as O;
    use proto::span_event::{AddLink, EndSpan, Event as SE, StartSpan, UpdateAttributes, add_link};
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attrs.otlp");
    let cfg = FileConfig {
        spans: otlp_mmap_core::RingConfig {
            num_buffers: 16,
            buffer_size: 256 << 10,
        },
        ..big_dictionary()
    };
    let w = MmapWriter::create(&path, &cfg).unwrap();
    let keys: Vec<i64> = (0..15_000)
        .map(|i| w.intern_str(&format!("k{i}")).unwrap())
        .collect();
    let attrs = |range: std::ops::Range<usize>, v: i64| -> Vec<proto::KeyValueRef> {
        range
            .map(|i| proto::KeyValueRef {
                key_ref: keys[i],
                value: Some(proto::AnyValue {
                    value: Some(Value::IntValue(v + i as i64)),
                }),
            })
            .collect()
    };
    let event = |id: u8, e: SE| proto::SpanEvent {
        trace_id: vec![1; 16],
        span_id: vec![id; 8],
        scope_ref: 0,
        event: Some(e),
    };
    let write = |e: proto::SpanEvent| w.try_write(RingKind::Spans, &e).unwrap();
    let write_all = |update: std::ops::Range<usize>| {
        write(event(
            1,
            SE::Start(StartSpan {
                name: "ordinary".into(),
                attributes: attrs(0..3, 0),
                ..Default::default()
            }),
        ));
        write(event(
            2,
            SE::Start(StartSpan {
                name: "wide".into(),
                attributes: attrs(0..10_000, 0),
                ..Default::default()
            }),
        ));
        write(event(
            2,
            SE::Attributes(UpdateAttributes {
                attributes: attrs(update, 1_000_000),
            }),
        ));
        write(event(
            2,
            SE::Link(AddLink {
                links: (0..1000)
                    .map(|i: u32| add_link::Link {
                        trace_id: vec![2; 16],
                        span_id: i.to_le_bytes().repeat(2),
                        ..Default::default()
                    })
                    .collect(),
            }),
        ));
        for id in [2, 1] {
            write(event(id, SE::End(EndSpan::default())));
        }
    };
    let int = |s: &opentelemetry_proto::tonic::trace::v1::Span, key: &str| {
        s.attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| match a.value.as_ref()?.value {
                Some(O::IntValue(i)) => Some(i),
                _ => None,
            })
    };

    write_all(0..10_000);
    let mut r = FileReader::open(&path, options()).unwrap();
    let ((_, spans), peak) = peak_during(|| drain(&mut r));
    eprintln!("10,000 attributes: heap peak {} KiB", peak >> 10);
    assert!(peak < 4 * MIB, "heap peak {} KiB", peak >> 10);
    assert_eq!(spans.len(), 2);
    let (wide, ordinary) = (&spans[0], &spans[1]);
    assert_eq!(
        (wide.name.as_str(), ordinary.name.as_str()),
        ("wide", "ordinary")
    );
    assert_eq!(ordinary.attributes.len(), 3);
    assert_eq!(ordinary.dropped_attributes_count, 0);
    assert_eq!(wide.attributes.len(), 128);
    // The start kept k0..k127; the update changed those and dropped the rest.
    assert_eq!(wide.dropped_attributes_count, 2 * (10_000 - 128));
    assert_eq!(int(wide, "k0"), Some(1_000_000));
    assert_eq!(int(wide, "k127"), Some(1_000_127));
    assert_eq!(int(wide, "k128"), None);
    assert_eq!(wide.links.len(), 128);
    assert_eq!(wide.dropped_links_count, 1000 - 128);
    let st = r.stats();
    assert_eq!(st.span_limit_drops, 2 * (10_000 - 128) + 1000 - 128);
    assert_eq!(st.oversized_records[Signal::Traces as usize], 0);

    // Raised limits: every attribute is kept, updates go through the index.
    drop(r);
    write_all(5_000..15_000);
    let mut r = FileReader::open(
        &path,
        ReaderOptions {
            max_span_attributes: 20_000,
            max_span_links: 2_000,
            max_record_bytes: 16 * MIB,
            ..options()
        },
    )
    .unwrap();
    let (_, spans) = drain(&mut r);
    let wide = &spans[0];
    assert_eq!(wide.attributes.len(), 15_000);
    assert_eq!(wide.dropped_attributes_count, 0);
    assert_eq!(int(wide, "k4999"), Some(4999), "not updated");
    assert_eq!(int(wide, "k5000"), Some(1_005_000), "updated");
    assert_eq!(int(wide, "k14999"), Some(1_014_999), "added");
    assert_eq!(wide.links.len(), 1000);
}

/// A span whose attribute values are larger than its byte budget keeps
/// what fits, drops the rest (counted), and the spans in flight together
/// stay under max_in_flight_span_bytes: the oldest are given up as
/// incomplete spans.
#[test]
fn span_bytes_are_bounded() {
    use proto::span_event::{EndSpan, Event as SE, StartSpan, UpdateAttributes};
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("span-bytes.otlp");
    let w = MmapWriter::create(&path, &big_dictionary()).unwrap();
    let half = w.intern_message(&string(&"h".repeat(600 << 10))).unwrap();
    let keys: Vec<i64> = (0..4)
        .map(|i| w.intern_str(&format!("k{i}")).unwrap())
        .collect();
    let event = |id: u64, e: SE| proto::SpanEvent {
        trace_id: vec![1; 16],
        span_id: id.to_le_bytes().to_vec(),
        scope_ref: 0,
        event: Some(e),
    };
    // Span 1: four 600 KiB values, one at a time: only the first fits 1 MiB.
    w.try_write(RingKind::Spans, &event(1, SE::Start(StartSpan::default())))
        .unwrap();
    for k in &keys {
        let e = SE::Attributes(UpdateAttributes {
            attributes: vec![proto::KeyValueRef {
                key_ref: *k,
                value: Some(value_ref(half)),
            }],
        });
        w.try_write(RingKind::Spans, &event(1, e)).unwrap();
    }
    w.try_write(RingKind::Spans, &event(1, SE::End(EndSpan::default())))
        .unwrap();
    // Spans 2..: each holds 600 KiB and never ends.
    for id in 2..20u64 {
        let e = SE::Start(StartSpan {
            attributes: vec![proto::KeyValueRef {
                key_ref: keys[0],
                value: Some(value_ref(half)),
            }],
            ..Default::default()
        });
        w.try_write(RingKind::Spans, &event(id, e)).unwrap();
    }
    let mut r = FileReader::open(
        &path,
        ReaderOptions {
            max_in_flight_span_bytes: 4 * MIB,
            ..options()
        },
    )
    .unwrap();
    let ((_, spans), peak) = peak_during(|| drain(&mut r));
    eprintln!("span bytes: heap peak {} KiB", peak >> 10);
    // In flight: at most 4 MiB; a batch: at most max_batch_bytes + one span.
    assert!(peak < 16 * MIB, "heap peak {} MiB", peak / MIB);
    let first = spans
        .iter()
        .find(|s| s.span_id == 1u64.to_le_bytes())
        .unwrap();
    assert_eq!(first.attributes.len(), 1);
    assert_eq!(first.dropped_attributes_count, 3);
    let st = r.stats();
    assert_eq!(st.oversized_records[Signal::Traces as usize], 3);
    // 18 spans of 600 KiB in 4 MiB: the oldest 12 given up, 6 in flight.
    assert_eq!(st.in_flight_spans, 6);
    assert_eq!(st.incomplete_spans, 12);
    assert_eq!(spans.len(), 13);
}

/// A million distinct string refs, each used once as an attribute key.
/// Bound: the cache never holds more than its 65,536 entries / 16 MiB (it is
/// cleared when full, counted), reading them peaks under 64 MiB of heap,
/// and every record arrives with the right keys.
#[test]
fn a_million_distinct_refs_keep_the_cache_bounded() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("million.otlp");
    let cfg = FileConfig {
        events: otlp_mmap_core::RingConfig {
            num_buffers: 2048,
            buffer_size: 2048,
        },
        ..big_dictionary()
    };
    let w = MmapWriter::create(&path, &cfg).unwrap();
    const N: usize = 1_000_000;
    const PER_RECORD: usize = 100;
    let refs: Vec<i64> = (0..N)
        .map(|i| w.append_entry(format!("s{i:07}").as_bytes()).unwrap())
        .collect();
    let mut r = FileReader::open(&path, options()).unwrap();
    let limits = ReaderOptions::default();
    let mut delivered = 0usize;
    let (_, peak) = peak_during(|| {
        for chunk in refs.chunks(PER_RECORD * 1000) {
            for rec in chunk.chunks(PER_RECORD) {
                let ev = proto::Event {
                    attributes: rec
                        .iter()
                        .map(|&key_ref| proto::KeyValueRef {
                            key_ref,
                            value: None,
                        })
                        .collect(),
                    ..Default::default()
                };
                w.try_write(RingKind::Events, &ev).unwrap();
            }
            let (logs, _) = drain(&mut r);
            for log in logs {
                let i = delivered * PER_RECORD;
                assert_eq!(log.attributes.len(), PER_RECORD);
                assert_eq!(log.attributes[0].key, format!("s{i:07}"));
                assert_eq!(
                    log.attributes[PER_RECORD - 1].key,
                    format!("s{:07}", i + PER_RECORD - 1)
                );
                delivered += 1;
            }
            let cache = r.dictionary_cache();
            assert!(cache.cached_entries() <= limits.dictionary_cache_max_entries);
            assert!(cache.cached_bytes() <= limits.dictionary_cache_max_bytes);
        }
    });
    assert_eq!(delivered, N / PER_RECORD);
    eprintln!(
        "1M refs: heap peak {} KiB, {} cache clears",
        peak >> 10,
        r.stats().dictionary_cache_clears
    );
    assert!(peak < 64 * MIB, "heap peak {} MiB", peak / MIB);
    let st = r.stats();
    assert_eq!(st.bad_refs, 0);
    assert!(st.dictionary_cache_clears >= (N / limits.dictionary_cache_max_entries) as u64);
}

/// A huge sparse file. Longer than max_mapped_bytes (a 1 TiB hole), it is
/// refused at open with an error naming the limit. Within it (64 MiB, with
/// the dictionary's end at the file's end and refs into every page of the
/// hole), the pages read are bounded by the file: RSS grows by under
/// max_mapped_bytes + 16 MiB. Another file keeps flowing meanwhile.
#[test]
fn a_huge_sparse_file_is_refused_or_bounded() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.otlp");
    let ow = MmapWriter::create(&other, &FileConfig::default()).unwrap();
    let mut other_reader = FileReader::open(&other, options()).unwrap();

    let path = dir.path().join("sparse.otlp");
    let w = MmapWriter::create(&path, &FileConfig::default()).unwrap();
    ordinary_log(&w, 1);
    let dictionary = w.layout().dictionary;
    let len0 = std::fs::metadata(&path).unwrap().len();
    const MAPPED: u64 = 64 << 20;
    // Refs into every page of what will be the hole.
    let refs: Vec<i64> = (len0.div_ceil(4096) * 4096..MAPPED - 4096)
        .step_by(4096)
        .map(|r| r as i64)
        .collect();
    for rec in refs.chunks(50) {
        let ev = proto::Event {
            attributes: rec
                .iter()
                .map(|&key_ref| proto::KeyValueRef {
                    key_ref,
                    value: None,
                })
                .collect(),
            ..Default::default()
        };
        w.try_write(RingKind::Events, &ev).unwrap();
    }
    drop(w);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();

    file.set_len(1 << 40).unwrap();
    let err = FileReader::open(&path, options()).unwrap_err();
    assert_eq!(
        err,
        otlp_mmap_core::FormatError::FileTooLarge {
            len: 1 << 40,
            max: 256 << 20
        }
    );
    assert!(err.to_string().contains("max_mapped_bytes"), "{err}");

    file.set_len(MAPPED).unwrap();
    // The dictionary's end at the file's end: every ref into the hole is "valid".
    use std::os::unix::fs::FileExt;
    file.write_all_at(&(MAPPED as i64).to_le_bytes(), dictionary)
        .unwrap();
    let opts = ReaderOptions {
        max_mapped_bytes: MAPPED as usize,
        ..options()
    };
    let mut r = FileReader::open(&path, opts).unwrap();
    let rss_before = rss();
    let (logs, _) = drain(&mut r);
    let grown = rss().saturating_sub(rss_before);
    eprintln!("sparse 64 MiB: RSS +{} KiB", grown >> 10);
    assert!(
        grown < MAPPED as usize + 16 * MIB,
        "RSS grew by {} MiB",
        grown / MIB
    );
    assert_eq!(logs.len(), 1 + refs.len().div_ceil(50));
    assert_eq!(int_attr(&logs[0]), Some(1));
    // Refs into zeros are empty strings; the cache stays within its bounds.
    assert!(r.dictionary_cache().cached_entries() <= 65_536);

    ordinary_log(&ow, 2);
    let (logs, _) = drain(&mut other_reader);
    assert_eq!(logs.iter().filter_map(int_attr).collect::<Vec<_>>(), [2]);
}
