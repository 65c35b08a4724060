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

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span, status};
use otlp_mmap_core::MmapReader;
use otlp_mmap_core::view::{KeyValueRefView, LinkView, Repeated, SpanEventKind, SpanEventView};

use crate::dictionary::{DictionaryCache, KEY_VALUE_COST, value_bytes};

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

#[derive(Debug)]
pub(crate) struct InFlight {
    pub(crate) span: Span,
    pub(crate) scope_ref: i64,
    /// Reader time when the start was seen (for `max_span_age`).
    pub(crate) seen_at: u64,
    pub(crate) generation: u64,
    /// What the span holds, as the limits count it.
    pub(crate) bytes: usize,
    /// Attribute key -> position, once the span has [`INDEX_FROM`] attributes.
    pub(crate) index: Option<HashMap<Box<str>, u32>>,
}

impl InFlight {
    fn position(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).map(|&i| i as usize),
            None => self.span.attributes.iter().position(|a| a.key == key),
        }
    }

    fn push_attribute(&mut self, kv: KeyValue) {
        let attrs = &self.span.attributes;
        if self.index.is_none() && attrs.len() >= INDEX_FROM {
            self.index = Some(
                attrs
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (Box::from(a.key.as_str()), i as u32))
                    .collect(),
            );
        }
        if let Some(index) = &mut self.index {
            index.insert(kv.key.as_str().into(), attrs.len() as u32);
        }
        self.span.attributes.push(kv);
    }
}

/// A completed (or given-up) span and the scope it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct AssembledSpan {
    /// Dictionary ref of the InstrumentationScope from the span's StartSpan
    /// event (for a span whose start is missing, from its EndSpan event).
    pub scope_ref: i64,
    /// The OTLP span, as it is exported.
    pub span: Span,
    /// What the span holds, as the limits count it.
    pub bytes: usize,
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
    pub(crate) in_flight: HashMap<SpanKey, InFlight>,
    /// Start order of in-flight spans (lazily cleaned: entries whose generation
    /// no longer matches were ended already).
    pub(crate) order: VecDeque<(SpanKey, u64)>,
    next_generation: u64,
    pub(crate) limits: SpanLimits,
    in_flight_bytes: usize,
    pub(crate) completed: VecDeque<AssembledSpan>,
    completed_bytes: usize,
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
    /// `max_bytes` (at least one span, whatever its size).
    pub fn take_completed(&mut self, max: usize, max_bytes: usize) -> Vec<AssembledSpan> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while out.len() < max {
            let Some(next) = self.completed.front() else {
                break;
            };
            if !out.is_empty() && bytes.saturating_add(next.bytes) > max_bytes {
                break;
            }
            bytes = bytes.saturating_add(next.bytes);
            let s = self.completed.pop_front().expect("front exists");
            self.completed_bytes -= s.bytes;
            out.push(s);
        }
        out
    }

    pub(crate) fn complete(&mut self, s: AssembledSpan) {
        self.completed_bytes += s.bytes;
        self.completed.push_back(s);
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
                let span = Span {
                    trace_id: trace_id.to_vec(),
                    span_id: span_id.to_vec(),
                    parent_span_id: parent_span_id.to_vec(),
                    flags,
                    name: String::from_utf8_lossy(name).into_owned(),
                    kind,
                    start_time_unix_nano,
                    ..Default::default()
                };
                let mut open = InFlight {
                    bytes: SPAN_COST + span.name.len() + span.parent_span_id.len(),
                    span,
                    scope_ref: ev.scope_ref,
                    seen_at: now,
                    generation: 0,
                    index: None,
                };
                set_attributes(
                    &self.limits,
                    &mut self.counters,
                    file,
                    dict,
                    &mut open,
                    attributes,
                );
                self.open(key, open, now);
            }
            SpanEventKind::End {
                end_time_unix_nano,
                status,
            } => {
                let status = status.map(|s| Status {
                    message: String::from_utf8_lossy(s.message).into_owned(),
                    code: s.code,
                });
                match self.in_flight.remove(&key) {
                    Some(open) => {
                        self.in_flight_bytes -= open.bytes;
                        let mut span = open.span;
                        span.end_time_unix_nano = end_time_unix_nano;
                        let bytes = open.bytes + status.as_ref().map_or(0, |s| s.message.len());
                        span.status = status;
                        self.complete(AssembledSpan {
                            scope_ref: open.scope_ref,
                            span,
                            bytes,
                        });
                        self.compact_order();
                    }
                    None => {
                        // Say that the span ended, with what is known.
                        self.counters.orphan_events += 1;
                        let bytes = SPAN_COST + status.as_ref().map_or(0, |s| s.message.len());
                        let span = Span {
                            trace_id: trace_id.to_vec(),
                            span_id: span_id.to_vec(),
                            start_time_unix_nano: end_time_unix_nano,
                            end_time_unix_nano,
                            status,
                            attributes: vec![bool_attr(START_MISSING_ATTRIBUTE, true)],
                            ..Default::default()
                        };
                        self.complete(AssembledSpan {
                            scope_ref: ev.scope_ref,
                            span,
                            bytes,
                        });
                    }
                }
            }
            SpanEventKind::Name(name) => match self.in_flight.get_mut(&key) {
                Some(open) => {
                    let name = String::from_utf8_lossy(name).into_owned();
                    let (old, new) = (open.span.name.len(), name.len());
                    open.bytes = open.bytes + new - old;
                    self.in_flight_bytes = self.in_flight_bytes + new - old;
                    open.span.name = name;
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
        self.shed_bytes(now);
    }

    pub(crate) fn open(&mut self, key: SpanKey, mut open: InFlight, now: u64) {
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
        self.in_flight.insert(key, open);
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
            let open = self.in_flight.remove(&key).expect("present: checked above");
            self.in_flight_bytes -= open.bytes;
            let mut span = open.span;
            span.end_time_unix_nano = now.max(span.start_time_unix_nano);
            span.status = Some(Status {
                message: format!("span did not end: {}", reason.text()),
                code: status::StatusCode::Error as i32,
            });
            span.attributes.push(bool_attr(INCOMPLETE_ATTRIBUTE, true));
            span.attributes.push(KeyValue {
                key: INCOMPLETE_REASON_ATTRIBUTE.into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(reason.text().into())),
                }),
                ..Default::default()
            });
            self.counters.incomplete += 1;
            self.complete(AssembledSpan {
                scope_ref: open.scope_ref,
                span,
                bytes: open.bytes + 3 * KEY_VALUE_COST,
            });
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

