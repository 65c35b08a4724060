//! The production path under hostile files (issue 12, item 4): every file
//! goes through `otlp_mmap_collector::drive::drive_bytes_in`, the routine of
//! the fuzz target `fuzz/fuzz_targets/drive_file.rs`, which polls and
//! commits every signal, collects metrics and shuts down like the receiver,
//! and panics when the reader breaks a promise or its loop does not end
//! within its bound.
//!
//! - the committed corpus (`fuzz/corpus/drive_file`, made by [`seeds`];
//!   `UPDATE_CORPUS=1` rewrites it) and the core crate's corpus are replayed;
//! - mutations of them run for `OTLP_MMAP_FUZZ_CASES` cases (default 256) or
//!   for `OTLP_MMAP_FUZZ_SECONDS` seconds (`make fuzz`, with a random seed
//!   printed), each case within a heap bound; a case that fails is saved
//!   under `CARGO_TARGET_TMPDIR/fuzz-findings` and reported.

use std::path::{Path, PathBuf};
use std::time::Instant;

use otlp_mmap_collector::drive::drive_bytes_in;
use otlp_mmap_collector::{FileReader, ReaderOptions, Signal};
use otlp_mmap_core::layout::{dictionary_header, header, ring_header};
use otlp_mmap_core::proto::{self, any_value::Value, metric_ref::Aggregation, span_event::Event};
use otlp_mmap_core::{FileConfig, MmapWriter, RingConfig, RingKind};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use prost::Message;

// ---------------------------------------------------------------------------
// Heap watch: live bytes and their peak.

#[global_allocator]
static ALLOC: otlp_mmap_test_support::CountingAllocator = otlp_mmap_test_support::CountingAllocator;

/// Most heap one drive of a corpus-sized file (< 64 KiB) may hold at once.
const HEAP_BOUND: usize = 32 << 20;

/// Runs `f`; returns its result and the peak of live heap bytes above the
/// start. (Tests of this binary run one at a time: see `SERIAL`.)
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    otlp_mmap_test_support::peak_live_bytes_during(f)
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

// ---------------------------------------------------------------------------
// The seed corpus, made by our writer.

const START: u64 = 1_700_000_000_000_000_000;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/drive_file")
}

fn core_corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../otlp-mmap-core/fuzz/corpus/open_and_drain")
}

fn tiny() -> FileConfig {
    let ring = |size| RingConfig {
        num_buffers: 8,
        buffer_size: size,
    };
    FileConfig {
        events: ring(256),
        spans: ring(256),
        measurements: ring(128),
        dictionary_initial_size: 512,
        dictionary_max_size: 64 << 10,
    }
}

fn kv(w: &MmapWriter, key: &str, v: Value) -> proto::KeyValueRef {
    proto::KeyValueRef {
        key_ref: w.intern_str(key).unwrap(),
        value: Some(proto::AnyValue { value: Some(v) }),
    }
}

fn scope(w: &MmapWriter) -> i64 {
    let resource = proto::Resource {
        attributes: vec![kv(w, "service.name", Value::StringValue("seed".into()))],
        dropped_attributes_count: 0,
    };
    w.intern_message(&proto::InstrumentationScope {
        name_ref: w.intern_str("seed.scope").unwrap(),
        version_ref: w.intern_str("1").unwrap(),
        attributes: vec![kv(w, "s", Value::BoolValue(true))],
        dropped_attributes_count: 0,
        resource_ref: w.intern_message(&resource).unwrap(),
    })
    .unwrap()
}

fn span(id: u8, scope_ref: i64, event: Event) -> proto::SpanEvent {
    proto::SpanEvent {
        trace_id: vec![9; 16],
        span_id: vec![id; 8],
        scope_ref,
        event: Some(event),
    }
}

fn ctx(trace: u8, span: u8) -> Option<proto::SpanContext> {
    Some(proto::SpanContext {
        trace_id: vec![trace; 16],
        span_id: vec![span; 8],
        flags: 1,
    })
}

