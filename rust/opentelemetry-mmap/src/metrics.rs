//! The metrics API implemented directly on the file: [`MmapMeterProvider`]
//! and its instruments.
//!
//! Each instrument's definition is stored once, when it is created, as an
//! interned `MetricRef` (name, description, unit, scope, aggregation):
//!
//! | instrument | aggregation in `MetricRef` |
//! |---|---|
//! | `Counter<u64>`, `Counter<f64>`, observable counters | `Sum { CUMULATIVE, monotonic }` |
//! | `UpDownCounter<i64>`, `UpDownCounter<f64>`, observable up-down counters | `Sum { CUMULATIVE, non-monotonic }` |
//! | `Histogram<u64>`, `Histogram<f64>` | `Histogram { CUMULATIVE, bounds }`: the builder's boundaries, else OpenTelemetry's defaults ([`DEFAULT_HISTOGRAM_BOUNDARIES`]) |
//! | `Gauge<u64/i64/f64>`, observable gauges | `Gauge` |
//!
//! Every `add`/`record` writes one raw `Measurement` (metric ref, attributes,
//! `as_long` for integers or `as_double`, and the span context of the
//! active span if there is one); the collector aggregates. A `u64` above
//! `i64::MAX` is written as `as_double`. A measurement's time, from the
//! coarse wall clock ([`crate::clock::measurement_now_unix_nano`], exact to
//! a kernel tick), dates only a gauge's last value and an exemplar: a
//! gauge's measurements carry it always, those of sums and histograms only
//! with a span context (their aggregates are dated by their collection, so
//! no clock is read for them, as in the OpenTelemetry SDKs).
//!
//! **Observable instruments** are supported: their callbacks run on one
//! background thread per provider, every `OTEL_METRIC_EXPORT_INTERVAL`
//! milliseconds (default 60 s, or [`MmapMeterProvider::with_interval`]), and
//! on [`MmapMeterProvider::observe_now`]. Observable gauges write what they
//! observe. Observable (up-down) counters observe running totals, while the
//! collector sums raw measurements, so the provider writes the difference
//! from the previous observation of the same attribute set (doubles in the
//! set compared by their bits, totals kept exact in their own type). A
//! callback that panics is reported by the panic hook; the others still run.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::{
    AsyncInstrumentBuilder, Counter, Gauge, Histogram, HistogramBuilder, InstrumentBuilder,
    InstrumentProvider, Meter, MeterProvider, ObservableCounter, ObservableGauge,
    ObservableUpDownCounter, SyncInstrument, UpDownCounter,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use otlp_mmap_core::{RingKind, proto};

use crate::clock::measurement_now_unix_nano;
use crate::encode::{EncodedKey, SpanIds, put_attrs, put_span_context};
use crate::file::{FileInner, MmapExporterFile};
use crate::key_cache::with_keys;
use crate::observable::{Observer, ObserverRegistry, Reporting, Total};
use crate::trace::active_span_ids;

/// OpenTelemetry's default explicit bucket boundaries.
pub const DEFAULT_HISTOGRAM_BOUNDARIES: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

/// A `MeterProvider` whose measurements are written straight into the file.
#[derive(Clone, Debug)]
pub struct MmapMeterProvider {
    file: MmapExporterFile,
    observers: Arc<ObserverRegistry>,
}

impl MmapMeterProvider {
    /// A provider writing into `file`; observable callbacks run every
    /// `OTEL_METRIC_EXPORT_INTERVAL` ms (default 60 s).
    pub fn new(file: &MmapExporterFile) -> Self {
        Self::with_interval(file, crate::config::metric_interval_from_env())
    }

    /// A provider whose observable callbacks run every `interval`.
    pub fn with_interval(file: &MmapExporterFile, interval: Duration) -> Self {
        MmapMeterProvider {
            file: file.clone(),
            observers: Arc::new(ObserverRegistry::new(interval)),
        }
    }

    /// The file written to.
    pub fn file(&self) -> &MmapExporterFile {
        &self.file
    }

    /// Runs every observable callback now, on this thread.
    pub fn observe_now(&self) {
        self.observers.observe_all();
    }

