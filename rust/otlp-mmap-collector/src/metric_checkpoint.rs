//! The metric aggregates of a file, as OTLP `Metric` protobuf bytes (one
//! data point per series, with its start time), for a checkpoint that
//! outlives the Collector, and back.
//!
//! A restored series has its attributes but not the writer's encoding of
//! them: the first measurement whose attributes resolve to the same set
//! adopts it, so the series goes on with its value and start
//! time. Bytes read back are untrusted: a metric that does not decode, does
//! not match its definition in the file, or does not fit the aggregator's
//! limits is refused, and the rest still comes back.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    Metric, NumberDataPoint, exponential_histogram_data_point, metric, number_data_point,
};
use otlp_mmap_core::MmapReader;
use prost::Message;

use crate::dictionary::{DictionaryCache, key_value_bytes};
use crate::exponential::{ExponentialBuckets, ExponentialParts};
use crate::metrics::{
    Aggregate, Kind, MetricAggregator, MetricState, Number, OVERFLOW_ATTRIBUTE, SERIES_COST,
    Series, aggregate_bytes, to_otlp,
};

/// Why a metric was not put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MetricImportError {
    /// The bytes are not an OTLP Metric.
    #[error("not an OTLP metric")]
    Decode,
    /// The metric's definition does not resolve in the file, or is not of
    /// the kind the checkpoint says (a foreign or stale checkpoint).
    #[error("does not match its definition in the file")]
    Mismatch,
    /// Past the cardinality limit or the aggregator's byte budget.
    #[error("does not fit")]
    NoRoom,
}

impl MetricAggregator {
    /// Start of the cumulative series of this stream.
    pub fn stream_start(&self) -> u64 {
        self.stream_start
    }

    /// Sets the start of the cumulative series (restored from a checkpoint).
    pub fn set_stream_start(&mut self, start: u64) {
        self.stream_start = start;
    }

    /// Gives each metric that holds series (and each delta metric), in first-seen order, as
    /// `(metric_ref, interval_start, OTLP Metric bytes)`: every series as
    /// one data point with its start time, as a collection now would give it.
    pub fn export_metrics(&self, mut f: impl FnMut(i64, u64, &[u8])) {
        let mut refs = vec![0i64; self.metrics.len()];
        for (&metric_ref, &m) in &self.index {
            if let Some(r) = refs.get_mut(m) {
                *r = metric_ref;
            }
        }
        let mut buf = Vec::new();
        for (state, mref) in self.metrics.iter().zip(&refs) {
            let all: Vec<&Series> = state.series.iter().chain(state.overflow.iter()).collect();
            let cumulative = state.temporality
                == opentelemetry_proto::tonic::metrics::v1::AggregationTemporality::Cumulative;
            // A delta metric without series since its last collection still
            // carries where its next interval starts.
            if all.is_empty() && cumulative {
                continue;
            }
            let start = if cumulative {
                self.stream_start
            } else {
                state.interval_start
            };
            let m = Metric {
                name: state.name.clone(),
                description: state.description.clone(),
                unit: state.unit.clone(),
                metadata: Vec::new(),
                data: Some(to_otlp(state, &all, start, state.interval_start)),
            };
            buf.clear();
            m.encode(&mut buf).expect("a Vec grows as needed");
            f(*mref, state.interval_start, &buf);
        }
    }

