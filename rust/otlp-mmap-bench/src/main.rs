//! The application side of the end-to-end benchmark (`make bench`,
//! `bench/run.py`, results in `BENCHMARKS.md`).
//!
//! One process emits a fixed number of spans, log records or counter adds
//! through one of three paths and prints one JSON line with what it cost:
//!
//! - `mmap-provider`: this repository's API providers (`MmapTracerProvider`,
//!   `MmapLoggerProvider`, `MmapMeterProvider`) writing an OTLP-MMAP file;
//! - `mmap-processor`: `opentelemetry_sdk` providers with `MmapSpanProcessor` /
//!   `MmapLogProcessor` (there is no metric reader for the file: metrics are
//!   refused in this mode);
//! - `otlp`: `opentelemetry_sdk` 0.33 with its batch processors
//!   (`BatchSpanProcessor`, `BatchLogProcessor`, `PeriodicReader`), default
//!   settings, and the `opentelemetry-otlp` 0.33 gRPC (tonic) exporters;
//! - `tracing`: the `tracing` crate's macros through `tracing-subscriber`'s
//!   registry with `tracing-opentelemetry` over `MmapTracerProvider` (spans)
//!   and `opentelemetry-appender-tracing` over `MmapLoggerProvider` (events),
//!   as in `rust/opentelemetry-mmap/examples/tracing.rs` (no metrics);
//! - `tracing-layer`: the same macros through the registry with
//!   `opentelemetry-mmap`'s own layer, `MmapLayer` (the example's `--layer`);
//! - `pacing`: the same loop emitting nothing, the baseline that the harness
//!   subtracts (sleeping and waking up to pace the rate costs CPU too).
//!
//! ```text
//! otlp-mmap-bench --mode mmap-provider|mmap-processor|tracing|tracing-layer|otlp --signal spans|logs|metrics
//!                 --count N [--rate PER_SEC] [--warmup N] [--file PATH] [--endpoint URL]
//!                 [--hold-secs S] [--pause-after-warmup-secs S]
//! otlp-mmap-bench --idle-files N --dir DIR --idle-secs S
//! ```
//!
//! `--rate 0` (the default) emits as fast as one thread can; otherwise items
//! are paced at `rate` per second (the thread sleeps 1 ms whenever it is
//! ahead). `--warmup` items (default 1000) are emitted and flushed first and
//! are not measured; then the process sleeps `--pause-after-warmup-secs` (so
//! that a Collector has found the file) and prints `start` on a line of its own.
//!
//! Measured, between the end of the warm-up and the end of the final flush
//! (`force_flush` of the SDK providers; the mmap path has nothing to flush):
//! - `cpu_process_s`: user+system CPU of the whole process (`getrusage(RUSAGE_SELF)`,
//!   so it includes the SDK's background export threads and the tokio runtime);
//! - `cpu_caller_s`: user+system CPU of the emitting thread only (`RUSAGE_THREAD`)
//!   over the emit loop: what the application's own thread pays;
//! - `allocs`, `alloc_bytes`: heap allocations of every thread (a counting
//!   global allocator);
//! - `dropped`: records the mmap SDK dropped because a ring was full
//!   (`DropStats`); the OTLP SDK does not expose its drop counts, so for it the
//!   harness compares what the Collector accepted with what was sent;
//! - `minor_faults`: minor page faults of the process over the same span, and
//!   `max_rss_kb`: its peak resident set at the end (`getrusage`), for the
//!   ring-size sweep;
//! - `file_bytes`: the size of the mmap file as created (none for the OTLP
//!   path), also for the sweep.

