//! The flat hand-off: a batch laid out for the Collector's Go side to turn
//! into pdata without a protobuf decoder, with the strings that repeat
//! (attribute keys, names, resource and scope attributes, string values
//! seen more than once) sent once per file and interned there.
//!
//! A [`FlatWriter`] per signal lays out a batch as the reader's export
//! request for it (the bytes [`crate::group::RequestEncoder`] writes) would
//! be laid out by [`FlatWriter::write`], which reads that request. The
//! reader does not write the request and read it again: it writes the
//! layout straight from the batch as grouped, the spans from the fields the
//! assembler holds (`flat/span.rs`) and the log records from what was noted
//! while encoding them (`flat/log.rs`), the same bytes, string-table
//! lookups in the same order (`tests/flat_direct.rs` checks it against
//! `write` of the request). Attributes and links stay encoded OTLP fields
//! (as the assembler keeps them), read as `write` reads them; repeated
//! attributes are found by their encoded bytes (`kv_memo.rs`), and so are
//! repeated lists of them (`list_memo.rs`). A traces
//! batch handed out flat writes its request only when the reader needs it
//! (a checkpoint, a batch laid out again). Whatever the flat layout does
//! not express exactly (a field the encoder does not write, an id of
//! another length than OTLP allows, a repeated attribute key) makes the
//! whole batch go as the OTLP request instead, which Go decodes as before:
//! the result is always what the OTLP path gives.
//!
//! # Layout (version 1, little-endian)
//!
//! ```text
//! batch   = "OMF1" mode:u8 (mode 1: the OTLP export request follows, to the end)
//!           (mode 0:) epoch:u32 base:u32 count:u32 count*(len:u32 bytes) body
//! str     = u32: a string-table id (< 2^31), or 2^31|len followed by len bytes
//! attrs   = count:u32 count*(key:str value), or for a list of more than
//!           32: 2^31|len then an encoded KeyValueList of len bytes (pdata
//!           fills a map key by key in quadratic time; its decoder does not)
//! value   = kind:u8 then: 0 empty | 1 str | 2 bool:u8 | 3 int:u64 |
//!           4 double:u64 (bits) | 5 bytes: len:u32 bytes |
//!           6 an AnyValue message (arrays, kvlists): len:u32 bytes
//! body    = resources:u32 resources*(resource scopes:u32 scopes*(scope items:u32 items*item))
//! resource= attrs dropped:u32
//! scope   = name:str version:str attrs dropped:u32
//! span    = trace_id:[16] span_id:[8] trace_state:str parent_span_id:[8]
//!           name:str kind:u32 start:u64 end:u64 attrs dropped_attributes:u32
//!           links:u32 links*link dropped_links:u32 status_message:str
//!           status_code:u32 flags:u32
//! link    = trace_id:[16] span_id:[8] trace_state:str attrs dropped:u32 flags:u32
//! log     = time:u64 severity_number:u32 severity_text:str body:value attrs
//!           dropped_attributes:u32 flags:u32 trace_id:[16] span_id:[8]
//!           observed_time:u64 event_name:str
//! ```
//!
//! Fields are in the order of their numbers in the OTLP messages (`write`
//! turns the request into this in one pass: `flat/layout.rs` lists the
//! slots). An absent field is its default: an id all zeros, an empty
//! string, value or list, 0, as pdata holds it.
//!
//! # The string table
//!
//! Each writer keeps a table of the strings it sent; the batch carries the
//! entries added since the previous batch (`base` is the id of the first,
//! `count` how many), so Go appends them to its own copy of the table
//! before reading the body. A batch is built only once the previous one of
//! its signal was committed, so Go always holds every earlier entry; a
//! batch delivered again (the pipeline refused it) carries entries Go has
//! already, which it skips by `base`. When the table grows past its bounds
//! ([`strings::MAX_ENTRIES`], [`strings::MAX_BYTES`]) it starts over with
//! the next batch under a new `epoch`, and Go clears its copy when the epoch
//! changes. When Go cannot read a batch (it drops it), it tells the reader,
//! and the writer starts over the same way (see [`FlatWriter::start_over`]),
//! so that later batches do not refer to entries Go never got. The table
//! belongs to the reader of one file: it is keyed by the strings' bytes, not
//! by dictionary refs, so a writer that starts over in place keeps it; a
//! file opened again starts with an empty one on both sides.

mod body;
mod bytes_memo;
mod kv_memo;
mod layout;
mod list_memo;
pub(crate) mod log;
pub(crate) mod span;
pub mod strings;
mod wire;

use crate::file_reader::Signal;
use crate::group::RequestEncoder;
use body::put_u32;
use strings::StringTable;

