//! A repeatable per-operation figure: runs one operation of `benches/spans.rs`
//! many times inside a function callgrind can be told to count alone, so the
//! instructions per operation can be compared before and after a change on a
//! machine too noisy for timings. The `api_noop_*` and `sdk_no_*` /
//! `sdk_with_null_*` operations are the floors: the same calls on the API's
//! no-op providers and on the SDK with no processor (or one that does
//! nothing).
//!
//! Run (the operation names are those of [`OPERATIONS`]):
//!
//! ```text
//! cargo bench -p opentelemetry-mmap --bench ops --no-run
//! valgrind --tool=callgrind --toggle-collect='*measured*' \
//!     target/release/deps/ops-<hash> mmap_provider_builder 10000
//! ```
//!
//! and divide the total `Ir` by the count. Every operation runs the same
//! number of times first, uncounted, so that keys and instruments are
//! interned and the caches warm. No reader drains the file: its rings are
//! large enough for both rounds.

use std::hint::black_box;
use std::path::Path;

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

/// The operations, by name.
const OPERATIONS: [&str; 18] = [
    "api_noop_tracer",
    "mmap_provider_builder",
    "mmap_provider_set_attributes",
    "sdk_no_span_processor",
    "sdk_with_null_span_processor",
    "sdk_with_mmap_span_processor",
    "sdk_with_batch_processor",
    "api_noop_logger",
    "mmap_logger_provider",
    "sdk_no_log_processor",
    "sdk_with_mmap_log_processor",
    "sdk_with_batch_log_processor",
    "api_noop_meter",
    "mmap_meter_provider",
    "sdk_meter_provider",
    "mmap_layer_span",
    "mmap_layer_span_no_context_activation",
    "mmap_layer_event",
];

mod sdk_reference;
use sdk_reference::{
    DiscardingExporter, DiscardingLogExporter, DiscardingMetricExporter, NullSpanProcessor,
    emit_one, four_attributes, span_one, tracing_event_one, tracing_span_one,
};

/// Runs `op` `n` times uncounted, then `n` times inside [`measured`].
fn twice(n: u64, mut op: impl FnMut()) {
    for _ in 0..n {
        op();
    }
    measured(n, &mut op);
}

/// The counted region (callgrind: `--toggle-collect='*measured*'`).
#[inline(never)]
fn measured(n: u64, op: &mut dyn FnMut()) {
    for _ in 0..n {
        op();
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let op = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    if !OPERATIONS.contains(&op.as_str()) {
        eprintln!("usage: ops <{}> [count]", OPERATIONS.join("|"));
        std::process::exit(2);
    }
    // tmpfs when there is one: the file's pages are then never written back.
    let dir = match Path::new("/dev/shm") {
        shm if shm.is_dir() => tempfile::tempdir_in(shm).unwrap(),
        _ => tempfile::tempdir().unwrap(),
    };
    let file = MmapExporterFile::builder()
        .with_path(dir.path().join("ops.otlp"))
        .with_span_ring(1 << 17, 512)
        .with_log_ring(1 << 16, 512)
        .with_metric_ring(1 << 16, 256)
        .build()
        .unwrap();
    let attrs = [
        KeyValue::new("route", "/items"),
        KeyValue::new("status", 200_i64),
    ];
    match op.as_str() {
        "api_noop_tracer" => {
            let tracer = NoopTracerProvider::new().tracer("bench");
            twice(n, || span_one(&tracer));
        }
        "mmap_provider_builder" => {
            let tracer = MmapTracerProvider::new(&file).tracer("bench");
            twice(n, || span_one(&tracer));
        }
        "mmap_provider_set_attributes" => {
            let tracer = MmapTracerProvider::new(&file).tracer("bench");
            twice(n, || {
                let mut span = tracer.start("GET /items");
                span.set_attributes(four_attributes());
                span.end();
            });
        }
        "sdk_no_span_processor"
        | "sdk_with_null_span_processor"
        | "sdk_with_mmap_span_processor"
        | "sdk_with_batch_processor" => {
            let builder = SdkTracerProvider::builder();
            let provider = match op.as_str() {
                "sdk_no_span_processor" => builder.build(),
                "sdk_with_null_span_processor" => {
                    builder.with_span_processor(NullSpanProcessor).build()
                }
                "sdk_with_batch_processor" => builder
                    .with_span_processor(BatchSpanProcessor::builder(DiscardingExporter).build())
                    .build(),
                _ => builder
                    .with_span_processor(MmapSpanProcessor::new(&file))
                    .build(),
            };
            let tracer = provider.tracer("bench");
            twice(n, || span_one(&tracer));
            let _ = provider.shutdown();
        }
        "api_noop_logger" => {
            let logger = NoopLoggerProvider::new().logger("bench");
            twice(n, || emit_one(&logger));
        }
        "mmap_logger_provider" => {
            let logger = MmapLoggerProvider::new(&file).logger("bench");
            twice(n, || emit_one(&logger));
        }
        "sdk_no_log_processor" | "sdk_with_mmap_log_processor" | "sdk_with_batch_log_processor" => {
            let builder = SdkLoggerProvider::builder();
            let provider = match op.as_str() {
                "sdk_no_log_processor" => builder.build(),
                "sdk_with_batch_log_processor" => builder
                    .with_log_processor(BatchLogProcessor::builder(DiscardingLogExporter).build())
                    .build(),
                _ => builder
                    .with_log_processor(MmapLogProcessor::new(&file))
                    .build(),
            };
            let logger = provider.logger("bench");
            twice(n, || emit_one(&logger));
            let _ = provider.shutdown();
        }
        "api_noop_meter" => {
            let counter = NoopMeterProvider::new()
                .meter("bench")
                .u64_counter("requests")
                .build();
            twice(n, || counter.add(black_box(1), &attrs));
        }
        "mmap_meter_provider" => {
            let counter = MmapMeterProvider::new(&file)
                .meter("bench")
                .u64_counter("requests")
                .build();
            twice(n, || counter.add(black_box(1), &attrs));
        }
        "mmap_layer_span" | "mmap_layer_span_no_context_activation" => {
            use tracing_subscriber::layer::SubscriberExt;
            let layer = opentelemetry_mmap::MmapLayer::new(&file)
                .with_context_activation(op == "mmap_layer_span");
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::with_default(subscriber, || twice(n, tracing_span_one));
        }
        "mmap_layer_event" => {
            use tracing_subscriber::layer::SubscriberExt;
            let subscriber =
                tracing_subscriber::registry().with(opentelemetry_mmap::MmapLayer::new(&file));
            tracing::subscriber::with_default(subscriber, || twice(n, tracing_event_one));
        }
        _ => {
            let provider = SdkMeterProvider::builder()
                .with_reader(PeriodicReader::builder(DiscardingMetricExporter).build())
                .build();
            let counter = provider.meter("bench").u64_counter("requests").build();
            twice(n, || counter.add(black_box(1), &attrs));
            let _ = provider.shutdown();
        }
    }
    let drops = file.drop_stats();
    if drops != Default::default() {
        eprintln!("drops: {drops:?}");
    }
}
