//! The spans an assembler holds, as OTLP `Span` protobuf bytes, for a
//! checkpoint that outlives the Collector, and back.
//!
//! A span comes out exactly as it would be exported if it ended now (without
//! the incomplete marking), so that a checkpoint depends on OTLP only, not on
//! how the assembler represents a span in flight. Bytes read back are
//! untrusted: a span that does not decode, has bad ids or goes over the span
//! limits is refused, and the rest still comes back. A span put back holds
//! its attributes and links encoded again as the OTLP fields they become,
//! as a span assembled from span events does, and counts the same bytes.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::dictionary::{key_value_bytes, value_bytes};
use crate::encode;
use crate::spans::{InFlight, LINK_COST, NewAttribute, SPAN_COST, SpanAssembler, key_hash, tag};

/// Attributes a completed span may hold past `max_attributes`: those that
/// mark how it ended (incomplete and its reason, or start missing).
const MARKING_ATTRIBUTES: usize = 2;

/// Why a span was not put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpanImportError {
    /// The bytes are not an OTLP Span.
    #[error("not an OTLP span")]
    Decode,
    /// The trace id is not 16 bytes or the span id not 8.
    #[error("bad trace or span id")]
    Ids,
    /// The span holds more than the span limits allow.
    #[error("over the span limits")]
    OverLimits,
}

/// What a span holds as the span limits count it.
fn span_bytes(span: &Span) -> usize {
    let links: usize = span
        .links
        .iter()
        .map(|l| {
            LINK_COST
                + l.trace_state.len()
                + l.attributes.iter().map(key_value_bytes).sum::<usize>()
        })
        .sum();
    SPAN_COST
        + span.name.len()
        + span.parent_span_id.len()
        + span.attributes.iter().map(key_value_bytes).sum::<usize>()
        + links
}

impl SpanAssembler {
    /// Gives each span in flight, oldest first, as `(scope_ref, seen_at,
    /// OTLP Span bytes)`: the span as it would be exported if it ended now,
    /// without the incomplete marking.
    pub fn export_in_flight(&self, mut f: impl FnMut(i64, u64, &[u8])) {
        let mut buf = Vec::new();
        for (key, generation) in &self.order {
            let Some(open) = self.in_flight.get(key) else {
                continue;
            };
            if open.generation != *generation {
                continue;
            }
            buf.clear();
            open.encode(&mut buf);
            f(open.scope_ref, open.seen_at, &buf);
        }
    }

    /// Gives each completed span not taken yet, oldest first, as
    /// `(scope_ref, OTLP Span bytes)`.
    pub fn export_completed(&self, mut f: impl FnMut(i64, &[u8])) {
        let mut buf = Vec::new();
        for s in &self.completed {
            buf.clear();
            s.encode(&mut buf);
            f(s.scope_ref, &buf);
        }
    }

    /// Puts one span back in flight, as started at `seen_at` on the reader's
    /// clock, within the assembler's limits (past `max_in_flight_spans` the
    /// oldest span is given up, as for a new start).
    pub fn import_in_flight(
        &mut self,
        scope_ref: i64,
        seen_at: u64,
        otlp_span: &[u8],
    ) -> Result<(), SpanImportError> {
        let span = self.checked_span(otlp_span, 0)?;
        let key = key_of(&span)?;
        let mut open = self.filled(&span);
        open.scope_ref = scope_ref;
        open.seen_at = seen_at;
        self.open(key, open, seen_at);
        self.shed_bytes(seen_at);
        Ok(())
    }

    /// Puts one completed span back, to be sent with the next batches.
    pub fn import_completed(
        &mut self,
        scope_ref: i64,
        otlp_span: &[u8],
    ) -> Result<(), SpanImportError> {
        let span = self.checked_span(otlp_span, MARKING_ATTRIBUTES)?;
        key_of(&span)?;
        let mut done = self.filled(&span);
        done.scope_ref = scope_ref;
        done.end_time_unix_nano = span.end_time_unix_nano;
        if let Some(status) = &span.status {
            done.status = Some(status.code);
            done.status_message.push_str(&status.message);
        }
        let bytes = done.bytes + done.status_message.len();
        self.complete(done, bytes);
        Ok(())
    }

