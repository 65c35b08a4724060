//! Proves the hot paths allocate nothing once keys and instruments are warm,
//! with a counting global allocator (this test binary only), and measures
//! exactly what the OpenTelemetry API itself allocates where its signatures
//! force it.
//!
//! Allocations are counted per thread, so other tests running at the same
//! time do not disturb the counts.

use opentelemetry::logs::{LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{
    Span, SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
    TracerProvider,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_mmap::{
    MmapExporterFile, MmapLoggerProvider, MmapMeterProvider, MmapTracerProvider,
};
use otlp_mmap_test_support::{CountingAllocator, thread_allocations_during as allocations};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const N: u64 = 10_000;

fn file(dir: &tempfile::TempDir) -> MmapExporterFile {
    // Rings large enough that nothing is dropped (a drop allocates nothing
    // either, but then nothing would be encoded).
    MmapExporterFile::builder()
        .with_path(dir.path().join("no_alloc.otlp"))
        .with_span_ring(1 << 16, 512)
        .with_log_ring(1 << 15, 512)
        .with_metric_ring(1 << 15, 256)
        .build()
        .unwrap()
}

fn four_attributes() -> [KeyValue; 4] {
    [
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("http.response.status_code", 200_i64),
        KeyValue::new("server.duration", 1.25),
        KeyValue::new("cache.hit", true),
    ]
}

#[test]
fn span_start_and_end_with_four_attributes_allocates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = file(&dir);
    let tracer = MmapTracerProvider::new(&file).tracer("no-alloc");
    let run = || {
        let mut span = tracer.start("GET /items");
        span.set_attributes(four_attributes());
        span.end();
    };
    run(); // warm-up: interns the keys, sets up this thread's cache
    let n = allocations(|| (0..N).for_each(|_| run()));
    assert_eq!(n, 0, "{n} allocations for {N} spans");
    assert_eq!(file.drop_stats().spans, 0);
}

#[test]
fn a_link_without_trace_state_allocates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = file(&dir);
    let tracer = MmapTracerProvider::new(&file).tracer("no-alloc");
    let mut span = tracer.start("linked");
    let target = SpanContext::new(
        TraceId::from(7),
        SpanId::from(9),
        TraceFlags::SAMPLED,
        true,
        TraceState::NONE,
    );
    span.add_link(target.clone(), Vec::new()); // warm-up
    let n = allocations(|| {
        (0..N).for_each(|_| span.add_link(target.clone(), Vec::new()));
    });
    assert_eq!(n, 0, "{n} allocations for {N} links");
    assert_eq!(file.drop_stats().spans, 0);
}

#[test]
fn span_builder_attributes_cost_exactly_the_apis_vec() {
    let dir = tempfile::tempdir().unwrap();
    let file = file(&dir);
    let tracer = MmapTracerProvider::new(&file).tracer("no-alloc");
    let run = || {
        // `SpanBuilder::with_attributes` collects into a `Vec<KeyValue>`: the
        // API's one allocation; the rest (StartSpan with the 4 attributes,
        // EndSpan) is ours and allocates nothing.
        let mut span = tracer
            .span_builder("GET /items")
            .with_kind(SpanKind::Server)
            .with_attributes(four_attributes())
            .start(&tracer);
        span.end();
    };
    run();
    let n = allocations(|| (0..N).for_each(|_| run()));
    let api_only = allocations(|| {
        (0..N).for_each(|_| {
            let b = opentelemetry::trace::SpanBuilder::from_name("GET /items")
                .with_attributes(four_attributes());
            drop(b);
        })
    });
    println!("builder path: {n} allocations for {N} spans; the API's builder alone: {api_only}");
    assert_eq!(api_only, N);
    assert_eq!(
        n, api_only,
        "ours must add nothing to the API's own allocation"
    );
}

#[test]
fn active_span_context_cost_is_the_apis_own() {
    let dir = tempfile::tempdir().unwrap();
    let file = file(&dir);
    let tracer = MmapTracerProvider::new(&file).tracer("no-alloc");
    let run = || {
        // Making a span active boxes it into the Context (the API's choice);
        // a child started inside reads its parent from the Context.
        let cx = Context::current_with_span(tracer.start("parent"));
        let _guard = cx.attach();
        let mut child = tracer.start("child");
        child.set_attributes(four_attributes());
        child.end();
    };
    run();
    let n = allocations(|| (0..N).for_each(|_| run()));
    // The same Context operations with the API's no-op span: what the API forces.
    let api_only = allocations(|| {
        (0..N).for_each(|_| {
            let span = opentelemetry::trace::noop::NoopSpan::DEFAULT;
            let cx = Context::current_with_span(span);
            let _guard = cx.attach();
        })
    });
    println!("active parent + child: {n} allocations for {N}; the API's Context alone: {api_only}");
    assert_eq!(
        n, api_only,
        "ours must add nothing to the Context's own allocations"
    );
}

