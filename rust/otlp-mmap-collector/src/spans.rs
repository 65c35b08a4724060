//! `SpanAssembler`: builds OTLP spans from the span events of one file.
//!
//! A span is keyed by (trace_id, span_id). StartSpan opens it; ChangeSpanName,
//! UpdateAttributes (an upsert, as `Span::set_attribute`) and AddLink modify
//! it; EndSpan completes it. In-flight spans are bounded by count and age: a
//! span given up before its end is emitted as an *incomplete* span (end time =
//! when it was given up, status ERROR, attribute [`INCOMPLETE_ATTRIBUTE`]), so
//! that after a crash the Collector still shows what the process was doing.
//!
//! Each span is bounded like the SDKs bound theirs ([`SpanLimits`]): at most
//! `max_attributes` attributes and `max_links` links, and at most
//! `max_span_bytes` of resolved attributes and links (as
//! [`crate::dictionary::value_bytes`] counts them). What would pass a limit is
//! dropped and counted in the span's `dropped_attributes_count` /
//! `dropped_links_count`; the rest of the span is kept. An attribute update
//! finds its key through an index once a span has many attributes, so updates
//! cost the same whatever the span holds. The v1 format has no span events
//! (writers send them as log records), so there is nothing to cap there.
//!
//! No OTLP struct is built: a span in flight holds its attributes and links
//! as the encoded OTLP fields they become (keys and values resolved through
//! the dictionary cache, which keeps them encoded), an upsert rewrites one
//! attribute's field in place, and a completed span is written straight into
//! the batch's request by [`SpanAssembler::encode_completed`]. A span's
//! buffers go back to a pool when it has been taken, so that in steady state
//! assembling a span allocates nothing.

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;

use opentelemetry_proto::tonic::trace::v1::{Span, span, status};
use otlp_mmap_core::MmapReader;
use otlp_mmap_core::view::{AnyValueView, LinkView, Repeated, SpanEventKind, SpanEventView};

use crate::attribute_cache::CachedAttribute;
use crate::attribute_run_memo::{MAX_RUN, RunResult};
use crate::canonical;
use crate::dictionary::{DictionaryCache, KEY_VALUE_COST};
use crate::encode;
use crate::flat::FlatWriter;
use crate::flat::span::SpanFields;
use crate::group::RequestEncoder;

/// Attribute set to `true` on a span that was emitted without its end.
pub const INCOMPLETE_ATTRIBUTE: &str = "otlp_mmap.incomplete";
/// Attribute saying why an incomplete span was given up.
pub const INCOMPLETE_REASON_ATTRIBUTE: &str = "otlp_mmap.incomplete.reason";
/// Attribute set to `true` on a span whose EndSpan arrived without its StartSpan.
pub const START_MISSING_ATTRIBUTE: &str = "otlp_mmap.start_missing";

/// Why an in-flight span was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    /// More spans were in flight than `max_in_flight_spans`; the oldest went.
    TooManyInFlight,
    /// The span was open longer than `max_span_age`.
    TooOld,
    /// The writer started over (restart, new file at the same path).
    WriterRestarted,
    /// The writer's process is gone (its lock was released) or the file was removed.
    WriterGone,
    /// The reader was asked to give up every in-flight span (shutdown).
    Abandoned,
    /// In-flight spans held more than `max_in_flight_bytes`; the oldest went.
    TooManyBytesInFlight,
    /// The Collector is stopping and keeps no state across its restart.
    CollectorStopping,
}

impl GiveUpReason {
    fn text(self) -> &'static str {
        match self {
            GiveUpReason::TooManyInFlight => "too many spans in flight",
            GiveUpReason::TooOld => "span open longer than max_span_age",
            GiveUpReason::WriterRestarted => "writer started over",
            GiveUpReason::WriterGone => "writer process is gone",
            GiveUpReason::Abandoned => "reader stopped",
            GiveUpReason::TooManyBytesInFlight => "too many bytes in spans in flight",
            GiveUpReason::CollectorStopping => "collector stopping",
        }
    }
}

/// Bounds of the spans in flight and of each span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanLimits {
    /// Most spans in flight; beyond it the oldest is given up.
    pub max_in_flight: usize,
    /// Longest a span stays in flight (reader clock).
    pub max_age_nanos: u64,
    /// Most attributes per span (the SDKs' default span limit is 128).
    pub max_attributes: usize,
    /// Most links per span (the SDKs' default span limit is 128).
    pub max_links: usize,
    /// Most bytes of resolved attributes and links per span.
    pub max_span_bytes: usize,
    /// Most bytes of all spans in flight; beyond it the oldest are given up.
    pub max_in_flight_bytes: usize,
}

impl Default for SpanLimits {
    fn default() -> Self {
        SpanLimits {
            max_in_flight: 100_000,
            max_age_nanos: 600_000_000_000,
            max_attributes: 128,
            max_links: 128,
            max_span_bytes: 1 << 20,
            max_in_flight_bytes: 64 << 20,
        }
    }
}

pub(crate) type SpanKey = ([u8; 16], [u8; 8]);

/// Attributes a span holds before its key index is built (below it a scan is cheaper).
const INDEX_FROM: usize = 16;
/// Bytes a span costs besides its attributes and links.
pub(crate) const SPAN_COST: usize = std::mem::size_of::<Span>() + 32;
/// Bytes a link costs besides its attributes and trace state.
pub(crate) const LINK_COST: usize = std::mem::size_of::<span::Link>() + 24;
/// Most spans' buffers kept for reuse (a batch's worth), and the largest
/// kept: the pool holds at most 4 MiB, however large some spans were.
const POOL_MAX: usize = 1024;
const POOL_MAX_CAPACITY: usize = 4 << 10;

