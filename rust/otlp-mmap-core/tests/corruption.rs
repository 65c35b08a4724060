//! Hostile files: whatever the bytes, opening a file, draining every ring and
//! resolving every ref gives values or a `FormatError`, never a panic, a hang
//! or a huge allocation. Plus targeted tests that each kind of bad header is
//! reported with its named error, and a replay of the fuzz corpus.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{get_i64, set_i64};
use otlp_mmap_core::check::{DrainReport, drain_all, drain_bytes_in, open_and_drain};
use otlp_mmap_core::layout::{header, ring_header};
use otlp_mmap_core::proto::{self, any_value::Value};
use otlp_mmap_core::{FileConfig, FormatError, MmapReader, MmapWriter, RingConfig, RingKind, Slot};
use otlp_mmap_test_support::{CountingAllocator, largest_allocation};
use proptest::prelude::*;
use proptest::sample::Index;
use prost::Message;

// ---------------------------------------------------------------------------
// Allocation watch: the largest single allocation this test binary ever made.

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Every file here is < 1 MiB; nothing reading one may ask for more than this.
const ALLOC_LIMIT: usize = 32 << 20;

fn assert_no_huge_allocation() {
    let largest = largest_allocation();
    assert!(
        largest < ALLOC_LIMIT,
        "an allocation of {largest} bytes happened"
    );
}

/// Runs `f` on its own thread and fails the test if it takes longer than `limit`
/// (a hang), re-raising its panic if it panicked.
fn bounded<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let out = f();
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(limit) {
        Ok(()) => match handle.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("did not finish within {limit:?}: a hang")
        }
    }
}

// ---------------------------------------------------------------------------
// Valid files to start from.

const START_TIME: u64 = 1_700_000_000_000_000_000;

fn tiny_config(slots: u64, size: u64, dict: u64) -> FileConfig {
    let ring = RingConfig {
        num_buffers: slots,
        buffer_size: size,
    };
    FileConfig {
        events: ring,
        spans: ring,
        measurements: RingConfig {
            num_buffers: slots,
            buffer_size: size / 2,
        },
        dictionary_initial_size: dict,
        dictionary_max_size: 1 << 20,
    }
}

fn kv(key_ref: i64, v: Value) -> proto::KeyValueRef {
    proto::KeyValueRef {
        key_ref,
        value: Some(proto::AnyValue { value: Some(v) }),
    }
}

/// Unread records per ring in a file made by [`writer_file`].
const WRITER_FILE_UNREAD: [u64; 3] = [6, 8, 7];