    /// Reports the file's drop counters as the application's own metric: an
    /// observable counter `otlp_mmap.dropped` (unit `{record}`) with attribute
    /// `signal` = `spans`, `logs`, `measurements` or `dictionary`, observed with
    /// the other observable instruments.
    pub fn export_drop_stats(&self) -> ObservableCounter<u64> {
        let file = self.file.clone();
        self.meter("opentelemetry-mmap")
            .u64_observable_counter("otlp_mmap.dropped")
            .with_description("Records the OTLP-MMAP writer dropped (ring full, record too large, dictionary entry not stored, encoding error)")
            .with_unit("{record}")
            .with_callback(move |obs| {
                let s = file.drop_stats();
                for (signal, n) in [
                    ("spans", s.spans),
                    ("logs", s.logs),
                    ("measurements", s.measurements),
                    ("dictionary", s.dictionary),
                ] {
                    obs.observe(n, &[KeyValue::new("signal", signal)]);
                }
            })
            .build()
    }

    /// Stops the callback thread and forgets every callback.
    pub fn shutdown(&self) {
        self.observers.shutdown();
    }
}

impl MeterProvider for MmapMeterProvider {
    fn meter_with_scope(&self, scope: InstrumentationScope) -> Meter {
        Meter::new(Arc::new(MmapInstrumentProvider {
            scope_ref: self.file.scope_ref(&scope),
            file: self.file.inner.clone(),
            observers: self.observers.clone(),
        }))
    }
}

/// Creates the instruments of one meter.
struct MmapInstrumentProvider {
    file: Arc<FileInner>,
    scope_ref: i64,
    observers: Arc<ObserverRegistry>,
}

/// The aggregation an instrument asks the collector for.
#[derive(Clone, Copy)]
pub(crate) enum Aggregation<'a> {
    MonotonicSum,
    Sum,
    Histogram(&'a [f64]),
    Gauge,
}

/// Interns the `MetricRef` of an instrument of scope `scope_ref`; 0 when
/// the dictionary could not store it.
pub(crate) fn intern_metric_ref(
    file: &FileInner,
    scope_ref: i64,
    name: &str,
    description: &str,
    unit: &str,
    aggregation: Aggregation<'_>,
) -> i64 {
    use proto::metric_ref::{Aggregation as A, Gauge, Histogram, Sum};
    let cumulative = proto::AggregationTemporality::Cumulative as i32;
    let aggregation = match aggregation {
        Aggregation::MonotonicSum | Aggregation::Sum => A::Sum(Sum {
            aggregation_temporality: cumulative,
            is_monotonic: matches!(aggregation, Aggregation::MonotonicSum),
        }),
        Aggregation::Histogram(bounds) => A::Histogram(Histogram {
            aggregation_temporality: cumulative,
            bucket_boundaries: bounds.to_vec(),
        }),
        Aggregation::Gauge => A::Gauge(Gauge {}),
    };
    file.intern_message(&proto::MetricRef {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: unit.to_owned(),
        instrumentation_scope_ref: scope_ref,
        aggregation: Some(aggregation),
    })
}

impl MmapInstrumentProvider {
    fn metric_ref(
        &self,
        name: &str,
        description: Option<&str>,
        unit: Option<&str>,
        aggregation: Aggregation<'_>,
    ) -> i64 {
        intern_metric_ref(
            &self.file,
            self.scope_ref,
            name,
            description.unwrap_or_default(),
            unit.unwrap_or_default(),
            aggregation,
        )
    }

    fn sync<T>(
        &self,
        b: &InstrumentBuilder<'_, T>,
        aggregation: Aggregation<'_>,
    ) -> Arc<MmapInstrument> {
        Arc::new(MmapInstrument {
            metric: measurement_metric(self.metric_ref(
                &b.name,
                b.description.as_deref(),
                b.unit.as_deref(),
                aggregation,
            )),
            dated: Dated::of(&aggregation),
            file: self.file.clone(),
        })
    }

    fn histogram<T>(&self, b: &HistogramBuilder<'_, T>) -> Arc<MmapInstrument> {
        let bounds = b
            .boundaries
            .as_deref()
            .unwrap_or(&DEFAULT_HISTOGRAM_BOUNDARIES);
        Arc::new(MmapInstrument {
            metric: measurement_metric(self.metric_ref(
                &b.name,
                b.description.as_deref(),
                b.unit.as_deref(),
                Aggregation::Histogram(bounds),
            )),
            dated: Dated::ForExemplar,
            file: self.file.clone(),
        })
    }

