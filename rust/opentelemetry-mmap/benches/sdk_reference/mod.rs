//! The workload and the SDK's side of the comparisons, shared by the
//! `spans` (criterion) and `ops` (callgrind) benches: exporters that discard
//! what the SDK's batch processors and periodic reader hand them, a span
//! processor that does nothing (the SDK's floor), and the span with its four
//! attributes and the log record, and the same as `tracing` macros.

use std::hint::black_box;
use std::time::Duration;

use opentelemetry::logs::{LogRecord, Logger, Severity};
use opentelemetry::trace::{Span, SpanKind, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};

/// Spans exporter of the `BatchSpanProcessor` reference: discards.
#[derive(Debug)]
pub struct DiscardingExporter;

impl SpanExporter for DiscardingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

/// A span processor that does nothing: the SDK still builds each ended
/// span's `SpanData` and hands it over (which it skips when there is no
/// processor at all); this one drops it on the calling thread. The floor
/// every span processor of the SDK starts from.
#[derive(Debug)]
pub struct NullSpanProcessor;

impl SpanProcessor for NullSpanProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}
    fn on_end(&self, span: SpanData) {
        black_box(&span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Log exporter of the `BatchLogProcessor` reference: discards.
#[derive(Debug)]
pub struct DiscardingLogExporter;

impl LogExporter for DiscardingLogExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        black_box(batch.iter().count());
        Ok(())
    }
}

/// Metric exporter of the SDK aggregation reference: discards.
#[derive(Debug)]
pub struct DiscardingMetricExporter;

impl PushMetricExporter for DiscardingMetricExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        black_box(metrics);
        Ok(())
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// The span's attributes: one of each value type.
pub fn four_attributes() -> [KeyValue; 4] {
    [
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("http.response.status_code", 200_i64),
        KeyValue::new("server.duration", 1.25),
        KeyValue::new("cache.hit", true),
    ]
}

/// The span of every tracer comparison: built with its kind and four
/// attributes, started, and ended.
#[inline]
pub fn span_one<T: Tracer>(tracer: &T) {
    let mut span = tracer
        .span_builder("GET /items")
        .with_kind(SpanKind::Server)
        .with_attributes(four_attributes())
        .start(tracer);
    span.end();
}

/// The same log record through any `Logger`.
pub fn emit_one<L: Logger>(logger: &L) {
    let mut rec = logger.create_log_record();
    rec.set_severity_number(Severity::Info);
    rec.set_body("served an item".into());
    rec.add_attribute("item.id", 42_i64);
    rec.add_attribute("item.kind", "book");
    rec.add_attribute("cached", true);
    logger.emit(rec);
}

/// A `tracing` span with 4 fields, entered and closed.
pub fn tracing_span_one() {
    let span = tracing::info_span!(
        "GET /items",
        http.request.method = "GET",
        http.response.status_code = 200_i64,
        server.duration = 1.25,
        cache.hit = true,
    );
    let _entered = span.enter();
}

/// A `tracing` event with a message and 3 fields.
pub fn tracing_event_one() {
    tracing::info!(
        item.id = 42_i64,
        item.kind = "book",
        cached = true,
        "served an item"
    );
}
