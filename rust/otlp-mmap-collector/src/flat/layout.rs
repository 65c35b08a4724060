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
pub(crate) const SCOPE: Layout = &[
    (1, Str(true)),
    (2, Str(true)),
    (3, Attrs(true)),
    (4, Varint32),
];
/// `Resource`.
pub(crate) const RESOURCE: Layout = &[(1, Attrs(true)), (2, Varint32)];
/// `Status`.
const STATUS: Layout = &[(2, Str(false)), (3, Varint32)];
/// `Span.Link`.
pub(crate) const LINK: Layout = &[
    (1, Id16),
    (2, Id8),
    (3, Str(false)),
    (4, Attrs(false)),
    (5, Varint32),
    (6, Fixed32),
];
/// `Span` (events, fields 11 and 12, are not written by the reader).
pub(crate) const SPAN: Layout = &[
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
pub(crate) const LOG_RECORD: Layout = &[
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
pub(crate) const SCOPE_SPANS: Layout = &[(1, Message(SCOPE)), (2, Repeated(SPAN))];
pub(crate) const RESOURCE_SPANS: Layout = &[(1, Message(RESOURCE)), (2, Repeated(SCOPE_SPANS))];
/// `ExportTraceServiceRequest`.
pub(crate) const TRACES: Layout = &[(1, Repeated(RESOURCE_SPANS))];
pub(crate) const SCOPE_LOGS: Layout = &[(1, Message(SCOPE)), (2, Repeated(LOG_RECORD))];
pub(crate) const RESOURCE_LOGS: Layout = &[(1, Message(RESOURCE)), (2, Repeated(SCOPE_LOGS))];
/// `ExportLogsServiceRequest`.
pub(crate) const LOGS: Layout = &[(1, Repeated(RESOURCE_LOGS))];

/// The fewest bytes a message of `layout` takes: every field absent, each
/// slot at its smallest (a value is its kind byte, a list its count).
pub(crate) const fn min_bytes(layout: Layout) -> u32 {
    let mut total = 0;
    let mut i = 0;
    while i < layout.len() {
        total += match layout[i].1 {
            Id16 => 16,
            Id8 | Fixed64 => 8,
            Str(_) | Varint32 | Fixed32 | Attrs(_) | Repeated(_) => 4,
            Value => 1,
            Message(inner) => min_bytes(inner),
        };
        i += 1;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_sizes_are_the_fields_sizes_and_the_same_for_both_signals() {
        // Resource attrs + dropped + scopes; scope name, version, attrs,
        // dropped + items; link ids, trace state, attrs, dropped, flags.
        assert_eq!(min_bytes(RESOURCE_SPANS), 4 + 4 + 4);
        assert_eq!(min_bytes(SCOPE_SPANS), 5 * 4);
        assert_eq!(min_bytes(LINK), 16 + 8 + 4 * 4);
        // Go reads the resources and scopes of both signals alike.
        assert_eq!(min_bytes(RESOURCE_LOGS), min_bytes(RESOURCE_SPANS));
        assert_eq!(min_bytes(SCOPE_LOGS), min_bytes(SCOPE_SPANS));
    }
}