    fn observable<I, M: Number>(
        &self,
        b: AsyncInstrumentBuilder<'_, I, M>,
        aggregation: Aggregation<'_>,
    ) {
        let metric_ref = self.metric_ref(
            &b.name,
            b.description.as_deref(),
            b.unit.as_deref(),
            aggregation,
        );
        let reporting = match aggregation {
            Aggregation::Gauge => Reporting::AsObserved,
            _ => Reporting::Difference,
        };
        let observer = Arc::new(Observer::new(self.file.clone(), metric_ref, reporting));
        for callback in b.callbacks {
            let observer = observer.clone();
            self.observers.register(Box::new(move || {
                callback(&*observer as &dyn opentelemetry::metrics::AsyncInstrument<M>)
            }));
        }
    }
}

impl InstrumentProvider for MmapInstrumentProvider {
    fn u64_counter(&self, b: InstrumentBuilder<'_, Counter<u64>>) -> Counter<u64> {
        Counter::new(self.sync(&b, Aggregation::MonotonicSum))
    }
    fn f64_counter(&self, b: InstrumentBuilder<'_, Counter<f64>>) -> Counter<f64> {
        Counter::new(self.sync(&b, Aggregation::MonotonicSum))
    }
    fn i64_up_down_counter(
        &self,
        b: InstrumentBuilder<'_, UpDownCounter<i64>>,
    ) -> UpDownCounter<i64> {
        UpDownCounter::new(self.sync(&b, Aggregation::Sum))
    }
    fn f64_up_down_counter(
        &self,
        b: InstrumentBuilder<'_, UpDownCounter<f64>>,
    ) -> UpDownCounter<f64> {
        UpDownCounter::new(self.sync(&b, Aggregation::Sum))
    }
    fn u64_gauge(&self, b: InstrumentBuilder<'_, Gauge<u64>>) -> Gauge<u64> {
        Gauge::new(self.sync(&b, Aggregation::Gauge))
    }
    fn i64_gauge(&self, b: InstrumentBuilder<'_, Gauge<i64>>) -> Gauge<i64> {
        Gauge::new(self.sync(&b, Aggregation::Gauge))
    }
    fn f64_gauge(&self, b: InstrumentBuilder<'_, Gauge<f64>>) -> Gauge<f64> {
        Gauge::new(self.sync(&b, Aggregation::Gauge))
    }
    fn f64_histogram(&self, b: HistogramBuilder<'_, Histogram<f64>>) -> Histogram<f64> {
        Histogram::new(self.histogram(&b))
    }
    fn u64_histogram(&self, b: HistogramBuilder<'_, Histogram<u64>>) -> Histogram<u64> {
        Histogram::new(self.histogram(&b))
    }
    fn u64_observable_counter(
        &self,
        b: AsyncInstrumentBuilder<'_, ObservableCounter<u64>, u64>,
    ) -> ObservableCounter<u64> {
        self.observable(b, Aggregation::MonotonicSum);
        ObservableCounter::new()
    }
    fn f64_observable_counter(
        &self,
        b: AsyncInstrumentBuilder<'_, ObservableCounter<f64>, f64>,
    ) -> ObservableCounter<f64> {
        self.observable(b, Aggregation::MonotonicSum);
        ObservableCounter::new()
    }
    fn i64_observable_up_down_counter(
        &self,
        b: AsyncInstrumentBuilder<'_, ObservableUpDownCounter<i64>, i64>,
    ) -> ObservableUpDownCounter<i64> {
        self.observable(b, Aggregation::Sum);
        ObservableUpDownCounter::new()
    }
    fn f64_observable_up_down_counter(
        &self,
        b: AsyncInstrumentBuilder<'_, ObservableUpDownCounter<f64>, f64>,
    ) -> ObservableUpDownCounter<f64> {
        self.observable(b, Aggregation::Sum);
        ObservableUpDownCounter::new()
    }
    fn u64_observable_gauge(
        &self,
        b: AsyncInstrumentBuilder<'_, ObservableGauge<u64>, u64>,
    ) -> ObservableGauge<u64> {
        self.observable(b, Aggregation::Gauge);
        ObservableGauge::new()
    }
    fn i64_observable_gauge(
        &self,
        b: AsyncInstrumentBuilder<'_, ObservableGauge<i64>, i64>,
    ) -> ObservableGauge<i64> {
        self.observable(b, Aggregation::Gauge);
        ObservableGauge::new()
    }
    fn f64_observable_gauge(
        &self,
        b: AsyncInstrumentBuilder<'_, ObservableGauge<f64>, f64>,
    ) -> ObservableGauge<f64> {
        self.observable(b, Aggregation::Gauge);
        ObservableGauge::new()
    }
}

