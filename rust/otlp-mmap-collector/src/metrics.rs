//! `MetricAggregator`: aggregates raw measurements per metric and attribute set,
//! as each metric's `MetricRef` asks, and produces OTLP metrics on `collect`.
//!
//! - Sum: monotonic or not, DELTA or CUMULATIVE (UNSPECIFIED is taken as
//!   CUMULATIVE); int points while every value was an int, double otherwise.
//! - Gauge: the last value in ring order.
//! - Histogram: explicit buckets with upper-inclusive bounds, count, sum, min, max.
//! - Exponential histogram: see [`crate::exponential`].
//!
//! Cumulative series start at the file's `start_time_unix_nano` and live for
//! the stream's lifetime; delta series (and gauges) cover one collection
//! interval and are dropped after it is collected. Attribute sets are identified
//! regardless of key order. Each metric keeps at most `cardinality_limit` series;
//! the rest fold into one series with `otel.metric.overflow=true`, as the SDKs do.
//! The last measurement with a valid span context of each series becomes its
//! exemplar (all-zero ids are no span context: the reference Java writer
//! attaches one to every synchronous measurement).
//!
//! Memory is bounded per file: at most [`MAX_METRICS`] metrics, and the
//! metrics, series and series keys held cost at most `max_bytes` (what they
//! hold as [`crate::dictionary::value_bytes`] counts it, plus bucket counts);
//! past it a new series folds into the overflow series and a new metric is
//! dropped, both counted.

use rustc_hash::FxHashMap;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge,
    Histogram, HistogramDataPoint, Metric, NumberDataPoint, Sum, exemplar,
    exponential_histogram_data_point, metric, number_data_point,
};
use otlp_mmap_core::{MmapReader, proto};
use prost::Message;

use crate::dictionary::{DictionaryCache, key_value_bytes};
use crate::encode;
use crate::exponential::ExponentialBuckets;
use crate::group::RequestEncoder;
use crate::raw::{RawMeasurement, RawValue};
use otlp_mmap_core::view::{KeyValueRefView, Repeated, SpanContextView};

/// Where a raw attribute encoding leads: a series index, or the overflow series.
pub(crate) const OVERFLOW_SERIES: usize = usize::MAX;

/// Attribute of the overflow series.
pub const OVERFLOW_ATTRIBUTE: &str = "otel.metric.overflow";

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    Int(i64),
    Double(f64),
}

impl Number {
    fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Double(d) => d,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Aggregate {
    Sum {
        int: i64,
        double: f64,
        is_double: bool,
    },
    Gauge {
        value: Number,
        time: u64,
    },
    Histogram {
        counts: Vec<u64>,
        count: u64,
        sum: f64,
        min: f64,
        max: f64,
    },
    Exponential(ExponentialBuckets),
}

#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) attributes: Vec<KeyValue>,
    pub(crate) aggregate: Aggregate,
    pub(crate) exemplar: Option<LastExemplar>,
}

/// The last measurement of a series with a valid span context (kept
/// without allocating; it becomes an OTLP `Exemplar` on collection).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LastExemplar {
    time: u64,
    value: Number,
    trace_id: [u8; 16],
    span_id: [u8; 8],
}

