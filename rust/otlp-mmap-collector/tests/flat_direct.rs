//! The flat hand-off writes traces and logs batches straight from the
//! spans and log records it assembled; those bytes must be exactly what
//! laying out the batch's OTLP export request gives (`FlatWriter::write`,
//! the Go decoder's reference). Two readers of copies of one file, polled
//! alike, one handing out OTLP (laid out here) and one flat batches, must
//! hand out the same bytes: over the fuzz corpora, the bench workloads, and
//! files made to reach each fallback (a key twice, ids of other lengths,
//! long attribute lists, incomplete spans) and to repeat attribute runs and
//! lists (taken whole by the reader and the flat writer), with tables that
//! start over.
//! The checkpoints of both (which keep a pending traces batch's request,
//! written from its spans only then with the flat hand-off) are the same.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use otlp_mmap_collector::checkpoint_proto::ReaderCheckpoint;
use otlp_mmap_collector::drive::{max_rounds, tight_options};
use otlp_mmap_collector::flat::{FlatWriter, MAGIC, MODE_FLAT, MODE_OTLP};
use otlp_mmap_collector::{FileReader, ReaderOptions, Signal};
use otlp_mmap_core::layout::header;
use otlp_mmap_core::proto::{self, any_value::Value, span_event::Event};
use otlp_mmap_core::{FileConfig, MmapWriter, RingConfig, RingKind};
use prost::Message;

const NOW: u64 = 1_700_000_000_000_000_000;

fn corpus_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        root.join("fuzz/corpus/drive_file"),
        root.join("../otlp-mmap-core/fuzz/corpus/open_and_drain"),
    ] {
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        out.extend(names);
    }
    out
}

/// Batches handed out alike, by mode.
#[derive(Debug, Default)]
struct Compared {
    flat: u64,
    otlp: u64,
}