    /// Decodes a span and checks it against the limits (`extra`: attributes
    /// it may hold past `max_attributes`).
    fn checked_span(&self, otlp_span: &[u8], extra: usize) -> Result<Span, SpanImportError> {
        let limits = self.limits;
        // A span within the limits encodes to less than its counted bytes
        // plus its fixed fields; anything far larger is refused undecoded.
        if otlp_span.len() > limits.max_span_bytes.saturating_mul(2).saturating_add(4096) {
            return Err(SpanImportError::OverLimits);
        }
        let span = Span::decode(otlp_span).map_err(|_| SpanImportError::Decode)?;
        let bytes = span_bytes(&span);
        let max_attributes = limits.max_attributes.saturating_add(extra);
        if bytes > limits.max_span_bytes.saturating_add(SPAN_COST)
            || span.attributes.len() > max_attributes
            || span.links.len() > limits.max_links
            || span
                .links
                .iter()
                .any(|l| l.attributes.len() > limits.max_attributes)
        {
            return Err(SpanImportError::OverLimits);
        }
        Ok(span)
    }

    /// A span from the pool holding what `span` holds (not its end time nor
    /// status), its attributes and links encoded again and counted as
    /// [`SpanAssembler::apply`] counts them.
    fn filled(&mut self, span: &Span) -> Box<InFlight> {
        let mut open = self.pool.pop().unwrap_or_default();
        open.trace_id.copy_from_slice(&span.trace_id);
        open.span_id.copy_from_slice(&span.span_id);
        open.parent_span_id.extend_from_slice(&span.parent_span_id);
        open.name.push_str(&span.name);
        open.kind = span.kind;
        open.flags = span.flags;
        open.start_time_unix_nano = span.start_time_unix_nano;
        open.bytes = SPAN_COST + open.name.len() + open.parent_span_id.len();
        for kv in &span.attributes {
            set_attribute(&mut open, kv, &mut self.scratch);
        }
        open.dropped_attributes_count = span.dropped_attributes_count;
        for link in &span.links {
            let at = encode::begin(&mut open.links, tag::LINKS);
            // Writing into a Vec does not fail (it grows as needed).
            let _ = link.encode(&mut open.links);
            encode::end(&mut open.links, at);
            open.bytes += LINK_COST
                + link.trace_state.len()
                + link.attributes.iter().map(key_value_bytes).sum::<usize>();
            open.link_count += 1;
        }
        open.dropped_links_count = span.dropped_links_count;
        encode::reuse(&mut self.scratch, encode::KEEP_MAX);
        open
    }
}

/// Sets one attribute of `open` from a decoded `KeyValue`, encoded again as
/// Span field 9 (a key it holds already takes the new value, as
/// `Span::set_attribute` does).
fn set_attribute(open: &mut InFlight, kv: &KeyValue, field: &mut Vec<u8>) {
    let start = open.attributes.len();
    let content = encode::begin(&mut open.attributes, tag::ATTRIBUTES);
    encode::bytes(&mut open.attributes, 1, kv.key.as_bytes());
    let key_len = kv.key.len();
    let key_in_content = open.attributes.len() - key_len - content;
    let added = kv.value.as_ref().map_or(0, |v| {
        let value = encode::begin(&mut open.attributes, 2);
        // Writing into a Vec does not fail (it grows as needed).
        let _ = v.encode(&mut open.attributes);
        encode::end(&mut open.attributes, value);
        value_bytes(v)
    });
    let hash = key_hash(kv.key.as_bytes());
    let existing = open.position(kv.key.as_bytes(), hash);
    open.commit_attribute(
        NewAttribute {
            start,
            content,
            key_in_content,
            key_len,
            hash,
            added,
        },
        existing,
        field,
    );
}

