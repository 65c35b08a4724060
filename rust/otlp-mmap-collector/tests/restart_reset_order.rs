//! A writer that starts over in place may store its new start time before it
//! resets the rings (the spec does not fix the order). A reader that polls
//! in between opens the new stream at the old stream's position; once the
//! writer resets the rings, that position is stale. Every record the new
//! writer publishes after its initialisation is still delivered, once, with
//! the new writer's dictionary, whichever the order.

use std::os::unix::fs::FileExt;

use otlp_mmap_collector::opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use otlp_mmap_collector::opentelemetry_proto::tonic::common::v1::any_value::Value as OtlpValue;
use otlp_mmap_collector::{FileReader, ReaderOptions, Signal};
use otlp_mmap_core::layout::{DICTIONARY_HEADER_LEN, dictionary_header, header, ring_header};
use otlp_mmap_core::proto::{self, any_value::Value};
use otlp_mmap_core::{FileConfig, MmapWriter, RingConfig, RingKind};
use prost::Message;

const SECOND: u64 = 1_000_000_000;
const SLOTS: u64 = 8;

fn config() -> FileConfig {
    let ring = RingConfig {
        num_buffers: SLOTS,
        buffer_size: 256,
    };
    FileConfig {
        events: ring,
        spans: ring,
        measurements: ring,
        ..FileConfig::default()
    }
}

/// Writes a log record with `body` and one attribute whose key is `key`;
/// false when the ring was full.
fn log(w: &MmapWriter, body: &str, key: &str) -> bool {
    let ev = proto::Event {
        body: Some(proto::AnyValue {
            value: Some(Value::StringValue(body.into())),
        }),
        attributes: vec![proto::KeyValueRef {
            key_ref: w.intern_str(key).unwrap(),
            value: Some(proto::AnyValue {
                value: Some(Value::IntValue(1)),
            }),
        }],
        ..Default::default()
    };
    w.try_write(RingKind::Events, &ev).is_ok()
}

/// (body, attribute keys) of every log record of the next batches, committed.
fn drain_logs(r: &mut FileReader, now: u64) -> Vec<(String, Vec<String>)> {
    let mut got = vec![];
    while let Some(b) = r.poll(Signal::Logs, now).unwrap() {
        let token = b.token;
        let req = ExportLogsServiceRequest::decode(b.bytes).unwrap();
        r.commit(Signal::Logs, token).unwrap();
        for lr in req
            .resource_logs
            .iter()
            .flat_map(|rl| &rl.scope_logs)
            .flat_map(|sl| &sl.log_records)
        {
            let body = match lr.body.as_ref().and_then(|v| v.value.as_ref()) {
                Some(OtlpValue::StringValue(s)) => s.clone(),
                other => panic!("unexpected body {other:?}"),
            };
            let keys = lr.attributes.iter().map(|kv| kv.key.clone()).collect();
            got.push((body, keys));
        }
    }
    got
}

/// Resets the file's rings and dictionary as a writer initialising it does.
fn reset_rings_and_dictionary(file: &std::fs::File, w: &MmapWriter) {
    let layout = w.layout();
    for kind in RingKind::ALL {
        let g = layout.ring(kind);
        for field in [ring_header::READER_INDEX, ring_header::WRITER_INDEX] {
            file.write_at(&(-1i64).to_le_bytes(), g.offset + field)
                .unwrap();
        }
        for i in 0..g.num_buffers {
            file.write_at(&(-1i32).to_le_bytes(), g.flag_offset(i))
                .unwrap();
        }
    }
    let d = layout.dictionary;
    file.write_at(
        &((d + DICTIONARY_HEADER_LEN) as i64).to_le_bytes(),
        d + dictionary_header::END,
    )
    .unwrap();
    file.write_at(&0i64.to_le_bytes(), d + dictionary_header::NUM_ENTRIES)
        .unwrap();
}

/// The order in which a writer that starts over stores its start time and
/// resets its rings (the reader polls between the two).
#[derive(Clone, Copy, PartialEq)]
enum Order {
    StartTimeFirst,
    RingsFirst,
}

