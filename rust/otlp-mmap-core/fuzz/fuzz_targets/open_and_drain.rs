//! Writes the input to a file, opens it with `MmapReader::open(path, false)`,
//! drains every ring and resolves every ref it meets
//! (`otlp_mmap_core::check::drain_bytes_in`, the same routine the corpus
//! replay test uses). Any panic, hang or huge allocation is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir();
    let _ = otlp_mmap_core::check::drain_bytes_in(&dir, data);
});
