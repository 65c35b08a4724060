//! Helpers shared by the integration tests (each test file includes this module).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use otlp_mmap_core::layout::ring_header;
use otlp_mmap_core::{FileConfig, MmapReader, RingConfig, RingKind, Slot};
use prost::Message;

/// A small file: every ring has `slots` slots of `size` bytes, the dictionary
/// starts at `dict` bytes and may grow to 16 MiB.
pub fn config(slots: u64, size: u64, dict: u64) -> FileConfig {
    let ring = RingConfig {
        num_buffers: slots,
        buffer_size: size,
    };
    FileConfig {
        events: ring,
        spans: ring,
        measurements: ring,
        dictionary_initial_size: dict,
        dictionary_max_size: 16 << 20,
    }
}

/// The directory of the upstream reference vectors (read-only: copy first).
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors/upstream-v1")
}

/// The names of the upstream vectors (without `.otlp`).
pub const VECTORS: [&str; 4] = ["spans", "logs", "metrics", "wrap-2p32"];

/// The bytes of one upstream vector.
pub fn vector_bytes(name: &str) -> Vec<u8> {
    let p = vectors_dir().join(format!("{name}.otlp"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// A ring header word (`ring_header::*`) as the reader sees it.
pub fn ring_word(reader: &MmapReader, kind: RingKind, field: u64) -> i64 {
    let off = reader.layout().ring(kind).offset + field;
    reader
        .region()
        .atomic_i64(off)
        .unwrap()
        .load(Ordering::Acquire)
}

pub fn writer_index(reader: &MmapReader, kind: RingKind) -> i64 {
    ring_word(reader, kind, ring_header::WRITER_INDEX)
}

pub fn reader_index(reader: &MmapReader, kind: RingKind) -> i64 {
    ring_word(reader, kind, ring_header::READER_INDEX)
}

/// Reads every published record of a ring as `M`, with its sequence number,
/// and releases the slots. Panics on a corrupt slot or a decode error.
pub fn read_all<M: Message + Default>(reader: &MmapReader, kind: RingKind) -> Vec<(i64, M)> {
    let mut ring = reader.ring_reader(kind).unwrap();
    let mut out = Vec::new();
    loop {
        match ring.peek(reader.region()) {
            Slot::Empty => break,
            Slot::Ready(b) => out.push((ring.next_sequence(), M::decode(b).unwrap())),
            Slot::Corrupt(e) => panic!("corrupt slot at {}: {e}", ring.next_sequence()),
        }
        ring.advance();
    }
    ring.release(reader.region()).unwrap();
    out
}

/// Writes `bytes` at `offset` of the file at `path` (through the file, not a mapping).
pub fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

/// Reads the little-endian i64 at `offset` of `bytes`.
pub fn get_i64(bytes: &[u8], offset: u64) -> i64 {
    let o = offset as usize;
    i64::from_le_bytes(bytes[o..o + 8].try_into().unwrap())
}

/// Sets the little-endian i64 at `offset` of `bytes` (no-op past the end).
pub fn set_i64(bytes: &mut [u8], offset: u64, v: i64) {
    let o = offset as usize;
    if let Some(dst) = bytes.get_mut(o..o + 8) {
        dst.copy_from_slice(&v.to_le_bytes());
    }
}