/// Field numbers of `opentelemetry.proto.trace.v1.Span` (and of its `Status`).
pub(crate) mod tag {
    pub const TRACE_ID: u32 = 1;
    pub const SPAN_ID: u32 = 2;
    pub const PARENT_SPAN_ID: u32 = 4;
    pub const NAME: u32 = 5;
    pub const KIND: u32 = 6;
    pub const START_TIME_UNIX_NANO: u32 = 7;
    pub const END_TIME_UNIX_NANO: u32 = 8;
    pub const ATTRIBUTES: u32 = 9;
    pub const DROPPED_ATTRIBUTES_COUNT: u32 = 10;
    pub const LINKS: u32 = 13;
    pub const DROPPED_LINKS_COUNT: u32 = 14;
    pub const STATUS: u32 = 15;
    pub const FLAGS: u32 = 16;
    pub const STATUS_MESSAGE: u32 = 2;
    pub const STATUS_CODE: u32 = 3;
    /// `Span.Link`.
    pub const LINK_TRACE_ID: u32 = 1;
    pub const LINK_SPAN_ID: u32 = 2;
    pub const LINK_TRACE_STATE: u32 = 3;
    pub const LINK_ATTRIBUTES: u32 = 4;
    pub const LINK_DROPPED_ATTRIBUTES_COUNT: u32 = 5;
    pub const LINK_FLAGS: u32 = 6;
}

/// One attribute of a span in flight: where its encoded `KeyValue` field is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attribute {
    /// The field (key, length and message) in `InFlight::attributes`.
    at: usize,
    len: usize,
    /// Where the key's bytes are, from `at`.
    key_at: usize,
    key_len: usize,
    /// Hash of the key.
    hash: u64,
    /// What its value holds, as [`crate::dictionary::value_bytes`] counts it.
    value_bytes: usize,
}

/// A span in flight: what its events said, attributes and links already
/// encoded as the OTLP fields they become. Its buffers are reused by the
/// next span once it is done.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    pub(crate) scope_ref: i64,
    /// Reader time when the start was seen (for `max_span_age`).
    pub(crate) seen_at: u64,
    pub(crate) generation: u64,
    /// What the span holds, as the limits count it.
    pub(crate) bytes: usize,
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) parent_span_id: Vec<u8>,
    pub(crate) name: String,
    pub(crate) kind: i32,
    pub(crate) flags: u32,
    pub(crate) start_time_unix_nano: u64,
    /// Encoded `KeyValue` fields (Span field 9), in the order they were set.
    pub(crate) attributes: Vec<u8>,
    slots: Vec<Attribute>,
    /// Key hash -> first attribute with it, once the span has [`INDEX_FROM`] attributes.
    index: HashMap<u64, u32>,
    indexed: bool,
    pub(crate) dropped_attributes_count: u32,
    /// Encoded `Link` fields (Span field 13).
    pub(crate) links: Vec<u8>,
    pub(crate) link_count: usize,
    pub(crate) dropped_links_count: u32,
    /// Once done: its end time, status and the attribute fields marking how
    /// it ended (incomplete, start missing), appended to its own.
    pub(crate) end_time_unix_nano: u64,
    pub(crate) status: Option<i32>,
    pub(crate) status_message: String,
    marking: Vec<u8>,
}

/// An attribute field being written at the end of a span's attributes
/// (see [`InFlight::commit_attribute`]).
pub(crate) struct NewAttribute {
    /// Where the field starts in `attributes`.
    pub(crate) start: usize,
    /// Where its content starts (from `encode::begin`).
    pub(crate) content: usize,
    /// Where the key's bytes start, from the content's start.
    pub(crate) key_in_content: usize,
    /// Length of the key.
    pub(crate) key_len: usize,
    /// Hash of the key (`key_hash`).
    pub(crate) hash: u64,
    /// What the value counts against the span's byte budget.
    pub(crate) added: usize,
}

impl InFlight {
    fn reset(&mut self) {
        self.parent_span_id.clear();
        self.name.clear();
        self.attributes.clear();
        self.slots.clear();
        self.index.clear();
        self.indexed = false;
        self.dropped_attributes_count = 0;
        self.links.clear();
        self.link_count = 0;
        self.dropped_links_count = 0;
        self.kind = 0;
        self.flags = 0;
        self.start_time_unix_nano = 0;
        self.bytes = 0;
        self.end_time_unix_nano = 0;
        self.status = None;
        self.status_message.clear();
        self.marking.clear();
    }

    /// Bytes its buffers hold (their capacity).
    fn capacity(&self) -> usize {
        self.parent_span_id.capacity()
            + self.name.capacity()
            + self.attributes.capacity()
            + self.slots.capacity() * std::mem::size_of::<Attribute>()
            + self.index.capacity() * std::mem::size_of::<(u64, u32)>()
            + self.links.capacity()
            + self.status_message.capacity()
            + self.marking.capacity()
    }

    /// What the value of attribute `i` holds, as [`crate::dictionary::value_bytes`] counts it.
    /// Ends the attribute field written at `new.start` (after the span's
    /// attributes) and keeps it: in place of attribute `existing` (a key the
    /// span holds already takes the new value, `field` is scratch for the
    /// move) or as a new one; the span's byte count follows.
    pub(crate) fn commit_attribute(
        &mut self,
        new: NewAttribute,
        existing: Option<usize>,
        field: &mut Vec<u8>,
    ) {
        let content_len = self.attributes.len() - new.content;
        encode::end(&mut self.attributes, new.content);
        let key_at = self.attributes.len() - new.start - content_len + new.key_in_content;
        match existing {
            Some(i) => {
                let freed = self.slots[i].value_bytes;
                field.clear();
                field.extend_from_slice(&self.attributes[new.start..]);
                self.attributes.truncate(new.start);
                self.replace_attribute(i, field, key_at, new.added);
                self.bytes = self.bytes + new.added - freed;
            }
            None => {
                self.bytes += KEY_VALUE_COST + new.key_len + new.added;
                self.add_attribute(new.start, key_at, new.key_len, new.hash, new.added);
            }
        }
    }

