//! A span start's whole run of attributes, sent again and again by a
//! writer, is taken as it resolved before (the reader's attribute run
//! memo) when the span can hold it all: every span must come out exactly
//! as the same span read alone by a fresh reader (which resolves each
//! attribute), under the span limits and the record budget too, with the
//! same drops and bad refs counted, and the same after the upserts that
//! follow; and refs that mean other things after a writer starts over in
//! place must not be taken as they resolved before. The same for the runs
//! of log record attributes.

use std::os::unix::fs::FileExt;
use std::path::Path;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use otlp_mmap_collector::{FileReader, ReaderOptions, ReaderStats, Signal};
use otlp_mmap_core::layout::header;
use otlp_mmap_core::proto::{self, any_value::Value, span_event::Event};
use otlp_mmap_core::{FileConfig, MmapWriter, RingConfig, RingKind};
use prost::Message;

const T: u64 = 1_700_000_000_000_000_000;

/// An attribute's key: a string, or a ref past the dictionary's end.
#[derive(Debug, Clone)]
enum Key {
    Name(String),
    Bad,
}

/// An attribute's value: as written, or a ref to it in the dictionary.
#[derive(Debug, Clone)]
enum Val {
    Plain(Value),
    Ref(Value),
    Absent,
}

#[derive(Debug, Clone)]
struct Attr(Key, Val);

fn a(key: &str, v: Value) -> Attr {
    Attr(Key::Name(key.into()), Val::Plain(v))
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

/// A span: its name, the attributes of its start, the updates after it.
#[derive(Debug, Clone)]
struct SpanSpec {
    name: String,
    start: Vec<Attr>,
    updates: Vec<Vec<Attr>>,
}

fn encode(w: &MmapWriter, attrs: &[Attr]) -> Vec<proto::KeyValueRef> {
    attrs
        .iter()
        .map(|Attr(k, v)| proto::KeyValueRef {
            key_ref: match k {
                Key::Name(k) => w.intern_str(k).unwrap(),
                Key::Bad => 1 << 40,
            },
            value: match v {
                Val::Plain(v) => Some(proto::AnyValue {
                    value: Some(v.clone()),
                }),
                Val::Ref(v) => Some(proto::AnyValue {
                    value: Some(Value::ValueRef(
                        w.intern_message(&proto::AnyValue {
                            value: Some(v.clone()),
                        })
                        .unwrap(),
                    )),
                }),
                Val::Absent => None,
            },
        })
        .collect()
}

fn event(id: usize, e: Event) -> proto::SpanEvent {
    proto::SpanEvent {
        trace_id: vec![7; 16],
        span_id: (id as u64 + 1).to_le_bytes().to_vec(),
        scope_ref: 0,
        event: Some(e),
    }
}

/// Writes `spans` (started, updated, ended, one after the other).
fn write(w: &MmapWriter, spans: &[SpanSpec], first_id: usize) {
    for (i, spec) in spans.iter().enumerate() {
        let id = first_id + i;
        let start = Event::Start(proto::span_event::StartSpan {
            name: spec.name.clone(),
            start_time_unix_nano: T,
            attributes: encode(w, &spec.start),
            ..Default::default()
        });
        w.try_write(RingKind::Spans, &event(id, start)).unwrap();
        for u in &spec.updates {
            let e = Event::Attributes(proto::span_event::UpdateAttributes {
                attributes: encode(w, u),
            });
            w.try_write(RingKind::Spans, &event(id, e)).unwrap();
        }
        let end = Event::End(proto::span_event::EndSpan {
            end_time_unix_nano: T + 1,
            status: None,
        });
        w.try_write(RingKind::Spans, &event(id, end)).unwrap();
    }
}

/// A small file (many are read).
fn create(path: &Path) -> MmapWriter {
    let ring = RingConfig {
        num_buffers: 128,
        buffer_size: 1024,
    };
    MmapWriter::create(
        path,
        &FileConfig {
            events: ring,
            spans: ring,
            measurements: ring,
            dictionary_initial_size: 16 * 1024,
            ..FileConfig::default()
        },
    )
    .unwrap()
}

/// The spans of every traces batch `r` hands out now.
fn drain(r: &mut FileReader) -> Vec<Span> {
    let mut spans = Vec::new();
    while let Some(b) = r.poll(Signal::Traces, T).unwrap() {
        let req = ExportTraceServiceRequest::decode(b.bytes).unwrap();
        let token = b.token;
        r.commit(Signal::Traces, token).unwrap();
        for s in req
            .resource_spans
            .into_iter()
            .flat_map(|rs| rs.scope_spans)
            .flat_map(|ss| ss.spans)
        {
            spans.push(s);
        }
    }
    spans
}

/// Reads `spans` written to a file of their own with `options`: the spans
/// in order, and the reader's counters.
fn read(spans: &[SpanSpec], options: ReaderOptions) -> (Vec<Span>, ReaderStats) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.otlp");
    let w = create(&path);
    write(&w, spans, 0);
    let mut r = FileReader::open(&path, options).unwrap();
    let mut got = drain(&mut r);
    got.sort_by_key(|s| u64::from_le_bytes(s.span_id[..].try_into().unwrap()));
    assert_eq!(got.len(), spans.len());
    (got, r.stats())
}

