//! Borrowed decoding: records read straight from their slot bytes, without
//! allocating. A view holds sub-slices of the slot; strings and nested
//! messages are decoded only when asked for.
//!
//! The views follow protobuf's rules where they matter to a reader: the last
//! occurrence of a scalar or oneof field wins, repeated fields are yielded in
//! wire order, and unknown fields are skipped. Malformed input (a truncated
//! varint, a length past the end, a group or an unknown wire type) is an
//! error, never a panic or an out-of-bounds read.

use crate::tags;
use prost::encoding::decode_varint;

/// A protobuf wire value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wire<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 5.
    Fixed32(u32),
    /// Wire type 2 (length-delimited).
    Bytes(&'a [u8]),
}

impl<'a> Wire<'a> {
    /// The value of a varint field (0 for another wire type).
    #[inline]
    pub fn varint(self) -> u64 {
        match self {
            Wire::Varint(v) => v,
            _ => 0,
        }
    }
    /// The value of a fixed64 field (0 for another wire type).
    #[inline]
    pub fn fixed64(self) -> u64 {
        match self {
            Wire::Fixed64(v) => v,
            _ => 0,
        }
    }
    /// The value of a fixed32 field (0 for another wire type).
    #[inline]
    pub fn fixed32(self) -> u32 {
        match self {
            Wire::Fixed32(v) => v,
            _ => 0,
        }
    }
    /// The bytes of a length-delimited field (empty for another wire type).
    #[inline]
    pub fn bytes(self) -> &'a [u8] {
        match self {
            Wire::Bytes(b) => b,
            _ => &[],
        }
    }
}

/// The record is not valid protobuf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireError;

/// Takes a varint off the front of `buf`: one of up to four bytes (keys,
/// lengths and dictionary refs mostly are) directly, a longer one through
/// prost. (The collector's readers of records use it too.)
#[inline(always)]
pub fn varint(buf: &mut &[u8]) -> Result<u64, WireError> {
    let bytes: &[u8] = buf;
    match bytes {
        [b, rest @ ..] if *b < 0x80 => {
            *buf = rest;
            Ok(u64::from(*b))
        }
        [b0, b1, rest @ ..] if *b1 < 0x80 => {
            *buf = rest;
            Ok(u64::from(b0 & 0x7f) | u64::from(*b1) << 7)
        }
        [b0, b1, b2, rest @ ..] if *b2 < 0x80 => {
            *buf = rest;
            Ok(u64::from(b0 & 0x7f) | u64::from(b1 & 0x7f) << 7 | u64::from(*b2) << 14)
        }
        [b0, b1, b2, b3, rest @ ..] if *b3 < 0x80 => {
            *buf = rest;
            Ok(u64::from(b0 & 0x7f)
                | u64::from(b1 & 0x7f) << 7
                | u64::from(b2 & 0x7f) << 14
                | u64::from(*b3) << 21)
        }
        _ => {
            let (v, rest) = long_varint(bytes)?;
            *buf = rest;
            Ok(v)
        }
    }
}

/// A varint of five bytes or more (or a bad one), and what follows it. The
/// slice goes in and out by value, so that the callers' slices can stay in
/// registers.
#[cold]
fn long_varint(mut buf: &[u8]) -> Result<(u64, &[u8]), WireError> {
    let v = decode_varint(&mut buf).map_err(|_| WireError)?;
    Ok((v, buf))
}

/// Iterates over the fields of one message: `(field number, value)`.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
    failed: bool,
}

impl<'a> Fields<'a> {
    /// The fields of the encoded message `buf`.
    #[inline]
    pub fn new(buf: &'a [u8]) -> Self {
        Fields { buf, failed: false }
    }

    #[inline(always)]
    fn next_field(&mut self) -> Result<(u32, Wire<'a>), WireError> {
        let key = varint(&mut self.buf)?;
        let field = u32::try_from(key >> 3).map_err(|_| WireError)?;
        if field == 0 {
            return Err(WireError);
        }
        let value = match key & 7 {
            0 => Wire::Varint(varint(&mut self.buf)?),
            1 => {
                let (v, rest) = self.buf.split_first_chunk::<8>().ok_or(WireError)?;
                self.buf = rest;
                Wire::Fixed64(u64::from_le_bytes(*v))
            }
            2 => {
                let len = varint(&mut self.buf)?;
                if len > self.buf.len() as u64 {
                    return Err(WireError);
                }
                let (v, rest) = self.buf.split_at(len as usize);
                self.buf = rest;
                Wire::Bytes(v)
            }
            5 => {
                let (v, rest) = self.buf.split_first_chunk::<4>().ok_or(WireError)?;
                self.buf = rest;
                Wire::Fixed32(u32::from_le_bytes(*v))
            }
            _ => return Err(WireError),
        };
        Ok((field, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Wire<'a>), WireError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() || self.failed {
            return None;
        }
        let r = self.next_field();
        self.failed = r.is_err();
        Some(r)
    }
}

/// The entries of one repeated message field, in wire order.
#[derive(Clone, Copy, Default)]
pub struct Repeated<'a> {
    msg: &'a [u8],
    field: u32,
}

/// The field and its entries (two that give the same entries show the same,
/// whatever other fields their messages hold).
impl std::fmt::Debug for Repeated<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repeated")
            .field("field", &self.field)
            .field("entries", &self.iter().collect::<Vec<_>>())
            .finish()
    }
}

impl<'a> Repeated<'a> {
    /// The entries of field `field` of the message `msg`.
    pub fn new(msg: &'a [u8], field: u32) -> Self {
        Repeated { msg, field }
    }

    /// Every entry (a malformed message ends the iteration; it was checked
    /// when the enclosing view was parsed).
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (mut buf, field) = (self.msg, self.field);
        std::iter::from_fn(move || {
            while !buf.is_empty() {
                match next_field(&mut buf) {
                    Ok((f, Some(b))) if f == field => return Some(b),
                    Ok(_) => {}
                    Err(_) => {
                        buf = &[];
                        return None;
                    }
                }
            }
            None
        })
    }

    /// The message its entries are read from, and their field number: the
    /// entries are a function of both. (For a usual start, the message
    /// holds only their run.)
    #[inline]
    pub fn message(&self) -> (&'a [u8], u32) {
        (self.msg, self.field)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// Takes one field off the front of `buf`: its number, and its bytes when
/// it is length-delimited. What [`Fields`] checks, without building a [`Wire`]
/// (for the loops that only skip fields or look for one repeated field).
#[inline(always)]
fn next_field<'a>(buf: &mut &'a [u8]) -> Result<(u32, Option<&'a [u8]>), WireError> {
    let (field, wire) = take_key(buf)?;
    if wire == 2 {
        return Ok((field, Some(take_len(buf)?)));
    }
    skip_value(buf, wire)?;
    Ok((field, None))
}

