//! Observable instruments: totals become exact differences per attribute
//! set, and one failing callback stops nothing else.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::read_all;
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider;
use opentelemetry_mmap::{MmapExporterFile, MmapMeterProvider};
use otlp_mmap_core::proto::measurement::Value;

fn file(dir: &tempfile::TempDir) -> MmapExporterFile {
    MmapExporterFile::builder()
        .with_path(dir.path().join("f.otlp"))
        .build()
        .unwrap()
}

/// The values written, in order.
fn values(file: &MmapExporterFile) -> Vec<Option<Value>> {
    read_all(file.path())
        .measurements
        .iter()
        .map(|m| m.value)
        .collect()
}

/// A set holding NaN is found again: the total 5 is written as +5, +0, +0
/// (`KeyValue`'s equality, NaN != NaN, made it +5 every time, with one more
/// remembered set per observation).
#[test]
fn a_set_with_a_nan_attribute_writes_differences() {
    let dir = tempfile::tempdir().unwrap();
    let file = file(&dir);
    let provider = MmapMeterProvider::with_interval(&file, Duration::from_secs(3600));
    let _c = provider
        .meter("m")
        .u64_observable_counter("total")
        .with_callback(|o| o.observe(5, &[KeyValue::new("ratio", f64::NAN)]))
        .build();
    for _ in 0..3 {
        provider.observe_now();
    }
    assert_eq!(
        values(&file),
        [
            Some(Value::AsLong(5)),
            Some(Value::AsLong(0)),
            Some(Value::AsLong(0))
        ]
    );
    provider.shutdown();
}

/// `u64` totals above `i64::MAX` give exact differences (they were taken
/// in doubles, where a step of 100 vanishes).
#[test]
fn u64_totals_above_i64_max_give_exact_differences() {
    let dir = tempfile::tempdir().unwrap();
    let file = file(&dir);
    let provider = MmapMeterProvider::with_interval(&file, Duration::from_secs(3600));
    let total = Arc::new(AtomicU64::new(1 << 63));
    let t = total.clone();
    let _c = provider
        .meter("m")
        .u64_observable_counter("bytes")
        .with_callback(move |o| o.observe(t.load(Ordering::Relaxed), &[]))
        .build();
    provider.observe_now();
    for _ in 0..2 {
        total.fetch_add(100, Ordering::Relaxed);
        provider.observe_now();
    }
    // The first total as written by any `u64` above `i64::MAX`, then exact
    // integer steps.
    assert_eq!(
        values(&file),
        [
            Some(Value::AsDouble((1u64 << 63) as f64)),
            Some(Value::AsLong(100)),
            Some(Value::AsLong(100))
        ]
    );
    provider.shutdown();
}

/// A callback that panics (once) stops neither the other callbacks nor the
/// thread that calls them.
#[test]
fn a_panicking_callback_stops_no_other_observation() {
    let dir = tempfile::tempdir().unwrap();
    let file = file(&dir);
    let provider = MmapMeterProvider::with_interval(&file, Duration::from_millis(5));
    let meter = provider.meter("m");
    let panicked = AtomicBool::new(false);
    let _bad = meter
        .u64_observable_gauge("bad")
        .with_callback(move |_| {
            if !panicked.swap(true, Ordering::Relaxed) {
                panic!("callback failed once (expected by the test)");
            }
        })
        .build();
    let calls = Arc::new(AtomicU64::new(0));
    let c = calls.clone();
    let _good = meter
        .u64_observable_gauge("good")
        .with_callback(move |o| {
            c.fetch_add(1, Ordering::Relaxed);
            o.observe(1, &[]);
        })
        .build();
    // Waits (up to 10 s: liveness, not a timing assertion) for the thread to
    // call the good callback a few times after the panic.
    for _ in 0..2000 {
        if calls.load(Ordering::Relaxed) >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let n = calls.load(Ordering::Relaxed);
    provider.shutdown();
    assert!(n >= 3, "the good callback ran {n} times");
}

/// A callback may create another observable instrument (the registry's
/// lock is not held while callbacks run; it deadlocked).
#[test]
fn a_callback_may_create_an_instrument() {
    let dir = tempfile::tempdir().unwrap();
    let file = file(&dir);
    let provider = MmapMeterProvider::with_interval(&file, Duration::from_secs(3600));
    let meter = provider.meter("m");
    let inner = meter.clone();
    let created = Arc::new(AtomicBool::new(false));
    let done = created.clone();
    let _outer = meter
        .u64_observable_gauge("outer")
        .with_callback(move |o| {
            o.observe(1, &[]);
            if !done.swap(true, Ordering::Relaxed) {
                let _ = inner
                    .u64_observable_gauge("inner")
                    .with_callback(|o| o.observe(2, &[]))
                    .build();
            }
        })
        .build();
    // Run on another thread, waited for (up to 10 s) rather than joined, so
    // that a deadlock fails the test instead of hanging it.
    let p = provider.clone();
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    std::thread::spawn(move || {
        p.observe_now();
        p.observe_now();
        f.store(true, Ordering::Relaxed);
    });
    for _ in 0..2000 {
        if finished.load(Ordering::Relaxed) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(finished.load(Ordering::Relaxed), "observe_now deadlocked");
    // outer, then outer and the inner gauge created by the first round.
    assert_eq!(
        values(&file),
        [
            Some(Value::AsLong(1)),
            Some(Value::AsLong(1)),
            Some(Value::AsLong(2))
        ]
    );
    provider.shutdown();
}