#[test]
fn counter_histogram_and_gauge_allocate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = file(&dir);
    let meter = MmapMeterProvider::new(&file).meter("no-alloc");
    let counter = meter.u64_counter("requests").build();
    let hist = meter.f64_histogram("latency").build();
    let gauge = meter.i64_gauge("queue").build();
    let attrs = [
        KeyValue::new("route", "/items"),
        KeyValue::new("status", 200_i64),
    ];
    let run = || {
        counter.add(1, &attrs);
        hist.record(12.5, &attrs);
        gauge.record(3, &attrs);
    };
    run();
    let n = allocations(|| (0..N).for_each(|_| run()));
    assert_eq!(n, 0, "{n} allocations for {N} x 3 measurements");
    assert_eq!(file.drop_stats().measurements, 0);
}

#[test]
fn log_emit_allocates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = file(&dir);
    let logger = MmapLoggerProvider::new(&file).logger("no-alloc");
    let run = || {
        let mut rec = logger.create_log_record();
        rec.set_severity_number(Severity::Info);
        rec.set_severity_text("INFO");
        rec.set_event_name("item.served");
        rec.set_body("served an item".into());
        rec.add_attribute("item.id", 42_i64);
        rec.add_attribute("item.kind", "book");
        rec.add_attribute("cached", true);
        logger.emit(rec);
    };
    run();
    let n = allocations(|| (0..N).for_each(|_| run()));
    assert_eq!(n, 0, "{n} allocations for {N} log records");
    assert_eq!(file.drop_stats().logs, 0);
}

/// A processor that reads each started span the only way the SDK offers
/// (`Span::exported_data`, a copy) and does nothing else: the SDK's own cost
/// of a processor that looks at spans when they start.
#[derive(Debug)]
struct ReadingProcessor;

impl opentelemetry_sdk::trace::SpanProcessor for ReadingProcessor {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {
        std::hint::black_box(span.exported_data());
    }
    fn on_end(&self, span: opentelemetry_sdk::trace::SpanData) {
        std::hint::black_box(span);
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(
        &self,
        _timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

#[test]
fn span_processor_adds_nothing_to_the_sdks_allocations() {
    use opentelemetry_sdk::trace::SdkTracerProvider;
    let dir = tempfile::tempdir().unwrap();
    let file = file(&dir);
    let count = |provider: SdkTracerProvider| {
        let tracer = provider.tracer("no-alloc");
        let run = || {
            let mut span = tracer
                .span_builder("GET /items")
                .with_kind(SpanKind::Server)
                .with_attributes(four_attributes())
                .start(&tracer);
            span.set_attribute(KeyValue::new("late", 1_i64));
            span.end();
        };
        run();
        let n = allocations(|| (0..N).for_each(|_| run()));
        let _ = provider.shutdown();
        n
    };
    let ours = count(
        SdkTracerProvider::builder()
            .with_span_processor(opentelemetry_mmap::MmapSpanProcessor::new(&file))
            .build(),
    );
    let sdk_only = count(
        SdkTracerProvider::builder()
            .with_span_processor(ReadingProcessor)
            .build(),
    );
    println!(
        "SDK + MmapSpanProcessor: {ours} allocations for {N} spans; SDK + a processor that only reads: {sdk_only}"
    );
    assert!(sdk_only > 0);
    assert_eq!(
        ours, sdk_only,
        "ours must add nothing to the SDK's allocations"
    );
    assert_eq!(file.drop_stats().spans, 0);
}

#[test]
fn a_tracing_event_through_the_mmap_layer_allocates_nothing() {
    use tracing_subscriber::layer::SubscriberExt;
    let dir = tempfile::tempdir().unwrap();
    let file = file(&dir);
    let subscriber = tracing_subscriber::registry().with(opentelemetry_mmap::MmapLayer::new(&file));
    tracing::subscriber::with_default(subscriber, || {
        let run = || {
            tracing::info!(
                item.id = 42_i64,
                item.kind = "book",
                cached = true,
                "served an item"
            )
        };
        run();
        let n = allocations(|| (0..N).for_each(|_| run()));
        assert_eq!(n, 0, "{n} allocations for {N} events");
    });
    assert_eq!(file.drop_stats(), Default::default());
}

#[test]
fn a_tracing_span_through_the_mmap_layer_allocates_only_what_the_registry_keeps() {
    use tracing_subscriber::layer::SubscriberExt;
    // Per span: the layer's entry (`MmapSpans`), boxed into the registry's
    // extensions, and, with context activation (the default), the span's
    // OpenTelemetry context. Entering and exiting allocate nothing.
    for (activation, per_span) in [(true, 2), (false, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let file = file(&dir);
        let layer = opentelemetry_mmap::MmapLayer::new(&file).with_context_activation(activation);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let run = || {
                let span = tracing::info_span!(
                    "GET /items",
                    http.request.method = "GET",
                    http.response.status_code = 200_i64,
                    server.duration = 1.25,
                    cache.hit = true,
                );
                let _entered = span.enter();
            };
            run();
            let n = allocations(|| (0..N).for_each(|_| run()));
            assert_eq!(
                n,
                per_span * N,
                "{n} allocations for {N} spans ({activation})"
            );
        });
        assert_eq!(file.drop_stats(), Default::default());
    }
}
