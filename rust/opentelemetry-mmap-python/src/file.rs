//! `MmapFile`: one open OTLP-MMAP file of this process (interning of
//! resources, scopes and instruments, measurements, drop counts), written
//! through the record writers of `opentelemetry_mmap::records`. The span and
//! log writers are pointed at it (`set_file`).

use opentelemetry::InstrumentationScope;
use opentelemetry_mmap::MmapExporterFile;
use opentelemetry_mmap::records::{InstrumentKind, Measured};
use opentelemetry_sdk::Resource;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat};

use crate::convert::{key_values, span_ref};
use crate::gil::write;

/// Interns a resource given by its attributes.
pub(crate) fn intern_resource(
    file: &MmapExporterFile,
    attributes: Option<&Bound<'_, PyAny>>,
) -> i64 {
    let resource = Resource::builder_empty()
        .with_attributes(key_values(attributes))
        .build();
    file.resource_ref_of(&resource)
}

/// Interns an instrumentation scope under `resource_ref`.
pub(crate) fn intern_scope(
    file: &MmapExporterFile,
    resource_ref: i64,
    name: String,
    version: Option<String>,
    schema_url: Option<String>,
    attributes: Option<&Bound<'_, PyAny>>,
) -> i64 {
    let mut scope = InstrumentationScope::builder(name);
    if let Some(v) = version {
        scope = scope.with_version(v);
    }
    if let Some(s) = schema_url {
        scope = scope.with_schema_url(s);
    }
    let scope = scope.with_attributes(key_values(attributes)).build();
    file.scope_ref_in(&scope, resource_ref)
}

/// An OTLP-MMAP file this process writes. Created (replacing any file at the
/// path) with the ring sizes of the `OTEL_MMAP_*` variables.
#[pyclass(module = "opentelemetry_mmap._native")]
pub(crate) struct MmapFile {
    pub(crate) file: Option<MmapExporterFile>,
}

impl MmapFile {
    fn file(&self) -> Option<&MmapExporterFile> {
        self.file.as_ref()
    }
}

#[pymethods]
impl MmapFile {
    /// Creates the file at `path` (its directory too).
    #[new]
    fn new(path: std::path::PathBuf) -> PyResult<Self> {
        let file = MmapExporterFile::builder()
            .with_path(path)
            .build()
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        Ok(MmapFile { file: Some(file) })
    }

    /// The file's path; `None` once closed.
    fn path(&self) -> Option<String> {
        self.file().map(|f| f.path().display().to_string())
    }

    /// Unmaps and closes the file (in a forked child, the parent's file):
    /// later writes do nothing.
    fn close(&mut self) {
        self.file = None;
    }

    /// Interns a resource (its attributes) and returns its ref.
    fn resource_ref(&self, attributes: Option<Bound<'_, PyAny>>) -> i64 {
        let Some(file) = self.file() else { return 0 };
        intern_resource(file, attributes.as_ref())
    }

    /// Interns an instrumentation scope under `resource_ref` and returns its ref.
    #[pyo3(signature = (resource_ref, name, version=None, schema_url=None, attributes=None))]
    fn scope_ref(
        &self,
        resource_ref: i64,
        name: String,
        version: Option<String>,
        schema_url: Option<String>,
        attributes: Option<Bound<'_, PyAny>>,
    ) -> i64 {
        let Some(file) = self.file() else { return 0 };
        intern_scope(
            file,
            resource_ref,
            name,
            version,
            schema_url,
            attributes.as_ref(),
        )
    }

    /// Interns an instrument's definition. `kind`: 0 counter, 1 up-down
    /// counter, 2 histogram (with `boundaries`), 3 gauge.
    #[pyo3(signature = (scope_ref, name, description="", unit="", kind=0, boundaries=None))]
    fn metric_ref(
        &self,
        scope_ref: i64,
        name: &str,
        description: &str,
        unit: &str,
        kind: u8,
        boundaries: Option<Vec<f64>>,
    ) -> i64 {
        let Some(file) = self.file() else { return 0 };
        let kind = match kind {
            0 => InstrumentKind::Counter,
            1 => InstrumentKind::UpDownCounter,
            2 => InstrumentKind::Histogram(
                boundaries
                    .as_deref()
                    .unwrap_or(&opentelemetry_mmap::metrics::DEFAULT_HISTOGRAM_BOUNDARIES),
            ),
            _ => InstrumentKind::Gauge,
        };
        file.metric_ref(scope_ref, name, description, unit, kind)
    }

    /// Writes one measurement (an `int` as `as_long`, a `float` as
    /// `as_double`), timed now. `trace_id` 0 is no span.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (metric_ref, value, attributes=None, trace_id=0, span_id=0, trace_flags=0))]
    fn measure(
        &self,
        py: Python<'_>,
        metric_ref: i64,
        value: Bound<'_, PyAny>,
        attributes: Option<Bound<'_, PyAny>>,
        trace_id: u128,
        span_id: u64,
        trace_flags: u8,
    ) {
        let Some(file) = self.file() else { return };
        let value = if value.is_instance_of::<PyFloat>() || value.is_instance_of::<PyBool>() {
            value.extract::<f64>().map(Measured::Double)
        } else {
            match value.extract::<i64>() {
                Ok(v) => Ok(Measured::Long(v)),
                Err(_) => value.extract::<f64>().map(Measured::Double),
            }
        };
        let Ok(value) = value else { return };
        let attributes = key_values(attributes.as_ref());
        let span = (trace_id != 0).then(|| span_ref(trace_id, span_id, trace_flags));
        write(py, || {
            file.write_measurement(metric_ref, value, &attributes, span)
        });
    }

    /// Records dropped so far: `spans`, `logs`, `measurements`, `dictionary`
    /// (and the breakdowns of `opentelemetry_mmap::DropStats`).
    fn drop_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        if let Some(file) = self.file() {
            let s = file.drop_stats();
            d.set_item("spans", s.spans)?;
            d.set_item("logs", s.logs)?;
            d.set_item("measurements", s.measurements)?;
            d.set_item("dictionary", s.dictionary)?;
            d.set_item("dictionary_no_space", s.dictionary_no_space)?;
            d.set_item("missing_entry", s.missing_entry)?;
            d.set_item("encoding_errors", s.encoding_errors)?;
        }
        Ok(d)
    }
}