/// What is compared: a span's attributes and drops, and what the reader
/// counted of them.
type Outcome = (Vec<KeyValue>, u32);
type Counted = (u64, u64, u64);

fn counted(st: &ReaderStats) -> Counted {
    (
        st.span_limit_drops,
        st.oversized_records[Signal::Traces as usize],
        st.bad_refs,
    )
}

/// Reads `spans` in one file, and each alone: the spans of the one file
/// must be what each gives alone, its counters their sum. Returns how many
/// spans dropped attributes.
fn check_alike(spans: &[SpanSpec], options: ReaderOptions) -> usize {
    let (warm, st) = read(spans, options);
    let mut sum = (0, 0, 0);
    let mut cut = 0;
    for (i, spec) in spans.iter().enumerate() {
        let (cold, cst) = read(std::slice::from_ref(spec), options);
        let w: Outcome = (warm[i].attributes.clone(), warm[i].dropped_attributes_count);
        let c: Outcome = (cold[0].attributes.clone(), cold[0].dropped_attributes_count);
        assert_eq!(w, c, "span {i} ({:?}) with {options:?}", spec.name);
        let c = counted(&cst);
        sum = (sum.0 + c.0, sum.1 + c.1, sum.2 + c.2);
        cut += (w.1 > 0) as usize;
    }
    assert_eq!(counted(&st), sum, "{options:?}");
    cut
}

/// The same start run on spans of names of many lengths (what the span
/// holds before its attributes), in an order where the run is memoised by
/// a span with the most budget left and met by spans with less.
fn spans_of(run: &[Attr], updates: &[Vec<Attr>]) -> Vec<SpanSpec> {
    [0, 0, 0, 37, 5, 90, 20, 0, 61, 3, 0, 150, 0]
        .iter()
        .map(|&n| SpanSpec {
            name: "n".repeat(n),
            start: run.to_vec(),
            updates: updates.to_vec(),
        })
        .collect()
}

fn options(max_record_bytes: usize, max_span_attributes: usize) -> ReaderOptions {
    ReaderOptions {
        max_record_bytes,
        max_span_attributes,
        ..ReaderOptions::default()
    }
}

fn plain_run() -> Vec<Attr> {
    vec![
        a("http.method", s("GET")),
        a("http.route", s("/api/users/{id}")),
        a("http.status_code", Value::IntValue(200)),
        a("net.peer.port", Value::IntValue(44321)),
        a("ok", Value::BoolValue(true)),
        a("ratio", Value::DoubleValue(0.5)),
        a("blob", Value::BytesValue(vec![1, 2, 3])),
        Attr(Key::Name("empty".into()), Val::Absent),
        a("not ascii", s("café")),
    ]
}

