//! `RawMeasurement`: a Measurement read straight from its slot bytes, without
//! allocating, for the aggregation fast path. Only the fields the fast path
//! needs are taken apart (unknown fields are skipped); malformed input (a
//! bad wire type, a length past the end) makes `parse` return `None` and the
//! record is counted as corrupt. It is kept apart from `otlp_mmap_core::view`
//! because it is the hot path: a hand-rolled walk is ~1.8x faster here.

use otlp_mmap_core::tags::measurement;
use otlp_mmap_core::view::Repeated;

/// The value of a measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RawValue {
    /// The measurement's `as_long`.
    Long(i64),
    /// The measurement's `as_double`.
    Double(f64),
}

/// A Measurement borrowed from its slot.
#[derive(Debug, Clone, Copy)]
pub struct RawMeasurement<'a> {
    /// Dictionary ref of the metric definition (0 when the field is absent).
    pub metric_ref: i64,
    /// The whole message (attributes are found again with [`attribute_entries`](Self::attribute_entries)).
    pub bytes: &'a [u8],
    /// Number of attribute entries.
    pub attribute_count: usize,
    /// Bytes of the attribute entries (their messages, without key and length).
    pub attribute_bytes: usize,
    /// The attribute fields (keys, lengths and entries) exactly as on the
    /// wire, when they are contiguous (none, or no other field between
    /// them: as writers encode a Measurement); `None` otherwise. The same
    /// bytes always hold the same entries, so they identify the set as this
    /// writer encoded it.
    pub attributes_wire: Option<&'a [u8]>,
    /// When the measurement was taken, in nanoseconds since the Unix epoch
    /// (0 when the field is absent).
    pub time_unix_nano: u64,
    /// The value; the last one on the wire when both `as_long` and
    /// `as_double` appear, `None` when neither does.
    pub value: Option<RawValue>,
    /// The encoded SpanContext, when present.
    pub span_context: Option<&'a [u8]>,
}

