//! A log record in its flat layout (`layout::LOG_RECORD`), written from
//! the fields the reader noted while encoding it (`logs::encode_log_record`):
//! the same bytes and the same string-table lookups, in the same order, as
//! [`body::message`] of the encoded `LogRecord`, without reading it again.

use std::ops::Range;

use super::NotFlat;
use super::body::{self, Ctx, put_u32, put_u64};

/// Field number of the record's encoded attributes.
const ATTRIBUTES: u32 = 6;

/// What a record's `LogRecord` message holds; the ranges are of the buffer
/// it was encoded into.
#[derive(Debug, Default)]
pub(crate) struct LogFields {
    pub(crate) time_unix_nano: u64,
    pub(crate) severity_number: i32,
    pub(crate) severity_text: Range<usize>,
    /// The body's `AnyValue` message (empty without a body).
    pub(crate) body: Range<usize>,
    /// Its encoded `KeyValue` fields (field 6).
    pub(crate) attributes: Range<usize>,
    pub(crate) flags: u32,
    /// All zeros when absent.
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) observed_time_unix_nano: u64,
    pub(crate) event_name: Range<usize>,
}

/// Writes the record `r`, whose ranges are of `buf`, in the log record
/// layout, slot by slot in the order of `layout::LOG_RECORD`.
pub(crate) fn log(c: &mut Ctx<'_>, buf: &[u8], r: &LogFields) -> Result<(), NotFlat> {
    let at = |range: &Range<usize>| buf.get(range.clone()).ok_or(NotFlat);
    put_u64(c.out, r.time_unix_nano);
    put_u32(c.out, r.severity_number as u32);
    body::put_str(c, at(&r.severity_text)?, true)?;
    body::value(c, at(&r.body)?, false)?;
    body::attrs(c, ATTRIBUTES, &[at(&r.attributes)?], false)?;
    // Dropped attributes: the reader writes none.
    put_u32(c.out, 0);
    put_u32(c.out, r.flags);
    c.out.extend_from_slice(&r.trace_id);
    c.out.extend_from_slice(&r.span_id);
    put_u64(c.out, r.observed_time_unix_nano);
    body::put_str(c, at(&r.event_name)?, true)
}