#[test]
fn a_repeated_run_comes_out_as_resolved_alone() {
    let spans = spans_of(&plain_run(), &[]);
    assert_eq!(check_alike(&spans, ReaderOptions::default()), 0);
    let (got, st) = read(&spans, ReaderOptions::default());
    assert!(got.iter().all(|s| s.attributes.len() == 9));
    assert_eq!(counted(&st), (0, 0, 0));
}

#[test]
fn a_repeated_run_keeps_to_the_record_budget_as_resolved_alone() {
    // Over budgets that cut the run at each of its attributes, for spans
    // that hold more or less before it: a run memoised by one span is not
    // taken whole by a span that has less left.
    let mut cut = 0;
    for max_record_bytes in (250..1400).step_by(9) {
        cut += check_alike(&spans_of(&plain_run(), &[]), options(max_record_bytes, 128));
    }
    assert!(cut > 0);
}

#[test]
fn a_repeated_run_keeps_to_max_attributes_as_resolved_alone() {
    // Rotations of the run first, so that each of its attributes was kept
    // (and cached) by some span before the run itself is met.
    let run = plain_run();
    let mut spans: Vec<SpanSpec> = (0..run.len())
        .map(|i| {
            let mut rotated = run.clone();
            rotated.rotate_left(i);
            SpanSpec {
                name: String::new(),
                start: rotated,
                updates: vec![],
            }
        })
        .collect();
    spans.extend(spans_of(&run, &[]));
    for max in [1, 3, 8, 9, 10] {
        let cut = check_alike(&spans, options(1 << 20, max));
        assert_eq!(cut > 0, max < 9, "{max}");
    }
}

#[test]
fn a_run_with_a_key_twice_comes_out_as_resolved_alone() {
    // A later attribute of the run replaces an earlier one of its key, in
    // its place; with more than 16 attributes the span indexes its keys
    // (which the upserts after the start use).
    let short = vec![
        a("a", s("first value, longer than the next")),
        a("b", Value::IntValue(2)),
        a("a", s("second")),
        a("c", s("c")),
        a("b", s("a string in place of an int")),
    ];
    let long: Vec<Attr> = (0..20)
        .map(|i| a(&format!("k{}", i % 17), s(&format!("v{i}"))))
        .collect();
    let updates = vec![
        vec![a("b", Value::IntValue(7)), a("k3", s("updated"))],
        vec![a("k19", s("new")), a("a", Value::BoolValue(false))],
    ];
    let mut cut = 0;
    for run in [short, long] {
        for updates in [vec![], updates.clone()] {
            let spans = spans_of(&run, &updates);
            check_alike(&spans, ReaderOptions::default());
            for max_record_bytes in (250..2400).step_by(47) {
                cut += check_alike(&spans, options(max_record_bytes, 128));
            }
            for max in [2, 3, 16, 17] {
                check_alike(&spans, options(1 << 20, max));
            }
        }
    }
    assert!(cut > 0);
    // What a run with a key twice gives: each key once, at its first place.
    let (got, _) = read(
        &spans_of(&[a("a", s("1")), a("b", s("2")), a("a", s("3"))], &[]),
        ReaderOptions::default(),
    );
    for span in got {
        let kv: Vec<(&str, &Option<any_value::Value>)> = span
            .attributes
            .iter()
            .map(|kv| (kv.key.as_str(), &kv.value.as_ref().unwrap().value))
            .collect();
        assert_eq!(
            kv,
            [
                ("a", &Some(any_value::Value::StringValue("3".into()))),
                ("b", &Some(any_value::Value::StringValue("2".into())))
            ]
        );
    }
}