impl<'a> RawMeasurement<'a> {
    /// Parses the message, or `None` if it is not plainly well-formed.
    #[inline]
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        match Self::parse_canonical(bytes) {
            Some(m) => Some(m),
            None => Self::parse_any(bytes),
        }
    }

    /// The message as writers encode it (prost, our SDK, the reference
    /// writers): each field at most once, by field number, keys in one
    /// byte, nothing else. `None` for anything else, which
    /// [`parse_any`](Self::parse_any) then reads: both give the same result
    /// for the messages this one takes (their fields are the same ones,
    /// met in the same order), this one without the general field walk.
    #[inline(always)]
    fn parse_canonical(bytes: &'a [u8]) -> Option<Self> {
        const fn key(field: u32, wire: u32) -> u8 {
            (field << 3 | wire) as u8
        }
        const METRIC_REF: u8 = key(measurement::METRIC_REF, 0);
        const ATTRIBUTES: u8 = key(measurement::ATTRIBUTES, 2);
        const TIME: u8 = key(measurement::TIME_UNIX_NANO, 1);
        const AS_LONG: u8 = key(measurement::AS_LONG, 0);
        const AS_DOUBLE: u8 = key(measurement::AS_DOUBLE, 1);
        const SPAN_CONTEXT: u8 = key(measurement::SPAN_CONTEXT, 2);
        let mut m = RawMeasurement {
            metric_ref: 0,
            bytes,
            attribute_count: 0,
            attribute_bytes: 0,
            attributes_wire: Some(&[]),
            time_unix_nano: 0,
            value: None,
            span_context: None,
        };
        let mut buf = bytes;
        if let [METRIC_REF, rest @ ..] = buf {
            buf = rest;
            m.metric_ref = varint(&mut buf)? as i64;
        }
        let start = bytes.len() - buf.len();
        while let [ATTRIBUTES, rest @ ..] = buf {
            buf = rest;
            m.attribute_bytes += take_len(&mut buf)?.len();
            m.attribute_count += 1;
        }
        m.attributes_wire = bytes.get(start..bytes.len() - buf.len());
        if let [TIME, rest @ ..] = buf {
            buf = rest;
            m.time_unix_nano = u64::from_le_bytes(take_fixed(&mut buf)?);
        }
        match buf {
            [AS_LONG, rest @ ..] => {
                buf = rest;
                m.value = Some(RawValue::Long(varint(&mut buf)? as i64));
            }
            [AS_DOUBLE, rest @ ..] => {
                buf = rest;
                m.value = Some(RawValue::Double(f64::from_le_bytes(take_fixed(&mut buf)?)));
            }
            _ => {}
        }
        if let [SPAN_CONTEXT, rest @ ..] = buf {
            buf = rest;
            m.span_context = Some(take_len(&mut buf)?);
        }
        buf.is_empty().then_some(m)
    }

    /// Parses the message whatever the order and repetition of its fields.
    fn parse_any(bytes: &'a [u8]) -> Option<Self> {
        let mut m = RawMeasurement {
            metric_ref: 0,
            bytes,
            attribute_count: 0,
            attribute_bytes: 0,
            attributes_wire: Some(&[]),
            time_unix_nano: 0,
            value: None,
            span_context: None,
        };
        let mut buf = bytes;
        // Where the attribute fields start and end, while they are contiguous.
        let mut attributes: Option<(usize, usize)> = None;
        let mut contiguous = true;
        while !buf.is_empty() {
            let field_start = bytes.len() - buf.len();
            let key = varint(&mut buf)?;
            // A field number past u32 is malformed (as for prost and the views).
            let (field, wire) = (u32::try_from(key >> 3).ok()?, key & 7);
            match (field, wire) {
                (measurement::METRIC_REF, 0) => m.metric_ref = varint(&mut buf)? as i64,
                (measurement::ATTRIBUTES, 2) => {
                    m.attribute_bytes += take_len(&mut buf)?.len();
                    m.attribute_count += 1;
                    let end = bytes.len() - buf.len();
                    attributes = match attributes {
                        None => Some((field_start, end)),
                        Some((start, last)) => {
                            contiguous &= last == field_start;
                            Some((start, end))
                        }
                    };
                }
                (measurement::TIME_UNIX_NANO, 1) => {
                    m.time_unix_nano = u64::from_le_bytes(take_fixed(&mut buf)?)
                }
                (measurement::AS_LONG, 0) => {
                    m.value = Some(RawValue::Long(varint(&mut buf)? as i64))
                }
                (measurement::AS_DOUBLE, 1) => {
                    m.value = Some(RawValue::Double(f64::from_le_bytes(take_fixed(&mut buf)?)))
                }
                (measurement::SPAN_CONTEXT, 2) => m.span_context = Some(take_len(&mut buf)?),
                // Unknown fields are skipped, as protobuf does.
                (_, 0) => {
                    varint(&mut buf)?;
                }
                (_, 1) => {
                    take_fixed(&mut buf)?;
                }
                (_, 2) => {
                    take_len(&mut buf)?;
                }
                (_, 5) => {
                    let (_, rest) = buf.split_first_chunk::<4>()?;
                    buf = rest;
                }
                _ => return None,
            }
        }
        m.attributes_wire = match attributes {
            None => Some(&[]),
            Some((start, end)) => contiguous.then(|| &bytes[start..end]),
        };
        Some(m)
    }

    /// The attribute entries for the views (the slow path).
    pub fn attributes(&self) -> Repeated<'a> {
        Repeated::new(self.bytes, measurement::ATTRIBUTES)
    }

    /// The encoded KeyValueRef entries, in wire order (the fast path).
    pub fn attribute_entries(&self) -> impl Iterator<Item = &'a [u8]> {
        let mut buf = self.bytes;
        std::iter::from_fn(move || {
            while !buf.is_empty() {
                let key = varint(&mut buf)?;
                match key & 7 {
                    0 => {
                        varint(&mut buf)?;
                    }
                    1 => {
                        take_fixed(&mut buf)?;
                    }
                    2 => {
                        let v = take_len(&mut buf)?;
                        if key >> 3 == u64::from(measurement::ATTRIBUTES) {
                            return Some(v);
                        }
                    }
                    _ => return None,
                }
            }
            None
        })
    }
}

/// Takes a varint off the front of `buf` (the core crate's reader).
#[inline(always)]
pub(crate) fn varint(buf: &mut &[u8]) -> Option<u64> {
    otlp_mmap_core::view::varint(buf).ok()
}

#[inline(always)]
fn take_len<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = varint(buf)?;
    if len > buf.len() as u64 {
        return None;
    }
    let (v, rest) = buf.split_at(len as usize);
    *buf = rest;
    Some(v)
}

