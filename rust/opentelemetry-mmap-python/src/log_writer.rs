//! `LogWriter`: the `on_emit` of `MmapLogRecordProcessor`, reading the
//! Python SDK's log record objects directly: one `Event` per record (time,
//! severity, body, attributes, event name, the span it was written in).

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use opentelemetry_mmap::MmapExporterFile;
use opentelemetry_mmap::clock::now_unix_nano;
use opentelemetry_mmap::records::LogRecordFields;
use pyo3::intern;
use pyo3::prelude::*;

use crate::convert::span_ref;
use crate::convert::{any_key_values, any_value};
use crate::file::MmapFile;
use crate::gil::write;
use crate::target::{Target, report_once, scope_ref_of};

/// Writes the log records of one `MmapLogRecordProcessor`.
#[pyclass(module = "opentelemetry_mmap._native", frozen, weakref)]
pub(crate) struct LogWriter {
    target: Mutex<Target>,
    reported: AtomicBool,
}

fn attr_or_none<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, pyo3::types::PyString>,
) -> Option<Bound<'py, PyAny>> {
    obj.getattr(name).ok().filter(|v| !v.is_none())
}

fn int_attr<T: for<'a, 'py> FromPyObject<'a, 'py>>(
    obj: &Bound<'_, PyAny>,
    name: &Bound<'_, pyo3::types::PyString>,
) -> Option<T> {
    attr_or_none(obj, name).and_then(|v| v.extract::<T>().ok())
}

impl LogWriter {
    fn file(&self) -> Option<MmapExporterFile> {
        self.target.lock().ok()?.file.clone()
    }

    fn emit(&self, item: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = item.py();
        let Some(file) = self.file() else {
            return Ok(());
        };
        // The SDK's ReadWriteLogRecord (or, before 1.35, LogData) wraps the record.
        let record = attr_or_none(item, intern!(py, "log_record")).unwrap_or_else(|| item.clone());
        let resource = attr_or_none(item, intern!(py, "resource"))
            .or_else(|| attr_or_none(&record, intern!(py, "resource")))
            .unwrap_or_else(|| py.None().into_bound(py));
        let scope = attr_or_none(item, intern!(py, "instrumentation_scope"))
            .unwrap_or_else(|| py.None().into_bound(py));
        let cached = self
            .target
            .lock()
            .ok()
            .and_then(|t| t.cached_scope(&scope, &resource));
        let scope_ref = match cached {
            Some(r) => r,
            None => {
                let r = scope_ref_of(&file, &scope, &resource);
                // Dropped after the lock (see `Released`).
                let _released =
                    (self.target.lock().ok()).map(|mut t| t.remember_scope(&scope, &resource, r));
                r
            }
        };
        let time = int_attr::<u64>(&record, intern!(py, "timestamp"))
            .filter(|t| *t != 0)
            .or_else(|| int_attr::<u64>(&record, intern!(py, "observed_timestamp")))
            .unwrap_or_else(now_unix_nano);
        let severity = attr_or_none(&record, intern!(py, "severity_number"))
            .and_then(|s| {
                s.getattr(intern!(py, "_value_"))
                    .or_else(|_| s.getattr(intern!(py, "value")))
                    .ok()
            })
            .and_then(|v| v.extract::<u64>().ok())
            .unwrap_or(0);
        let severity_text: Option<String> =
            attr_or_none(&record, intern!(py, "severity_text")).and_then(|v| v.extract().ok());
        let event_name: Option<String> =
            attr_or_none(&record, intern!(py, "event_name")).and_then(|v| v.extract().ok());
        let body = attr_or_none(&record, intern!(py, "body")).and_then(|b| any_value(&b, 0));
        let attributes = attr_or_none(&record, intern!(py, "attributes"));
        let attributes = any_key_values(attributes.as_ref());
        let trace_id = int_attr::<u128>(&record, intern!(py, "trace_id")).unwrap_or(0);
        let span_id = int_attr::<u64>(&record, intern!(py, "span_id")).unwrap_or(0);
        let flags = int_attr::<u8>(&record, intern!(py, "trace_flags")).unwrap_or(0);
        let fields = LogRecordFields {
            scope_ref,
            time_unix_nano: time,
            severity_number: severity,
            severity_text: severity_text.as_deref().unwrap_or_default(),
            body: body.as_ref(),
            event_name: event_name.as_deref().unwrap_or_default(),
            span: (trace_id != 0 && span_id != 0).then(|| span_ref(trace_id, span_id, flags)),
            attributes: &attributes,
        };
        write(py, || file.write_log_record(&fields));
        Ok(())
    }
}

#[pymethods]
impl LogWriter {
    #[new]
    fn new() -> Self {
        LogWriter {
            target: Mutex::new(Target::default()),
            reported: AtomicBool::new(false),
        }
    }

    /// Writes into `file` from now on (`None`: nothing is written).
    #[pyo3(signature = (file=None))]
    fn set_file(&self, file: Option<PyRef<'_, MmapFile>>) {
        let file = file.and_then(|f| f.file.clone());
        // Dropped after the lock (see `Released`).
        let _released = self.target.lock().ok().map(|mut t| t.set_file(file));
    }

    /// The SDK's `LogRecordProcessor.on_emit` (`emit` before 1.35). Never raises.
    fn on_emit(&self, py: Python<'_>, log_record: &Bound<'_, PyAny>) {
        if let Err(e) = self.emit(log_record) {
            report_once(py, &self.reported, "log record", &e);
        }
    }
}