    /// Keeps an attribute whose `KeyValue` field, already whole, is `field`
    /// (from the attribute cache): in place of attribute `existing` or as a
    /// new one, as [`commit_attribute`](Self::commit_attribute) does.
    fn keep_field(&mut self, field: &[u8], a: &CachedAttribute, existing: Option<usize>) {
        match existing {
            Some(i) => {
                let freed = self.slots[i].value_bytes;
                self.replace_attribute(i, field, a.key_at, a.value_bytes);
                self.bytes = self.bytes + a.value_bytes - freed;
            }
            None => {
                let start = self.attributes.len();
                encode::raw(&mut self.attributes, field);
                self.bytes += KEY_VALUE_COST + a.key_len + a.value_bytes;
                self.add_attribute(start, a.key_at, a.key_len, a.key_hash, a.value_bytes);
            }
        }
    }

    fn key(&self, a: &Attribute) -> &[u8] {
        &self.attributes[a.at + a.key_at..a.at + a.key_at + a.key_len]
    }

    pub(crate) fn position(&self, key: &[u8], hash: u64) -> Option<usize> {
        let is = |i: usize| {
            let a = &self.slots[i];
            a.hash == hash && self.key(a) == key
        };
        if self.indexed {
            match self.index.get(&hash) {
                None => return None,
                Some(&i) if is(i as usize) => return Some(i as usize),
                // Another key with the same hash: look at every attribute.
                Some(_) => {}
            }
        }
        (0..self.slots.len()).find(|&i| is(i))
    }

    /// Takes the encoded field at `at` (the end of `attributes`) as a new attribute.
    pub(crate) fn add_attribute(
        &mut self,
        at: usize,
        key_at: usize,
        key_len: usize,
        hash: u64,
        value_bytes: usize,
    ) {
        if !self.indexed && self.slots.len() >= INDEX_FROM {
            self.build_index();
        }
        if self.indexed {
            self.index.entry(hash).or_insert(self.slots.len() as u32);
        }
        self.slots.push(Attribute {
            at,
            len: self.attributes.len() - at,
            key_at,
            key_len,
            hash,
            value_bytes,
        });
    }

    /// Indexes the attributes by key hash (the first of each hash).
    fn build_index(&mut self) {
        for (i, a) in self.slots.iter().enumerate() {
            self.index.entry(a.hash).or_insert(i as u32);
        }
        self.indexed = true;
    }

    /// Takes what a run of attributes resolved to (see
    /// [`crate::attribute_run_memo`]) on a span that holds no attribute:
    /// `fields` and `slots` as their attributes, its byte count grown by
    /// `bytes`; what setting them one by one gives.
    fn keep_run(&mut self, fields: &[u8], slots: &[Attribute], bytes: usize) {
        encode::raw(&mut self.attributes, fields);
        self.slots.extend_from_slice(slots);
        self.bytes += bytes;
        // Setting them one by one indexes them once there are more than INDEX_FROM.
        if self.slots.len() > INDEX_FROM {
            self.build_index();
        }
    }

    /// Puts the encoded field `field` (same key) in the place of attribute `i`.
    pub(crate) fn replace_attribute(
        &mut self,
        i: usize,
        field: &[u8],
        key_at: usize,
        value_bytes: usize,
    ) {
        let old = self.slots[i];
        self.attributes
            .splice(old.at..old.at + old.len, field.iter().copied());
        for later in &mut self.slots[i + 1..] {
            later.at = later.at + field.len() - old.len;
        }
        let a = &mut self.slots[i];
        a.len = field.len();
        a.key_at = key_at;
        a.value_bytes = value_bytes;
    }

    /// Bytes of the span's `Span` message, as [`encode`](Self::encode) writes it.
    fn encoded_len(&self) -> usize {
        let status = self.status.map_or(0, |code| {
            let message = encode::bytes_len(tag::STATUS_MESSAGE, self.status_message.as_bytes());
            let code = encode::varint_len(tag::STATUS_CODE, code as i64 as u64);
            encode::field_len(tag::STATUS, message + code)
        });
        encode::bytes_len(tag::TRACE_ID, &self.trace_id)
            + encode::bytes_len(tag::SPAN_ID, &self.span_id)
            + encode::bytes_len(tag::PARENT_SPAN_ID, &self.parent_span_id)
            + encode::fixed32_len(tag::FLAGS, self.flags)
            + encode::bytes_len(tag::NAME, self.name.as_bytes())
            + encode::varint_len(tag::KIND, self.kind as i64 as u64)
            + encode::fixed64_len(tag::START_TIME_UNIX_NANO, self.start_time_unix_nano)
            + encode::fixed64_len(tag::END_TIME_UNIX_NANO, self.end_time_unix_nano)
            + self.attributes.len()
            + self.marking.len()
            + encode::varint_len(
                tag::DROPPED_ATTRIBUTES_COUNT,
                self.dropped_attributes_count.into(),
            )
            + self.links.len()
            + encode::varint_len(tag::DROPPED_LINKS_COUNT, self.dropped_links_count.into())
            + status
    }

