//! The `reader` bench's workloads as one plain run, for instruction counts:
//!
//! ```text
//! cargo bench -p otlp-mmap-collector --bench reader_instructions --no-run
//! valgrind --tool=callgrind --toggle-collect='*measured_drain*' \
//!     target/release/deps/reader_instructions-<hash> spans 20000
//! ```
//!
//! gives the reader's instructions for 20000 spans (Ir of the run / 20000):
//! only the drains after a warm-up are collected, not the writer filling
//! the ring. Without valgrind it prints the time per item (noisy: one run).
//! Arguments: `spans`, `logs`, `measurements`, or `spans-flat`,
//! `logs-flat` (with the flat hand-off of the Collector's receiver)
//! (default: the first three), and the number of items (default 100000).

mod workload;

use std::time::Instant;

use workload::{Logs, Measurements, ROUND, Spans};

trait Workload {
    fn fill(&mut self, n: u64);
    fn drain(&mut self) -> u64;
}

macro_rules! workload {
    ($t:ty) => {
        impl Workload for $t {
            fn fill(&mut self, n: u64) {
                <$t>::fill(self, n)
            }
            fn drain(&mut self) -> u64 {
                <$t>::drain(self)
            }
        }
    };
}
workload!(Spans);
workload!(Logs);
workload!(Measurements);

/// The drain that is measured (its name is what callgrind collects).
#[inline(never)]
fn measured_drain(w: &mut dyn Workload, n: u64) {
    let mut got = 0;
    while got < n {
        got += w.drain();
    }
}

fn run(name: &str, w: &mut dyn Workload, items: u64) {
    // The warm-up, outside `measured_drain`.
    for _ in 0..4 {
        w.fill(ROUND);
        let mut got = 0;
        while got < ROUND {
            got += w.drain();
        }
    }
    let mut left = items;
    let mut elapsed = std::time::Duration::ZERO;
    while left > 0 {
        let n = left.min(ROUND);
        w.fill(n);
        let t0 = Instant::now();
        measured_drain(w, n);
        elapsed += t0.elapsed();
        left -= n;
    }
    println!(
        "{name}: {items} items, {:.1} ns/item",
        elapsed.as_nanos() as f64 / items as f64
    );
}

fn main() {
    // `cargo bench` passes `--bench`; skip flags.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let which = args.first().map(String::as_str).unwrap_or("all");
    let items = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    if matches!(which, "spans" | "all") {
        run("spans", &mut Spans::new(), items);
    }
    if matches!(which, "logs" | "all") {
        run("logs", &mut Logs::new(), items);
    }
    if matches!(which, "measurements" | "all") {
        run("measurements", &mut Measurements::new(), items);
    }
    if which == "spans-flat" {
        run("spans-flat", &mut Spans::flat(), items);
    }
    if which == "logs-flat" {
        run("logs-flat", &mut Logs::flat(), items);
    }
}