/// Sets each attribute as `Span::set_attribute` does (a key already
/// present takes the new value), within the span limits.
fn set_attributes(
    limits: &SpanLimits,
    counters: &mut SpanCounters,
    file: &MmapReader,
    dict: &mut DictionaryCache,
    open: &mut InFlight,
    entries: Repeated<'_>,
) {
    let (mut dropped, mut over_budget) = (0u32, false);
    for entry in entries.iter() {
        let Ok(kv) = KeyValueRefView::parse(entry) else {
            dict.bad_refs += 1;
            continue;
        };
        // The key first: an attribute that can only be dropped costs no value resolution.
        let left = limits.max_span_bytes.saturating_sub(open.bytes);
        dict.begin_record(left);
        let key = dict.string(file, kv.key_ref);
        let at = open.position(&key);
        if dict.over_budget()
            || (at.is_none() && open.span.attributes.len() >= limits.max_attributes)
        {
            over_budget |= dict.end_record().over_budget;
            dropped += 1;
            continue;
        }
        let freed = at.map_or(0, |i| {
            open.span.attributes[i]
                .value
                .as_ref()
                .map_or(0, value_bytes)
        });
        // The value may take what the value it replaces frees.
        dict.raise_budget(freed);
        let value = kv.value.map(|v| dict.value(file, v));
        if dict.end_record().over_budget {
            over_budget = true;
            dropped += 1;
            continue;
        }
        let added = value.as_ref().map_or(0, value_bytes);
        match at {
            Some(i) => {
                open.span.attributes[i].value = value;
                open.bytes = open.bytes + added - freed;
            }
            None => {
                open.bytes += KEY_VALUE_COST + key.len() + added;
                open.push_attribute(KeyValue {
                    key,
                    value,
                    ..Default::default()
                });
            }
        }
    }
    open.span.dropped_attributes_count = open.span.dropped_attributes_count.saturating_add(dropped);
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
            open.span.dropped_links_count = open.span.dropped_links_count.saturating_add(1);
            continue;
        };
        if open.span.links.len() >= limits.max_links {
            dropped += 1;
            continue;
        }
        dict.begin_record(limits.max_span_bytes.saturating_sub(open.bytes));
        let (attributes, more) =
            dict.attributes_capped(file, link.attributes, limits.max_attributes);
        let trace_state = String::from_utf8_lossy(link.trace_state).into_owned();
        let cost = dict.end_record();
        if cost.over_budget {
            over_budget = true;
            dropped += 1;
            continue;
        }
        open.bytes += LINK_COST + cost.bytes + trace_state.len();
        open.span.links.push(span::Link {
            trace_id: link.trace_id.to_vec(),
            span_id: link.span_id.to_vec(),
            trace_state,
            attributes,
            dropped_attributes_count: link.dropped_attributes_count.saturating_add(more),
            flags: link.flags,
        });
        counters.limit_drops += more as u64;
    }
    open.span.dropped_links_count = open.span.dropped_links_count.saturating_add(dropped);
    counters.limit_drops += dropped as u64;
    counters.oversized_events += over_budget as u64;
}

fn bool_attr(key: &str, v: bool) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::BoolValue(v)),
        }),
        ..Default::default()
    }
}