    /// What the span's `Span` message holds ([`encode`](Self::encode)
    /// writes it), for the flat layout to be written from.
    pub(crate) fn flat_fields(&self) -> SpanFields<'_> {
        SpanFields {
            trace_id: &self.trace_id,
            span_id: &self.span_id,
            parent_span_id: &self.parent_span_id,
            name: self.name.as_bytes(),
            kind: self.kind,
            start_time_unix_nano: self.start_time_unix_nano,
            end_time_unix_nano: self.end_time_unix_nano,
            attributes: [&self.attributes, &self.marking],
            dropped_attributes_count: self.dropped_attributes_count,
            links: &self.links,
            dropped_links_count: self.dropped_links_count,
            status: self
                .status
                .map(|code| (code, self.status_message.as_bytes())),
            flags: self.flags,
        }
    }

    /// Appends the span's `Span` message (its content, without key and
    /// length) to `out`, in the order prost writes fields: by number.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        encode::bytes(out, tag::TRACE_ID, &self.trace_id);
        encode::bytes(out, tag::SPAN_ID, &self.span_id);
        encode::bytes(out, tag::PARENT_SPAN_ID, &self.parent_span_id);
        encode::bytes(out, tag::NAME, self.name.as_bytes());
        encode::varint(out, tag::KIND, self.kind as i64 as u64);
        encode::fixed64(out, tag::START_TIME_UNIX_NANO, self.start_time_unix_nano);
        encode::fixed64(out, tag::END_TIME_UNIX_NANO, self.end_time_unix_nano);
        out.extend_from_slice(&self.attributes);
        out.extend_from_slice(&self.marking);
        encode::varint(
            out,
            tag::DROPPED_ATTRIBUTES_COUNT,
            self.dropped_attributes_count.into(),
        );
        out.extend_from_slice(&self.links);
        encode::varint(
            out,
            tag::DROPPED_LINKS_COUNT,
            self.dropped_links_count.into(),
        );
        if let Some(code) = self.status {
            let at = encode::begin(out, tag::STATUS);
            encode::bytes(out, tag::STATUS_MESSAGE, self.status_message.as_bytes());
            encode::varint(out, tag::STATUS_CODE, code as i64 as u64);
            encode::end(out, at);
        }
        encode::fixed32(out, tag::FLAGS, self.flags);
    }
}

/// Counters of the assembler.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpanCounters {
    /// Spans emitted as incomplete.
    pub incomplete: u64,
    /// Events for a span never seen starting (EndSpan included).
    pub orphan_events: u64,
    /// Events without a valid trace or span id.
    pub invalid_ids: u64,
    /// StartSpan events for a span already in flight (the later start replaces it).
    pub duplicate_starts: u64,
    /// Attributes and links dropped by the span limits (also in the spans'
    /// `dropped_attributes_count` / `dropped_links_count`).
    pub limit_drops: u64,
    /// Span events of which something was dropped because the span's byte
    /// budget (`max_span_bytes`) was full.
    pub oversized_events: u64,
}

/// Assembles spans from span events.
#[derive(Debug)]
pub struct SpanAssembler {
    /// Boxed: a span moves from the pool to here to the completed queue and
    /// back as a pointer.
    pub(crate) in_flight: HashMap<SpanKey, Box<InFlight>>,
    /// Start order of in-flight spans (lazily cleaned: entries whose generation
    /// no longer matches were ended already).
    pub(crate) order: VecDeque<(SpanKey, u64)>,
    next_generation: u64,
    pub(crate) limits: SpanLimits,
    in_flight_bytes: usize,
    /// Spans done, oldest first (`bytes`: what each holds, as the limits count it).
    pub(crate) completed: VecDeque<Box<InFlight>>,
    completed_bytes: usize,
    /// Buffers of spans that are done, for the next ones.
    // Boxed on purpose: a span goes from here to the map and back by pointer.
    #[allow(clippy::vec_box)]
    pub(crate) pool: Vec<Box<InFlight>>,
    /// An attribute that replaces another, on its way.
    pub(crate) scratch: Vec<u8>,
    /// The last span name checked as UTF-8 (spans of one operation follow
    /// each other): the next name with the same bytes is not checked again.
    last_name: String,
    /// What the assembler counted since it was created.
    pub counters: SpanCounters,
}

impl SpanAssembler {
    /// An assembler keeping at most `max_in_flight` open spans, each for at
    /// most `max_age_nanos`, with the default limits otherwise.
    pub fn new(max_in_flight: usize, max_age_nanos: u64) -> Self {
        SpanAssembler::with_limits(SpanLimits {
            max_in_flight,
            max_age_nanos,
            ..SpanLimits::default()
        })
    }

    /// An assembler within `limits`.
    pub fn with_limits(limits: SpanLimits) -> Self {
        SpanAssembler {
            in_flight: HashMap::default(),
            order: VecDeque::new(),
            next_generation: 0,
            limits: SpanLimits {
                max_in_flight: limits.max_in_flight.max(1),
                ..limits
            },
            in_flight_bytes: 0,
            completed: VecDeque::new(),
            completed_bytes: 0,
            pool: Vec::new(),
            scratch: Vec::new(),
            last_name: String::new(),
            counters: SpanCounters::default(),
        }
    }