/// Drives two readers of copies of `bytes` (one with the flat hand-off)
/// alike and checks that each flat batch is the laid-out OTLP batch. Every
/// `start_over_every`-th batch of a signal is said unreadable once (the
/// table starts over, the batch is laid out again); with `restart`, the
/// writer starts over in place while that traces batch is pending.
fn compare(
    name: &str,
    bytes: &[u8],
    options: ReaderOptions,
    start_over_every: u64,
    restart: Option<u64>,
    seen: &mut Compared,
) {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (dir.path().join("a.otlp"), dir.path().join("b.otlp"));
    std::fs::write(&pa, bytes).unwrap();
    std::fs::write(&pb, bytes).unwrap();
    let a = FileReader::open(&pa, options);
    let b = FileReader::open(
        &pb,
        ReaderOptions {
            flat_handoff: true,
            ..options
        },
    );
    let (mut a, mut b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(_), Err(_)) => return,
        (a, b) => panic!("{name}: opened {} and {}", a.is_ok(), b.is_ok()),
    };
    let capacity: u64 = a.stats().ring_capacity.iter().sum();
    let mut writers = [FlatWriter::default(), FlatWriter::default()];
    let mut expected = Vec::new();
    let mut batches = [0u64; 2];
    let mut abandoned = false;
    for _ in 0..max_rounds(capacity) {
        let before = (
            batches,
            a.records_consumed(Signal::Traces),
            a.records_consumed(Signal::Logs),
        );
        for signal in [Signal::Traces, Signal::Logs] {
            let w = &mut writers[signal as usize];
            let (ba, bb) = match (a.poll(signal, NOW), b.poll(signal, NOW)) {
                (Ok(Some(ba)), Ok(Some(bb))) => (ba, bb),
                (Ok(None), Ok(None)) => continue,
                (Err(ea), Err(eb)) => {
                    assert_eq!(ea, eb, "{name}");
                    return;
                }
                (x, y) => panic!(
                    "{name}: {signal:?}: {:?} / {:?}",
                    x.map(|b| b.map(|b| b.items)),
                    y.map(|b| b.map(|b| b.items))
                ),
            };
            assert_eq!((ba.items, ba.token), (bb.items, bb.token), "{name}");
            let (otlp, token) = (ba.bytes.to_vec(), ba.token);
            expected.clear();
            w.write(signal, &otlp, &mut expected);
            assert_eq!(
                bb.bytes,
                &expected[..],
                "{name}: {signal:?} batch {}",
                batches[signal as usize]
            );
            assert!(bb.bytes.starts_with(MAGIC), "{name}");
            match bb.bytes[4] {
                MODE_FLAT => seen.flat += 1,
                MODE_OTLP => seen.otlp += 1,
                m => panic!("{name}: mode {m}"),
            }
            batches[signal as usize] += 1;
            if batches[signal as usize] % start_over_every == 0 {
                // Go could not read it: laid out again under a new epoch.
                b.start_flat_over(signal);
                w.start_over();
                expected.clear();
                w.write(signal, &otlp, &mut expected);
                let again = b.poll(signal, NOW).unwrap().unwrap();
                assert_eq!(
                    again.bytes,
                    &expected[..],
                    "{name}: {signal:?} laid out again"
                );
            }
            if signal == Signal::Traces && restart == Some(batches[0]) {
                // The writer starts over in place while the batch is
                // pending: its request is written (at the checkpoint) as
                // the batch was grouped from the old stream.
                let later = a.file().start_time_unix_nano() + 1;
                for p in [&pa, &pb] {
                    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                    f.write_at(&later.to_le_bytes(), header::START_TIME)
                        .unwrap();
                }
                let again = (
                    a.poll(signal, NOW).unwrap().unwrap().token,
                    b.poll(signal, NOW).unwrap().unwrap().token,
                );
                assert_eq!(again, (token, token), "{name}: the batch stays pending");
                assert_eq!(b.stats().writer_restarts, 1, "{name}");
                let (ca, cb) = (checkpoint(&mut a), checkpoint(&mut b));
                assert_eq!(ca, cb, "{name}: checkpoint after the restart");
            }
            if signal == Signal::Traces && batches[0] % 2 == 1 {
                // The flat batch's request is written for the checkpoint.
                let (ca, cb) = (checkpoint(&mut a), checkpoint(&mut b));
                assert!(!ca.pending_traces.is_empty(), "{name}");
                assert_eq!(ca, cb, "{name}: checkpoint");
            }
            a.commit(signal, token).unwrap();
            b.commit(signal, token).unwrap();
        }
        if before
            == (
                batches,
                a.records_consumed(Signal::Traces),
                a.records_consumed(Signal::Logs),
            )
        {
            if abandoned {
                return;
            }
            // Shutdown: spans still in flight come out as incomplete.
            a.abandon_spans(NOW);
            b.abandon_spans(NOW);
            abandoned = true;
        } else {
            abandoned = false;
        }
    }
    panic!("{name}: no end within {} rounds", max_rounds(capacity));
}

/// A reader's checkpoint, without what tells the two readers apart (the
/// inode of their copy, the checkpoint's id, when the reader began to
/// aggregate).
fn checkpoint(r: &mut FileReader) -> ReaderCheckpoint {
    let mut cp = ReaderCheckpoint::decode(&r.checkpoint()[..]).unwrap();
    cp.ino = 0;
    cp.checkpoint_id = 0;
    cp.metrics_start_time_unix_nano = 0;
    cp
}

fn options() -> [ReaderOptions; 2] {
    [ReaderOptions::default(), tight_options()]
}

#[test]
fn flat_batches_of_the_corpora_are_their_requests_laid_out() {
    let mut seen = Compared::default();
    for path in corpus_files() {
        let bytes = std::fs::read(&path).unwrap();
        for (i, o) in options().into_iter().enumerate() {
            compare(
                &path.display().to_string(),
                &bytes,
                o,
                2 + i as u64,
                None,
                &mut seen,
            );
        }
    }
    assert!(seen.flat > 0, "{seen:?}");
}

