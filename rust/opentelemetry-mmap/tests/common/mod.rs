//! Reading back what the crate wrote, with the format crate's reader.
#![allow(dead_code)]

use std::path::Path;

use otlp_mmap_core::{MmapReader, RingKind, Slot, proto};
use prost::Message;

/// Every record of a ring, decoded; also checks that re-encoding the decoded
/// message with prost gives back exactly the bytes in the slot (our encoder
/// agrees with prost's field order and sizes).
pub fn drain<M: Message + Default>(reader: &MmapReader, kind: RingKind) -> Vec<M> {
    let mut ring = reader.ring_reader(kind).unwrap();
    let mut out = Vec::new();
    loop {
        match ring.peek(reader.region()) {
            Slot::Ready(bytes) => {
                let msg = M::decode(bytes).unwrap();
                assert_eq!(msg.encode_to_vec(), bytes, "encoding differs from prost's");
                out.push(msg);
                ring.advance();
            }
            Slot::Empty => break,
            Slot::Corrupt(e) => panic!("corrupt slot: {e}"),
        }
    }
    ring.release(reader.region()).unwrap();
    out
}

pub struct Records {
    pub reader: MmapReader,
    pub spans: Vec<proto::SpanEvent>,
    pub events: Vec<proto::Event>,
    pub measurements: Vec<proto::Measurement>,
}

pub fn read_all(path: &Path) -> Records {
    let reader = MmapReader::open(path, false).unwrap();
    let spans = drain(&reader, RingKind::Spans);
    let events = drain(&reader, RingKind::Events);
    let measurements = drain(&reader, RingKind::Measurements);
    Records {
        reader,
        spans,
        events,
        measurements,
    }
}

impl Records {
    pub fn string(&self, r: i64) -> String {
        if r == 0 {
            return String::new();
        }
        String::from_utf8(self.reader.entry(r).unwrap().to_vec()).unwrap()
    }

    pub fn message<M: Message + Default>(&self, r: i64) -> M {
        M::decode(self.reader.entry(r).unwrap()).unwrap()
    }

    /// Attributes as (key, value) with keys resolved.
    pub fn attrs(&self, kvs: &[proto::KeyValueRef]) -> Vec<(String, proto::any_value::Value)> {
        kvs.iter()
            .map(|kv| {
                (
                    self.string(kv.key_ref),
                    kv.value.clone().unwrap().value.unwrap(),
                )
            })
            .collect()
    }
}

pub fn start_of(e: &proto::SpanEvent) -> Option<&proto::span_event::StartSpan> {
    match &e.event {
        Some(proto::span_event::Event::Start(s)) => Some(s),
        _ => None,
    }
}

pub fn end_of(e: &proto::SpanEvent) -> Option<&proto::span_event::EndSpan> {
    match &e.event {
        Some(proto::span_event::Event::End(s)) => Some(s),
        _ => None,
    }
}

/// Runs the test `child` of this test binary alone in a child process with
/// `env` set (the child does its work only then), and asserts that the
/// process succeeded: a crash there (a signal, an abort) fails the caller
/// instead of killing the whole test run.
pub fn run_child_test(child: &str, env: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", child, "--nocapture", "--test-threads=1"])
        .env(env, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
