//! Reads a whole file as untrusted input: opens it, drains every ring, decodes
//! every record and resolves every dictionary ref it meets, transitively.
//!
//! This is the one "open and drain everything" routine shared by the fuzz
//! target (`fuzz/fuzz_targets/open_and_drain.rs`) and the corruption tests, so
//! both exercise exactly the same paths. Whatever the bytes are, it returns
//! values or a [`FormatError`]: every loop is bounded (a ring by its
//! `num_buffers`, ref resolution by a cache of refs already seen and by a
//! budget of dictionary bytes proportional to the file's size).

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message;

use crate::error::FormatError;
use crate::layout::RingKind;
use crate::proto;
use crate::reader::MmapReader;
use crate::ring::Slot;

/// What [`drain_all`] found. Indexes of the per-ring arrays are `RingKind as usize`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DrainReport {
    /// Records read and decoded, per ring.
    pub records: [u64; 3],
    /// Published slots whose message did not decode, per ring.
    pub decode_errors: [u64; 3],
    /// Published slots whose framing was broken ([`Slot::Corrupt`]), per ring.
    pub corrupt_slots: [u64; 3],
    /// Distinct (ref, expected content) pairs resolved to a valid entry.
    pub refs_resolved: u64,
    /// Refs that did not resolve, or whose entry did not decode as what the
    /// referring field says it holds.
    pub ref_errors: u64,
    /// Whether ref resolution stopped early because its byte budget ran out.
    pub budget_exhausted: bool,
}

impl DrainReport {
    /// Records, decode errors and corrupt slots of all rings.
    pub fn slots_seen(&self) -> u64 {
        (0..3)
            .map(|i| self.records[i] + self.decode_errors[i] + self.corrupt_slots[i])
            .sum()
    }
}

/// Opens `path` without the exclusive reader lock and drains it with
/// [`drain_all`]. Draining releases the slots it reads (it stores
/// `reader_index`): use it on copies, not on a file a collector is reading.
pub fn open_and_drain(path: impl AsRef<Path>) -> Result<DrainReport, FormatError> {
    let reader = MmapReader::open(path, false)?;
    Ok(drain_all(&reader))
}

/// Writes `bytes` to a fresh file in `dir`, runs [`open_and_drain`] on it and
/// removes the file: what the fuzz target does with each input.
pub fn drain_bytes_in(dir: &Path, bytes: &[u8]) -> Result<DrainReport, FormatError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = dir.join(format!(
        "otlp-mmap-drain-{}-{}.otlp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, bytes)?;
    let result = open_and_drain(&path);
    let _ = std::fs::remove_file(&path);
    result
}

/// What a dictionary entry is expected to hold, known from the referring field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Content {
    Str,
    Scope,
    Resource,
    Metric,
    Value,
}

/// Drains every ring of `reader` (at most `num_buffers` slots each, releasing
/// them), decodes every record as its ring's message type and resolves every
/// ref the records (and the entries they refer to) contain.
pub fn drain_all(reader: &MmapReader) -> DrainReport {
    let mut report = DrainReport::default();
    let mut refs = Refs::default();
    let region = reader.region();
    for kind in RingKind::ALL {
        let i = kind as usize;
        let Ok(mut ring) = reader.ring_reader(kind) else {
            report.corrupt_slots[i] += 1;
            continue;
        };
        for _ in 0..ring.geometry().num_buffers {
            match ring.peek(region) {
                Slot::Empty => break,
                Slot::Corrupt(_) => report.corrupt_slots[i] += 1,
                Slot::Ready(bytes) => {
                    let ok = match kind {
                        RingKind::Events => {
                            proto::Event::decode(bytes).map(|e| refs.event(&e)).is_ok()
                        }
                        RingKind::Spans => proto::SpanEvent::decode(bytes)
                            .map(|e| refs.span_event(&e))
                            .is_ok(),
                        RingKind::Measurements => proto::Measurement::decode(bytes)
                            .map(|m| refs.measurement(&m))
                            .is_ok(),
                    };
                    if ok {
                        report.records[i] += 1;
                    } else {
                        report.decode_errors[i] += 1;
                    }
                }
            }
            ring.advance();
        }
        let _ = ring.release(region);
    }
    refs.resolve(reader, &mut report);
    report
}

