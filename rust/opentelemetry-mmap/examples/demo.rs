//! A small HTTP-ish server that records its work into an OTLP-MMAP file:
//! each request is a SERVER span with a DB CLIENT child span and an INTERNAL
//! rendering span, logs inside the spans, a request counter, a latency
//! histogram and an in-flight gauge.
//!
//! ```text
//! cargo run -p opentelemetry-mmap --example demo -- [PATH] [--rate N] [--duration-secs N]
//! ```
//!
//! PATH defaults to `OTEL_MMAP_FILE`, then `/tmp/otlp-mmap/demo.otlp` (the
//! directory is created). Runs until Ctrl-C / SIGTERM, or for
//! `--duration-secs`; `--rate` is requests per second (default 5). Prints a
//! summary line every second.
//!
//! On SIGUSR1 the next request gets stuck: its call to a payment service never
//! returns, so its SERVER and CLIENT spans stay open until the process is
//! stopped. `make run` uses it to kill the demo with SIGKILL in the middle of
//! a request and show the open spans arriving as incomplete spans.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::logs::{LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_mmap::{
    MmapExporterFile, MmapLoggerProvider, MmapMeterProvider, MmapTracer, MmapTracerProvider,
};

static STOP: AtomicBool = AtomicBool::new(false);
static GET_STUCK: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

extern "C" fn on_get_stuck(_: libc::c_int) {
    GET_STUCK.store(true, Ordering::Relaxed);
}

struct Args {
    path: String,
    rate: f64,
    duration: Option<Duration>,
}

