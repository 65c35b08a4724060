//! A test writer for the reliability suite (`go/e2e/reliability_test.go`):
//! it writes numbered records, can leave spans open, and reports on stdout
//! what it has published, so a test can kill it (SIGKILL) at any moment and
//! check what reached the Collector.
//!
//! ```text
//! crashy PATH [--service NAME] [--prefix P] [--count N] [--open K]
//!             [--rate R] [--duration-secs S] [--exit] [--hold H]
//! crashy PATH --threads T [--prefix P] [--stall]
//! ```
//!
//! 1. writes records `0..N`: for each `i`, a span `"{P} span {i}"` (attribute
//!    `i`), a log record with body `"{P} log {i}"` and `+1` on the counter
//!    `crashy.count`;
//! 2. starts `K` spans `"{P} open {k}"` that it never ends;
//! 3. prints `ready written=N` and, with `--rate`, keeps writing records
//!    `N, N+1, ...` at R records per second, printing `written=I` every 100 ms
//!    (every record below I is published), for `--duration-secs` or forever;
//!    With `--hold H`, the span of record `i` ends only once record `i + H`
//!    was written, so H spans are open at any moment (those of the last H
//!    records never end);
//! 4. prints `done written=W dropped_spans=.. dropped_logs=.. dropped_measurements=..`
//!    and then waits to be killed, or exits with `--exit`.
//!
//! With `--threads T`, T threads write log records `"{P}{t} log {i}"`
//! (t = 0..T, i = 0, 1, ... per thread) through the one shared `MmapWriter`
//! as fast as they can, until the process is killed. A record that finds the
//! ring full is retried, so each thread's records are published in order and
//! without gaps; the main thread prints `published t0=I0 t1=I1 ...` every
//! 20 ms (every record of thread t below It is published). With `--stall`,
//! thread 0 claims a slot after its 100th record and never publishes it (it
//! hangs while encoding, like a thread stopped by a debugger or stuck on a
//! page fault), so the file always holds a stranded slot when it is killed.
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
    threads: usize,
    stall: bool,
    hold: usize,
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
        threads: 0,
        stall: false,
        hold: 0,
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
            "--threads" => a.threads = num("--threads", value("--threads")?)? as usize,
            "--stall" => a.stall = true,
            "--hold" => a.hold = num("--hold", value("--hold")?)? as usize,
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
    if args.threads > 0 {
        write_from_threads(&file, &scope, &args.prefix, args.threads, args.stall);
    }
    let tracer = MmapTracerProvider::new(&file).tracer_with_scope(scope.clone());
    let meters = MmapMeterProvider::new(&file);
    let counter = meters
        .meter_with_scope(scope.clone())
        .u64_counter("crashy.count")
        .build();
    let logger = MmapLoggerProvider::new(&file).logger_with_scope(scope);
    let p = &args.prefix;

    let held = std::cell::RefCell::new(std::collections::VecDeque::new());
    let record = |i: u64| {
        let mut span = tracer.start(format!("{p} span {i}"));
        span.set_attribute(KeyValue::new("i", i as i64));
        let mut rec = logger.create_log_record();
        rec.set_severity_number(Severity::Info);
        rec.set_body(format!("{p} log {i}").into());
        rec.add_attribute("i", i as i64);
        logger.emit(rec);
        counter.add(1, &[]);
        let mut held = held.borrow_mut();
        held.push_back(span);
        while held.len() > args.hold {
            if let Some(mut s) = held.pop_front() {
                s.end();
            }
        }
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
        std::mem::forget(held.into_inner());
        return;
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// `--threads`: unpaced writers sharing one file, until the process is killed.
fn write_from_threads(
    file: &MmapExporterFile,
    scope: &InstrumentationScope,
    prefix: &str,
    threads: usize,
    stall: bool,
) -> ! {
    use otlp_mmap_core::proto::{AnyValue, Event, any_value::Value};
    use otlp_mmap_core::{RingKind, ring::WriteError};
    use std::sync::atomic::{AtomicU64, Ordering};

    const PADDING: &str = concat!(
        "INFO: a log record of a realistic size, padded so that encoding it takes ",
        "as long as encoding a typical request log with a few attributes does; ",
        "a thread killed while it encodes leaves its claimed slot unpublished."
    );
    let scope_ref = file.scope_ref(scope);
    let published: Vec<AtomicU64> = (0..threads).map(|_| AtomicU64::new(0)).collect();
    std::thread::scope(|s| {
        for (t, count) in published.iter().enumerate() {
            s.spawn(move || {
                for i in 0u64.. {
                    if stall && t == 0 && i == 100 {
                        // Claims a slot and hangs inside it for good.
                        let _ = file.writer().try_write_with(RingKind::Events, 16, |_| {
                            loop {
                                std::thread::sleep(Duration::from_secs(3600));
                            }
                        });
                    }
                    let event = Event {
                        scope_ref,
                        severity_number: 9,
                        // A realistically sized record: its encoding is what a
                        // thread does while it holds a claimed slot.
                        severity_text: PADDING.into(),
                        body: Some(AnyValue {
                            value: Some(Value::StringValue(format!("{prefix}{t} log {i}"))),
                        }),
                        ..Default::default()
                    };
                    loop {
                        match file.writer().try_write(RingKind::Events, &event) {
                            Ok(_) => break,
                            // Full: wait for the reader like an app that
                            // retries would, then race the other threads
                            // for the slots it frees.
                            Err(WriteError::Full) => std::thread::sleep(Duration::from_micros(200)),
                            Err(e) => panic!("record {i} of thread {t}: {e:?}"),
                        }
                    }
                    count.store(i + 1, Ordering::Release);
                }
            });
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "ready written=0");
        loop {
            let line: Vec<String> = published
                .iter()
                .enumerate()
                .map(|(t, c)| format!("t{t}={}", c.load(Ordering::Acquire)))
                .collect();
            let _ = writeln!(out, "published {}", line.join(" "));
            let _ = out.flush();
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}