    /// Spans started and not ended.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Bytes held by the spans in flight.
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight_bytes
    }

    /// Completed spans waiting to be taken.
    pub fn completed_len(&self) -> usize {
        self.completed.len()
    }

    /// Bytes held by the completed spans waiting to be taken.
    pub fn completed_bytes(&self) -> usize {
        self.completed_bytes
    }

    /// Takes up to `max` completed spans, oldest first, holding at most
    /// `max_bytes` (at least one span, whatever its size), and appends them
    /// to `out` as an `ExportTraceServiceRequest`, grouped by scope and
    /// resource. Returns how many spans it took (0: nothing written).
    pub fn encode_completed(
        &mut self,
        max: usize,
        max_bytes: usize,
        file: &MmapReader,
        dict: &mut DictionaryCache,
        request: &mut RequestEncoder,
        out: &mut Vec<u8>,
    ) -> usize {
        let n = self.push_batch(max, max_bytes, request, true);
        if n == 0 {
            return 0;
        }
        let completed = &self.completed;
        request.encode(file, dict, out, |i, _, out| completed[i].encode(out));
        self.drop_completed(n)
    }

    /// Takes the spans [`encode_completed`](Self::encode_completed) would,
    /// and appends them to `flat` as the flat batch `writer` lays out (the
    /// bytes [`FlatWriter::write`] of their request gives), written from
    /// the spans: their request is not written, unless the layout cannot
    /// hold them. The spans move to `taken` (in the order taken), and
    /// `request` keeps them grouped as laid out (their scopes and resources
    /// resolved now, not again), for [`encode_spans`] to write their request
    /// from when it is needed; [`give_back`](Self::give_back) once it no
    /// longer can be. Returns how many spans it took.
    // Boxed on purpose: the spans move to `taken` and back by pointer.
    #[allow(clippy::too_many_arguments, clippy::vec_box)]
    pub(crate) fn flat_completed(
        &mut self,
        max: usize,
        max_bytes: usize,
        file: &MmapReader,
        dict: &mut DictionaryCache,
        request: &mut RequestEncoder,
        writer: &mut FlatWriter,
        flat: &mut Vec<u8>,
        taken: &mut Vec<Box<InFlight>>,
    ) -> usize {
        // Their lengths are needed only for their request.
        let n = self.push_batch(max, max_bytes, request, false);
        if n == 0 {
            return 0;
        }
        let completed = &self.completed;
        request.group(file, dict);
        if !writer.write_spans(request, |i| completed[i].flat_fields(), flat) {
            // The layout cannot hold them: their request, as OTLP.
            request.relength(|i| completed[i].encoded_len());
            request.write_request(flat, |i, _, out| completed[i].encode(out));
        }
        for _ in 0..n {
            let span = self.completed.pop_front().expect("n spans are queued");
            self.completed_bytes -= span.bytes;
            taken.push(span);
        }
        n
    }

    /// Pushes the spans of the next batch to `request` (by their place in
    /// the completed queue), with their encoded lengths when `lengths` (0
    /// otherwise); returns how many.
    fn push_batch(
        &self,
        max: usize,
        max_bytes: usize,
        request: &mut RequestEncoder,
        lengths: bool,
    ) -> usize {
        let mut bytes = 0usize;
        let mut n = 0;
        for c in &self.completed {
            if n >= max || (n > 0 && bytes.saturating_add(c.bytes) > max_bytes) {
                break;
            }
            bytes = bytes.saturating_add(c.bytes);
            request.push(c.scope_ref, n, if lengths { c.encoded_len() } else { 0 });
            n += 1;
        }
        n
    }

    /// Takes back the buffers of spans [`flat_completed`](Self::flat_completed)
    /// took, emptying `spans`.
    #[allow(clippy::vec_box)]
    pub(crate) fn give_back(&mut self, spans: &mut Vec<Box<InFlight>>) {
        for span in spans.drain(..) {
            self.recycle(span);
        }
    }

    /// Drops up to `n` completed spans, oldest first, without encoding them
    /// (spans already delivered). Returns how many it dropped.
    pub fn drop_completed(&mut self, n: usize) -> usize {
        let n = n.min(self.completed.len());
        for _ in 0..n {
            let span = self.completed.pop_front().expect("n spans are queued");
            self.completed_bytes -= span.bytes;
            self.recycle(span);
        }
        n
    }

    /// Queues a span that is done; `bytes` is what it holds, as the limits count it.
    pub(crate) fn complete(&mut self, mut span: Box<InFlight>, bytes: usize) {
        span.bytes = bytes;
        self.completed_bytes += bytes;
        self.completed.push_back(span);
    }

    fn recycle(&mut self, mut span: Box<InFlight>) {
        if self.pool.len() < POOL_MAX && span.capacity() <= POOL_MAX_CAPACITY {
            span.reset();
            self.pool.push(span);
        }
    }

    /// Applies one span event, read straight from its slot. `now` is the
    /// reader's clock (unix nanos).
    pub fn apply(
        &mut self,
        file: &MmapReader,
        dict: &mut DictionaryCache,
        ev: &SpanEventView<'_>,
        now: u64,
    ) {
        let (Ok(trace_id), Ok(span_id)) = (
            <[u8; 16]>::try_from(ev.trace_id),
            <[u8; 8]>::try_from(ev.span_id),
        ) else {
            self.counters.invalid_ids += 1;
            return;
        };
        let key = (trace_id, span_id);
        match ev.event {
            SpanEventKind::Start {
                parent_span_id,
                name,
                kind,
                start_time_unix_nano,
                attributes,
                flags,
            } => {
                let mut open = self.pool.pop().unwrap_or_default();
                open.trace_id = trace_id;
                open.span_id = span_id;
                open.parent_span_id.extend_from_slice(parent_span_id);
                open.flags = flags;
                push_name(&mut open.name, name, &mut self.last_name);
                open.kind = kind;
                open.start_time_unix_nano = start_time_unix_nano;
                open.scope_ref = ev.scope_ref;
                dict.warm_scope(file, ev.scope_ref);
                open.seen_at = now;
                open.bytes = SPAN_COST + open.name.len() + open.parent_span_id.len();
                set_attributes(
                    &self.limits,
                    &mut self.counters,
                    file,
                    dict,
                    &mut open,
                    attributes,
                    &mut self.scratch,
                );
                self.open(key, open, now);
            }
            SpanEventKind::End {
                end_time_unix_nano,
                status,
            } => {
                let mut span = match self.in_flight.remove(&key) {
                    Some(open) => {
                        self.in_flight_bytes -= open.bytes;
                        open
                    }
                    None => {
                        // Say that the span ended, with what is known.
                        self.counters.orphan_events += 1;
                        let mut span = self.pool.pop().unwrap_or_default();
                        span.trace_id = trace_id;
                        span.span_id = span_id;
                        span.scope_ref = ev.scope_ref;
                        dict.warm_scope(file, ev.scope_ref);
                        span.start_time_unix_nano = end_time_unix_nano;
                        span.bytes = SPAN_COST;
                        bool_attr(&mut span.marking, START_MISSING_ATTRIBUTE);
                        span
                    }
                };
                span.end_time_unix_nano = end_time_unix_nano;
                if let Some(s) = status {
                    span.status_message.push_str(&encode::lossy(s.message));
                    span.status = Some(s.code);
                }
                let bytes = span.bytes + span.status_message.len();
                let ended = span.marking.is_empty();
                self.complete(span, bytes);
                if ended {
                    self.compact_order();
                }
            }
            SpanEventKind::Name(name) => match self.in_flight.get_mut(&key) {
                Some(open) => {
                    let old = open.name.len();
                    open.name.clear();
                    push_name(&mut open.name, name, &mut self.last_name);
                    let new = open.name.len();
                    open.bytes = open.bytes + new - old;
                    self.in_flight_bytes = self.in_flight_bytes + new - old;
                }
                None => self.counters.orphan_events += 1,
            },
            SpanEventKind::Attributes(attributes) => {
                let Some(open) = self.in_flight.get_mut(&key) else {
                    self.counters.orphan_events += 1;
                    return;
                };
                let before = open.bytes;
                set_attributes(
                    &self.limits,
                    &mut self.counters,
                    file,
                    dict,
                    open,
                    attributes,
                    &mut self.scratch,
                );
                self.in_flight_bytes = self.in_flight_bytes - before + open.bytes;
            }
            SpanEventKind::Links(links) => {
                let Some(open) = self.in_flight.get_mut(&key) else {
                    self.counters.orphan_events += 1;
                    return;
                };
                let before = open.bytes;
                add_links(&self.limits, &mut self.counters, file, dict, open, links);
                self.in_flight_bytes = self.in_flight_bytes - before + open.bytes;
            }
            SpanEventKind::None => self.counters.orphan_events += 1,
        }
        encode::reuse(&mut self.scratch, POOL_MAX_CAPACITY);
        self.shed_bytes(now);
    }

    pub(crate) fn open(&mut self, key: SpanKey, mut open: Box<InFlight>, now: u64) {
        match self.in_flight.get(&key) {
            Some(old) => {
                // The later start replaces the earlier one.
                self.counters.duplicate_starts += 1;
                self.in_flight_bytes -= old.bytes;
            }
            None => {
                while self.in_flight.len() >= self.limits.max_in_flight {
                    if !self.give_up_oldest(now, GiveUpReason::TooManyInFlight) {
                        break;
                    }
                }
            }
        }
        open.generation = self.next_generation;
        self.next_generation += 1;
        self.order.push_back((key, open.generation));
        self.in_flight_bytes += open.bytes;
        if let Some(old) = self.in_flight.insert(key, open) {
            self.recycle(old);
        }
    }

    /// Gives up the oldest spans while the spans in flight hold too many bytes.
    pub(crate) fn shed_bytes(&mut self, now: u64) {
        while self.in_flight_bytes > self.limits.max_in_flight_bytes {
            if !self.give_up_oldest(now, GiveUpReason::TooManyBytesInFlight) {
                break;
            }
        }
    }

    /// Gives up spans open longer than the maximum age.
    pub fn expire(&mut self, now: u64) {
        while let Some(&(key, generation)) = self.order.front() {
            match self.in_flight.get(&key) {
                Some(open) if open.generation == generation => {
                    if now.saturating_sub(open.seen_at) < self.limits.max_age_nanos {
                        break;
                    }
                    self.give_up_oldest(now, GiveUpReason::TooOld);
                }
                _ => {
                    self.order.pop_front();
                }
            }
        }
    }

    /// Gives up every in-flight span.
    pub fn give_up_all(&mut self, now: u64, reason: GiveUpReason) {
        while self.give_up_oldest(now, reason) {}
        self.order.clear();
    }

    fn give_up_oldest(&mut self, now: u64, reason: GiveUpReason) -> bool {
        while let Some((key, generation)) = self.order.pop_front() {
            let Some(open) = self.in_flight.get(&key) else {
                continue;
            };
            if open.generation != generation {
                continue;
            }
            let mut open = self.in_flight.remove(&key).expect("present: checked above");
            self.in_flight_bytes -= open.bytes;
            open.end_time_unix_nano = now.max(open.start_time_unix_nano);
            open.status = Some(status::StatusCode::Error as i32);
            open.status_message.push_str("span did not end: ");
            open.status_message.push_str(reason.text());
            let marking = &mut open.marking;
            bool_attr(marking, INCOMPLETE_ATTRIBUTE);
            let at = encode::begin(marking, tag::ATTRIBUTES);
            encode::bytes(marking, 1, INCOMPLETE_REASON_ATTRIBUTE.as_bytes());
            let value = encode::begin(marking, 2);
            encode::bytes_always(marking, 1, reason.text().as_bytes());
            encode::end(marking, value);
            encode::end(marking, at);
            self.counters.incomplete += 1;
            let bytes = open.bytes + 3 * KEY_VALUE_COST;
            self.complete(open, bytes);
            return true;
        }
        false
    }

    /// Keeps the start-order queue from growing with entries of ended spans.
    fn compact_order(&mut self) {
        if self.order.len() > 2 * self.in_flight.len() + 1024 {
            let in_flight = &self.in_flight;
            self.order
                .retain(|(k, g)| in_flight.get(k).is_some_and(|o| o.generation == *g));
        }
    }
}