/// A file written by `MmapWriter` with data in every ring (each wrapped at
/// least once, some records released, some unread) and a dictionary that grew
/// past its initial size: strings, a resource, a scope, metrics of every
/// aggregation, AnyValue entries (a chain and one that refers to itself).
/// With `hostile`, records and entries also carry refs that point nowhere
/// sensible (negative, huge, into a header, into the middle of an entry, at
/// another section, at an entry of the wrong type).
fn writer_file(slots: u64, size: u64, dict: u64, hostile: bool) -> Vec<u8> {
    use proto::measurement::Value as MV;
    use proto::metric_ref::{Aggregation, ExponentialHistogram, Gauge, Histogram, Sum};
    use proto::span_event::{AddLink, EndSpan, Event as SE, StartSpan, add_link::Link};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.otlp");
    let w = MmapWriter::create_with_start_time(&path, &tiny_config(slots, size, dict), START_TIME)
        .unwrap();
    let layout = *w.layout();
    let k = |s: &str| w.intern_str(s).unwrap();
    let resource = w
        .intern_message(&proto::Resource {
            attributes: vec![kv(k("service.name"), Value::StringValue("fuzz".into()))],
            dropped_attributes_count: 0,
        })
        .unwrap();
    let scope = w
        .intern_message(&proto::InstrumentationScope {
            name_ref: k("scope"),
            version_ref: k("1.0"),
            attributes: vec![kv(k("s"), Value::BoolValue(true))],
            dropped_attributes_count: 0,
            resource_ref: resource,
        })
        .unwrap();
    let leaf = w
        .intern_message(&proto::AnyValue {
            value: Some(Value::StringValue("leaf".into())),
        })
        .unwrap();
    let chain = w
        .intern_message(&proto::AnyValue {
            value: Some(Value::KvlistValue(proto::KeyValueList {
                values: vec![kv(k("next"), Value::ValueRef(leaf))],
            })),
        })
        .unwrap();
    // An AnyValue entry whose value_ref is its own ref: a cycle to survive.
    let dummy = w.append_entry(b"d").unwrap();
    let own = dummy + 2;
    let self_ref = w
        .append_entry(
            &proto::AnyValue {
                value: Some(Value::ValueRef(own)),
            }
            .encode_to_vec(),
        )
        .unwrap();
    assert_eq!(self_ref, own);
    let aggs = [
        Aggregation::Gauge(Gauge {}),
        Aggregation::Sum(Sum {
            aggregation_temporality: 2,
            is_monotonic: true,
        }),
        Aggregation::Histogram(Histogram {
            aggregation_temporality: 1,
            bucket_boundaries: vec![1.0, 5.0, 10.0],
        }),
        Aggregation::ExpHist(ExponentialHistogram {
            aggregation_temporality: 1,
            max_buckets: 160,
            max_scale: 20,
        }),
    ];
    let metrics: Vec<i64> = aggs
        .into_iter()
        .map(|a| {
            w.intern_message(&proto::MetricRef {
                name: "m".into(),
                description: String::new(),
                unit: "1".into(),
                instrumentation_scope_ref: scope,
                aggregation: Some(a),
            })
            .unwrap()
        })
        .collect();
    // Many more strings so the dictionary grows past its initial size.
    for i in 0..40 {
        k(&format!("filler.{i}"));
    }
    let bad: Vec<i64> = if hostile {
        let d = layout.dictionary as i64;
        let bad_scope = w
            .intern_message(&proto::InstrumentationScope {
                name_ref: -1,
                version_ref: i64::MAX,
                resource_ref: i64::MIN,
                attributes: vec![kv(d + 3, Value::ValueRef(1 << 40))],
                dropped_attributes_count: 0,
            })
            .unwrap();
        let wrong_type_metric = w
            .intern_message(&proto::MetricRef {
                name: "bad".into(),
                instrumentation_scope_ref: k("service.name"),
                ..Default::default()
            })
            .unwrap();
        vec![
            -1,
            i64::MIN,
            i64::MAX,
            1 << 40,
            d,
            d + 65,
            layout.events.offset as i64,
            bad_scope,
            wrong_type_metric,
            own,
        ]
    } else {
        Vec::new()
    };
    let bad_at = |i: usize| bad.get(i % bad.len().max(1)).copied();
    let reader = MmapReader::open(&path, true).unwrap();
    // Writes `total` records, draining (and releasing) the first `total - unread`.
    let fill = |kind: RingKind, total: u64, unread: u64, make: &dyn Fn(u64) -> Vec<u8>| {
        let unread = unread.min(slots);
        let mut ring = reader.ring_reader(kind).unwrap();
        for i in 0..total {
            let bytes = make(i);
            w.try_write_with(kind, bytes.len(), |b| {
                b.copy_from_slice(&bytes);
                b.len()
            })
            .unwrap();
            if i < total - unread {
                assert!(matches!(ring.peek(reader.region()), Slot::Ready(_)));
                ring.advance();
                ring.release(reader.region()).unwrap();
            }
        }
    };
    let trace = vec![7u8; 16];
    fill(
        RingKind::Spans,
        2 * slots + WRITER_FILE_UNREAD[1],
        WRITER_FILE_UNREAD[1],
        &|i| {
            let span_id = (i / 2).to_le_bytes().to_vec();
            let attrs = vec![
                kv(k("a"), Value::IntValue(i as i64)),
                kv(bad_at(i as usize).unwrap_or(k("b")), Value::ValueRef(chain)),
            ];
            let event = match i % 4 {
                0 => SE::Start(StartSpan {
                    name: format!("span{i}"),
                    kind: (i % 6) as i32,
                    start_time_unix_nano: START_TIME + i,
                    attributes: attrs,
                    ..Default::default()
                }),
                1 => SE::Link(AddLink {
                    links: vec![Link {
                        trace_id: trace.clone(),
                        span_id: vec![1; 8],
                        attributes: attrs,
                        ..Default::default()
                    }],
                }),
                2 => SE::Attributes(proto::span_event::UpdateAttributes { attributes: attrs }),
                _ => SE::End(EndSpan {
                    end_time_unix_nano: START_TIME + i,
                    status: Some(proto::Status {
                        message: "ok".into(),
                        code: 1,
                    }),
                }),
            };
            proto::SpanEvent {
                trace_id: trace.clone(),
                span_id,
                scope_ref: bad_at(i as usize + 1).unwrap_or(scope),
                event: Some(event),
            }
            .encode_to_vec()
        },
    );
    let bodies = [
        Value::StringValue("s".into()),
        Value::BoolValue(true),
        Value::IntValue(-1),
        Value::DoubleValue(0.5),
        Value::BytesValue(vec![0, 1]),
        Value::ArrayValue(proto::ArrayValue {
            values: vec![proto::AnyValue {
                value: Some(Value::ValueRef(self_ref)),
            }],
        }),
        Value::KvlistValue(proto::KeyValueList {
            values: vec![kv(k("k"), Value::ValueRef(chain))],
        }),
        Value::ValueRef(chain),
    ];
    fill(
        RingKind::Events,
        slots + 3 + WRITER_FILE_UNREAD[0],
        WRITER_FILE_UNREAD[0],
        &|i| {
            proto::Event {
                scope_ref: scope,
                time_unix_nano: START_TIME + i,
                severity_number: (i % 25) as i32,
                severity_text: "INFO".into(),
                body: Some(proto::AnyValue {
                    value: Some(bodies[i as usize % bodies.len()].clone()),
                }),
                event_name_ref: bad_at(i as usize + 2).unwrap_or(k("evt")),
                span_context: Some(proto::SpanContext {
                    span_id: vec![2; 8],
                    trace_id: trace.clone(),
                    flags: 1,
                }),
                attributes: vec![kv(k("e"), Value::IntValue(i as i64))],
            }
            .encode_to_vec()
        },
    );
    fill(
        RingKind::Measurements,
        slots + 1 + WRITER_FILE_UNREAD[2],
        WRITER_FILE_UNREAD[2],
        &|i| {
            proto::Measurement {
                metric_ref: bad_at(i as usize + 3).unwrap_or(metrics[i as usize % metrics.len()]),
                attributes: vec![kv(k("m"), Value::StringValue("x".into()))],
                time_unix_nano: START_TIME + i,
                value: Some(if i % 2 == 0 {
                    MV::AsLong(i as i64)
                } else {
                    MV::AsDouble(i as f64)
                }),
                span_context: None,
            }
            .encode_to_vec()
        },
    );
    drop(reader);
    drop(w);
    std::fs::read(&path).unwrap()
}

struct Base {
    name: &'static str,
    bytes: Vec<u8>,
}

/// The files every corruption starts from: writer-made (clean and with hostile
/// refs) and the upstream vectors.
fn bases() -> &'static [Base] {
    static BASES: OnceLock<Vec<Base>> = OnceLock::new();
    BASES.get_or_init(|| {
        let mut v = vec![
            Base {
                name: "writer-clean",
                bytes: writer_file(8, 256, 256, false),
            },
            Base {
                name: "writer-hostile-refs",
                bytes: writer_file(8, 256, 256, true),
            },
        ];
        for name in common::VECTORS {
            v.push(Base {
                name,
                bytes: common::vector_bytes(name),
            });
        }
        v
    })
}

