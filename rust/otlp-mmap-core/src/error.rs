//! Typed errors: every problem a file or a call can have, named.

/// What went wrong while reading or writing an OTLP-MMAP file.
///
/// A reader meets these for files written by another process; each names the
/// problem so that a log line tells the operator what is wrong with the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// An operating system call failed (the message of the `io::Error`).
    #[error("I/O error: {0}")]
    Io(String),
    /// The file is too short for a part it declares.
    #[error("file is {len} bytes, shorter than the {need} bytes its {what} needs")]
    Truncated {
        /// The part that does not fit.
        what: &'static str,
        /// Length of the file.
        len: u64,
        /// Length the part needs.
        need: u64,
    },
    /// The header's version is not 1.
    #[error("unsupported format version {0} (this reader reads version 1)")]
    UnsupportedVersion(i64),
    /// A section offset in the header is negative, misaligned or past the end.
    #[error("{what} offset {offset} is invalid: {reason}")]
    BadOffset {
        /// The section.
        what: &'static str,
        /// The offset found.
        offset: i64,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A ring's slot count is not a power of two greater than 0.
    #[error("{ring} ring: num_buffers {value} is not a power of two greater than 0")]
    BadSlotCount {
        /// The ring.
        ring: &'static str,
        /// The slot count found.
        value: i64,
    },
    /// A ring's slot size is invalid.
    #[error("{ring} ring: buffer_size {value} is invalid ({reason})")]
    BadSlotSize {
        /// The ring.
        ring: &'static str,
        /// The slot size found.
        value: i64,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A ring does not fit in its section.
    #[error("{ring} ring needs {need} bytes but its section has only {have}")]
    RingTooLarge {
        /// The ring.
        ring: &'static str,
        /// Bytes the ring needs.
        need: u64,
        /// Bytes its section has.
        have: u64,
    },
    /// Two sections of the file overlap.
    #[error("sections overlap: {first} and {second}")]
    Overlap {
        /// One section.
        first: &'static str,
        /// The other section.
        second: &'static str,
    },
    /// An access would read or write outside the file.
    #[error("access of {len} bytes at offset {offset} lies outside the file")]
    OutOfBounds {
        /// Offset of the access.
        offset: u64,
        /// Length of the access.
        len: usize,
    },
    /// An atomic access is not aligned to its size.
    #[error("offset {offset} is not aligned to {align} bytes")]
    Misaligned {
        /// Offset of the access.
        offset: u64,
        /// Alignment it needs.
        align: usize,
    },
    /// A slot's length prefix is not a valid varint.
    #[error("slot length prefix is invalid: {0}")]
    BadLength(&'static str),
    /// A slot's length prefix claims more bytes than the slot holds.
    #[error("slot claims {len} bytes but the slot holds at most {max}")]
    SlotOverflow {
        /// Length claimed.
        len: u64,
        /// Most bytes the slot holds after its prefix.
        max: u64,
    },
    /// A record is not valid protobuf for its message.
    #[error("record does not decode: {0}")]
    Decode(String),
    /// A dictionary ref does not point at a complete entry.
    #[error("dictionary ref {reference} is invalid: {reason}")]
    BadRef {
        /// The ref.
        reference: i64,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// The dictionary's `end` is out of its bounds.
    #[error("dictionary end {end} is invalid: {reason}")]
    BadDictionaryEnd {
        /// The `end` found.
        end: i64,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// The dictionary cannot grow by the bytes an entry needs.
    #[error("dictionary is full: {need} bytes needed, at most {max} allowed")]
    DictionaryFull {
        /// Bytes needed.
        need: u64,
        /// Most bytes allowed.
        max: u64,
    },
    /// The filesystem could not allocate the blocks of a file of `len` bytes
    /// (full disk or tmpfs, quota, `RLIMIT_FSIZE`): the writer does not use
    /// space it could not reserve, since touching such a page would SIGBUS.
    #[error("no space for the file to reach {len} bytes: {reason}")]
    NoSpace {
        /// File length that could not be reserved.
        len: u64,
        /// The system's error.
        reason: String,
    },
    /// A writer configuration is invalid (the message says which field).
    #[error("invalid writer configuration: {0}")]
    Config(String),
    /// Another reader holds this file's reader lock.
    #[error("another reader already reads this file (its reader lock is held)")]
    Locked,
    /// `reader_index` is not where this reader left it.
    #[error(
        "reader_index is {found}, not the {expected} this reader stored: the writer started over in place, or another reader is at work"
    )]
    ReaderIndexMoved {
        /// The index this reader stored.
        expected: i64,
        /// The index found.
        found: i64,
    },
    /// The file shrank under the reader's mapping (a read hit SIGBUS).
    #[error(
        "the file shrank while it was mapped (a page vanished under the reader): the file is given up"
    )]
    Shrunk,
    #[error("file is {len} bytes, more than the {max} bytes a reader maps (max_mapped_bytes)")]
    /// The file is longer than the address space the reader maps for it.
    FileTooLarge {
        /// The file's length.
        len: u64,
        /// `max_mapped_bytes`.
        max: u64,
    },
    /// A record is larger than a slot of its ring.
    #[error("record of {len} bytes does not fit a {slot}-byte slot")]
    TooLarge {
        /// Encoded length of the record.
        len: usize,
        /// Slot size of the ring.
        slot: usize,
    },
}

impl From<std::io::Error> for FormatError {
    fn from(e: std::io::Error) -> Self {
        FormatError::Io(e.to_string())
    }
}
