//! `tracing` spans and events written into an OTLP-MMAP file, two ways.
//!
//! With `--layer`: this crate's own layer, [`MmapLayer`] (feature
//! `tracing`), which writes each span and event straight into the file
//! (the cheaper way: see BENCHMARKS.md, "`tracing` users").
//!
//! Without it: two `tracing-subscriber` layers over one [`MmapExporterFile`],
//! for applications that also want `tracing-opentelemetry`'s OpenTelemetry
//! context (`OpenTelemetrySpanExt`):
//!
//! - spans: `tracing-opentelemetry`'s layer with [`MmapTracerProvider`]'s
//!   tracer (each `tracing` span becomes an OpenTelemetry span: `StartSpan` when
//!   it is first entered, `EndSpan` when it closes; its fields are attributes);
//! - events: `opentelemetry-appender-tracing`'s bridge with
//!   [`MmapLoggerProvider`] (each `tracing` event becomes a log record in the
//!   events ring: message as body, fields as attributes, level as severity,
//!   and the context of the span it happened in).
//!
//! Events are kept out of the spans layer (a per-layer filter), so that an
//! event inside a span is written once, as a log record carrying the span's
//! context, rather than also as a span event.
//!
//! ```text
//! cargo run -p opentelemetry-mmap --example tracing -- [--layer] [PATH]
//! otlp-mmap dump PATH
//! ```
//!
//! Either way, code instrumented with the OpenTelemetry API inside a
//! `tracing` span (here a payment client, with [`MmapTracerProvider`]'s
//! tracer) sees that span as its parent: both layers make an entered span's
//! OpenTelemetry context the current one.
//!
//! PATH defaults to `OTEL_MMAP_FILE`, then `/tmp/otlp-mmap/tracing.otlp`.
//! `tests/tracing.rs` runs [`handle_request`] through [`subscriber`] and
//! [`layer_subscriber`] and reads the file back with the collector crate's
//! dump.

use opentelemetry::trace::{Span as _, SpanKind, Tracer, TracerProvider as _};
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_mmap::{MmapExporterFile, MmapLayer, MmapLoggerProvider, MmapTracerProvider};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;

/// A subscriber that writes `tracing` spans and events into `file`.
pub fn subscriber(file: &MmapExporterFile) -> impl tracing::Subscriber + Send + Sync + 'static {
    let tracer = MmapTracerProvider::new(file).tracer("tracing-example");
    let spans = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        // Busy/idle times and thread attributes cost a little on every span;
        // leave them off unless wanted.
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_filter(filter_fn(|metadata| metadata.is_span()));
    let events = OpenTelemetryTracingBridge::new(&MmapLoggerProvider::new(file));
    tracing_subscriber::registry().with(spans).with(events)
}

/// A subscriber that writes `tracing` spans and events into `file` with
/// this crate's own layer.
pub fn layer_subscriber(
    file: &MmapExporterFile,
) -> impl tracing::Subscriber + Send + Sync + 'static {
    tracing_subscriber::registry().with(MmapLayer::new(file))
}

/// Some instrumented work: a request span with a child span, events inside
/// both, and an event outside any span; and inside the request, a call
/// instrumented with the OpenTelemetry API through `api`.
pub fn handle_request(item: i64, api: &impl Tracer) {
    tracing::info!(service = "shop", "starting");
    let request = tracing::info_span!(
        "GET /items",
        http.request.method = "GET",
        item.id = item,
        http.response.status_code = tracing::field::Empty,
    );
    let _entered = request.enter();
    tracing::info!(item.id = item, "loading item");
    {
        let db = tracing::debug_span!("SELECT items", db.system = "postgresql");
        let _db = db.enter();
        tracing::debug!(rows = 1_i64, "query done");
    }
    // A library instrumented with the OpenTelemetry API, not `tracing`.
    api.span_builder("POST /payments")
        .with_kind(SpanKind::Client)
        .start(api)
        .end();
    request.record("http.response.status_code", 200_i64);
    tracing::warn!(cached = false, "item was not cached");
}

#[allow(dead_code)] // `tests/tracing.rs` includes this file without calling `main`.
fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let layer = args.iter().any(|a| a == "--layer");
    args.retain(|a| a != "--layer");
    let path = args
        .pop()
        .or_else(|| std::env::var("OTEL_MMAP_FILE").ok())
        .unwrap_or_else(|| "/tmp/otlp-mmap/tracing.otlp".into());
    let file = MmapExporterFile::builder()
        .with_path(&path)
        .build()
        .unwrap_or_else(|e| panic!("cannot create {path}: {e}"));
    let api = MmapTracerProvider::new(&file).tracer("payment-client");
    let work = || {
        for item in 0..3 {
            handle_request(item, &api);
        }
    };
    if layer {
        tracing::subscriber::with_default(layer_subscriber(&file), work);
    } else {
        tracing::subscriber::with_default(subscriber(&file), work);
    }
    println!("wrote {path}: {:?}", file.drop_stats());
}
