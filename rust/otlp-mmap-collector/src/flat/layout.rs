//! The flat layout of each message: its fields in the order of their
//! numbers (the order our encoder writes them in), each as a fixed-size
//! slot, a string, a value, an attribute list, or a nested message or list
//! of them. A field the layout does not name, one that comes out of order
//! or twice, sends the batch as OTLP. A field that is absent takes its
//! slot's default (zeros, an empty string or value, an empty list), which is
//! what pdata holds for it.

/// How a field is laid out.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot {
    /// A trace id: 16 bytes (zeros when absent).
    Id16,
    /// A span id: 8 bytes (zeros when absent).
    Id8,
    /// A string (`always`: interned the first time it is seen).
    Str(bool),
    /// A varint field (uint32, int32 or an enum): u32, its low 32 bits.
    Varint32,
    /// A fixed32 field: u32.
    Fixed32,
    /// A fixed64 field: u64.
    Fixed64,
    /// An `AnyValue` message: a value.
    Value,
    /// Repeated `KeyValue`: an attribute list (`always`: string values interned at once).
    Attrs(bool),
    /// A message.
    Message(Layout),
    /// A repeated message: count, then each.
    Repeated(Layout),
}

/// The slots of a message, by field number.
pub(crate) type Layout = &'static [(u32, Slot)];

use Slot::*;

/// `InstrumentationScope`.
const SCOPE: Layout = &[
    (1, Str(true)),
    (2, Str(true)),
    (3, Attrs(true)),
    (4, Varint32),
];
/// `Resource`.
const RESOURCE: Layout = &[(1, Attrs(true)), (2, Varint32)];
/// `Status`.
const STATUS: Layout = &[(2, Str(false)), (3, Varint32)];
/// `Span.Link`.
const LINK: Layout = &[
    (1, Id16),
    (2, Id8),
    (3, Str(false)),
    (4, Attrs(false)),
    (5, Varint32),
    (6, Fixed32),
];
/// `Span` (events, fields 11 and 12, are not written by the reader).
const SPAN: Layout = &[
    (1, Id16),
    (2, Id8),
    (3, Str(false)),
    (4, Id8),
    (5, Str(true)),
    (6, Varint32),
    (7, Fixed64),
    (8, Fixed64),
    (9, Attrs(false)),
    (10, Varint32),
    (13, Repeated(LINK)),
    (14, Varint32),
    (15, Message(STATUS)),
    (16, Fixed32),
];
/// `LogRecord`.
const LOG_RECORD: Layout = &[
    (1, Fixed64),
    (2, Varint32),
    (3, Str(true)),
    (5, Value),
    (6, Attrs(false)),
    (7, Varint32),
    (8, Fixed32),
    (9, Id16),
    (10, Id8),
    (11, Fixed64),
    (12, Str(true)),
];
const SCOPE_SPANS: Layout = &[(1, Message(SCOPE)), (2, Repeated(SPAN))];
const RESOURCE_SPANS: Layout = &[(1, Message(RESOURCE)), (2, Repeated(SCOPE_SPANS))];
/// `ExportTraceServiceRequest`.
pub(crate) const TRACES: Layout = &[(1, Repeated(RESOURCE_SPANS))];
const SCOPE_LOGS: Layout = &[(1, Message(SCOPE)), (2, Repeated(LOG_RECORD))];
const RESOURCE_LOGS: Layout = &[(1, Message(RESOURCE)), (2, Repeated(SCOPE_LOGS))];
/// `ExportLogsServiceRequest`.
pub(crate) const LOGS: Layout = &[(1, Repeated(RESOURCE_LOGS))];
