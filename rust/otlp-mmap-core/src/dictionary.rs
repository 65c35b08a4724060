//! The append-only dictionary: strings and messages stored once and referred
//! to by their file offset (their "ref").

use std::sync::atomic::Ordering;

use crate::error::FormatError;
use crate::layout::{DICTIONARY_HEADER_LEN, dictionary_header};
use crate::region::SharedRegion;

/// Reads the raw bytes of the entry at `reference`, checked against the
/// dictionary's bounds and `end` (which must itself lie inside the file).
///
/// `dictionary` is the dictionary's offset. Ref 0 is "none" and is not an entry:
/// callers handle it before calling this.
pub fn read_entry(
    region: &SharedRegion,
    dictionary: u64,
    reference: i64,
) -> Result<&[u8], FormatError> {
    let first = dictionary + DICTIONARY_HEADER_LEN;
    if reference < first as i64 {
        return Err(FormatError::BadRef {
            reference,
            reason: "before the first dictionary entry",
        });
    }
    let end = region
        .atomic_i64(dictionary + dictionary_header::END)?
        .load(Ordering::Acquire);
    if end < first as i64 {
        return Err(FormatError::BadDictionaryEnd {
            end,
            reason: "before the first entry",
        });
    }
    // Entries past the end of the file cannot be read whatever `end` says.
    let limit = (end as u64).min(region.valid_len() as u64);
    let r = reference as u64;
    if r >= limit {
        return Err(FormatError::BadRef {
            reference,
            reason: "past the dictionary end or the file",
        });
    }
    let avail = (limit - r) as usize;
    let head = region.bytes(r, avail.min(10))?;
    let mut buf = head;
    let len = prost::encoding::decode_varint(&mut buf).map_err(|_| FormatError::BadRef {
        reference,
        reason: "length is not a valid varint",
    })?;
    let prefix = head.len() - buf.len();
    if len > (avail - prefix) as u64 {
        return Err(FormatError::BadRef {
            reference,
            reason: "entry length runs past the dictionary end",
        });
    }
    region.bytes(r + prefix as u64, len as usize)
}

/// Reads the dictionary header: `(end, num_entries)`.
pub fn read_header(region: &SharedRegion, dictionary: u64) -> Result<(i64, i64), FormatError> {
    let end = region
        .atomic_i64(dictionary + dictionary_header::END)?
        .load(Ordering::Acquire);
    let n = region
        .atomic_i64(dictionary + dictionary_header::NUM_ENTRIES)?
        .load(Ordering::Acquire);
    Ok((end, n))
}
