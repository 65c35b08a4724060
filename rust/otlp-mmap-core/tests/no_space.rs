//! A writer that runs out of disk space gets errors and counted drops, never a
//! SIGBUS (nor a SIGXFSZ): the file's blocks are reserved before any page of
//! them is touched.
//!
//! Each case runs in a child process (this test binary, `<exe> --exact
//! space_child --nocapture`, with `OTLP_MMAP_SPACE_CHILD` naming the case), so
//! that the limit applies to the child alone: either `RLIMIT_FSIZE`, set
//! between fork and exec, or a 256 KiB tmpfs mounted in a mount namespace of
//! the child's own (when this machine allows one). A signal would kill the
//! child, which the parent reports; the child's checks are assertions, and it
//! prints a line the parent looks for, so that a child that did nothing fails.

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::Ordering;

use common::config;
use otlp_mmap_core::proto::{self, measurement::Value};
use otlp_mmap_core::{FormatError, MmapReader, MmapWriter, RingKind, Slot};
use prost::Message;

const CASE: &str = "OTLP_MMAP_SPACE_CHILD";
const DIR: &str = "OTLP_MMAP_SPACE_DIR";
/// The space the child may use: its `RLIMIT_FSIZE`, or its tmpfs's size.
const LIMIT: u64 = 256 << 10;

/// The child's entry point; does nothing unless `OTLP_MMAP_SPACE_CHILD` is set.
#[test]
fn space_child() {
    let Ok(case) = std::env::var(CASE) else {
        return;
    };
    let dir = PathBuf::from(std::env::var_os(DIR).unwrap());
    match case.as_str() {
        "create" => create_is_refused(&dir),
        "grow" => growth_is_refused(&dir),
        other => panic!("unknown case {other}"),
    }
}

