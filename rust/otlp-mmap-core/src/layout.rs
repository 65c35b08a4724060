//! The byte layout of an OTLP-MMAP v1 file, as pure functions over header values.
//!
//! Nothing here touches memory: a reader reads the header words, then
//! [`FileLayout::validate`] checks every offset and ring geometry against the
//! file's length before any other byte is used.

use crate::error::FormatError;

/// The format version this crate reads and writes.
pub const VERSION: i64 = 1;
/// Size of the file header.
pub const FILE_HEADER_LEN: u64 = 64;
/// Size of each ring header.
pub const RING_HEADER_LEN: u64 = 32;
/// Size of the dictionary header.
pub const DICTIONARY_HEADER_LEN: u64 = 64;

/// Byte offsets of the file header fields.
pub mod header {
    /// Format version (1).
    pub const VERSION: u64 = 0;
    /// Offset of the events ring.
    pub const EVENTS: u64 = 8;
    /// Offset of the spans ring.
    pub const SPANS: u64 = 16;
    /// Offset of the measurements ring.
    pub const MEASUREMENTS: u64 = 24;
    /// Offset of the dictionary.
    pub const DICTIONARY: u64 = 32;
    /// The writer's start time (Unix nanoseconds).
    pub const START_TIME: u64 = 40;
}

/// Byte offsets of the ring header fields, from the ring's offset.
pub mod ring_header {
    /// Number of slots.
    pub const NUM_BUFFERS: u64 = 0;
    /// Size of a slot.
    pub const BUFFER_SIZE: u64 = 8;
    /// Sequence of the last slot the reader released.
    pub const READER_INDEX: u64 = 16;
    /// Sequence of the last slot a writer claimed.
    pub const WRITER_INDEX: u64 = 24;
}

/// Byte offsets of the dictionary header fields, from the dictionary's offset.
pub mod dictionary_header {
    /// Offset just past the last reserved entry.
    pub const END: u64 = 0;
    /// Number of entries.
    pub const NUM_ENTRIES: u64 = 8;
}

/// The three rings of a file, in header order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RingKind {
    /// Log records (`Event` messages).
    Events,
    /// Span lifecycle events (`SpanEvent` messages).
    Spans,
    /// Raw metric recordings (`Measurement` messages).
    Measurements,
}

impl RingKind {
    /// All rings, in header order.
    pub const ALL: [RingKind; 3] = [RingKind::Events, RingKind::Spans, RingKind::Measurements];

    /// The ring's name as the spec writes it.
    pub fn name(self) -> &'static str {
        match self {
            RingKind::Events => "events",
            RingKind::Spans => "spans",
            RingKind::Measurements => "measurements",
        }
    }
}

/// Where one ring lives and how it is shaped. Valid by construction: built only
/// by [`RingGeometry::new`], which checks it against its section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingGeometry {
    /// Offset of the ring header.
    pub offset: u64,
    /// Slot count (a power of two).
    pub num_buffers: u64,
    /// Bytes per slot.
    pub buffer_size: u64,
}

impl RingGeometry {
    /// Checks a ring's header values against the section `[offset, section_end)`.
    pub fn new(
        kind: RingKind,
        offset: u64,
        num_buffers: i64,
        buffer_size: i64,
        section_end: u64,
    ) -> Result<Self, FormatError> {
        let ring = kind.name();
        if num_buffers <= 0 || (num_buffers as u64).count_ones() != 1 {
            return Err(FormatError::BadSlotCount {
                ring,
                value: num_buffers,
            });
        }
        if buffer_size <= 0 {
            return Err(FormatError::BadSlotSize {
                ring,
                value: buffer_size,
                reason: "must be greater than 0",
            });
        }
        let g = RingGeometry {
            offset,
            num_buffers: num_buffers as u64,
            buffer_size: buffer_size as u64,
        };
        let need = g.total_len().ok_or(FormatError::RingTooLarge {
            ring,
            need: u64::MAX,
            have: section_end.saturating_sub(offset),
        })?;
        let have = section_end.saturating_sub(offset);
        if need > have {
            return Err(FormatError::RingTooLarge { ring, need, have });
        }
        Ok(g)
    }