#[inline(always)]
fn take_fixed(buf: &mut &[u8]) -> Option<[u8; 8]> {
    let (v, rest) = buf.split_first_chunk::<8>()?;
    *buf = rest;
    Some(*v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use otlp_mmap_core::proto;
    use prost::Message;

    /// The canonical path, where it takes a message, reads what the general one does.
    fn same_as_general(bytes: &[u8]) {
        if let Some(fast) = RawMeasurement::parse_canonical(bytes) {
            let any = RawMeasurement::parse_any(bytes);
            assert_eq!(
                format!("{:?}", Some(fast)),
                format!("{any:?}"),
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn canonical_path_agrees_with_the_general_one() {
        let kv = |key_ref| proto::KeyValueRef {
            key_ref,
            value: Some(proto::AnyValue {
                value: Some(proto::any_value::Value::IntValue(key_ref)),
            }),
        };
        let mut taken = 0;
        for attributes in [vec![], vec![kv(1)], vec![kv(2), kv(300), kv(1 << 40)]] {
            for value in [
                None,
                Some(proto::measurement::Value::AsLong(-5)),
                Some(proto::measurement::Value::AsDouble(0.5)),
            ] {
                for (metric_ref, time) in [(0, 0), (7, 0), (1 << 33, u64::MAX)] {
                    let m = proto::Measurement {
                        metric_ref,
                        attributes: attributes.clone(),
                        time_unix_nano: time,
                        value,
                        span_context: (time > 0).then(|| proto::SpanContext {
                            span_id: vec![1; 8],
                            trace_id: vec![2; 16],
                            flags: 1,
                        }),
                    };
                    let bytes = m.encode_to_vec();
                    // What prost writes takes the canonical path.
                    taken += RawMeasurement::parse_canonical(&bytes).is_some() as usize;
                    same_as_general(&bytes);
                    for cut in 0..bytes.len() {
                        same_as_general(&bytes[..cut]);
                    }
                    for i in 0..bytes.len() {
                        for b in [0x00, 0x08, 0x12, 0x19, 0x20, 0x29, 0x32, 0x80, 0xff] {
                            let mut changed = bytes.clone();
                            changed[i] = b;
                            same_as_general(&changed);
                        }
                    }
                    // A field again after the others: the last one wins.
                    let mut twice = bytes.clone();
                    twice.extend_from_slice(&[0x08, 9, 0x20, 3]);
                    same_as_general(&twice);
                    assert!(bytes.is_empty() || RawMeasurement::parse_canonical(&twice).is_none());
                }
            }
        }
        assert_eq!(taken, 27);
    }

    proptest::proptest! {
        #[test]
        fn canonical_path_agrees_on_any_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            same_as_general(&bytes);
        }
    }

    #[test]
    fn parses_what_prost_writes() {
        let m = proto::Measurement {
            metric_ref: 1234,
            attributes: vec![
                proto::KeyValueRef {
                    key_ref: 99,
                    value: Some(proto::AnyValue {
                        value: Some(proto::any_value::Value::StringValue("x".into())),
                    }),
                },
                proto::KeyValueRef {
                    key_ref: 7,
                    value: None,
                },
            ],
            time_unix_nano: 42,
            value: Some(proto::measurement::Value::AsDouble(2.5)),
            span_context: Some(proto::SpanContext {
                span_id: vec![1; 8],
                trace_id: vec![2; 16],
                flags: 1,
            }),
        };
        let bytes = m.encode_to_vec();
        let raw = RawMeasurement::parse(&bytes).unwrap();
        assert_eq!(raw.metric_ref, 1234);
        assert_eq!(raw.attribute_count, 2);
        // prost writes the attributes one after the other.
        let wire = raw.attributes_wire.unwrap();
        assert_eq!(
            wire.len(),
            m.attributes
                .iter()
                .map(|a| 2 + a.encoded_len())
                .sum::<usize>()
        );
        assert_eq!(
            raw.attribute_bytes,
            m.attributes.iter().map(|a| a.encoded_len()).sum::<usize>()
        );
        assert_eq!(raw.time_unix_nano, 42);
        assert_eq!(raw.value, Some(RawValue::Double(2.5)));
        let sc = proto::SpanContext::decode(raw.span_context.unwrap()).unwrap();
        assert_eq!(sc.flags, 1);
        let entries: Vec<_> = raw.attribute_entries().collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            proto::KeyValueRef::decode(entries[0]).unwrap(),
            m.attributes[0]
        );
        // Attributes with another field between them are not contiguous.
        let mut split = proto::Measurement {
            attributes: vec![m.attributes[0].clone()],
            ..Default::default()
        }
        .encode_to_vec();
        split.extend(
            proto::Measurement {
                metric_ref: 5,
                ..Default::default()
            }
            .encode_to_vec(),
        );
        split.extend(
            proto::Measurement {
                attributes: vec![m.attributes[1].clone()],
                ..Default::default()
            }
            .encode_to_vec(),
        );
        let raw = RawMeasurement::parse(&split).unwrap();
        assert_eq!((raw.attribute_count, raw.attributes_wire), (2, None));
        // Truncated or odd input is refused, never misread.
        assert!(RawMeasurement::parse(&bytes[..bytes.len() - 1]).is_none());
        assert!(RawMeasurement::parse(&[0xff]).is_none());
    }
}