/// Appends the `ExportTraceServiceRequest` of `spans` (taken by
/// [`SpanAssembler::flat_completed`], in that order) to `out`, from
/// `request` as that left it (the spans grouped, their scopes and resources
/// as resolved then: no ref is looked up again), and finishes `request`:
/// the request [`SpanAssembler::encode_completed`] would have written for
/// them.
#[allow(clippy::vec_box)]
pub(crate) fn encode_spans(
    spans: &[Box<InFlight>],
    request: &mut RequestEncoder,
    out: &mut Vec<u8>,
) {
    request.relength(|i| spans[i].encoded_len());
    request.write_request(out, |i, _, out| spans[i].encode(out));
    request.finish();
}

/// Most bytes of a span name kept as the last name checked.
const LAST_NAME_MAX: usize = 256;

/// Appends the span name `bytes` (invalid UTF-8 replaced) to `name`; bytes
/// equal to `last`, the last valid name seen, are taken as `last` is.
#[inline]
fn push_name(name: &mut String, bytes: &[u8], last: &mut String) {
    if bytes == last.as_bytes() {
        name.push_str(last);
        return;
    }
    let checked = encode::lossy(bytes);
    name.push_str(&checked);
    if let std::borrow::Cow::Borrowed(valid) = checked
        && valid.len() <= LAST_NAME_MAX
    {
        last.clear();
        last.push_str(valid);
    }
}

