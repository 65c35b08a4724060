//! The workload and the SDK's side of the comparisons, shared by the
//! `spans` (criterion) and `ops` (callgrind) benches: exporters that discard
//! what the SDK's batch processors and periodic reader hand them, and the
//! span's four attributes and the log record.

use std::hint::black_box;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::logs::{LogRecord, Logger, Severity};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Spans exporter of the `BatchSpanProcessor` reference: discards.
#[derive(Debug)]
pub struct DiscardingExporter;

impl SpanExporter for DiscardingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
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