#[test]
fn runs_with_bad_refs_value_refs_arrays_or_kvlists_come_out_as_resolved_alone() {
    let array = Value::ArrayValue(proto::ArrayValue {
        values: vec![proto::AnyValue {
            value: Some(Value::IntValue(1)),
        }],
    });
    let kvlist = Value::KvlistValue(proto::KeyValueList {
        values: vec![proto::KeyValueRef {
            key_ref: 1 << 40,
            value: None,
        }],
    });
    let runs = [
        vec![a("a", s("1")), Attr(Key::Bad, Val::Plain(s("x")))],
        vec![
            a("a", s("1")),
            Attr(Key::Name("r".into()), Val::Ref(s("by ref"))),
        ],
        vec![a("a", s("1")), a("arr", array)],
        vec![a("kv", kvlist), a("a", s("1"))],
    ];
    for run in runs {
        let spans = spans_of(&run, &[]);
        check_alike(&spans, ReaderOptions::default());
        for max_record_bytes in (200..700).step_by(50) {
            check_alike(&spans, options(max_record_bytes, 128));
        }
    }
    // Bad refs are counted for every span that has them.
    let spans = spans_of(&[Attr(Key::Bad, Val::Absent), a("a", s("1"))], &[]);
    let (_, st) = read(&spans, ReaderOptions::default());
    assert_eq!(st.bad_refs, spans.len() as u64);
}

#[test]
fn mixed_runs_come_out_as_resolved_alone() {
    // Runs that share attributes, one the start of another, the same
    // attributes in another order, spans that start with none and are
    // given a run by an update.
    let base = plain_run();
    let mut spans = Vec::new();
    for i in 0..40usize {
        let run: Vec<Attr> = match i % 5 {
            0 => base.clone(),
            1 => base[..4].to_vec(),
            2 => base.iter().rev().cloned().collect(),
            3 => vec![],
            _ => base[2..].to_vec(),
        };
        let updates = if i % 5 == 3 {
            vec![base.clone()]
        } else {
            vec![]
        };
        spans.push(SpanSpec {
            name: "n".repeat(i * 3 % 50),
            start: run,
            updates,
        });
    }
    for max_record_bytes in (300..1300).step_by(31) {
        check_alike(&spans, options(max_record_bytes, 128));
    }
    check_alike(&spans, options(1 << 20, 6));
}

/// Writes `to` over every occurrence of `from` (of the same length) in the
/// file at `path`.
fn overwrite(path: &Path, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(path).unwrap();
    let mut found = 0;
    let mut at = 0;
    while let Some(i) = bytes[at..].windows(from.len()).position(|w| w == from) {
        bytes[at + i..at + i + to.len()].copy_from_slice(to);
        at += i + to.len();
        found += 1;
    }
    assert!(found > 0);
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&bytes, 0).unwrap();
}

#[test]
fn a_run_is_resolved_again_after_the_writer_starts_over_in_place() {
    // The same run (the same refs, encoded the same) before and after the
    // writer starts over in place with other strings at those refs: the
    // spans after hold the new strings.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("restart.otlp");
    let w = create(&path);
    let run = vec![
        a("key-before", s("value-before")),
        a("n", Value::IntValue(1)),
    ];
    let spans = spans_of(&run, &[]);
    write(&w, &spans, 0);
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let got = drain(&mut r);
    assert_eq!(got.len(), spans.len());
    let keys = |s: &Span| -> Vec<String> { s.attributes.iter().map(|kv| kv.key.clone()).collect() };
    assert!(got.iter().all(|s| keys(s) == ["key-before", "n"]));
    overwrite(&path, b"key-before", b"key-after!");
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let later = w.start_time_unix_nano() + 1;
    f.write_at(&later.to_le_bytes(), header::START_TIME)
        .unwrap();
    // Written through the same writer: the same refs, the same run.
    write(&w, &spans, spans.len());
    // Each span written after the restart is delivered once, with the new
    // strings: none is read through the old stream's dictionary first.
    let mut got = Vec::new();
    for _ in 0..4 {
        got.extend(drain(&mut r));
    }
    assert_eq!(r.stats().writer_restarts, 1);
    let ids: Vec<Vec<u8>> = got.iter().map(|s| s.span_id.clone()).collect();
    let want: Vec<Vec<u8>> = (spans.len()..2 * spans.len())
        .map(|id| (id as u64 + 1).to_le_bytes().to_vec())
        .collect();
    assert_eq!(ids, want);
    assert!(got.iter().all(|s| keys(s) == ["key-after!", "n"]));
}

