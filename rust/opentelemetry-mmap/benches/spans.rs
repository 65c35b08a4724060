//! Cost per operation: span start+end with 4 attributes through this crate's
//! tracer provider, through `MmapSpanProcessor` inside the OpenTelemetry SDK,
//! and through the SDK with a `BatchSpanProcessor` and an exporter that
//! discards; a log emit through this crate's logger provider, through
//! `MmapLogProcessor` inside the SDK, and through the SDK with a
//! `BatchLogProcessor` and a discarding exporter; a counter add
//! through this crate's meter provider and through the SDK's in-place
//! aggregation (`SdkMeterProvider`, periodic reader, discarding exporter).
//!
//! Each group also measures its floors, the same calls with nothing behind
//! them: the API's no-op tracer, logger and meter (`api_noop_*`, the floor
//! every provider shares), and the SDK's tracer and logger without a
//! processor (`sdk_no_*_processor`) or with a span processor that does
//! nothing (`sdk_with_null_span_processor`): the floor the SDK's processors
//! share.
//!
//! A background thread drains the rings as a collector would, so that the
//! benchmark measures writes, not drops (drops are printed at the end). The
//! `*/no_reader` variants run with no reader at all: between batches of
//! writes, uncounted, the ring's slots are released unread, so the ring never
//! fills (any drop there fails the bench) and no other core touches its
//! lines; the difference to the drained variant is what the concurrent reader
//! costs the writer.
//!
//! What is measured is the **calling thread's CPU time**
//! (`CLOCK_THREAD_CPUTIME_ID`): the caller cost the targets are about, and a
//! number that time spent descheduled on a busy machine does not inflate (nor
//! do the SDK's background export threads, which run on other threads). Set
//! `SPANS_BENCH_WALL_TIME=1` for criterion's usual wall-clock time.
//!
//! The drainer reads as soon as records appear (up to 256 per ring, then
//! releases them), as a collector under load does. With
//! `SPANS_BENCH_READER_POLL_US=N` it instead reads everything there is,
//! releases it, and sleeps N µs, as a collector polling a quieter file does:
//! fewer cache lines move between the writer's core and the reader's.
//!
//! The `tracing_*` groups measure the `tracing` macros through this crate's
//! `MmapLayer` and through `tracing-opentelemetry` with the appender bridge
//! (over the registry both need; `registry_only` is that floor).
//!
//! Run: `cargo bench -p opentelemetry-mmap --bench spans -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, BenchmarkGroup, Criterion};
use opentelemetry::KeyValue;
use opentelemetry::logs::{LoggerProvider, NoopLoggerProvider};
use opentelemetry::metrics::{MeterProvider, NoopMeterProvider};
use opentelemetry::trace::noop::NoopTracerProvider;
use opentelemetry::trace::{Span, Tracer, TracerProvider};
use opentelemetry_mmap::{
    MmapExporterFile, MmapLogProcessor, MmapLoggerProvider, MmapMeterProvider, MmapSpanProcessor,
    MmapTracerProvider,
};
use opentelemetry_sdk::logs::{BatchLogProcessor, SdkLoggerProvider};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use otlp_mmap_core::{MmapReader, RingKind, RingReader, Slot};

/// CPU time of the calling thread.
struct ThreadCpuTime;

#[allow(unsafe_code)]
fn thread_cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid struct we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Formats durations as criterion's wall time does.
static DURATIONS: WallTime = WallTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        DURATIONS.formatter()
    }
}

