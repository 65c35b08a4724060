//! `otlp-mmap inspect`.

use std::path::Path;
use std::sync::atomic::Ordering;

use otlp_mmap_core::layout::ring_header;
use otlp_mmap_core::{MmapReader, RingKind};

/// Prints the file's header, rings and dictionary.
pub fn run(path: &Path) -> Result<(), String> {
    // Look only: no reader lock, nothing written.
    let file = MmapReader::open(path, false).map_err(|e| format!("{}: {e}", path.display()))?;
    let region = file.region();
    let word = |off: u64| {
        region
            .atomic_i64(off)
            .map(|a| a.load(Ordering::Acquire))
            .unwrap_or(-1)
    };
    println!("file:        {}", path.display());
    println!("version:     1");
    println!(
        "start time:  {} ns since the epoch",
        file.start_time_unix_nano()
    );
    println!("file size:   {} bytes", region.valid_len());
    for kind in RingKind::ALL {
        let g = file.layout().ring(kind);
        let r = word(g.offset + ring_header::READER_INDEX);
        let w = word(g.offset + ring_header::WRITER_INDEX);
        let unread = w.saturating_sub(r).clamp(0, g.num_buffers as i64);
        // Claimed (up to writer_index) and not published: a writer is filling
        // them, or died holding them (the reader skips those as abandoned).
        let unpublished = (1..=unread)
            .filter(|k| {
                let seq = r + k;
                region
                    .atomic_i32(g.flag_offset(g.slot_of(seq)))
                    .map(|f| !g.publishes(f.load(Ordering::Acquire), seq))
                    .unwrap_or(true)
            })
            .count();
        println!(
            "{:<13}offset {:>9}  slots {:>6} x {:>6} B  reader_index {:>12}  writer_index {:>12}  fill {}/{} ({:.1}%)  unpublished {}",
            format!("{} ring:", kind.name()),
            g.offset,
            g.num_buffers,
            g.buffer_size,
            r,
            w,
            unread,
            g.num_buffers,
            100.0 * unread as f64 / g.num_buffers as f64,
            unpublished
        );
    }
    let (end, entries) = file.dictionary_header().map_err(|e| e.to_string())?;
    let first = file.layout().dictionary + otlp_mmap_core::layout::DICTIONARY_HEADER_LEN;
    println!(
        "dictionary:  offset {:>9}  {} bytes used  {} entries",
        file.layout().dictionary,
        (end as u64).saturating_sub(first),
        entries
    );
    Ok(())
}
