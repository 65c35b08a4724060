//! Protobuf writing for the encoded OTLP path: fields appended to a reused
//! buffer in the order prost writes them (by field number), so that what the reader exports is
//! byte for byte what encoding the opentelemetry-proto structs would give.
//!
//! Scalars and strings follow proto3: a field holding its default value is
//! left out (the `_always` forms are for oneof members and message fields,
//! which are written whatever they hold). A nested message is opened with
//! [`begin`] and closed with [`end`], which back-fills its length.

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

/// `bytes` as a string, invalid UTF-8 replaced; valid UTF-8 (checked with
/// the fast validator) is borrowed.
pub fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// [`lossy`] as bytes, for writing: ASCII is taken as it is.
pub fn lossy_bytes(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if bytes.is_ascii() {
        return std::borrow::Cow::Borrowed(bytes);
    }
    match lossy(bytes) {
        std::borrow::Cow::Borrowed(s) => std::borrow::Cow::Borrowed(s.as_bytes()),
        std::borrow::Cow::Owned(s) => std::borrow::Cow::Owned(s.into_bytes()),
    }
}

/// Writes a field key. Keys of fields below 16 are one byte: pushed as is.
#[inline(always)]
fn key(out: &mut Vec<u8>, field: u32, wire: WireType) {
    if field < 16 {
        out.push((field << 3) as u8 | wire as u8);
    } else {
        encode_key(field, wire, out);
    }
}

/// Writes a varint; one below 2^14 (one or two bytes) directly.
#[inline(always)]
fn put_varint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else if v < 0x4000 {
        out.extend_from_slice(&[v as u8 | 0x80, (v >> 7) as u8]);
    } else {
        encode_varint(v, out);
    }
}

/// Writes a varint field unless it is 0.
#[inline]
pub fn varint(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        varint_always(out, field, v);
    }
}

/// Writes a varint field.
#[inline]
pub fn varint_always(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, WireType::Varint);
    put_varint(out, v);
}

/// Writes a fixed64 field unless it is 0.
#[inline]
pub fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        fixed64_always(out, field, v);
    }
}

/// Writes a fixed64 field.
#[inline]
pub fn fixed64_always(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, WireType::SixtyFourBit);
    out.extend_from_slice(&v.to_le_bytes());
}

/// Writes a fixed32 field unless it is 0.
#[inline]
pub fn fixed32(out: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        key(out, field, WireType::ThirtyTwoBit);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Writes a string or bytes field unless it is empty.
#[inline]
pub fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    if !b.is_empty() {
        bytes_always(out, field, b);
    }
}

/// Writes a length-delimited field (a oneof member, or a message already encoded).
#[inline]
pub fn bytes_always(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    // Key and length of one byte each (fields below 16, shorter than 128
    // bytes: nearly every key and value) go in one write.
    if field < 16 && b.len() < 0x80 {
        room(out, b.len() + 16);
        out.extend_from_slice(&[
            (field << 3) as u8 | WireType::LengthDelimited as u8,
            b.len() as u8,
        ]);
        out.extend_from_slice(b);
        return;
    }
    room(out, b.len() + 16);
    key(out, field, WireType::LengthDelimited);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends bytes already encoded (leaving room for a few more, as [`bytes_always`]).
pub fn raw(out: &mut Vec<u8>, b: &[u8]) {
    room(out, b.len() + 16);
    out.extend_from_slice(b);
}

/// Writes the key and length of a length-delimited field whose `len` bytes follow.
#[inline]
pub fn header(out: &mut Vec<u8>, field: u32, len: usize) {
    key(out, field, WireType::LengthDelimited);
    put_varint(out, len as u64);
}

/// Bytes a length-delimited field of `len` bytes takes, key and length included.
pub fn field_len(field: u32, len: usize) -> usize {
    prost::encoding::key_len(field) + encoded_len_varint(len as u64) + len
}

/// Bytes [`varint`] writes.
pub fn varint_len(field: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        prost::encoding::key_len(field) + encoded_len_varint(v)
    }
}

/// Bytes [`fixed64`] writes.
pub fn fixed64_len(field: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        prost::encoding::key_len(field) + 8
    }
}

/// Bytes [`fixed32`] writes.
pub fn fixed32_len(field: u32, v: u32) -> usize {
    if v == 0 {
        0
    } else {
        prost::encoding::key_len(field) + 4
    }
}

/// Bytes [`bytes`] writes.
pub fn bytes_len(field: u32, b: &[u8]) -> usize {
    if b.is_empty() {
        0
    } else {
        field_len(field, b.len())
    }
}

/// From this length on, a buffer grows by a quarter rather than doubling.
const LARGE: usize = 64 << 10;

/// Makes room for `additional` more bytes. A buffer that holds a large
/// value grows by a quarter of what it holds, not by as much again as
/// `Vec` does, so that a span holding a large value does not hold twice
/// its size (the copying stays amortised).
#[inline]
fn room(out: &mut Vec<u8>, additional: usize) {
    if out.capacity() - out.len() < additional {
        grow(out, additional);
    }
}

#[cold]
fn grow(out: &mut Vec<u8>, additional: usize) {
    let len = out.len();
    let slack = if len >= LARGE { len / 4 } else { len.max(64) };
    out.reserve_exact(additional + slack);
}

/// Opens a nested message field; returns where its content starts, for [`end`].
#[inline]
pub fn begin(out: &mut Vec<u8>, field: u32) -> usize {
    key(out, field, WireType::LengthDelimited);
    out.push(0);
    out.len()
}

/// Closes the nested message opened at `start`: back-fills its length (one
/// byte was reserved; a longer length moves the content up).
#[inline]
pub fn end(out: &mut Vec<u8>, start: usize) {
    let len = out.len() - start;
    if len < 0x80 {
        out[start - 1] = len as u8;
        return;
    }
    end_long(out, start, len);
}

/// [`end`] of a message of 128 bytes or more.
fn end_long(out: &mut Vec<u8>, start: usize, len: usize) {
    let n = encoded_len_varint(len as u64);
    room(out, n - 1);
    out.resize(out.len() + n - 1, 0);
    out.copy_within(start..start + len, start + n - 1);
    let mut prefix = &mut out[start - 1..start - 1 + n];
    encode_varint(len as u64, &mut prefix);
}

/// Most capacity a buffer kept across batches may keep: one that grew past
/// it (a batch of large records) is given back, so that a reader holds what
/// its steady state needs, not what its largest batch needed.
pub const KEEP_MAX: usize = 1 << 20;

/// Empties `buf` for reuse, giving its memory back if it holds more than `max`.
pub fn reuse(buf: &mut Vec<u8>, max: usize) {
    if buf.capacity() > max {
        *buf = Vec::new();
    } else {
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use prost::Message;

    #[test]
    fn nested_messages_match_prost() {
        for len in [0usize, 1, 127, 128, 300, 20_000] {
            let s = "x".repeat(len);
            let kv = KeyValue {
                key: "k".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(s.clone())),
                }),
                ..Default::default()
            };
            let mut out = vec![7u8];
            let at = begin(&mut out, 9);
            bytes(&mut out, 1, b"k");
            let v = begin(&mut out, 2);
            bytes_always(&mut out, 1, s.as_bytes());
            end(&mut out, v);
            end(&mut out, at);
            let mut want = vec![7u8];
            prost::encoding::message::encode(9, &kv, &mut want);
            assert_eq!(out, want, "string of {len}");
            assert_eq!(field_len(9, kv.encoded_len()), want.len() - 1);
        }
    }
}
