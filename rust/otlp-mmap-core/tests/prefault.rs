//! A new file on tmpfs has its rings mapped when the writer creates it, so
//! that the first pass of records over a ring takes no page fault on the
//! calling thread (`SharedRegion::prefault`).
#![cfg(target_os = "linux")]

mod common;

use common::config;
use otlp_mmap_core::{MmapWriter, RingKind};

/// Minor page faults taken by the calling thread so far.
#[allow(unsafe_code)]
fn thread_minor_faults() -> i64 {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage that the call fills in.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    usage.ru_minflt
}

/// Whether the kernel has `MADV_POPULATE_WRITE` (Linux 5.14).
fn kernel_can_populate() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (5, 14)
}

#[test]
fn the_first_pass_over_a_new_rings_pages_on_tmpfs_takes_no_page_fault() {
    const SLOTS: u64 = 1024;
    const SLOT: u64 = 4096;
    if !kernel_can_populate() {
        eprintln!("skipped: the kernel has no MADV_POPULATE_WRITE (Linux 5.14)");
        return;
    }
    // /dev/shm is the tmpfs every Linux system mounts (a container's too).
    let dir = tempfile::tempdir_in("/dev/shm").expect("a directory on /dev/shm");
    let w =
        MmapWriter::create(dir.path().join("prefault.otlp"), &config(SLOTS, SLOT, 4096)).unwrap();
    let payload = [7u8; 64];
    // One record in every slot of the spans ring: each slot is a page of
    // its own, which without the prefault would fault once.
    let before = thread_minor_faults();
    for _ in 0..SLOTS {
        w.try_write_with(RingKind::Spans, payload.len(), |buf| {
            buf[..payload.len()].copy_from_slice(&payload);
            payload.len()
        })
        .unwrap();
    }
    let faults = thread_minor_faults() - before;
    // The loop itself (its stack, the allocator) may fault a few times.
    assert!(
        faults < 32,
        "{faults} page faults writing one record into each of {SLOTS} pages"
    );
}