/// First bytes of every flat batch.
pub const MAGIC: &[u8; 4] = b"OMF1";
/// Mode byte: the flat layout follows.
pub const MODE_FLAT: u8 = 0;
/// Mode byte: the OTLP export request follows.
pub const MODE_OTLP: u8 = 1;
/// The bit of a `str` word (and of an `attrs` count) that says its bytes
/// follow inline: the rest of the word is their length.
pub const INLINE: u32 = 1 << 31;
/// The fewest bytes a resource takes in the layout, with its count of
/// scopes (Go checks each count against the bytes left for its items).
pub const RESOURCE_MIN_BYTES: u32 = layout::min_bytes(layout::RESOURCE_SPANS);
/// The fewest bytes a scope takes, with its count of items.
pub const SCOPE_MIN_BYTES: u32 = layout::min_bytes(layout::SCOPE_SPANS);
/// The fewest bytes an attribute takes: its key's str word, its value's kind.
pub const ATTRIBUTE_MIN_BYTES: u32 = 4 + 1;
/// The fewest bytes a span takes.
pub const SPAN_MIN_BYTES: u32 = layout::min_bytes(layout::SPAN);
/// The fewest bytes a link takes.
pub const LINK_MIN_BYTES: u32 = layout::min_bytes(layout::LINK);
/// The fewest bytes a log record takes.
pub const LOG_MIN_BYTES: u32 = layout::min_bytes(layout::LOG_RECORD);

/// Value kinds of the layout.
pub mod kind {
    /// No value.
    pub const EMPTY: u8 = 0;
    /// A string.
    pub const STR: u8 = 1;
    /// A bool, one byte.
    pub const BOOL: u8 = 2;
    /// An int64.
    pub const INT: u8 = 3;
    /// A double, its bits.
    pub const DOUBLE: u8 = 4;
    /// Bytes, with their length.
    pub const BYTES: u8 = 5;
    /// An encoded `AnyValue` message (array, kvlist), with its length.
    pub const ANY_VALUE: u8 = 6;
}

/// The request holds something the flat layout does not express exactly:
/// the batch goes as OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotFlat;

/// Turns the export requests of one signal of one file into flat batches
/// (see the module docs). Its buffers are kept across batches.
#[derive(Debug, Default)]
pub struct FlatWriter {
    strings: StringTable,
    /// Keys of the attribute list being written.
    keys: Vec<u64>,
    memo: kv_memo::KeyValueMemo,
    lists: list_memo::AttributeListMemo,
}

/// Bytes of a flat batch before its body: magic, mode, the string table's
/// header (epoch, base, count), without the new entries.
const HEADER: usize = MAGIC.len() + 1 + 12;

impl FlatWriter {
    /// Appends the flat batch of `request` (an export request of `signal`,
    /// as the reader encodes it; metrics always go as OTLP) to `out`.
    pub fn write(&mut self, signal: Signal, request: &[u8], out: &mut Vec<u8>) {
        let layout = match signal {
            Signal::Traces => Some(layout::TRACES),
            Signal::Logs => Some(layout::LOGS),
            Signal::Metrics => None,
        };
        let flat = self.write_with(out, |c| match layout {
            Some(layout) => body::message(c, request, layout),
            None => Err(NotFlat),
        });
        if !flat {
            out.extend_from_slice(request);
        }
    }