impl LastExemplar {
    fn to_otlp(self) -> Exemplar {
        Exemplar {
            filtered_attributes: Vec::new(),
            time_unix_nano: self.time,
            span_id: self.span_id.to_vec(),
            trace_id: self.trace_id.to_vec(),
            value: Some(match self.value {
                Number::Int(i) => exemplar::Value::AsInt(i),
                Number::Double(d) => exemplar::Value::AsDouble(d),
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sum { monotonic: bool },
    Gauge,
    Histogram,
    Exponential { max_buckets: i64, max_scale: i64 },
}

#[derive(Debug)]
pub(crate) struct MetricState {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) unit: String,
    scope_ref: i64,
    pub(crate) kind: Kind,
    pub(crate) temporality: AggregationTemporality,
    pub(crate) bounds: Vec<f64>,
    /// Series in creation order.
    pub(crate) series: Vec<Series>,
    /// Series restored from a checkpoint that no attribute encoding leads
    /// to yet: the first measurement with the same attributes adopts one.
    pub(crate) unkeyed: Vec<usize>,
    /// Canonical attribute key (entries sorted by key ref) -> series index.
    pub(crate) canonical: FxHashMap<Box<[u8]>, usize>,
    /// Attribute fields exactly as a writer encoded them (contiguous, as
    /// [`RawMeasurement::attributes_wire`]) -> series index (or
    /// OVERFLOW_SERIES): the fast path, which neither decodes, sorts nor copies.
    wire_aliases: FxHashMap<Box<[u8]>, usize>,
    /// The same for attributes that are not contiguous: their entries, each
    /// after its length (4 bytes LE).
    aliases: FxHashMap<Box<[u8]>, usize>,
    pub(crate) overflow: Option<Series>,
    /// What the series, their keys and aliases hold (see `MetricAggregator::bytes`).
    pub(crate) series_bytes: usize,
    /// Start of the current delta interval.
    pub(crate) interval_start: u64,
}

/// Counters of the aggregator.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MetricCounters {
    /// Measurements folded into an overflow series.
    pub overflows: u64,
    /// Measurements whose metric_ref did not resolve to a metric definition.
    pub unknown_metric: u64,
    /// Measurements without a value, or with one the aggregation cannot
    /// take (NaN; an infinity for an exponential histogram).
    pub no_value: u64,
    /// Measurements dropped because the file already has [`MAX_METRICS`]
    /// metrics, or its metrics hold `max_bytes`.
    pub too_many_metrics: u64,
}

/// Most metrics (distinct metric definitions) aggregated per file; with
/// `cardinality_limit` series each, this bounds the series of a file.
pub const MAX_METRICS: usize = 10_000;
/// Most explicit bucket bounds of a histogram (the SDKs' defaults have 15);
/// further bounds are ignored (their values count in the last bucket).
pub const MAX_HISTOGRAM_BOUNDS: usize = 4096;
/// Default of the bytes the metrics of one file may hold.
pub const DEFAULT_MAX_METRIC_BYTES: usize = 64 << 20;

/// Bytes a metric costs besides its name, description, unit and bounds.
const METRIC_COST: usize = std::mem::size_of::<MetricState>() + 64;
/// Bytes a series costs besides its attributes and buckets.
pub(crate) const SERIES_COST: usize = std::mem::size_of::<Series>() + 64;
/// Bytes an exponential histogram bucket may cost (a BTreeMap entry).
const EXPONENTIAL_BUCKET_COST: usize = 24;
/// Where a measurement whose attributes went over the record budget leads.
const DROPPED: usize = usize::MAX - 1;

/// Aggregates the measurements of one file.
#[derive(Debug)]
pub struct MetricAggregator {
    /// Metrics in first-seen order (stable output order).
    pub(crate) metrics: Vec<MetricState>,
    /// Metric ref -> position in `metrics`.
    pub(crate) index: FxHashMap<i64, usize>,
    /// The metric of the last measurement (measurements of one metric often
    /// come in a row).
    last: Option<(i64, usize)>,
    pub(crate) cardinality_limit: usize,
    pub(crate) stream_start: u64,
    scratch: Vec<u8>,
    raw_key: Vec<u8>,
    /// The encoded metrics of a collection, and the request they are grouped into.
    arena: Vec<u8>,
    request: RequestEncoder,
    /// What the metrics hold, and the most they may.
    bytes: usize,
    max_bytes: usize,
    /// What the aggregator counted since it was created.
    pub counters: MetricCounters,
}

impl MetricAggregator {
    /// An aggregator for a stream that started at `stream_start` (the file's
    /// start time), holding at most [`DEFAULT_MAX_METRIC_BYTES`].
    pub fn new(cardinality_limit: usize, stream_start: u64) -> Self {
        MetricAggregator::with_max_bytes(cardinality_limit, stream_start, DEFAULT_MAX_METRIC_BYTES)
    }

    /// [`new`](Self::new), holding at most `max_bytes`.
    pub fn with_max_bytes(cardinality_limit: usize, stream_start: u64, max_bytes: usize) -> Self {
        MetricAggregator {
            metrics: Vec::new(),
            index: FxHashMap::default(),
            last: None,
            cardinality_limit: cardinality_limit.max(2),
            stream_start,
            scratch: Vec::new(),
            raw_key: Vec::new(),
            arena: Vec::new(),
            request: RequestEncoder::default(),
            bytes: 0,
            max_bytes,
            counters: MetricCounters::default(),
        }
    }

    /// What the metrics, series and their keys hold now, in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes `n` bytes from the budget; false when they do not fit.
    pub(crate) fn take_bytes(&mut self, n: usize) -> bool {
        if self.bytes.saturating_add(n) > self.max_bytes {
            return false;
        }
        self.bytes += n;
        true
    }

    /// Number of series held (all metrics).
    pub fn series_count(&self) -> usize {
        self.metrics
            .iter()
            .map(|m| m.series.len() + m.overflow.is_some() as usize)
            .sum()
    }

    /// Aggregates one measurement from its encoded bytes, read straight from
    /// its slot. Returns false when the bytes are not a Measurement.
    ///
    /// The fast path looks the series up by the attributes' bytes as the
    /// writer encoded them (writers encode the same set the same way every
    /// time), so it neither allocates nor decodes attributes; only the first
    /// measurement of each encoding takes the slow path, which resolves the
    /// set regardless of key order. A measurement whose metric definition or
    /// attributes go over the dictionary's record budget is dropped (the
    /// caller counts it from [`DictionaryCache::end_record`]).
    pub fn record_encoded(
        &mut self,
        file: &MmapReader,
        dict: &mut DictionaryCache,
        bytes: &[u8],
    ) -> bool {
        let Some(raw) = RawMeasurement::parse(bytes) else {
            return false;
        };
        let value = match raw.value {
            Some(RawValue::Long(i)) => Number::Int(i),
            Some(RawValue::Double(d)) => Number::Double(d),
            None => {
                self.counters.no_value += 1;
                return true;
            }
        };
        // Measurements of one metric often come in a row.
        let m = match self.last {
            Some((r, m)) if r == raw.metric_ref => m,
            _ => match self.metric(file, dict, raw.metric_ref) {
                Some(m) => m,
                None => return true,
            },
        };
        let index = match raw.attributes_wire {
            Some(key) => match self.metrics.get(m).and_then(|s| s.wire_aliases.get(key)) {
                Some(&i) => i,
                None => self.new_alias(file, dict, m, bytes, key),
            },
            None => self.scattered_index(file, dict, m, bytes),
        };
        if index == DROPPED {
            return true;
        }
        let exemplar = match raw.span_context {
            None => None,
            Some(b) => SpanContextView::parse(b).ok().filter(valid_span_context),
        };
        self.update_series(m, index, value, raw.time_unix_nano, exemplar.as_ref());
        true
    }

    /// The series of attributes that are not contiguous on the wire: keyed
    /// by their entries, each after its length (4 bytes LE).
    #[cold]
    fn scattered_index(
        &mut self,
        file: &MmapReader,
        dict: &mut DictionaryCache,
        m: usize,
        bytes: &[u8],
    ) -> usize {
        let Some(raw) = RawMeasurement::parse(bytes) else {
            return DROPPED;
        };
        let mut key = std::mem::take(&mut self.raw_key);
        key.clear();
        for entry in raw.attribute_entries() {
            key.extend_from_slice(&(entry.len() as u32).to_le_bytes());
            key.extend_from_slice(entry);
        }
        let index = match self
            .metrics
            .get(m)
            .and_then(|s| s.aliases.get(key.as_slice()))
        {
            Some(&i) => i,
            None => self.new_alias(file, dict, m, bytes, &key),
        };
        self.raw_key = key;
        index
    }

    /// The slow path, once per distinct encoding of an attribute set: finds
    /// (or creates) the series of the set of measurement `bytes` and
    /// remembers the encoding `key`. (The measurement is parsed again here,
    /// so that the fast path keeps its parse in registers.)
    #[inline(never)]
    fn new_alias(
        &mut self,
        file: &MmapReader,
        dict: &mut DictionaryCache,
        m: usize,
        bytes: &[u8],
        key: &[u8],
    ) -> usize {
        let Some(raw) = RawMeasurement::parse(bytes) else {
            return DROPPED;
        };
        let i = self.series_index(file, dict, m, raw.attributes());
        if i == DROPPED {
            return i;
        }
        // What the entries and their lengths take, however they are keyed.
        let cost = raw.attribute_bytes + 4 * raw.attribute_count + 32;
        let state = &self.metrics[m];
        let fits = state.aliases.len() + state.wire_aliases.len() < 4 * self.cardinality_limit
            && self.take_bytes(cost);
        if fits {
            let state = &mut self.metrics[m];
            let aliases = if raw.attributes_wire.is_some() {
                &mut state.wire_aliases
            } else {
                &mut state.aliases
            };
            aliases.insert(key.into(), i);
            state.series_bytes += cost;
        }
        i
    }

    /// Aggregates one decoded measurement (it is encoded again and takes the
    /// same path as a record read from a slot).
    pub fn record(
        &mut self,
        file: &MmapReader,
        dict: &mut DictionaryCache,
        m: &proto::Measurement,
    ) {
        self.record_encoded(file, dict, &m.encode_to_vec());
    }

    /// The position of the metric at `metric_ref`, its state created on
    /// first use; None when its definition does not resolve.
    pub(crate) fn metric(
        &mut self,
        file: &MmapReader,
        dict: &mut DictionaryCache,
        metric_ref: i64,
    ) -> Option<usize> {
        if let Some((r, m)) = self.last
            && r == metric_ref
        {
            return Some(m);
        }
        if let Some(&m) = self.index.get(&metric_ref) {
            self.last = Some((metric_ref, m));
            return Some(m);
        }
        if self.metrics.len() >= MAX_METRICS {
            self.counters.too_many_metrics += 1;
            return None;
        }
        let Some(def) = dict.metric(file, metric_ref) else {
            if !dict.over_budget() {
                self.counters.unknown_metric += 1;
            }
            return None;
        };
        dict.warm_scope(file, def.instrumentation_scope_ref);
        let state = new_state(def, self.stream_start);
        let cost = METRIC_COST
            + state.name.len()
            + state.description.len()
            + state.unit.len()
            + 8 * state.bounds.len();
        if !self.take_bytes(cost) {
            self.counters.too_many_metrics += 1;
            return None;
        }
        let m = self.metrics.len();
        self.metrics.push(state);
        self.index.insert(metric_ref, m);
        self.last = Some((metric_ref, m));
        Some(m)
    }

    /// The series of an attribute set (creating it, or the overflow series
    /// past the cardinality limit or the byte budget; DROPPED when its
    /// attributes go over the record budget). The set's identity ignores key
    /// order: its key is the encoded entries sorted by key ref.
    fn series_index(
        &mut self,
        file: &MmapReader,
        dict: &mut DictionaryCache,
        m: usize,
        attributes: Repeated<'_>,
    ) -> usize {
        let mut entries: Vec<(i64, &[u8])> = attributes
            .iter()
            .map(|e| (KeyValueRefView::parse(e).map_or(0, |kv| kv.key_ref), e))
            .collect();
        entries.sort_by_key(|&(key_ref, _)| key_ref);
        self.scratch.clear();
        for (_, e) in &entries {
            self.scratch
                .extend_from_slice(&(e.len() as u32).to_le_bytes());
            self.scratch.extend_from_slice(e);
        }
        let limit = self.cardinality_limit;
        let state = &self.metrics[m];
        if let Some(&i) = state.canonical.get(self.scratch.as_slice()) {
            return i;
        }
        // Restored series count in `series`: one of them may still be adopted.
        if state.series.len() + 1 >= limit && state.unkeyed.is_empty() {
            return OVERFLOW_SERIES;
        }
        let aggregate = new_aggregate(state.kind, &state.bounds);
        let attrs = dict.attributes(file, attributes);
        if dict.over_budget() {
            return DROPPED;
        }
        let state = &mut self.metrics[m];
        if let Some(i) = crate::metric_checkpoint::adopt(state, &attrs, &self.scratch) {
            return i;
        }
        if state.series.len() + 1 >= limit {
            return OVERFLOW_SERIES;
        }
        let cost = SERIES_COST
            + attrs.iter().map(key_value_bytes).sum::<usize>()
            + 2 * self.scratch.len()
            + aggregate_bytes(&aggregate);
        if !self.take_bytes(cost) {
            return OVERFLOW_SERIES;
        }
        let state = &mut self.metrics[m];
        state.series.push(Series {
            attributes: attrs,
            aggregate,
            exemplar: None,
        });
        state.series_bytes += cost;
        let i = state.series.len() - 1;
        state.canonical.insert(self.scratch.as_slice().into(), i);
        i
    }

    fn update_series(
        &mut self,
        m: usize,
        index: usize,
        value: Number,
        time: u64,
        span_context: Option<&SpanContextView<'_>>,
    ) {
        let state = &mut self.metrics[m];
        let series = if index == OVERFLOW_SERIES {
            self.counters.overflows += 1;
            let (kind, bounds) = (state.kind, &state.bounds);
            state.overflow.get_or_insert_with(|| Series {
                attributes: vec![KeyValue {
                    key: OVERFLOW_ATTRIBUTE.into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::BoolValue(true)),
                    }),
                    ..Default::default()
                }],
                aggregate: new_aggregate(kind, bounds),
                exemplar: None,
            })
        } else {
            match state.series.get_mut(index) {
                Some(s) => s,
                None => return,
            }
        };
        if !update(&mut series.aggregate, &state.bounds, value, time) {
            self.counters.no_value += 1;
            return;
        }
        if let Some(sc) = span_context {
            // Valid span contexts have ids of these lengths.
            if let (Ok(trace_id), Ok(span_id)) = (sc.trace_id.try_into(), sc.span_id.try_into()) {
                series.exemplar = Some(LastExemplar {
                    time,
                    value,
                    trace_id,
                    span_id,
                });
            }
        }
    }

    /// Appends the metrics of the interval ending at `now` to `out` as an
    /// `ExportMetricsServiceRequest` and returns its data points; `None`
    /// (nothing written) when there is nothing to report. Delta series and
    /// gauges are reset.
    pub fn collect(
        &mut self,
        file: &MmapReader,
        dict: &mut DictionaryCache,
        now: u64,
        out: &mut Vec<u8>,
    ) -> Option<u64> {
        self.arena.clear();
        let mut points = 0u64;
        for state in &mut self.metrics {
            let cumulative = state.temporality == AggregationTemporality::Cumulative;
            let start = if cumulative {
                self.stream_start
            } else {
                state.interval_start
            };
            let all: Vec<&Series> = state.series.iter().chain(state.overflow.iter()).collect();
            if all.is_empty() {
                continue;
            }
            let data = to_otlp(state, &all, start, now);
            points += all.len() as u64;
            let metric = Metric {
                name: state.name.clone(),
                description: state.description.clone(),
                unit: state.unit.clone(),
                metadata: Vec::new(),
                data: Some(data),
            };
            let at = self.arena.len();
            // Writing into a Vec does not fail (it grows as needed).
            if metric.encode(&mut self.arena).is_ok() {
                self.request
                    .push(state.scope_ref, at, self.arena.len() - at);
            }
            let reset = !cumulative || state.kind == Kind::Gauge;
            if reset {
                state.series.clear();
                state.unkeyed.clear();
                state.canonical.clear();
                state.aliases.clear();
                state.wire_aliases.clear();
                state.overflow = None;
                self.bytes -= std::mem::take(&mut state.series_bytes);
            } else {
                for s in state.series.iter_mut().chain(state.overflow.iter_mut()) {
                    s.exemplar = None;
                }
            }
            state.interval_start = now;
        }
        if points == 0 {
            return None;
        }
        self.request.encode_from(file, dict, &self.arena, out);
        encode::reuse(&mut self.arena, encode::KEEP_MAX);
        Some(points)
    }
}