/// A measured value as the `Measurement` oneof carries it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum NumberValue {
    Long(i64),
    Double(f64),
}

/// The number types instruments measure.
pub(crate) trait Number: Copy + Send + Sync + 'static {
    /// The value as a `Measurement` carries it.
    fn value(self) -> NumberValue;
    /// The value as an observed total, exact in its own type.
    fn total(self) -> Total;
}

impl Number for u64 {
    #[inline]
    fn value(self) -> NumberValue {
        match i64::try_from(self) {
            Ok(v) => NumberValue::Long(v),
            Err(_) => NumberValue::Double(self as f64),
        }
    }
    fn total(self) -> Total {
        Total::Unsigned(self)
    }
}

impl Number for i64 {
    #[inline]
    fn value(self) -> NumberValue {
        NumberValue::Long(self)
    }
    fn total(self) -> Total {
        Total::Signed(self)
    }
}

impl Number for f64 {
    #[inline]
    fn value(self) -> NumberValue {
        NumberValue::Double(self)
    }
    fn total(self) -> Total {
        Total::Float(self)
    }
}

// Measurement field numbers, from `proto/mmap.proto`.
use otlp_mmap_core::tags::measurement::{
    AS_DOUBLE, AS_LONG, ATTRIBUTES, METRIC_REF, SPAN_CONTEXT, TIME_UNIX_NANO as TIME,
};

/// The `metric_ref` field of a `Measurement`, encoded (once per instrument).
pub(crate) fn measurement_metric(metric_ref: i64) -> EncodedKey {
    EncodedKey::varint_field(METRIC_REF, metric_ref as u64)
}

/// When a measurement carries its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dated {
    /// Always: a gauge's value is dated by its last measurement.
    Always,
    /// Only with a span context, for its exemplar: the aggregate of a sum
    /// or a histogram is dated by its collection, so no clock is read for
    /// it (the OpenTelemetry SDKs read none per measurement either).
    ForExemplar,
}

impl Dated {
    pub(crate) fn of(aggregation: &Aggregation<'_>) -> Self {
        match aggregation {
            Aggregation::Gauge => Dated::Always,
            Aggregation::MonotonicSum | Aggregation::Sum | Aggregation::Histogram(_) => {
                Dated::ForExemplar
            }
        }
    }
}

/// Writes one `Measurement` of the metric whose field is `metric`
/// ([`measurement_metric`]), with its time as `dated` says.
#[inline]
pub(crate) fn write_measurement(
    file: &FileInner,
    metric: &EncodedKey,
    value: NumberValue,
    attrs: &[KeyValue],
    span: Option<SpanIds>,
    dated: Dated,
) {
    if metric.len() == 0 {
        // The instrument's definition is not in the dictionary: no reader
        // could tell which metric this measurement belongs to.
        file.drop_for_missing_entry(RingKind::Measurements);
        return;
    }
    let time = match (dated, &span) {
        (Dated::ForExemplar, None) => 0,
        _ => measurement_now_unix_nano(),
    };
    with_keys(file, |keys| {
        let _ = keys.write(RingKind::Measurements, |w, k| {
            w.encoded(metric);
            put_attrs(w, ATTRIBUTES, attrs, k);
            if time != 0 {
                w.fixed64_field(TIME, time);
            }
            match value {
                NumberValue::Long(v) => w.varint_field(AS_LONG, v as u64),
                NumberValue::Double(v) => w.fixed64_field(AS_DOUBLE, v.to_bits()),
            }
            if let Some(s) = &span {
                put_span_context(w, SPAN_CONTEXT, s);
            }
        });
    });
}

/// A synchronous instrument: every measurement is one record.
struct MmapInstrument {
    file: Arc<FileInner>,
    /// The instrument's `metric_ref` field ([`measurement_metric`]).
    metric: EncodedKey,
    dated: Dated,
}

impl<T: Number> SyncInstrument<T> for MmapInstrument {
    #[inline]
    fn measure(&self, measurement: T, attributes: &[KeyValue]) {
        write_measurement(
            &self.file,
            &self.metric,
            measurement.value(),
            attributes,
            active_span_ids(),
            self.dated,
        );
    }
}
