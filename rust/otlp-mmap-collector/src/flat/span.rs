//! A span in its flat layout (`layout::SPAN`), written from the fields the
//! span assembler holds rather than from their OTLP encoding: the same
//! bytes and the same string-table lookups, in the same order, as
//! [`body::message`] of the `Span` message the reader encodes for it
//! (`spans::InFlight::encode`), without writing and reading that message.

use super::body::{self, Ctx, put_u32, put_u64};
use super::{INLINE, NotFlat, layout};

/// Field numbers of the span's encoded attributes and links.
const ATTRIBUTES: u32 = 9;
const LINKS: u32 = 13;

/// What a span's `Span` message holds (see `spans::InFlight::encode`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanFields<'a> {
    pub(crate) trace_id: &'a [u8; 16],
    pub(crate) span_id: &'a [u8; 8],
    pub(crate) parent_span_id: &'a [u8],
    pub(crate) name: &'a [u8],
    pub(crate) kind: i32,
    pub(crate) start_time_unix_nano: u64,
    pub(crate) end_time_unix_nano: u64,
    /// Encoded `KeyValue` fields (field 9), in parts one after the other.
    pub(crate) attributes: [&'a [u8]; 2],
    pub(crate) dropped_attributes_count: u32,
    /// Encoded `Link` fields (field 13).
    pub(crate) links: &'a [u8],
    pub(crate) dropped_links_count: u32,
    /// Status code and message, when the span has a status.
    pub(crate) status: Option<(i32, &'a [u8])>,
    pub(crate) flags: u32,
}

/// Writes `s` in the span layout, slot by slot in the order of
/// `layout::SPAN`.
pub(crate) fn span(c: &mut Ctx<'_>, s: &SpanFields<'_>) -> Result<(), NotFlat> {
    c.out.extend_from_slice(s.trace_id);
    c.out.extend_from_slice(s.span_id);
    // Trace state: the reader writes none.
    put_u32(c.out, INLINE);
    c.out.extend_from_slice(&body::id::<8>(s.parent_span_id)?);
    body::put_str(c, s.name, true)?;
    put_u32(c.out, s.kind as u32);
    put_u64(c.out, s.start_time_unix_nano);
    put_u64(c.out, s.end_time_unix_nano);
    body::attrs(c, ATTRIBUTES, &s.attributes, false)?;
    put_u32(c.out, s.dropped_attributes_count);
    body::repeated(c, LINKS, s.links, layout::LINK)?;
    put_u32(c.out, s.dropped_links_count);
    // Status: its message, its code (an absent status is both defaults).
    let (code, message) = s.status.unwrap_or((0, &[]));
    body::put_str(c, message, false)?;
    put_u32(c.out, code as u32);
    put_u32(c.out, s.flags);
    Ok(())
}
