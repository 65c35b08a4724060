//! What the span and log writers write into: the file of their path in this
//! process (replaced after a fork, see `python/src/opentelemetry_mmap/_files.py`)
//! and the refs of the instrumentation scopes seen so far in it.

use opentelemetry_mmap::MmapExporterFile;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::file::{intern_resource, intern_scope};

/// Scopes remembered per file; more clears the list.
const MAX_SCOPES: usize = 64;

/// Scopes remembered: the SDK's `InstrumentationScope` and `Resource`
/// objects (kept alive) and their scope ref.
type Scopes = Vec<(Py<PyAny>, Py<PyAny>, i64)>;

/// The current file and its scope refs, keyed by the identity of the SDK's
/// `(InstrumentationScope, Resource)` objects (kept alive here).
#[derive(Default)]
pub(crate) struct Target {
    pub(crate) file: Option<MmapExporterFile>,
    scopes: Scopes,
}

/// What a [`Target`] let go of. Dropping the Python objects in it can run
/// Python code (a `__del__`) that writes through the same writer, so the
/// caller drops it once the writer's lock is released (else: deadlock).
#[must_use = "drop it after the writer's lock is released"]
pub(crate) struct Released {
    _file: Option<MmapExporterFile>,
    _scopes: Scopes,
}

impl Target {
    /// Writes into `file` from now on (`None`: nothing is written).
    pub(crate) fn set_file(&mut self, file: Option<MmapExporterFile>) -> Released {
        Released {
            _file: std::mem::replace(&mut self.file, file),
            _scopes: std::mem::take(&mut self.scopes),
        }
    }

    /// The scope ref remembered for this scope and resource.
    pub(crate) fn cached_scope(
        &self,
        scope: &Bound<'_, PyAny>,
        resource: &Bound<'_, PyAny>,
    ) -> Option<i64> {
        self.scopes
            .iter()
            .find(|(s, r, _)| s.as_ptr() == scope.as_ptr() && r.as_ptr() == resource.as_ptr())
            .map(|(_, _, r)| *r)
    }

    /// Remembers a scope's ref; the list is cleared first when full.
    pub(crate) fn remember_scope(
        &mut self,
        scope: &Bound<'_, PyAny>,
        resource: &Bound<'_, PyAny>,
        r: i64,
    ) -> Released {
        let full = self.scopes.len() >= MAX_SCOPES;
        let released = Released {
            _file: None,
            _scopes: if full {
                std::mem::take(&mut self.scopes)
            } else {
                Vec::new()
            },
        };
        self.scopes
            .push((scope.clone().unbind(), resource.clone().unbind(), r));
        released
    }
}

fn opt_string(v: PyResult<Bound<'_, PyAny>>) -> Option<String> {
    let v = v.ok()?;
    let s = v.cast::<PyString>().ok()?.to_cow().ok()?.into_owned();
    (!s.is_empty()).then_some(s)
}

/// Interns an SDK `InstrumentationScope` (or `None`) under an SDK `Resource` (or `None`).
pub(crate) fn scope_ref_of(
    file: &MmapExporterFile,
    scope: &Bound<'_, PyAny>,
    resource: &Bound<'_, PyAny>,
) -> i64 {
    let py = scope.py();
    let resource_attrs = if resource.is_none() {
        None
    } else {
        resource.getattr(intern!(py, "attributes")).ok()
    };
    let resource_ref = intern_resource(file, resource_attrs.as_ref());
    if scope.is_none() {
        return intern_scope(file, resource_ref, String::new(), None, None, None);
    }
    let attributes = scope.getattr(intern!(py, "attributes")).ok();
    intern_scope(
        file,
        resource_ref,
        opt_string(scope.getattr(intern!(py, "name"))).unwrap_or_default(),
        opt_string(scope.getattr(intern!(py, "version"))),
        opt_string(scope.getattr(intern!(py, "schema_url"))),
        attributes.as_ref(),
    )
}

/// Reports the first failure of a writer through Python's `logging` (later
/// ones are only counted by the caller); never raises.
pub(crate) fn report_once(
    py: Python<'_>,
    reported: &std::sync::atomic::AtomicBool,
    what: &str,
    err: &PyErr,
) {
    if reported.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let message = format!("opentelemetry-mmap: a {what} could not be written: {err}");
    let _ = py
        .import("logging")
        .and_then(|logging| logging.call_method1("getLogger", ("opentelemetry_mmap",)))
        .and_then(|logger| logger.call_method1("warning", (message,)));
}
