//! Writes the input to a file and drives a `FileReader` over it the way the
//! receiver does: poll and commit every signal, collect metrics, shut down
//! (`otlp_mmap_collector::drive::drive_bytes_in`, the same routine the
//! corpus replay test uses). A panic, a loop past its bound, a hang or a
//! huge allocation is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir();
    let _ = otlp_mmap_collector::drive::drive_bytes_in(&dir, data);
});
