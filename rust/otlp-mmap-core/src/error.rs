//! Typed errors: every problem a file or a call can have, named.

/// What went wrong while reading or writing an OTLP-MMAP file.
///
/// A reader meets these for files written by another process; each names the
/// problem so that a log line tells the operator what is wrong with the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("I/O error: {0}")]
    Io(String),
    #[error("file is {len} bytes, shorter than the {need} bytes its {what} needs")]
    Truncated {
        what: &'static str,
        len: u64,
        need: u64,
    },
    #[error("unsupported format version {0} (this reader reads version 1)")]
    UnsupportedVersion(i64),
    #[error("{what} offset {offset} is invalid: {reason}")]
    BadOffset {
        what: &'static str,
        offset: i64,
        reason: &'static str,
    },
    #[error("{ring} ring: num_buffers {value} is not a power of two greater than 0")]
    BadSlotCount { ring: &'static str, value: i64 },
    #[error("{ring} ring: buffer_size {value} is invalid ({reason})")]
    BadSlotSize {
        ring: &'static str,
        value: i64,
        reason: &'static str,
    },
    #[error("{ring} ring needs {need} bytes but its section has only {have}")]
    RingTooLarge {
        ring: &'static str,
        need: u64,
        have: u64,
    },
    #[error("sections overlap: {first} and {second}")]
    Overlap {
        first: &'static str,
        second: &'static str,
    },
    #[error("access of {len} bytes at offset {offset} lies outside the file")]
    OutOfBounds { offset: u64, len: usize },
    #[error("offset {offset} is not aligned to {align} bytes")]
    Misaligned { offset: u64, align: usize },
    #[error("slot length prefix is invalid: {0}")]
    BadLength(&'static str),
    #[error("slot claims {len} bytes but the slot holds at most {max}")]
    SlotOverflow { len: u64, max: u64 },
    #[error("record does not decode: {0}")]
    Decode(String),
    #[error("dictionary ref {reference} is invalid: {reason}")]
    BadRef {
        reference: i64,
        reason: &'static str,
    },
    #[error("dictionary end {end} is invalid: {reason}")]
    BadDictionaryEnd { end: i64, reason: &'static str },
    #[error("dictionary is full: {need} bytes needed, at most {max} allowed")]
    DictionaryFull { need: u64, max: u64 },
    /// The filesystem could not allocate the blocks of a file of `len` bytes
    /// (full disk or tmpfs, quota, `RLIMIT_FSIZE`): the writer does not use
    /// space it could not reserve, since touching such a page would SIGBUS.
    #[error("no space for the file to reach {len} bytes: {reason}")]
    NoSpace { len: u64, reason: String },
    #[error("invalid writer configuration: {0}")]
    Config(String),
    #[error("another reader already reads this file (its reader lock is held)")]
    Locked,
    #[error(
        "reader_index is {found}, not the {expected} this reader stored: the writer started over in place, or another reader is at work"
    )]
    ReaderIndexMoved { expected: i64, found: i64 },
    #[error(
        "the file shrank while it was mapped (a page vanished under the reader): the file is given up"
    )]
    Shrunk,
    #[error("file is {len} bytes, more than the {max} bytes a reader maps (max_mapped_bytes)")]
    FileTooLarge { len: u64, max: u64 },
    #[error("record of {len} bytes does not fit a {slot}-byte slot")]
    TooLarge { len: usize, slot: usize },
}

impl From<std::io::Error> for FormatError {
    fn from(e: std::io::Error) -> Self {
        FormatError::Io(e.to_string())
    }
}