/// The old stream: `old` records written and read. The writer then starts
/// over in `order`, and writes `burst` records before the reader polls
/// again, then more between polls: each of them is delivered once.
fn restart_in_place(order: Order, old: usize, burst: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let w = MmapWriter::create(&path, &config()).unwrap();
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let mut got = vec![];
    for i in 0..old {
        assert!(log(&w, &format!("old-{i}"), "old-key"));
        if i % 4 == 3 {
            got.extend(drain_logs(&mut r, SECOND));
        }
    }
    got.extend(drain_logs(&mut r, SECOND));
    assert_eq!(got.len(), old);
    assert_eq!(r.next_sequence(Signal::Logs), old as i64);

    // The writer starts over, and the reader polls halfway (it opens a new
    // stream then, at the position the ring holds). The new dictionary's
    // first key lands where the old one was.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let restarted = w.start_time_unix_nano() + 1;
    let store_start_time = || {
        file.write_at(&restarted.to_le_bytes(), header::START_TIME)
            .unwrap()
    };
    if order == Order::StartTimeFirst {
        store_start_time();
    } else {
        reset_rings_and_dictionary(&file, &w);
    }
    assert!(drain_logs(&mut r, 2 * SECOND).is_empty());
    if order == Order::StartTimeFirst {
        assert_eq!(r.stats().writer_restarts, 1);
        assert_eq!(r.file().start_time_unix_nano(), restarted);
        reset_rings_and_dictionary(&file, &w);
    } else {
        store_start_time();
    }

    let new = 3 * SLOTS as usize;
    let mut got = vec![];
    let mut dropped = 0;
    for i in 0..new {
        if !log(&w, &format!("new-{i}"), "new-key") {
            dropped += 1;
        }
        if i + 1 >= burst && i % 4 == 3 {
            got.extend(drain_logs(&mut r, (3 + i as u64) * SECOND));
        }
    }
    for t in 0..4 {
        got.extend(drain_logs(&mut r, (100 + t) * SECOND));
    }
    assert_eq!(
        dropped, 0,
        "the new writer's ring filled: the reader stalled"
    );
    let want: Vec<(String, Vec<String>)> = (0..new)
        .map(|i| (format!("new-{i}"), vec!["new-key".to_string()]))
        .collect();
    assert_eq!(got, want);
    assert_eq!(r.next_sequence(Signal::Logs), new as i64);
    assert_eq!(r.stats().writer_restarts, 1, "one restart, counted once");
}

/// The old stream's position is past the ring's size: the new writer's
/// sequences would reach it only once the ring is full (every record then
/// dropped).
#[test]
fn a_stream_opened_past_the_ring_size_before_the_reset_is_opened_again() {
    restart_in_place(Order::StartTimeFirst, 3 * SLOTS as usize - 3, 0);
}

/// The old stream's position is inside the ring and the new writer writes
/// past it before the reader polls: nothing is read from there first (and
/// read again from the start).
#[test]
fn a_stream_opened_inside_the_ring_before_the_reset_reads_from_the_start() {
    restart_in_place(Order::StartTimeFirst, 2, SLOTS as usize - 2);
}

/// The order of our writer (the rings first): the reader opens the reset
/// rings at once, and again with the start time; one restart.
#[test]
fn a_writer_that_resets_its_rings_before_its_start_time_is_followed_once() {
    restart_in_place(Order::RingsFirst, 3 * SLOTS as usize - 3, 0);
    restart_in_place(Order::RingsFirst, 2, SLOTS as usize - 2);
}

/// While a restart cannot be followed yet (the new writer stored its start
/// time, but its header is not valid yet, so the new stream cannot be
/// opened), nothing is read from the rings, which may hold the new writer's
/// records; once it can, each of them is read once, through the new stream.
#[test]
fn nothing_is_read_while_a_restart_cannot_be_followed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let w = MmapWriter::create(&path, &config()).unwrap();
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    assert!(log(&w, "old-0", "old-key"));
    assert_eq!(drain_logs(&mut r, SECOND).len(), 1);

    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut version = [0u8; 8];
    file.read_exact_at(&mut version, header::VERSION).unwrap();
    file.write_at(&0i64.to_le_bytes(), header::VERSION).unwrap();
    let restarted = w.start_time_unix_nano() + 1;
    file.write_at(&restarted.to_le_bytes(), header::START_TIME)
        .unwrap();
    for i in 0..3 {
        assert!(log(&w, &format!("new-{i}"), "new-key"));
    }
    for t in 2..5 {
        assert!(drain_logs(&mut r, t * SECOND).is_empty());
    }
    assert_eq!(r.stats().records_read[Signal::Logs as usize], 1);
    assert_eq!(r.stats().writer_restarts, 0);

    file.write_at(&version, header::VERSION).unwrap();
    let got = drain_logs(&mut r, 10 * SECOND);
    let want: Vec<(String, Vec<String>)> = (0..3)
        .map(|i| (format!("new-{i}"), vec!["new-key".to_string()]))
        .collect();
    assert_eq!(got, want);
    assert_eq!(r.stats().writer_restarts, 1);
}
