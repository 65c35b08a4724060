//! The idle watcher sleeps longer once nothing has happened for a while, and
//! a file parked then brings it back to its interval at once.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use otlp_mmap_collector::idle_watch::QUIET_PERIOD_FACTOR;
use otlp_mmap_collector::{FileReader, IdleWatch, ReaderOptions, Signal, Wake};
use otlp_mmap_core::proto::{self, any_value::Value};
use otlp_mmap_core::{FileConfig, MmapWriter, RingKind};

const INTERVAL: Duration = Duration::from_millis(5);

/// Waits (up to a generous deadline, so a loaded machine only slows the
/// test) until `done` holds.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_quiet_watcher_sleeps_longer_and_a_park_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| {
        let path = dir.path().join(name);
        let w = MmapWriter::create(&path, &FileConfig::default()).unwrap();
        let r = FileReader::open(&path, ReaderOptions::default()).unwrap();
        (w, r)
    };
    let (_quiet_writer, quiet_reader) = open("quiet.otlp");
    let (writer, reader) = open("busy.otlp");
    let (tx, rx) = mpsc::channel();
    let watch = IdleWatch::start_quiet_after(INTERVAL, Duration::from_millis(200), move |token| {
        tx.send(token).is_ok()
    })
    .unwrap();
    let far = Wake::at(u64::MAX);
    watch.park(1, &quiet_reader, &[Signal::Logs], far).unwrap();
    assert_eq!(watch.period(), INTERVAL);

    eventually("the quiet watcher sleeps its longest", || {
        watch.period() == INTERVAL * QUIET_PERIOD_FACTOR
    });

    watch.park(2, &reader, &[Signal::Logs], far).unwrap();
    assert_eq!(watch.period(), INTERVAL, "a park ends the long sleeps");

    let ev = proto::Event {
        body: Some(proto::AnyValue {
            value: Some(Value::StringValue("hello".into())),
        }),
        ..Default::default()
    };
    writer.try_write(RingKind::Events, &ev).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Ok(2));
    assert_eq!(watch.parked(), 1, "the quiet file stays parked");
}

#[test]
fn the_watcher_sleeps_while_nothing_is_parked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let _writer = MmapWriter::create(&path, &FileConfig::default()).unwrap();
    let reader = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let watch = IdleWatch::start(Duration::from_millis(1), |_| true).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(watch.rounds(), 0, "no look without a parked file");

    let wake = Wake::at(u64::MAX);
    watch.park(1, &reader, &[Signal::Logs], wake).unwrap();
    eventually("the watcher looks at the parked file", || {
        watch.rounds() > 2
    });
    assert!(watch.unpark(1));
    let after = watch.rounds();
    std::thread::sleep(Duration::from_millis(50));
    // At most the round that was under way when the file was unparked.
    assert!(
        watch.rounds() <= after + 1,
        "no looks once nothing is parked"
    );
}

#[test]
fn a_watcher_stopped_before_its_thread_ran_stops() {
    // Started and dropped at once, many times: the thread may take its lock
    // only after the stop was signalled; the drop must still return.
    for _ in 0..200 {
        let watch = IdleWatch::start(Duration::from_millis(1), |_| true).unwrap();
        drop(watch);
    }
}

#[test]
fn a_deadline_is_kept_between_two_looks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let _writer = MmapWriter::create(&path, &FileConfig::default()).unwrap();
    let reader = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let (tx, rx) = mpsc::channel();
    // Looks an hour apart: only the deadline can wake the file in time.
    let watch = IdleWatch::start(Duration::from_secs(3600), move |token| {
        tx.send(token).is_ok()
    })
    .unwrap();
    let due = otlp_mmap_core::now_unix_nano() + 20_000_000;
    watch
        .park(1, &reader, &[Signal::Logs], Wake::at(due))
        .unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Ok(1));
    assert!(
        otlp_mmap_core::now_unix_nano() >= due,
        "not before its deadline"
    );
}