fn new_state(def: proto::MetricRef, stream_start: u64) -> MetricState {
    use proto::metric_ref::Aggregation;
    let temporality = |t: i32| match t {
        1 => AggregationTemporality::Delta,
        _ => AggregationTemporality::Cumulative,
    };
    let (kind, temporality, bounds) = match def.aggregation {
        Some(Aggregation::Sum(s)) => (
            Kind::Sum {
                monotonic: s.is_monotonic,
            },
            temporality(s.aggregation_temporality),
            Vec::new(),
        ),
        Some(Aggregation::Histogram(h)) => {
            let mut b: Vec<f64> = h
                .bucket_boundaries
                .into_iter()
                .filter(|x| x.is_finite())
                .collect();
            b.sort_by(|a, c| a.total_cmp(c));
            b.dedup();
            // Every series holds a count per bucket: a definition claiming
            // millions of bounds must not cost that much per series.
            b.truncate(MAX_HISTOGRAM_BOUNDS);
            (Kind::Histogram, temporality(h.aggregation_temporality), b)
        }
        Some(Aggregation::ExpHist(e)) => (
            Kind::Exponential {
                max_buckets: e.max_buckets,
                max_scale: e.max_scale,
            },
            temporality(e.aggregation_temporality),
            Vec::new(),
        ),
        // A gauge, or a definition without an aggregation: report the last value.
        Some(Aggregation::Gauge(_)) | None => {
            (Kind::Gauge, AggregationTemporality::Cumulative, Vec::new())
        }
    };
    MetricState {
        name: def.name,
        description: def.description,
        unit: def.unit,
        scope_ref: def.instrumentation_scope_ref,
        kind,
        temporality,
        bounds,
        series: Vec::new(),
        unkeyed: Vec::new(),
        canonical: FxHashMap::default(),
        wire_aliases: FxHashMap::default(),
        aliases: FxHashMap::default(),
        overflow: None,
        series_bytes: 0,
        interval_start: stream_start,
    }
}

