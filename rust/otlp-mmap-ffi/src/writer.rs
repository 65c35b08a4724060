//! `om_writer_*`: a minimal writer for tests and C programs (the Rust SDK
//! crate `opentelemetry-mmap` is the full writer).

use std::collections::HashMap;
use std::ffi::c_char;

use otlp_mmap_core::{
    FileConfig, FormatError, MmapWriter, RingConfig, RingKind, WriteError, proto,
};

use crate::handles;
use crate::status::*;

/// A writer of one OTLP-MMAP file (opaque).
pub struct OmWriter {
    writer: MmapWriter,
    scope_ref: i64,
    metrics: HashMap<String, i64>,
}

fn io(e: impl std::fmt::Display) -> Failure {
    Failure::new(OM_ERR_IO, e.to_string())
}

fn written(r: Result<i64, WriteError>) -> Result<i32, Failure> {
    match r {
        Ok(_) => Ok(OM_OK),
        Err(WriteError::Full) => Err(Failure::new(OM_ERR_FULL, "ring full: record dropped")),
        Err(WriteError::TooLarge) => Err(Failure::new(
            OM_ERR_FULL,
            "record larger than a slot: dropped",
        )),
        Err(e @ (WriteError::SizeMismatch | WriteError::EncoderPanicked)) => Err(Failure::new(
            OM_ERR_IO,
            format!("record encoding failed ({e:?}): published as a corrupt slot"),
        )),
    }
}

fn string_value(s: &str) -> proto::AnyValue {
    proto::AnyValue {
        value: Some(proto::any_value::Value::StringValue(s.to_owned())),
    }
}

impl OmWriter {
    fn attribute(
        &self,
        key: Option<&str>,
        value: Option<&str>,
    ) -> Result<Vec<proto::KeyValueRef>, Failure> {
        match key {
            Some(k) => Ok(vec![proto::KeyValueRef {
                key_ref: self.writer.intern_str(k).map_err(io)?,
                value: Some(string_value(value.unwrap_or(""))),
            }]),
            None => Ok(Vec::new()),
        }
    }
}

/// Creates a file at `path` whose three rings have `ring_slots` slots (a power
/// of two) of `slot_size` bytes, with resource `service.name` from
/// `OTEL_SERVICE_NAME` (default `otlp-mmap-writer`) and scope `otlp-mmap-ffi`.
///
/// # Safety
/// Pointers are NULL or valid for the call; `out` valid for writes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_writer_create(
    path: *const c_char,
    ring_slots: u32,
    slot_size: u32,
    out: *mut *mut OmWriter,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        let path = c_str(path, "path")?;
        if out.is_null() {
            return Err(Failure::new(OM_ERR_NULL, "out is NULL"));
        }
        let ring = RingConfig {
            num_buffers: ring_slots as u64,
            buffer_size: slot_size as u64,
        };
        let config = FileConfig {
            events: ring,
            spans: ring,
            measurements: ring,
            ..FileConfig::default()
        };
        let writer = MmapWriter::create(path, &config).map_err(|e| match e {
            FormatError::Io(_) | FormatError::NoSpace { .. } => io(e),
            _ => Failure::new(OM_ERR_ARGUMENT, e.to_string()),
        })?;
        let service =
            std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "otlp-mmap-writer".into());
        let resource = proto::Resource {
            attributes: vec![proto::KeyValueRef {
                key_ref: writer.intern_str("service.name").map_err(io)?,
                value: Some(string_value(&service)),
            }],
            dropped_attributes_count: 0,
        };
        let scope = proto::InstrumentationScope {
            name_ref: writer.intern_str("otlp-mmap-ffi").map_err(io)?,
            version_ref: writer.intern_str(env!("CARGO_PKG_VERSION")).map_err(io)?,
            resource_ref: writer.intern_message(&resource).map_err(io)?,
            ..Default::default()
        };
        let scope_ref = writer.intern_message(&scope).map_err(io)?;
        let w = OmWriter {
            writer,
            scope_ref,
            metrics: HashMap::new(),
        };
        // SAFETY: `out` is non-NULL and valid for writes by the caller's contract.
        unsafe { *out = handles::register(w) };
        Ok(OM_OK)
    })
}