    /// Bytes the ring occupies (header, availability array, slots), or `None` on overflow.
    pub fn total_len(&self) -> Option<u64> {
        let flags = self.num_buffers.checked_mul(4)?;
        let slots = self.num_buffers.checked_mul(self.buffer_size)?;
        RING_HEADER_LEN.checked_add(flags)?.checked_add(slots)
    }

    /// `log2(num_buffers)`.
    pub fn shift(&self) -> u32 {
        self.num_buffers.trailing_zeros()
    }

    /// Offset of the availability entry of slot `index`.
    pub fn flag_offset(&self, index: u64) -> u64 {
        self.offset + RING_HEADER_LEN + 4 * index
    }

    /// Offset of the first byte of slot `index`.
    pub fn slot_offset(&self, index: u64) -> u64 {
        self.offset + RING_HEADER_LEN + 4 * self.num_buffers + index * self.buffer_size
    }

    /// The slot of sequence `seq`.
    pub fn slot_of(&self, seq: i64) -> u64 {
        (seq as u64) & (self.num_buffers - 1)
    }

    /// The availability flag that publishes `seq`, in the form the spec and the
    /// Java writer use: `seq >> log2(n)` as a 64-bit logical shift, truncated to i32.
    pub fn flag_of(&self, seq: i64) -> i32 {
        ((seq as u64) >> self.shift()) as u32 as i32
    }

    /// The flag in the reference Rust writer's form: the low 32 bits of `seq`
    /// shifted. It equals [`flag_of`](Self::flag_of) below 2^32.
    pub fn upstream_flag_of(&self, seq: i64) -> i32 {
        ((seq as u64 as u32) >> self.shift()) as i32
    }

    /// Whether `flag` publishes `seq` under either writer convention.
    ///
    /// Accepting both forms never takes a stale slot as published: the slot of
    /// `seq` last held `seq - m*n` (m >= 1). Both forms agree modulo
    /// 2^(32-k) (k = log2 n) with `seq >> k`, and a stale sequence's flag is
    /// `(seq >> k) - m` modulo that, which differs from both forms unless m is a
    /// multiple of 2^(32-k), i.e. the slot was rewritten 2^(32-k) times since,
    /// which the reader would have seen happen.
    pub fn publishes(&self, flag: i32, seq: i64) -> bool {
        flag == self.flag_of(seq) || flag == self.upstream_flag_of(seq)
    }
}

/// The validated layout of a whole file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLayout {
    /// The events (log records) ring.
    pub events: RingGeometry,
    /// The spans ring.
    pub spans: RingGeometry,
    /// The measurements ring.
    pub measurements: RingGeometry,
    /// Offset of the dictionary header.
    pub dictionary: u64,
}

impl FileLayout {
    /// The geometry of one ring.
    pub fn ring(&self, kind: RingKind) -> RingGeometry {
        match kind {
            RingKind::Events => self.events,
            RingKind::Spans => self.spans,
            RingKind::Measurements => self.measurements,
        }
    }

    /// Checks header values against a file of `file_len` bytes.
    ///
    /// `offsets` are the events, spans, measurements and dictionary offsets from
    /// the file header; `ring_headers(offset)` reads `(num_buffers, buffer_size)`
    /// at a ring offset that is already known to lie inside the file.
    pub fn validate(
        version: i64,
        offsets: [i64; 4],
        file_len: u64,
        mut ring_headers: impl FnMut(u64) -> Result<(i64, i64), FormatError>,
    ) -> Result<Self, FormatError> {
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion(version));
        }
        const NAMES: [&str; 4] = ["events", "spans", "measurements", "dictionary"];
        let mut sections = [(0u64, ""); 4];
        for (i, &off) in offsets.iter().enumerate() {
            let what = NAMES[i];
            if off < FILE_HEADER_LEN as i64 {
                return Err(FormatError::BadOffset {
                    what,
                    offset: off,
                    reason: "inside the file header or negative",
                });
            }
            if off % 8 != 0 {
                return Err(FormatError::BadOffset {
                    what,
                    offset: off,
                    reason: "not 8-byte aligned",
                });
            }
            let min_len = if i == 3 {
                DICTIONARY_HEADER_LEN
            } else {
                RING_HEADER_LEN
            };
            if (off as u64)
                .checked_add(min_len)
                .is_none_or(|e| e > file_len)
            {
                return Err(FormatError::BadOffset {
                    what,
                    offset: off,
                    reason: "past the end of the file",
                });
            }
            sections[i] = (off as u64, what);
        }
        // Each section ends where the next one (by offset) starts; the last ends at
        // the end of the file.
        let mut order = sections;
        order.sort_by_key(|s| s.0);
        for w in order.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(FormatError::Overlap {
                    first: w[0].1,
                    second: w[1].1,
                });
            }
        }
        let end_of = |off: u64| -> u64 {
            order
                .iter()
                .map(|s| s.0)
                .filter(|&o| o > off)
                .min()
                .unwrap_or(file_len)
        };
        let dictionary = offsets[3] as u64;
        if dictionary + DICTIONARY_HEADER_LEN > end_of(dictionary) {
            return Err(FormatError::Overlap {
                first: "dictionary",
                second: "the section after it",
            });
        }
        let mut rings = [None; 3];
        for (i, kind) in RingKind::ALL.into_iter().enumerate() {
            let off = offsets[i] as u64;
            let (n, size) = ring_headers(off)?;
            rings[i] = Some(RingGeometry::new(kind, off, n, size, end_of(off))?);
        }
        let [Some(events), Some(spans), Some(measurements)] = rings else {
            unreachable!("every ring was set above")
        };
        Ok(FileLayout {
            events,
            spans,
            measurements,
            dictionary,
        })
    }
}