/// A file larger than the space: a clear error, and nothing left behind.
fn create_is_refused(dir: &Path) {
    let path = dir.join("big.otlp");
    let cfg = config(1024, 1024, 4096); // about 3 MiB
    let err = MmapWriter::create(&path, &cfg).unwrap_err();
    assert!(matches!(err, FormatError::NoSpace { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("no space for the file"), "{msg}");
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    println!("CHILD-OK create refused: {msg}");
}

fn measurement(i: i64) -> proto::Measurement {
    proto::Measurement {
        metric_ref: 8,
        time_unix_nano: i as u64,
        value: Some(Value::AsLong(i)),
        ..Default::default()
    }
}

/// A dictionary that outgrows the space: the entry that needed the growth is
/// refused and counted, the file is not grown past the space, and everything
/// stored before (and the rings) still works.
fn growth_is_refused(dir: &Path) {
    let path = dir.join("grow.otlp");
    let mut cfg = config(4, 64, 4096); // about 5 KiB
    cfg.dictionary_max_size = 64 << 20;
    let writer = MmapWriter::create(&path, &cfg).unwrap();
    let reader = MmapReader::open(&path, true).unwrap();
    let entry = |i: usize| vec![(i % 251) as u8; 4000];
    let mut refs = Vec::new();
    let err = loop {
        match writer.append_entry(&entry(refs.len())) {
            Ok(r) => refs.push(r),
            Err(e) => break e,
        }
        assert!(refs.len() < 1000, "never refused");
    };
    assert!(matches!(err, FormatError::NoSpace { .. }), "{err:?}");
    let drops = writer.dictionary_drops();
    assert_eq!(drops.no_space.load(Ordering::Relaxed), 1);
    assert_eq!(drops.full.load(Ordering::Relaxed), 0);
    // Nearly all of the space was used before the refusal.
    assert!(
        refs.len() as u64 >= (LIMIT - 16384) / 4002,
        "{}",
        refs.len()
    );
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len <= LIMIT, "file grew to {len}");
    // The refused entry left the dictionary as it was.
    let (end, n) = reader.dictionary_header().unwrap();
    assert_eq!(n as usize, refs.len());
    assert_eq!(end, *refs.last().unwrap() + 2 + 4000);
    // Refused again, and counted again, while there is no space.
    assert!(matches!(
        writer.append_entry(&entry(0)),
        Err(FormatError::NoSpace { .. })
    ));
    assert_eq!(drops.no_space.load(Ordering::Relaxed), 2);
    reader.refresh_len();
    for (i, r) in refs.iter().enumerate() {
        assert_eq!(reader.entry(*r).unwrap(), entry(i).as_slice());
    }
    // The rings are unaffected.
    for i in 0..3 {
        writer
            .try_write(RingKind::Measurements, &measurement(i))
            .unwrap();
    }
    let mut ring = reader.ring_reader(RingKind::Measurements).unwrap();
    for i in 0..3 {
        let Slot::Ready(b) = ring.peek(reader.region()) else {
            panic!("record {i} missing")
        };
        assert_eq!(proto::Measurement::decode(b).unwrap(), measurement(i));
        ring.advance();
    }
    println!(
        "CHILD-OK growth refused after {} entries ({len} bytes): {err}",
        refs.len()
    );
}

/// How the child's space is limited.
enum Limit {
    /// `RLIMIT_FSIZE` of `LIMIT`; `ignore_sigxfsz` sets SIGXFSZ to SIG_IGN
    /// (otherwise it keeps its default action, which kills the process).
    FileSize { ignore_sigxfsz: bool },
    /// A tmpfs of `LIMIT` bytes mounted over the directory.
    Tmpfs,
}

/// Runs one case in a child; `None` when this machine cannot set up `limit`.
#[allow(unsafe_code)]
fn run_child(case: &str, limit: Limit) -> Option<Output> {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "space_child", "--nocapture", "--test-threads=1"])
        .env(CASE, case)
        .env(DIR, dir.path());
    match limit {
        Limit::FileSize { ignore_sigxfsz } => {
            // SAFETY: between fork and exec the closure calls only setrlimit and
            // signal, both async-signal-safe, on values prepared before the fork.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: LIMIT,
                        rlim_max: LIMIT,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    if ignore_sigxfsz && libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        Limit::Tmpfs => {
            let target = CString::new(dir.path().as_os_str().as_bytes()).unwrap();
            let options = CString::new(format!("size={LIMIT}")).unwrap();
            // SAFETY: between fork and exec the closure calls only unshare and
            // mount (system calls, async-signal-safe) on C strings made before
            // the fork. The mounts happen in the child's own mount namespace,
            // made private first, so they never reach this process or the host.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::unshare(libc::CLONE_NEWNS) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let flags = libc::MS_REC | libc::MS_PRIVATE;
                    if libc::mount(
                        std::ptr::null(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        flags,
                        std::ptr::null(),
                    ) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    if libc::mount(
                        c"tmpfs".as_ptr(),
                        target.as_ptr(),
                        c"tmpfs".as_ptr(),
                        0,
                        options.as_ptr().cast(),
                    ) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    }
    match cmd.output() {
        Ok(out) => Some(out),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM | libc::EACCES | libc::ENOSYS)
            ) =>
        {
            eprintln!("cannot mount a tmpfs in a mount namespace here ({e}): case skipped");
            None
        }
        Err(e) => panic!("cannot start the child: {e}"),
    }
}

fn assert_child_ok(out: &Output, marker: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed ({}; a signal means the writer touched space it did not have)\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains(marker),
        "the child did not run its case\n{stdout}\n{stderr}"
    );
}

#[test]
fn creation_past_rlimit_fsize_is_a_clear_error() {
    let out = run_child(
        "create",
        Limit::FileSize {
            ignore_sigxfsz: true,
        },
    )
    .unwrap();
    assert_child_ok(
        &out,
        "CHILD-OK create refused: no space for the file to reach",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("RLIMIT_FSIZE"), "{stdout}");
}

/// With SIGXFSZ at its default action (kill): the writer never asks the kernel
/// for more than the limit, so no signal is raised.
#[test]
fn dictionary_growth_past_rlimit_fsize_drops_and_counts() {
    let out = run_child(
        "grow",
        Limit::FileSize {
            ignore_sigxfsz: false,
        },
    )
    .unwrap();
    assert_child_ok(&out, "CHILD-OK growth refused after");
}

#[test]
fn creation_on_a_full_tmpfs_is_a_clear_error() {
    if let Some(out) = run_child("create", Limit::Tmpfs) {
        assert_child_ok(
            &out,
            "CHILD-OK create refused: no space for the file to reach",
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("No space left on device"), "{stdout}");
    }
}

#[test]
fn dictionary_growth_on_a_full_tmpfs_drops_and_counts() {
    if let Some(out) = run_child("grow", Limit::Tmpfs) {
        assert_child_ok(&out, "CHILD-OK growth refused after");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("No space left on device"), "{stdout}");
    }
}
