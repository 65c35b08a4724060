//! Reads every reference vector at the ring level: the right sequences, in
//! order, each decoding to the message type and length its manifest lists.

use std::path::PathBuf;

use otlp_mmap_core::{MmapReader, RingKind, Slot, proto};
use prost::Message;
use serde_json::Value;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors/upstream-v1")
}

/// Copies a vector into a scratch directory (a reader writes `reader_index`).
fn copy_vector(name: &str) -> (tempfile::TempDir, PathBuf, Value) {
    let dir = tempfile::tempdir().unwrap();
    let src = vectors_dir().join(format!("{name}.otlp"));
    let dst = dir.path().join(format!("{name}.otlp"));
    std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    let manifest =
        std::fs::read_to_string(vectors_dir().join(format!("{name}.expected.json"))).unwrap();
    (dir, dst, serde_json::from_str(&manifest).unwrap())
}

/// Reads every published record of a ring: (sequence, message bytes).
fn drain(reader: &MmapReader, kind: RingKind) -> Vec<(i64, Vec<u8>)> {
    let mut ring = reader.ring_reader(kind).unwrap();
    let mut out = Vec::new();
    loop {
        match ring.peek(reader.region()) {
            Slot::Empty => break,
            Slot::Ready(b) => out.push((ring.next_sequence(), b.to_vec())),
            Slot::Corrupt(e) => panic!("corrupt slot at {}: {e}", ring.next_sequence()),
        }
        ring.advance();
    }
    ring.release(reader.region()).unwrap();
    out
}

fn event_name(e: &proto::SpanEvent) -> &'static str {
    use proto::span_event::Event;
    match e.event {
        Some(Event::Start(_)) => "start",
        Some(Event::End(_)) => "end",
        Some(Event::Name(_)) => "change_name",
        Some(Event::Attributes(_)) => "update_attributes",
        Some(Event::Link(_)) => "add_link",
        None => "none",
    }
}

fn check_layout(reader: &MmapReader, manifest: &Value) {
    let h = &manifest["layout"]["header"];
    let l = reader.layout();
    assert_eq!(l.events.offset, h["events_offset"].as_u64().unwrap());
    assert_eq!(l.spans.offset, h["spans_offset"].as_u64().unwrap());
    assert_eq!(
        l.measurements.offset,
        h["measurements_offset"].as_u64().unwrap()
    );
    assert_eq!(l.dictionary, h["dictionary_offset"].as_u64().unwrap());
    assert_eq!(
        reader.start_time_unix_nano(),
        h["start_time_unix_nano"].as_u64().unwrap()
    );
    let d = &manifest["layout"]["dictionary"];
    let (end, n) = reader.dictionary_header().unwrap();
    assert_eq!(end, d["end"].as_i64().unwrap());
    assert_eq!(n, d["num_entries"].as_i64().unwrap());
}

#[test]
fn spans_vector_sequence_matches_manifest() {
    let (_d, path, m) = copy_vector("spans");
    let reader = MmapReader::open(&path, true).unwrap();
    check_layout(&reader, &m);
    let got = drain(&reader, RingKind::Spans);
    let want = m["span_ring_sequence"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    assert_eq!(got.len(), 43);
    for ((seq, bytes), w) in got.iter().zip(want) {
        assert_eq!(*seq, w["seq"].as_i64().unwrap());
        assert_eq!(bytes.len() as u64, w["encoded_len"].as_u64().unwrap());
        let ev = proto::SpanEvent::decode(bytes.as_slice()).unwrap();
        assert_eq!(event_name(&ev), w["event"].as_str().unwrap());
        assert_eq!(hex(&ev.span_id), w["span_id"].as_str().unwrap());
    }
    assert!(drain(&reader, RingKind::Events).is_empty());
    assert!(drain(&reader, RingKind::Measurements).is_empty());
}

#[test]
fn logs_vector_has_29_events_in_order() {
    let (_d, path, m) = copy_vector("logs");
    let reader = MmapReader::open(&path, true).unwrap();
    check_layout(&reader, &m);
    let got = drain(&reader, RingKind::Events);
    assert_eq!(
        got.len() as u64,
        m["counts"]["events_written"].as_u64().unwrap()
    );
    for (i, (seq, bytes)) in got.iter().enumerate() {
        assert_eq!(*seq, i as i64);
        proto::Event::decode(bytes.as_slice()).unwrap();
    }
}

#[test]
fn metrics_vector_measurements_match_manifest() {
    let (_d, path, m) = copy_vector("metrics");
    let reader = MmapReader::open(&path, true).unwrap();
    check_layout(&reader, &m);
    let got = drain(&reader, RingKind::Measurements);
    let want = m["raw_measurements_in_ring_order"].as_array().unwrap();
    assert_eq!(got.len(), 156);
    for ((seq, bytes), w) in got.iter().zip(want) {
        assert_eq!(*seq, w["seq"].as_i64().unwrap());
        let ms = proto::Measurement::decode(bytes.as_slice()).unwrap();
        assert_eq!(ms.time_unix_nano, w["time_unix_nano"].as_u64().unwrap());
        let mref = proto::MetricRef::decode(reader.entry(ms.metric_ref).unwrap()).unwrap();
        assert_eq!(mref.name, w["metric"].as_str().unwrap());
    }
}

#[test]
fn wrap_vector_reads_across_2p32_with_upstream_flags() {
    let (_d, path, m) = copy_vector("wrap-2p32");
    let reader = MmapReader::open(&path, true).unwrap();
    check_layout(&reader, &m);
    let got = drain(&reader, RingKind::Spans);
    let want = m["unread_span_events"].as_array().unwrap();
    assert_eq!(got.len(), 48);
    for ((seq, bytes), w) in got.iter().zip(want) {
        assert_eq!(*seq, w["seq"].as_i64().unwrap());
        assert_eq!(bytes.len() as u64, w["encoded_len"].as_u64().unwrap());
        let ev = proto::SpanEvent::decode(bytes.as_slice()).unwrap();
        assert_eq!(event_name(&ev), w["event"].as_str().unwrap());
    }
    // The reader released everything it read.
    drop(reader);
    let again = MmapReader::open(&path, true).unwrap();
    assert!(drain(&again, RingKind::Spans).is_empty());
}

#[test]
fn second_reader_is_refused() {
    let (_d, path, _m) = copy_vector("spans");
    let _first = MmapReader::open(&path, true).unwrap();
    let err = MmapReader::open(&path, true).unwrap_err();
    assert_eq!(err, otlp_mmap_core::FormatError::Locked);
    // A look-only reader is allowed.
    MmapReader::open(&path, false).unwrap();
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