pub(crate) use crate::bytes_hash::bytes_hash as key_hash;

/// Sets each attribute as `Span::set_attribute` does (a key already
/// present takes the new value), within the span limits.
///
/// On a span that holds no attribute yet, a run of attributes met before
/// is taken as it resolved then, when it fits (see
/// [`crate::attribute_run_memo`]); a run whose attributes all came from
/// the attribute cache, all kept, is memoised for the next spans.
fn set_attributes(
    limits: &SpanLimits,
    counters: &mut SpanCounters,
    file: &MmapReader,
    dict: &mut DictionaryCache,
    open: &mut InFlight,
    entries: Repeated<'_>,
    field: &mut Vec<u8>,
) {
    let (run, number) = entries.message();
    let memo = open.slots.is_empty() && open.attributes.is_empty() && run.len() <= MAX_RUN;
    let run_hash = if memo { key_hash(run) } else { 0 };
    if memo
        && let Some(hit) = dict.attribute_runs.get(run, number, run_hash)
        && hit.attributes.len() <= limits.max_attributes
        && hit.headroom <= limits.max_span_bytes.saturating_sub(open.bytes)
    {
        open.keep_run(hit.fields, hit.attributes, hit.bytes);
        return;
    }
    // What the run needs and takes, while it can still be memoised: every
    // attribute from the attribute cache and kept, the run the message's
    // only fields (`run_fields`: the bytes of their fields).
    let (mut memoisable, before, mut headroom, mut run_fields) = (memo, open.bytes, 0, 0);
    let (mut dropped, mut over_budget) = (0u32, false);
    for entry in entries.iter() {
        run_fields += encode::field_len(number, entry.len());
        let raw_hash = key_hash(entry);
        if let Some(hit) = dict.attributes.get(entry, raw_hash) {
            // What a resolution does (see below), with the cached field: the
            // key and the value charged to the record budget the same.
            dict.begin_record(limits.max_span_bytes.saturating_sub(open.bytes));
            let field = dict.attributes.field(&hit);
            let key = field
                .get(hit.key_at..hit.key_at + hit.key_len)
                .unwrap_or(&[]);
            let at = open.position(key, hit.key_hash);
            if !dict.charge(hit.key_len)
                || (at.is_none() && open.slots.len() >= limits.max_attributes)
            {
                over_budget |= dict.end_record().over_budget;
                dropped += 1;
                memoisable = false;
                continue;
            }
            let freed = at.map_or(0, |i| open.slots[i].value_bytes);
            dict.raise_budget(freed);
            if (hit.has_value && !dict.charge(hit.value_bytes)) || dict.end_record().over_budget {
                dict.end_record();
                over_budget = true;
                dropped += 1;
                memoisable = false;
                continue;
            }
            // It was kept with what was left: the key's bytes, and the
            // value's less what the value it replaces freed.
            // (The span held nothing before the run: its bytes are at least
            // what they were then.)
            if memoisable {
                let value = if hit.has_value { hit.value_bytes } else { 0 };
                let need = open.bytes - before + hit.key_len + value.saturating_sub(freed);
                headroom = headroom.max(need);
            }
            open.keep_field(dict.attributes.field(&hit), &hit, at);
            continue;
        }
        memoisable = false;
        let Ok(kv) = canonical::key_value_ref(entry) else {
            dict.bad_refs += 1;
            continue;
        };
        let bad_refs = dict.bad_refs;
        // The key first: an attribute that can only be dropped costs no value resolution.
        let left = limits.max_span_bytes.saturating_sub(open.bytes);
        dict.begin_record(left);
        // Written in place after the span's attributes; moved if it replaces one.
        let start = open.attributes.len();
        let content = encode::begin(&mut open.attributes, tag::ATTRIBUTES);
        let key_len = dict.encode_string(file, kv.key_ref, 1, &mut open.attributes);
        let key_in_content = open.attributes.len() - key_len - content;
        let key = &open.attributes[open.attributes.len() - key_len..];
        let hash = key_hash(key);
        let at = open.position(key, hash);
        if dict.over_budget() || (at.is_none() && open.slots.len() >= limits.max_attributes) {
            open.attributes.truncate(start);
            over_budget |= dict.end_record().over_budget;
            dropped += 1;
            continue;
        }
        let freed = at.map_or(0, |i| open.slots[i].value_bytes);
        // The value may take what the value it replaces frees.
        dict.raise_budget(freed);
        let mut cacheable = true;
        let added = kv.value.map_or(0, |v| {
            cacheable = !matches!(
                canonical::any_value(v),
                Ok(AnyValueView::Ref(_) | AnyValueView::Array(_) | AnyValueView::KvList(_))
            );
            let value = encode::begin(&mut open.attributes, 2);
            let m = dict.encode_value(file, v, &mut open.attributes);
            encode::end(&mut open.attributes, value);
            m.bytes
        });
        if dict.end_record().over_budget {
            open.attributes.truncate(start);
            over_budget = true;
            dropped += 1;
            continue;
        }
        open.commit_attribute(
            NewAttribute {
                start,
                content,
                key_in_content,
                key_len,
                hash,
                added,
            },
            at,
            field,
        );
        if cacheable && dict.bad_refs == bad_refs {
            // The attribute as the span now holds it.
            let i = at.unwrap_or(open.slots.len() - 1);
            let a = open.slots[i];
            dict.attributes.insert(
                entry,
                raw_hash,
                &open.attributes[a.at..a.at + a.len],
                a.key_at,
                a.key_len,
                a.hash,
                a.value_bytes,
                kv.value.is_some(),
            );
        }
    }
    if memoisable && run_fields == run.len() && !open.slots.is_empty() {
        dict.attribute_runs.insert(
            run,
            number,
            run_hash,
            RunResult {
                fields: &open.attributes,
                attributes: &open.slots,
                bytes: open.bytes - before,
                headroom,
            },
        );
    }
    open.dropped_attributes_count = open.dropped_attributes_count.saturating_add(dropped);
    counters.limit_drops += dropped as u64;
    counters.oversized_events += over_budget as u64;
}