/// Checks that `msg` is a sequence of well-formed fields.
#[inline]
fn check(msg: &[u8]) -> Result<(), WireError> {
    // The shape of nearly every message checked, a KeyValueRef as writers
    // write it: a varint field 1, then a length-delimited field 2 up to the end.
    if let [0x08, rest @ ..] = msg {
        let mut buf = rest;
        if varint(&mut buf).is_ok()
            && let [0x12, after @ ..] = buf
        {
            let mut value = after;
            if varint(&mut value).is_ok_and(|len| len == value.len() as u64) {
                return Ok(());
            }
        }
    }
    check_fields(msg)
}

/// [`check`], field by field.
fn check_fields(mut msg: &[u8]) -> Result<(), WireError> {
    while !msg.is_empty() {
        next_field(&mut msg)?;
    }
    Ok(())
}

/// Takes a field key off the front of `buf`: its number and wire type (as
/// [`Fields`] reads them: a number past u32 or 0 is an error). The value is
/// then taken with the `*_of` function of the wire type the field should
/// have; given another wire type, those skip the value and give the
/// default, as [`Wire`]'s accessors do. For the parse loops of the hot
/// records, which need no [`Wire`] in between.
#[inline(always)]
fn take_key(buf: &mut &[u8]) -> Result<(u32, u64), WireError> {
    let key = varint(buf)?;
    let field = u32::try_from(key >> 3).map_err(|_| WireError)?;
    if field == 0 {
        return Err(WireError);
    }
    Ok((field, key & 7))
}

/// Skips a value of wire type `wire`.
#[inline(always)]
fn skip_value(buf: &mut &[u8], wire: u64) -> Result<(), WireError> {
    let n = match wire {
        0 => return varint(buf).map(drop),
        1 => 8,
        2 => return take_len(buf).map(drop),
        5 => 4,
        _ => return Err(WireError),
    };
    *buf = buf.get(n..).ok_or(WireError)?;
    Ok(())
}

#[inline(always)]
fn take_len<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], WireError> {
    let len = varint(buf)?;
    if len > buf.len() as u64 {
        return Err(WireError);
    }
    let (v, rest) = buf.split_at(len as usize);
    *buf = rest;
    Ok(v)
}

/// A length-delimited value (empty for another wire type).
#[inline(always)]
fn bytes_of<'a>(buf: &mut &'a [u8], wire: u64) -> Result<&'a [u8], WireError> {
    if wire == 2 {
        return take_len(buf);
    }
    skip_value(buf, wire)?;
    Ok(&[])
}

/// A varint value (0 for another wire type).
#[inline(always)]
fn varint_of(buf: &mut &[u8], wire: u64) -> Result<u64, WireError> {
    if wire == 0 {
        return varint(buf);
    }
    skip_value(buf, wire)?;
    Ok(0)
}

/// A fixed64 value (0 for another wire type).
#[inline(always)]
fn fixed64_of(buf: &mut &[u8], wire: u64) -> Result<u64, WireError> {
    if wire == 1 {
        let (v, rest) = buf.split_first_chunk::<8>().ok_or(WireError)?;
        *buf = rest;
        return Ok(u64::from_le_bytes(*v));
    }
    skip_value(buf, wire)?;
    Ok(0)
}

/// A fixed32 value (0 for another wire type).
#[inline(always)]
fn fixed32_of(buf: &mut &[u8], wire: u64) -> Result<u32, WireError> {
    if wire == 5 {
        let (v, rest) = buf.split_first_chunk::<4>().ok_or(WireError)?;
        *buf = rest;
        return Ok(u32::from_le_bytes(*v));
    }
    skip_value(buf, wire)?;
    Ok(0)
}

/// A `KeyValueRef`.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyValueRefView<'a> {
    /// The ref of the key string.
    pub key_ref: i64,
    /// The encoded `AnyValue`, when present.
    pub value: Option<&'a [u8]>,
}

impl<'a> KeyValueRefView<'a> {
    /// Parses a KeyValueRef and checks its shape.
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let mut v = KeyValueRefView::default();
        for f in Fields::new(msg) {
            match f? {
                (tags::key_value_ref::KEY_REF, w) => v.key_ref = w.varint() as i64,
                (tags::key_value_ref::VALUE, w) => v.value = Some(w.bytes()),
                _ => {}
            }
        }
        Ok(v)
    }
}

/// An `AnyValue`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnyValueView<'a> {
    /// No value set.
    Empty,
    /// UTF-8 by the schema; checked by whoever turns it into a string.
    String(&'a [u8]),
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// A double.
    Double(f64),
    /// An encoded `ArrayValue` (field 1: repeated AnyValue).
    Array(Repeated<'a>),
    /// An encoded `KeyValueList` (field 1: repeated KeyValueRef).
    KvList(Repeated<'a>),
    /// Raw bytes.
    Bytes(&'a [u8]),
    /// A dictionary ref of an `AnyValue` entry.
    Ref(i64),
}

impl PartialEq for Repeated<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.msg == other.msg && self.field == other.field
    }
}

impl<'a> AnyValueView<'a> {
    /// Parses an AnyValue and checks the nested list it hands out.
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let mut v = AnyValueView::Empty;
        for f in Fields::new(msg) {
            v = match f? {
                (tags::any_value::STRING_VALUE, w) => AnyValueView::String(w.bytes()),
                (tags::any_value::BOOL_VALUE, w) => AnyValueView::Bool(w.varint() != 0),
                (tags::any_value::INT_VALUE, w) => AnyValueView::Int(w.varint() as i64),
                (tags::any_value::DOUBLE_VALUE, w) => {
                    AnyValueView::Double(f64::from_bits(w.fixed64()))
                }
                (tags::any_value::ARRAY_VALUE, w) => {
                    check(w.bytes())?;
                    AnyValueView::Array(Repeated {
                        msg: w.bytes(),
                        field: tags::array_value::VALUES,
                    })
                }
                (tags::any_value::KVLIST_VALUE, w) => {
                    check(w.bytes())?;
                    AnyValueView::KvList(Repeated {
                        msg: w.bytes(),
                        field: tags::key_value_list::VALUES,
                    })
                }
                (tags::any_value::BYTES_VALUE, w) => AnyValueView::Bytes(w.bytes()),
                (tags::any_value::VALUE_REF, w) => AnyValueView::Ref(w.varint() as i64),
                _ => v,
            };
        }
        Ok(v)
    }
}

