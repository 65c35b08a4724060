//! The resource and instrumentation scopes as dictionary messages.
//!
//! The resource is built like the OpenTelemetry SDK builds it:
//! `service.name` from `OTEL_SERVICE_NAME`, attributes from
//! `OTEL_RESOURCE_ATTRIBUTES`, the `telemetry.sdk.*` attributes, and then the
//! attributes given in code, which win over the others. It is stored once as
//! a `Resource` message; each instrumentation scope is stored once as an
//! `InstrumentationScope` message pointing at it.

use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use otlp_mmap_core::proto;

/// The resource: environment and SDK defaults, overridden by `code`.
pub(crate) fn build_resource(code: Option<&Resource>) -> Resource {
    let mut builder = Resource::builder();
    if let Some(code) = code {
        builder = builder.with_attributes(
            code.iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        );
    }
    builder.build()
}

/// An attribute value as a dictionary-side `AnyValue` (not the hot path).
pub(crate) fn any_value(v: &Value) -> proto::AnyValue {
    use proto::any_value::Value as V;
    let value = match v {
        Value::Bool(b) => V::BoolValue(*b),
        Value::I64(i) => V::IntValue(*i),
        Value::F64(f) => V::DoubleValue(*f),
        Value::String(s) => V::StringValue(s.as_str().to_owned()),
        Value::Array(a) => {
            let one = |v: V| proto::AnyValue { value: Some(v) };
            let values = match a {
                Array::Bool(v) => v.iter().map(|b| one(V::BoolValue(*b))).collect(),
                Array::I64(v) => v.iter().map(|i| one(V::IntValue(*i))).collect(),
                Array::F64(v) => v.iter().map(|f| one(V::DoubleValue(*f))).collect(),
                Array::String(v) => v
                    .iter()
                    .map(|s| one(V::StringValue(s.as_str().to_owned())))
                    .collect(),
                #[allow(unreachable_patterns)]
                _ => Vec::new(),
            };
            V::ArrayValue(proto::ArrayValue { values })
        }
        #[allow(unreachable_patterns)]
        _ => return proto::AnyValue { value: None },
    };
    proto::AnyValue { value: Some(value) }
}

/// Attributes as `KeyValueRef`s, sorted by key so that equal sets encode (and
/// intern) identically.
pub(crate) fn key_value_refs<'a>(
    attrs: impl Iterator<Item = (&'a str, &'a Value)>,
    intern: &mut dyn FnMut(&str) -> i64,
) -> Vec<proto::KeyValueRef> {
    let mut attrs: Vec<_> = attrs.collect();
    attrs.sort_by(|a, b| a.0.cmp(b.0));
    attrs
        .into_iter()
        .map(|(k, v)| proto::KeyValueRef {
            key_ref: intern(k),
            value: Some(any_value(v)),
        })
        .collect()
}

/// The `Resource` dictionary message.
pub(crate) fn resource_message(
    resource: &Resource,
    intern: &mut dyn FnMut(&str) -> i64,
) -> proto::Resource {
    proto::Resource {
        attributes: key_value_refs(resource.iter().map(|(k, v)| (k.as_str(), v)), intern),
        dropped_attributes_count: 0,
    }
}

/// The `InstrumentationScope` dictionary message.
pub(crate) fn scope_message(
    scope: &InstrumentationScope,
    resource_ref: i64,
    intern: &mut dyn FnMut(&str) -> i64,
) -> proto::InstrumentationScope {
    proto::InstrumentationScope {
        name_ref: intern(scope.name()),
        version_ref: scope.version().map(&mut *intern).unwrap_or(0),
        attributes: key_value_refs(
            scope.attributes().map(|kv| (kv.key.as_str(), &kv.value)),
            intern,
        ),
        dropped_attributes_count: 0,
        resource_ref,
    }
}
