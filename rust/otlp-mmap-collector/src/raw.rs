//! `RawMeasurement`: a Measurement read straight from its slot bytes, without
//! allocating, for the aggregation fast path. Only the fields the fast path
//! needs are taken apart; anything unusual (an unknown wire type, a value
//! that does not parse) makes `parse` return `None` and the caller falls back
//! to the full prost decode.

use otlp_mmap_core::view::{Fields, Repeated, Wire};

/// The value of a measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RawValue {
    Long(i64),
    Double(f64),
}

/// A Measurement borrowed from its slot.
#[derive(Debug, Clone, Copy)]
pub struct RawMeasurement<'a> {
    pub metric_ref: i64,
    /// The encoded KeyValueRef entries, in wire order.
    pub attributes: Repeated<'a>,
    pub time_unix_nano: u64,
    pub value: Option<RawValue>,
    /// The encoded SpanContext, when present.
    pub span_context: Option<&'a [u8]>,
}

impl<'a> RawMeasurement<'a> {
    /// Parses the message (unknown fields are skipped, as protobuf does), or
    /// `None` if it is not well-formed.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        let mut m = RawMeasurement {
            metric_ref: 0,
            attributes: Repeated::new(bytes, 2),
            time_unix_nano: 0,
            value: None,
            span_context: None,
        };
        for f in Fields::new(bytes) {
            match f.ok()? {
                (1, w) => m.metric_ref = w.varint() as i64,
                (2, Wire::Bytes(entry)) => {
                    Fields::new(entry).try_for_each(|f| f.map(|_| ())).ok()?
                }
                (3, w) => m.time_unix_nano = w.fixed64(),
                (4, w) => m.value = Some(RawValue::Long(w.varint() as i64)),
                (5, w) => m.value = Some(RawValue::Double(f64::from_bits(w.fixed64()))),
                (6, w) => m.span_context = Some(w.bytes()),
                _ => {}
            }
        }
        Some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otlp_mmap_core::proto;
    use prost::Message;

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
        assert_eq!(raw.time_unix_nano, 42);
        assert_eq!(raw.value, Some(RawValue::Double(2.5)));
        let sc = proto::SpanContext::decode(raw.span_context.unwrap()).unwrap();
        assert_eq!(sc.flags, 1);
        let entries: Vec<_> = raw.attributes.iter().collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            proto::KeyValueRef::decode(entries[0]).unwrap(),
            m.attributes[0]
        );
        // Truncated or odd input is refused, never misread.
        assert!(RawMeasurement::parse(&bytes[..bytes.len() - 1]).is_none());
        assert!(RawMeasurement::parse(&[0xff]).is_none());
    }
}
