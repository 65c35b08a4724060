//! The spans an assembler holds, as OTLP `Span` protobuf bytes, for a
//! checkpoint that outlives the Collector, and back.
//!
//! A span comes out exactly as it would be exported if it ended now (without
//! the incomplete marking), so that a checkpoint depends on OTLP only, not on
//! how the assembler represents a span in flight. Bytes read back are
//! untrusted: a span that does not decode, has bad ids or goes over the span
//! limits is refused, and the rest still comes back.

use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::dictionary::key_value_bytes;
use crate::spans::{AssembledSpan, InFlight, LINK_COST, SPAN_COST, SpanAssembler};

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
            open.span.encode(&mut buf).expect("a Vec grows as needed");
            f(open.scope_ref, open.seen_at, &buf);
        }
    }

    /// Gives each completed span not taken yet, oldest first, as
    /// `(scope_ref, OTLP Span bytes)`.
    pub fn export_completed(&self, mut f: impl FnMut(i64, &[u8])) {
        let mut buf = Vec::new();
        for s in &self.completed {
            buf.clear();
            s.span.encode(&mut buf).expect("a Vec grows as needed");
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
        let (span, bytes) = self.checked_span(otlp_span)?;
        let key = key_of(&span)?;
        let open = InFlight {
            span,
            scope_ref,
            seen_at,
            generation: 0,
            bytes,
            index: None,
        };
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
        let (span, bytes) = self.checked_span(otlp_span)?;
        key_of(&span)?;
        let status = span.status.as_ref().map_or(0, |s| s.message.len());
        self.complete(AssembledSpan {
            scope_ref,
            span,
            bytes: bytes + status,
        });
        Ok(())
    }

    fn checked_span(&self, otlp_span: &[u8]) -> Result<(Span, usize), SpanImportError> {
        let limits = self.limits;
        // A span within the limits encodes to less than its counted bytes
        // plus its fixed fields; anything far larger is refused undecoded.
        if otlp_span.len() > limits.max_span_bytes.saturating_mul(2).saturating_add(4096) {
            return Err(SpanImportError::OverLimits);
        }
        let span = Span::decode(otlp_span).map_err(|_| SpanImportError::Decode)?;
        let bytes = span_bytes(&span);
        if bytes > limits.max_span_bytes.saturating_add(SPAN_COST)
            || span.attributes.len() > limits.max_attributes
            || span.links.len() > limits.max_links
            || span
                .links
                .iter()
                .any(|l| l.attributes.len() > limits.max_attributes)
        {
            return Err(SpanImportError::OverLimits);
        }
        Ok((span, bytes))
    }
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
