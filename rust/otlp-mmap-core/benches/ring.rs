//! Ring throughput.
//!
//! - `write_span_pair/threads=N`: one iteration = each of N writer threads
//!   writes one span (a StartSpan and an EndSpan SpanEvent, 4 attributes whose
//!   keys are interned refs, sized and encoded straight into the slot). A
//!   reader drains the ring meanwhile (N=1: in the bench loop every 256
//!   pairs; N=2: on its own thread) so the ring never stays full; writers
//!   spin on `Full` (that spinning is part of the measured time).
//! - `read_decode_span_event`: one iteration = peek one published slot and
//!   decode its SpanEvent with prost (the ring is refilled outside the timing).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use otlp_mmap_core::proto::{self, any_value::Value, span_event};
use otlp_mmap_core::view::{KeyValueRefView, SpanEventKind, SpanEventView};
use otlp_mmap_core::{
    FileConfig, MmapReader, MmapWriter, RingConfig, RingKind, RingReader, Slot, WriteError,
};
use prost::Message;

const SLOTS: u64 = 4096;
/// Records written, then decoded, per round of the decode benchmarks: few
/// enough to stay in the cache, as for a reader that keeps up.
const DECODE_BATCH: u64 = 256;

struct Fixture {
    _dir: tempfile::TempDir,
    writer: Arc<MmapWriter>,
    reader: MmapReader,
    keys: [i64; 4],
    scope: i64,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.otlp");
    let ring = RingConfig {
        num_buffers: SLOTS,
        buffer_size: 512,
    };
    let cfg = FileConfig {
        events: RingConfig {
            num_buffers: 2,
            buffer_size: 64,
        },
        spans: ring,
        measurements: RingConfig {
            num_buffers: 2,
            buffer_size: 64,
        },
        dictionary_initial_size: 64 * 1024,
        dictionary_max_size: 1 << 20,
    };
    let writer = Arc::new(MmapWriter::create(&path, &cfg).unwrap());
    let keys = [
        "http.method",
        "http.route",
        "http.status_code",
        "net.peer.port",
    ]
    .map(|k| writer.intern_str(k).unwrap());
    let scope = writer
        .intern_message(&proto::InstrumentationScope {
            name_ref: writer.intern_str("bench").unwrap(),
            ..Default::default()
        })
        .unwrap();
    let reader = MmapReader::open(&path, true).unwrap();
    Fixture {
        _dir: dir,
        writer,
        reader,
        keys,
        scope,
    }
}

fn kv(key_ref: i64, v: Value) -> proto::KeyValueRef {
    proto::KeyValueRef {
        key_ref,
        value: Some(proto::AnyValue { value: Some(v) }),
    }
}

/// The StartSpan and EndSpan events of one span.
fn span_pair(keys: [i64; 4], scope: i64, thread: u8) -> (proto::SpanEvent, proto::SpanEvent) {
    let trace_id = vec![thread; 16];
    let span_id = vec![thread; 8];
    let start = proto::SpanEvent {
        trace_id: trace_id.clone(),
        span_id: span_id.clone(),
        scope_ref: scope,
        event: Some(span_event::Event::Start(span_event::StartSpan {
            parent_span_id: vec![7; 8],
            name: "GET /api/users/{id}".into(),
            kind: proto::SpanKind::Server as i32,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            attributes: vec![
                kv(keys[0], Value::StringValue("GET".into())),
                kv(keys[1], Value::StringValue("/api/users/{id}".into())),
                kv(keys[2], Value::IntValue(200)),
                kv(keys[3], Value::IntValue(44321)),
            ],
            flags: 1,
        })),
    };
    let end = proto::SpanEvent {
        trace_id,
        span_id,
        scope_ref: scope,
        event: Some(span_event::Event::End(span_event::EndSpan {
            end_time_unix_nano: 1_700_000_000_000_001_000,
            status: Some(proto::Status {
                message: String::new(),
                code: proto::StatusCode::Ok as i32,
            }),
        })),
    };
    (start, end)
}