fn kv(w: &MmapWriter, k: &str, v: Value) -> proto::KeyValueRef {
    proto::KeyValueRef {
        key_ref: w.intern_str(k).unwrap(),
        value: Some(proto::AnyValue { value: Some(v) }),
    }
}

/// A file of spans and log records of every shape the layout holds or
/// sends as OTLP, written by our writer.
fn shapes() -> Vec<u8> {
    use proto::span_event::{AddLink, ChangeSpanName, EndSpan, StartSpan, UpdateAttributes};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shapes.otlp");
    let ring = RingConfig {
        num_buffers: 1024,
        buffer_size: 4096,
    };
    let w = MmapWriter::create(
        &path,
        &FileConfig {
            events: ring,
            spans: ring,
            ..FileConfig::default()
        },
    )
    .unwrap();
    let scope = |name: &str, service: &str| {
        let resource = w
            .intern_message(&proto::Resource {
                attributes: vec![kv(&w, "service.name", Value::StringValue(service.into()))],
                dropped_attributes_count: 0,
            })
            .unwrap();
        w.intern_message(&proto::InstrumentationScope {
            name_ref: w.intern_str(name).unwrap(),
            version_ref: w.intern_str("1.0").unwrap(),
            resource_ref: resource,
            ..Default::default()
        })
        .unwrap()
    };
    let scopes = [scope("a", "one"), scope("b", "two"), scope("c", "one")];
    let common = vec![
        kv(&w, "http.method", Value::StringValue("GET".into())),
        kv(
            &w,
            "http.route",
            Value::StringValue("/api/users/{id}".into()),
        ),
        kv(&w, "http.status_code", Value::IntValue(200)),
        kv(&w, "net.peer.port", Value::IntValue(44321)),
    ];
    let event = |id: u64, scope: i64, event: Event| proto::SpanEvent {
        trace_id: [id.to_le_bytes(), [7; 8]].concat(),
        span_id: (id + 1).to_le_bytes().to_vec(),
        scope_ref: scope,
        event: Some(event),
    };
    for id in 0..300u64 {
        let scope = scopes[(id % 3) as usize];
        let mut attributes = common.clone();
        attributes.push(kv(&w, "unique", Value::StringValue(format!("u{}", id % 7))));
        match id % 10 {
            // A long list (sent as an encoded list).
            1 => attributes.extend((0..40).map(|i| kv(&w, &format!("k{i}"), Value::IntValue(i)))),
            // The key the reader marks incomplete spans with: twice once it is.
            2 => attributes.push(kv(&w, "otlp_mmap.incomplete", Value::BoolValue(false))),
            3 => attributes.push(kv(&w, "d", Value::DoubleValue(0.25))),
            4 => attributes.push(kv(&w, "b", Value::BytesValue(vec![1, 2, 3]))),
            5 => attributes.push(kv(
                &w,
                "arr",
                Value::ArrayValue(proto::ArrayValue {
                    values: vec![proto::AnyValue {
                        value: Some(Value::IntValue(1)),
                    }],
                }),
            )),
            _ => {}
        }
        let parent = match id % 11 {
            0 => vec![],
            // Another length than OTLP allows: the batch goes as OTLP.
            5 => vec![3; 5],
            _ => vec![4; 8],
        };
        w.try_write(
            RingKind::Spans,
            &event(
                id,
                scope,
                Event::Start(StartSpan {
                    parent_span_id: parent,
                    name: if id % 13 == 0 {
                        String::new()
                    } else {
                        format!("op {}", id % 4)
                    },
                    kind: (id % 6) as i32,
                    start_time_unix_nano: NOW - 1000 + id,
                    attributes,
                    flags: (id % 2) as u32,
                }),
            ),
        )
        .unwrap();
        if id % 4 == 1 {
            w.try_write(
                RingKind::Spans,
                &event(
                    id,
                    scope,
                    Event::Link(AddLink {
                        links: vec![proto::span_event::add_link::Link {
                            trace_id: vec![5; 16],
                            span_id: vec![6; 8],
                            trace_state: "k=v".into(),
                            attributes: vec![kv(&w, "link", Value::StringValue("yes".into()))],
                            dropped_attributes_count: 1,
                            flags: 1,
                        }],
                    }),
                ),
            )
            .unwrap();
        }
        if id % 5 == 2 {
            w.try_write(
                RingKind::Spans,
                &event(
                    id,
                    scope,
                    Event::Attributes(UpdateAttributes {
                        attributes: vec![kv(&w, "http.status_code", Value::IntValue(404))],
                    }),
                ),
            )
            .unwrap();
            w.try_write(
                RingKind::Spans,
                &event(
                    id,
                    scope,
                    Event::Name(ChangeSpanName {
                        name: "renamed".into(),
                    }),
                ),
            )
            .unwrap();
        }
        // Some never end: incomplete once abandoned.
        if id % 9 != 4 {
            let status = match id % 3 {
                0 => None,
                1 => Some(proto::Status {
                    message: String::new(),
                    code: 1,
                }),
                _ => Some(proto::Status {
                    message: format!("failed {}", id % 2),
                    code: 2,
                }),
            };
            w.try_write(
                RingKind::Spans,
                &event(
                    id,
                    scope,
                    Event::End(EndSpan {
                        end_time_unix_nano: NOW + id,
                        status,
                    }),
                ),
            )
            .unwrap();
        }
    }
    for i in 0..300u64 {
        let body = match i % 5 {
            0 => Value::StringValue("request handled".into()),
            1 => Value::IntValue(i as i64),
            2 => Value::StringValue(format!("line {i}")),
            3 => Value::KvlistValue(proto::KeyValueList {
                values: vec![kv(&w, "k", Value::BoolValue(true))],
            }),
            _ => Value::BoolValue(false),
        };
        let mut attributes = common[..3].to_vec();
        if i % 17 == 3 {
            // A key twice: the batch goes as OTLP.
            attributes.push(kv(&w, "http.method", Value::StringValue("PUT".into())));
        }
        w.try_write(
            RingKind::Events,
            &proto::Event {
                scope_ref: scopes[(i % 3) as usize],
                time_unix_nano: i,
                severity_number: (i % 24) as i32,
                severity_text: if i % 2 == 0 {
                    "INFO".into()
                } else {
                    String::new()
                },
                body: Some(proto::AnyValue { value: Some(body) }),
                attributes,
                span_context: (i % 4 == 0).then(|| proto::SpanContext {
                    trace_id: if i % 8 == 0 { vec![1; 16] } else { vec![1; 3] },
                    span_id: vec![2; 8],
                    flags: 1,
                }),
                event_name_ref: if i % 3 == 0 {
                    w.intern_str("evt").unwrap()
                } else {
                    0
                },
            },
        )
        .unwrap();
    }
    std::fs::read(&path).unwrap()
}