/// Sizes a writer chooses when it creates a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingConfig {
    /// Slot count; a power of two, at least 2.
    pub num_buffers: u64,
    /// Bytes per slot; at least 16.
    pub buffer_size: u64,
}

/// How a writer lays out a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileConfig {
    /// The events (log records) ring.
    pub events: RingConfig,
    /// The spans ring.
    pub spans: RingConfig,
    /// The measurements ring.
    pub measurements: RingConfig,
    /// Bytes for dictionary entries when the file is created; the file grows past it.
    pub dictionary_initial_size: u64,
    /// Largest the dictionary may grow to (the writer's address-space reservation).
    pub dictionary_max_size: u64,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            events: RingConfig {
                num_buffers: 4096,
                buffer_size: 1024,
            },
            spans: RingConfig {
                num_buffers: 8192,
                buffer_size: 512,
            },
            measurements: RingConfig {
                num_buffers: 8192,
                buffer_size: 256,
            },
            dictionary_initial_size: 64 * 1024,
            dictionary_max_size: 64 * 1024 * 1024,
        }
    }
}

impl FileConfig {
    /// Checks the sizes and computes the layout: the events ring at 64 and each
    /// section directly after the previous one (rounded up to 8 bytes), as the
    /// reference writer does. Returns the layout and the initial file length.
    pub fn layout(&self) -> Result<(FileLayout, u64), FormatError> {
        let mut off = FILE_HEADER_LEN;
        let mut rings = [None; 3];
        for (i, (kind, rc)) in [
            (RingKind::Events, self.events),
            (RingKind::Spans, self.spans),
            (RingKind::Measurements, self.measurements),
        ]
        .into_iter()
        .enumerate()
        {
            if rc.num_buffers < 2 || !rc.num_buffers.is_power_of_two() || rc.num_buffers > 1 << 24 {
                return Err(FormatError::Config(format!(
                    "{} ring: num_buffers {} must be a power of two between 2 and 2^24",
                    kind.name(),
                    rc.num_buffers
                )));
            }
            if rc.buffer_size < 16 || rc.buffer_size > 1 << 24 {
                return Err(FormatError::Config(format!(
                    "{} ring: buffer_size {} must be between 16 and 2^24",
                    kind.name(),
                    rc.buffer_size
                )));
            }
            let g = RingGeometry {
                offset: off,
                num_buffers: rc.num_buffers,
                buffer_size: rc.buffer_size,
            };
            let len = g.total_len().expect("bounded sizes cannot overflow");
            off = (off + len).next_multiple_of(8);
            rings[i] = Some(g);
        }
        if self.dictionary_initial_size > self.dictionary_max_size {
            return Err(FormatError::Config(
                "dictionary_initial_size is larger than dictionary_max_size".into(),
            ));
        }
        let dictionary = off;
        let file_len = dictionary + DICTIONARY_HEADER_LEN + self.dictionary_initial_size;
        let [Some(events), Some(spans), Some(measurements)] = rings else {
            unreachable!("every ring was set above")
        };
        Ok((
            FileLayout {
                events,
                spans,
                measurements,
                dictionary,
            },
            file_len,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_agree_below_2p32_and_differ_above() {
        let g = RingGeometry {
            offset: 64,
            num_buffers: 64,
            buffer_size: 512,
        };
        for s in [0i64, 63, 64, 1000, (1 << 32) - 1] {
            assert_eq!(g.flag_of(s), g.upstream_flag_of(s));
        }
        assert_eq!(g.upstream_flag_of(1 << 32), 0);
        assert_eq!(g.flag_of(1 << 32), 67108864);
        assert!(g.publishes(0, 1 << 32));
        assert!(g.publishes(67108864, 1 << 32));
        // The stale flag of the previous use of the slot is never accepted.
        let prev = (1i64 << 32) - 64;
        assert!(!g.publishes(g.flag_of(prev), 1 << 32));
        assert!(!g.publishes(g.upstream_flag_of(prev), 1 << 32));
        assert!(!g.publishes(-1, 0));
    }

    #[test]
    fn default_layout_matches_reference_packing() {
        let cfg = FileConfig {
            events: RingConfig {
                num_buffers: 16,
                buffer_size: 256,
            },
            spans: RingConfig {
                num_buffers: 64,
                buffer_size: 1024,
            },
            measurements: RingConfig {
                num_buffers: 16,
                buffer_size: 256,
            },
            dictionary_initial_size: 4096,
            dictionary_max_size: 1 << 20,
        };
        let (l, len) = cfg.layout().unwrap();
        // Same numbers as the reference writer's spans.otlp vector.
        assert_eq!(l.events.offset, 64);
        assert_eq!(l.spans.offset, 4256);
        assert_eq!(l.measurements.offset, 70080);
        assert_eq!(l.dictionary, 74272);
        assert_eq!(len, 78432);
    }

    #[test]
    fn geometry_rejects_bad_values() {
        let k = RingKind::Spans;
        assert!(matches!(
            RingGeometry::new(k, 64, 0, 8, 1 << 20),
            Err(FormatError::BadSlotCount { .. })
        ));
        assert!(matches!(
            RingGeometry::new(k, 64, 3, 8, 1 << 20),
            Err(FormatError::BadSlotCount { .. })
        ));
        assert!(matches!(
            RingGeometry::new(k, 64, -4, 8, 1 << 20),
            Err(FormatError::BadSlotCount { .. })
        ));
        assert!(matches!(
            RingGeometry::new(k, 64, 4, 0, 1 << 20),
            Err(FormatError::BadSlotSize { .. })
        ));
        assert!(matches!(
            RingGeometry::new(k, 64, 1 << 62, i64::MAX, 1 << 20),
            Err(FormatError::RingTooLarge { .. })
        ));
        assert!(matches!(
            RingGeometry::new(k, 64, 4, 256, 64 + 32 + 16 + 1023),
            Err(FormatError::RingTooLarge { .. })
        ));
        assert!(RingGeometry::new(k, 64, 4, 256, 64 + 32 + 16 + 1024).is_ok());
    }

    #[test]
    fn validate_rejects_overlap_and_bad_offsets() {
        let hdr = |_: u64| Ok((4, 16));
        assert!(matches!(
            FileLayout::validate(2, [64, 200, 400, 600], 1000, hdr),
            Err(FormatError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            FileLayout::validate(1, [64, 64, 400, 600], 1000, hdr),
            Err(FormatError::Overlap { .. })
        ));
        assert!(matches!(
            FileLayout::validate(1, [8, 200, 400, 600], 1000, hdr),
            Err(FormatError::BadOffset { .. })
        ));
        assert!(matches!(
            FileLayout::validate(1, [64, 200, 400, 990], 1000, hdr),
            Err(FormatError::BadOffset { .. })
        ));
        assert!(matches!(
            FileLayout::validate(1, [64, 104, 400, 600], 1000, hdr),
            Err(FormatError::RingTooLarge { .. })
        ));
        let l = FileLayout::validate(1, [64, 200, 400, 600], 1000, hdr).unwrap();
        assert_eq!(l.spans.offset, 200);
    }
}