fn new_aggregate(kind: Kind, bounds: &[f64]) -> Aggregate {
    match kind {
        Kind::Sum { .. } => Aggregate::Sum {
            int: 0,
            double: 0.0,
            is_double: false,
        },
        Kind::Gauge => Aggregate::Gauge {
            value: Number::Int(0),
            time: 0,
        },
        Kind::Histogram => Aggregate::Histogram {
            counts: vec![0; bounds.len() + 1],
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        },
        Kind::Exponential {
            max_buckets,
            max_scale,
        } => Aggregate::Exponential(ExponentialBuckets::new(max_buckets, max_scale)),
    }
}

/// A span context with a trace id and a span id that are not all zeros.
fn valid_span_context(sc: &SpanContextView<'_>) -> bool {
    let nonzero = |id: &[u8]| id.iter().any(|&b| b != 0);
    sc.trace_id.len() == 16 && sc.span_id.len() == 8 && nonzero(sc.trace_id) && nonzero(sc.span_id)
}

/// What a new aggregate holds, at most (exponential buckets grow up to their maximum).
pub(crate) fn aggregate_bytes(agg: &Aggregate) -> usize {
    match agg {
        Aggregate::Histogram { counts, .. } => 8 * counts.len(),
        Aggregate::Exponential(h) => 2 * h.max_buckets() * EXPONENTIAL_BUCKET_COST,
        Aggregate::Sum { .. } | Aggregate::Gauge { .. } => 0,
    }
}

