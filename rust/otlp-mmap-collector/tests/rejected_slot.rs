//! A slot the writer published as rejected (its encoder miscounted or
//! panicked after the claim) is counted as corrupt by the `FileReader`, which
//! delivers the records around it and gives the slot back to the writers.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as OtlpValue;
use otlp_mmap_collector::{FileReader, ReaderOptions, Signal};
use otlp_mmap_core::proto::{self, any_value::Value};
use otlp_mmap_core::{FileConfig, MmapWriter, RingConfig, RingKind, WriteError};
use prost::Message;

fn log(body: &str) -> proto::Event {
    proto::Event {
        time_unix_nano: 1,
        severity_number: 9,
        body: Some(proto::AnyValue {
            value: Some(Value::StringValue(body.into())),
        }),
        ..Default::default()
    }
}

#[test]
fn rejected_slots_are_counted_as_corrupt_and_the_ring_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rejected.otlp");
    let ring = RingConfig {
        num_buffers: 4,
        buffer_size: 256,
    };
    let cfg = FileConfig {
        events: ring,
        spans: ring,
        measurements: ring,
        ..FileConfig::default()
    };
    let w = MmapWriter::create(&path, &cfg).unwrap();
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();

    w.try_write(RingKind::Events, &log("before")).unwrap();
    let len = log("lost").encoded_len();
    assert_eq!(
        w.try_write_with(RingKind::Events, len, |buf| {
            let mut b = &mut buf[..];
            log("lost").encode(&mut b).unwrap();
            len + 1
        }),
        Err(WriteError::SizeMismatch)
    );
    assert_eq!(
        w.try_write_with(RingKind::Events, len, |_| panic!(
            "encoder bug (expected by this test)"
        )),
        Err(WriteError::EncoderPanicked)
    );
    w.try_write(RingKind::Events, &log("after")).unwrap();

    let batch = r.poll(Signal::Logs, 1).unwrap().expect("a logs batch");
    let req = ExportLogsServiceRequest::decode(batch.bytes).unwrap();
    let token = batch.token;
    r.commit(Signal::Logs, token).unwrap();
    let bodies: Vec<_> = req
        .resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .flat_map(|sl| &sl.log_records)
        .map(|lr| match lr.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(OtlpValue::StringValue(s)) => s.clone(),
            other => panic!("unexpected body {other:?}"),
        })
        .collect();
    assert_eq!(bodies, ["before", "after"]);
    let stats = r.stats();
    assert_eq!(stats.corrupt_records[Signal::Logs as usize], 2);
    assert_eq!(stats.records_read[Signal::Logs as usize], 2);

    // All four slots were given back: a full lap of new records fits.
    for i in 0..4 {
        w.try_write(RingKind::Events, &log(&format!("lap2-{i}")))
            .unwrap();
    }
}