// ---------------------------------------------------------------------------
// Mutations.

/// A hostile value: absolute, or relative to a landmark of the base file.
#[derive(Debug, Clone)]
enum Val {
    Abs(i64),
    /// Landmark (events, spans, measurements, dictionary, file length,
    /// dictionary end, first entry) plus a small delta.
    Rel(u8, i64),
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        3 => prop::sample::select(vec![
            0i64,
            -1,
            1,
            7,
            8,
            63,
            64,
            65,
            i64::MAX,
            i64::MIN,
            i64::MAX - 7,
            i64::MIN + 1,
            (1 << 31) - 1,
            1 << 31,
            (1 << 32) - 1,
            1 << 32,
            1 << 40,
            1 << 62,
            -(1 << 40),
        ])
        .prop_map(Val::Abs),
        3 => (0u8..7, -80i64..80).prop_map(|(a, d)| Val::Rel(a, d)),
        1 => any::<i64>().prop_map(Val::Abs),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Random bytes at a random position.
    Bytes(Index, Vec<u8>),
    /// A file header word (0..6: version, 4 offsets, start time).
    FileHeader(u8, Val),
    /// A ring header word (0..4: num_buffers, buffer_size, reader_index, writer_index).
    RingHeader(u8, u8, Val),
    /// One availability flag.
    Flag(u8, Index, i32),
    /// Makes the next `count` sequences after `reader_index` look published
    /// (in the spec's or the upstream form), written or not.
    PublishAhead(u8, u8, bool),
    /// A slot's length varint: a small delta around `buffer_size`, or absolute.
    SlotLen(u8, Index, Result<i64, u64>),
    /// Random bytes inside a slot, after its first byte.
    SlotBytes(u8, Index, Index, Vec<u8>),
    /// A dictionary header word (0: end, 1: num_entries).
    DictWord(u8, Val),
    /// A varint (as an entry length) somewhere in the dictionary.
    DictVarint(Index, u64),
    /// Random bytes somewhere in the dictionary.
    DictBytes(Index, Vec<u8>),
    /// Cuts the file (only before it is opened).
    Truncate(Index),
    /// Appends zeros (only before it is opened).
    Extend(u16),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let bytes = prop::collection::vec(any::<u8>(), 1..16);
    let flag = prop_oneof![
        prop::sample::select(vec![-1i32, 0, 1, 2, i32::MAX, i32::MIN, 1 << 26, 1 << 24]),
        any::<i32>(),
    ];
    let len = prop_oneof![
        (-3i64..4).prop_map(Ok),
        prop::sample::select(vec![0u64, 1, 127, 128, u32::MAX as u64, 1 << 40, u64::MAX])
            .prop_map(Err),
        any::<u64>().prop_map(Err),
    ];
    prop_oneof![
        3 => (any::<Index>(), bytes.clone()).prop_map(|(i, b)| Mutation::Bytes(i, b)),
        2 => (0u8..6, val()).prop_map(|(f, v)| Mutation::FileHeader(f, v)),
        3 => (0u8..3, 0u8..4, val()).prop_map(|(r, f, v)| Mutation::RingHeader(r, f, v)),
        2 => (0u8..3, any::<Index>(), flag).prop_map(|(r, i, f)| Mutation::Flag(r, i, f)),
        2 => (0u8..3, any::<u8>(), any::<bool>())
            .prop_map(|(r, c, u)| Mutation::PublishAhead(r, c, u)),
        3 => (0u8..3, any::<Index>(), len).prop_map(|(r, i, l)| Mutation::SlotLen(r, i, l)),
        2 => (0u8..3, any::<Index>(), any::<Index>(), bytes.clone())
            .prop_map(|(r, s, p, b)| Mutation::SlotBytes(r, s, p, b)),
        3 => (0u8..2, val()).prop_map(|(f, v)| Mutation::DictWord(f, v)),
        2 => (any::<Index>(), any::<u64>()).prop_map(|(i, l)| Mutation::DictVarint(i, l)),
        2 => (any::<Index>(), bytes).prop_map(|(i, b)| Mutation::DictBytes(i, b)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => any::<u16>().prop_map(Mutation::Extend),
    ]
}

/// The landmarks of a (valid) base file.
struct Landmarks {
    rings: [(u64, u64, u64); 3],
    dictionary: u64,
    dict_end: u64,
    file_len: u64,
}

impl Landmarks {
    fn of(bytes: &[u8]) -> Self {
        let ring = |field: u64| {
            let off = get_i64(bytes, field) as u64;
            (
                off,
                get_i64(bytes, off + ring_header::NUM_BUFFERS) as u64,
                get_i64(bytes, off + ring_header::BUFFER_SIZE) as u64,
            )
        };
        let dictionary = get_i64(bytes, header::DICTIONARY) as u64;
        Landmarks {
            rings: [
                ring(header::EVENTS),
                ring(header::SPANS),
                ring(header::MEASUREMENTS),
            ],
            dictionary,
            dict_end: get_i64(bytes, dictionary) as u64,
            file_len: bytes.len() as u64,
        }
    }

    fn resolve(&self, v: &Val) -> i64 {
        match *v {
            Val::Abs(x) => x,
            Val::Rel(anchor, delta) => {
                let base = match anchor {
                    0..=2 => self.rings[anchor as usize].0,
                    3 => self.dictionary,
                    4 => self.file_len,
                    5 => self.dict_end,
                    _ => self.dictionary + 64,
                };
                (base as i64).wrapping_add(delta)
            }
        }
    }

    fn slot_offset(&self, ring: u8, slot: &Index) -> (u64, u64) {
        let n = self.rings[ring as usize % 3].1;
        self.slot_offset_at(ring, slot.index(n as usize) as u64)
    }