    /// Appends the flat batch of the traces batch `request` grouped (see
    /// [`RequestEncoder::group`]) to `out`: the same bytes as
    /// [`write`](Self::write) of its export request, written from the spans
    /// themselves (`span(at)`: the fields of the item pushed with `at`)
    /// rather than from their encoding. Returns false when the layout cannot
    /// hold the batch: `out` then ends with the header of an OTLP batch, and
    /// the caller appends the export request.
    pub(crate) fn write_spans<'a>(
        &mut self,
        request: &RequestEncoder,
        span: impl Fn(usize) -> span::SpanFields<'a>,
        out: &mut Vec<u8>,
    ) -> bool {
        self.write_with(out, |c| {
            grouped(c, request, |c, at, _| span::span(c, &span(at)))
        })
    }

    /// Appends the flat batch of the logs batch `request` grouped, whose
    /// export request is `otlp`, to `out`: the same bytes as
    /// [`write`](Self::write) of `otlp`, written from the records' fields
    /// (`record(at)`: those of the item pushed with `at`, in `arena`)
    /// rather than from the request.
    pub(crate) fn write_logs<'a>(
        &mut self,
        request: &RequestEncoder,
        otlp: &[u8],
        arena: &[u8],
        record: impl Fn(usize) -> &'a log::LogFields,
        out: &mut Vec<u8>,
    ) {
        let flat = self.write_with(out, |c| {
            grouped(c, request, |c, at, _| log::log(c, arena, record(at)))
        });
        if !flat {
            out.extend_from_slice(otlp);
        }
    }

    /// Appends a batch whose body `body` writes and returns true, or, when
    /// it cannot, the header of an OTLP batch (for the caller to append the
    /// export request) and returns false. The body is written in place
    /// after the header; the strings the table gained go in front of it.
    fn write_with(
        &mut self,
        out: &mut Vec<u8>,
        body: impl FnOnce(&mut body::Ctx<'_>) -> Result<(), NotFlat>,
    ) -> bool {
        if self.strings.begin_batch() {
            self.memo.clear();
            self.lists.clear();
        }
        let start = out.len();
        out.extend_from_slice(MAGIC);
        out.push(MODE_FLAT);
        out.extend_from_slice(&[0; HEADER - MAGIC.len() - 1]);
        let mut ctx = body::Ctx {
            strings: &mut self.strings,
            memo: &mut self.memo,
            lists: &mut self.lists,
            inlined: false,
            keys: &mut self.keys,
            out,
        };
        match body(&mut ctx) {
            Ok(()) => {
                let table = start + MAGIC.len() + 1;
                out[table..start + HEADER].copy_from_slice(&self.strings.header());
                let end = out.len();
                self.strings.write_entries(out);
                let new = out.len() - end;
                if new > 0 {
                    // Rare once the table holds the file's strings.
                    out[start + HEADER..].rotate_right(new);
                }
                true
            }
            Err(NotFlat) => {
                // Strings added while writing are not sent: forget them.
                self.strings.abandon_batch();
                self.memo.clear();
                self.lists.clear();
                out.truncate(start);
                out.extend_from_slice(MAGIC);
                out.push(MODE_OTLP);
                false
            }
        }
    }

    /// Starts the string table over under a new epoch with the next batch:
    /// for when Go could not read a batch and so lacks its new entries, which
    /// later batches would refer to.
    pub fn start_over(&mut self) {
        self.strings.start_over();
        self.memo.clear();
        self.lists.clear();
    }

    /// The writer's string table.
    pub fn strings(&self) -> &StringTable {
        &self.strings
    }
}

