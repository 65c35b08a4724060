//! A repeatable per-operation figure: runs one operation of `benches/spans.rs`
//! many times inside a function callgrind can be told to count alone, so the
//! instructions per operation can be compared before and after a change on a
//! machine too noisy for timings.
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
use opentelemetry::logs::LoggerProvider;
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Span, SpanKind, Tracer, TracerProvider};
use opentelemetry_mmap::{
    MmapExporterFile, MmapLoggerProvider, MmapMeterProvider, MmapSpanProcessor, MmapTracerProvider,
};
use opentelemetry_sdk::logs::{BatchLogProcessor, SdkLoggerProvider};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};

/// The operations, by name.
const OPERATIONS: [&str; 8] = [
    "mmap_provider_builder",
    "mmap_provider_set_attributes",
    "sdk_with_mmap_span_processor",
    "sdk_with_batch_processor",
    "mmap_logger_provider",
    "sdk_with_batch_log_processor",
    "mmap_meter_provider",
    "sdk_meter_provider",
];

mod sdk_reference;
use sdk_reference::{
    DiscardingExporter, DiscardingLogExporter, DiscardingMetricExporter, emit_one, four_attributes,
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
        "mmap_provider_builder" => {
            let tracer = MmapTracerProvider::new(&file).tracer("bench");
            twice(n, || {
                let mut span = tracer
                    .span_builder("GET /items")
                    .with_kind(SpanKind::Server)
                    .with_attributes(four_attributes())
                    .start(&tracer);
                span.end();
            });
        }
        "mmap_provider_set_attributes" => {
            let tracer = MmapTracerProvider::new(&file).tracer("bench");
            twice(n, || {
                let mut span = tracer.start("GET /items");
                span.set_attributes(four_attributes());
                span.end();
            });
        }
        "sdk_with_mmap_span_processor" | "sdk_with_batch_processor" => {
            let builder = SdkTracerProvider::builder();
            let provider = if op == "sdk_with_batch_processor" {
                builder
                    .with_span_processor(BatchSpanProcessor::builder(DiscardingExporter).build())
                    .build()
            } else {
                builder
                    .with_span_processor(MmapSpanProcessor::new(&file))
                    .build()
            };
            let tracer = provider.tracer("bench");
            twice(n, || {
                let mut span = tracer
                    .span_builder("GET /items")
                    .with_kind(SpanKind::Server)
                    .with_attributes(four_attributes())
                    .start(&tracer);
                span.end();
            });
            let _ = provider.shutdown();
        }
        "mmap_logger_provider" => {
            let logger = MmapLoggerProvider::new(&file).logger("bench");
            twice(n, || emit_one(&logger));
        }
        "sdk_with_batch_log_processor" => {
            let provider = SdkLoggerProvider::builder()
                .with_log_processor(BatchLogProcessor::builder(DiscardingLogExporter).build())
                .build();
            let logger = provider.logger("bench");
            twice(n, || emit_one(&logger));
            let _ = provider.shutdown();
        }
        "mmap_meter_provider" => {
            let counter = MmapMeterProvider::new(&file)
                .meter("bench")
                .u64_counter("requests")
                .build();
            twice(n, || counter.add(black_box(1), &attrs));
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