    fn slot_offset_at(&self, ring: u8, i: u64) -> (u64, u64) {
        let (off, n, size) = self.rings[ring as usize % 3];
        (off + 32 + 4 * n + (i % n) * size, size)
    }
}

fn put(bytes: &mut [u8], at: u64, src: &[u8]) {
    let at = at as usize;
    if at >= bytes.len() {
        return;
    }
    let n = src.len().min(bytes.len() - at);
    bytes[at..at + n].copy_from_slice(&src[..n]);
}

fn varint(v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(v, &mut out);
    out
}

/// Applies `m` to `bytes` (a copy of the base whose landmarks are `l`).
/// Length changes are only applied when `may_resize`.
fn apply(bytes: &mut Vec<u8>, l: &Landmarks, m: &Mutation, may_resize: bool) {
    match m {
        Mutation::Bytes(i, b) => {
            if !bytes.is_empty() {
                let at = i.index(bytes.len()) as u64;
                put(bytes, at, b);
            }
        }
        Mutation::FileHeader(f, v) => set_i64(bytes, *f as u64 * 8, l.resolve(v)),
        Mutation::RingHeader(r, f, v) => {
            let off = l.rings[*r as usize % 3].0;
            set_i64(bytes, off + *f as u64 * 8, l.resolve(v));
        }
        Mutation::Flag(r, i, f) => {
            let (off, n, _) = l.rings[*r as usize % 3];
            let at = off + 32 + 4 * i.index(n as usize) as u64;
            put(bytes, at, &f.to_le_bytes());
        }
        Mutation::PublishAhead(r, count, upstream) => {
            let (off, n, _) = l.rings[*r as usize % 3];
            if (off + 32) as usize > bytes.len() {
                return;
            }
            let ri = get_i64(bytes, off + ring_header::READER_INDEX);
            let shift = n.trailing_zeros();
            for k in 0..(*count as u64).min(n) {
                let seq = ri.wrapping_add(1).wrapping_add(k as i64) as u64;
                let flag = if *upstream {
                    (seq as u32 >> shift) as i32
                } else {
                    (seq >> shift) as u32 as i32
                };
                put(bytes, off + 32 + 4 * (seq & (n - 1)), &flag.to_le_bytes());
            }
        }
        Mutation::SlotLen(r, i, len) => {
            let (at, size) = l.slot_offset(*r, i);
            let len = match len {
                Ok(delta) => (size as i64 + delta).max(0) as u64,
                Err(abs) => *abs,
            };
            put(bytes, at, &varint(len));
        }
        Mutation::SlotBytes(r, i, p, b) => {
            let (at, size) = l.slot_offset(*r, i);
            put(bytes, at + 1 + p.index(size as usize) as u64, b);
        }
        Mutation::DictWord(f, v) => set_i64(bytes, l.dictionary + *f as u64 * 8, l.resolve(v)),
        Mutation::DictVarint(i, len) => {
            let span = (l.file_len - l.dictionary - 64) as usize;
            if span > 0 {
                put(
                    bytes,
                    l.dictionary + 64 + i.index(span) as u64,
                    &varint(*len),
                );
            }
        }
        Mutation::DictBytes(i, b) => {
            let span = (l.file_len - l.dictionary) as usize;
            put(bytes, l.dictionary + i.index(span) as u64, b);
        }
        Mutation::Truncate(i) => {
            if may_resize && !bytes.is_empty() {
                let to = i.index(bytes.len());
                bytes.truncate(to);
            }
        }
        Mutation::Extend(n) => {
            if may_resize {
                bytes.resize(bytes.len() + *n as usize, 0);
            }
        }
    }
}

/// Everything a reader may do with a file, bounded: drain (twice), and look
/// up hostile refs directly.
fn exercise(reader: &MmapReader) -> DrainReport {
    let l = reader.layout();
    let capacity: u64 = RingKind::ALL.iter().map(|&k| l.ring(k).num_buffers).sum();
    let report = drain_all(reader);
    assert!(report.slots_seen() <= capacity, "{report:?} > {capacity}");
    let again = drain_all(reader);
    assert!(again.slots_seen() <= capacity);
    let (end, _) = reader.dictionary_header().unwrap();
    let d = l.dictionary as i64;
    for r in [
        0,
        -1,
        i64::MIN,
        i64::MAX,
        d,
        d + 63,
        d + 64,
        d + 65,
        end,
        end.wrapping_sub(1),
        end.wrapping_add(1),
        reader.region().valid_len() as i64,
        reader.region().reserved_len() as i64,
    ] {
        if let Ok(bytes) = reader.entry(r) {
            assert!(bytes.len() <= reader.region().valid_len());
        }
    }
    report
}

/// One case: apply `pre` to the base, write it, open it; apply `post` to the
/// file while the reader has it mapped; drain everything.
fn run_case(base: usize, pre: Vec<Mutation>, post: Vec<Mutation>) {
    bounded(Duration::from_secs(30), move || {
        let base = &bases()[base];
        let l = Landmarks::of(&base.bytes);
        let mut bytes = base.bytes.clone();
        for m in &pre {
            apply(&mut bytes, &l, m, true);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{}.otlp", base.name));
        std::fs::write(&path, &bytes).unwrap();
        // The look-only path (the fuzz target's) agrees with the exclusive one.
        let look = open_and_drain(&path);
        std::fs::write(&path, &bytes).unwrap();
        match MmapReader::open(&path, true) {
            Err(e) => {
                assert!(!matches!(e, FormatError::Locked));
                assert_eq!(look.unwrap_err(), e);
            }
            Ok(reader) => {
                assert!(look.is_ok());
                if !post.is_empty() {
                    let mut now = bytes.clone();
                    for m in &post {
                        apply(&mut now, &l, m, false);
                    }
                    // Same length: only the changed bytes are written through the file.
                    common::poke(&path, 0, &now);
                }
                exercise(&reader);
            }
        }
    });
    assert_no_huge_allocation();
}

/// `n` cases, or `$OTLP_MMAP_FUZZ_CASES` (for a longer hunt).
fn cases(n: u32) -> ProptestConfig {
    let n = std::env::var("OTLP_MMAP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn mutated_files_give_values_or_errors(
        base in 0..6usize,
        pre in prop::collection::vec(mutation(), 0..8),
        post in prop::collection::vec(mutation(), 0..4),
    ) {
        run_case(base, pre, post);
    }
}

proptest! {
    #![proptest_config(cases(128))]

    /// Records and entries whose refs are all hostile: every record still
    /// decodes and is counted; the refs are errors or values.
    #[test]
    fn hostile_refs_everywhere_are_errors_or_values(
        refs in prop::collection::vec(val(), 1..12),
    ) {
        bounded(Duration::from_secs(30), move || hostile_refs_case(&refs));
        assert_no_huge_allocation();
    }
}

fn hostile_refs_case(vals: &[Val]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.otlp");
    let w = MmapWriter::create(&path, &tiny_config(8, 256, 128)).unwrap();
    let key = w.intern_str("key").unwrap();
    let probe = MmapReader::open(&path, false).unwrap();
    let (end, _) = probe.dictionary_header().unwrap();
    let l = Landmarks {
        rings: RingKind::ALL.map(|k| {
            let g = w.layout().ring(k);
            (g.offset, g.num_buffers, g.buffer_size)
        }),
        dictionary: w.layout().dictionary,
        dict_end: end as u64,
        file_len: probe.region().valid_len() as u64,
    };
    drop(probe);
    let refs: Vec<i64> = vals.iter().map(|v| l.resolve(v)).collect();
    let r = |i: usize| refs[i % refs.len()];
    let entries: Vec<i64> = (0..refs.len())
        .flat_map(|i| {
            let v = proto::AnyValue {
                value: Some(Value::ValueRef(r(i))),
            };
            let scope = proto::InstrumentationScope {
                name_ref: r(i + 1),
                version_ref: r(i + 2),
                resource_ref: r(i + 3),
                attributes: vec![kv(r(i + 4), Value::ValueRef(r(i + 5)))],
                dropped_attributes_count: 0,
            };
            let metric = proto::MetricRef {
                instrumentation_scope_ref: r(i + 6),
                ..Default::default()
            };
            let res = proto::Resource {
                attributes: vec![kv(r(i + 7), Value::ValueRef(r(i)))],
                dropped_attributes_count: 0,
            };
            [
                w.append_entry(&v.encode_to_vec()).unwrap(),
                w.append_entry(&scope.encode_to_vec()).unwrap(),
                w.append_entry(&metric.encode_to_vec()).unwrap(),
                w.append_entry(&res.encode_to_vec()).unwrap(),
            ]
        })
        .collect();
    // Refs to the hostile entries, too (as every kind of content).
    let all: Vec<i64> = refs.iter().chain(entries.iter()).copied().collect();
    for chunk in all.chunks(4).take(8) {
        let g = |i: usize| chunk[i % chunk.len()];
        w.try_write(
            RingKind::Events,
            &proto::Event {
                scope_ref: g(0),
                event_name_ref: g(1),
                body: Some(proto::AnyValue {
                    value: Some(Value::ValueRef(g(2))),
                }),
                attributes: vec![
                    kv(g(3), Value::ValueRef(g(0))),
                    kv(key, Value::ValueRef(g(1))),
                ],
                ..Default::default()
            },
        )
        .unwrap();
        w.try_write(
            RingKind::Spans,
            &proto::SpanEvent {
                scope_ref: g(1),
                event: Some(proto::span_event::Event::Attributes(
                    proto::span_event::UpdateAttributes {
                        attributes: vec![kv(g(2), Value::ValueRef(g(3)))],
                    },
                )),
                ..Default::default()
            },
        )
        .unwrap();
        w.try_write(
            RingKind::Measurements,
            &proto::Measurement {
                metric_ref: g(2),
                attributes: vec![kv(g(0), Value::ValueRef(g(3)))],
                ..Default::default()
            },
        )
        .unwrap();
    }
    let n = all.chunks(4).take(8).count() as u64;
    let report = exercise(&MmapReader::open(&path, true).unwrap());
    assert_eq!(report.records, [n, n, n]);
    assert_eq!(report.decode_errors, [0, 0, 0]);
    assert_eq!(report.corrupt_slots, [0, 0, 0]);
}

// ---------------------------------------------------------------------------
// Valid files drain cleanly (this also checks the drain routine itself).

#[test]
fn valid_files_drain_completely_without_errors() {
    for base in bases() {
        let report = drain_bytes_in(&std::env::temp_dir(), &base.bytes).unwrap();
        let want: [u64; 3] = match base.name {
            "writer-clean" | "writer-hostile-refs" => WRITER_FILE_UNREAD,
            "spans" => [0, 43, 0],
            "logs" => [29, 0, 0],
            "metrics" => [0, 0, 156],
            "wrap-2p32" => [0, 48, 0],
            other => panic!("{other}"),
        };
        assert_eq!(report.records, want, "{}", base.name);
        assert_eq!(report.decode_errors, [0; 3], "{}", base.name);
        assert_eq!(report.corrupt_slots, [0; 3], "{}", base.name);
        assert!(!report.budget_exhausted);
        assert!(report.refs_resolved > 5, "{}: {report:?}", base.name);
        if base.name == "writer-hostile-refs" {
            assert!(report.ref_errors >= 8, "{report:?}");
        } else {
            assert_eq!(report.ref_errors, 0, "{}: {report:?}", base.name);
        }
    }
}

// ---------------------------------------------------------------------------
// Each kind of bad header gives its named error.

/// A valid writer-made file to break.
fn good() -> Vec<u8> {
    bases()[0].bytes.clone()
}

fn open_bytes(bytes: &[u8]) -> Result<MmapReader, FormatError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.otlp");
    std::fs::write(&path, bytes).unwrap();
    // The reader keeps its own descriptor: the directory may go.
    MmapReader::open(&path, true)
}

fn with(mut bytes: Vec<u8>, offset: u64, v: i64) -> Vec<u8> {
    set_i64(&mut bytes, offset, v);
    bytes
}

#[test]
fn missing_and_truncated_files_are_errors() {
    assert!(matches!(
        MmapReader::open("/nonexistent/dir/x.otlp", false),
        Err(FormatError::Io(_))
    ));
    // Opening never creates, extends or truncates a file.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.otlp");
    assert!(matches!(
        MmapReader::open(&missing, true),
        Err(FormatError::Io(_))
    ));
    assert!(!missing.exists());
    let bytes = good();
    let short = dir.path().join("short.otlp");
    std::fs::write(&short, &bytes[..100]).unwrap();
    assert!(MmapReader::open(&short, true).is_err());
    assert_eq!(std::fs::read(&short).unwrap(), bytes[..100]);
    for len in [0, 1, 8, 63] {
        assert_eq!(
            open_bytes(&bytes[..len]).unwrap_err(),
            FormatError::Truncated {
                what: "file header",
                len: len as u64,
                need: 64
            }
        );
    }
    let l = Landmarks::of(&bytes);
    // Cut inside the events ring: its header is there, the rest is not.
    let cut = (l.rings[0].0 + 40) as usize;
    assert!(matches!(
        open_bytes(&bytes[..cut]),
        Err(FormatError::BadOffset {
            reason: "past the end of the file",
            ..
        })
    ));
    // Cut inside the dictionary header.
    let cut = (l.dictionary + 32) as usize;
    assert!(matches!(
        open_bytes(&bytes[..cut]),
        Err(FormatError::BadOffset {
            what: "dictionary",
            ..
        })
    ));
    // Entries cut off: the file opens, the missing entries are errors.
    let cut = (l.dictionary + 64 + 10) as usize;
    let reader = open_bytes(&bytes[..cut]).unwrap();
    let (end, _) = reader.dictionary_header().unwrap();
    assert!(end as u64 > cut as u64);
    assert!(matches!(
        reader.entry(end - 4),
        Err(FormatError::BadRef { .. })
    ));
    assert!(drain_all(&reader).ref_errors > 0);
}

#[test]
fn unsupported_versions_are_named() {
    for v in [2, 0, -1, i64::MAX, i64::MIN] {
        assert_eq!(
            open_bytes(&with(good(), header::VERSION, v)).unwrap_err(),
            FormatError::UnsupportedVersion(v)
        );
    }
}

#[test]
fn bad_slot_counts_and_sizes_are_named() {
    let bytes = good();
    let l = Landmarks::of(&bytes);
    let spans = l.rings[1].0;
    for n in [0, 3, 6, -8, i64::MIN, i64::MAX] {
        assert_eq!(
            open_bytes(&with(bytes.clone(), spans + ring_header::NUM_BUFFERS, n)).unwrap_err(),
            FormatError::BadSlotCount {
                ring: "spans",
                value: n
            }
        );
    }
    for s in [0, -1, i64::MIN] {
        assert!(matches!(
            open_bytes(&with(bytes.clone(), spans + ring_header::BUFFER_SIZE, s)),
            Err(FormatError::BadSlotSize { ring: "spans", .. })
        ));
    }
    // Absurd sizes: overflowing, or larger than the section.
    for (field, v) in [
        (ring_header::BUFFER_SIZE, i64::MAX),
        (ring_header::BUFFER_SIZE, 1 << 40),
        (ring_header::BUFFER_SIZE, l.rings[1].2 as i64 + 1),
        (ring_header::NUM_BUFFERS, 1 << 62),
        (ring_header::NUM_BUFFERS, 1 << 20),
        (ring_header::NUM_BUFFERS, l.rings[1].1 as i64 * 2),
    ] {
        assert!(
            matches!(
                open_bytes(&with(bytes.clone(), spans + field, v)),
                Err(FormatError::RingTooLarge { ring: "spans", .. })
            ),
            "{field} = {v}"
        );
    }
    // Smaller than written is a valid (if odd) geometry.
    assert!(open_bytes(&with(bytes.clone(), spans + ring_header::BUFFER_SIZE, 16)).is_ok());
}

#[test]
fn bad_section_offsets_are_named() {
    let bytes = good();
    let l = Landmarks::of(&bytes);
    for (field, v) in [
        (header::EVENTS, -64),
        (header::EVENTS, 0),
        (header::SPANS, 32),
        (header::DICTIONARY, i64::MIN),
    ] {
        assert!(matches!(
            open_bytes(&with(bytes.clone(), field, v)),
            Err(FormatError::BadOffset {
                reason: "inside the file header or negative",
                ..
            })
        ));
    }
    for v in [l.rings[1].0 as i64 + 4, 65, l.dictionary as i64 + 1] {
        assert!(matches!(
            open_bytes(&with(bytes.clone(), header::SPANS, v)),
            Err(FormatError::BadOffset {
                reason: "not 8-byte aligned",
                ..
            })
        ));
    }
    for v in [i64::MAX & !7, (bytes.len() as i64 + 7) & !7, 1 << 40] {
        assert!(matches!(
            open_bytes(&with(bytes.clone(), header::MEASUREMENTS, v)),
            Err(FormatError::BadOffset {
                reason: "past the end of the file",
                ..
            })
        ));
    }
    // Two sections at one offset, a dictionary inside a ring, a ring inside a ring.
    assert!(matches!(
        open_bytes(&with(bytes.clone(), header::SPANS, l.rings[0].0 as i64)),
        Err(FormatError::Overlap { .. })
    ));
    assert!(matches!(
        open_bytes(&with(
            bytes.clone(),
            header::DICTIONARY,
            l.rings[2].0 as i64 + 8
        )),
        Err(FormatError::RingTooLarge { .. })
    ));
    assert!(matches!(
        open_bytes(&with(
            bytes.clone(),
            header::SPANS,
            l.rings[0].0 as i64 + 64
        )),
        Err(FormatError::RingTooLarge { .. })
    ));
}

#[test]
fn bad_dictionary_ends_are_named_or_bounded() {
    let bytes = good();
    let l = Landmarks::of(&bytes);
    let d = l.dictionary;
    for v in [0, -1, i64::MIN, d as i64, d as i64 + 63] {
        assert_eq!(
            open_bytes(&with(bytes.clone(), d, v)).unwrap_err(),
            FormatError::BadDictionaryEnd {
                end: v,
                reason: "before the first entry"
            }
        );
    }
    // An end beyond the file (a writer between its fetch-add and its growth
    // looks like this): the file opens; entries inside the file still read,
    // refs past the file are errors.
    let first = d as i64 + 64;
    for v in [i64::MAX, 1 << 40, bytes.len() as i64 + 1] {
        let reader = open_bytes(&with(bytes.clone(), d, v)).unwrap();
        assert!(reader.entry(first).is_ok());
        assert!(matches!(
            reader.entry(bytes.len() as i64),
            Err(FormatError::BadRef { .. })
        ));
        assert!(matches!(
            reader.entry(v - 1),
            Err(FormatError::BadRef { .. })
        ));
        assert_eq!(drain_all(&reader).ref_errors, 0);
    }
    // An end that shrinks under a reader hides the entries past it.
    let reader = open_bytes(&bytes).unwrap();
    assert!(reader.entry(first).is_ok());
    reader
        .region()
        .atomic_i64(d)
        .unwrap()
        .store(first, Ordering::Release);
    assert!(matches!(
        reader.entry(first),
        Err(FormatError::BadRef { .. })
    ));
    // An entry whose length runs past `end`.
    let mut b = bytes.clone();
    put(&mut b, first as u64, &varint(l.dict_end - first as u64));
    let reader = open_bytes(&b).unwrap();
    assert!(matches!(
        reader.entry(first),
        Err(FormatError::BadRef {
            reason: "entry length runs past the dictionary end",
            ..
        })
    ));
}

#[test]
fn oversized_slot_length_is_corrupt_and_the_reader_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slots.otlp");
    let w = MmapWriter::create(&path, &tiny_config(8, 64, 256)).unwrap();
    let ev = |t: u64| proto::Event {
        time_unix_nano: t,
        ..Default::default()
    };
    for t in 0..5 {
        w.try_write(RingKind::Events, &ev(t)).unwrap();
    }
    let g = w.layout().events;
    // Slot 1: a length one byte larger than the slot holds after its prefix.
    common::poke(&path, g.slot_offset(1), &varint(64));
    // Slot 2: a varint that never ends.
    common::poke(&path, g.slot_offset(2), &[0xff; 11]);
    // Slot 3: a valid length, bytes that are not an Event.
    common::poke(&path, g.slot_offset(3), &[4, 0xff, 0xff, 0xff, 0xff]);
    let reader = MmapReader::open(&path, true).unwrap();
    let mut ring = reader.ring_reader(RingKind::Events).unwrap();
    let mut seen = Vec::new();
    for _ in 0..8 {
        match ring.peek(reader.region()) {
            Slot::Empty => break,
            Slot::Ready(b) => seen.push(format!(
                "{:?}",
                proto::Event::decode(b).map(|e| e.time_unix_nano).ok()
            )),
            Slot::Corrupt(e) => seen.push(format!("{e:?}")),
        }
        ring.advance();
    }
    ring.release(reader.region()).unwrap();
    assert_eq!(
        seen,
        [
            "Some(0)",
            "SlotOverflow { len: 64, max: 63 }",
            "BadLength(\"not a valid varint\")",
            "None",
            "Some(4)"
        ]
    );
    // The writer can use the skipped slots again.
    for t in 5..13 {
        w.try_write(RingKind::Events, &ev(t)).unwrap();
    }
    let got = common::read_all::<proto::Event>(&reader, RingKind::Events);
    assert_eq!(got.len(), 8);
    assert_eq!(got[0].1, ev(5));
    // drain_all counts the same way.
    for t in 0..3 {
        w.try_write(RingKind::Events, &ev(t)).unwrap();
    }
    let g_slot = g.slot_of(14);
    common::poke(&path, g.slot_offset(g_slot), &varint(1 << 40));
    let report = drain_all(&reader);
    assert_eq!(report.records[0], 2);
    assert_eq!(report.corrupt_slots[0], 1);
}