fn key_of(span: &Span) -> Result<([u8; 16], [u8; 8]), SpanImportError> {
    match (
        <[u8; 16]>::try_from(span.trace_id.as_slice()),
        <[u8; 8]>::try_from(span.span_id.as_slice()),
    ) {
        (Ok(t), Ok(s)) => Ok((t, s)),
        _ => Err(SpanImportError::Ids),
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, any_value};
    use opentelemetry_proto::tonic::trace::v1::{Status, span};

    use super::*;

    fn kv(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    /// A span with more attributes than the in-flight key index is built
    /// from, a nested value, a key without value and two links.
    fn span() -> Span {
        let mut attributes: Vec<KeyValue> = (0..20)
            .map(|i| kv(&format!("k{i}"), any_value::Value::IntValue(i)))
            .collect();
        attributes.push(kv(
            "list",
            any_value::Value::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(any_value::Value::StringValue("x".repeat(200))),
                }],
            }),
        ));
        attributes.push(KeyValue {
            key: "empty".into(),
            ..Default::default()
        });
        let link = |n: u8| span::Link {
            trace_id: vec![n; 16],
            span_id: vec![n; 8],
            trace_state: "a=b".into(),
            attributes: vec![kv("l", any_value::Value::BoolValue(true))],
            dropped_attributes_count: 1,
            flags: 0x100,
        };
        Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            name: "op".into(),
            kind: 2,
            start_time_unix_nano: 5,
            attributes,
            dropped_attributes_count: 4,
            links: vec![link(7), link(8)],
            dropped_links_count: 2,
            flags: 0x301,
            ..Default::default()
        }
    }

    fn exported(a: &SpanAssembler) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        a.export_in_flight(|_, _, b| out.push(b.to_vec()));
        out
    }

    #[test]
    fn a_span_comes_back_as_prost_encodes_it_and_counts_the_same_bytes() {
        let s = span();
        let mut a = SpanAssembler::new(10, u64::MAX);
        a.import_in_flight(9, 100, &s.encode_to_vec()).unwrap();
        assert_eq!(exported(&a), vec![s.encode_to_vec()]);
        assert_eq!(a.in_flight_bytes(), span_bytes(&s));

        // Again from its export: the same bytes, counted the same.
        let mut b = SpanAssembler::new(10, u64::MAX);
        b.import_in_flight(9, 100, &exported(&a)[0]).unwrap();
        assert_eq!(exported(&b), exported(&a));
        assert_eq!(b.in_flight_bytes(), a.in_flight_bytes());
    }

    #[test]
    fn a_key_given_twice_keeps_its_place_and_takes_the_later_value() {
        let mut s = span();
        s.attributes
            .push(kv("k3", any_value::Value::StringValue("later".into())));
        let mut a = SpanAssembler::new(10, u64::MAX);
        a.import_in_flight(9, 100, &s.encode_to_vec()).unwrap();
        let mut expected = span();
        expected.attributes[3] = kv("k3", any_value::Value::StringValue("later".into()));
        assert_eq!(exported(&a), vec![expected.encode_to_vec()]);
        assert_eq!(a.in_flight_bytes(), span_bytes(&expected));
    }

    #[test]
    fn a_completed_span_keeps_its_end_and_status() {
        let mut s = span();
        s.end_time_unix_nano = 50;
        s.status = Some(Status {
            message: "bad".into(),
            code: 2,
        });
        let mut a = SpanAssembler::new(10, u64::MAX);
        a.import_completed(9, &s.encode_to_vec()).unwrap();
        let mut out = Vec::new();
        a.export_completed(|scope, b| out.push((scope, b.to_vec())));
        assert_eq!(out, vec![(9, s.encode_to_vec())]);
        assert_eq!(a.completed_bytes(), span_bytes(&s) + 3);
        assert_eq!(a.in_flight(), 0);
    }
}