/// A `Status`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StatusView<'a> {
    /// The message (UTF-8 by the schema).
    pub message: &'a [u8],
    /// The `StatusCode`.
    pub code: i32,
}

/// A `SpanEvent.AddLink.Link`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkView<'a> {
    /// Trace id of the linked span.
    pub trace_id: &'a [u8],
    /// Span id of the linked span.
    pub span_id: &'a [u8],
    /// W3C trace state of the linked span.
    pub trace_state: &'a [u8],
    /// The link's attributes (KeyValueRef entries).
    pub attributes: Repeated<'a>,
    /// Attributes the writer dropped.
    pub dropped_attributes_count: u32,
    /// W3C trace flags, with the remoteness bits.
    pub flags: u32,
}

impl<'a> LinkView<'a> {
    /// Parses a link and checks its shape.
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        use tags::span_event::add_link::link;
        let mut v = LinkView {
            attributes: Repeated {
                msg,
                field: link::ATTRIBUTES,
            },
            ..Default::default()
        };
        for f in Fields::new(msg) {
            match f? {
                (link::TRACE_ID, w) => v.trace_id = w.bytes(),
                (link::SPAN_ID, w) => v.span_id = w.bytes(),
                (link::TRACE_STATE, w) => v.trace_state = w.bytes(),
                (link::DROPPED_ATTRIBUTES_COUNT, w) => {
                    v.dropped_attributes_count = w.varint() as u32
                }
                (link::FLAGS, w) => v.flags = w.fixed32(),
                _ => {}
            }
        }
        Ok(v)
    }
}

/// A `SpanContext`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpanContextView<'a> {
    /// Span id.
    pub span_id: &'a [u8],
    /// Trace id.
    pub trace_id: &'a [u8],
    /// W3C trace flags.
    pub flags: u32,
}

impl<'a> SpanContextView<'a> {
    /// Parses a SpanContext.
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        let mut v = SpanContextView::default();
        for f in Fields::new(msg) {
            match f? {
                (tags::span_context::SPAN_ID, w) => v.span_id = w.bytes(),
                (tags::span_context::TRACE_ID, w) => v.trace_id = w.bytes(),
                (tags::span_context::FLAGS, w) => v.flags = w.fixed32(),
                _ => {}
            }
        }
        Ok(v)
    }
}

/// An `Event` (a log record).
#[derive(Debug, Clone, Copy, Default)]
pub struct EventView<'a> {
    /// Ref of the InstrumentationScope entry.
    pub scope_ref: i64,
    /// Time of the record (Unix nanoseconds).
    pub time_unix_nano: u64,
    /// The `SeverityNumber`.
    pub severity_number: i32,
    /// Severity text (UTF-8 by the schema).
    pub severity_text: &'a [u8],
    /// The encoded body `AnyValue`, when present.
    pub body: Option<&'a [u8]>,
    /// Ref of the event name string; 0 for a plain log record.
    pub event_name_ref: i64,
    /// The span the record was emitted in, if any.
    pub span_context: Option<SpanContextView<'a>>,
    /// Attributes (KeyValueRef entries).
    pub attributes: Repeated<'a>,
}

impl<'a> EventView<'a> {
    /// Parses an Event and checks every nested message it will hand out.
    /// When the attributes follow each other with no other field between
    /// them (as writers encode them), their `Repeated` holds only their run.
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        use tags::event;
        let mut v = EventView {
            attributes: Repeated {
                msg,
                field: event::ATTRIBUTES,
            },
            ..Default::default()
        };
        // The attributes' run: where it starts and ends, and whether
        // another field comes between two attributes.
        let (mut run, mut split) = (None::<(usize, usize)>, false);
        let mut fields = Fields::new(msg);
        loop {
            let at = msg.len() - fields.buf.len();
            let Some(f) = fields.next() else {
                break;
            };
            match f? {
                (event::ATTRIBUTES, w) => {
                    check(w.bytes())?;
                    let end = msg.len() - fields.buf.len();
                    run = match run {
                        None => Some((at, end)),
                        Some((start, last)) => {
                            split |= last != at;
                            Some((start, end))
                        }
                    };
                }
                (event::SCOPE_REF, w) => v.scope_ref = w.varint() as i64,
                (event::TIME_UNIX_NANO, w) => v.time_unix_nano = w.fixed64(),
                (event::SEVERITY_NUMBER, w) => v.severity_number = w.varint() as i32,
                (event::SEVERITY_TEXT, w) => v.severity_text = w.bytes(),
                (event::BODY, w) => {
                    check(w.bytes())?;
                    v.body = Some(w.bytes());
                }
                (event::EVENT_NAME_REF, w) => v.event_name_ref = w.varint() as i64,
                (event::SPAN_CONTEXT, w) => {
                    v.span_context = Some(SpanContextView::parse(w.bytes())?)
                }
                _ => {}
            }
        }
        if let Some((start, end)) = run
            && !split
        {
            v.attributes.msg = &msg[start..end];
        }
        Ok(v)
    }
}