fn write_spans(w: &MmapWriter, scope: i64) {
    use proto::span_event::{AddLink, ChangeSpanName, EndSpan, StartSpan, UpdateAttributes};
    let nested = w
        .intern_message(&proto::AnyValue {
            value: Some(Value::KvlistValue(proto::KeyValueList {
                values: vec![kv(w, "inner", Value::IntValue(1))],
            })),
        })
        .unwrap();
    let attrs: Vec<_> = (0..6)
        .map(|i| kv(w, &format!("a{i}"), Value::IntValue(i)))
        .chain([kv(w, "n", Value::ValueRef(nested))])
        .collect();
    let events = [
        span(
            1,
            scope,
            Event::Start(StartSpan {
                name: "op".into(),
                kind: 2,
                start_time_unix_nano: START,
                attributes: attrs.clone(),
                flags: 1,
                ..Default::default()
            }),
        ),
        span(
            1,
            scope,
            Event::Name(ChangeSpanName {
                name: "renamed".into(),
            }),
        ),
        span(
            1,
            scope,
            Event::Attributes(UpdateAttributes {
                attributes: vec![
                    kv(w, "a0", Value::StringValue("x".into())),
                    kv(w, "late", Value::BoolValue(true)),
                ],
            }),
        ),
        span(
            1,
            scope,
            Event::Link(AddLink {
                links: (0..3)
                    .map(|i| proto::span_event::add_link::Link {
                        trace_id: vec![i; 16],
                        span_id: vec![i; 8],
                        attributes: attrs[..1].to_vec(),
                        ..Default::default()
                    })
                    .collect(),
            }),
        ),
        span(
            1,
            scope,
            Event::End(EndSpan {
                end_time_unix_nano: START + 10,
                status: Some(proto::Status {
                    message: "ok".into(),
                    code: 1,
                }),
            }),
        ),
        span(
            2,
            scope,
            Event::Start(StartSpan {
                name: "never ends".into(),
                start_time_unix_nano: START,
                ..Default::default()
            }),
        ),
        span(3, scope, Event::End(EndSpan::default())),
    ];
    for e in events {
        w.try_write(RingKind::Spans, &e).unwrap();
    }
}

fn write_logs(w: &MmapWriter, scope: i64) {
    let leaf = w
        .intern_message(&proto::AnyValue {
            value: Some(Value::StringValue("leaf".into())),
        })
        .unwrap();
    let bodies = [
        Value::StringValue("s".into()),
        Value::IntValue(-1),
        Value::DoubleValue(0.5),
        Value::BytesValue(vec![0, 1]),
        Value::ArrayValue(proto::ArrayValue {
            values: vec![proto::AnyValue {
                value: Some(Value::ValueRef(leaf)),
            }],
        }),
        Value::KvlistValue(proto::KeyValueList {
            values: vec![kv(w, "k", Value::BoolValue(false))],
        }),
        Value::ValueRef(leaf),
    ];
    for (i, body) in bodies.into_iter().enumerate() {
        let ev = proto::Event {
            scope_ref: scope,
            time_unix_nano: START + i as u64,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(proto::AnyValue { value: Some(body) }),
            event_name_ref: if i % 2 == 0 {
                w.intern_str("evt").unwrap()
            } else {
                0
            },
            span_context: if i % 3 == 0 { ctx(1, 2) } else { ctx(0, 0) },
            attributes: vec![kv(w, "i", Value::IntValue(i as i64))],
        };
        w.try_write(RingKind::Events, &ev).unwrap();
    }
}

