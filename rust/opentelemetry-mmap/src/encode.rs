//! The borrowed protobuf encoder: records are written field by field, in one
//! pass, from the application's own data (`&str`, `&KeyValue`, `&AnyValue`).
//! No prost struct, `String` or `Vec` is built on the way.
//!
//! **One pass, lengths filled in afterwards.** An embedded message is written
//! as its key, one byte reserved for its length, then its body; when the body
//! is done ([`ProtoWriter::end`]) its length goes into the reserved byte. A
//! body of 128 bytes or more needs a longer varint: the body is moved up by
//! the extra bytes first (rare: only long strings, arrays or maps take that
//! many). The result is exactly prost's encoding (minimal varints; the tests
//! decode every record with prost and compare).
//!
//! **Known lengths written at once.** What is known before its body is not
//! written through that path: a key-value whose value is a bool, a number or
//! a short string, and a scalar log body, are built as one block on the stack,
//! every length counted first ([`put_kv`], [`put_value_field`]); the refs a
//! writer repeats in every record (its scope's, its metric's, and attribute
//! keys) are encoded once ([`EncodedKey`]).
//!
//! A record is encoded into a scratch buffer of the writing thread and then
//! copied into a ring slot claimed for its exact size (see
//! [`crate::key_cache::Keys::write`]); a record larger than the scratch is
//! encoded once more, straight into its slot. (A span's end, whose size is
//! counted from its fields, is encoded straight into its slot.) The writer ([`ProtoWriter`])
//! never panics: it writes nothing past the end of its buffer and counts every
//! byte the record takes ([`ProtoWriter::written`]), so that the size is known
//! even when the buffer was too small, and so that if an encoding into a slot
//! ever took another size than announced the ring publishes the slot as a
//! record the reader rejects, and counts it, rather than leaving a claimed
//! slot unpublished or stale bytes in it.

use opentelemetry::logs::AnyValue;
use opentelemetry::trace::{SpanContext, SpanId, Status, TraceId};
use opentelemetry::{Array, Key, KeyValue, Value};
use prost::encoding::encoded_len_varint;

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

/// Writes protobuf fields into a buffer, in one pass.
pub(crate) struct ProtoWriter<'a> {
    buf: &'a mut [u8],
    /// Bytes the record has taken so far, including any that did not fit.
    pos: usize,
}

/// Where the body of an embedded message begins (from [`ProtoWriter::begin`]).
#[derive(Clone, Copy)]
pub(crate) struct Mark(usize);

impl<'a> ProtoWriter<'a> {
    #[inline]
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        ProtoWriter { buf, pos: 0 }
    }

    /// Bytes the record took: those written, plus any that did not fit the
    /// buffer.
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
    pub(crate) fn varint(&mut self, v: u64) {
        if v < 0x80 {
            self.byte(v as u8);
        } else {
            let (bytes, len) = varint_bytes(0, v);
            self.short(&bytes, len);
        }
    }

    /// The first `len` (at most `N`) bytes of `bytes`. Where the buffer has
    /// room for all `N`, they are copied as one block (whatever follows the
    /// first `len` is overwritten by the next field); otherwise only `len`.
    #[inline]
    pub(crate) fn short<const N: usize>(&mut self, bytes: &[u8; N], len: usize) {
        let len = len.min(N);
        if let Some(dst) = self
            .buf
            .get_mut(self.pos..)
            .and_then(|s| s.first_chunk_mut::<N>())
        {
            *dst = *bytes;
            self.pos += len;
        } else {
            self.raw(&bytes[..len]);
        }
    }

    /// A field encoded beforehand.
    #[inline]
    pub(crate) fn encoded(&mut self, field: &EncodedKey) {
        self.short(&field.bytes, field.len as usize);
    }

    #[inline]
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        let end = self.pos.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
        }
        self.pos = end;
    }

    /// A field key (one byte for the field numbers below 16, most of the
    /// format's).
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

    /// Starts an embedded message: its key and one byte reserved for its
    /// length. Its body follows; [`end`](Self::end) fills in the length.
    #[inline]
    pub(crate) fn begin(&mut self, field: u32) -> Mark {
        self.key(field, LEN);
        self.pos = self.pos.saturating_add(1);
        Mark(self.pos)
    }

    /// Ends the embedded message begun at `mark`: writes its length.
    #[inline]
    pub(crate) fn end(&mut self, mark: Mark) {
        let len = self.pos - mark.0;
        if len < 0x80 {
            if let Some(b) = self.buf.get_mut(mark.0 - 1) {
                *b = len as u8;
            }
        } else {
            self.widen(mark, len);
        }
    }

    /// The length of the body at `mark` takes more than the one byte
    /// reserved: moves the body (as much of it as is in the buffer) up by the
    /// extra bytes, then writes the length in front of it.
    #[cold]
    fn widen(&mut self, mark: Mark, len: usize) {
        let extra = encoded_len_varint(len as u64) - 1;
        let body_end = self.pos.min(self.buf.len());
        let room = self.buf.len().saturating_sub(mark.0 + extra);
        let n = body_end.saturating_sub(mark.0).min(room);
        if n > 0 {
            self.buf.copy_within(mark.0..mark.0 + n, mark.0 + extra);
        }
        let end = self.pos + extra;
        // Byte by byte: a block write would overwrite the body just moved.
        self.pos = mark.0 - 1;
        let mut v = len as u64;
        while v >= 0x80 {
            self.byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
        self.pos = end;
    }
}

