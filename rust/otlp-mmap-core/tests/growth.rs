//! The dictionary grows past the file's initial size while a reader that
//! opened the file earlier keeps resolving refs: `MmapReader::entry` re-reads
//! the file's length when a ref lies past what it knew.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::config;
use otlp_mmap_core::proto::{self, any_value::Value};
use otlp_mmap_core::{FileConfig, FormatError, MmapReader, MmapWriter, RingKind, Slot, WriteError};
use prost::Message;

fn entry_text(i: u64) -> String {
    format!("attribute.key.{i:06}.{}", "p".repeat((i % 50) as usize))
}

#[test]
fn reader_opened_early_resolves_refs_past_its_initial_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grow.otlp");
    let writer = MmapWriter::create(&path, &config(4, 64, 1024)).unwrap();
    let reader = MmapReader::open(&path, true).unwrap();
    let initial = reader.region().valid_len();
    assert_eq!(initial as u64, std::fs::metadata(&path).unwrap().len());
    let refs: Vec<i64> = (0..5000)
        .map(|i| writer.intern_str(&entry_text(i)).unwrap())
        .collect();
    let file_len = std::fs::metadata(&path).unwrap().len();
    assert!(file_len > 100 * initial as u64 / 10, "the file grew a lot");
    assert!(
        refs.iter().filter(|&&r| r as usize > initial).count() > 4000,
        "most refs lie past the reader's initial length"
    );
    // Still the reader's initial view until it needs more.
    assert_eq!(reader.region().valid_len(), initial);
    // Resolve in reverse: the very first lookup must see the whole file.
    for (i, &r) in refs.iter().enumerate().rev() {
        assert_eq!(reader.entry(r).unwrap(), entry_text(i as u64).as_bytes());
    }
    assert_eq!(reader.region().valid_len() as u64, file_len);
    let (end, n) = reader.dictionary_header().unwrap();
    assert_eq!(n, 5000);
    assert!(end as u64 <= file_len);
    // A ref past the dictionary's end is an error, not a fault.
    assert!(matches!(reader.entry(end), Err(FormatError::BadRef { .. })));
    assert!(matches!(
        reader.entry(file_len as i64 + 4096),
        Err(FormatError::BadRef { .. })
    ));
}

#[test]
fn concurrent_growth_every_published_ref_resolves() {
    const N: u64 = 4000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grow2.otlp");
    let writer = MmapWriter::create(&path, &config(64, 256, 512)).unwrap();
    let reader = MmapReader::open(&path, true).unwrap();
    let initial = reader.region().valid_len();
    let done = AtomicBool::new(false);
    let resolved_past_initial = std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..N {
                // Each record refers to an entry interned just before it, and
                // to a stored AnyValue (value_ref) that refers to another entry.
                let key = writer.intern_str(&entry_text(i)).unwrap();
                let inner = proto::AnyValue {
                    value: Some(Value::KvlistValue(proto::KeyValueList {
                        values: vec![proto::KeyValueRef {
                            key_ref: writer.intern_str(&format!("inner.{i}")).unwrap(),
                            value: Some(proto::AnyValue {
                                value: Some(Value::IntValue(i as i64)),
                            }),
                        }],
                    })),
                };
                let value_ref = writer.intern_message(&inner).unwrap();
                let ev = proto::Event {
                    time_unix_nano: i,
                    attributes: vec![proto::KeyValueRef {
                        key_ref: key,
                        value: Some(proto::AnyValue {
                            value: Some(Value::ValueRef(value_ref)),
                        }),
                    }],
                    ..Default::default()
                };
                while let Err(e) = writer.try_write(RingKind::Events, &ev) {
                    assert_eq!(e, WriteError::Full);
                    std::thread::yield_now();
                }
            }
            done.store(true, Ordering::Release);
        });
        let mut ring = reader.ring_reader(RingKind::Events).unwrap();
        let mut next = 0u64;
        let mut past = 0u64;
        while next < N {
            match ring.peek(reader.region()) {
                Slot::Ready(b) => {
                    let ev = proto::Event::decode(b).unwrap();
                    ring.advance();
                    ring.release(reader.region()).unwrap();
                    assert_eq!(ev.time_unix_nano, next);
                    let kv = &ev.attributes[0];
                    if kv.key_ref as usize >= initial {
                        past += 1;
                    }
                    assert_eq!(
                        reader.entry(kv.key_ref).unwrap(),
                        entry_text(next).as_bytes()
                    );
                    let Some(Value::ValueRef(vr)) = kv.value.as_ref().unwrap().value else {
                        panic!("no value_ref")
                    };
                    let inner = proto::AnyValue::decode(reader.entry(vr).unwrap()).unwrap();
                    let Some(Value::KvlistValue(l)) = inner.value else {
                        panic!("not a kvlist")
                    };
                    assert_eq!(
                        reader.entry(l.values[0].key_ref).unwrap(),
                        format!("inner.{next}").as_bytes()
                    );
                    next += 1;
                }
                Slot::Corrupt(e) => panic!("{e}"),
                Slot::Empty => {
                    assert!(!done.load(Ordering::Acquire) || next == N);
                    std::thread::yield_now();
                }
            }
        }
        past
    });
    assert!(resolved_past_initial > N / 2, "{resolved_past_initial}");
    assert!(reader.region().valid_len() > 4 * initial);
}

#[test]
fn dictionary_full_is_an_error_and_leaves_room_for_what_still_fits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.otlp");
    let cfg = FileConfig {
        dictionary_initial_size: 256,
        dictionary_max_size: 4096,
        ..config(4, 64, 256)
    };
    let writer = MmapWriter::create(&path, &cfg).unwrap();
    let reader = MmapReader::open(&path, true).unwrap();
    let big = vec![b'x'; 3000];
    let r_big = writer.append_entry(&big).unwrap();
    let (end_before, _) = reader.dictionary_header().unwrap();
    assert!(matches!(
        writer.append_entry(&big),
        Err(FormatError::DictionaryFull { .. })
    ));
    let (end_after, n) = reader.dictionary_header().unwrap();
    assert_eq!(end_after, end_before, "a refused entry leaves `end` alone");
    assert_eq!(n, 1);
    let r_small = writer.append_entry(b"still fits").unwrap();
    assert_eq!(r_small, end_before);
    assert_eq!(reader.entry(r_big).unwrap(), big.as_slice());
    assert_eq!(reader.entry(r_small).unwrap(), b"still fits");
    // The file never grows past the writer's maximum.
    let max_end = reader.layout().dictionary + 64 + 4096;
    assert!(std::fs::metadata(&path).unwrap().len() <= max_end);
}
