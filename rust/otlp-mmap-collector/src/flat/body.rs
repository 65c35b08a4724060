//! What the flat layouts of every signal share: the walk over an export
//! request's resources and scopes, attribute lists and values, strings as
//! table ids, and the protobuf fields of our own encoder read back.

use otlp_mmap_core::view::{Fields, Wire};

use super::strings::{StringTable, hash};
use super::{NotFlat, kind};

/// Buffers reused across batches.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Hashes of the keys of the attribute list being written.
    keys: Vec<u64>,
}

/// The fields of `msg`; a field that does not parse ends the batch's flat form.
pub(crate) fn fields(msg: &[u8]) -> impl Iterator<Item = Result<(u32, Wire<'_>), NotFlat>> {
    Fields::new(msg).map(|f| f.map_err(|_| NotFlat))
}

/// Marks field `field` as seen in `seen`: a field that is not repeated and
/// appears twice (which protobuf merges) is not expressed flat.
pub(crate) fn once(seen: &mut u64, field: u32) -> Result<(), NotFlat> {
    let bit = 1u64 << (field & 63);
    if field >= 64 || *seen & bit != 0 {
        return Err(NotFlat);
    }
    *seen |= bit;
    Ok(())
}

pub(crate) fn bytes(w: Wire<'_>) -> Result<&[u8], NotFlat> {
    match w {
        Wire::Bytes(b) => Ok(b),
        _ => Err(NotFlat),
    }
}

pub(crate) fn varint(w: Wire<'_>) -> Result<u64, NotFlat> {
    match w {
        Wire::Varint(v) => Ok(v),
        _ => Err(NotFlat),
    }
}

pub(crate) fn fixed64(w: Wire<'_>) -> Result<u64, NotFlat> {
    match w {
        Wire::Fixed64(v) => Ok(v),
        _ => Err(NotFlat),
    }
}

pub(crate) fn fixed32(w: Wire<'_>) -> Result<u32, NotFlat> {
    match w {
        Wire::Fixed32(v) => Ok(v),
        _ => Err(NotFlat),
    }
}

/// An id of `N` bytes, or zeros when absent (empty); another length is
/// what pdata refuses, so the batch goes as OTLP.
pub(crate) fn id<const N: usize>(b: &[u8]) -> Result<[u8; N], NotFlat> {
    match b.len() {
        0 => Ok([0; N]),
        _ => b.try_into().map_err(|_| NotFlat),
    }
}

pub(crate) fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Reserves a count, for [`patch`].
pub(crate) fn count_at(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    put_u32(out, 0);
    at
}

pub(crate) fn patch(out: &mut [u8], at: usize, n: u32) {
    out[at..at + 4].copy_from_slice(&n.to_le_bytes());
}

/// Bit of a `str` word that says the string follows inline.
pub(crate) const INLINE: u32 = 1 << 31;

/// Writes `s` as a table id or inline (see [`StringTable::intern`]).
pub(crate) fn put_str(
    strings: &mut StringTable,
    out: &mut Vec<u8>,
    s: &[u8],
    always: bool,
) -> Result<(), NotFlat> {
    put_str_hashed(strings, out, s, hash(s), always)
}

/// [`put_str`] of a string whose hash is known.
pub(crate) fn put_str_hashed(
    strings: &mut StringTable,
    out: &mut Vec<u8>,
    s: &[u8],
    h: u64,
    always: bool,
) -> Result<(), NotFlat> {
    match strings.intern(s, h, always) {
        Some(id) => put_u32(out, id),
        None => {
            let len = u32::try_from(s.len())
                .ok()
                .filter(|&n| n < INLINE)
                .ok_or(NotFlat)?;
            put_u32(out, INLINE | len);
            out.extend_from_slice(s);
        }
    }
    Ok(())
}

/// Writes an `AnyValue` message. String values are interned when
/// `always`, otherwise once they repeat.
pub(crate) fn value(
    v: &[u8],
    strings: &mut StringTable,
    out: &mut Vec<u8>,
    always: bool,
) -> Result<(), NotFlat> {
    let mut fs = fields(v);
    let Some(first) = fs.next() else {
        put_u8(out, kind::EMPTY);
        return Ok(());
    };
    let (field, w) = first?;
    if fs.next().is_some() {
        // Two members of the oneof: pdata decides which one holds.
        return embedded(v, out);
    }
    match (field, w) {
        (1, Wire::Bytes(s)) => {
            put_u8(out, kind::STR);
            put_str(strings, out, s, always)?;
        }
        (2, Wire::Varint(b)) => {
            put_u8(out, kind::BOOL);
            put_u8(out, (b != 0) as u8);
        }
        (3, Wire::Varint(i)) => {
            put_u8(out, kind::INT);
            put_u64(out, i);
        }
        (4, Wire::Fixed64(d)) => {
            put_u8(out, kind::DOUBLE);
            put_u64(out, d);
        }
        (7, Wire::Bytes(b)) => {
            put_u8(out, kind::BYTES);
            put_u32(out, u32::try_from(b.len()).map_err(|_| NotFlat)?);
            out.extend_from_slice(b);
        }
        (5 | 6, Wire::Bytes(_)) => embedded(v, out)?,
        _ => return Err(NotFlat),
    }
    Ok(())
}

/// An `AnyValue` Go decodes with pdata (arrays, kvlists).
fn embedded(v: &[u8], out: &mut Vec<u8>) -> Result<(), NotFlat> {
    put_u8(out, kind::ANY_VALUE);
    put_u32(out, u32::try_from(v.len()).map_err(|_| NotFlat)?);
    out.extend_from_slice(v);
    Ok(())
}