/// A log record: its body, its attributes.
type Record = (String, Vec<Attr>);

/// Reads `records` written to a file of their own with `options`: the
/// attributes of each record delivered (by its place), and the reader's
/// counters.
fn read_logs(records: &[Record], options: ReaderOptions) -> (Vec<Option<Vec<KeyValue>>>, Counted) {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs.otlp");
    let w = create(&path);
    for (i, (body, attrs)) in records.iter().enumerate() {
        let ev = proto::Event {
            time_unix_nano: i as u64 + 1,
            severity_number: 9,
            body: Some(proto::AnyValue {
                value: Some(s(body)),
            }),
            attributes: encode(&w, attrs),
            ..Default::default()
        };
        w.try_write(RingKind::Events, &ev).unwrap();
    }
    let mut r = FileReader::open(&path, options).unwrap();
    let mut got = vec![None; records.len()];
    while let Some(b) = r.poll(Signal::Logs, T).unwrap() {
        let req = ExportLogsServiceRequest::decode(b.bytes).unwrap();
        let token = b.token;
        r.commit(Signal::Logs, token).unwrap();
        for l in req
            .resource_logs
            .into_iter()
            .flat_map(|rl| rl.scope_logs)
            .flat_map(|sl| sl.log_records)
        {
            got[l.time_unix_nano as usize - 1] = Some(l.attributes);
        }
    }
    let st = r.stats();
    (
        got,
        (st.oversized_records[Signal::Logs as usize], st.bad_refs, 0),
    )
}

/// Reads `records` in one file and each alone: alike, as for spans.
/// Returns how many records went over budget.
fn check_logs_alike(records: &[Record], options: ReaderOptions) -> u64 {
    let (warm, st) = read_logs(records, options);
    let mut sum = (0, 0, 0);
    for (i, record) in records.iter().enumerate() {
        let (cold, c) = read_logs(std::slice::from_ref(record), options);
        assert_eq!(warm[i], cold[0], "record {i} with {options:?}");
        sum = (sum.0 + c.0, sum.1 + c.1, 0);
    }
    assert_eq!(st, sum, "{options:?}");
    st.0
}

#[test]
fn a_repeated_log_attribute_run_comes_out_as_resolved_alone() {
    // The same lists on records whose bodies take more or less of the
    // budget before them, a list with a key twice (log records keep both),
    // lists with a bad ref and a value ref, over budgets that drop some.
    let run = plain_run();
    let twice = vec![a("a", s("1")), a("b", s("2")), a("a", s("3"))];
    let odd = vec![
        a("a", s("1")),
        Attr(Key::Bad, Val::Plain(s("x"))),
        Attr(Key::Name("r".into()), Val::Ref(s("by ref"))),
    ];
    let mut records = Vec::new();
    for (i, n) in [0, 0, 0, 37, 5, 90, 20, 0, 61, 3, 0, 150, 0]
        .into_iter()
        .enumerate()
    {
        let list = match i % 4 {
            0 | 1 => run.clone(),
            2 => twice.clone(),
            _ => odd.clone(),
        };
        records.push(("b".repeat(n), list));
        records.push(("b".repeat(n), run.clone()));
    }
    assert_eq!(check_logs_alike(&records, ReaderOptions::default()), 0);
    let mut over = 0;
    for max_record_bytes in (300..1200).step_by(13) {
        over += check_logs_alike(&records, options(max_record_bytes, 128));
    }
    assert!(over > 0);
    // Bad refs are counted for every record that has them.
    let (_, (_, bad, _)) = read_logs(&vec![("".into(), odd); 5], ReaderOptions::default());
    assert_eq!(bad, 5);
}
