//! A writer process and a reader process on the same file. The child process
//! is this test binary itself, run as `<exe> --exact child_role --nocapture`
//! with `OTLP_MMAP_TEST_CHILD` naming its role.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{config, read_all, writer_index};
use otlp_mmap_core::proto::{self, measurement::Value};
use otlp_mmap_core::{MmapReader, MmapWriter, RingKind, Slot, WriteError, WriterState};
use prost::Message;

const ROLE: &str = "OTLP_MMAP_TEST_CHILD";
const PATH: &str = "OTLP_MMAP_TEST_PATH";
const COUNT: &str = "OTLP_MMAP_TEST_COUNT";
const SLOTS: &str = "OTLP_MMAP_TEST_SLOTS";
/// No child runs longer than this, whatever happens to its parent.
const CHILD_DEADLINE: Duration = Duration::from_secs(60);

fn record(i: u64) -> proto::Measurement {
    proto::Measurement {
        time_unix_nano: i,
        value: Some(Value::AsLong(!(i as i64))),
        attributes: vec![proto::KeyValueRef {
            key_ref: 0,
            value: Some(proto::AnyValue {
                value: Some(proto::any_value::Value::StringValue(format!("record-{i}"))),
            }),
        }],
        ..Default::default()
    }
}

fn counter_of(m: &proto::Measurement) -> u64 {
    let i = m.time_unix_nano;
    assert_eq!(m, &record(i), "record {i} is not intact");
    i
}

/// The child's entry point. Without `OTLP_MMAP_TEST_CHILD` it does nothing.
///
/// Roles:
/// - `write`: creates the file, writes `COUNT` records (retrying on Full),
///   then waits for its stdin to close and exits.
/// - `write-then-hang`: as `write`, then prints `published` and waits forever
///   (until killed).
/// - `write-forever`: creates the file and writes records (retrying on Full)
///   until killed.
#[test]
fn child_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let path = PathBuf::from(std::env::var(PATH).unwrap());
    let count: u64 = std::env::var(COUNT)
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(u64::MAX);
    let slots: u64 = std::env::var(SLOTS).unwrap().parse().unwrap();
    let writer = MmapWriter::create(&path, &config(slots, 128, 1024)).unwrap();
    let started = Instant::now();
    let mut i = 0;
    while i < count && started.elapsed() < CHILD_DEADLINE {
        match writer.try_write(RingKind::Measurements, &record(i)) {
            Ok(seq) => {
                assert_eq!(seq as u64, i);
                i += 1;
            }
            Err(WriteError::Full) => std::thread::yield_now(),
            Err(e) => panic!("{e:?}"),
        }
    }
    match role.as_str() {
        "write" => {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        }
        "write-then-hang" => {
            println!("published {i}");
            std::io::stdout().flush().unwrap();
            while started.elapsed() < CHILD_DEADLINE {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        "write-forever" => {}
        other => panic!("unknown role {other}"),
    }
}

/// A child process that is killed if the test ends early.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(role: &str, path: &Path, count: Option<u64>, slots: u64) -> ChildGuard {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_role", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(PATH, path)
        .env(SLOTS, slots.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(c) = count {
        cmd.env(COUNT, c.to_string());
    }
    ChildGuard(cmd.spawn().unwrap())
}

/// Waits for the child to create the file (it appears fully initialised, by rename).
fn wait_for_file(path: &Path, child: &mut ChildGuard) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("child exited before creating the file: {status}");
        }
        assert!(Instant::now() < deadline, "child never created the file");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads records until `want` were read or `deadline` passes.
fn read_records(reader: &MmapReader, want: u64, deadline: Instant) -> Vec<u64> {
    let mut ring = reader.ring_reader(RingKind::Measurements).unwrap();
    let mut got = Vec::new();
    while (got.len() as u64) < want {
        match ring.peek(reader.region()) {
            Slot::Ready(b) => {
                got.push(counter_of(&proto::Measurement::decode(b).unwrap()));
                ring.advance();
                ring.release(reader.region()).unwrap();
            }
            Slot::Corrupt(e) => panic!("corrupt slot: {e}"),
            Slot::Empty => {
                assert!(
                    Instant::now() < deadline,
                    "only {} of {want} records arrived",
                    got.len()
                );
                std::thread::yield_now();
            }
        }
    }
    got
}

