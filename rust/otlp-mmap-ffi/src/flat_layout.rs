//! The constants of the flat batch layout (the collector crate's `flat`
//! module, where they are defined), in the header for the Go decoder. cbindgen
//! writes only literals, so each is written out here and checked against
//! the collector's definition at compile time: a change there that is not
//! made here does not build.

use otlp_mmap_collector::flat;

/// Flat batch: its first four bytes ("OMF1"), as a little-endian u32.
pub const OM_FLAT_MAGIC: u32 = 0x3146_4D4F;
/// Flat batch mode byte: the flat layout follows.
pub const OM_FLAT_MODE_FLAT: u8 = 0;
/// Flat batch mode byte: the OTLP export request follows.
pub const OM_FLAT_MODE_OTLP: u8 = 1;
/// Flat batch: the bit of a str word (or attrs count) whose bytes follow inline.
pub const OM_FLAT_INLINE: u32 = 0x8000_0000;
/// Flat value kind: no value.
pub const OM_FLAT_KIND_EMPTY: u8 = 0;
/// Flat value kind: a string.
pub const OM_FLAT_KIND_STR: u8 = 1;
/// Flat value kind: a bool, one byte.
pub const OM_FLAT_KIND_BOOL: u8 = 2;
/// Flat value kind: an int64.
pub const OM_FLAT_KIND_INT: u8 = 3;
/// Flat value kind: a double, its bits.
pub const OM_FLAT_KIND_DOUBLE: u8 = 4;
/// Flat value kind: bytes, with their length.
pub const OM_FLAT_KIND_BYTES: u8 = 5;
/// Flat value kind: an encoded AnyValue message, with its length.
pub const OM_FLAT_KIND_ANY_VALUE: u8 = 6;
/// Flat batch: the fewest bytes a resource takes, with its count of scopes.
pub const OM_FLAT_RESOURCE_MIN_BYTES: u32 = 12;
/// Flat batch: the fewest bytes a scope takes, with its count of items.
pub const OM_FLAT_SCOPE_MIN_BYTES: u32 = 20;
/// Flat batch: the fewest bytes an attribute takes.
pub const OM_FLAT_ATTRIBUTE_MIN_BYTES: u32 = 5;
/// Flat batch: the fewest bytes a span takes.
pub const OM_FLAT_SPAN_MIN_BYTES: u32 = 88;
/// Flat batch: the fewest bytes a link takes.
pub const OM_FLAT_LINK_MIN_BYTES: u32 = 40;
/// Flat batch: the fewest bytes a log record takes.
pub const OM_FLAT_LOG_MIN_BYTES: u32 = 65;

const _: () = {
    assert!(OM_FLAT_MAGIC == u32::from_le_bytes(*flat::MAGIC));
    assert!(OM_FLAT_MODE_FLAT == flat::MODE_FLAT);
    assert!(OM_FLAT_MODE_OTLP == flat::MODE_OTLP);
    assert!(OM_FLAT_INLINE == flat::INLINE);
    assert!(OM_FLAT_KIND_EMPTY == flat::kind::EMPTY);
    assert!(OM_FLAT_KIND_STR == flat::kind::STR);
    assert!(OM_FLAT_KIND_BOOL == flat::kind::BOOL);
    assert!(OM_FLAT_KIND_INT == flat::kind::INT);
    assert!(OM_FLAT_KIND_DOUBLE == flat::kind::DOUBLE);
    assert!(OM_FLAT_KIND_BYTES == flat::kind::BYTES);
    assert!(OM_FLAT_KIND_ANY_VALUE == flat::kind::ANY_VALUE);
    assert!(OM_FLAT_RESOURCE_MIN_BYTES == flat::RESOURCE_MIN_BYTES);
    assert!(OM_FLAT_SCOPE_MIN_BYTES == flat::SCOPE_MIN_BYTES);
    assert!(OM_FLAT_ATTRIBUTE_MIN_BYTES == flat::ATTRIBUTE_MIN_BYTES);
    assert!(OM_FLAT_SPAN_MIN_BYTES == flat::SPAN_MIN_BYTES);
    assert!(OM_FLAT_LINK_MIN_BYTES == flat::LINK_MIN_BYTES);
    assert!(OM_FLAT_LOG_MIN_BYTES == flat::LOG_MIN_BYTES);
};
