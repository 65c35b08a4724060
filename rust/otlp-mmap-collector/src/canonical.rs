//! Fast paths for the two messages read most often, a `KeyValueRef` and an
//! `AnyValue`, when they have the shape writers give them: each field once,
//! in order, nothing else. Anything else (fields repeated, out of order,
//! unknown, a nested list) goes to the views of `otlp_mmap_core::view`,
//! which give the same result for the canonical shapes, so these only save
//! the general field walk.

use crate::raw::varint;
use otlp_mmap_core::view::{AnyValueView, KeyValueRefView, WireError};

/// Takes a varint that ends exactly at the end of `buf`.
#[inline(always)]
fn last_varint(mut buf: &[u8]) -> Option<u64> {
    let v = varint(&mut buf)?;
    buf.is_empty().then_some(v)
}

/// Splits a length-delimited payload that ends exactly at the end of `buf`.
#[inline(always)]
fn last_bytes(mut buf: &[u8]) -> Option<&[u8]> {
    let len = varint(&mut buf)?;
    (len == buf.len() as u64).then_some(buf)
}

/// Parses a `KeyValueRef` (as [`KeyValueRefView::parse`]).
#[inline]
pub fn key_value_ref(msg: &[u8]) -> Result<KeyValueRefView<'_>, WireError> {
    // key_ref (field 1, varint), then value (field 2, bytes) to the end.
    if let [0x08, rest @ ..] = msg {
        let end = rest.iter().position(|&b| b < 0x80).map(|i| i + 1);
        if let Some(end) = end {
            let (key, after) = rest.split_at(end);
            let value = match after {
                [] => Some(None),
                [0x12, value @ ..] => last_bytes(value).map(Some),
                _ => None,
            };
            if let (Some(key_ref), Some(value)) = (last_varint(key), value) {
                return Ok(KeyValueRefView {
                    key_ref: key_ref as i64,
                    value,
                });
            }
        }
    }
    KeyValueRefView::parse(msg)
}

/// Parses an `AnyValue` (as [`AnyValueView::parse`]).
#[inline]
pub fn any_value(msg: &[u8]) -> Result<AnyValueView<'_>, WireError> {
    let fast = match msg {
        [] => Some(AnyValueView::Empty),
        [0x0a, rest @ ..] => last_bytes(rest).map(AnyValueView::String),
        [0x10, rest @ ..] => last_varint(rest).map(|v| AnyValueView::Bool(v != 0)),
        [0x18, rest @ ..] => last_varint(rest).map(|v| AnyValueView::Int(v as i64)),
        [0x21, rest @ ..] => <[u8; 8]>::try_from(rest)
            .ok()
            .map(|b| AnyValueView::Double(f64::from_le_bytes(b))),
        [0x3a, rest @ ..] => last_bytes(rest).map(AnyValueView::Bytes),
        [0x40, rest @ ..] => last_varint(rest).map(|v| AnyValueView::Ref(v as i64)),
        _ => None,
    };
    match fast {
        Some(v) => Ok(v),
        None => AnyValueView::parse(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otlp_mmap_core::proto::{self, any_value::Value};
    use prost::Message;

    fn same_kv(bytes: &[u8]) {
        let (a, b) = (key_value_ref(bytes), KeyValueRefView::parse(bytes));
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_eq!((a.key_ref, a.value), (b.key_ref, b.value), "{bytes:02x?}")
            }
            (a, b) => assert_eq!(a.is_err(), b.is_err(), "{bytes:02x?}"),
        }
    }

    fn same_value(bytes: &[u8]) {
        let (a, b) = (any_value(bytes), AnyValueView::parse(bytes));
        match (a, b) {
            // Doubles compared by bits (NaN).
            (Ok(AnyValueView::Double(a)), Ok(AnyValueView::Double(b))) => {
                assert_eq!(a.to_bits(), b.to_bits())
            }
            (a, b) => assert_eq!(a, b, "{bytes:02x?}"),
        }
    }

    #[test]
    fn agree_with_the_views() {
        let values = [
            Value::StringValue(String::new()),
            Value::StringValue("GET".into()),
            Value::StringValue("x".repeat(300)),
            Value::BoolValue(true),
            Value::BoolValue(false),
            Value::IntValue(-1),
            Value::IntValue(1 << 40),
            Value::DoubleValue(f64::NAN),
            Value::DoubleValue(1.5),
            Value::BytesValue(vec![1, 2, 3]),
            Value::ValueRef(123_456),
            Value::ArrayValue(proto::ArrayValue {
                values: vec![proto::AnyValue {
                    value: Some(Value::IntValue(1)),
                }],
            }),
        ];
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for v in &values {
            let value = proto::AnyValue {
                value: Some(v.clone()),
            };
            cases.push(value.encode_to_vec());
            for key_ref in [0, 5, 300, 1 << 30] {
                cases.push(
                    proto::KeyValueRef {
                        key_ref,
                        value: Some(value.clone()),
                    }
                    .encode_to_vec(),
                );
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
            same_kv(case);
            same_value(case);
            // Every prefix, and every case with a byte changed, agrees too.
            for cut in 0..case.len() {
                same_kv(&case[..cut]);
                same_value(&case[..cut]);
            }
            for i in 0..case.len() {
                for b in [0x00, 0x02, 0x08, 0x12, 0x7f, 0x80, 0xff] {
                    let mut changed = case.clone();
                    changed[i] = b;
                    same_kv(&changed);
                    same_value(&changed);
                }
            }
        }
        // Repeated fields: the last one wins, as in the views.
        same_value(&[0x18, 1, 0x18, 2]);
        // Key 0x12 with a length that leaves bytes behind: the view decides.
        same_value(&[0x12, 0]);
        same_kv(&[0x08, 1, 0x12, 0, 0x08, 2]);
    }

    proptest::proptest! {
        #[test]
        fn agree_with_the_views_on_any_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..48)) {
            same_kv(&bytes);
            same_value(&bytes);
            let mut kv = vec![0x08u8];
            kv.extend(&bytes);
            same_kv(&kv);
        }
    }
}
