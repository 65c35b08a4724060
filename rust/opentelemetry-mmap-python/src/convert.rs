//! Python values to OpenTelemetry values. What cannot be converted is left
//! out (as the Python SDK drops invalid attribute values), never raised.

use opentelemetry::logs::AnyValue;
use opentelemetry::{Array, Key, KeyValue, StringValue, Value};
use opentelemetry_mmap::records::SpanRef;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use smallvec::SmallVec;

/// Deepest nesting of lists and maps converted in a log body or attribute;
/// deeper values are written as their `str()`.
const MAX_DEPTH: usize = 32;

/// An integer as `i64`; one outside its range as the nearest `f64`.
fn int_value(v: &Bound<'_, PyAny>) -> Option<Value> {
    match v.extract::<i64>() {
        Ok(i) => Some(Value::I64(i)),
        Err(_) => v.extract::<f64>().ok().map(Value::F64),
    }
}

fn string_of(v: &Bound<'_, PyAny>) -> Option<String> {
    v.cast::<PyString>()
        .ok()
        .and_then(|s| s.to_cow().ok().map(|c| c.into_owned()))
}

/// A span or metric attribute value: `str`, `bool`, `int`, `float`, or a
/// homogeneous sequence of them.
pub(crate) fn attribute_value(v: &Bound<'_, PyAny>) -> Option<Value> {
    if let Some(s) = string_of(v) {
        Some(Value::String(s.into()))
    } else if v.is_instance_of::<PyBool>() {
        v.extract::<bool>().ok().map(Value::Bool)
    } else if v.is_instance_of::<PyInt>() {
        int_value(v)
    } else if v.is_instance_of::<PyFloat>() {
        v.extract::<f64>().ok().map(Value::F64)
    } else if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        array_value(v)
    } else {
        None
    }
}

/// The items of a sequence, all taken before any is converted (converting
/// one may run Python code that changes the sequence); a Python iterator that
/// raises ends them. Up to 8 on the stack.
fn items_of<'py>(seq: &Bound<'py, PyAny>) -> Option<SmallVec<[Bound<'py, PyAny>; 8]>> {
    Some(seq.try_iter().ok()?.map_while(Result::ok).collect())
}

/// A homogeneous sequence (integers mixed with floats become floats); `None`
/// for anything else.
fn array_value(seq: &Bound<'_, PyAny>) -> Option<Value> {
    let items = items_of(seq)?;
    let all = |f: &dyn Fn(&Bound<'_, PyAny>) -> bool| items.iter().all(f);
    let array = if all(&|v| v.is_instance_of::<PyString>()) {
        Array::String(
            items
                .iter()
                .filter_map(string_of)
                .map(StringValue::from)
                .collect(),
        )
    } else if all(&|v| v.is_instance_of::<PyBool>()) {
        Array::Bool(items.iter().filter_map(|v| v.extract().ok()).collect())
    } else if all(&|v| v.is_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>())
        && items.iter().all(|v| v.extract::<i64>().is_ok())
    {
        Array::I64(items.iter().filter_map(|v| v.extract().ok()).collect())
    } else if all(&|v| {
        (v.is_instance_of::<PyFloat>() || v.is_instance_of::<PyInt>())
            && !v.is_instance_of::<PyBool>()
    }) {
        Array::F64(items.iter().filter_map(|v| v.extract().ok()).collect())
    } else {
        return None;
    };
    Some(Value::Array(array))
}

/// A key and its value, as Python holds them.
pub(crate) type Pair<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>);

/// Pairs taken from a dict: up to 16 (most attribute sets) on the stack.
pub(crate) type Pairs<'py> = SmallVec<[Pair<'py>; 16]>;

/// The `(key, value)` pairs of a dict, a mapping (its `items()`) or an
/// iterable of pairs, all taken before any is converted: converting a value
/// may run Python code (a `__str__`, a list's `__iter__`, an int's
/// `__float__`) that changes the dict, which must neither stop the
/// conversion (PyO3's dict iterator panics when the size changes under it;
/// a Python iterator raises) nor change what the record holds. Taking them
/// runs no Python code for a dict; a Python iterator that raises ends them.
/// `None` is empty.
pub(crate) fn pairs<'py>(attrs: Option<&Bound<'py, PyAny>>) -> Pairs<'py> {
    let Some(attrs) = attrs.filter(|a| !a.is_none()) else {
        return Pairs::new();
    };
    if let Ok(d) = attrs.cast::<PyDict>() {
        return d.iter().collect();
    }
    let items = if attrs.hasattr("items").unwrap_or(false) {
        attrs.call_method0("items")
    } else {
        Ok(attrs.clone())
    };
    let Ok(iter) = items.and_then(|p| p.try_iter()) else {
        return Pairs::new();
    };
    iter.map_while(Result::ok)
        .filter_map(|pair| pair.extract::<Pair<'py>>().ok())
        .collect()
}