/// What a span event does.
#[derive(Debug, Clone, Copy)]
pub enum SpanEventKind<'a> {
    /// The span started.
    Start {
        /// Parent span id (empty for a root span).
        parent_span_id: &'a [u8],
        /// Span name (UTF-8 by the schema).
        name: &'a [u8],
        /// The `SpanKind`.
        kind: i32,
        /// Start time (Unix nanoseconds).
        start_time_unix_nano: u64,
        /// Attributes at start (KeyValueRef entries).
        attributes: Repeated<'a>,
        /// W3C trace flags, with the parent remoteness bits.
        flags: u32,
    },
    /// The span ended.
    End {
        /// End time (Unix nanoseconds).
        end_time_unix_nano: u64,
        /// Final status, if set.
        status: Option<StatusView<'a>>,
    },
    /// The span was renamed.
    Name(&'a [u8]),
    /// Attributes were added to the span (KeyValueRef entries).
    Attributes(Repeated<'a>),
    /// Entries decode with [`LinkView::parse`].
    Links(Repeated<'a>),
    /// No event set (an empty oneof).
    None,
}

/// A `SpanEvent`.
#[derive(Debug, Clone, Copy)]
pub struct SpanEventView<'a> {
    /// Trace id.
    pub trace_id: &'a [u8],
    /// Span id.
    pub span_id: &'a [u8],
    /// Ref of the InstrumentationScope entry.
    pub scope_ref: i64,
    /// What the record does.
    pub event: SpanEventKind<'a>,
}

impl<'a> SpanEventView<'a> {
    /// Parses a SpanEvent and checks every nested message it will hand out.
    #[inline]
    pub fn parse(msg: &'a [u8]) -> Result<Self, WireError> {
        match usual_span_event(msg) {
            Some(v) => Ok(v),
            None => Self::parse_fields(msg),
        }
    }

    /// [`parse`](Self::parse), field by field: any message.
    fn parse_fields(msg: &'a [u8]) -> Result<Self, WireError> {
        use tags::span_event::{self as se, add_link, change_span_name, update_attributes};
        let mut v = SpanEventView {
            trace_id: &[],
            span_id: &[],
            scope_ref: 0,
            event: SpanEventKind::None,
        };
        let mut buf = msg;
        while !buf.is_empty() {
            let (field, wire) = take_key(&mut buf)?;
            match field {
                se::TRACE_ID => v.trace_id = bytes_of(&mut buf, wire)?,
                se::SPAN_ID => v.span_id = bytes_of(&mut buf, wire)?,
                se::SCOPE_REF => v.scope_ref = varint_of(&mut buf, wire)? as i64,
                se::START => v.event = parse_start(bytes_of(&mut buf, wire)?)?,
                se::END => v.event = parse_end(bytes_of(&mut buf, wire)?)?,
                se::NAME => {
                    let mut name: &[u8] = &[];
                    for f in Fields::new(bytes_of(&mut buf, wire)?) {
                        if let (change_span_name::NAME, n) = f? {
                            name = n.bytes();
                        }
                    }
                    v.event = SpanEventKind::Name(name);
                }
                se::ATTRIBUTES => {
                    let b = bytes_of(&mut buf, wire)?;
                    check_entries(b, update_attributes::ATTRIBUTES)?;
                    v.event = SpanEventKind::Attributes(Repeated {
                        msg: b,
                        field: update_attributes::ATTRIBUTES,
                    });
                }
                se::LINK => {
                    let b = bytes_of(&mut buf, wire)?;
                    check_entries(b, add_link::LINKS)?;
                    v.event = SpanEventKind::Links(Repeated {
                        msg: b,
                        field: add_link::LINKS,
                    });
                }
                _ => skip_value(&mut buf, wire)?,
            }
        }
        Ok(v)
    }
}

/// A protobuf key of one byte.
const fn key1(field: u32, wire: u32) -> u8 {
    assert!(field < 16);
    (field << 3 | wire) as u8
}

/// A protobuf key of two bytes.
const fn key2(field: u32, wire: u32) -> [u8; 2] {
    assert!(field >= 16 && field < 2048);
    let k = field << 3 | wire;
    [(k & 0x7f) as u8 | 0x80, (k >> 7) as u8]
}

/// A fixed-size value of `N` bytes after the key `key`, when `buf` starts
/// with that key (`buf` then moves past the value); `None` when its bytes
/// are missing.
#[inline(always)]
fn fixed_after<const N: usize>(buf: &mut &[u8], key: &[u8]) -> Option<Option<[u8; N]>> {
    let bytes: &[u8] = buf;
    let Some(rest) = bytes.strip_prefix(key) else {
        return Some(None);
    };
    let (v, rest) = rest.split_first_chunk::<N>()?;
    *buf = rest;
    Some(Some(*v))
}

/// A length-delimited value after the one-byte key `key`, when `buf`
/// starts with that key; `None` when it is malformed.
#[inline(always)]
fn bytes_after<'a>(buf: &mut &'a [u8], key: u8) -> Option<Option<&'a [u8]>> {
    let bytes: &'a [u8] = buf;
    match bytes {
        [k, rest @ ..] if *k == key => {
            let mut rest = rest;
            let v = take_len(&mut rest).ok()?;
            *buf = rest;
            Some(Some(v))
        }
        _ => Some(None),
    }
}

/// A varint value after the one-byte key `key`, when `buf` starts with it;
/// `None` when it is malformed.
#[inline(always)]
fn varint_after(buf: &mut &[u8], key: u8) -> Option<Option<u64>> {
    let bytes: &[u8] = buf;
    match bytes {
        [k, rest @ ..] if *k == key => {
            let mut rest = rest;
            let v = varint(&mut rest).ok()?;
            *buf = rest;
            Some(Some(v))
        }
        _ => Some(None),
    }
}