/// Reads and releases every record of every ring until stopped.
///
/// Eager (the default): up to 256 records per ring per round, sleeping 200 µs
/// only when nothing was there. `SPANS_BENCH_READER_POLL_US`: everything
/// there is, then a sleep of that many µs.
struct Drainer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drainer {
    fn start(path: &Path) -> Self {
        let reader = MmapReader::open(path, true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let poll = std::env::var("SPANS_BENCH_READER_POLL_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_micros);
        let batch = if poll.is_some() { usize::MAX } else { 256 };
        let thread = std::thread::spawn(move || {
            let mut rings: Vec<_> = RingKind::ALL
                .iter()
                .map(|k| reader.ring_reader(*k).unwrap())
                .collect();
            while !flag.load(Ordering::Relaxed) {
                let mut any = false;
                for ring in &mut rings {
                    let mut n = 0;
                    while let Slot::Ready(_) | Slot::Corrupt(_) = ring.peek(reader.region()) {
                        ring.advance();
                        n += 1;
                        if n == batch {
                            break;
                        }
                    }
                    if n > 0 {
                        ring.release(reader.region()).unwrap();
                        any = true;
                    }
                }
                match poll {
                    Some(interval) => std::thread::sleep(interval),
                    None if !any => std::thread::sleep(Duration::from_micros(200)),
                    None => {}
                }
            }
        });
        Drainer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Drainer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Releases, unread, every slot of one ring that writers filled: the reset
/// between batches of the `no_reader` variants.
struct RingReset {
    reader: MmapReader,
    ring: RingReader,
}

impl RingReset {
    fn new(path: &Path, kind: RingKind) -> Self {
        let reader = MmapReader::open(path, true).unwrap();
        let ring = reader.ring_reader(kind).unwrap();
        RingReset { reader, ring }
    }

    /// Gives every claimed slot back to the writers (one load of
    /// `writer_index`, and a store of `reader_index` when there is any).
    fn release_all(&mut self) {
        let region = self.reader.region();
        let claimed = self.ring.released() + self.ring.unreleased(region) as i64;
        self.ring.release_to(region, claimed).unwrap();
    }
}

/// Benchmarks `op`, which writes `records_per_op` records into the ring of
/// `kind`, with no reader: in batches that fill a quarter of the ring, with
/// every slot they filled released, uncounted, before the next batch. A drop
/// fails the bench.
fn bench_without_reader<M: Measurement>(
    g: &mut BenchmarkGroup<'_, M>,
    name: &str,
    file: &MmapExporterFile,
    kind: RingKind,
    records_per_op: u64,
    mut op: impl FnMut(),
) {
    let mut reset = RingReset::new(file.path(), kind);
    let batch = (reset.ring.geometry().num_buffers / 4 / records_per_op).max(1);
    g.bench_function(name, |b| {
        b.iter_batched(
            || reset.release_all(),
            |()| op(),
            BatchSize::NumIterations(batch),
        )
    });
    let drops = file.drop_stats();
    assert_eq!(drops, Default::default(), "{name} dropped records");
}

mod sdk_reference;
use sdk_reference::{
    DiscardingExporter, DiscardingLogExporter, DiscardingMetricExporter, NullSpanProcessor,
    emit_one, four_attributes, span_one, tracing_event_one, tracing_span_one,
};

/// A file with large rings (32 MiB each: 65,536 spans, 65,536 log records
/// and 131,072 measurements, so that a drainer thread descheduled for a few
/// milliseconds does not let a ring fill at millions of records a second),
/// or, with `SPANS_BENCH_ENV_RINGS`
/// set, with the ring sizes of the environment (`OTEL_MMAP_SPAN_SLOTS` & co)
/// and the crate's defaults; and a thread that drains it.
fn open(dir: &tempfile::TempDir, name: &str) -> (MmapExporterFile, Drainer) {
    let file = create(dir, name);
    let drainer = Drainer::start(file.path());
    (file, drainer)
}

/// The file of [`open`], with no reader.
fn create(dir: &tempfile::TempDir, name: &str) -> MmapExporterFile {
    let builder = MmapExporterFile::builder().with_path(dir.path().join(name));
    let builder = if std::env::var_os("SPANS_BENCH_ENV_RINGS").is_some() {
        builder
    } else {
        builder
            .with_span_ring(1 << 16, 512)
            .with_log_ring(1 << 16, 512)
            .with_metric_ring(1 << 17, 256)
    };
    builder.build().unwrap()
}

/// The directory for the files: `BENCH_DIR`, else tmpfs (`/dev/shm`) when
/// there is one, else the system's temporary directory.
fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| Some(Path::new("/dev/shm").to_path_buf()).filter(|p| p.is_dir()))
        .unwrap_or_else(std::env::temp_dir);
    tempfile::tempdir_in(base).unwrap()
}

fn spans<M: Measurement>(c: &mut Criterion<M>) {
    let dir = bench_dir();
    let mut g = c.benchmark_group("span_start_end_4_attributes");

    {
        let tracer = NoopTracerProvider::new().tracer("bench");
        g.bench_function("api_noop_tracer", |b| b.iter(|| span_one(&tracer)));
    }

    {
        let (file, _drainer) = open(&dir, "provider.otlp");
        let tracer = MmapTracerProvider::new(&file).tracer("bench");
        g.bench_function("mmap_provider/set_attributes", |b| {
            b.iter(|| {
                let mut span = tracer.start("GET /items");
                span.set_attributes(four_attributes());
                span.end();
            })
        });
        g.bench_function("mmap_provider/builder_attributes", |b| {
            b.iter(|| span_one(&tracer))
        });
        eprintln!("mmap_provider drops: {:?}", file.drop_stats());
    }

    {
        let file = create(&dir, "provider_no_reader.otlp");
        let tracer = MmapTracerProvider::new(&file).tracer("bench");
        // A span start and a span end: two records.
        bench_without_reader(
            &mut g,
            "mmap_provider/builder_attributes/no_reader",
            &file,
            RingKind::Spans,
            2,
            || span_one(&tracer),
        );
    }

    for (name, provider) in [
        (
            "sdk_no_span_processor",
            SdkTracerProvider::builder().build(),
        ),
        (
            "sdk_with_null_span_processor",
            SdkTracerProvider::builder()
                .with_span_processor(NullSpanProcessor)
                .build(),
        ),
    ] {
        let tracer = provider.tracer("bench");
        g.bench_function(name, |b| b.iter(|| span_one(&tracer)));
        let _ = provider.shutdown();
    }

    {
        let (file, _drainer) = open(&dir, "processor.otlp");
        let provider = SdkTracerProvider::builder()
            .with_span_processor(MmapSpanProcessor::new(&file))
            .build();
        let tracer = provider.tracer("bench");
        g.bench_function("sdk_with_mmap_span_processor", |b| {
            b.iter(|| span_one(&tracer))
        });
        eprintln!(
            "sdk_with_mmap_span_processor drops: {:?}",
            file.drop_stats()
        );
        let _ = provider.shutdown();
    }

    {
        let provider = SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::builder(DiscardingExporter).build())
            .build();
        let tracer = provider.tracer("bench");
        g.bench_function("sdk_with_batch_processor_discarding_exporter", |b| {
            b.iter(|| span_one(&tracer))
        });
        let _ = provider.shutdown();
    }
    g.finish();
}

fn metrics_and_logs<M: Measurement>(c: &mut Criterion<M>) {
    let dir = bench_dir();
    let (file, _drainer) = open(&dir, "signals.otlp");
    let attrs = [
        KeyValue::new("route", "/items"),
        KeyValue::new("status", 200_i64),
    ];
    {
        let mut g = c.benchmark_group("counter_add_2_attributes");
        let noop_counter = NoopMeterProvider::new()
            .meter("bench")
            .u64_counter("requests")
            .build();
        g.bench_function("api_noop_meter", |b| {
            b.iter(|| noop_counter.add(black_box(1), &attrs))
        });
        let counter = MmapMeterProvider::new(&file)
            .meter("bench")
            .u64_counter("requests")
            .build();
        g.bench_function("mmap_meter_provider", |b| {
            b.iter(|| counter.add(black_box(1), &attrs))
        });
        {
            let file = create(&dir, "signals_no_reader.otlp");
            let counter = MmapMeterProvider::new(&file)
                .meter("bench")
                .u64_counter("requests")
                .build();
            // One measurement record per add.
            bench_without_reader(
                &mut g,
                "mmap_meter_provider/no_reader",
                &file,
                RingKind::Measurements,
                1,
                || counter.add(black_box(1), &attrs),
            );
        }
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(DiscardingMetricExporter).build())
            .build();
        let sdk_counter = provider.meter("bench").u64_counter("requests").build();
        g.bench_function("sdk_meter_provider", |b| {
            b.iter(|| sdk_counter.add(black_box(1), &attrs))
        });
        g.finish();
        let _ = provider.shutdown();
    }
    {
        let mut g = c.benchmark_group("log_emit_3_attributes");
        let noop_logger = NoopLoggerProvider::new().logger("bench");
        g.bench_function("api_noop_logger", |b| b.iter(|| emit_one(&noop_logger)));
        let logger = MmapLoggerProvider::new(&file).logger("bench");
        g.bench_function("mmap_logger_provider", |b| b.iter(|| emit_one(&logger)));
        for (name, builder) in [
            ("sdk_no_log_processor", SdkLoggerProvider::builder()),
            (
                "sdk_with_mmap_log_processor",
                SdkLoggerProvider::builder().with_log_processor(MmapLogProcessor::new(&file)),
            ),
            (
                "sdk_with_batch_log_processor_discarding_exporter",
                SdkLoggerProvider::builder()
                    .with_log_processor(BatchLogProcessor::builder(DiscardingLogExporter).build()),
            ),
        ] {
            let provider = builder.build();
            let sdk_logger = provider.logger("bench");
            g.bench_function(name, |b| b.iter(|| emit_one(&sdk_logger)));
            let _ = provider.shutdown();
        }
        g.finish();
    }
    eprintln!("metrics/logs drops: {:?}", file.drop_stats());
}