#[test]
fn flat_batches_of_every_shape_are_their_requests_laid_out() {
    let bytes = shapes();
    let mut seen = Compared::default();
    for (i, o) in options().into_iter().enumerate() {
        for batch in [1024, 16] {
            let o = ReaderOptions {
                max_batch_spans: batch,
                max_batch_logs: batch,
                ..o
            };
            compare("shapes", &bytes, o, 3 + i as u64, None, &mut seen);
            compare("shapes, restarted", &bytes, o, 5, Some(2), &mut seen);
        }
    }
    // Both kinds of batch were compared.
    assert!(seen.flat > 0 && seen.otlp > 0, "{seen:?}");
}

/// A file of spans that repeat a few start runs (the reader's attribute
/// run memo takes them whole, their flat lists are copied whole), on spans
/// of names of many lengths, and log records that repeat a few lists: a
/// run with a key twice, a long one (indexed keys), one with a value seen
/// first inline then interned, updates after the start.
fn repeated_runs() -> Vec<u8> {
    use proto::span_event::{EndSpan, StartSpan, UpdateAttributes};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.otlp");
    let ring = RingConfig {
        num_buffers: 2048,
        buffer_size: 2048,
    };
    let w = MmapWriter::create(
        &path,
        &FileConfig {
            events: ring,
            spans: ring,
            ..FileConfig::default()
        },
    )
    .unwrap();
    let scope = w
        .intern_message(&proto::InstrumentationScope {
            name_ref: w.intern_str("runs").unwrap(),
            ..Default::default()
        })
        .unwrap();
    let s = |v: &str| Value::StringValue(v.into());
    let plain = vec![
        kv(&w, "http.method", s("GET")),
        kv(&w, "http.route", s("/api/users/{id}")),
        kv(&w, "http.status_code", Value::IntValue(200)),
        kv(&w, "net.peer.port", Value::IntValue(44321)),
    ];
    let twice = vec![
        kv(&w, "a", s("a value longer than the next")),
        kv(&w, "b", Value::IntValue(2)),
        kv(&w, "a", s("second")),
    ];
    let long: Vec<_> = (0..20)
        .map(|i| kv(&w, &format!("k{}", i % 18), s(&format!("v{i}"))))
        .collect();
    let runs = [plain.clone(), twice, long, vec![]];
    let event = |id: u64, event: Event| proto::SpanEvent {
        trace_id: [id.to_le_bytes(), [9; 8]].concat(),
        span_id: (id + 1).to_le_bytes().to_vec(),
        scope_ref: scope,
        event: Some(event),
    };
    for id in 0..400u64 {
        let mut attributes = runs[(id % 4) as usize].clone();
        if id % 9 == 0 {
            // Seen first inline, interned when it repeats.
            attributes.push(kv(&w, "seen", s(&format!("s{}", id % 4))));
        }
        let start = StartSpan {
            name: "n".repeat((id * 7 % 60) as usize),
            start_time_unix_nano: NOW - 1000 + id,
            attributes,
            ..Default::default()
        };
        w.try_write(RingKind::Spans, &event(id, Event::Start(start)))
            .unwrap();
        if id % 4 == 3 || id % 10 == 2 {
            let update = UpdateAttributes {
                attributes: plain[..2].to_vec(),
            };
            w.try_write(RingKind::Spans, &event(id, Event::Attributes(update)))
                .unwrap();
        }
        let end = EndSpan {
            end_time_unix_nano: NOW + id,
            status: None,
        };
        w.try_write(RingKind::Spans, &event(id, Event::End(end)))
            .unwrap();
    }
    for i in 0..400u64 {
        let mut attributes = plain[..(i % 4) as usize].to_vec();
        if i % 13 == 5 {
            // A key twice: the batch goes as OTLP.
            attributes.push(plain[0].clone());
        }
        if i % 7 == 0 {
            attributes.push(kv(&w, "seen", s(&format!("s{}", i % 3))));
        }
        w.try_write(
            RingKind::Events,
            &proto::Event {
                scope_ref: scope,
                time_unix_nano: i,
                severity_number: 9,
                attributes,
                ..Default::default()
            },
        )
        .unwrap();
    }
    std::fs::read(&path).unwrap()
}

