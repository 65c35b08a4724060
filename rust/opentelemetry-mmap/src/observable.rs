//! Observable (asynchronous) instruments: their callbacks, the background
//! thread that runs them, and the conversion of observed totals into the raw
//! measurements the file carries.

use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::AsyncInstrument;

use crate::file::FileInner;
use crate::metrics::{Number, NumberValue, measurement_metric, write_measurement};

type Callback = Box<dyn Fn() + Send + Sync>;

/// The callbacks of one meter provider and the thread that calls them.
pub(crate) struct ObserverRegistry {
    interval: Duration,
    callbacks: Mutex<Vec<Callback>>,
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
            .push(callback);
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

    /// Runs every callback once.
    pub(crate) fn observe_all(&self) {
        let callbacks = self.callbacks.lock().unwrap_or_else(|p| p.into_inner());
        for cb in callbacks.iter() {
            cb();
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
    last: Mutex<HashMap<Vec<KeyValue>, NumberValue>>,
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
        let value = measurement.value();
        let value = match self.reporting {
            Reporting::AsObserved => value,
            Reporting::Difference => {
                let mut key = attributes.to_vec();
                key.sort_by(|a, b| a.key.cmp(&b.key));
                let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
                let previous = last.insert(key, value);
                match (previous, value) {
                    (None, v) => v,
                    (Some(NumberValue::Long(p)), NumberValue::Long(v)) => {
                        NumberValue::Long(v.wrapping_sub(p))
                    }
                    (Some(p), v) => NumberValue::Double(as_f64(v) - as_f64(p)),
                }
            }
        };
        write_measurement(
            &self.file,
            &measurement_metric(self.metric_ref),
            value,
            attributes,
            None,
        );
    }
}

fn as_f64(v: NumberValue) -> f64 {
    match v {
        NumberValue::Long(v) => v as f64,
        NumberValue::Double(v) => v,
    }
}
