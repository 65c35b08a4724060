//! The borrowed protobuf encoder: records are sized exactly first, then
//! written field by field straight into a ring slot, from the application's
//! own data (`&str`, `&KeyValue`, `&AnyValue`). No prost struct, `String` or
//! `Vec` is built on the way.
//!
//! Sizes use `prost::encoding::{encoded_len_varint, key_len}`, so they agree
//! with prost's own encoding byte for byte (the tests compare both). The
//! writer ([`SlotWriter`]) never panics: it writes nothing past the end of the
//! slot and counts every byte the record takes ([`SlotWriter::written`]), so
//! that if a computed size were ever wrong the ring publishes the slot as a
//! record the reader rejects, and counts it, rather than leaving a claimed slot
//! unpublished or stale bytes in it.

use opentelemetry::logs::AnyValue;
use opentelemetry::trace::{SpanContext, SpanId, Status, TraceId};
use opentelemetry::{Array, Key, KeyValue, Value};
use prost::encoding::{encoded_len_varint, key_len};

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

/// Writes protobuf fields into a slot of exactly the computed size.
pub(crate) struct SlotWriter<'a> {
    buf: &'a mut [u8],
    /// Bytes the record has taken so far, including any that did not fit.
    pos: usize,
}

impl<'a> SlotWriter<'a> {
    #[inline]
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        SlotWriter { buf, pos: 0 }
    }

    /// Bytes the record took: those written, plus any that did not fit the
    /// slot. Equal to the slot's length exactly when the size was right.
    #[inline]
    pub(crate) fn written(&self) -> usize {
        self.pos
    }

    #[inline]
    fn byte(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.pos) {
            *slot = b;
        }
        self.pos = self.pos.saturating_add(1);
    }

    #[inline]
    pub(crate) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    #[inline]
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        let end = self.pos.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
        }
        self.pos = end;
    }

    #[inline]
    fn key(&mut self, field: u32, wire_type: u64) {
        self.varint(((field as u64) << 3) | wire_type);
    }

    /// A varint field (int64, uint32, bool, enum), always written.
    #[inline]
    pub(crate) fn varint_field(&mut self, field: u32, v: u64) {
        self.key(field, VARINT);
        self.varint(v);
    }

    /// A varint field, left out when zero (proto3 default).
    #[inline]
    pub(crate) fn varint_field_nz(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.varint_field(field, v);
        }
    }

    #[inline]
    pub(crate) fn fixed64_field(&mut self, field: u32, v: u64) {
        self.key(field, FIXED64);
        self.raw(&v.to_le_bytes());
    }

    #[inline]
    pub(crate) fn fixed32_field(&mut self, field: u32, v: u32) {
        self.key(field, FIXED32);
        self.raw(&v.to_le_bytes());
    }

    /// A bytes/string field, always written.
    #[inline]
    pub(crate) fn bytes_field(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, LEN);
        self.varint(bytes.len() as u64);
        self.raw(bytes);
    }

    /// A bytes/string field, left out when empty (proto3 default).
    #[inline]
    pub(crate) fn bytes_field_ne(&mut self, field: u32, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.bytes_field(field, bytes);
        }
    }

    /// The header of an embedded message of `len` bytes; its body follows.
    #[inline]
    pub(crate) fn message_header(&mut self, field: u32, len: usize) {
        self.key(field, LEN);
        self.varint(len as u64);
    }
}

/// Size of a varint field that is always written.
#[inline]
pub(crate) fn varint_field_len(field: u32, v: u64) -> usize {
    key_len(field) + encoded_len_varint(v)
}

/// Size of a varint field left out when zero.
#[inline]
pub(crate) fn varint_field_nz_len(field: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        varint_field_len(field, v)
    }
}

#[inline]
pub(crate) fn fixed64_field_len(field: u32) -> usize {
    key_len(field) + 8
}

#[inline]
pub(crate) fn fixed32_field_len(field: u32) -> usize {
    key_len(field) + 4
}

/// Size of a length-delimited field (bytes, string or message body of `len` bytes).
#[inline]
pub(crate) fn len_field_len(field: u32, len: usize) -> usize {
    key_len(field) + encoded_len_varint(len as u64) + len
}

#[inline]
pub(crate) fn bytes_field_ne_len(field: u32, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        len_field_len(field, len)
    }
}

/// Looks up the dictionary ref of an attribute key (or of an event name).
pub(crate) trait KeyRefs {
    /// The key's ref; 0 for the empty key, and for a key the dictionary could
    /// not store (counted in [`unresolved`](Self::unresolved)).
    fn key_ref(&mut self, key: &str) -> i64;

    /// Non-empty keys this resolver could not store so far. A record whose
    /// sizing raised it needs an entry the file does not have: its writer
    /// drops it (see `FileInner::drop_for_missing_entry`).
    fn unresolved(&self) -> u64;
}