fn write_metrics(w: &MmapWriter, scope: i64) {
    use proto::metric_ref::{ExponentialHistogram, Gauge, Histogram, Sum};
    let aggs = [
        Aggregation::Sum(Sum {
            aggregation_temporality: 2,
            is_monotonic: true,
        }),
        Aggregation::Gauge(Gauge {}),
        Aggregation::Histogram(Histogram {
            aggregation_temporality: 1,
            bucket_boundaries: vec![1.0, 5.0],
        }),
        Aggregation::ExpHist(ExponentialHistogram {
            aggregation_temporality: 2,
            max_buckets: 4,
            max_scale: 3,
        }),
    ];
    let metrics: Vec<i64> = aggs
        .into_iter()
        .map(|a| {
            w.intern_message(&proto::MetricRef {
                name: "m".into(),
                unit: "1".into(),
                instrumentation_scope_ref: scope,
                aggregation: Some(a),
                ..Default::default()
            })
            .unwrap()
        })
        .collect();
    for i in 0..7u8 {
        let m = proto::Measurement {
            metric_ref: metrics[i as usize % metrics.len()],
            attributes: vec![kv(w, "set", Value::IntValue(i as i64 % 5))],
            time_unix_nano: START + i as u64,
            value: Some(if i % 2 == 0 {
                proto::measurement::Value::AsLong(i as i64)
            } else {
                proto::measurement::Value::AsDouble(i as f64 * 1.5)
            }),
            span_context: if i % 2 == 0 {
                ctx(i + 1, i + 1)
            } else {
                ctx(0, 0)
            },
        };
        w.try_write(RingKind::Measurements, &m).unwrap();
    }
}

/// Records that refer to bad places, exceed the tight budgets, or are what
/// a broken writer leaves (zero slots, duplicate starts, bad ids).
fn write_hostile(w: &MmapWriter) {
    use proto::span_event::{EndSpan, StartSpan};
    let dict = w.layout().dictionary as i64;
    let big = w.append_entry(&[b'x'; 3000]).unwrap();
    let dummy = w.append_entry(b"d").unwrap();
    // An AnyValue entry whose value ref is its own ref: a cycle.
    let own = dummy + 2;
    let cycle = w
        .append_entry(
            &proto::AnyValue {
                value: Some(Value::ValueRef(own)),
            }
            .encode_to_vec(),
        )
        .unwrap();
    assert_eq!(cycle, own);
    let bad = [-1, i64::MAX, 1 << 40, dict, dict + 65, big + 1];
    let start = |id: u8, key_ref: i64| {
        span(
            id,
            bad[id as usize % bad.len()],
            Event::Start(StartSpan {
                attributes: vec![proto::KeyValueRef {
                    key_ref,
                    value: Some(proto::AnyValue {
                        value: Some(Value::ValueRef(cycle)),
                    }),
                }],
                ..Default::default()
            }),
        )
    };
    for e in [start(1, big), start(1, bad[0]), start(2, bad[2])] {
        w.try_write(RingKind::Spans, &e).unwrap();
    }
    w.try_write_with(RingKind::Spans, 0, |_| 0).unwrap();
    let mut short = span(4, 0, Event::End(EndSpan::default()));
    short.trace_id.truncate(3);
    w.try_write(RingKind::Spans, &short).unwrap();
    for (i, &r) in bad.iter().enumerate() {
        let ev = proto::Event {
            scope_ref: r,
            event_name_ref: bad[(i + 1) % bad.len()],
            body: Some(proto::AnyValue {
                value: Some(Value::ValueRef(if i == 0 { big } else { r })),
            }),
            ..Default::default()
        };
        w.try_write(RingKind::Events, &ev).unwrap();
    }
    w.try_write_with(RingKind::Events, 0, |_| 0).unwrap();
    for (i, &r) in bad.iter().enumerate() {
        let m = proto::Measurement {
            metric_ref: r,
            value: (i % 2 == 0).then_some(proto::measurement::Value::AsDouble(f64::NAN)),
            ..Default::default()
        };
        w.try_write(RingKind::Measurements, &m).unwrap();
    }
    w.try_write_with(RingKind::Measurements, 0, |_| 0).unwrap();
}