use std::hint::black_box;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::logs::{LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::metrics::{Counter, MeterProvider};
use opentelemetry::trace::{Span, SpanKind, Tracer, TracerProvider};
use opentelemetry_mmap::{
    MmapExporterFile, MmapLogProcessor, MmapLoggerProvider, MmapMeterProvider, MmapSpanProcessor,
    MmapTracerProvider,
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use otlp_mmap_test_support::{CountingAllocator, allocated_bytes, allocations};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[allow(unsafe_code)]
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: `rusage` is a plain C struct for which all-zero bytes are valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the valid struct we pass.
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// `(peak resident set in KiB, minor page faults)` of the whole process so far.
#[allow(unsafe_code)]
fn memory_counters() -> (i64, i64) {
    // SAFETY: `rusage` is a plain C struct for which all-zero bytes are valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the valid struct we pass.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    (ru.ru_maxrss, ru.ru_minflt)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Only the pacing loop: the baseline the harness subtracts.
    Pacing,
    MmapProvider,
    MmapProcessor,
    Tracing,
    /// `tracing` through this crate's own layer, `MmapLayer`.
    TracingLayer,
    Otlp,
}

#[derive(Clone, Copy, PartialEq)]
enum Signal {
    Spans,
    Logs,
    Metrics,
}

struct Args {
    mode: Mode,
    signal: Signal,
    count: u64,
    rate: f64,
    warmup: u64,
    file: String,
    endpoint: String,
    hold: Duration,
    pause: Duration,
    idle_files: usize,
    idle_dir: String,
    idle_secs: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        mode: Mode::MmapProvider,
        signal: Signal::Spans,
        count: 100_000,
        rate: 0.0,
        warmup: 1000,
        file: "/dev/shm/otlp-mmap-bench.otlp".into(),
        endpoint: "http://127.0.0.1:4317".into(),
        hold: Duration::ZERO,
        pause: Duration::ZERO,
        idle_files: 0,
        idle_dir: String::new(),
        idle_secs: 30.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| v.parse::<f64>().map_err(|e| format!("{v}: {e}"));
        match flag.as_str() {
            "--mode" => {
                a.mode = match val()?.as_str() {
                    "mmap-provider" => Mode::MmapProvider,
                    "mmap-processor" => Mode::MmapProcessor,
                    "tracing" => Mode::Tracing,
                    "tracing-layer" => Mode::TracingLayer,
                    "otlp" => Mode::Otlp,
                    "pacing" => Mode::Pacing,
                    m => return Err(format!("unknown mode {m}")),
                }
            }
            "--signal" => {
                a.signal = match val()?.as_str() {
                    "spans" => Signal::Spans,
                    "logs" => Signal::Logs,
                    "metrics" => Signal::Metrics,
                    s => return Err(format!("unknown signal {s}")),
                }
            }
            "--count" => a.count = num(val()?)? as u64,
            "--rate" => a.rate = num(val()?)?,
            "--warmup" => a.warmup = num(val()?)? as u64,
            "--file" => a.file = val()?,
            "--endpoint" => a.endpoint = val()?,
            "--hold-secs" => a.hold = Duration::from_secs_f64(num(val()?)?),
            "--pause-after-warmup-secs" => a.pause = Duration::from_secs_f64(num(val()?)?),
            "--idle-files" => a.idle_files = num(val()?)? as usize,
            "--dir" => a.idle_dir = val()?,
            "--idle-secs" => a.idle_secs = num(val()?)?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn resource() -> Resource {
    Resource::builder_empty()
        .with_service_name("otlp-mmap-bench")
        .build()
}

fn four_attributes() -> [KeyValue; 4] {
    [
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("http.response.status_code", 200_i64),
        KeyValue::new("server.duration", 1.25),
        KeyValue::new("cache.hit", true),
    ]
}

/// One span: start with 4 attributes, end.
fn one_span<T: Tracer>(tracer: &T) {
    let mut span = tracer
        .span_builder("GET /items")
        .with_kind(SpanKind::Server)
        .with_attributes(four_attributes())
        .start(tracer);
    span.end();
}

/// One log record: severity, body, 3 attributes.
fn one_log<L: Logger>(logger: &L, i: u64) {
    let mut rec = logger.create_log_record();
    rec.set_severity_number(Severity::Info);
    rec.set_severity_text("INFO");
    rec.set_body("served an item".into());
    rec.add_attribute("item.id", i as i64);
    rec.add_attribute("item.kind", "book");
    rec.add_attribute("cached", true);
    logger.emit(rec);
}

/// The `tracing` subscriber of `--mode tracing`: spans through
/// tracing-opentelemetry over the provider's tracer, events through the
/// appender bridge over the logger provider (events kept out of the spans layer).
fn tracing_subscriber_for(file: &MmapExporterFile) -> impl tracing::Subscriber + Send + Sync {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    let spans = tracing_opentelemetry::layer()
        .with_tracer(MmapTracerProvider::new(file).tracer("bench"))
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|m| m.is_span()));
    let events = opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(
        &MmapLoggerProvider::new(file),
    );
    tracing_subscriber::registry().with(spans).with(events)
}

/// One `tracing` span with the same 4 attributes as [`one_span`], entered and closed.
fn one_tracing_span() {
    let span = tracing::info_span!(
        "GET /items",
        http.request.method = "GET",
        http.response.status_code = 200_i64,
        server.duration = 1.25,
        cache.hit = true,
    );
    let _entered = span.enter();
}

/// One `tracing` event with a message and the same 3 attributes as [`one_log`].
fn one_tracing_event(i: u64) {
    tracing::info!(
        item.id = i as i64,
        item.kind = "book",
        cached = true,
        "served an item"
    );
}

const ROUTES: [&str; 4] = ["/items", "/items/{id}", "/cart", "/checkout"];

/// One counter add with 2 attributes (4 distinct series).
fn one_add(counter: &Counter<u64>, i: u64) {
    counter.add(
        1,
        &[
            KeyValue::new("http.route", ROUTES[(i & 3) as usize]),
            KeyValue::new("http.response.status_code", 200_i64),
        ],
    );
}

/// Calls `emit(i)` for `i` in `0..count`, paced at `rate` per second (0: as fast as possible).
fn run_loop(count: u64, rate: f64, mut emit: impl FnMut(u64)) {
    if rate <= 0.0 {
        for i in 0..count {
            emit(black_box(i));
        }
        return;
    }
    let start = Instant::now();
    let mut i = 0;
    while i < count {
        let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(count);
        if i >= due {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        while i < due {
            emit(i);
            i += 1;
        }
    }
}

struct Measured {
    wall_s: f64,
    cpu_process_s: f64,
    cpu_caller_s: f64,
    allocs: u64,
    alloc_bytes: u64,
    loop_wall_s: f64,
    /// Minor page faults of the process during the measured loop and flush.
    minor_faults: i64,
}

/// Warm-up (emit + flush), then the measured emit loop and flush.
fn measure(args: &Args, emit: &mut dyn FnMut(u64), flush: &mut dyn FnMut()) -> Measured {
    for i in 0..args.warmup {
        emit(i);
    }
    flush();
    std::thread::sleep(args.pause);
    // The harness starts its measurement of the Collector on this line.
    println!("start");
    let (a0, b0) = (allocations(), allocated_bytes());
    let f0 = memory_counters().1;
    let p0 = cpu_seconds(libc::RUSAGE_SELF);
    let t0 = cpu_seconds(libc::RUSAGE_THREAD);
    let w0 = Instant::now();
    run_loop(args.count, args.rate, emit);
    let loop_wall_s = w0.elapsed().as_secs_f64();
    let cpu_caller_s = cpu_seconds(libc::RUSAGE_THREAD) - t0;
    flush();
    Measured {
        wall_s: w0.elapsed().as_secs_f64(),
        cpu_process_s: cpu_seconds(libc::RUSAGE_SELF) - p0,
        cpu_caller_s,
        allocs: allocations() - a0,
        alloc_bytes: allocated_bytes() - b0,
        loop_wall_s,
        minor_faults: memory_counters().1 - f0,
    }
}

/// The size of the last file [`mmap_file`] created, as created (reported as
/// `file_bytes`: the Collector may delete the file once the app is gone).
static FILE_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn mmap_file(path: &str) -> MmapExporterFile {
    let file = MmapExporterFile::builder()
        .with_path(path)
        .with_resource(resource())
        .build()
        .unwrap_or_else(|e| fail(&format!("cannot create {path}: {e}")));
    if let Ok(m) = std::fs::metadata(path) {
        FILE_BYTES.store(m.len(), std::sync::atomic::Ordering::Relaxed);
    }
    file
}

fn fail(msg: &str) -> ! {
    eprintln!("otlp-mmap-bench: {msg}");
    std::process::exit(2);
}

fn idle(args: &Args) {
    std::fs::create_dir_all(&args.idle_dir).unwrap_or_else(|e| fail(&e.to_string()));
    let files: Vec<_> = (0..args.idle_files)
        .map(|i| mmap_file(&format!("{}/idle-{i}.otlp", args.idle_dir)))
        .collect();
    println!("{{\"idle_files\":{}}}", files.len());
    std::thread::sleep(Duration::from_secs_f64(args.idle_secs));
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| fail(&e));
    if args.idle_files > 0 {
        return idle(&args);
    }
    let mut dropped = 0u64;
    let m = match args.mode {
        Mode::Pacing => measure(
            &args,
            &mut |i| {
                black_box(i);
            },
            &mut || {},
        ),
        Mode::Tracing | Mode::TracingLayer => {
            let file = mmap_file(&args.file);
            let installed = if args.mode == Mode::Tracing {
                tracing::subscriber::set_global_default(tracing_subscriber_for(&file))
            } else {
                use tracing_subscriber::layer::SubscriberExt;
                tracing::subscriber::set_global_default(
                    tracing_subscriber::registry().with(opentelemetry_mmap::MmapLayer::new(&file)),
                )
            };
            installed.unwrap_or_else(|e| fail(&e.to_string()));
            let m = match args.signal {
                Signal::Spans => measure(&args, &mut |_| one_tracing_span(), &mut || {}),
                Signal::Logs => measure(&args, &mut |i| one_tracing_event(i), &mut || {}),
                Signal::Metrics => fail("tracing has no metrics path (use mmap-provider)"),
            };
            let d = file.drop_stats();
            dropped += d.spans + d.logs + d.measurements;
            std::thread::sleep(args.hold);
            m
        }
        Mode::MmapProvider | Mode::MmapProcessor => {
            let file = mmap_file(&args.file);
            let m = match (args.mode, args.signal) {
                (Mode::MmapProvider, Signal::Spans) => {
                    let tracer = MmapTracerProvider::new(&file).tracer("bench");
                    measure(&args, &mut |_| one_span(&tracer), &mut || {})
                }
                (Mode::MmapProvider, Signal::Logs) => {
                    let logger = MmapLoggerProvider::new(&file).logger("bench");
                    measure(&args, &mut |i| one_log(&logger, i), &mut || {})
                }
                (Mode::MmapProvider, Signal::Metrics) => {
                    let meters = MmapMeterProvider::new(&file);
                    let counter = meters.meter("bench").u64_counter("requests").build();
                    let m = measure(&args, &mut |i| one_add(&counter, i), &mut || {});
                    meters.shutdown();
                    m
                }
                (_, Signal::Spans) => {
                    let provider = SdkTracerProvider::builder()
                        .with_resource(resource())
                        .with_span_processor(MmapSpanProcessor::new(&file))
                        .build();
                    let tracer = provider.tracer("bench");
                    let m = measure(&args, &mut |_| one_span(&tracer), &mut || {});
                    let _ = provider.shutdown();
                    m
                }
                (_, Signal::Logs) => {
                    let provider = SdkLoggerProvider::builder()
                        .with_resource(resource())
                        .with_log_processor(MmapLogProcessor::new(&file))
                        .build();
                    let logger = provider.logger("bench");
                    let m = measure(&args, &mut |i| one_log(&logger, i), &mut || {});
                    let _ = provider.shutdown();
                    m
                }
                (_, Signal::Metrics) => {
                    fail("mmap-processor has no metrics path (use mmap-provider)")
                }
            };
            let d = file.drop_stats();
            dropped += d.spans + d.logs + d.measurements;
            std::thread::sleep(args.hold);
            m
        }
        Mode::Otlp => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let _guard = rt.enter();
            let ep = args.endpoint.clone();
            match args.signal {
                Signal::Spans => {
                    let exporter = opentelemetry_otlp::SpanExporter::builder()
                        .with_tonic()
                        .with_endpoint(ep)
                        .build()
                        .unwrap_or_else(|e| fail(&e.to_string()));
                    let provider = SdkTracerProvider::builder()
                        .with_resource(resource())
                        .with_batch_exporter(exporter)
                        .build();
                    let tracer = provider.tracer("bench");
                    let m = measure(&args, &mut |_| one_span(&tracer), &mut || {
                        let _ = provider.force_flush();
                    });
                    std::thread::sleep(args.hold);
                    let _ = provider.shutdown();
                    m
                }
                Signal::Logs => {
                    let exporter = opentelemetry_otlp::LogExporter::builder()
                        .with_tonic()
                        .with_endpoint(ep)
                        .build()
                        .unwrap_or_else(|e| fail(&e.to_string()));
                    let provider = SdkLoggerProvider::builder()
                        .with_resource(resource())
                        .with_batch_exporter(exporter)
                        .build();
                    let logger = provider.logger("bench");
                    let m = measure(&args, &mut |i| one_log(&logger, i), &mut || {
                        let _ = provider.force_flush();
                    });
                    std::thread::sleep(args.hold);
                    let _ = provider.shutdown();
                    m
                }
                Signal::Metrics => {
                    let exporter = opentelemetry_otlp::MetricExporter::builder()
                        .with_tonic()
                        .with_endpoint(ep)
                        .build()
                        .unwrap_or_else(|e| fail(&e.to_string()));
                    let provider = SdkMeterProvider::builder()
                        .with_resource(resource())
                        .with_periodic_exporter(exporter)
                        .build();
                    let counter = provider.meter("bench").u64_counter("requests").build();
                    let m = measure(&args, &mut |i| one_add(&counter, i), &mut || {
                        let _ = provider.force_flush();
                    });
                    std::thread::sleep(args.hold);
                    let _ = provider.shutdown();
                    m
                }
            }
        }
    };
    let n = args.count as f64;
    println!(
        "{}",
        serde_json::json!({
            "mode": match args.mode { Mode::MmapProvider => "mmap-provider", Mode::MmapProcessor => "mmap-processor", Mode::Tracing => "tracing", Mode::TracingLayer => "tracing-layer", Mode::Otlp => "otlp", Mode::Pacing => "pacing" },
            "signal": match args.signal { Signal::Spans => "spans", Signal::Logs => "logs", Signal::Metrics => "metrics" },
            "count": args.count,
            "warmup": args.warmup,
            "rate": args.rate,
            "wall_s": m.wall_s,
            "loop_wall_s": m.loop_wall_s,
            "achieved_rate": n / m.loop_wall_s,
            "cpu_process_s": m.cpu_process_s,
            "cpu_caller_s": m.cpu_caller_s,
            "cpu_process_ns_per_item": m.cpu_process_s * 1e9 / n,
            "cpu_caller_ns_per_item": m.cpu_caller_s * 1e9 / n,
            "allocs": m.allocs,
            "alloc_bytes": m.alloc_bytes,
            "allocs_per_item": m.allocs as f64 / n,
            "alloc_bytes_per_item": m.alloc_bytes as f64 / n,
            "dropped": dropped,
            "minor_faults": m.minor_faults,
            "max_rss_kb": memory_counters().0,
            "file_bytes": match FILE_BYTES.load(std::sync::atomic::Ordering::Relaxed) {
                0 => None,
                n => Some(n),
            },
        })
    );
}