#[test]
fn flat_batches_of_repeated_runs_are_their_requests_laid_out() {
    let bytes = repeated_runs();
    let mut seen = Compared::default();
    let mut all = vec![ReaderOptions::default(), tight_options()];
    // Budgets and attribute limits that cut some runs and keep others.
    for max_record_bytes in [450, 700, 1000, 1500] {
        all.push(ReaderOptions {
            max_record_bytes,
            ..ReaderOptions::default()
        });
    }
    for max_span_attributes in [2, 3, 16, 17] {
        all.push(ReaderOptions {
            max_span_attributes,
            ..ReaderOptions::default()
        });
    }
    for (i, o) in all.into_iter().enumerate() {
        for batch in [1024, 7] {
            let o = ReaderOptions {
                max_batch_spans: batch,
                max_batch_logs: batch,
                ..o
            };
            compare("runs", &bytes, o, 3 + i as u64 % 3, None, &mut seen);
        }
    }
    compare(
        "runs, restarted",
        &bytes,
        ReaderOptions::default(),
        4,
        Some(2),
        &mut seen,
    );
    assert!(seen.flat > 0 && seen.otlp > 0, "{seen:?}");
}

/// A small deterministic generator (xorshift), for mutations that are the
/// same at every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn flat_batches_of_mutated_files_are_their_requests_laid_out() {
    // Untrusted bytes: the corpora with a few bytes changed anywhere
    // (headers, rings, dictionary), read alike by both readers.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seen = Compared::default();
    let mut files = corpus_files()
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect::<Vec<_>>();
    files.push(("shapes".into(), shapes()));
    for (name, bytes) in &files {
        if bytes.is_empty() {
            continue;
        }
        for m in 0..64 {
            let mut mutant = bytes.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() % mutant.len() as u64) as usize;
                mutant[at] = match rng.next() % 3 {
                    0 => 0,
                    1 => 0xff,
                    _ => rng.next() as u8,
                };
            }
            let o = options()[m % 2];
            compare(&format!("{name} #{m}"), &mutant, o, 3, None, &mut seen);
        }
    }
    assert!(seen.flat > 0, "{seen:?}");
}