/// `tracing` spans (4 fields, entered and closed) and events (a message and
/// 3 fields) through this crate's `MmapLayer` (with and without context
/// activation), and through
/// `tracing-opentelemetry` over `MmapTracerProvider` with the appender
/// bridge over `MmapLoggerProvider` (as `examples/tracing.rs`), each over
/// `tracing-subscriber`'s registry; and the registry alone (the floor both
/// share).
fn tracing_paths<M: Measurement>(c: &mut Criterion<M>) {
    use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
    use opentelemetry_mmap::MmapLayer;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;

    fn both<M: Measurement, S: tracing::Subscriber + Send + Sync + 'static>(
        c: &mut Criterion<M>,
        name: &str,
        subscriber: S,
    ) {
        let dispatch = tracing::Dispatch::new(subscriber);
        tracing::dispatcher::with_default(&dispatch, || {
            c.benchmark_group("tracing_span_4_fields")
                .bench_function(name, |b| b.iter(tracing_span_one));
            c.benchmark_group("tracing_event_3_fields")
                .bench_function(name, |b| b.iter(tracing_event_one));
        });
    }

    let dir = bench_dir();
    both(c, "registry_only", tracing_subscriber::registry());
    {
        let (file, _drainer) = open(&dir, "layer.otlp");
        both(
            c,
            "mmap_layer",
            tracing_subscriber::registry().with(MmapLayer::new(&file)),
        );
        eprintln!("mmap_layer drops: {:?}", file.drop_stats());
    }
    {
        // Without making an entered span's OpenTelemetry context current
        // (which `tracing-opentelemetry` and `MmapLayer` do by default).
        let (file, _drainer) = open(&dir, "layer_no_context.otlp");
        both(
            c,
            "mmap_layer/no_context_activation",
            tracing_subscriber::registry()
                .with(MmapLayer::new(&file).with_context_activation(false)),
        );
        eprintln!(
            "mmap_layer/no_context_activation drops: {:?}",
            file.drop_stats()
        );
    }
    {
        let (file, _drainer) = open(&dir, "tracing_opentelemetry.otlp");
        let spans = tracing_opentelemetry::layer()
            .with_tracer(MmapTracerProvider::new(&file).tracer("bench"))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|m| m.is_span()));
        let events = OpenTelemetryTracingBridge::new(&MmapLoggerProvider::new(&file));
        both(
            c,
            "tracing_opentelemetry_and_bridge",
            tracing_subscriber::registry().with(spans).with(events),
        );
        eprintln!("tracing_opentelemetry drops: {:?}", file.drop_stats());
    }
}

fn run<M: Measurement>(mut c: Criterion<M>) {
    spans(&mut c);
    metrics_and_logs(&mut c);
    tracing_paths(&mut c);
    c.final_summary();
}

fn main() {
    if std::env::var_os("SPANS_BENCH_WALL_TIME").is_some() {
        run(Criterion::default().configure_from_args());
    } else {
        run(Criterion::default()
            .with_measurement(ThreadCpuTime)
            .configure_from_args());
    }
}
