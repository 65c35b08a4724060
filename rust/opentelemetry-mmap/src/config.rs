//! Where the file is and how large its rings are: from code (the builder of
//! [`MmapExporterFile`](crate::MmapExporterFile)) or from environment
//! variables. A value given in code wins over the environment, which wins over
//! the defaults.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `OTEL_MMAP_FILE` | path of the file (created, replacing any file there) | none: required |
//! | `SDK_MMAP_EXPORTER_FILE` | the same, as the reference SDKs name it (used when `OTEL_MMAP_FILE` is unset) | |
//! | `OTEL_MMAP_SPAN_SLOTS` | slots of the spans ring (a power of two) | 8192 |
//! | `OTEL_MMAP_SPAN_SLOT_SIZE` | bytes per span slot | 512 |
//! | `OTEL_MMAP_LOG_SLOTS` | slots of the events (logs) ring | 4096 |
//! | `OTEL_MMAP_LOG_SLOT_SIZE` | bytes per log slot | 1024 |
//! | `OTEL_MMAP_METRIC_SLOTS` | slots of the measurements ring | 8192 |
//! | `OTEL_MMAP_METRIC_SLOT_SIZE` | bytes per measurement slot | 256 |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | milliseconds between calls of observable-instrument callbacks | 60000 |

use std::path::PathBuf;
use std::time::Duration;

use otlp_mmap_core::{FileConfig, RingConfig};

use crate::Error;

/// Environment variable: the file's path.
pub const ENV_FILE: &str = "OTEL_MMAP_FILE";
/// Environment variable: the file's path, as the reference SDKs name it.
pub const ENV_FILE_REFERENCE: &str = "SDK_MMAP_EXPORTER_FILE";
/// Environment variable: slots of the spans ring.
pub const ENV_SPAN_SLOTS: &str = "OTEL_MMAP_SPAN_SLOTS";
/// Environment variable: bytes per span slot.
pub const ENV_SPAN_SLOT_SIZE: &str = "OTEL_MMAP_SPAN_SLOT_SIZE";
/// Environment variable: slots of the logs ring.
pub const ENV_LOG_SLOTS: &str = "OTEL_MMAP_LOG_SLOTS";
/// Environment variable: bytes per log slot.
pub const ENV_LOG_SLOT_SIZE: &str = "OTEL_MMAP_LOG_SLOT_SIZE";
/// Environment variable: slots of the measurements ring.
pub const ENV_METRIC_SLOTS: &str = "OTEL_MMAP_METRIC_SLOTS";
/// Environment variable: bytes per measurement slot.
pub const ENV_METRIC_SLOT_SIZE: &str = "OTEL_MMAP_METRIC_SLOT_SIZE";
/// Environment variable: milliseconds between observable-instrument callbacks.
pub const ENV_METRIC_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";

/// Ring sizes given in code; `None` falls back to the environment, then the default.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RingOverride {
    pub slots: Option<u64>,
    pub slot_size: Option<u64>,
}

impl RingOverride {
    fn resolve(
        self,
        slots_var: &str,
        size_var: &str,
        default: RingConfig,
    ) -> Result<RingConfig, Error> {
        Ok(RingConfig {
            num_buffers: match self.slots {
                Some(v) => v,
                None => env_u64(slots_var)?.unwrap_or(default.num_buffers),
            },
            buffer_size: match self.slot_size {
                Some(v) => v,
                None => env_u64(size_var)?.unwrap_or(default.buffer_size),
            },
        })
    }
}

/// Everything the builder was given in code.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    pub path: Option<PathBuf>,
    pub spans: RingOverride,
    pub logs: RingOverride,
    pub metrics: RingOverride,
    pub dictionary_max_size: Option<u64>,
}

impl Settings {
    /// The path and file configuration after applying the environment.
    pub(crate) fn resolve(&self) -> Result<(PathBuf, FileConfig), Error> {
        let path = match &self.path {
            Some(p) => p.clone(),
            None => env_string(ENV_FILE)
                .or_else(|| env_string(ENV_FILE_REFERENCE))
                .map(PathBuf::from)
                .ok_or(Error::NoPath)?,
        };
        let defaults = FileConfig::default();
        let mut config = FileConfig {
            spans: self
                .spans
                .resolve(ENV_SPAN_SLOTS, ENV_SPAN_SLOT_SIZE, defaults.spans)?,
            events: self
                .logs
                .resolve(ENV_LOG_SLOTS, ENV_LOG_SLOT_SIZE, defaults.events)?,
            measurements: self.metrics.resolve(
                ENV_METRIC_SLOTS,
                ENV_METRIC_SLOT_SIZE,
                defaults.measurements,
            )?,
            ..defaults
        };
        if let Some(max) = self.dictionary_max_size {
            config.dictionary_max_size = max;
        }
        Ok((path, config))
    }
}

/// The interval between observable-instrument callbacks from the environment.
pub(crate) fn metric_interval_from_env() -> Duration {
    env_u64(ENV_METRIC_INTERVAL)
        .ok()
        .flatten()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(60))
}

fn env_string(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_u64(name: &str) -> Result<Option<u64>, Error> {
    match env_string(name) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| Error::BadEnv {
            name: name.to_owned(),
            value: v,
        }),
    }
}