/// Span and metric attributes of pairs taken by [`pairs`].
pub(crate) fn key_values_of(pairs: &[Pair<'_>]) -> Vec<KeyValue> {
    let mut out = Vec::with_capacity(pairs.len());
    out.extend(
        pairs
            .iter()
            .filter_map(|(k, v)| Some(KeyValue::new(string_of(k)?, attribute_value(v)?))),
    );
    out
}

/// Span and metric attributes.
pub(crate) fn key_values(attrs: Option<&Bound<'_, PyAny>>) -> Vec<KeyValue> {
    key_values_of(&pairs(attrs))
}

/// Log record attributes (any value a log body can hold).
pub(crate) fn any_key_values(attrs: Option<&Bound<'_, PyAny>>) -> Vec<(Key, AnyValue)> {
    let pairs = pairs(attrs);
    let mut out = Vec::with_capacity(pairs.len());
    out.extend(any_entries(&pairs, 0));
    out
}

/// Pairs as log attributes or the entries of a map, at `depth`.
fn any_entries<'a>(
    pairs: &'a [Pair<'_>],
    depth: usize,
) -> impl Iterator<Item = (Key, AnyValue)> + 'a {
    pairs
        .iter()
        .filter_map(move |(k, v)| Some((Key::new(string_of(k)?), any_value(v, depth)?)))
}

/// A log body or log attribute value: what a span attribute can be, plus
/// `bytes`, nested lists and `dict`s with `str` keys; any other object as its
/// `str()`. `None` is no value.
pub(crate) fn any_value(v: &Bound<'_, PyAny>, depth: usize) -> Option<AnyValue> {
    if v.is_none() {
        return None;
    }
    if let Some(s) = string_of(v) {
        return Some(AnyValue::String(s.into()));
    }
    if v.is_instance_of::<PyBool>() {
        return v.extract::<bool>().ok().map(AnyValue::Boolean);
    }
    if v.is_instance_of::<PyInt>() {
        return match int_value(v)? {
            Value::I64(i) => Some(AnyValue::Int(i)),
            Value::F64(f) => Some(AnyValue::Double(f)),
            _ => None,
        };
    }
    if v.is_instance_of::<PyFloat>() {
        return v.extract::<f64>().ok().map(AnyValue::Double);
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return Some(AnyValue::Bytes(Box::new(b.as_bytes().to_vec())));
    }
    if depth < MAX_DEPTH {
        if let Ok(d) = v.cast::<PyDict>() {
            let entries: Pairs<'_> = d.iter().collect();
            let map = any_entries(&entries, depth + 1).collect();
            return Some(AnyValue::Map(Box::new(map)));
        }
        if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
            let items = items_of(v)?
                .iter()
                .filter_map(|item| any_value(item, depth + 1))
                .collect();
            return Some(AnyValue::ListAny(Box::new(items)));
        }
    }
    v.str().ok().and_then(|s| {
        s.to_cow()
            .ok()
            .map(|c| AnyValue::String(c.into_owned().into()))
    })
}

/// The ids of a span as Python holds them (`int`s) in the form records carry.
pub(crate) fn span_ref(trace_id: u128, span_id: u64, flags: u8) -> SpanRef {
    SpanRef {
        trace_id: trace_id.to_be_bytes(),
        span_id: span_id.to_be_bytes(),
        trace_flags: flags,
    }
}

/// An attribute value as a Python value (arrays as tuples, as the SDK keeps them).
pub(crate) fn py_value<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::I64(i) => i.into_pyobject(py)?.into_any(),
        Value::F64(f) => PyFloat::new(py, *f).into_any(),
        Value::String(s) => PyString::new(py, s.as_str()).into_any(),
        Value::Array(Array::Bool(a)) => PyTuple::new(py, a)?.into_any(),
        Value::Array(Array::I64(a)) => PyTuple::new(py, a)?.into_any(),
        Value::Array(Array::F64(a)) => PyTuple::new(py, a)?.into_any(),
        Value::Array(Array::String(a)) => {
            PyTuple::new(py, a.iter().map(|s| s.as_str()))?.into_any()
        }
        _ => py.None().into_bound(py),
    })
}
