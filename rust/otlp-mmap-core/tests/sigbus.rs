//! The SIGBUS guard: a file truncated under a reader poisons that reader and
//! reads as zeros; any other SIGBUS still reaches the handler installed
//! before (here the default action: the process dies of SIGBUS).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use common::config;
use otlp_mmap_core::proto;
use otlp_mmap_core::{MmapReader, MmapWriter, RingKind, Slot};

const CHILD_ENV: &str = "OTLP_MMAP_SIGBUS_CHILD";

#[test]
fn a_file_truncated_under_the_reader_reads_as_zeros_and_poisons_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.otlp");
    let w = MmapWriter::create(&path, &config(64, 256, 4096)).unwrap();
    for i in 0..10u64 {
        let ev = proto::Event {
            time_unix_nano: i + 1,
            ..Default::default()
        };
        w.try_write(RingKind::Events, &ev).unwrap();
    }
    let r = MmapReader::open(&path, true).unwrap();
    let mut ring = r.ring_reader(RingKind::Measurements).unwrap();
    assert!(!r.region().poisoned());
    let before = otlp_mmap_core::sigbus::faults_handled();

    // Another process truncates the file while it is mapped.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();

    // Each of these touches pages that no longer exist in the file: what
    // they find is zeros (which may even look like a published empty record:
    // the poison flag, not the bytes, tells the reader to give the file up).
    let _ = ring.peek(r.region());
    let mut events = r.ring_reader(RingKind::Events).unwrap();
    for _ in 0..20 {
        if let Slot::Ready(b) = events.peek(r.region()) {
            assert!(b.is_empty(), "zeros, not the old records: {b:?}");
        }
        events.advance();
    }
    let dict = r.layout().dictionary;
    assert_eq!(r.region().bytes(dict, 64).unwrap(), &[0u8; 64][..]);
    assert!(
        r.region().poisoned(),
        "the reader learns that the file shrank"
    );
    assert!(otlp_mmap_core::sigbus::faults_handled() > before);
    drop(r);
    drop(w);
}

/// The second mapping a watcher thread reads (`map_again`) is made once and
/// shared by later calls, unless a page of it vanished: then it is made again.
#[test]
fn the_second_mapping_is_shared_until_a_page_of_it_vanishes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.otlp");
    let w = MmapWriter::create(&path, &config(64, 256, 4096)).unwrap();
    let r = MmapReader::open(&path, true).unwrap();
    let first = r.map_again().unwrap();
    let again = r.map_again().unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again), "one mapping");
    drop((first, again));
    let kept = r.map_again().unwrap();
    assert!(!kept.poisoned());

    // The file shrinks under it and grows back: the page it touches in
    // between vanished, and stays zeros in that mapping.
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(0).unwrap();
    assert_eq!(kept.bytes(0, 8).unwrap(), &[0u8; 8][..]);
    assert!(kept.poisoned());
    f.set_len(len).unwrap();

    let fresh = r.map_again().unwrap();
    assert!(!std::sync::Arc::ptr_eq(&kept, &fresh), "mapped again");
    assert!(!fresh.poisoned());
    assert_eq!(fresh.bytes(0, 8).unwrap(), &[0u8; 8][..]);
    assert!(!fresh.poisoned(), "the file is that long again");
    assert!(std::sync::Arc::ptr_eq(&fresh, &r.map_again().unwrap()));
    drop(r);
    drop(w);
}

#[test]
fn a_sigbus_outside_reader_mappings_is_not_swallowed() {
    let exe = std::env::current_exe().unwrap();
    let status = Command::new(exe)
        .args([
            "--exact",
            "sigbus_child_faults_on_its_own_mapping",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .status()
        .unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGBUS),
        "the child must die of SIGBUS, as it would without the guard: {status:?}"
    );
}

/// Run by `a_sigbus_outside_reader_mappings_is_not_swallowed` in a child
/// process: installs the guard (by opening a reader), then faults on a mapping
/// of its own that the guard does not cover.
#[test]
#[allow(unsafe_code)]
fn sigbus_child_faults_on_its_own_mapping() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.otlp");
    let _w = MmapWriter::create(&path, &config(4, 64, 4096)).unwrap();
    let _r = MmapReader::open(&path, true).unwrap();
    let other = dir.path().join("other");
    std::fs::write(&other, vec![1u8; 8192]).unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&other)
        .unwrap();
    // SAFETY: a test-only mapping of a file this process owns; the read below
    // is meant to fault once the file is truncated.
    let map = unsafe { memmap2::Mmap::map(&f).unwrap() };
    f.set_len(0).unwrap();
    // SAFETY: in bounds of the mapping; the page is gone from the file, so
    // this raises SIGBUS, which must kill the process.
    let v = unsafe { std::ptr::read_volatile(map.as_ptr().add(100)) };
    println!("read {v} after truncation: the fault was swallowed");
    std::process::exit(0);
}
