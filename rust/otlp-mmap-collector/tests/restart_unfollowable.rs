//! A restart in place that can never be followed (the new file is
//! not one this reader can open) is reported, not waited on for ever.

use std::os::unix::fs::FileExt;

use otlp_mmap_collector::{FileReader, ReaderOptions, Signal};
use otlp_mmap_core::layout::header;
use otlp_mmap_core::{FileConfig, MmapWriter};

const SECOND: u64 = 1_000_000_000;

#[test]
fn a_restart_into_a_file_of_another_version_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let w = MmapWriter::create_with_start_time(&path, &FileConfig::default(), 100).unwrap();
    let mut r = FileReader::open(&path, ReaderOptions::default()).unwrap();
    assert!(r.poll(Signal::Logs, SECOND).unwrap().is_none());
    // The writer starts over in place as a version 2 file.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&2i64.to_le_bytes(), header::VERSION)
        .unwrap();
    f.write_all_at(&200u64.to_le_bytes(), header::START_TIME)
        .unwrap();
    let mut failed = None;
    for i in 2..120 {
        if let Err(e) = r.poll(Signal::Logs, i * SECOND) {
            failed = Some((i, e));
            break;
        }
    }
    let (at, e) = failed.expect("two minutes of polls: no error, nothing read, nothing counted");
    // Retried for the writer's initialisation first (the restart was seen
    // at the poll of second 2), then reported with the reason.
    assert_eq!(at, 12, "{e}");
    assert!(e.to_string().contains("version"), "{e}");
    // And from then on at every poll.
    assert!(r.poll(Signal::Traces, 200 * SECOND).is_err());
    drop(w);
}