/// Writes `to` over every occurrence of `from` (of the same length) in the
/// file at `path`: what a writer starting over in place leaves at the old
/// offsets of its dictionary.
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
    assert!(
        found > 0,
        "{:?} is in the file",
        String::from_utf8_lossy(from)
    );
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&bytes, 0).unwrap();
}

/// Two copies of a file of two ended spans of a scope `scope-old` of a
/// resource `service.name=svc-old`, the second span's scope ref `second_scope`
/// (`None`: the same scope), and the readers of both (`b` with the flat
/// hand-off) with `options`.
fn two_spans(
    options: ReaderOptions,
    second_scope: Option<i64>,
) -> (tempfile::TempDir, [PathBuf; 2], [FileReader; 2]) {
    use proto::span_event::{EndSpan, StartSpan};
    let dir = tempfile::tempdir().unwrap();
    let pa = dir.path().join("a.otlp");
    let w = MmapWriter::create(&pa, &FileConfig::default()).unwrap();
    let resource = w
        .intern_message(&proto::Resource {
            attributes: vec![kv(&w, "service.name", Value::StringValue("svc-old".into()))],
            dropped_attributes_count: 0,
        })
        .unwrap();
    let scope = w
        .intern_message(&proto::InstrumentationScope {
            name_ref: w.intern_str("scope-old").unwrap(),
            resource_ref: resource,
            ..Default::default()
        })
        .unwrap();
    for (id, scope_ref) in [(1u8, scope), (2, second_scope.unwrap_or(scope))] {
        let ev = |e| proto::SpanEvent {
            trace_id: vec![id; 16],
            span_id: vec![id; 8],
            scope_ref,
            event: Some(e),
        };
        let start = Event::Start(StartSpan {
            name: "op".into(),
            start_time_unix_nano: NOW - 10,
            ..Default::default()
        });
        let end = Event::End(EndSpan {
            end_time_unix_nano: NOW,
            status: None,
        });
        w.try_write(RingKind::Spans, &ev(start)).unwrap();
        w.try_write(RingKind::Spans, &ev(end)).unwrap();
    }
    drop(w);
    let pb = dir.path().join("b.otlp");
    std::fs::copy(&pa, &pb).unwrap();
    let a = FileReader::open(&pa, options).unwrap();
    let b = FileReader::open(
        &pb,
        ReaderOptions {
            flat_handoff: true,
            ..options
        },
    )
    .unwrap();
    (dir, [pa, pb], [a, b])
}

