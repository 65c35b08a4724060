//! Observable (asynchronous) instruments: their callbacks, the background
//! thread that runs them, and the conversion of observed totals into the raw
//! measurements the file carries.

use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use opentelemetry::metrics::AsyncInstrument;
use opentelemetry::{Array, Key, KeyValue, Value};

use crate::file::FileInner;
use crate::metrics::{Dated, Number, NumberValue, measurement_metric, write_measurement};

type Callback = Box<dyn Fn() + Send + Sync>;

/// A registered callback (shared, so that callbacks run without the
/// registry's lock held: a callback may register another instrument or call
/// `observe_now`).
type SharedCallback = Arc<dyn Fn() + Send + Sync>;

/// The callbacks of one meter provider and the thread that calls them.
pub(crate) struct ObserverRegistry {
    interval: Duration,
    callbacks: Mutex<Vec<SharedCallback>>,
    /// Dropping the sender (with the registry, or on shutdown) stops the thread.
    stop: Mutex<Option<Sender<()>>>,
}

impl std::fmt::Debug for ObserverRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserverRegistry")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl ObserverRegistry {
    pub(crate) fn new(interval: Duration) -> Self {
        ObserverRegistry {
            interval,
            callbacks: Mutex::new(Vec::new()),
            stop: Mutex::new(None),
        }
    }

    /// Adds a callback; the first one starts the thread.
    pub(crate) fn register(self: &Arc<Self>, callback: Callback) {
        self.callbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::from(callback));
        let mut stop = self.stop.lock().unwrap_or_else(|p| p.into_inner());
        if stop.is_none() {
            let (tx, rx) = mpsc::channel::<()>();
            let registry: Weak<Self> = Arc::downgrade(self);
            let interval = self.interval;
            let spawned = std::thread::Builder::new()
                .name("otlp-mmap-observe".into())
                .spawn(move || {
                    while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(interval) {
                        match registry.upgrade() {
                            Some(r) => r.observe_all(),
                            None => return,
                        }
                    }
                });
            if spawned.is_ok() {
                *stop = Some(tx);
            }
        }
    }

    /// Runs every callback once. A callback that panics is reported by the
    /// panic hook, as any panic is, and the others still run, then and at
    /// every later round.
    pub(crate) fn observe_all(&self) {
        let callbacks = self
            .callbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for cb in callbacks.iter() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb()));
        }
    }

    /// Stops the thread and forgets the callbacks.
    pub(crate) fn shutdown(&self) {
        self.stop.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.callbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// How observations become measurements.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reporting {
    /// Gauges: the observed value.
    AsObserved,
    /// Observable (up-down) counters observe totals: the change since the last
    /// observation of the same attribute set (the first one counts from 0).
    Difference,
}

/// The instrument handed to an observable's callbacks.
pub(crate) struct Observer {
    file: Arc<FileInner>,
    metric_ref: i64,
    reporting: Reporting,
    last: Mutex<HashMap<AttributeSet, Total>>,
}

impl Observer {
    pub(crate) fn new(file: Arc<FileInner>, metric_ref: i64, reporting: Reporting) -> Self {
        Observer {
            file,
            metric_ref,
            reporting,
            last: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Number> AsyncInstrument<T> for Observer {
    fn observe(&self, measurement: T, attributes: &[KeyValue]) {
        let value = match self.reporting {
            Reporting::AsObserved => measurement.value(),
            Reporting::Difference => {
                let total = measurement.total();
                let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
                match last.insert(AttributeSet::of(attributes), total) {
                    None => measurement.value(),
                    Some(previous) => total.since(previous),
                }
            }
        };
        let dated = match self.reporting {
            Reporting::AsObserved => Dated::Always,
            Reporting::Difference => Dated::ForExemplar,
        };
        write_measurement(
            &self.file,
            &measurement_metric(self.metric_ref),
            value,
            attributes,
            None,
            dated,
        );
    }
}

/// An observed total, exact in its own type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Total {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

impl Total {
    /// The change from `previous` to this total: exact for integers (a `u64`
    /// difference above `i64::MAX` is written as a double).
    fn since(self, previous: Total) -> NumberValue {
        match (self, previous) {
            (Total::Unsigned(v), Total::Unsigned(p)) if v >= p => match i64::try_from(v - p) {
                Ok(d) => NumberValue::Long(d),
                Err(_) => NumberValue::Double((v - p) as f64),
            },
            (Total::Unsigned(v), Total::Unsigned(p)) => match i64::try_from(p - v) {
                Ok(d) => NumberValue::Long(-d),
                Err(_) => NumberValue::Double(-((p - v) as f64)),
            },
            (Total::Signed(v), Total::Signed(p)) => NumberValue::Long(v.wrapping_sub(p)),
            (v, p) => NumberValue::Double(v.as_f64() - p.as_f64()),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Total::Unsigned(v) => v as f64,
            Total::Signed(v) => v as f64,
            Total::Float(v) => v,
        }
    }
}

/// An attribute set as the key of the last totals: sorted by key, with
/// doubles compared by their bits, so that a set holding NaN finds itself
/// again (`KeyValue`'s own equality says NaN differs from NaN: every
/// observation would count the whole total again and add an entry).
#[derive(Debug, PartialEq, Eq, Hash)]
struct AttributeSet(Vec<(Key, ValueKey)>);

/// An attribute value as [`AttributeSet`] compares it.
#[derive(Debug, PartialEq, Eq, Hash)]
enum ValueKey {
    Bool(bool),
    I64(i64),
    F64(u64),
    String(String),
    Bools(Vec<bool>),
    I64s(Vec<i64>),
    F64s(Vec<u64>),
    Strings(Vec<String>),
    /// A kind of value this crate does not know (`Value` is non-exhaustive).
    Other(String),
}

impl AttributeSet {
    fn of(attributes: &[KeyValue]) -> Self {
        let mut set: Vec<_> = attributes
            .iter()
            .map(|kv| (kv.key.clone(), ValueKey::of(&kv.value)))
            .collect();
        set.sort_by(|a, b| a.0.cmp(&b.0));
        AttributeSet(set)
    }
}

impl ValueKey {
    fn of(v: &Value) -> Self {
        match v {
            Value::Bool(b) => ValueKey::Bool(*b),
            Value::I64(i) => ValueKey::I64(*i),
            Value::F64(f) => ValueKey::F64(f.to_bits()),
            Value::String(s) => ValueKey::String(s.as_str().to_owned()),
            Value::Array(Array::Bool(v)) => ValueKey::Bools(v.clone()),
            Value::Array(Array::I64(v)) => ValueKey::I64s(v.clone()),
            Value::Array(Array::F64(v)) => ValueKey::F64s(v.iter().map(|f| f.to_bits()).collect()),
            Value::Array(Array::String(v)) => {
                ValueKey::Strings(v.iter().map(|s| s.as_str().to_owned()).collect())
            }
            #[allow(unreachable_patterns)]
            other => ValueKey::Other(format!("{other:?}")),
        }
    }
}
