//! How long a writer thread holds a claimed, unpublished slot on a loaded
//! machine: the measurement behind the reader's default `stuck_slot_timeout`
//! (RELIABILITY.md).
//!
//! ```text
//! cargo run --release -p otlp-mmap-core --example claim_stall -- [SECONDS] [WRITERS] [HOGS]
//! ```
//!
//! WRITERS threads (default 8) write records as fast as they can while a
//! reader thread drains the ring and HOGS threads (default 4) spin, so that
//! the writers are preempted all the time (on a 2-core machine: 13 runnable
//! threads). For each record it times the span from the moment the slot was
//! claimed (the encode closure starts) to the moment it was published
//! (`try_write_with` returned), and prints the distribution.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use otlp_mmap_core::{FileConfig, MmapReader, MmapWriter, RingConfig, RingKind, Slot};

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("a number"));
    let seconds = args.next().unwrap_or(20);
    let writers = args.next().unwrap_or(8) as usize;
    let hogs = args.next().unwrap_or(4) as usize;

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("stall.otlp");
    let ring = RingConfig {
        num_buffers: 1 << 16,
        buffer_size: 128,
    };
    let config = FileConfig {
        events: ring,
        spans: ring,
        measurements: ring,
        ..FileConfig::default()
    };
    let writer = Arc::new(MmapWriter::create(&path, &config).expect("create"));
    let reader = MmapReader::open(&path, true).expect("open");
    let stop = Arc::new(AtomicBool::new(false));

    let hog_threads: Vec<_> = (0..hogs)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    let writer_threads: Vec<_> = (0..writers)
        .map(|_| {
            let (w, stop) = (writer.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut held = Vec::with_capacity(1 << 20);
                while !stop.load(Ordering::Relaxed) {
                    let mut claimed = None;
                    let res = w.try_write_with(RingKind::Events, 64, |buf| {
                        claimed = Some(Instant::now());
                        buf[..64].fill(7);
                        64
                    });
                    if res.is_ok()
                        && let Some(t) = claimed
                    {
                        held.push(t.elapsed());
                    }
                }
                held
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut ring_reader = reader.ring_reader(RingKind::Events).expect("ring");
    while Instant::now() < deadline {
        let mut n = 0;
        while let Slot::Ready(_) | Slot::Corrupt(_) = ring_reader.peek(reader.region()) {
            ring_reader.advance();
            n += 1;
            if n == 4096 {
                break;
            }
        }
        let _ = ring_reader.release(reader.region());
        if n == 0 {
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<Duration> = writer_threads
        .into_iter()
        .flat_map(|t| t.join().expect("writer"))
        .collect();
    for h in hog_threads {
        h.join().expect("hog");
    }
    all.sort_unstable();
    let q = |p: f64| all[((all.len() - 1) as f64 * p) as usize];
    let over = |d: Duration| all.iter().filter(|&&x| x > d).count();
    println!(
        "{} records, {writers} writers, {hogs} hogs, {} cores, {seconds} s",
        all.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "claim-to-publish: p50 {:?}  p99.9 {:?}  p99.999 {:?}  max {:?}",
        q(0.5),
        q(0.999),
        q(0.99999),
        all[all.len() - 1]
    );
    println!(
        "held longer than 1 ms: {}  10 ms: {}  100 ms: {}  1 s: {}",
        over(Duration::from_millis(1)),
        over(Duration::from_millis(10)),
        over(Duration::from_millis(100)),
        over(Duration::from_secs(1))
    );
}