/// Appends links within the span limits.
fn add_links(
    limits: &SpanLimits,
    counters: &mut SpanCounters,
    file: &MmapReader,
    dict: &mut DictionaryCache,
    open: &mut InFlight,
    links: Repeated<'_>,
) {
    let (mut dropped, mut over_budget) = (0u32, false);
    for entry in links.iter() {
        let Ok(link) = LinkView::parse(entry) else {
            // Not reached: the event's parse checked every link.
            open.dropped_links_count = open.dropped_links_count.saturating_add(1);
            continue;
        };
        if open.link_count >= limits.max_links {
            dropped += 1;
            continue;
        }
        dict.begin_record(limits.max_span_bytes.saturating_sub(open.bytes));
        let out = &mut open.links;
        let start = out.len();
        let at = encode::begin(out, tag::LINKS);
        encode::bytes(out, tag::LINK_TRACE_ID, link.trace_id);
        encode::bytes(out, tag::LINK_SPAN_ID, link.span_id);
        let trace_state = encode::lossy(link.trace_state);
        encode::bytes(out, tag::LINK_TRACE_STATE, trace_state.as_bytes());
        let (_, more) = dict.encode_attributes(
            file,
            link.attributes,
            tag::LINK_ATTRIBUTES,
            limits.max_attributes,
            out,
        );
        encode::varint(
            out,
            tag::LINK_DROPPED_ATTRIBUTES_COUNT,
            link.dropped_attributes_count.saturating_add(more).into(),
        );
        encode::fixed32(out, tag::LINK_FLAGS, link.flags);
        let cost = dict.end_record();
        if cost.over_budget {
            out.truncate(start);
            over_budget = true;
            dropped += 1;
            continue;
        }
        encode::end(out, at);
        open.bytes += LINK_COST + cost.bytes + trace_state.len();
        open.link_count += 1;
        counters.limit_drops += more as u64;
    }
    open.dropped_links_count = open.dropped_links_count.saturating_add(dropped);
    counters.limit_drops += dropped as u64;
    counters.oversized_events += over_budget as u64;
}

/// Appends the attribute `key` = `true` as a Span attributes field.
fn bool_attr(out: &mut Vec<u8>, key: &str) {
    let at = encode::begin(out, tag::ATTRIBUTES);
    encode::bytes(out, 1, key.as_bytes());
    let value = encode::begin(out, 2);
    encode::varint_always(out, 2, 1);
    encode::end(out, value);
    encode::end(out, at);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_names_are_checked_once_and_replaced_when_invalid() {
        let mut last = String::new();
        let name = |bytes: &[u8], last: &mut String| {
            let mut n = String::new();
            push_name(&mut n, bytes, last);
            n
        };
        assert_eq!(name(b"GET /users", &mut last), "GET /users");
        assert_eq!(last, "GET /users");
        assert_eq!(name(b"GET /users", &mut last), "GET /users");
        // Invalid UTF-8 is replaced, and not kept as the last name.
        assert_eq!(name(b"GET \xff", &mut last), "GET \u{fffd}");
        assert_eq!(last, "GET /users");
        assert_eq!(name(b"", &mut last), "");
        assert_eq!(name("é".as_bytes(), &mut last), "é");
        assert_eq!(last, "é");
        // A long name is not kept.
        let long = "x".repeat(LAST_NAME_MAX + 1);
        assert_eq!(name(long.as_bytes(), &mut last), long);
        assert_eq!(last, "é");
    }

    #[test]
    fn completed_spans_are_dropped_oldest_first_without_encoding() {
        let mut a = SpanAssembler::new(10, u64::MAX);
        for (i, bytes) in [10, 20, 30].into_iter().enumerate() {
            let mut span = Box::<InFlight>::default();
            span.scope_ref = i as i64;
            a.complete(span, bytes);
        }
        assert_eq!(a.drop_completed(2), 2);
        assert_eq!(a.completed_len(), 1);
        assert_eq!(a.completed_bytes(), 30);
        assert_eq!(a.completed[0].scope_ref, 2);
        assert_eq!(a.drop_completed(usize::MAX), 1);
        assert_eq!((a.completed_len(), a.completed_bytes()), (0, 0));
        assert_eq!(a.drop_completed(1), 0);
    }
}