/// Writes the body of a batch grouped by `request` (an export request's
/// resources, their scopes, the scopes' items, as [`body::message`] writes
/// them from the request), each item by `item(at, len)`.
fn grouped(
    c: &mut body::Ctx<'_>,
    request: &RequestEncoder,
    mut item: impl FnMut(&mut body::Ctx<'_>, usize, usize) -> Result<(), NotFlat>,
) -> Result<(), NotFlat> {
    put_u32(c.out, request.resources() as u32);
    for r in 0..request.resources() {
        body::message(c, request.resource(r), layout::RESOURCE)?;
        let mut scopes = body::List::open(c.out);
        for g in request.scopes_of(r) {
            scopes.add();
            body::message(c, request.scope(g), layout::SCOPE)?;
            let mut items = body::List::open(c.out);
            for (at, len) in request.items_of(g) {
                items.add();
                item(c, at, len)?;
            }
            items.close(c.out);
        }
        scopes.close(c.out);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
    use prost::Message;

    fn kv(k: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn traces(span: Span) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Default::default()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(Default::default()),
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn logs(record: LogRecord) -> Vec<u8> {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Default::default()),
                scope_logs: vec![ScopeLogs {
                    scope: Some(Default::default()),
                    log_records: vec![record],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    /// The batch's mode, and its bytes after the header.
    fn written(w: &mut FlatWriter, signal: Signal, request: &[u8]) -> (u8, Vec<u8>) {
        let mut out = Vec::new();
        w.write(signal, request, &mut out);
        assert_eq!(&out[..4], MAGIC);
        (out[4], out[5..].to_vec())
    }

    fn span() -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "op".into(),
            attributes: vec![
                kv("a", any_value::Value::StringValue("x".into())),
                kv("b", any_value::Value::IntValue(1)),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn what_the_layout_holds_goes_flat() {
        let mut w = FlatWriter::default();
        let request = traces(span());
        let (mode, rest) = written(&mut w, Signal::Traces, &request);
        assert_eq!(mode, MODE_FLAT);
        // Epoch 0, base 0; "a", "b", "op" interned ("x" goes inline the
        // first time, empty strings always).
        assert_eq!(&rest[..8], &[0; 8]);
        assert_eq!(w.strings().len(), 3);
        // The next batch sends no string again, and now interns "x".
        let (mode, rest) = written(&mut w, Signal::Traces, &request);
        assert_eq!(mode, MODE_FLAT);
        assert_eq!(u32::from_le_bytes(rest[4..8].try_into().unwrap()), 3);
        assert_eq!(u32::from_le_bytes(rest[8..12].try_into().unwrap()), 1);
        // Metrics are always OTLP.
        let (mode, rest) = written(&mut w, Signal::Metrics, &request);
        assert_eq!((mode, rest), (MODE_OTLP, request));
    }

    #[test]
    fn a_table_told_to_start_over_does_so_with_the_next_batch() {
        let mut w = FlatWriter::default();
        let request = traces(span());
        written(&mut w, Signal::Traces, &request);
        w.start_over();
        let (mode, rest) = written(&mut w, Signal::Traces, &request);
        assert_eq!(mode, MODE_FLAT);
        // Epoch 1, base 0: "a", "b", "op" sent again, and "x" (seen before).
        assert_eq!(&rest[..12], &[1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0]);
        assert_eq!(w.strings().epoch(), 1);
        // Only once.
        let (_, rest) = written(&mut w, Signal::Traces, &request);
        assert_eq!(&rest[..12], &[1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn what_it_cannot_hold_exactly_goes_as_otlp() {
        let cases: Vec<(Signal, Vec<u8>)> = vec![
            // A key twice: pdata keeps both.
            (
                Signal::Traces,
                traces(Span {
                    attributes: vec![
                        kv("a", any_value::Value::IntValue(1)),
                        kv("a", any_value::Value::IntValue(2)),
                    ],
                    ..span()
                }),
            ),
            // An id of another length: pdata refuses the request.
            (
                Signal::Traces,
                traces(Span {
                    parent_span_id: vec![3; 5],
                    ..span()
                }),
            ),
            // Span events: the reader writes none, the layout has none.
            (
                Signal::Traces,
                traces(Span {
                    events: vec![span::Event::default()],
                    ..span()
                }),
            ),
            (
                Signal::Logs,
                logs(LogRecord {
                    trace_id: vec![1; 3],
                    ..Default::default()
                }),
            ),
        ];
        for (signal, request) in cases {
            let mut w = FlatWriter::default();
            let (mode, rest) = written(&mut w, signal, &request);
            assert_eq!((mode, &rest), (MODE_OTLP, &request));
            assert!(
                w.strings().is_empty(),
                "strings of a batch not sent are forgotten"
            );
        }
    }

    #[test]
    fn arrays_and_kvlists_go_as_encoded_values() {
        let value = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(any_value::Value::IntValue(7)),
                }],
            })),
        };
        let request = logs(LogRecord {
            body: Some(value.clone()),
            ..Default::default()
        });
        let mut w = FlatWriter::default();
        let (mode, rest) = written(&mut w, Signal::Logs, &request);
        assert_eq!(mode, MODE_FLAT);
        let encoded = value.encode_to_vec();
        let mut want = vec![kind::ANY_VALUE];
        want.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
        want.extend_from_slice(&encoded);
        assert!(rest.windows(want.len()).any(|w| w == want), "{rest:02x?}");
    }

    #[test]
    fn long_attribute_lists_go_as_encoded_lists() {
        use opentelemetry_proto::tonic::common::v1::KeyValueList;
        // 40 attributes, one key twice: kept as they are, in order.
        let attributes: Vec<KeyValue> = (0..40)
            .map(|i| kv(&format!("k{}", i % 39), any_value::Value::IntValue(i)))
            .collect();
        let request = traces(Span {
            attributes: attributes.clone(),
            ..span()
        });
        let mut w = FlatWriter::default();
        let (mode, rest) = written(&mut w, Signal::Traces, &request);
        assert_eq!(mode, MODE_FLAT);
        let list = KeyValueList { values: attributes }.encode_to_vec();
        let mut want = (INLINE | list.len() as u32).to_le_bytes().to_vec();
        want.extend_from_slice(&list);
        assert!(rest.windows(want.len()).any(|w| w == want));
    }

    proptest::proptest! {
        /// Whatever the bytes, the writer does not panic, and what it does
        /// not lay out flat goes as the bytes themselves.
        #[test]
        fn any_bytes_go_flat_or_as_they_are(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            cut in 0usize..400,
            flip in proptest::prelude::any::<(usize, u8)>(),
        ) {
            let mut w = FlatWriter::default();
            let mut request = traces(span());
            request.truncate(cut.min(request.len()));
            if !request.is_empty() {
                let i = flip.0 % request.len();
                request[i] ^= flip.1;
            }
            for (signal, input) in [(Signal::Traces, &bytes), (Signal::Logs, &bytes), (Signal::Traces, &request)] {
                let (mode, rest) = written(&mut w, signal, input);
                if mode == MODE_OTLP {
                    proptest::prop_assert_eq!(&rest, input);
                }
            }
        }
    }
}