/// Refs waiting to be resolved, and those already seen.
#[derive(Default)]
struct Refs {
    pending: Vec<(i64, Content)>,
    seen: HashSet<(i64, Content)>,
}

impl Refs {
    fn push(&mut self, reference: i64, content: Content) {
        if reference != 0 && self.seen.insert((reference, content)) {
            self.pending.push((reference, content));
        }
    }

    fn attributes(&mut self, attrs: &[proto::KeyValueRef]) {
        for kv in attrs {
            self.push(kv.key_ref, Content::Str);
            if let Some(v) = &kv.value {
                self.value(v);
            }
        }
    }

    /// Walks an AnyValue tree without recursion (its depth is bounded by
    /// prost's decode recursion limit anyway).
    fn value(&mut self, root: &proto::AnyValue) {
        use proto::any_value::Value;
        let mut stack = vec![root];
        while let Some(v) = stack.pop() {
            match &v.value {
                Some(Value::ArrayValue(a)) => stack.extend(a.values.iter()),
                Some(Value::KvlistValue(kv)) => {
                    for e in &kv.values {
                        self.push(e.key_ref, Content::Str);
                        if let Some(v) = &e.value {
                            stack.push(v);
                        }
                    }
                }
                Some(Value::ValueRef(r)) => self.push(*r, Content::Value),
                _ => {}
            }
        }
    }

    fn event(&mut self, e: &proto::Event) {
        self.push(e.scope_ref, Content::Scope);
        self.push(e.event_name_ref, Content::Str);
        if let Some(b) = &e.body {
            self.value(b);
        }
        self.attributes(&e.attributes);
    }

    fn span_event(&mut self, e: &proto::SpanEvent) {
        use proto::span_event::Event;
        self.push(e.scope_ref, Content::Scope);
        match &e.event {
            Some(Event::Start(s)) => self.attributes(&s.attributes),
            Some(Event::Attributes(a)) => self.attributes(&a.attributes),
            Some(Event::Link(l)) => {
                for link in &l.links {
                    self.attributes(&link.attributes);
                }
            }
            Some(Event::End(_)) | Some(Event::Name(_)) | None => {}
        }
    }

    fn measurement(&mut self, m: &proto::Measurement) {
        self.push(m.metric_ref, Content::Metric);
        self.attributes(&m.attributes);
    }

    /// Resolves every pending ref, and the refs inside the entries it finds.
    fn resolve(&mut self, reader: &MmapReader, report: &mut DrainReport) {
        let mut budget = (reader.region().valid_len() as u64)
            .saturating_mul(16)
            .saturating_add(1 << 20);
        while let Some((reference, content)) = self.pending.pop() {
            let bytes = match reader.entry(reference) {
                Ok(b) => b,
                Err(_) => {
                    report.ref_errors += 1;
                    continue;
                }
            };
            let cost = bytes.len() as u64 + 1;
            if cost > budget {
                report.budget_exhausted = true;
                return;
            }
            budget -= cost;
            let ok = match content {
                Content::Str => std::str::from_utf8(bytes).is_ok(),
                Content::Scope => proto::InstrumentationScope::decode(bytes)
                    .map(|s| {
                        self.push(s.name_ref, Content::Str);
                        self.push(s.version_ref, Content::Str);
                        self.push(s.resource_ref, Content::Resource);
                        self.attributes(&s.attributes);
                    })
                    .is_ok(),
                Content::Resource => proto::Resource::decode(bytes)
                    .map(|r| self.attributes(&r.attributes))
                    .is_ok(),
                Content::Metric => proto::MetricRef::decode(bytes)
                    .map(|m| self.push(m.instrumentation_scope_ref, Content::Scope))
                    .is_ok(),
                Content::Value => proto::AnyValue::decode(bytes)
                    .map(|v| self.value(&v))
                    .is_ok(),
            };
            if ok {
                report.refs_resolved += 1;
            } else {
                report.ref_errors += 1;
            }
        }
    }
}