fn parse_args() -> Result<Args, String> {
    let mut path = None;
    let mut rate = 5.0;
    let mut duration = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value"))
                .and_then(|v| v.parse::<f64>().map_err(|e| format!("{name} {v}: {e}")))
        };
        match a.as_str() {
            "--rate" => rate = value("--rate")?,
            "--duration-secs" => {
                duration = Some(Duration::from_secs_f64(value("--duration-secs")?))
            }
            "-h" | "--help" => {
                return Err("usage: demo [PATH] [--rate N] [--duration-secs N]".into());
            }
            p if !p.starts_with("--") && path.is_none() => path = Some(p.to_owned()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let path = path
        .or_else(|| {
            std::env::var("OTEL_MMAP_FILE")
                .ok()
                .filter(|p| !p.is_empty())
        })
        .unwrap_or_else(|| "/tmp/otlp-mmap/demo.otlp".to_owned());
    if rate <= 0.0 {
        return Err("--rate must be positive".into());
    }
    Ok(Args {
        path,
        rate,
        duration,
    })
}

/// A tiny deterministic pseudo-random source for the simulated work.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const ROUTES: [&str; 4] = ["/items", "/items/{id}", "/cart", "/checkout"];

#[allow(unsafe_code)]
fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // SAFETY: the handlers only store to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_stop as *const () as libc::sighandler_t);
        libc::signal(
            libc::SIGUSR1,
            on_get_stuck as *const () as libc::sighandler_t,
        );
    }

    let file = match MmapExporterFile::builder()
        .with_path(&args.path)
        .with_resource(
            opentelemetry_sdk::Resource::builder_empty()
                .with_service_name("otlp-mmap-demo")
                .build(),
        )
        .build()
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cannot create {}: {e}", args.path);
            std::process::exit(1);
        }
    };
    println!(
        "demo: writing to {} at {} requests/s (3 spans and 3 log records each)",
        args.path, args.rate
    );

    let tracer = MmapTracerProvider::new(&file).tracer("demo-server");
    let meters = MmapMeterProvider::with_interval(&file, Duration::from_secs(5));
    let meter = meters.meter("demo-server");
    let logger = MmapLoggerProvider::new(&file).logger("demo-server");
    let requests = meter
        .u64_counter("http.server.requests")
        .with_description("Requests handled")
        .with_unit("{request}")
        .build();
    let latency = meter
        .f64_histogram("http.server.request.duration")
        .with_unit("ms")
        .build();
    let in_flight = meter.i64_gauge("http.server.active_requests").build();
    let _drops = meters.export_drop_stats();

    let log = |severity: Severity, body: &'static str, attrs: &[(&'static str, i64)]| {
        let mut rec = logger.create_log_record();
        rec.set_severity_number(severity);
        rec.set_severity_text(severity.name());
        rec.set_body(body.into());
        for (k, v) in attrs {
            rec.add_attribute(*k, *v);
        }
        logger.emit(rec);
    };

    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let mut next = Instant::now();
    let mut last_report = Instant::now();
    let mut dice = Dice(0x2545_f491_4f6c_dd1d);
    let mut handled: u64 = 0;
    let dropped = || {
        let d = file.drop_stats();
        d.spans + d.logs + d.measurements + d.dictionary
    };

    while !STOP.load(Ordering::Relaxed) && args.duration.is_none_or(|d| started.elapsed() < d) {
        if GET_STUCK.swap(false, Ordering::Relaxed) {
            stuck_request(&tracer, &log, handled + 1);
            continue;
        }
        let t0 = Instant::now();
        let route = ROUTES[dice.below(ROUTES.len() as u64) as usize];
        in_flight.record(1, &[KeyValue::new("http.route", route)]);

        let server = tracer
            .span_builder(route)
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", route),
                KeyValue::new("server.port", 8080_i64),
            ])
            .start(&tracer);
        let cx = Context::current_with_span(server);
        let _active = cx.clone().attach();
        log(
            Severity::Info,
            "request received",
            &[("request.number", handled as i64)],
        );

        // A database query.
        let mut db = tracer
            .span_builder("SELECT items")
            .with_kind(SpanKind::Client)
            .start(&tracer);
        db.set_attributes([
            KeyValue::new("db.system.name", "postgresql"),
            KeyValue::new("db.operation.name", "SELECT"),
            KeyValue::new("db.collection.name", "items"),
        ]);
        let rows = dice.below(50) as i64;
        db.set_attribute(KeyValue::new("db.response.returned_rows", rows));
        let failed = dice.below(50) == 0;
        if failed {
            db.set_status(Status::error("connection reset"));
        }
        db.end();

        // Rendering.
        let mut render = tracer.start("render");
        render.add_event("template loaded", vec![]);
        render.set_attribute(KeyValue::new("render.items", rows));
        render.end();

        let status = if failed { 500_i64 } else { 200 };
        if failed {
            log(
                Severity::Error,
                "database query failed",
                &[("http.response.status_code", status)],
            );
            cx.span().set_status(Status::error("database error"));
        } else {
            log(Severity::Debug, "response sent", &[("rows", rows)]);
        }
        cx.span()
            .set_attribute(KeyValue::new("http.response.status_code", status));
        drop(_active);
        drop(cx); // ends the server span

        let attrs = [
            KeyValue::new("http.route", route),
            KeyValue::new("http.response.status_code", status),
        ];
        requests.add(1, &attrs);
        latency.record(t0.elapsed().as_secs_f64() * 1000.0, &attrs);
        in_flight.record(0, &[KeyValue::new("http.route", route)]);
        handled += 1;

        if last_report.elapsed() >= Duration::from_secs(1) {
            println!(
                "demo: {handled} requests handled, {} records dropped",
                dropped()
            );
            last_report = Instant::now();
        }
        next += interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    meters.observe_now();
    println!(
        "demo: done, {handled} requests handled, {} records dropped",
        dropped()
    );
}

/// A checkout whose call to the payment service never returns: the SERVER
/// span and its CLIENT child stay open until the process stops. Stopped
/// normally (SIGINT, SIGTERM), it ends them with an error; killed, it never
/// does, and the reader reports them as incomplete spans.
fn stuck_request(
    tracer: &MmapTracer,
    log: &impl Fn(Severity, &'static str, &[(&'static str, i64)]),
    number: u64,
) {
    let server = tracer
        .span_builder("/checkout")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("http.route", "/checkout"),
            KeyValue::new("server.port", 8080_i64),
        ])
        .start(tracer);
    let cx = Context::current_with_span(server);
    let _active = cx.clone().attach();
    log(
        Severity::Info,
        "request received",
        &[("request.number", number as i64)],
    );
    let mut payment = tracer
        .span_builder("POST /payments")
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("server.address", "payment-service"),
            KeyValue::new("http.request.method", "POST"),
        ])
        .start(tracer);
    log(
        Severity::Info,
        "calling the payment service",
        &[("request.number", number as i64)],
    );
    println!(
        "demo: request {number} (POST /checkout) is stuck waiting for the payment service, its spans open"
    );
    while !STOP.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    payment.set_status(Status::error("interrupted"));
    payment.end();
    cx.span().set_status(Status::error("interrupted"));
}
