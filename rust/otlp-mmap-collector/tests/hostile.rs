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
/// few KiB of dictionary describing 64^6 values. Resolving it stays small.
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
    let mut r = FileReader::open(&path, options()).unwrap();
    let started = Instant::now();
    let (req, peak) = peak_during(|| poll_logs(&mut r));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(peak < 256 * MIB, "resolving took {} MiB", peak / MIB);
    assert_eq!(req.resource_logs[0].scope_logs[0].log_records.len(), 2);
    assert!(r.stats().bad_refs > 0, "the cut-off is counted");
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

/// A histogram definition with a million bucket bounds, measured in 100
/// series: each series keeps at most MAX_HISTOGRAM_BOUNDS + 1 counts.
#[test]
fn huge_bucket_lists_are_capped() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("buckets.otlp");
    let w = MmapWriter::create(&path, &big_dictionary()).unwrap();
    let def = proto::MetricRef {
        name: "huge".into(),
        aggregation: Some(proto::metric_ref::Aggregation::Histogram(
            proto::metric_ref::Histogram {
                aggregation_temporality: 2,
                bucket_boundaries: (0..1_000_000).map(f64::from).collect(),
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
    let mut r = FileReader::open(&path, options()).unwrap();
    let (_, peak) = peak_during(|| {
        assert!(r.poll(Signal::Metrics, 1).unwrap().is_none());
    });
    // The definition itself is decoded once (8 MB of bounds, then cut to 4096).
    assert!(peak < 48 * MIB, "aggregating took {} MiB", peak / MIB);
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