/// Folds `value` into `agg`; false when the aggregation cannot take it.
fn update(agg: &mut Aggregate, bounds: &[f64], value: Number, time: u64) -> bool {
    match agg {
        Aggregate::Sum {
            int,
            double,
            is_double,
        } => match value {
            Number::Int(i) => {
                *int = int.wrapping_add(i);
                *double += i as f64;
            }
            Number::Double(d) => {
                *is_double = true;
                *double += d;
            }
        },
        Aggregate::Gauge { value: v, time: t } => {
            // The last value in ring order.
            *v = value;
            *t = time;
        }
        Aggregate::Histogram {
            counts,
            count,
            sum,
            min,
            max,
        } => {
            let x = value.as_f64();
            if x.is_nan() {
                return false;
            }
            // Bucket i counts values in (bounds[i-1], bounds[i]].
            let i = bounds.partition_point(|b| *b < x);
            if let Some(c) = counts.get_mut(i) {
                *c += 1;
            }
            *count += 1;
            *sum += x;
            *min = min.min(x);
            *max = max.max(x);
        }
        Aggregate::Exponential(h) => {
            if !value.as_f64().is_finite() {
                return false;
            }
            h.record(value.as_f64());
        }
    }
    true
}

pub(crate) fn to_otlp(state: &MetricState, all: &[&Series], start: u64, now: u64) -> metric::Data {
    let temporality = state.temporality as i32;
    let exemplars = |s: &Series| s.exemplar.iter().map(|e| e.to_otlp()).collect::<Vec<_>>();
    match state.kind {
        Kind::Sum { monotonic } => metric::Data::Sum(Sum {
            data_points: all
                .iter()
                .map(|s| {
                    let Aggregate::Sum {
                        int,
                        double,
                        is_double,
                    } = s.aggregate
                    else {
                        unreachable!("sum metrics hold sum aggregates")
                    };
                    NumberDataPoint {
                        attributes: s.attributes.clone(),
                        start_time_unix_nano: start,
                        time_unix_nano: now,
                        exemplars: exemplars(s),
                        flags: 0,
                        value: Some(if is_double {
                            number_data_point::Value::AsDouble(double)
                        } else {
                            number_data_point::Value::AsInt(int)
                        }),
                    }
                })
                .collect(),
            aggregation_temporality: temporality,
            is_monotonic: monotonic,
        }),
        Kind::Gauge => metric::Data::Gauge(Gauge {
            data_points: all
                .iter()
                .map(|s| {
                    let Aggregate::Gauge { value, time } = s.aggregate else {
                        unreachable!("gauge metrics hold gauge aggregates")
                    };
                    NumberDataPoint {
                        attributes: s.attributes.clone(),
                        // A gauge has no start; its time is its last measurement's.
                        start_time_unix_nano: 0,
                        time_unix_nano: time,
                        exemplars: exemplars(s),
                        flags: 0,
                        value: Some(match value {
                            Number::Int(i) => number_data_point::Value::AsInt(i),
                            Number::Double(d) => number_data_point::Value::AsDouble(d),
                        }),
                    }
                })
                .collect(),
        }),
        Kind::Histogram => metric::Data::Histogram(Histogram {
            data_points: all
                .iter()
                .map(|s| {
                    let Aggregate::Histogram {
                        counts,
                        count,
                        sum,
                        min,
                        max,
                    } = &s.aggregate
                    else {
                        unreachable!("histogram metrics hold histogram aggregates")
                    };
                    HistogramDataPoint {
                        attributes: s.attributes.clone(),
                        start_time_unix_nano: start,
                        time_unix_nano: now,
                        count: *count,
                        sum: Some(*sum),
                        bucket_counts: counts.clone(),
                        explicit_bounds: state.bounds.clone(),
                        exemplars: exemplars(s),
                        flags: 0,
                        min: (*count > 0).then_some(*min),
                        max: (*count > 0).then_some(*max),
                    }
                })
                .collect(),
            aggregation_temporality: temporality,
        }),
        Kind::Exponential { .. } => metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: all
                .iter()
                .map(|s| {
                    let Aggregate::Exponential(h) = &s.aggregate else {
                        unreachable!("exponential metrics hold exponential aggregates")
                    };
                    let (po, pc) = h.positive.dense();
                    let (no, nc) = h.negative.dense();
                    ExponentialHistogramDataPoint {
                        attributes: s.attributes.clone(),
                        start_time_unix_nano: start,
                        time_unix_nano: now,
                        count: h.count,
                        sum: Some(h.sum),
                        scale: h.scale,
                        zero_count: h.zero_count,
                        positive: Some(exponential_histogram_data_point::Buckets {
                            offset: po,
                            bucket_counts: pc,
                        }),
                        negative: Some(exponential_histogram_data_point::Buckets {
                            offset: no,
                            bucket_counts: nc,
                        }),
                        flags: 0,
                        exemplars: exemplars(s),
                        min: (h.count > 0).then_some(h.min),
                        max: (h.count > 0).then_some(h.max),
                        zero_threshold: 0.0,
                    }
                })
                .collect(),
            aggregation_temporality: temporality,
        }),
    }
}