#[test]
fn hostile_reader_and_writer_indices_stay_bounded() {
    let bytes = good();
    let l = Landmarks::of(&bytes);
    for (field, v) in [
        (ring_header::READER_INDEX, i64::MAX),
        (ring_header::READER_INDEX, i64::MIN),
        (ring_header::READER_INDEX, -2),
        (ring_header::READER_INDEX, (1 << 32) - 2),
        (ring_header::WRITER_INDEX, i64::MIN),
        (ring_header::WRITER_INDEX, i64::MAX),
    ] {
        for ring in 0..3 {
            let b = with(bytes.clone(), l.rings[ring].0 + field, v);
            let reader = open_bytes(&b).unwrap();
            let rr = reader.ring_reader(RingKind::ALL[ring]).unwrap();
            assert!(rr.unreleased(reader.region()) <= l.rings[ring].1);
            exercise(&reader);
        }
    }
}

/// Flags left from earlier laps of the ring are never read as published,
/// in either writer's form, around 2^32.
#[test]
fn stale_flags_around_2p32_are_never_taken_as_published() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wrap.otlp");
    let w = MmapWriter::create(&path, &tiny_config(8, 64, 256)).unwrap();
    let g = w.layout().spans;
    let start: i64 = (1 << 32) - 5;
    for (upstream, laps) in [(false, 1), (true, 1), (false, 3), (true, 2)] {
        let reader = MmapReader::open(&path, true).unwrap();
        let region = reader.region();
        let at = |off| region.atomic_i64(off).unwrap();
        at(g.offset + ring_header::READER_INDEX).store(start - 1, Ordering::Release);
        at(g.offset + ring_header::WRITER_INDEX).store(start - 1, Ordering::Release);
        // Every slot holds the flag of the sequence `laps` laps before the one
        // the reader expects there.
        for k in 0..8i64 {
            let seq = start + k;
            let stale = seq - laps * 8;
            let flag = if upstream {
                g.upstream_flag_of(stale)
            } else {
                g.flag_of(stale)
            };
            region
                .atomic_i32(g.flag_offset(g.slot_of(seq)))
                .unwrap()
                .store(flag, Ordering::Release);
        }
        assert_eq!(drain_all(&reader).slots_seen(), 0, "stale flag read");
        // Records written across 2^32 are all read, in order.
        for k in 0..8u64 {
            let ev = proto::SpanEvent {
                span_id: k.to_le_bytes().to_vec(),
                ..Default::default()
            };
            assert_eq!(w.try_write(RingKind::Spans, &ev), Ok(start + k as i64));
        }
        let got = common::read_all::<proto::SpanEvent>(&reader, RingKind::Spans);
        assert_eq!(
            got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            (start..start + 8).collect::<Vec<_>>()
        );
        for (k, (_, e)) in got.iter().enumerate() {
            assert_eq!(e.span_id, (k as u64).to_le_bytes());
        }
    }
}