/// A writer starts over in place while a traces batch is pending, its
/// dictionary other bytes at the old offsets, and nothing of the batch's
/// scope and resource is cached: the checkpoint keeps the batch's request
/// with the scope and resource it was read with (the flat batch's own).
#[test]
fn pending_flat_traces_keep_their_scope_and_resource_across_a_restart_in_place() {
    let options = ReaderOptions {
        // Nothing is cached: every lookup reads the file.
        dictionary_cache_max_bytes: 4,
        ..ReaderOptions::default()
    };
    let (_dir, paths, [mut a, mut b]) = two_spans(options, None);
    let ba = a.poll(Signal::Traces, NOW).unwrap().unwrap();
    let (ta, request) = (ba.token, ba.bytes.to_vec());
    let fb = b.poll(Signal::Traces, NOW).unwrap().unwrap();
    let (tb, flat) = (fb.token, fb.bytes.to_vec());
    let mut w = FlatWriter::default();
    let mut expected = Vec::new();
    w.write(Signal::Traces, &request, &mut expected);
    assert_eq!(flat, expected);
    assert_eq!(flat[4], MODE_FLAT);
    // The new writer's dictionary holds other strings where the old held
    // the scope's name and the resource's attribute.
    for p in &paths {
        overwrite(p, b"scope-old", b"scope-new");
        overwrite(p, b"svc-old", b"svc-new");
        let later = a.file().start_time_unix_nano() + 1;
        let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        f.write_at(&later.to_le_bytes(), header::START_TIME)
            .unwrap();
    }
    assert_eq!(a.poll(Signal::Traces, NOW).unwrap().unwrap().token, ta);
    let again = b.poll(Signal::Traces, NOW).unwrap().unwrap();
    assert_eq!((again.token, again.bytes), (tb, &flat[..]));
    assert_eq!(b.stats().writer_restarts, 1);
    let (ca, cb) = (checkpoint(&mut a), checkpoint(&mut b));
    let request = |cp: &ReaderCheckpoint| String::from_utf8_lossy(&cp.pending_traces).into_owned();
    assert!(request(&cb).contains("scope-old"), "{:?}", request(&cb));
    assert!(request(&cb).contains("svc-old"), "{:?}", request(&cb));
    assert_eq!(ca, cb);
    // Laid out again (a new table) from the request the checkpoint keeps:
    // the same batch.
    b.start_flat_over(Signal::Traces);
    w.start_over();
    expected.clear();
    w.write(Signal::Traces, &ca.pending_traces, &mut expected);
    assert_eq!(
        b.poll(Signal::Traces, NOW).unwrap().unwrap().bytes,
        &expected[..]
    );
}

/// A flat traces batch with a bad scope ref: the ref is counted once, when
/// the batch is read, however many checkpoints keep its request.
#[test]
fn a_bad_ref_of_a_pending_flat_batch_is_counted_once() {
    let (_dir, _paths, [mut a, mut b]) = two_spans(ReaderOptions::default(), Some(1 << 40));
    let ta = a.poll(Signal::Traces, NOW).unwrap().unwrap().token;
    let fb = b.poll(Signal::Traces, NOW).unwrap().unwrap();
    assert_eq!((fb.items, fb.bytes[4]), (2, MODE_FLAT));
    let tb = fb.token;
    let bad = a.stats().bad_refs;
    assert!(bad > 0);
    assert_eq!(b.stats().bad_refs, bad);
    for _ in 0..3 {
        assert_eq!(checkpoint(&mut a), checkpoint(&mut b));
        assert_eq!(b.stats().bad_refs, bad);
    }
    a.commit(Signal::Traces, ta).unwrap();
    b.commit(Signal::Traces, tb).unwrap();
    assert_eq!((a.stats().bad_refs, b.stats().bad_refs), (bad, bad));
}