/// Writes one span; spins while the ring is full. Returns the spins.
#[inline]
fn write_pair(w: &MmapWriter, start: &proto::SpanEvent, end: &proto::SpanEvent) -> u64 {
    let mut spins = 0;
    for ev in [start, end] {
        loop {
            match w.try_write(RingKind::Spans, ev) {
                Ok(_) => break,
                Err(WriteError::Full) => {
                    spins += 1;
                    std::hint::spin_loop();
                }
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    spins
}

/// Consumes every published slot without decoding; returns how many.
fn drain(reader: &MmapReader, ring: &mut RingReader) -> u64 {
    let mut n = 0;
    while let Slot::Ready(b) = ring.peek(reader.region()) {
        black_box(b);
        ring.advance();
        n += 1;
    }
    ring.release(reader.region()).unwrap();
    n
}

fn bench_write(c: &mut Criterion) {
    let mut g = c.benchmark_group("write_span_pair");

    let f = fixture();
    let (mut start, mut end) = span_pair(f.keys, f.scope, 1);
    let mut ring = f.reader.ring_reader(RingKind::Spans).unwrap();
    g.throughput(Throughput::Elements(2));
    g.bench_function("threads=1", |b| {
        let mut i = 0u64;
        b.iter(|| {
            if let Some(span_event::Event::Start(s)) = &mut start.event {
                s.start_time_unix_nano = i;
            }
            if let Some(span_event::Event::End(e)) = &mut end.event {
                e.end_time_unix_nano = i + 1;
            }
            write_pair(&f.writer, &start, &end);
            i += 1;
            if i.is_multiple_of(256) {
                drain(&f.reader, &mut ring);
            }
        });
        drain(&f.reader, &mut ring);
    });
    drop(f);

    // The ring alone: the same two records, encoded once up front and copied
    // into each claimed slot (what a hand-written encoder like the SDK's costs
    // on top of this is measured by its own benchmarks).
    let f = fixture();
    let (start, end) = span_pair(f.keys, f.scope, 1);
    let (start_bytes, end_bytes) = (start.encode_to_vec(), end.encode_to_vec());
    let mut ring = f.reader.ring_reader(RingKind::Spans).unwrap();
    g.throughput(Throughput::Elements(2));
    g.bench_function("threads=1/preencoded", |b| {
        let mut i = 0u64;
        b.iter(|| {
            for bytes in [&start_bytes, &end_bytes] {
                while f
                    .writer
                    .try_write_with(RingKind::Spans, bytes.len(), |slot| {
                        slot.copy_from_slice(bytes);
                        slot.len()
                    })
                    .is_err()
                {
                    drain(&f.reader, &mut ring);
                }
            }
            i += 1;
            if i.is_multiple_of(256) {
                drain(&f.reader, &mut ring);
            }
        });
        drain(&f.reader, &mut ring);
    });
    drop(f);

    let f = fixture();
    let mut ring = f.reader.ring_reader(RingKind::Spans).unwrap();
    g.throughput(Throughput::Elements(4));
    g.bench_function("threads=2", |b| {
        b.iter_custom(|iters| {
            let done = AtomicBool::new(false);
            std::thread::scope(|s| {
                let t0 = Instant::now();
                let writers: Vec<_> = (0..2u8)
                    .map(|t| {
                        let w = Arc::clone(&f.writer);
                        let (start, end) = span_pair(f.keys, f.scope, t);
                        s.spawn(move || {
                            (0..iters)
                                .map(|_| write_pair(&w, &start, &end))
                                .sum::<u64>()
                        })
                    })
                    .collect();
                let reader = s.spawn(|| {
                    let mut n = 0;
                    while !done.load(Ordering::Acquire) {
                        let got = drain(&f.reader, &mut ring);
                        n += got;
                        if got == 0 {
                            std::thread::yield_now();
                        }
                    }
                    n + drain(&f.reader, &mut ring)
                });
                for w in writers {
                    black_box(w.join().unwrap());
                }
                let elapsed = t0.elapsed();
                done.store(true, Ordering::Release);
                assert_eq!(reader.join().unwrap(), 4 * iters);
                elapsed
            })
        });
    });
    g.finish();
}

fn bench_read(c: &mut Criterion) {
    let f = fixture();
    let (start, end) = span_pair(f.keys, f.scope, 1);
    let mut ring = f.reader.ring_reader(RingKind::Spans).unwrap();
    let mut g = c.benchmark_group("read_decode_span_event");
    g.throughput(Throughput::Elements(1));
    g.bench_function("prost", |b| {
        b.iter_custom(|iters| {
            let mut left = iters;
            let mut elapsed = Duration::ZERO;
            while left > 0 {
                let batch = left.min(DECODE_BATCH);
                for i in 0..batch {
                    let ev = if i % 2 == 0 { &start } else { &end };
                    f.writer.try_write(RingKind::Spans, ev).unwrap();
                }
                let t0 = Instant::now();
                for _ in 0..batch {
                    let Slot::Ready(bytes) = ring.peek(f.reader.region()) else {
                        panic!("slot not published")
                    };
                    black_box(proto::SpanEvent::decode(bytes).unwrap());
                    ring.advance();
                }
                ring.release(f.reader.region()).unwrap();
                elapsed += t0.elapsed();
                left -= batch;
            }
            elapsed
        });
    });
    g.bench_function("view", |b| {
        b.iter_custom(|iters| {
            let mut left = iters;
            let mut elapsed = Duration::ZERO;
            while left > 0 {
                let batch = left.min(DECODE_BATCH);
                for i in 0..batch {
                    let ev = if i % 2 == 0 { &start } else { &end };
                    f.writer.try_write(RingKind::Spans, ev).unwrap();
                }
                let t0 = Instant::now();
                for _ in 0..batch {
                    let Slot::Ready(bytes) = ring.peek(f.reader.region()) else {
                        panic!("slot not published")
                    };
                    let view = SpanEventView::parse(bytes).unwrap();
                    if let SpanEventKind::Start { attributes, .. } = view.event {
                        for kv in attributes.iter() {
                            black_box(KeyValueRefView::parse(kv).unwrap());
                        }
                    }
                    black_box(view);
                    ring.advance();
                }
                ring.release(f.reader.region()).unwrap();
                elapsed += t0.elapsed();
                left -= batch;
            }
            elapsed
        });
    });
    g.finish();
    let len = start.encoded_len() + end.encoded_len();
    eprintln!("(a span pair is {len} bytes of protobuf)");
}

criterion_group!(benches, bench_write, bench_read);
criterion_main!(benches);