// ---------------------------------------------------------------------------
// The fuzz corpus, replayed.

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/open_and_drain")
}

#[test]
fn fuzz_corpus_replays_without_panic() {
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("fuzz corpus directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "seed corpus is missing: {files:?}");
    let scratch = tempfile::tempdir().unwrap();
    let mut opened = 0;
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let dir = scratch.path().to_path_buf();
        let result = bounded(Duration::from_secs(30), move || {
            drain_bytes_in(&dir, &bytes)
        });
        if result.is_ok() {
            opened += 1;
        }
    }
    assert!(opened >= 2, "the valid seeds open");
    assert_no_huge_allocation();
}

/// Regenerates the seed corpus (run with `--ignored` after a format change).
#[test]
#[ignore]
fn regenerate_fuzz_seeds() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let tiny = writer_file(2, 256, 64, false);
    let tiny_hostile = writer_file(2, 256, 64, true);
    let l = Landmarks::of(&tiny);
    let mut seeds: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated-header", tiny[..40].to_vec()),
        ("header-only", tiny[..64].to_vec()),
        ("version-2", with(tiny.clone(), header::VERSION, 2)),
        ("tiny-valid", tiny.clone()),
        ("tiny-hostile-refs", tiny_hostile),
    ];
    let mut b = tiny.clone();
    put(&mut b, l.slot_offset_at(1, 0).0, &varint(1 << 40));
    put(&mut b, l.slot_offset_at(1, 1).0, &[0xff; 11]);
    seeds.push(("bad-slot-lengths", b));
    let mut b = tiny.clone();
    for (ring, _) in l.rings.iter().enumerate() {
        let off = l.rings[ring].0;
        set_i64(&mut b, off + ring_header::READER_INDEX, (1 << 32) - 2);
        set_i64(&mut b, off + ring_header::WRITER_INDEX, (1 << 32) + 1);
        apply(
            &mut b,
            &l,
            &Mutation::PublishAhead(ring as u8, 2, true),
            false,
        );
    }
    seeds.push(("indices-near-2p32", b));
    seeds.push(("dict-end-max", with(tiny.clone(), l.dictionary, i64::MAX)));
    for (name, bytes) in seeds {
        assert!(bytes.len() < 64 << 10, "{name} is {} bytes", bytes.len());
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

// ---------------------------------------------------------------------------
// The writer runs inside the application: shared words that someone else
// corrupted must not make it panic or write outside its own sections.

#[test]
fn writer_survives_hostile_shared_words() {
    let hostile = [
        -1,
        0,
        1,
        i64::MIN,
        i64::MAX,
        i64::MAX - 3,
        (1 << 32) - 1,
        1 << 40,
    ];
    for v in hostile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.otlp");
        let w = MmapWriter::create(&path, &tiny_config(4, 64, 256)).unwrap();
        let before = std::fs::read(&path).unwrap();
        let reader = MmapReader::open(&path, false).unwrap();
        let l = *w.layout();
        let region = reader.region();
        let store = |off: u64, v: i64| region.atomic_i64(off).unwrap().store(v, Ordering::Release);
        // Ring indices.
        for kind in RingKind::ALL {
            let g = l.ring(kind);
            store(g.offset + ring_header::READER_INDEX, v);
            store(g.offset + ring_header::WRITER_INDEX, v.wrapping_sub(1));
            for _ in 0..6 {
                let r = w.try_write(RingKind::Events, &proto::Event::default());
                assert!(matches!(r, Ok(_) | Err(otlp_mmap_core::WriteError::Full)));
            }
        }
        // The dictionary's end.
        store(l.dictionary, v);
        for i in 0..4 {
            let _ = w.intern_str(&format!("entry{i}"));
            let _ = w.append_entry(&[7; 40]);
        }
        // Whatever happened, the file header and the ring headers' geometry
        // are as the writer made them.
        let after = std::fs::read(&path).unwrap();
        assert_eq!(
            after[..64],
            before[..64],
            "file header overwritten (end = {v})"
        );
        for kind in RingKind::ALL {
            let off = l.ring(kind).offset as usize;
            assert_eq!(
                after[off..off + 16],
                before[off..off + 16],
                "{} ring header overwritten (end = {v})",
                kind.name()
            );
        }
        // Only the corrupted word itself can make the file unreadable.
        match MmapReader::open(&path, false) {
            Ok(_) | Err(FormatError::BadDictionaryEnd { .. }) => {}
            Err(e) => panic!("end = {v}: {e}"),
        }
    }
}
