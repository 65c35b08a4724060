//! A test writer for the reliability suite (`go/e2e/reliability_test.go`):
//! it writes numbered records, can leave spans open, and reports on stdout
//! what it has published, so a test can kill it (SIGKILL) at any moment and
//! check what reached the Collector.
//!
//! ```text
//! crashy PATH [--service NAME] [--prefix P] [--count N] [--open K]
//!             [--rate R] [--duration-secs S] [--exit]
//! ```
//!
//! 1. writes records `0..N`: for each `i`, a span `"{P} span {i}"` (attribute
//!    `i`), a log record with body `"{P} log {i}"` and `+1` on the counter
//!    `crashy.count`;
//! 2. starts `K` spans `"{P} open {k}"` that it never ends;
//! 3. prints `ready written=N` and, with `--rate`, keeps writing records
//!    `N, N+1, ...` at R records per second, printing `written=I` every 100 ms
//!    (every record below I is published), for `--duration-secs` or forever;
//! 4. prints `done written=W dropped_spans=.. dropped_logs=.. dropped_measurements=..`
//!    and then waits to be killed, or exits with `--exit`.
//!
//! Ring sizes come from the `OTEL_MMAP_*` environment variables.

use std::io::Write;
use std::time::{Duration, Instant};

use opentelemetry::logs::{LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Span, Tracer, TracerProvider};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_mmap::{
    MmapExporterFile, MmapLoggerProvider, MmapMeterProvider, MmapTracerProvider,
};

struct Args {
    path: String,
    service: String,
    prefix: String,
    count: u64,
    open: u64,
    rate: f64,
    duration: Option<Duration>,
    exit: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        path: String::new(),
        service: "crashy".into(),
        prefix: "c".into(),
        count: 0,
        open: 0,
        rate: 0.0,
        duration: None,
        exit: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let num = |name: &str, v: String| v.parse::<f64>().map_err(|e| format!("{name} {v}: {e}"));
        match arg.as_str() {
            "--service" => a.service = value("--service")?,
            "--prefix" => a.prefix = value("--prefix")?,
            "--count" => a.count = num("--count", value("--count")?)? as u64,
            "--open" => a.open = num("--open", value("--open")?)? as u64,
            "--rate" => a.rate = num("--rate", value("--rate")?)?,
            "--duration-secs" => {
                a.duration = Some(Duration::from_secs_f64(num(
                    "--duration-secs",
                    value("--duration-secs")?,
                )?))
            }
            "--exit" => a.exit = true,
            p if !p.starts_with("--") && a.path.is_empty() => a.path = p.to_owned(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.path.is_empty() {
        return Err("usage: crashy PATH [--service NAME] [--prefix P] [--count N] [--open K] [--rate R] [--duration-secs S] [--exit]".into());
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let file = match MmapExporterFile::builder()
        .with_path(&args.path)
        .with_resource(
            opentelemetry_sdk::Resource::builder_empty()
                .with_service_name(args.service.clone())
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
    let scope = InstrumentationScope::builder("crashy").build();
    let tracer = MmapTracerProvider::new(&file).tracer_with_scope(scope.clone());
    let meters = MmapMeterProvider::new(&file);
    let counter = meters
        .meter_with_scope(scope.clone())
        .u64_counter("crashy.count")
        .build();
    let logger = MmapLoggerProvider::new(&file).logger_with_scope(scope);
    let p = &args.prefix;

    let record = |i: u64| {
        let mut span = tracer.start(format!("{p} span {i}"));
        span.set_attribute(KeyValue::new("i", i as i64));
        let mut rec = logger.create_log_record();
        rec.set_severity_number(Severity::Info);
        rec.set_body(format!("{p} log {i}").into());
        rec.add_attribute("i", i as i64);
        logger.emit(rec);
        counter.add(1, &[]);
        span.end();
    };

    let mut out = std::io::stdout().lock();
    for i in 0..args.count {
        record(i);
    }
    let open: Vec<_> = (0..args.open)
        .map(|k| tracer.start(format!("{p} open {k}")))
        .collect();
    let _ = writeln!(out, "ready written={}", args.count);
    let _ = out.flush();

    let mut written = args.count;
    if args.rate > 0.0 {
        let started = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / args.rate);
        let mut next = Instant::now();
        let mut last_report = Instant::now();
        while args.duration.is_none_or(|d| started.elapsed() < d) {
            record(written);
            written += 1;
            if last_report.elapsed() >= Duration::from_millis(100) {
                let _ = writeln!(out, "written={written}");
                let _ = out.flush();
                last_report = Instant::now();
            }
            next += interval;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else if now - next > Duration::from_secs(1) {
                next = now; // fell behind: do not burst
            }
        }
    }
    let d = file.drop_stats();
    let _ = writeln!(
        out,
        "done written={written} dropped_spans={} dropped_logs={} dropped_measurements={}",
        d.spans, d.logs, d.measurements
    );
    let _ = out.flush();
    drop(out);
    if args.exit {
        // The open spans stay open: the file handle is dropped without ending them.
        std::mem::forget(open);
        return;
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