#[test]
fn reader_process_reads_everything_a_writer_process_writes() {
    const N: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.otlp");
    // A 64-slot ring: the child can only finish if this process keeps reading.
    let mut child = spawn("write", &path, Some(N), 64);
    wait_for_file(&path, &mut child);
    let mut reader = MmapReader::open(&path, true).unwrap();
    assert_eq!(reader.writer_state(), WriterState::Alive);
    let got = read_records(&reader, N, Instant::now() + Duration::from_secs(40));
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    // The child waits on its stdin: it is still alive.
    assert_eq!(reader.writer_state(), WriterState::Alive);
    drop(child.0.stdin.take());
    let status = child.0.wait().unwrap();
    assert!(status.success(), "child failed: {status}");
    assert_eq!(reader.writer_state(), WriterState::Gone);
    assert!(read_all::<proto::Measurement>(&reader, RingKind::Measurements).is_empty());
    assert_eq!(writer_index(&reader, RingKind::Measurements), N as i64 - 1);
}

#[test]
fn records_published_before_sigkill_are_all_readable() {
    const N: u64 = 500;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.otlp");
    // No reader yet: the 1024-slot ring holds all N records.
    let mut child = spawn("write-then-hang", &path, Some(N), 1024);
    // libtest prints `test child_role ... ` on the same line first.
    let line = BufReader::new(child.0.stdout.take().unwrap())
        .lines()
        .map(|l| l.unwrap())
        .find(|l| l.contains("published "))
        .expect("child reports what it published");
    assert!(line.ends_with(&format!("published {N}")), "{line}");
    let mut reader = MmapReader::open(&path, true).unwrap();
    assert_eq!(reader.writer_state(), WriterState::Alive);
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    assert_eq!(reader.writer_state(), WriterState::Gone);
    let got = read_all::<proto::Measurement>(&reader, RingKind::Measurements);
    assert_eq!(
        got.iter().map(|(_, m)| counter_of(m)).collect::<Vec<_>>(),
        (0..N).collect::<Vec<_>>()
    );
}

#[test]
fn sigkill_in_the_middle_of_writing_loses_nothing_published() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("midway.otlp");
    let mut child = spawn("write-forever", &path, None, 256);
    wait_for_file(&path, &mut child);
    let mut reader = MmapReader::open(&path, true).unwrap();
    assert_eq!(reader.writer_state(), WriterState::Alive);
    // Read while the child writes, then kill it at an arbitrary point.
    let mut got = read_records(&reader, 3000, Instant::now() + Duration::from_secs(40));
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert_eq!(reader.writer_state(), WriterState::Gone);
    got.extend(
        read_all::<proto::Measurement>(&reader, RingKind::Measurements)
            .iter()
            .map(|(seq, m)| {
                let i = counter_of(m);
                assert_eq!(*seq as u64, i);
                i
            }),
    );
    let total = got.len() as i64;
    assert_eq!(got, (0..total as u64).collect::<Vec<_>>(), "a gap");
    // Everything claimed was published, except at most the one slot the child
    // was filling when it died (claimed, never published: the reader stops there).
    let wi = writer_index(&reader, RingKind::Measurements);
    assert!(
        total == wi + 1 || total == wi,
        "read {total}, writer_index {wi}"
    );
    if total == wi {
        let g = reader.layout().measurements;
        let flag = reader
            .region()
            .atomic_i32(g.flag_offset(g.slot_of(wi)))
            .unwrap()
            .load(std::sync::atomic::Ordering::Acquire);
        assert!(!g.publishes(flag, wi));
    }
}

#[test]
fn writer_state_is_unknown_for_a_writer_without_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans.otlp");
    std::fs::write(&path, common::vector_bytes("spans")).unwrap();
    let mut reader = MmapReader::open(&path, true).unwrap();
    assert_eq!(reader.writer_state(), WriterState::Unknown);
}

#[test]
fn writer_state_follows_an_in_process_writer_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("local.otlp");
    let writer = MmapWriter::create(&path, &config(4, 64, 1024)).unwrap();
    let mut reader = MmapReader::open(&path, true).unwrap();
    assert_eq!(reader.writer_state(), WriterState::Alive);
    drop(writer);
    assert_eq!(reader.writer_state(), WriterState::Gone);
}