/// A writer that stores its new start time before it resets its rings: the
/// reader, which opened the new stream in between (at the old position,
/// where the new writer's records may never come), is woken by the reset,
/// not only by its deadline, and then reads the new writer's record.
#[test]
fn a_ring_reset_after_the_start_time_wakes_a_parked_file() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use otlp_mmap_core::layout::{header, ring_header};
    use prost::Message;
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let writer = MmapWriter::create(&path, &FileConfig::default()).unwrap();
    let mut reader = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let log = |body: &str| {
        let ev = proto::Event {
            body: Some(proto::AnyValue {
                value: Some(Value::StringValue(body.into())),
            }),
            ..Default::default()
        };
        writer.try_write(RingKind::Events, &ev).unwrap();
    };
    let bodies = |reader: &mut FileReader, now: u64| {
        let mut got = vec![];
        while let Some(b) = reader.poll(Signal::Logs, now).unwrap() {
            let token = b.token;
            let req = ExportLogsServiceRequest::decode(b.bytes).unwrap();
            reader.commit(Signal::Logs, token).unwrap();
            got.extend(
                req.resource_logs
                    .iter()
                    .flat_map(|rl| &rl.scope_logs)
                    .flat_map(|sl| &sl.log_records)
                    .map(|lr| format!("{:?}", lr.body)),
            );
        }
        got
    };
    for i in 0..3 {
        log(&format!("old-{i}"));
    }
    assert_eq!(bodies(&mut reader, 1).len(), 3);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let restarted = writer.start_time_unix_nano() + 1;
    file.write_at(&restarted.to_le_bytes(), header::START_TIME)
        .unwrap();
    assert!(bodies(&mut reader, 2).is_empty());
    assert_eq!(reader.stats().writer_restarts, 1);
    assert_eq!(reader.released_sequence(Signal::Logs), 2);

    let (tx, rx) = mpsc::channel();
    let watch = IdleWatch::start(INTERVAL, move |token| tx.send(token).is_ok()).unwrap();
    let an_hour = otlp_mmap_core::now_unix_nano() + 3_600_000_000_000;
    watch
        .park(1, &reader, &[Signal::Logs], Wake::at(an_hour))
        .unwrap();
    let g = writer.layout().events;
    for field in [ring_header::READER_INDEX, ring_header::WRITER_INDEX] {
        file.write_at(&(-1i64).to_le_bytes(), g.offset + field)
            .unwrap();
    }
    for i in 0..g.num_buffers {
        file.write_at(&(-1i32).to_le_bytes(), g.flag_offset(i))
            .unwrap();
    }
    log("new-0");
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Ok(1));
    assert_eq!(bodies(&mut reader, 3).len(), 1);
    assert_eq!(reader.next_sequence(Signal::Logs), 1);
    assert_eq!(reader.stats().writer_restarts, 1);
}

/// A writer's restart that the reader has not followed when it parks (its
/// next poll may not be able to open the new stream yet) wakes the file
/// about a second later, not at every look: a restart that cannot be
/// followed yet, or a hostile file faking one, costs one retry a second.
#[test]
fn a_restart_not_followed_at_the_park_wakes_the_file_a_second_later() {
    use otlp_mmap_core::layout::header;
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let writer = MmapWriter::create(&path, &FileConfig::default()).unwrap();
    let reader = FileReader::open(&path, ReaderOptions::default()).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let restarted = writer.start_time_unix_nano() + 1;
    file.write_at(&restarted.to_le_bytes(), header::START_TIME)
        .unwrap();

    let (tx, rx) = mpsc::channel();
    let watch = IdleWatch::start(INTERVAL, move |token| tx.send(token).is_ok()).unwrap();
    let an_hour = otlp_mmap_core::now_unix_nano() + 3_600_000_000_000;
    for _ in 0..2 {
        let parked_at = Instant::now();
        watch
            .park(1, &reader, &[Signal::Logs], Wake::at(an_hour))
            .unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Ok(1));
        let woken_after = parked_at.elapsed();
        assert!(
            woken_after >= Duration::from_millis(500),
            "woken after {woken_after:?}, at one of the first looks"
        );
    }
}