/// An attribute value of either OpenTelemetry value type.
#[derive(Clone, Copy)]
pub(crate) enum Val<'a> {
    Attr(&'a Value),
    Any(&'a AnyValue),
}

// Field numbers, from `proto/mmap.proto`.
use otlp_mmap_core::tags::any_value::{
    ARRAY_VALUE as AV_ARRAY, BOOL_VALUE as AV_BOOL, BYTES_VALUE as AV_BYTES,
    DOUBLE_VALUE as AV_DOUBLE, INT_VALUE as AV_INT, KVLIST_VALUE as AV_KVLIST,
    STRING_VALUE as AV_STRING,
};
use otlp_mmap_core::tags::array_value::VALUES as ARRAY_VALUES;
use otlp_mmap_core::tags::key_value_list::VALUES as KVLIST_VALUES;
use otlp_mmap_core::tags::key_value_ref::{KEY_REF as KV_KEY_REF, VALUE as KV_VALUE};

/// Body length of the `AnyValue` message for `v`.
pub(crate) fn value_len(v: Val<'_>, keys: &mut dyn KeyRefs) -> usize {
    match v {
        Val::Attr(v) => attr_value_len(v),
        Val::Any(v) => any_value_len(v, keys),
    }
}

/// Writes the body of the `AnyValue` message for `v`.
pub(crate) fn put_value(w: &mut SlotWriter<'_>, v: Val<'_>, keys: &mut dyn KeyRefs) {
    match v {
        Val::Attr(v) => put_attr_value(w, v),
        Val::Any(v) => put_any_value(w, v, keys),
    }
}

fn attr_value_len(v: &Value) -> usize {
    match v {
        Value::Bool(b) => varint_field_len(AV_BOOL, *b as u64),
        Value::I64(i) => varint_field_len(AV_INT, *i as u64),
        Value::F64(_) => fixed64_field_len(AV_DOUBLE),
        Value::String(s) => len_field_len(AV_STRING, s.as_str().len()),
        Value::Array(a) => len_field_len(AV_ARRAY, array_len(a)),
        // `Value` is non-exhaustive: an unknown kind is written as an empty AnyValue.
        #[allow(unreachable_patterns)]
        _ => 0,
    }
}

fn array_len(a: &Array) -> usize {
    fn elems(n: usize, each: impl Fn(usize) -> usize) -> usize {
        (0..n).map(|i| len_field_len(ARRAY_VALUES, each(i))).sum()
    }
    match a {
        Array::Bool(v) => elems(v.len(), |i| varint_field_len(AV_BOOL, v[i] as u64)),
        Array::I64(v) => elems(v.len(), |i| varint_field_len(AV_INT, v[i] as u64)),
        Array::F64(v) => elems(v.len(), |_| fixed64_field_len(AV_DOUBLE)),
        Array::String(v) => elems(v.len(), |i| len_field_len(AV_STRING, v[i].as_str().len())),
        #[allow(unreachable_patterns)]
        _ => 0,
    }
}

fn put_attr_value(w: &mut SlotWriter<'_>, v: &Value) {
    match v {
        Value::Bool(b) => w.varint_field(AV_BOOL, *b as u64),
        Value::I64(i) => w.varint_field(AV_INT, *i as u64),
        Value::F64(f) => w.fixed64_field(AV_DOUBLE, f.to_bits()),
        Value::String(s) => w.bytes_field(AV_STRING, s.as_str().as_bytes()),
        Value::Array(a) => {
            w.message_header(AV_ARRAY, array_len(a));
            match a {
                Array::Bool(v) => v.iter().for_each(|b| {
                    w.message_header(ARRAY_VALUES, varint_field_len(AV_BOOL, *b as u64));
                    w.varint_field(AV_BOOL, *b as u64);
                }),
                Array::I64(v) => v.iter().for_each(|i| {
                    w.message_header(ARRAY_VALUES, varint_field_len(AV_INT, *i as u64));
                    w.varint_field(AV_INT, *i as u64);
                }),
                Array::F64(v) => v.iter().for_each(|f| {
                    w.message_header(ARRAY_VALUES, fixed64_field_len(AV_DOUBLE));
                    w.fixed64_field(AV_DOUBLE, f.to_bits());
                }),
                Array::String(v) => v.iter().for_each(|s| {
                    w.message_header(ARRAY_VALUES, len_field_len(AV_STRING, s.as_str().len()));
                    w.bytes_field(AV_STRING, s.as_str().as_bytes());
                }),
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

fn any_value_len(v: &AnyValue, keys: &mut dyn KeyRefs) -> usize {
    match v {
        AnyValue::Int(i) => varint_field_len(AV_INT, *i as u64),
        AnyValue::Double(_) => fixed64_field_len(AV_DOUBLE),
        AnyValue::String(s) => len_field_len(AV_STRING, s.as_str().len()),
        AnyValue::Boolean(b) => varint_field_len(AV_BOOL, *b as u64),
        AnyValue::Bytes(b) => len_field_len(AV_BYTES, b.len()),
        AnyValue::ListAny(items) => len_field_len(AV_ARRAY, list_len(items, keys)),
        AnyValue::Map(map) => len_field_len(AV_KVLIST, kvlist_len(map.iter(), keys)),
        #[allow(unreachable_patterns)]
        _ => 0,
    }
}

fn list_len(items: &[AnyValue], keys: &mut dyn KeyRefs) -> usize {
    items
        .iter()
        .map(|v| len_field_len(ARRAY_VALUES, any_value_len(v, keys)))
        .sum()
}

fn kvlist_len<'a>(
    entries: impl Iterator<Item = (&'a Key, &'a AnyValue)>,
    keys: &mut dyn KeyRefs,
) -> usize {
    entries
        .map(|(k, v)| {
            let r = keys.key_ref(k.as_str());
            len_field_len(KVLIST_VALUES, kv_len(r, Val::Any(v), keys))
        })
        .sum()
}

fn put_any_value(w: &mut SlotWriter<'_>, v: &AnyValue, keys: &mut dyn KeyRefs) {
    match v {
        AnyValue::Int(i) => w.varint_field(AV_INT, *i as u64),
        AnyValue::Double(f) => w.fixed64_field(AV_DOUBLE, f.to_bits()),
        AnyValue::String(s) => w.bytes_field(AV_STRING, s.as_str().as_bytes()),
        AnyValue::Boolean(b) => w.varint_field(AV_BOOL, *b as u64),
        AnyValue::Bytes(b) => w.bytes_field(AV_BYTES, b),
        AnyValue::ListAny(items) => {
            w.message_header(AV_ARRAY, list_len(items, keys));
            for item in items.iter() {
                w.message_header(ARRAY_VALUES, any_value_len(item, keys));
                put_any_value(w, item, keys);
            }
        }
        AnyValue::Map(map) => {
            w.message_header(AV_KVLIST, kvlist_len(map.iter(), keys));
            for (k, v) in map.iter() {
                let r = keys.key_ref(k.as_str());
                w.message_header(KVLIST_VALUES, kv_len(r, Val::Any(v), keys));
                put_kv(w, r, Val::Any(v), keys);
            }
        }
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

/// Body length of a `KeyValueRef`.
#[inline]
pub(crate) fn kv_len(key_ref: i64, v: Val<'_>, keys: &mut dyn KeyRefs) -> usize {
    varint_field_nz_len(KV_KEY_REF, key_ref as u64) + len_field_len(KV_VALUE, value_len(v, keys))
}

/// Writes the body of a `KeyValueRef`.
#[inline]
pub(crate) fn put_kv(w: &mut SlotWriter<'_>, key_ref: i64, v: Val<'_>, keys: &mut dyn KeyRefs) {
    w.varint_field_nz(KV_KEY_REF, key_ref as u64);
    w.message_header(KV_VALUE, value_len(v, keys));
    put_value(w, v, keys);
}

/// Key refs found while sizing a list of attributes, kept (up to a fixed
/// number, on the stack) so that writing it does not look them up again.
pub(crate) struct KeyMemo {
    refs: [i64; KeyMemo::CAP],
    len: usize,
}

impl KeyMemo {
    const CAP: usize = 32;

    #[inline]
    pub(crate) fn new() -> Self {
        KeyMemo {
            refs: [0; Self::CAP],
            len: 0,
        }
    }

    #[inline]
    fn resolve(&mut self, i: usize, key: &str, keys: &mut dyn KeyRefs) -> i64 {
        if i < self.len {
            return self.refs[i];
        }
        let r = keys.key_ref(key);
        if i == self.len && i < Self::CAP {
            self.refs[i] = r;
            self.len += 1;
        }
        r
    }
}

/// A list of attributes that can be walked more than once.
pub(crate) trait Attrs {
    fn for_each_attr(&self, f: &mut dyn FnMut(&str, Val<'_>));
}

impl Attrs for [KeyValue] {
    #[inline]
    fn for_each_attr(&self, f: &mut dyn FnMut(&str, Val<'_>)) {
        for kv in self {
            f(kv.key.as_str(), Val::Attr(&kv.value));
        }
    }
}

impl Attrs for [Option<KeyValue>] {
    #[inline]
    fn for_each_attr(&self, f: &mut dyn FnMut(&str, Val<'_>)) {
        for kv in self.iter().flatten() {
            f(kv.key.as_str(), Val::Attr(&kv.value));
        }
    }
}

impl Attrs for [(Key, AnyValue)] {
    #[inline]
    fn for_each_attr(&self, f: &mut dyn FnMut(&str, Val<'_>)) {
        for (k, v) in self {
            f(k.as_str(), Val::Any(v));
        }
    }
}

impl Attrs for [Option<(Key, AnyValue)>] {
    #[inline]
    fn for_each_attr(&self, f: &mut dyn FnMut(&str, Val<'_>)) {
        for (k, v) in self.iter().flatten() {
            f(k.as_str(), Val::Any(v));
        }
    }
}

/// Two attribute lists, one after the other.
impl<A: Attrs + ?Sized, B: Attrs + ?Sized> Attrs for (&A, &B) {
    #[inline]
    fn for_each_attr(&self, f: &mut dyn FnMut(&str, Val<'_>)) {
        self.0.for_each_attr(f);
        self.1.for_each_attr(f);
    }
}

/// Size of a repeated `KeyValueRef` field.
#[inline]
pub(crate) fn attrs_len(
    field: u32,
    attrs: &(impl Attrs + ?Sized),
    keys: &mut dyn KeyRefs,
    memo: &mut KeyMemo,
) -> usize {
    let mut total = 0;
    let mut i = 0;
    attrs.for_each_attr(&mut |k, v| {
        let r = memo.resolve(i, k, keys);
        total += len_field_len(field, kv_len(r, v, keys));
        i += 1;
    });
    total
}

/// Writes a repeated `KeyValueRef` field (sized before with [`attrs_len`]).
#[inline]
pub(crate) fn put_attrs(
    w: &mut SlotWriter<'_>,
    field: u32,
    attrs: &(impl Attrs + ?Sized),
    keys: &mut dyn KeyRefs,
    memo: &mut KeyMemo,
) {
    let mut i = 0;
    attrs.for_each_attr(&mut |k, v| {
        let r = memo.resolve(i, k, keys);
        w.message_header(field, kv_len(r, v, keys));
        put_kv(w, r, v, keys);
        i += 1;
    });
}

use otlp_mmap_core::tags::span_context::{
    FLAGS as SC_FLAGS, SPAN_ID as SC_SPAN_ID, TRACE_ID as SC_TRACE_ID,
};

/// The ids of a span, copied out of a `SpanContext` (so it can be encoded
/// without holding on to it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SpanIds {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u32,
}

impl SpanIds {
    #[inline]
    pub(crate) fn of(sc: &SpanContext) -> Option<Self> {
        sc.is_valid().then(|| SpanIds {
            trace_id: sc.trace_id().to_bytes(),
            span_id: sc.span_id().to_bytes(),
            flags: sc.trace_flags().to_u8() as u32,
        })
    }

    #[inline]
    pub(crate) fn from_parts(trace_id: TraceId, span_id: SpanId, flags: u8) -> Option<Self> {
        (trace_id != TraceId::INVALID && span_id != SpanId::INVALID).then(|| SpanIds {
            trace_id: trace_id.to_bytes(),
            span_id: span_id.to_bytes(),
            flags: flags as u32,
        })
    }
}

/// Body length of a `SpanContext` message.
#[inline]
pub(crate) fn span_context_len(ids: &SpanIds) -> usize {
    len_field_len(SC_SPAN_ID, 8)
        + len_field_len(SC_TRACE_ID, 16)
        + if ids.flags != 0 {
            fixed32_field_len(SC_FLAGS)
        } else {
            0
        }
}

/// Writes the body of a `SpanContext` message.
#[inline]
pub(crate) fn put_span_context(w: &mut SlotWriter<'_>, ids: &SpanIds) {
    w.bytes_field(SC_SPAN_ID, &ids.span_id);
    w.bytes_field(SC_TRACE_ID, &ids.trace_id);
    if ids.flags != 0 {
        w.fixed32_field(SC_FLAGS, ids.flags);
    }
}

use otlp_mmap_core::tags::status::{CODE as STATUS_CODE, MESSAGE as STATUS_MESSAGE};

/// `(code, message)` of a status.
#[inline]
pub(crate) fn status_parts(status: &Status) -> (u64, &str) {
    match status {
        Status::Unset => (0, ""),
        Status::Ok => (1, ""),
        Status::Error { description } => (2, description.as_ref()),
    }
}

/// Body length of a `Status` message.
#[inline]
pub(crate) fn status_len(status: &Status) -> usize {
    let (code, message) = status_parts(status);
    bytes_field_ne_len(STATUS_MESSAGE, message.len()) + varint_field_nz_len(STATUS_CODE, code)
}

/// Writes the body of a `Status` message.
#[inline]
pub(crate) fn put_status(w: &mut SlotWriter<'_>, status: &Status) {
    let (code, message) = status_parts(status);
    w.bytes_field_ne(STATUS_MESSAGE, message.as_bytes());
    w.varint_field_nz(STATUS_CODE, code);
}