    /// Puts the series of one metric back: `metric_ref` must resolve, in
    /// `file`, to a definition of the same name and kind.
    pub fn import_metric(
        &mut self,
        file: &MmapReader,
        dict: &mut DictionaryCache,
        metric_ref: i64,
        interval_start: u64,
        otlp_metric: &[u8],
    ) -> Result<usize, MetricImportError> {
        let m = Metric::decode(otlp_metric).map_err(|_| MetricImportError::Decode)?;
        let Some(mi) = self.metric(file, dict, metric_ref) else {
            return Err(MetricImportError::Mismatch);
        };
        let (kind, bounds, name) = {
            let state = &self.metrics[mi];
            (state.kind, state.bounds.clone(), state.name.clone())
        };
        if name != m.name {
            return Err(MetricImportError::Mismatch);
        }
        let points: Vec<(Vec<KeyValue>, Aggregate)> = match (kind, m.data) {
            (Kind::Sum { .. }, Some(metric::Data::Sum(s))) => {
                s.data_points.into_iter().map(sum_point).collect()
            }
            (Kind::Gauge, Some(metric::Data::Gauge(g))) => g
                .data_points
                .into_iter()
                .map(|p| {
                    let time = p.time_unix_nano;
                    let (attrs, value) = number(p);
                    (attrs, Aggregate::Gauge { value, time })
                })
                .collect(),
            (Kind::Histogram, Some(metric::Data::Histogram(h))) => {
                let mut out = Vec::with_capacity(h.data_points.len());
                for p in h.data_points {
                    if p.bucket_counts.len() != bounds.len() + 1 {
                        return Err(MetricImportError::Mismatch);
                    }
                    out.push((
                        p.attributes,
                        Aggregate::Histogram {
                            counts: p.bucket_counts,
                            count: p.count,
                            sum: p.sum.unwrap_or(0.0),
                            min: p.min.unwrap_or(f64::INFINITY),
                            max: p.max.unwrap_or(f64::NEG_INFINITY),
                        },
                    ));
                }
                out
            }
            (
                Kind::Exponential {
                    max_buckets,
                    max_scale,
                },
                Some(metric::Data::ExponentialHistogram(h)),
            ) => {
                let mut out = Vec::with_capacity(h.data_points.len());
                for p in h.data_points {
                    let dense = |b: Option<exponential_histogram_data_point::Buckets>| {
                        b.map(|b| (b.offset, b.bucket_counts)).unwrap_or_default()
                    };
                    let parts = ExponentialParts {
                        scale: p.scale,
                        zero_count: p.zero_count,
                        positive: dense(p.positive),
                        negative: dense(p.negative),
                        count: p.count,
                        sum: p.sum.unwrap_or(0.0),
                        min: p.min,
                        max: p.max,
                    };
                    let h = ExponentialBuckets::from_parts(max_buckets, max_scale, &parts)
                        .ok_or(MetricImportError::Mismatch)?;
                    out.push((p.attributes, Aggregate::Exponential(h)));
                }
                out
            }
            _ => return Err(MetricImportError::Mismatch),
        };
        self.metrics[mi].interval_start = interval_start;
        let mut restored = 0;
        for (attributes, aggregate) in points {
            let overflow = attributes.len() == 1 && attributes[0].key == OVERFLOW_ATTRIBUTE;
            let cost = SERIES_COST
                + attributes.iter().map(key_value_bytes).sum::<usize>()
                + aggregate_bytes(&aggregate);
            let limit = self.cardinality_limit;
            let state = &self.metrics[mi];
            if !overflow && state.series.len() + 1 >= limit {
                return Err(MetricImportError::NoRoom);
            }
            if !self.take_bytes(cost) {
                return Err(MetricImportError::NoRoom);
            }
            let state = &mut self.metrics[mi];
            state.series_bytes += cost;
            state.interval_start = interval_start;
            let series = Series {
                attributes,
                aggregate,
                exemplar: None,
            };
            if overflow {
                state.overflow = Some(series);
            } else {
                state.series.push(series);
                state.unkeyed.push(state.series.len() - 1);
            }
            restored += 1;
        }
        Ok(restored)
    }
}

fn number(p: NumberDataPoint) -> (Vec<KeyValue>, Number) {
    let value = match p.value {
        Some(number_data_point::Value::AsDouble(d)) => Number::Double(d),
        Some(number_data_point::Value::AsInt(i)) => Number::Int(i),
        None => Number::Int(0),
    };
    (p.attributes, value)
}

fn sum_point(p: NumberDataPoint) -> (Vec<KeyValue>, Aggregate) {
    let (attrs, value) = number(p);
    let aggregate = match value {
        Number::Int(i) => Aggregate::Sum {
            int: i,
            double: i as f64,
            is_double: false,
        },
        Number::Double(d) => Aggregate::Sum {
            int: 0,
            double: d,
            is_double: true,
        },
    };
    (attrs, aggregate)
}

/// The restored series of `state` whose attributes are `attrs` (in any
/// order), now led to by the canonical key `canonical`; `None` when there is
/// none.
pub(crate) fn adopt(
    state: &mut MetricState,
    attrs: &[KeyValue],
    canonical: &[u8],
) -> Option<usize> {
    if state.unkeyed.is_empty() {
        return None;
    }
    let same = |a: &[KeyValue]| a.len() == attrs.len() && attrs.iter().all(|kv| a.contains(kv));
    let j = state
        .unkeyed
        .iter()
        .position(|&i| state.series.get(i).is_some_and(|s| same(&s.attributes)))?;
    let i = state.unkeyed.swap_remove(j);
    state.canonical.insert(canonical.into(), i);
    Some(i)
}