/// The seed files: name and bytes.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &'static str, write: &dyn Fn(&MmapWriter)| {
        let path = dir.path().join(name);
        let w = MmapWriter::create_with_start_time(&path, &tiny(), START).unwrap();
        write(&w);
        drop(w);
        (name, std::fs::read(&path).unwrap())
    };
    let mut out = vec![
        make("spans", &|w| write_spans(w, scope(w))),
        make("logs", &|w| write_logs(w, scope(w))),
        make("metrics", &|w| write_metrics(w, scope(w))),
        make("hostile", &write_hostile),
    ];
    // Every ring past its first lap, part of it read and released.
    out.push(make("wrapped", &|w| {
        let s = scope(w);
        write_spans(w, s);
        write_logs(w, s);
        write_metrics(w, s);
        let mut r = FileReader::open(w.path(), ReaderOptions::default()).unwrap();
        for signal in [Signal::Traces, Signal::Logs, Signal::Metrics] {
            while let Some(b) = r.poll(signal, START).unwrap() {
                let token = b.token;
                r.commit(signal, token).unwrap();
            }
        }
        drop(r);
        write_logs(w, s);
        write_spans(w, s);
        write_metrics(w, s);
    }));
    out
}

/// Every file of both corpora, by name.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in [corpus_dir(), core_corpus_dir()] {
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

#[test]
fn committed_corpus_matches_its_generator() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = corpus_dir();
    let update = std::env::var_os("UPDATE_CORPUS").is_some();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut total = 0;
    for (name, bytes) in seeds() {
        let path = dir.join(name);
        total += bytes.len();
        if update {
            std::fs::write(&path, &bytes).unwrap();
        } else {
            let committed = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_CORPUS=1 writes it)", path.display()));
            assert!(
                committed == bytes,
                "{name} is stale: UPDATE_CORPUS=1 rewrites it"
            );
        }
    }
    assert!(total < 50 << 10, "the corpus is {total} bytes");
}