/// A SpanEvent with a start or an end as writers encode it (prost, our
/// SDK): a trace id of 16 bytes and a span id of 8, the event, then the
/// scope ref if any, each field once, in field-number order, and the same
/// for the event's own fields. `None` for anything else (another event, a
/// field out of that order or twice, a malformed one), which
/// [`SpanEventView::parse_fields`] then reads: for the messages this takes,
/// both give the same view (they meet the same fields, each once; the
/// attributes of a start are the same entries, whose `Repeated` here holds
/// only their run), this one without the general field walk.
#[inline(always)]
fn usual_span_event(msg: &[u8]) -> Option<SpanEventView<'_>> {
    use tags::span_event as se;
    const TRACE_ID: [u8; 2] = [key1(se::TRACE_ID, 2), 16];
    const SPAN_ID: [u8; 2] = [key1(se::SPAN_ID, 2), 8];
    const START: u8 = key1(se::START, 2);
    const END: u8 = key1(se::END, 2);
    const SCOPE_REF: [u8; 2] = key2(se::SCOPE_REF, 0);
    let rest = msg.strip_prefix(&TRACE_ID)?;
    let (trace_id, rest) = rest.split_first_chunk::<16>()?;
    let rest = rest.strip_prefix(&SPAN_ID)?;
    let (span_id, rest) = rest.split_first_chunk::<8>()?;
    let (&key, mut rest) = rest.split_first()?;
    let body = take_len(&mut rest).ok()?;
    let event = if key == START {
        usual_start(body)?
    } else if key == END {
        usual_end(body)?
    } else {
        return None;
    };
    let mut scope_ref = 0;
    if let Some(mut tail) = rest.strip_prefix(&SCOPE_REF) {
        scope_ref = varint(&mut tail).ok()? as i64;
        rest = tail;
    }
    if !rest.is_empty() {
        return None;
    }
    Some(SpanEventView {
        trace_id,
        span_id,
        scope_ref,
        event,
    })
}

/// [`parse_start`] of a `StartSpan` as writers encode it (see
/// [`usual_span_event`]); `None` for any other.
#[inline(always)]
fn usual_start(msg: &[u8]) -> Option<SpanEventKind<'_>> {
    use tags::span_event::start_span as ss;
    const PARENT: u8 = key1(ss::PARENT_SPAN_ID, 2);
    const NAME: u8 = key1(ss::NAME, 2);
    const KIND: u8 = key1(ss::KIND, 0);
    const START: [u8; 1] = [key1(ss::START_TIME_UNIX_NANO, 1)];
    const ATTRIBUTES: u8 = key1(ss::ATTRIBUTES, 2);
    const FLAGS: [u8; 2] = key2(ss::FLAGS, 5);
    let mut buf = msg;
    let parent = bytes_after(&mut buf, PARENT)?.unwrap_or(&[]);
    let name = bytes_after(&mut buf, NAME)?.unwrap_or(&[]);
    let kind = varint_after(&mut buf, KIND)?.unwrap_or(0) as i32;
    let start = fixed_after::<8>(&mut buf, &START)?.map_or(0, u64::from_le_bytes);
    // The attributes run: the only fields their `Repeated` need walk.
    let run = buf;
    while let Some(attribute) = bytes_after(&mut buf, ATTRIBUTES)? {
        check(attribute).ok()?;
    }
    let run = &run[..run.len() - buf.len()];
    let flags = fixed_after::<4>(&mut buf, &FLAGS)?.map_or(0, u32::from_le_bytes);
    if !buf.is_empty() {
        return None;
    }
    Some(SpanEventKind::Start {
        parent_span_id: parent,
        name,
        kind,
        start_time_unix_nano: start,
        attributes: Repeated {
            msg: run,
            field: ss::ATTRIBUTES,
        },
        flags,
    })
}

/// [`parse_end`] of an `EndSpan` as writers encode it (see
/// [`usual_span_event`]); `None` for any other.
#[inline(always)]
fn usual_end(msg: &[u8]) -> Option<SpanEventKind<'_>> {
    use tags::span_event::end_span;
    const END_TIME: [u8; 1] = [key1(end_span::END_TIME_UNIX_NANO, 1)];
    const STATUS: u8 = key1(end_span::STATUS, 2);
    const MESSAGE: u8 = key1(tags::status::MESSAGE, 2);
    const CODE: u8 = key1(tags::status::CODE, 0);
    let mut buf = msg;
    let end = fixed_after::<8>(&mut buf, &END_TIME)?.map_or(0, u64::from_le_bytes);
    let status = match bytes_after(&mut buf, STATUS)? {
        None => None,
        Some(mut s) => {
            let message = bytes_after(&mut s, MESSAGE)?.unwrap_or(&[]);
            let code = varint_after(&mut s, CODE)?.unwrap_or(0) as i32;
            if !s.is_empty() {
                return None;
            }
            Some(StatusView { message, code })
        }
    };
    if !buf.is_empty() {
        return None;
    }
    Some(SpanEventKind::End {
        end_time_unix_nano: end,
        status,
    })
}

/// Checks a message and each entry of its repeated field `field`.
fn check_entries(msg: &[u8], field: u32) -> Result<(), WireError> {
    for f in Fields::new(msg) {
        if let (n, Wire::Bytes(b)) = f?
            && n == field
        {
            check(b)?;
        }
    }
    Ok(())
}

fn parse_start(msg: &[u8]) -> Result<SpanEventKind<'_>, WireError> {
    use tags::span_event::start_span;
    let (mut parent, mut name, mut kind, mut start, mut flags) = (&[][..], &[][..], 0, 0, 0);
    let mut buf = msg;
    while !buf.is_empty() {
        let (field, wire) = take_key(&mut buf)?;
        match field {
            start_span::PARENT_SPAN_ID => parent = bytes_of(&mut buf, wire)?,
            start_span::NAME => name = bytes_of(&mut buf, wire)?,
            start_span::KIND => kind = varint_of(&mut buf, wire)? as i32,
            start_span::START_TIME_UNIX_NANO => start = fixed64_of(&mut buf, wire)?,
            start_span::ATTRIBUTES => check(bytes_of(&mut buf, wire)?)?,
            start_span::FLAGS => flags = fixed32_of(&mut buf, wire)?,
            _ => skip_value(&mut buf, wire)?,
        }
    }
    Ok(SpanEventKind::Start {
        parent_span_id: parent,
        name,
        kind,
        start_time_unix_nano: start,
        attributes: Repeated {
            msg,
            field: start_span::ATTRIBUTES,
        },
        flags,
    })
}