/// Writes a completed span (StartSpan then EndSpan) of kind INTERNAL with one
/// string attribute (`attr_key` NULL: none). `trace_id16` points at 16 bytes,
/// `span_id8` at 8.
///
/// # Safety
/// Pointers are NULL or valid for the call (ids for 16 and 8 bytes).
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
#[allow(unsafe_code)]
pub unsafe extern "C" fn om_writer_span(
    writer: *mut OmWriter,
    trace_id16: *const u8,
    span_id8: *const u8,
    name: *const c_char,
    attr_key: *const c_char,
    attr_value: *const c_char,
    start_unix_nano: u64,
    end_unix_nano: u64,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        let w = handles::get(writer)?;
        if trace_id16.is_null() || span_id8.is_null() {
            return Err(Failure::new(OM_ERR_NULL, "trace or span id is NULL"));
        }
        // SAFETY: non-NULL and valid for 16 and 8 bytes by the caller's contract.
        let (trace_id, span_id) = unsafe {
            (
                std::slice::from_raw_parts(trace_id16, 16).to_vec(),
                std::slice::from_raw_parts(span_id8, 8).to_vec(),
            )
        };
        let name = c_str(name, "name")?;
        let attributes = w.attribute(
            opt_c_str(attr_key, "attr_key")?,
            opt_c_str(attr_value, "attr_value")?,
        )?;
        use proto::span_event::{EndSpan, Event, StartSpan};
        let start = proto::SpanEvent {
            trace_id: trace_id.clone(),
            span_id: span_id.clone(),
            scope_ref: w.scope_ref,
            event: Some(Event::Start(StartSpan {
                name: name.to_owned(),
                kind: proto::SpanKind::Internal as i32,
                start_time_unix_nano: start_unix_nano,
                attributes,
                flags: 1,
                ..Default::default()
            })),
        };
        written(w.writer.try_write(RingKind::Spans, &start))?;
        let end = proto::SpanEvent {
            trace_id,
            span_id,
            scope_ref: w.scope_ref,
            event: Some(Event::End(EndSpan {
                end_time_unix_nano: end_unix_nano,
                status: None,
            })),
        };
        written(w.writer.try_write(RingKind::Spans, &end))
    })
}

/// Writes an INFO log record with a string body and one string attribute.
///
/// # Safety
/// Pointers are NULL or valid for the call.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_writer_log(
    writer: *mut OmWriter,
    body: *const c_char,
    attr_key: *const c_char,
    attr_value: *const c_char,
    time_unix_nano: u64,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        let w = handles::get(writer)?;
        let body = c_str(body, "body")?;
        let event = proto::Event {
            scope_ref: w.scope_ref,
            time_unix_nano,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(string_value(body)),
            attributes: w.attribute(
                opt_c_str(attr_key, "attr_key")?,
                opt_c_str(attr_value, "attr_value")?,
            )?,
            ..Default::default()
        };
        written(w.writer.try_write(RingKind::Events, &event))
    })
}

/// Adds `value` to the monotonic cumulative int sum `metric_name` with one
/// string attribute.
///
/// # Safety
/// Pointers are NULL or valid for the call.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_writer_counter_add(
    writer: *mut OmWriter,
    metric_name: *const c_char,
    attr_key: *const c_char,
    attr_value: *const c_char,
    value: i64,
    time_unix_nano: u64,
    err: *mut OmError,
) -> i32 {
    guard(err, || {
        let w = handles::get(writer)?;
        let name = c_str(metric_name, "metric_name")?;
        let metric_ref = match w.metrics.get(name) {
            Some(&r) => r,
            None => {
                let def = proto::MetricRef {
                    name: name.to_owned(),
                    instrumentation_scope_ref: w.scope_ref,
                    aggregation: Some(proto::metric_ref::Aggregation::Sum(
                        proto::metric_ref::Sum {
                            aggregation_temporality: proto::AggregationTemporality::Cumulative
                                as i32,
                            is_monotonic: true,
                        },
                    )),
                    ..Default::default()
                };
                let r = w.writer.intern_message(&def).map_err(io)?;
                w.metrics.insert(name.to_owned(), r);
                r
            }
        };
        let m = proto::Measurement {
            metric_ref,
            attributes: w.attribute(
                opt_c_str(attr_key, "attr_key")?,
                opt_c_str(attr_value, "attr_value")?,
            )?,
            time_unix_nano,
            value: Some(proto::measurement::Value::AsLong(value)),
            span_context: None,
        };
        written(w.writer.try_write(RingKind::Measurements, &m))
    })
}

/// Closes the writer (the file stays; its liveness lock is released).
///
/// # Safety
/// `writer` must not be in use by another thread.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn om_writer_close(writer: *mut OmWriter) -> i32 {
    guard(std::ptr::null_mut(), || {
        handles::release(writer)?;
        Ok(OM_OK)
    })
}