/// Writes the repeated `KeyValue` field `field` of `msg` as an attribute
/// list. A key that appears twice (pdata keeps both; a map cannot) is not
/// expressed flat.
pub(crate) fn attributes(
    msg: &[u8],
    field: u32,
    strings: &mut StringTable,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
    always: bool,
) -> Result<(), NotFlat> {
    let at = count_at(out);
    let mut n = 0u32;
    scratch.keys.clear();
    for f in fields(msg) {
        let (f, w) = f?;
        if f != field {
            continue;
        }
        let (mut key, mut val, mut seen) = (&[][..], None, 0u64);
        for kf in fields(bytes(w)?) {
            match kf? {
                (1, w) => {
                    once(&mut seen, 1)?;
                    key = bytes(w)?;
                }
                (2, w) => {
                    once(&mut seen, 2)?;
                    val = Some(bytes(w)?);
                }
                _ => return Err(NotFlat),
            }
        }
        let h = hash(key);
        scratch.keys.push(h);
        put_str_hashed(strings, out, key, h, true)?;
        value(val.unwrap_or(&[]), strings, out, always)?;
        n += 1;
    }
    if scratch.keys.len() > 1 {
        scratch.keys.sort_unstable();
        if scratch.keys.windows(2).any(|w| w[0] == w[1]) {
            return Err(NotFlat);
        }
    }
    patch(out, at, n);
    Ok(())
}

/// Writes the resource and scope groups of an export request (field 1:
/// resource groups; in each, field 1 the Resource and field 2 the scope
/// groups; in each, field 1 the InstrumentationScope and field 2 the
/// items), each item with `item`.
pub(crate) fn request(
    req: &[u8],
    strings: &mut StringTable,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
    mut item: impl FnMut(&[u8], &mut StringTable, &mut Scratch, &mut Vec<u8>) -> Result<(), NotFlat>,
) -> Result<(), NotFlat> {
    let resources_at = count_at(out);
    let mut resources = 0u32;
    for f in fields(req) {
        let (1, w) = f? else { return Err(NotFlat) };
        let group = bytes(w)?;
        let (mut resource, mut seen) = (&[][..], 0u64);
        for f in fields(group) {
            match f? {
                (1, w) => {
                    once(&mut seen, 1)?;
                    resource = bytes(w)?;
                }
                (2, w) => {
                    bytes(w)?;
                }
                _ => return Err(NotFlat),
            }
        }
        write_resource(resource, strings, scratch, out)?;
        let scopes_at = count_at(out);
        let mut scopes = 0u32;
        for f in fields(group) {
            let (2, w) = f? else { continue };
            scope_group(bytes(w)?, strings, scratch, out, &mut item)?;
            scopes += 1;
        }
        patch(out, scopes_at, scopes);
        resources += 1;
    }
    patch(out, resources_at, resources);
    Ok(())
}

fn scope_group(
    group: &[u8],
    strings: &mut StringTable,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
    item: &mut impl FnMut(&[u8], &mut StringTable, &mut Scratch, &mut Vec<u8>) -> Result<(), NotFlat>,
) -> Result<(), NotFlat> {
    let (mut scope, mut seen) = (&[][..], 0u64);
    for f in fields(group) {
        match f? {
            (1, w) => {
                once(&mut seen, 1)?;
                scope = bytes(w)?;
            }
            (2, w) => {
                bytes(w)?;
            }
            _ => return Err(NotFlat),
        }
    }
    write_scope(scope, strings, scratch, out)?;
    let items_at = count_at(out);
    let mut items = 0u32;
    for f in fields(group) {
        let (2, w) = f? else { continue };
        item(bytes(w)?, strings, scratch, out)?;
        items += 1;
    }
    patch(out, items_at, items);
    Ok(())
}

/// A `Resource`: attributes and dropped count.
fn write_resource(
    msg: &[u8],
    strings: &mut StringTable,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Result<(), NotFlat> {
    let (mut dropped, mut seen) = (0u32, 0u64);
    for f in fields(msg) {
        match f? {
            (1, w) => {
                bytes(w)?;
            }
            (2, w) => {
                once(&mut seen, 2)?;
                dropped = varint(w)? as u32;
            }
            _ => return Err(NotFlat),
        }
    }
    attributes(msg, 1, strings, scratch, out, true)?;
    put_u32(out, dropped);
    Ok(())
}

/// An `InstrumentationScope`: name, version, attributes and dropped count.
fn write_scope(
    msg: &[u8],
    strings: &mut StringTable,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Result<(), NotFlat> {
    let (mut name, mut version, mut dropped, mut seen) = (&[][..], &[][..], 0u32, 0u64);
    for f in fields(msg) {
        match f? {
            (1, w) => {
                once(&mut seen, 1)?;
                name = bytes(w)?;
            }
            (2, w) => {
                once(&mut seen, 2)?;
                version = bytes(w)?;
            }
            (3, w) => {
                bytes(w)?;
            }
            (4, w) => {
                once(&mut seen, 4)?;
                dropped = varint(w)? as u32;
            }
            _ => return Err(NotFlat),
        }
    }
    put_str(strings, out, name, true)?;
    put_str(strings, out, version, true)?;
    attributes(msg, 3, strings, scratch, out, true)?;
    put_u32(out, dropped);
    Ok(())
}