/// `prefix` (up to 5 bytes) then `v` as a varint, in a block for
/// [`ProtoWriter::short`]; and how many bytes of it count.
#[inline]
fn varint_bytes(prefix: usize, mut v: u64) -> ([u8; 16], usize) {
    let mut bytes = [0; 16];
    let mut n = prefix;
    while v >= 0x80 && n < 15 {
        bytes[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    bytes[n] = v as u8;
    (bytes, n + 1)
}

/// The `key_ref` field of a `KeyValueRef`, encoded once per key and thread:
/// its key and the ref as a varint (nothing for ref 0, the proto3 default).
#[derive(Clone, Copy, Debug)]
pub(crate) struct EncodedKey {
    bytes: [u8; 16],
    len: u8,
}

impl EncodedKey {
    #[inline]
    pub(crate) fn new(key_ref: i64) -> Self {
        Self::varint_field(KV_KEY_REF, key_ref as u64)
    }

    /// Any varint field, encoded once: its key (at most 5 bytes) and value
    /// (at most 10); nothing for 0 (the proto3 default). For the refs a
    /// writer repeats in every record (its scope's, its metric's).
    pub(crate) fn varint_field(field: u32, v: u64) -> Self {
        if v == 0 {
            return EncodedKey {
                bytes: [0; 16],
                len: 0,
            };
        }
        let (key, key_len) = varint_bytes(0, ((field as u64) << 3) | VARINT);
        let (mut bytes, len) = varint_bytes(key_len, v);
        bytes[..key_len].copy_from_slice(&key[..key_len]);
        EncodedKey {
            bytes,
            len: len as u8,
        }
    }

    /// Bytes of the encoded field.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }
}

/// Looks up the dictionary ref of an attribute key (or of an event name).
pub(crate) trait KeyRefs {
    /// The key's ref; 0 for the empty key, and for a key the dictionary could
    /// not store (counted in [`unresolved`](Self::unresolved)).
    fn key_ref(&mut self, key: &str) -> i64;

    /// The key's `key_ref` field, encoded (see [`key_ref`](Self::key_ref)).
    #[inline]
    fn encoded_key(&mut self, key: &str) -> EncodedKey {
        EncodedKey::new(self.key_ref(key))
    }

    /// Non-empty keys this resolver could not store so far. A record whose
    /// encoding raised it needs an entry the file does not have: its writer
    /// drops it (see `FileInner::drop_for_missing_entry`).
    fn unresolved(&self) -> u64;
}

/// For records without keys: resolves none.
pub(crate) struct NoKeys;

impl KeyRefs for NoKeys {
    fn key_ref(&mut self, _key: &str) -> i64 {
        0
    }

    fn unresolved(&self) -> u64 {
        0
    }
}

/// An attribute value of either OpenTelemetry value type, or a scalar
/// given as such (a `tracing` field).
#[derive(Clone, Copy)]
pub(crate) enum Val<'a> {
    Attr(&'a Value),
    Any(&'a AnyValue),
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    /// By reference, so that `Val` stays two words.
    Scalar(&'a Scalar<'a>),
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

/// Writes the body of the `AnyValue` message for `v`.
#[inline]
pub(crate) fn put_value<K: KeyRefs + ?Sized>(w: &mut ProtoWriter<'_>, v: Val<'_>, keys: &mut K) {
    match v {
        Val::Attr(v) => put_attr_value(w, v),
        Val::Any(v) => put_any_value(w, v, keys, 0),
        Val::Scalar(v) => put_scalar_value(w, *v),
    }
}

#[inline]
fn put_scalar_value(w: &mut ProtoWriter<'_>, v: Scalar<'_>) {
    match v {
        Scalar::Bool(b) => w.varint_field(AV_BOOL, b as u64),
        Scalar::Int(i) => w.varint_field(AV_INT, i as u64),
        Scalar::Double(f) => w.fixed64_field(AV_DOUBLE, f.to_bits()),
        Scalar::Bytes(tag, bytes) => w.bytes_field(tag, bytes),
    }
}

/// Levels of arrays and maps inside an `AnyValue` that are written; values
/// nested deeper are written empty. The encoder recurses once per level, so
/// this bounds its stack whatever the application hands it (a value nested
/// thousands deep overflowed the stack of the emitting thread, an abort of
/// the application). The collector reads 16 levels; the Python binding
/// writes 32, as here.
pub(crate) const MAX_VALUE_DEPTH: u32 = 32;

#[inline]
fn put_attr_value(w: &mut ProtoWriter<'_>, v: &Value) {
    match v {
        Value::Bool(b) => w.varint_field(AV_BOOL, *b as u64),
        Value::I64(i) => w.varint_field(AV_INT, *i as u64),
        Value::F64(f) => w.fixed64_field(AV_DOUBLE, f.to_bits()),
        Value::String(s) => w.bytes_field(AV_STRING, s.as_str().as_bytes()),
        Value::Array(a) => put_array(w, a),
        // `Value` is non-exhaustive: an unknown kind is written as an empty AnyValue.
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

fn put_array(w: &mut ProtoWriter<'_>, a: &Array) {
    let array = w.begin(AV_ARRAY);
    let mut each = |put: &mut dyn FnMut(&mut ProtoWriter<'_>)| {
        let item = w.begin(ARRAY_VALUES);
        put(w);
        w.end(item);
    };
    match a {
        Array::Bool(v) => v
            .iter()
            .for_each(|b| each(&mut |w| w.varint_field(AV_BOOL, *b as u64))),
        Array::I64(v) => v
            .iter()
            .for_each(|i| each(&mut |w| w.varint_field(AV_INT, *i as u64))),
        Array::F64(v) => v
            .iter()
            .for_each(|f| each(&mut |w| w.fixed64_field(AV_DOUBLE, f.to_bits()))),
        Array::String(v) => v
            .iter()
            .for_each(|s| each(&mut |w| w.bytes_field(AV_STRING, s.as_str().as_bytes()))),
        #[allow(unreachable_patterns)]
        _ => {}
    }
    w.end(array);
}

/// Writes `v`, which is `depth` arrays or maps deep in the value written.
fn put_any_value<K: KeyRefs + ?Sized>(
    w: &mut ProtoWriter<'_>,
    v: &AnyValue,
    keys: &mut K,
    depth: u32,
) {
    if depth > MAX_VALUE_DEPTH {
        return;
    }
    match v {
        AnyValue::Int(i) => w.varint_field(AV_INT, *i as u64),
        AnyValue::Double(f) => w.fixed64_field(AV_DOUBLE, f.to_bits()),
        AnyValue::String(s) => w.bytes_field(AV_STRING, s.as_str().as_bytes()),
        AnyValue::Boolean(b) => w.varint_field(AV_BOOL, *b as u64),
        AnyValue::Bytes(b) => w.bytes_field(AV_BYTES, b),
        AnyValue::ListAny(items) => {
            let list = w.begin(AV_ARRAY);
            for item in items.iter() {
                let m = w.begin(ARRAY_VALUES);
                put_any_value(w, item, keys, depth + 1);
                w.end(m);
            }
            w.end(list);
        }
        AnyValue::Map(map) => {
            let list = w.begin(AV_KVLIST);
            for (k, v) in map.iter() {
                let key_ref = keys.encoded_key(k.as_str());
                let kv = w.begin(KVLIST_VALUES);
                w.short(&key_ref.bytes, key_ref.len as usize);
                let value = w.begin(KV_VALUE);
                put_any_value(w, v, keys, depth + 1);
                w.end(value);
                w.end(kv);
            }
            w.end(list);
        }
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

/// A value whose `AnyValue` body is one field: a bool, an integer, a double,
/// or a string or bytes (with its wire key).
#[derive(Clone, Copy)]
pub(crate) enum Scalar<'a> {
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(u32, &'a [u8]),
}

#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
impl<'a> Scalar<'a> {
    /// A string value.
    #[inline]
    pub(crate) fn string(s: &'a str) -> Self {
        Scalar::Bytes(AV_STRING, s.as_bytes())
    }

    /// A bytes value.
    #[inline]
    pub(crate) fn bytes(b: &'a [u8]) -> Self {
        Scalar::Bytes(AV_BYTES, b)
    }

    #[inline]
    fn of(v: Val<'a>) -> Option<Self> {
        Some(match v {
            Val::Scalar(s) => *s,
            Val::Attr(Value::Bool(b)) => Scalar::Bool(*b),
            Val::Attr(Value::I64(i)) => Scalar::Int(*i),
            Val::Attr(Value::F64(f)) => Scalar::Double(*f),
            Val::Attr(Value::String(s)) => Scalar::Bytes(AV_STRING, s.as_str().as_bytes()),
            Val::Any(AnyValue::Boolean(b)) => Scalar::Bool(*b),
            Val::Any(AnyValue::Int(i)) => Scalar::Int(*i),
            Val::Any(AnyValue::Double(f)) => Scalar::Double(*f),
            Val::Any(AnyValue::String(s)) => Scalar::Bytes(AV_STRING, s.as_str().as_bytes()),
            Val::Any(AnyValue::Bytes(b)) => Scalar::Bytes(AV_BYTES, b),
            _ => return None,
        })
    }
}

/// Longest string or bytes value [`put_scalar_kv`] writes: with its key (at
/// most 16 bytes) and the other bytes of the key-value, its length still
/// takes one byte.
const SHORT_SCALAR: usize = 96;

/// Bytes of the block [`put_scalar_kv`] builds a key-value's head in: the
/// field's key and length (2), the `key_ref` field (at most 16), the value's
/// key and length (2), the `AnyValue` field's key (1) and value (a varint of
/// at most 10 bytes, a double's 8, or a string's length, 1 byte).
const SCALAR_HEAD: usize = 32;

/// Writes the `AnyValue` field of a scalar into `head` from `at` on: its
/// key, its body's length, and its body (all of it but a string's bytes,
/// which are returned). Returns where the head ends, the `AnyValue`'s body
/// length, and the string's bytes; `None` for a string too long for a
/// one-byte length. `head` has room from `at` to `at + 12` for any scalar.
#[inline(always)]
fn scalar_head<'a>(
    head: &mut [u8; SCALAR_HEAD],
    at: usize,
    v: Scalar<'a>,
) -> Option<(usize, usize, &'a [u8])> {
    let mut tail: &[u8] = &[];
    let p = match v {
        Scalar::Bool(b) => {
            head[at] = ((AV_BOOL as u8) << 3) | VARINT as u8;
            head[at + 1] = b as u8;
            at + 2
        }
        Scalar::Int(i) => {
            head[at] = ((AV_INT as u8) << 3) | VARINT as u8;
            let mut v = i as u64;
            let mut p = at + 1;
            while v >= 0x80 {
                head[p] = (v as u8) | 0x80;
                v >>= 7;
                p += 1;
            }
            head[p] = v as u8;
            p + 1
        }
        Scalar::Double(f) => {
            head[at] = ((AV_DOUBLE as u8) << 3) | FIXED64 as u8;
            head[at + 1..at + 9].copy_from_slice(&f.to_bits().to_le_bytes());
            at + 9
        }
        Scalar::Bytes(tag, bytes) => {
            if bytes.len() > SHORT_SCALAR {
                return None;
            }
            head[at] = ((tag as u8) << 3) | LEN as u8;
            head[at + 1] = bytes.len() as u8;
            tail = bytes;
            at + 2
        }
    };
    Some((p, p - at + tail.len(), tail))
}

/// Writes one `KeyValueRef` whose value is a scalar in one pass, every length
/// known before its body: its head (keys, lengths, the number) built in one
/// block on the stack and copied at once, then a string's bytes. `false`
/// (nothing written) for a string too long for one-byte lengths, or a field
/// number of 16 or more.
#[inline(always)]
fn put_scalar_kv(w: &mut ProtoWriter<'_>, field: u32, key: &EncodedKey, v: Scalar<'_>) -> bool {
    if field >= 16 {
        // A key of more than one byte (no attribute field of the format has one).
        return false;
    }
    let mut head = [0u8; SCALAR_HEAD];
    let k = (key.len as usize).min(16);
    head[0] = ((field as u8) << 3) | LEN as u8;
    // head[1]: the key-value's length, known at the end.
    head[2..18].copy_from_slice(&key.bytes);
    head[2 + k] = ((KV_VALUE as u8) << 3) | LEN as u8;
    // head[3 + k]: the AnyValue's length.
    let Some((p, body, tail)) = scalar_head(&mut head, 4 + k, v) else {
        return false;
    };
    head[3 + k] = body as u8;
    head[1] = (p - 2 + tail.len()) as u8;
    w.short(&head, p);
    if !tail.is_empty() {
        w.raw(tail);
    }
    true
}

/// Writes `v` as the `AnyValue` message of field `field` (below 16): in one
/// pass, as [`put_scalar_kv`], when it is a scalar; otherwise its length is
/// filled in afterwards.
#[inline]
pub(crate) fn put_value_field<K: KeyRefs + ?Sized>(
    w: &mut ProtoWriter<'_>,
    field: u32,
    v: Val<'_>,
    keys: &mut K,
) {
    if field < 16
        && let Some(scalar) = Scalar::of(v)
    {
        let mut head = [0u8; SCALAR_HEAD];
        head[0] = ((field as u8) << 3) | LEN as u8;
        if let Some((p, body, tail)) = scalar_head(&mut head, 2, scalar) {
            head[1] = body as u8;
            w.short(&head, p);
            if !tail.is_empty() {
                w.raw(tail);
            }
            return;
        }
    }
    let m = w.begin(field);
    put_value(w, v, keys);
    w.end(m);
}

/// Writes one `KeyValueRef` as field `field`.
#[inline(always)]
pub(crate) fn put_kv<K: KeyRefs + ?Sized>(
    w: &mut ProtoWriter<'_>,
    field: u32,
    key: &str,
    v: Val<'_>,
    keys: &mut K,
) {
    let key_ref = keys.encoded_key(key);
    if let Some(scalar) = Scalar::of(v)
        && put_scalar_kv(w, field, &key_ref, scalar)
    {
        return;
    }
    put_nested_kv(w, field, &key_ref, v, keys);
}

/// Writes one `KeyValueRef` whose value is not a scalar (or a long string):
/// lengths filled in afterwards. Kept out of line: it recurses through
/// arrays and maps.
#[inline(never)]
fn put_nested_kv<K: KeyRefs + ?Sized>(
    w: &mut ProtoWriter<'_>,
    field: u32,
    key_ref: &EncodedKey,
    v: Val<'_>,
    keys: &mut K,
) {
    let kv = w.begin(field);
    w.short(&key_ref.bytes, key_ref.len as usize);
    let value = w.begin(KV_VALUE);
    put_value(w, v, keys);
    w.end(value);
    w.end(kv);
}

/// A list of attributes that can be walked more than once.
pub(crate) trait Attrs {
    fn for_each_attr(&self, f: &mut impl FnMut(&str, Val<'_>));

    /// Writes each attribute as a `KeyValueRef` field `field`. The lists of
    /// this crate write them in their own loop, so that [`put_kv`] is inlined
    /// into it (through [`for_each_attr`](Self::for_each_attr) it is a call
    /// per attribute).
    #[inline]
    fn put_each<K: KeyRefs + ?Sized>(&self, w: &mut ProtoWriter<'_>, field: u32, keys: &mut K) {
        self.for_each_attr(&mut |k, v| put_kv(w, field, k, v, keys));
    }
}

/// An attribute list that can also be written one attribute at a time:
/// what a span record too large for its slot is split into
/// ([`write_start_or_split`](crate::span_events::write_start_or_split)).
pub(crate) trait SplitAttrs: Attrs {
    /// How many attributes it writes.
    fn count(&self) -> usize;

    /// Its attribute of index `i` (of [`count`](Self::count)) alone.
    fn only(&self, i: usize) -> impl Attrs + '_;
}

impl<A: Attrs + ?Sized> Attrs for &A {
    #[inline]
    fn for_each_attr(&self, f: &mut impl FnMut(&str, Val<'_>)) {
        (**self).for_each_attr(f)
    }

    #[inline]
    fn put_each<K: KeyRefs + ?Sized>(&self, w: &mut ProtoWriter<'_>, field: u32, keys: &mut K) {
        (**self).put_each(w, field, keys)
    }
}

impl SplitAttrs for [KeyValue] {
    fn count(&self) -> usize {
        self.len()
    }

    fn only(&self, i: usize) -> impl Attrs + '_ {
        self.get(i..=i).unwrap_or_default()
    }
}

impl SplitAttrs for [Option<KeyValue>] {
    fn count(&self) -> usize {
        self.iter().flatten().count()
    }

    /// The `i`th attribute that is there (the `None`s are skipped).
    fn only(&self, i: usize) -> impl Attrs + '_ {
        let at = self
            .iter()
            .enumerate()
            .filter(|(_, kv)| kv.is_some())
            .nth(i)
            .map(|(at, _)| at);
        at.and_then(|at| self.get(at..=at)).unwrap_or_default()
    }
}

impl Attrs for [KeyValue] {
    #[inline]
    fn for_each_attr(&self, f: &mut impl FnMut(&str, Val<'_>)) {
        for kv in self {
            f(kv.key.as_str(), Val::Attr(&kv.value));
        }
    }

    #[inline]
    fn put_each<K: KeyRefs + ?Sized>(&self, w: &mut ProtoWriter<'_>, field: u32, keys: &mut K) {
        for kv in self {
            put_kv(w, field, kv.key.as_str(), Val::Attr(&kv.value), keys);
        }
    }
}

impl Attrs for [Option<KeyValue>] {
    #[inline]
    fn for_each_attr(&self, f: &mut impl FnMut(&str, Val<'_>)) {
        for kv in self.iter().flatten() {
            f(kv.key.as_str(), Val::Attr(&kv.value));
        }
    }

    #[inline]
    fn put_each<K: KeyRefs + ?Sized>(&self, w: &mut ProtoWriter<'_>, field: u32, keys: &mut K) {
        for kv in self.iter().flatten() {
            put_kv(w, field, kv.key.as_str(), Val::Attr(&kv.value), keys);
        }
    }
}

impl Attrs for [(Key, AnyValue)] {
    #[inline]
    fn for_each_attr(&self, f: &mut impl FnMut(&str, Val<'_>)) {
        for (k, v) in self {
            f(k.as_str(), Val::Any(v));
        }
    }

    #[inline]
    fn put_each<K: KeyRefs + ?Sized>(&self, w: &mut ProtoWriter<'_>, field: u32, keys: &mut K) {
        for (k, v) in self {
            put_kv(w, field, k.as_str(), Val::Any(v), keys);
        }
    }
}

/// Writes a repeated `KeyValueRef` field.
#[inline]
pub(crate) fn put_attrs<K: KeyRefs + ?Sized>(
    w: &mut ProtoWriter<'_>,
    field: u32,
    attrs: &(impl Attrs + ?Sized),
    keys: &mut K,
) {
    attrs.put_each(w, field, keys);
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

/// Writes a `SpanContext` message as field `field`.
#[inline]
pub(crate) fn put_span_context(w: &mut ProtoWriter<'_>, field: u32, ids: &SpanIds) {
    let m = w.begin(field);
    w.bytes_field(SC_SPAN_ID, &ids.span_id);
    w.bytes_field(SC_TRACE_ID, &ids.trace_id);
    if ids.flags != 0 {
        w.fixed32_field(SC_FLAGS, ids.flags);
    }
    w.end(m);
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

/// Writes a `Status` message of `code` and `message` as field `field`.
#[inline]
pub(crate) fn put_status_parts(w: &mut ProtoWriter<'_>, field: u32, code: u64, message: &str) {
    let m = w.begin(field);
    w.bytes_field_ne(STATUS_MESSAGE, message.as_bytes());
    w.varint_field_nz(STATUS_CODE, code);
    w.end(m);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes `body` as field 1 of a message, with `w.begin`/`w.end`.
    fn nested(body: &[u8], buf_len: usize) -> (Vec<u8>, usize) {
        let mut buf = vec![0u8; buf_len];
        let mut w = ProtoWriter::new(&mut buf);
        w.varint_field(2, 7);
        let m = w.begin(1);
        w.raw(body);
        w.end(m);
        w.varint_field(3, 9);
        let n = w.written();
        buf.truncate(n.min(buf_len));
        (buf, n)
    }

    fn expected(body: &[u8]) -> Vec<u8> {
        let mut v = vec![0x10, 7, 0x0a];
        prost::encoding::encode_varint(body.len() as u64, &mut v);
        v.extend_from_slice(body);
        v.extend_from_slice(&[0x18, 9]);
        v
    }

    #[test]
    fn lengths_are_filled_in_as_minimal_varints() {
        for len in [0, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let want = expected(&body);
            let (got, n) = nested(&body, want.len());
            assert_eq!(n, want.len(), "body of {len} bytes");
            assert_eq!(got, want, "body of {len} bytes");
        }
    }

    #[test]
    fn a_buffer_too_small_still_gives_the_exact_size_and_stays_in_bounds() {
        for len in [10, 127, 128, 300, 20_000] {
            let body = vec![0xAB; len];
            let want = expected(&body);
            for room in [0, 1, 3, 5, len / 2, want.len() - 1] {
                let (got, n) = nested(&body, room);
                assert_eq!(n, want.len(), "body of {len} bytes into {room}");
                assert!(got.len() <= room);
            }
        }
    }

    /// `put_kv` as it was before its scalar path: the value's length
    /// filled in afterwards.
    fn generic_kv(w: &mut ProtoWriter<'_>, field: u32, key: &EncodedKey, v: Val<'_>) {
        let kv = w.begin(field);
        w.short(&key.bytes, key.len as usize);
        let value = w.begin(KV_VALUE);
        put_value(w, v, &mut NoKeys);
        w.end(value);
        w.end(kv);
    }

    #[test]
    fn scalar_key_values_are_written_as_the_generic_path_writes_them() {
        let strings: Vec<String> = [0, 1, 3, 50, 95, 96, 97, 120, 130, 300]
            .iter()
            .map(|n| "s".repeat(*n))
            .collect();
        let mut values: Vec<Value> = vec![
            Value::Bool(false),
            Value::Bool(true),
            Value::F64(0.0),
            Value::F64(-1.5e300),
        ];
        for i in [0, 1, 127, 128, 300, -1, i64::MIN, i64::MAX] {
            values.push(Value::I64(i));
        }
        values.extend(strings.iter().map(|s| Value::from(s.clone())));
        let mut any: Vec<AnyValue> = vec![
            AnyValue::Boolean(true),
            AnyValue::Int(-7),
            AnyValue::Double(2.5),
        ];
        any.extend(strings.iter().map(|s| AnyValue::from(s.clone())));
        any.extend(
            strings
                .iter()
                .map(|s| AnyValue::Bytes(Box::new(s.clone().into_bytes()))),
        );
        let vals: Vec<Val<'_>> = values
            .iter()
            .map(Val::Attr)
            .chain(any.iter().map(Val::Any))
            .collect();
        for key_ref in [0, 1, 127, 128, 1 << 40, i64::MAX] {
            let key = EncodedKey::new(key_ref);
            for field in [1, 2, 15] {
                for v in &vals {
                    let mut want = vec![0u8; 512];
                    let mut w = ProtoWriter::new(&mut want);
                    generic_kv(&mut w, field, &key, *v);
                    let n = w.written();
                    want.truncate(n);
                    let mut got = vec![0u8; 512];
                    let mut w = ProtoWriter::new(&mut got);
                    if let Some(scalar) = Scalar::of(*v)
                        && put_scalar_kv(&mut w, field, &key, scalar)
                    {
                        let m = w.written();
                        got.truncate(m);
                        assert_eq!(got, want, "key_ref {key_ref}, field {field}");
                        // The same value as a field of its own.
                        let mut want = vec![0u8; 512];
                        let mut w = ProtoWriter::new(&mut want);
                        let m = w.begin(field);
                        put_value(&mut w, *v, &mut NoKeys);
                        w.end(m);
                        let n = w.written();
                        want.truncate(n);
                        let mut got = vec![0u8; 512];
                        let mut w = ProtoWriter::new(&mut got);
                        put_value_field(&mut w, field, *v, &mut NoKeys);
                        let m = w.written();
                        got.truncate(m);
                        assert_eq!(got, want, "value of field {field}");
                    } else {
                        // Only strings and bytes too long for the one pass.
                        assert!(
                            matches!(Scalar::of(*v), Some(Scalar::Bytes(_, b)) if b.len() > SHORT_SCALAR),
                            "key_ref {key_ref}, field {field}: {n} bytes"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn varint_fields_encoded_beforehand_are_those_written_in_place() {
        for field in [1, 15, 16, 20, 2047, 2048, (1 << 29) - 1] {
            for v in [0, 1, 127, 128, 1 << 35, u64::MAX] {
                let mut want = [0u8; 32];
                let mut w = ProtoWriter::new(&mut want);
                w.varint_field_nz(field, v);
                let n = w.written();
                let mut got = [0u8; 32];
                let mut w = ProtoWriter::new(&mut got);
                w.encoded(&EncodedKey::varint_field(field, v));
                assert_eq!(w.written(), n, "field {field}, {v}");
                assert_eq!(got[..n], want[..n], "field {field}, {v}");
            }
        }
    }

    #[test]
    fn nested_bodies_longer_than_127_bytes_are_moved_up_at_each_level() {
        let mut buf = vec![0u8; 1024];
        let mut w = ProtoWriter::new(&mut buf);
        let outer = w.begin(1);
        let inner = w.begin(2);
        w.bytes_field(3, &[0x55; 200]);
        w.end(inner);
        w.end(outer);
        let n = w.written();
        let mut want = Vec::new();
        let field3 = {
            let mut v = vec![0x1a];
            prost::encoding::encode_varint(200, &mut v);
            v.extend_from_slice(&[0x55; 200]);
            v
        };
        let field2 = {
            let mut v = vec![0x12];
            prost::encoding::encode_varint(field3.len() as u64, &mut v);
            v.extend_from_slice(&field3);
            v
        };
        want.push(0x0a);
        prost::encoding::encode_varint(field2.len() as u64, &mut want);
        want.extend_from_slice(&field2);
        assert_eq!(&buf[..n], &want[..]);
    }
}
