//! [`MmapLogProcessor`]: for applications that keep the OpenTelemetry SDK's
//! `SdkLoggerProvider`, a log processor that writes each record into the file
//! as one `Event`, with the same mapping as [`crate::logs`]. The resource is
//! the SDK provider's (given through `set_resource`), else the file's.

use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord};

use crate::clock::{now_unix_nano, unix_nano};
use crate::encode::{Attrs, KeyRefs, ProtoWriter, SpanIds, Val, put_kv};
use crate::file::MmapExporterFile;
use crate::key_cache::with_keys;
use crate::log_events::{EventInfo, event_scope, write_log_event};
use crate::trace::active_span_ids;

/// A log processor that writes every record into the file.
#[derive(Debug)]
pub struct MmapLogProcessor {
    file: MmapExporterFile,
    resource_ref: i64,
}

impl MmapLogProcessor {
    /// A processor writing into `file`.
    pub fn new(file: &MmapExporterFile) -> Self {
        MmapLogProcessor {
            resource_ref: file.resource_ref(),
            file: file.clone(),
        }
    }

    /// The file written to.
    pub fn file(&self) -> &MmapExporterFile {
        &self.file
    }
}

struct RecordAttrs<'a>(&'a SdkLogRecord);

impl Attrs for RecordAttrs<'_> {
    fn for_each_attr(&self, f: &mut impl FnMut(&str, Val<'_>)) {
        for (k, v) in self.0.attributes_iter() {
            f(k.as_str(), Val::Any(v));
        }
    }

    fn put_each<K: KeyRefs + ?Sized>(&self, w: &mut ProtoWriter<'_>, field: u32, keys: &mut K) {
        for (k, v) in self.0.attributes_iter() {
            put_kv(w, field, k.as_str(), Val::Any(v), keys);
        }
    }
}

impl LogProcessor for MmapLogProcessor {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        let file = &*self.file.inner;
        let span = record
            .trace_context()
            .and_then(|tc| {
                SpanIds::from_parts(
                    tc.trace_id,
                    tc.span_id,
                    tc.trace_flags.map_or(0, |f| f.to_u8()),
                )
            })
            .or_else(active_span_ids);
        let time_unix_nano = record
            .timestamp()
            .or(record.observed_timestamp())
            .map_or_else(now_unix_nano, unix_nano);
        with_keys(file, |keys| {
            let info = EventInfo {
                scope: event_scope(keys.scope_ref(scope, self.resource_ref)),
                time_unix_nano,
                severity_number: record.severity_number().map_or(0, |s| s as u64),
                severity_text: record.severity_text().unwrap_or(""),
                body: record.body().map(Val::Any),
                event_name: record.event_name().unwrap_or(""),
                span,
            };
            write_log_event(keys, &info, &RecordAttrs(record));
        });
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource_ref = self.file.inner.resource_ref_of(resource);
    }
}
