//! Helpers shared by the collector's tests: a small file layout, a writer
//! starting over in place, and records a test writes.
#![allow(dead_code)]

use std::os::unix::fs::FileExt;
use std::path::Path;

use otlp_mmap_core::{FileConfig, RingConfig};

/// Rings of 64 slots of 256 bytes, a 4 KiB dictionary growing up to 1 MiB.
pub fn config() -> FileConfig {
    let ring = RingConfig {
        num_buffers: 64,
        buffer_size: 256,
    };
    FileConfig {
        events: ring,
        spans: ring,
        measurements: ring,
        dictionary_initial_size: 4096,
        dictionary_max_size: 1 << 20,
    }
}

/// The writer of `path` starts over in place: the bytes of `fresh` (a file
/// a new writer made, with its own start time, rings and dictionary) are
/// written over the same file, which keeps its inode.
pub fn start_over_in_place(path: &Path, fresh: &Path) {
    let bytes = std::fs::read(fresh).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&bytes, 0).unwrap();
}

/// Writes a log record whose body is the string `body`.
pub fn log(w: &otlp_mmap_core::MmapWriter, body: &str) {
    use otlp_mmap_core::proto::{self, any_value::Value};
    let ev = proto::Event {
        time_unix_nano: 1,
        body: Some(proto::AnyValue {
            value: Some(Value::StringValue(body.into())),
        }),
        ..Default::default()
    };
    w.try_write(otlp_mmap_core::RingKind::Events, &ev).unwrap();
}

/// An `InstrumentationScope` named `name`, interned in `w`'s dictionary.
pub fn named_scope(w: &otlp_mmap_core::MmapWriter, name: &str) -> i64 {
    use otlp_mmap_core::proto;
    w.intern_message(&proto::InstrumentationScope {
        name_ref: w.intern_str(name).unwrap(),
        ..Default::default()
    })
    .unwrap()
}

/// A monotonic cumulative sum named `name` of the scope `scope_ref` (0:
/// none), interned in `w`'s dictionary.
pub fn monotonic_counter(w: &otlp_mmap_core::MmapWriter, scope_ref: i64, name: &str) -> i64 {
    use otlp_mmap_core::proto::{self, metric_ref::Aggregation};
    w.intern_message(&proto::MetricRef {
        name: name.into(),
        instrumentation_scope_ref: scope_ref,
        aggregation: Some(Aggregation::Sum(proto::metric_ref::Sum {
            aggregation_temporality: 2,
            is_monotonic: true,
        })),
        ..Default::default()
    })
    .unwrap()
}

/// Writes a measurement of `v` (an integer) of the metric `metric_ref`.
pub fn add(w: &otlp_mmap_core::MmapWriter, metric_ref: i64, v: i64) {
    use otlp_mmap_core::{RingKind, proto};
    let m = proto::Measurement {
        metric_ref,
        value: Some(proto::measurement::Value::AsLong(v)),
        ..Default::default()
    };
    w.try_write(RingKind::Measurements, &m).unwrap();
}

/// (metric name, value) of every integer sum point of a metrics batch.
pub fn named_sums(bytes: &[u8]) -> Vec<(String, i64)> {
    use otlp_mmap_collector::opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use otlp_mmap_collector::opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
    use prost::Message;
    let req = ExportMetricsServiceRequest::decode(bytes).unwrap();
    let mut out = vec![];
    for m in req
        .resource_metrics
        .into_iter()
        .flat_map(|rm| rm.scope_metrics)
        .flat_map(|sm| sm.metrics)
    {
        if let Some(metric::Data::Sum(s)) = m.data {
            for p in s.data_points {
                if let Some(number_data_point::Value::AsInt(v)) = p.value {
                    out.push((m.name.clone(), v));
                }
            }
        }
    }
    out
}
