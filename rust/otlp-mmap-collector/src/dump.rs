//! One-shot reading of everything currently in a file, as OTLP/JSON lines:
//! what `otlp-mmap dump` prints and what tests compare against.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use otlp_mmap_core::{FormatError, now_unix_nano};
use prost::Message;

use crate::file_reader::{FileReader, ReaderError, ReaderOptions, Signal};

/// What to dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpOptions {
    pub traces: bool,
    pub logs: bool,
    pub metrics: bool,
    /// Also report spans that have started and not ended, as incomplete spans.
    pub include_incomplete: bool,
    /// Advance the file's `reader_index` (and take the reader lock).
    pub consume: bool,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            traces: true,
            logs: true,
            metrics: true,
            include_incomplete: false,
            consume: false,
        }
    }
}

/// Everything read from a file, as export requests.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Dump {
    pub traces: Vec<ExportTraceServiceRequest>,
    pub logs: Vec<ExportLogsServiceRequest>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
}

impl Dump {
    /// OTLP/JSON, one export request per line (traces, then logs, then metrics).
    pub fn to_json_lines(&self) -> Result<String, serde_json::Error> {
        let mut out = String::new();
        for r in &self.traces {
            out.push_str(&serde_json::to_string(r)?);
            out.push('\n');
        }
        for r in &self.logs {
            out.push_str(&serde_json::to_string(r)?);
            out.push('\n');
        }
        for r in &self.metrics {
            out.push_str(&serde_json::to_string(r)?);
            out.push('\n');
        }
        Ok(out)
    }
}

/// Reads everything currently in the file at `path`.
pub fn dump(path: impl AsRef<std::path::Path>, opts: DumpOptions) -> Result<Dump, ReaderError> {
    let mut reader = FileReader::open(
        path,
        ReaderOptions {
            consume: opts.consume,
            max_in_flight_spans: usize::MAX,
            max_in_flight_span_bytes: usize::MAX,
            max_span_age_nanos: u64::MAX,
            ..ReaderOptions::default()
        },
    )?;
    let now = now_unix_nano();
    let mut out = Dump::default();
    let decode_err =
        |e: prost::DecodeError| ReaderError::Format(FormatError::Decode(e.to_string()));
    if opts.traces {
        let mut abandoned = false;
        loop {
            match reader.poll(Signal::Traces, now)? {
                Some(b) => {
                    out.traces
                        .push(ExportTraceServiceRequest::decode(b.bytes).map_err(decode_err)?);
                    let token = b.token;
                    reader.commit(Signal::Traces, token)?;
                }
                None if opts.include_incomplete && !abandoned => {
                    reader.abandon_spans(now);
                    abandoned = true;
                }
                None => break,
            }
        }
    }
    if opts.logs {
        while let Some(b) = reader.poll(Signal::Logs, now)? {
            out.logs
                .push(ExportLogsServiceRequest::decode(b.bytes).map_err(decode_err)?);
            let token = b.token;
            reader.commit(Signal::Logs, token)?;
        }
    }
    if opts.metrics {
        loop {
            let before = reader.stats().records_read[Signal::Metrics as usize]
                + reader.stats().corrupt_records[Signal::Metrics as usize];
            reader.poll(Signal::Metrics, now)?;
            let after = reader.stats().records_read[Signal::Metrics as usize]
                + reader.stats().corrupt_records[Signal::Metrics as usize];
            if after == before {
                break;
            }
        }
        reader.collect_metrics(now);
        if let Some(b) = reader.poll(Signal::Metrics, now)? {
            out.metrics
                .push(ExportMetricsServiceRequest::decode(b.bytes).map_err(decode_err)?);
        }
    }
    Ok(out)
}
