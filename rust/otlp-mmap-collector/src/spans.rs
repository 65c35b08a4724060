//! `SpanAssembler`: builds OTLP spans from the span events of one file.
//!
//! A span is keyed by (trace_id, span_id). StartSpan opens it; ChangeSpanName,
//! UpdateAttributes (an upsert, as `Span::set_attribute`) and AddLink modify
//! it; EndSpan completes it. In-flight spans are bounded by count and age: a
//! span given up before its end is emitted as an *incomplete* span (end time =
//! when it was given up, status ERROR, attribute [`INCOMPLETE_ATTRIBUTE`]), so
//! that after a crash the Collector still shows what the process was doing.

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span, status};
use otlp_mmap_core::MmapReader;
use otlp_mmap_core::view::{LinkView, SpanEventKind, SpanEventView};

use crate::dictionary::DictionaryCache;

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
}

impl GiveUpReason {
    fn text(self) -> &'static str {
        match self {
            GiveUpReason::TooManyInFlight => "too many spans in flight",
            GiveUpReason::TooOld => "span open longer than max_span_age",
            GiveUpReason::WriterRestarted => "writer started over",
            GiveUpReason::WriterGone => "writer process is gone",
            GiveUpReason::Abandoned => "reader stopped",
        }
    }
}

type SpanKey = ([u8; 16], [u8; 8]);

#[derive(Debug)]
struct InFlight {
    span: Span,
    scope_ref: i64,
    /// Reader time when the start was seen (for `max_span_age`).
    seen_at: u64,
    generation: u64,
}

/// A completed (or given-up) span and the scope it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct AssembledSpan {
    pub scope_ref: i64,
    pub span: Span,
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
}

/// Assembles spans from span events.
#[derive(Debug)]
pub struct SpanAssembler {
    in_flight: HashMap<SpanKey, InFlight>,
    /// Start order of in-flight spans (lazily cleaned: entries whose generation
    /// no longer matches were ended already).
    order: VecDeque<(SpanKey, u64)>,
    next_generation: u64,
    max_in_flight: usize,
    max_age_nanos: u64,
    completed: VecDeque<AssembledSpan>,
    pub counters: SpanCounters,
}

impl SpanAssembler {
    /// An assembler keeping at most `max_in_flight` open spans, each for at most `max_age_nanos`.
    pub fn new(max_in_flight: usize, max_age_nanos: u64) -> Self {
        SpanAssembler {
            in_flight: HashMap::default(),
            order: VecDeque::new(),
            next_generation: 0,
            max_in_flight: max_in_flight.max(1),
            max_age_nanos,
            completed: VecDeque::new(),
            counters: SpanCounters::default(),
        }
    }

    /// Spans started and not ended.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Completed spans waiting to be taken.
    pub fn completed_len(&self) -> usize {
        self.completed.len()
    }

    /// Takes up to `max` completed spans, oldest first.
    pub fn take_completed(&mut self, max: usize) -> Vec<AssembledSpan> {
        let n = max.min(self.completed.len());
        self.completed.drain(..n).collect()
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
                    attributes: dict.attributes(file, attributes),
                    ..Default::default()
                };
                self.open(key, span, ev.scope_ref, now);
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
                        let mut span = open.span;
                        span.end_time_unix_nano = end_time_unix_nano;
                        span.status = status;
                        self.completed.push_back(AssembledSpan {
                            scope_ref: open.scope_ref,
                            span,
                        });
                        self.compact_order();
                    }
                    None => {
                        // Say that the span ended, with what is known.
                        self.counters.orphan_events += 1;
                        let span = Span {
                            trace_id: trace_id.to_vec(),
                            span_id: span_id.to_vec(),
                            start_time_unix_nano: end_time_unix_nano,
                            end_time_unix_nano,
                            status,
                            attributes: vec![bool_attr(START_MISSING_ATTRIBUTE, true)],
                            ..Default::default()
                        };
                        self.completed.push_back(AssembledSpan {
                            scope_ref: ev.scope_ref,
                            span,
                        });
                    }
                }
            }
            SpanEventKind::Name(name) => match self.in_flight.get_mut(&key) {
                Some(open) => open.span.name = String::from_utf8_lossy(name).into_owned(),
                None => self.counters.orphan_events += 1,
            },
            SpanEventKind::Attributes(attributes) => {
                if !self.in_flight.contains_key(&key) {
                    self.counters.orphan_events += 1;
                    return;
                }
                let kvs = dict.attributes(file, attributes);
                if let Some(open) = self.in_flight.get_mut(&key) {
                    for kv in kvs {
                        upsert(&mut open.span.attributes, kv);
                    }
                }
            }
            SpanEventKind::Links(links) => {
                if !self.in_flight.contains_key(&key) {
                    self.counters.orphan_events += 1;
                    return;
                }
                let links: Vec<span::Link> = links
                    .iter()
                    .filter_map(|b| LinkView::parse(b).ok())
                    .map(|link| span::Link {
                        trace_id: link.trace_id.to_vec(),
                        span_id: link.span_id.to_vec(),
                        trace_state: String::from_utf8_lossy(link.trace_state).into_owned(),
                        attributes: dict.attributes(file, link.attributes),
                        dropped_attributes_count: link.dropped_attributes_count,
                        flags: link.flags,
                    })
                    .collect();
                if let Some(open) = self.in_flight.get_mut(&key) {
                    open.span.links.extend(links);
                }
            }
            SpanEventKind::None => self.counters.orphan_events += 1,
        }
    }

    fn open(&mut self, key: SpanKey, span: Span, scope_ref: i64, now: u64) {
        if !self.in_flight.contains_key(&key) {
            while self.in_flight.len() >= self.max_in_flight {
                if !self.give_up_oldest(now, GiveUpReason::TooManyInFlight) {
                    break;
                }
            }
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.in_flight.insert(
            key,
            InFlight {
                span,
                scope_ref,
                seen_at: now,
                generation,
            },
        );
        self.order.push_back((key, generation));
    }

    /// Gives up spans open longer than the maximum age.
    pub fn expire(&mut self, now: u64) {
        while let Some(&(key, generation)) = self.order.front() {
            match self.in_flight.get(&key) {
                Some(open) if open.generation == generation => {
                    if now.saturating_sub(open.seen_at) < self.max_age_nanos {
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
            self.completed.push_back(AssembledSpan {
                scope_ref: open.scope_ref,
                span,
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

fn upsert(attrs: &mut Vec<KeyValue>, kv: KeyValue) {
    match attrs.iter_mut().find(|a| a.key == kv.key) {
        Some(existing) => existing.value = kv.value,
        None => attrs.push(kv),
    }
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
