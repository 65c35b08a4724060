//! `MmapReader::open_file` reads a file the caller opened: the path only names
//! it, and later checks of the path compare against the opened file.

mod common;

use std::fs::OpenOptions;

use common::config;
use otlp_mmap_core::{FileChange, FormatError, MmapReader, MmapWriter};

fn open_rw(path: &std::path::Path) -> std::fs::File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

#[test]
fn open_file_reads_the_opened_file_and_watches_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.otlp");
    let _writer = MmapWriter::create(&path, &config(16, 256, 4096)).unwrap();

    let reader = MmapReader::open_file(open_rw(&path), &path, true).unwrap();
    assert_eq!(reader.path(), path);
    assert_eq!(reader.file_change(), FileChange::None);

    // The exclusive reader lock is taken on the given file.
    let second = MmapReader::open_file(open_rw(&path), &path, true);
    assert!(matches!(second, Err(FormatError::Locked)), "{second:?}");

    // Another file at the path is a replacement of the opened one.
    std::fs::rename(&path, dir.path().join("moved.otlp")).unwrap();
    let _other = MmapWriter::create(&path, &config(16, 256, 4096)).unwrap();
    assert_eq!(reader.file_change(), FileChange::Replaced);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(reader.file_change(), FileChange::Removed);
}

#[test]
fn open_file_validates_like_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.otlp");
    std::fs::write(&path, b"junk").unwrap();
    let err = MmapReader::open_file(open_rw(&path), &path, true).unwrap_err();
    assert!(matches!(err, FormatError::Truncated { .. }), "{err:?}");
}