fn parse_end(msg: &[u8]) -> Result<SpanEventKind<'_>, WireError> {
    use tags::span_event::end_span;
    let (mut end, mut status) = (0, None);
    let mut buf = msg;
    while !buf.is_empty() {
        let (field, wire) = take_key(&mut buf)?;
        match field {
            end_span::END_TIME_UNIX_NANO => end = fixed64_of(&mut buf, wire)?,
            end_span::STATUS => {
                let mut s = StatusView::default();
                for f in Fields::new(bytes_of(&mut buf, wire)?) {
                    match f? {
                        (tags::status::MESSAGE, m) => s.message = m.bytes(),
                        (tags::status::CODE, c) => s.code = c.varint() as i32,
                        _ => {}
                    }
                }
                status = Some(s);
            }
            _ => skip_value(&mut buf, wire)?,
        }
    }
    Ok(SpanEventKind::End {
        end_time_unix_nano: end,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{self, any_value::Value, span_event::Event};
    use prost::Message;

    /// The field walk the fast paths stand for: `check` and `Repeated::iter`
    /// as the general iterator gives them.
    fn same_as_fields(bytes: &[u8]) {
        let by_fields = Fields::new(bytes).all(|f| f.is_ok());
        assert_eq!(check(bytes).is_ok(), by_fields, "check {bytes:02x?}");
        assert_eq!(check_fields(bytes).is_ok(), by_fields, "{bytes:02x?}");
        for field in [1, 2, 9] {
            let want: Vec<&[u8]> = Fields::new(bytes)
                .map_while(Result::ok)
                .filter_map(|(f, w)| match w {
                    Wire::Bytes(b) if f == field => Some(b),
                    _ => None,
                })
                .collect();
            let got: Vec<&[u8]> = Repeated::new(bytes, field).iter().collect();
            assert_eq!(got, want, "field {field} of {bytes:02x?}");
        }
    }

    #[test]
    fn fast_paths_agree_with_the_field_walk() {
        let mut cases = vec![];
        for v in [
            Value::StringValue("GET".into()),
            Value::IntValue(-1),
            Value::ValueRef(1 << 40),
        ] {
            for key_ref in [0, 5, 300, 1 << 30, 1 << 50] {
                cases.push(kv(key_ref, v.clone()).encode_to_vec());
            }
        }
        cases.push(
            proto::KeyValueRef {
                key_ref: 7,
                value: None,
            }
            .encode_to_vec(),
        );
        for case in &cases {
            same_as_fields(case);
            for cut in 0..case.len() {
                same_as_fields(&case[..cut]);
            }
            for i in 0..case.len() {
                for b in [0x00, 0x02, 0x08, 0x12, 0x7f, 0x80, 0xff] {
                    let mut changed = case.clone();
                    changed[i] = b;
                    same_as_fields(&changed);
                }
            }
        }
    }

    /// `SpanEventView::parse` on the general field walk (as it was before
    /// its loops took keys and values directly): the reference it must agree with.
    fn span_event_by_fields(msg: &[u8]) -> Result<SpanEventView<'_>, WireError> {
        use tags::span_event::update_attributes;
        use tags::span_event::{self as se, add_link, change_span_name, end_span, start_span};
        let mut v = SpanEventView {
            trace_id: &[],
            span_id: &[],
            scope_ref: 0,
            event: SpanEventKind::None,
        };
        for f in Fields::new(msg) {
            match f? {
                (se::TRACE_ID, w) => v.trace_id = w.bytes(),
                (se::SPAN_ID, w) => v.span_id = w.bytes(),
                (se::SCOPE_REF, w) => v.scope_ref = w.varint() as i64,
                (se::START, w) => {
                    let msg = w.bytes();
                    let (mut parent, mut name, mut kind, mut start, mut flags) =
                        (&[][..], &[][..], 0, 0, 0);
                    for f in Fields::new(msg) {
                        match f? {
                            (start_span::PARENT_SPAN_ID, w) => parent = w.bytes(),
                            (start_span::NAME, w) => name = w.bytes(),
                            (start_span::KIND, w) => kind = w.varint() as i32,
                            (start_span::START_TIME_UNIX_NANO, w) => start = w.fixed64(),
                            (start_span::ATTRIBUTES, w) => check_fields(w.bytes())?,
                            (start_span::FLAGS, w) => flags = w.fixed32(),
                            _ => {}
                        }
                    }
                    v.event = SpanEventKind::Start {
                        parent_span_id: parent,
                        name,
                        kind,
                        start_time_unix_nano: start,
                        attributes: Repeated::new(msg, start_span::ATTRIBUTES),
                        flags,
                    };
                }
                (se::END, w) => {
                    let (mut end, mut status) = (0, None);
                    for f in Fields::new(w.bytes()) {
                        match f? {
                            (end_span::END_TIME_UNIX_NANO, w) => end = w.fixed64(),
                            (end_span::STATUS, w) => {
                                let mut s = StatusView::default();
                                for f in Fields::new(w.bytes()) {
                                    match f? {
                                        (tags::status::MESSAGE, m) => s.message = m.bytes(),
                                        (tags::status::CODE, c) => s.code = c.varint() as i32,
                                        _ => {}
                                    }
                                }
                                status = Some(s);
                            }
                            _ => {}
                        }
                    }
                    v.event = SpanEventKind::End {
                        end_time_unix_nano: end,
                        status,
                    };
                }
                (se::NAME, w) => {
                    let mut name: &[u8] = &[];
                    for f in Fields::new(w.bytes()) {
                        if let (change_span_name::NAME, n) = f? {
                            name = n.bytes();
                        }
                    }
                    v.event = SpanEventKind::Name(name);
                }
                (se::ATTRIBUTES, w) => {
                    check_entries(w.bytes(), update_attributes::ATTRIBUTES)?;
                    v.event = SpanEventKind::Attributes(Repeated::new(
                        w.bytes(),
                        update_attributes::ATTRIBUTES,
                    ));
                }
                (se::LINK, w) => {
                    check_entries(w.bytes(), add_link::LINKS)?;
                    v.event = SpanEventKind::Links(Repeated::new(w.bytes(), add_link::LINKS));
                }
                _ => {}
            }
        }
        Ok(v)
    }

    fn same_span_event(bytes: &[u8]) {
        let want = format!("{:?}", span_event_by_fields(bytes));
        assert_eq!(
            format!("{:?}", SpanEventView::parse(bytes)),
            want,
            "{bytes:02x?}"
        );
        assert_eq!(
            format!("{:?}", SpanEventView::parse_fields(bytes)),
            want,
            "{bytes:02x?}"
        );
        if let Some(v) = usual_span_event(bytes) {
            assert_eq!(format!("{:?}", Ok::<_, WireError>(v)), want, "{bytes:02x?}");
        }
    }

    /// Start and end events as writers encode them, with and without each
    /// optional field: the usual layout's fast path takes them all.
    fn usual_span_events() -> Vec<Vec<u8>> {
        let attrs = vec![
            kv(5, Value::StringValue("GET".into())),
            kv(300, Value::IntValue(200)),
            kv(1 << 30, Value::ValueRef(9)),
        ];
        let mut events = vec![];
        for (parent, attrs, flags) in [
            (vec![3; 8], attrs.clone(), 0x301),
            (vec![], vec![], 0),
            (vec![3; 8], attrs[..1].to_vec(), 1),
        ] {
            for (name, kind, start) in [("GET /x", 2, 7), ("", 0, 0), ("n", 1, u64::MAX)] {
                events.push(Event::Start(proto::span_event::StartSpan {
                    parent_span_id: parent.clone(),
                    name: name.into(),
                    kind,
                    start_time_unix_nano: start,
                    attributes: attrs.clone(),
                    flags,
                }));
            }
        }
        for status in [
            None,
            Some(proto::Status::default()),
            Some(proto::Status {
                message: "bad".into(),
                code: 2,
            }),
        ] {
            for end in [0, 9] {
                events.push(Event::End(proto::span_event::EndSpan {
                    end_time_unix_nano: end,
                    status: status.clone(),
                }));
            }
        }
        let mut out = vec![];
        for event in events {
            for scope_ref in [0, 1, 1 << 20] {
                out.push(
                    proto::SpanEvent {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        scope_ref,
                        event: Some(event.clone()),
                    }
                    .encode_to_vec(),
                );
            }
        }
        out
    }

    #[test]
    fn usual_span_events_take_the_fast_path_and_agree() {
        for bytes in usual_span_events() {
            assert!(usual_span_event(&bytes).is_some(), "{bytes:02x?}");
            same_span_event(&bytes);
            for cut in 0..bytes.len() {
                same_span_event(&bytes[..cut]);
            }
            for i in 0..bytes.len() {
                for b in [
                    0x00, 0x01, 0x02, 0x05, 0x08, 0x0a, 0x10, 0x12, 0x18, 0x22, 0x2a, 0x30, 0x39,
                    0x41, 0x4a, 0x5a, 0x62, 0x7a, 0x7f, 0x80, 0x85, 0xa0, 0xff,
                ] {
                    let mut changed = bytes.clone();
                    changed[i] = b;
                    same_span_event(&changed);
                }
                // A byte more or less inside (lengths then disagree).
                let mut longer = bytes.clone();
                longer.insert(i, 0x01);
                same_span_event(&longer);
                let mut shorter = bytes.clone();
                shorter.remove(i);
                same_span_event(&shorter);
            }
            // A field after the usual ones (a second scope ref, an unknown field).
            for tail in [&[0xa0u8, 0x01, 0x05][..], &[0x18, 0x01], &[0x0a, 0x00]] {
                let mut more = bytes.clone();
                more.extend_from_slice(tail);
                same_span_event(&more);
            }
        }
    }

    #[test]
    fn span_event_parse_agrees_with_the_field_walk() {
        let attrs = vec![
            kv(5, Value::StringValue("GET".into())),
            kv(300, Value::IntValue(200)),
        ];
        let events = [
            Event::Start(proto::span_event::StartSpan {
                parent_span_id: vec![3; 8],
                name: "op".into(),
                kind: 2,
                start_time_unix_nano: 7,
                attributes: attrs.clone(),
                flags: 0x301,
            }),
            Event::End(proto::span_event::EndSpan {
                end_time_unix_nano: 9,
                status: Some(proto::Status {
                    message: "bad".into(),
                    code: 2,
                }),
            }),
            Event::Name(proto::span_event::ChangeSpanName { name: "x".into() }),
            Event::Attributes(proto::span_event::UpdateAttributes { attributes: attrs }),
        ];
        for event in events {
            let bytes = proto::SpanEvent {
                trace_id: vec![1; 16],
                span_id: vec![2; 8],
                scope_ref: 1 << 20,
                event: Some(event),
            }
            .encode_to_vec();
            same_span_event(&bytes);
            for cut in 0..bytes.len() {
                same_span_event(&bytes[..cut]);
            }
            for i in 0..bytes.len() {
                for b in [0x00, 0x01, 0x02, 0x05, 0x08, 0x0a, 0x12, 0x7f, 0x80, 0xff] {
                    let mut changed = bytes.clone();
                    changed[i] = b;
                    same_span_event(&changed);
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn span_event_parse_agrees_on_any_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96)) {
            same_span_event(&bytes);
        }

        #[test]
        fn span_event_parse_agrees_after_a_usual_prefix(
            which in 0usize..64,
            keep in 0usize..128,
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..48),
        ) {
            let events = usual_span_events();
            let mut bytes = events[which % events.len()].clone();
            bytes.truncate(keep);
            bytes.extend(&tail);
            same_span_event(&bytes);
        }

        #[test]
        fn fast_paths_agree_on_any_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..48)) {
            same_as_fields(&bytes);
            let mut kv = vec![0x08u8];
            kv.extend(&bytes);
            same_as_fields(&kv);
        }
    }

    fn kv(k: i64, v: Value) -> proto::KeyValueRef {
        proto::KeyValueRef {
            key_ref: k,
            value: Some(proto::AnyValue { value: Some(v) }),
        }
    }

    #[test]
    fn an_events_attributes_hold_their_run_when_nothing_comes_between() {
        let event = proto::Event {
            time_unix_nano: 5,
            severity_text: "INFO".into(),
            attributes: vec![kv(5, Value::IntValue(-4)), kv(6, Value::BoolValue(true))],
            event_name_ref: 9,
            ..Default::default()
        };
        let bytes = event.encode_to_vec();
        let run = proto::Event {
            attributes: event.attributes.clone(),
            ..Default::default()
        }
        .encode_to_vec();
        let v = EventView::parse(&bytes).unwrap();
        assert_eq!(v.attributes.message(), (&run[..], tags::event::ATTRIBUTES));
        let entries: Vec<&[u8]> = Repeated::new(&bytes, tags::event::ATTRIBUTES)
            .iter()
            .collect();
        assert_eq!(v.attributes.iter().collect::<Vec<_>>(), entries);
        // Another field between two attributes: the whole message.
        let first = proto::Event {
            attributes: event.attributes[..1].to_vec(),
            ..Default::default()
        }
        .encoded_len();
        let split = [&run[..first], &[0x18, 1], &run[first..]].concat();
        let v = EventView::parse(&split).unwrap();
        assert_eq!(v.attributes.message().0, &split[..]);
        assert_eq!(v.attributes.len(), 2);
        assert_eq!(v.severity_number, 1);
    }

    #[test]
    fn views_agree_with_prost() {
        let start = proto::SpanEvent {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            scope_ref: 77,
            event: Some(Event::Start(proto::span_event::StartSpan {
                parent_span_id: vec![3; 8],
                name: "op".into(),
                kind: 2,
                start_time_unix_nano: 123,
                attributes: vec![
                    kv(5, Value::IntValue(-4)),
                    kv(6, Value::StringValue("s".into())),
                ],
                flags: 0x301,
            })),
        };
        let bytes = start.encode_to_vec();
        let v = SpanEventView::parse(&bytes).unwrap();
        assert_eq!(
            (v.trace_id, v.span_id, v.scope_ref),
            (&[1u8; 16][..], &[2u8; 8][..], 77)
        );
        let SpanEventKind::Start {
            parent_span_id,
            name,
            kind,
            start_time_unix_nano,
            attributes,
            flags,
        } = v.event
        else {
            panic!("not a start")
        };
        assert_eq!(
            (parent_span_id, name, kind, start_time_unix_nano, flags),
            (&[3u8; 8][..], &b"op"[..], 2, 123, 0x301)
        );
        let kvs: Vec<_> = attributes
            .iter()
            .map(|b| KeyValueRefView::parse(b).unwrap())
            .collect();
        assert_eq!(kvs.len(), 2);
        assert_eq!(kvs[0].key_ref, 5);
        assert_eq!(
            AnyValueView::parse(kvs[0].value.unwrap()).unwrap(),
            AnyValueView::Int(-4)
        );
        assert_eq!(
            AnyValueView::parse(kvs[1].value.unwrap()).unwrap(),
            AnyValueView::String(b"s")
        );

        let end = proto::SpanEvent {
            event: Some(Event::End(proto::span_event::EndSpan {
                end_time_unix_nano: 9,
                status: Some(proto::Status {
                    message: "bad".into(),
                    code: 2,
                }),
            })),
            ..Default::default()
        };
        let bytes = end.encode_to_vec();
        let SpanEventKind::End {
            end_time_unix_nano,
            status,
        } = SpanEventView::parse(&bytes).unwrap().event
        else {
            panic!("not an end")
        };
        assert_eq!(end_time_unix_nano, 9);
        assert_eq!(
            status,
            Some(StatusView {
                message: b"bad",
                code: 2
            })
        );
    }

    /// The generated `tags` are the numbers prost (generated from the same
    /// schema) writes: the first key of a message with one field set.
    #[test]
    fn tags_are_the_numbers_prost_writes() {
        fn first_field(bytes: &[u8]) -> u32 {
            Fields::new(bytes).next().unwrap().unwrap().0
        }
        let scope = proto::SpanEvent {
            scope_ref: 1,
            ..Default::default()
        };
        assert_eq!(
            first_field(&scope.encode_to_vec()),
            tags::span_event::SCOPE_REF
        );
        let start = proto::span_event::StartSpan {
            flags: 1,
            ..Default::default()
        };
        assert_eq!(
            first_field(&start.encode_to_vec()),
            tags::span_event::start_span::FLAGS
        );
        let link = proto::span_event::add_link::Link {
            dropped_attributes_count: 1,
            ..Default::default()
        };
        assert_eq!(
            first_field(&link.encode_to_vec()),
            tags::span_event::add_link::link::DROPPED_ATTRIBUTES_COUNT
        );
        let m = proto::Measurement {
            value: Some(proto::measurement::Value::AsDouble(1.0)),
            ..Default::default()
        };
        assert_eq!(
            first_field(&m.encode_to_vec()),
            tags::measurement::AS_DOUBLE
        );
        let scope = proto::InstrumentationScope {
            resource_ref: 1,
            ..Default::default()
        };
        assert_eq!(
            first_field(&scope.encode_to_vec()),
            tags::instrumentation_scope::RESOURCE_REF
        );
    }

    #[test]
    fn varints_read_as_prost_reads_them() {
        let mut values = vec![0u64, 1, 127, 128, 300, 16_383, 16_384, u64::MAX];
        for shift in [21, 28, 35] {
            values.extend([(1u64 << shift) - 1, 1 << shift]);
        }
        for v in values {
            let mut bytes = Vec::new();
            prost::encoding::encode_varint(v, &mut bytes);
            bytes.push(0xaa);
            let mut buf = &bytes[..];
            assert_eq!(varint(&mut buf), Ok(v), "{v}");
            assert_eq!(buf, &[0xaa], "{v}: exactly its bytes taken");
        }
        // Redundant continuation bytes are accepted, as prost accepts them.
        let mut buf = &[0x80u8, 0x80, 0x00][..];
        assert_eq!(varint(&mut buf), Ok(0));
        assert!(buf.is_empty());
        for bad in [&[0x80u8][..], &[0x80, 0x80, 0x80], &[0xff; 11]] {
            let mut buf = bad;
            assert_eq!(varint(&mut buf), Err(WireError), "{bad:?}");
        }
    }

    #[test]
    fn malformed_input_is_an_error() {
        let good = proto::SpanEvent {
            trace_id: vec![1; 16],
            event: Some(Event::Name(proto::span_event::ChangeSpanName {
                name: "n".into(),
            })),
            ..Default::default()
        }
        .encode_to_vec();
        for cut in 0..good.len() {
            // Every prefix either parses or fails; none panics.
            let _ = SpanEventView::parse(&good[..cut]);
        }
        assert!(
            SpanEventView::parse(&[0x0a, 0x20, 1, 2]).is_err(),
            "length past the end"
        );
        assert!(SpanEventView::parse(&[0x0b]).is_err(), "group wire type");
        assert!(SpanEventView::parse(&[0x80]).is_err(), "truncated varint");
        assert!(
            AnyValueView::parse(&[0x2a, 0x02, 0x0a, 0x05]).is_err(),
            "array entry past its end"
        );
    }
}