/// Each corpus file through the production path: no panic, within the
/// heap bound; the writer-made seeds deliver every signal.
#[test]
fn corpus_replays_through_the_production_path() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in corpus() {
        let (result, peak) = peak_during(|| drive_bytes_in(dir.path(), &bytes));
        assert!(peak < HEAP_BOUND, "{name}: heap peak {} KiB", peak >> 10);
        let is_seed = name.starts_with(&corpus_dir().display().to_string());
        match result {
            Ok(report) if is_seed => {
                let st = &report.stats;
                if name.ends_with("hostile") {
                    assert_eq!(st.corrupt_records, [1, 1, 1], "{name}: {st:?}");
                    assert!(
                        st.bad_refs > 0 && st.duplicate_span_starts == 1,
                        "{name}: {st:?}"
                    );
                    assert_eq!(st.invalid_span_ids, 1, "{name}: {st:?}");
                } else {
                    assert_eq!(st.corrupt_records, [0, 0, 0], "{name}: {st:?}");
                    assert_eq!(st.bad_refs, 0, "{name}: {st:?}");
                    let delivered: u64 = report.items.iter().sum();
                    assert!(delivered > 0, "{name}: {report:?}");
                }
            }
            Ok(_) => {}
            Err(e) => assert!(!is_seed, "{name}: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Mutations.

#[derive(Debug, Clone)]
enum Mutation {
    /// Random bytes anywhere.
    Bytes(Index, Vec<u8>),
    /// Random bytes inside a slot of a ring.
    SlotBytes(u8, Index, Index, Vec<u8>),
    /// A varint (a length, a ref, a tag) inside a slot.
    SlotVarint(u8, Index, Index, u64),
    /// A slot made all zeros.
    ZeroSlot(u8, Index),
    /// An availability flag.
    Flag(u8, Index, i32),
    /// A ring's reader or writer index.
    RingIndex(u8, bool, i64),
    /// Random bytes inside the dictionary.
    DictBytes(Index, Vec<u8>),
    /// A varint inside the dictionary.
    DictVarint(Index, u64),
    /// The dictionary's end, relative to the file length.
    DictEnd(i64),
}

fn interesting_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        prop::sample::select(vec![
            0u64,
            1,
            2,
            127,
            128,
            255,
            4096,
            1 << 31,
            1 << 32,
            u64::MAX
        ]),
        any::<u64>(),
        0u64..4096,
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let bytes = prop::collection::vec(any::<u8>(), 1..12);
    prop_oneof![
        2 => (any::<Index>(), bytes.clone()).prop_map(|(i, b)| Mutation::Bytes(i, b)),
        4 => (0u8..3, any::<Index>(), any::<Index>(), bytes.clone())
            .prop_map(|(r, s, p, b)| Mutation::SlotBytes(r, s, p, b)),
        4 => (0u8..3, any::<Index>(), any::<Index>(), interesting_u64())
            .prop_map(|(r, s, p, v)| Mutation::SlotVarint(r, s, p, v)),
        1 => (0u8..3, any::<Index>()).prop_map(|(r, s)| Mutation::ZeroSlot(r, s)),
        1 => (0u8..3, any::<Index>(), any::<i32>()).prop_map(|(r, s, f)| Mutation::Flag(r, s, f)),
        1 => (0u8..3, any::<bool>(), prop_oneof![-8i64..24, any::<i64>()])
            .prop_map(|(r, w, v)| Mutation::RingIndex(r, w, v)),
        3 => (any::<Index>(), bytes).prop_map(|(i, b)| Mutation::DictBytes(i, b)),
        3 => (any::<Index>(), interesting_u64()).prop_map(|(i, v)| Mutation::DictVarint(i, v)),
        1 => (-64i64..64).prop_map(Mutation::DictEnd),
    ]
}

fn get_i64(bytes: &[u8], at: u64) -> i64 {
    bytes
        .get(at as usize..at as usize + 8)
        .map_or(0, |b| i64::from_le_bytes(b.try_into().unwrap()))
}

fn put(bytes: &mut [u8], at: u64, src: &[u8]) {
    let Ok(at) = usize::try_from(at) else { return };
    if at < bytes.len() {
        let n = src.len().min(bytes.len() - at);
        bytes[at..at + n].copy_from_slice(&src[..n]);
    }
}

/// Applies `m` to a copy of a (writer-made) file, using its header as a map.
fn apply(bytes: &mut [u8], m: &Mutation) {
    let ring = |r: u8| {
        let off = get_i64(
            bytes,
            [header::EVENTS, header::SPANS, header::MEASUREMENTS][r as usize % 3],
        ) as u64;
        let n = (get_i64(bytes, off + ring_header::NUM_BUFFERS) as u64).clamp(1, 1 << 20);
        let size = (get_i64(bytes, off + ring_header::BUFFER_SIZE) as u64).clamp(1, 1 << 20);
        (off, n, size)
    };
    let slot = |r: u8, s: &Index| {
        let (off, n, size) = ring(r);
        (off + 32 + 4 * n + s.index(n as usize) as u64 * size, size)
    };
    let dict = get_i64(bytes, header::DICTIONARY) as u64;
    let dict_len = (bytes.len() as u64).saturating_sub(dict).max(1);
    let mut varint = Vec::new();
    match m {
        Mutation::Bytes(i, b) => {
            let at = i.index(bytes.len().max(1)) as u64;
            put(bytes, at, b);
        }
        Mutation::SlotBytes(r, s, p, b) => {
            let (at, size) = slot(*r, s);
            put(bytes, at + p.index(size as usize) as u64, b);
        }
        Mutation::SlotVarint(r, s, p, v) => {
            let (at, size) = slot(*r, s);
            prost::encoding::encode_varint(*v, &mut varint);
            put(bytes, at + p.index(size as usize) as u64, &varint);
        }
        Mutation::ZeroSlot(r, s) => {
            let (at, size) = slot(*r, s);
            put(bytes, at, &vec![0; size as usize]);
        }
        Mutation::Flag(r, s, f) => {
            let (off, n, _) = ring(*r);
            put(
                bytes,
                off + 32 + 4 * s.index(n as usize) as u64,
                &f.to_le_bytes(),
            );
        }
        Mutation::RingIndex(r, writer, v) => {
            let (off, ..) = ring(*r);
            let field = if *writer {
                ring_header::WRITER_INDEX
            } else {
                ring_header::READER_INDEX
            };
            let old = get_i64(bytes, off + field);
            let new = if (-8..24).contains(v) {
                old.wrapping_add(*v)
            } else {
                *v
            };
            put(bytes, off + field, &new.to_le_bytes());
        }
        Mutation::DictBytes(i, b) => put(bytes, dict + i.index(dict_len as usize) as u64, b),
        Mutation::DictVarint(i, v) => {
            prost::encoding::encode_varint(*v, &mut varint);
            put(
                bytes,
                dict + 64 + i.index(dict_len as usize) as u64,
                &varint,
            );
        }
        Mutation::DictEnd(d) => {
            let end = (bytes.len() as i64).wrapping_add(*d);
            put(bytes, dict + dictionary_header::END, &end.to_le_bytes());
        }
    }
}

/// How many cases, or for how long.
enum Budget {
    Cases(u64),
    Seconds(f64),
}

fn budget() -> Budget {
    let var = |name| std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok());
    match (var("OTLP_MMAP_FUZZ_SECONDS"), var("OTLP_MMAP_FUZZ_CASES")) {
        (Some(s), _) => Budget::Seconds(s),
        (None, Some(n)) => Budget::Cases(n as u64),
        (None, None) => Budget::Cases(256),
    }
}

/// Mutated corpus files through the production path: no panic, no hang
/// (the drive's round bound), each case within the heap bound.
#[test]
fn mutated_files_through_the_production_path() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let bases: Vec<Vec<u8>> = corpus()
        .into_iter()
        .map(|(_, b)| b)
        .filter(|b| b.len() >= 64)
        .collect();
    let budget = budget();
    let seed: u64 = match budget {
        Budget::Cases(_) => 12,
        Budget::Seconds(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    eprintln!("fuzz seed {seed}");
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = (0..bases.len(), prop::collection::vec(mutation(), 1..8));
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (mut cases, mut opened) = (0u64, 0u64);
    loop {
        match budget {
            Budget::Cases(n) if cases >= n => break,
            Budget::Seconds(s) if started.elapsed().as_secs_f64() >= s => break,
            _ => {}
        }
        let (base, mutations) = strategy.new_tree(&mut runner).unwrap().current();
        let mut bytes = bases[base].clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let outcome =
            std::panic::catch_unwind(|| peak_during(|| drive_bytes_in(dir.path(), &bytes)));
        let failure = match &outcome {
            Err(_) => Some("panicked".to_string()),
            Ok((_, peak)) if *peak >= HEAP_BOUND => Some(format!("heap peak {} KiB", peak >> 10)),
            Ok(_) => None,
        };
        if let Some(why) = failure {
            let findings = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-findings");
            std::fs::create_dir_all(&findings).unwrap();
            let path = findings.join(format!("seed{seed}-case{cases}.otlp"));
            std::fs::write(&path, &bytes).unwrap();
            panic!(
                "case {cases} {why}; its file is {} (mutations {mutations:?})",
                path.display()
            );
        }
        opened += matches!(outcome, Ok((Ok(_), _))) as u64;
        cases += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "fuzz: {cases} cases ({opened} opened) in {secs:.1} s: {:.0} cases/s",
        cases as f64 / secs
    );
    assert!(
        opened > cases / 4,
        "most mutated files still open: {opened} of {cases}"
    );
}
