//! Writes a message in its flat layout ([`super::layout`]): one pass over
//! its fields, each written into its slot, absent ones as their defaults;
//! strings as table ids or inline, values, attribute lists.

use otlp_mmap_core::view::Wire;

use crate::bytes_hash::bytes_hash;

use super::kv_memo::KeyValueMemo;
use super::layout::{Layout, Slot};
use super::list_memo::{AttributeListMemo, MAX_LIST, list_hash};
use super::strings::StringTable;
use super::wire::next_field;
use super::{INLINE, NotFlat, kind};

/// What writing a batch uses.
pub(crate) struct Ctx<'a> {
    pub(crate) strings: &'a mut StringTable,
    pub(crate) memo: &'a mut KeyValueMemo,
    pub(crate) lists: &'a mut AttributeListMemo,
    /// A string was written inline since this was last cleared.
    pub(crate) inlined: bool,
    /// The keys of the attribute list being written: [`ID_KEY`] | the id
    /// of an interned key, or the hash of one sent inline.
    pub(crate) keys: &'a mut Vec<u64>,
    pub(crate) out: &'a mut Vec<u8>,
}

/// Marks a key given by its id in [`Ctx::keys`].
const ID_KEY: u64 = 1 << 63;

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn bytes(w: Wire<'_>) -> Result<&[u8], NotFlat> {
    match w {
        Wire::Bytes(b) => Ok(b),
        _ => Err(NotFlat),
    }
}

/// Attribute lists longer than this go as an encoded `KeyValueList`
/// (pdata fills a map key by key in quadratic time; its decoder does not).
pub(crate) const LARGE_LIST: u32 = 32;

/// A list being written: where its count goes, its count, and (for an
/// attribute list) the bytes of its fields in the message.
#[derive(Clone, Copy)]
struct Open {
    at: usize,
    n: u32,
    fields: (usize, usize),
}

/// Writes `msg` in `layout`.
pub(crate) fn message(c: &mut Ctx<'_>, msg: &[u8], layout: Layout) -> Result<(), NotFlat> {
    let mut rest = msg;
    // The next slot, and the list open in it.
    let mut next = 0;
    let mut open: Option<Open> = None;
    while !rest.is_empty() {
        let start = msg.len() - rest.len();
        let (num, w) = next_field(&mut rest)?;
        while next < layout.len() && layout[next].0 < num {
            close(c, msg, layout[next].1, open.take())?;
            next += 1;
        }
        match layout.get(next) {
            Some(&(n, slot)) if n == num => match slot {
                Slot::Attrs(always) => {
                    let o = open.get_or_insert_with(|| {
                        c.keys.clear();
                        Open {
                            at: count_at(c.out),
                            n: 0,
                            fields: (start, start),
                        }
                    });
                    o.n += 1;
                    o.fields.1 = msg.len() - rest.len();
                    key_value(c, bytes(w)?, always)?;
                }
                Slot::Repeated(inner) => {
                    let o = open.get_or_insert_with(|| Open {
                        at: count_at(c.out),
                        n: 0,
                        fields: (start, start),
                    });
                    o.n += 1;
                    message(c, bytes(w)?, inner)?;
                }
                _ => {
                    field(c, slot, w)?;
                    next += 1;
                }
            },
            // Not in the layout, out of order, or twice.
            _ => return Err(NotFlat),
        }
    }
    while next < layout.len() {
        close(c, msg, layout[next].1, open.take())?;
        next += 1;
    }
    Ok(())
}

/// Reserves a list's count.
fn count_at(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    put_u32(out, 0);
    at
}

/// Ends slot `slot` that the message `msg` leaves: a list gets its count,
/// an absent field its default.
fn close(c: &mut Ctx<'_>, msg: &[u8], slot: Slot, open: Option<Open>) -> Result<(), NotFlat> {
    match (slot, open) {
        (Slot::Attrs(_), Some(o)) if o.n > LARGE_LIST => large_list(c, msg, o)?,
        (Slot::Attrs(_) | Slot::Repeated(_), Some(o)) => {
            c.out[o.at..o.at + 4].copy_from_slice(&o.n.to_le_bytes());
            // A key twice: pdata keeps both, a map cannot.
            if matches!(slot, Slot::Attrs(_)) && repeats(c.keys) {
                return Err(NotFlat);
            }
        }
        (Slot::Attrs(_) | Slot::Repeated(_), None) => put_u32(c.out, 0),
        (Slot::Id16, _) => c.out.extend_from_slice(&[0; 16]),
        (Slot::Id8, _) => c.out.extend_from_slice(&[0; 8]),
        (Slot::Str(_), _) => put_u32(c.out, INLINE),
        (Slot::Varint32 | Slot::Fixed32, _) => put_u32(c.out, 0),
        (Slot::Fixed64, _) => put_u64(c.out, 0),
        (Slot::Value, _) => c.out.push(kind::EMPTY),
        (Slot::Message(inner), _) => message(c, &[], inner)?,
    }
    Ok(())
}

/// Writes a long attribute list again, as the entries (field 1) of an
/// encoded KeyValueList.
#[cold]
fn large_list(c: &mut Ctx<'_>, msg: &[u8], o: Open) -> Result<(), NotFlat> {
    large_list_of(c, o.at, &[&msg[o.fields.0..o.fields.1]])
}

/// [`large_list`] of the attribute fields `parts` (one after the other),
/// whose list's count is at `at`.
#[cold]
fn large_list_of(c: &mut Ctx<'_>, at: usize, parts: &[&[u8]]) -> Result<(), NotFlat> {
    c.out.truncate(at);
    put_u32(c.out, 0);
    let start = c.out.len();
    for &part in parts {
        let mut fields = part;
        while !fields.is_empty() {
            let kv = bytes(next_field(&mut fields)?.1)?;
            c.out.push(0x0a);
            prost::encoding::encode_varint(kv.len() as u64, c.out);
            c.out.extend_from_slice(kv);
        }
    }
    let len = u32::try_from(c.out.len() - start)
        .ok()
        .filter(|&n| n < INLINE)
        .ok_or(NotFlat)?;
    c.out[at..at + 4].copy_from_slice(&(INLINE | len).to_le_bytes());
    Ok(())
}

/// A list written item by item: its count is filled in at the end.
pub(crate) struct List {
    at: usize,
    n: u32,
}

impl List {
    /// Reserves the list's count.
    pub(crate) fn open(out: &mut Vec<u8>) -> List {
        List {
            at: count_at(out),
            n: 0,
        }
    }

    /// Counts one more item.
    pub(crate) fn add(&mut self) {
        self.n += 1;
    }

    /// Writes the count.
    pub(crate) fn close(self, out: &mut [u8]) {
        out[self.at..self.at + 4].copy_from_slice(&self.n.to_le_bytes());
    }
}

/// Writes an attribute list held as encoded `KeyValue` fields of number
/// `number`, in `parts` one after the other: what [`message`] writes for
/// them in an `Attrs(always)` slot (an empty list, a long one encoded, a
/// key twice not flat). A list in one part that was written before with
/// its strings as table ids is copied (see [`AttributeListMemo`]).
pub(crate) fn attrs(
    c: &mut Ctx<'_>,
    number: u32,
    parts: &[&[u8]],
    always: bool,
) -> Result<(), NotFlat> {
    // The list's bytes when it is in one part (the others empty).
    let whole = match parts {
        [first, rest @ ..] if rest.iter().all(|p| p.is_empty()) => *first,
        _ => &[],
    };
    let memo = !whole.is_empty() && whole.len() <= MAX_LIST;
    let hash = if memo { list_hash(whole) } else { 0 };
    if memo && let Some(flat) = c.lists.get(whole, hash) {
        c.out.extend_from_slice(flat);
        return Ok(());
    }
    let at = count_at(c.out);
    c.keys.clear();
    let mut n = 0u32;
    // Kept only when each attribute came from the attribute memo (its
    // strings table ids; a list met once is not kept).
    let mut keep = memo;
    for &part in parts {
        let mut rest = part;
        while !rest.is_empty() {
            let (num, w) = next_field(&mut rest)?;
            if num != number {
                return Err(NotFlat);
            }
            n += 1;
            keep &= key_value(c, bytes(w)?, always)?;
        }
    }
    if n > LARGE_LIST {
        return large_list_of(c, at, parts);
    }
    c.out[at..at + 4].copy_from_slice(&n.to_le_bytes());
    if repeats(c.keys) {
        return Err(NotFlat);
    }
    if keep {
        c.lists.put(whole, hash, &c.out[at..]);
    }
    Ok(())
}

/// Writes the messages held as encoded fields of number `number` in
/// `fields` in `layout`: what [`message`] writes for them in a
/// `Repeated(layout)` slot.
pub(crate) fn repeated(
    c: &mut Ctx<'_>,
    number: u32,
    mut fields: &[u8],
    layout: Layout,
) -> Result<(), NotFlat> {
    let mut list = List::open(c.out);
    while !fields.is_empty() {
        let (num, w) = next_field(&mut fields)?;
        if num != number {
            return Err(NotFlat);
        }
        list.add();
        message(c, bytes(w)?, layout)?;
    }
    list.close(c.out);
    Ok(())
}

/// Writes a field that is not repeated into its slot.
fn field(c: &mut Ctx<'_>, slot: Slot, w: Wire<'_>) -> Result<(), NotFlat> {
    match (slot, w) {
        (Slot::Id16, Wire::Bytes(b)) => c.out.extend_from_slice(&id::<16>(b)?),
        (Slot::Id8, Wire::Bytes(b)) => c.out.extend_from_slice(&id::<8>(b)?),
        (Slot::Str(always), Wire::Bytes(s)) => put_str(c, s, always)?,
        (Slot::Varint32, Wire::Varint(v)) => put_u32(c.out, v as u32),
        (Slot::Fixed32, Wire::Fixed32(v)) => put_u32(c.out, v),
        (Slot::Fixed64, Wire::Fixed64(v)) => put_u64(c.out, v),
        (Slot::Value, Wire::Bytes(v)) => value(c, v, false)?,
        (Slot::Message(inner), Wire::Bytes(m)) => message(c, m, inner)?,
        _ => return Err(NotFlat),
    }
    Ok(())
}

/// An id of `N` bytes, or zeros when empty; another length is what pdata
/// refuses, so the batch goes as OTLP.
pub(crate) fn id<const N: usize>(b: &[u8]) -> Result<[u8; N], NotFlat> {
    match b.len() {
        0 => Ok([0; N]),
        _ => b.try_into().map_err(|_| NotFlat),
    }
}

/// Writes `s` as a table id or inline (see [`StringTable::intern`]).
pub(crate) fn put_str(c: &mut Ctx<'_>, s: &[u8], always: bool) -> Result<(), NotFlat> {
    if s.is_empty() {
        put_u32(c.out, INLINE);
        return Ok(());
    }
    match c.strings.intern(s, always) {
        Some(id) => put_u32(c.out, id),
        None => put_inline(c, s)?,
    }
    Ok(())
}

/// Writes `s` inline.
fn put_inline(c: &mut Ctx<'_>, s: &[u8]) -> Result<(), NotFlat> {
    c.inlined = true;
    let out = &mut *c.out;
    let len = u32::try_from(s.len())
        .ok()
        .filter(|&n| n < INLINE)
        .ok_or(NotFlat)?;
    put_u32(out, INLINE | len);
    out.extend_from_slice(s);
    Ok(())
}

/// Writes a key (interned when it can be) and returns what tells it apart
/// from the list's other keys (see [`Ctx::keys`]).
fn put_key(c: &mut Ctx<'_>, key: &[u8]) -> Result<u64, NotFlat> {
    if let Some(id) = c.strings.memoized(key) {
        put_u32(c.out, id);
        return Ok(ID_KEY | u64::from(id));
    }
    let h = bytes_hash(key);
    match c.strings.intern_hashed(key, h, true) {
        Some(id) => {
            put_u32(c.out, id);
            Ok(ID_KEY | u64::from(id))
        }
        None => {
            put_inline(c, key)?;
            Ok(h & !ID_KEY)
        }
    }
}

/// Whether `keys` holds a value twice.
fn repeats(keys: &mut [u64]) -> bool {
    if keys.len() <= 16 {
        return (1..keys.len()).any(|i| keys[..i].contains(&keys[i]));
    }
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

/// Writes one `KeyValue` of an attribute list (from the memo when it can);
/// returns whether it came from the memo.
fn key_value(c: &mut Ctx<'_>, encoded: &[u8], always: bool) -> Result<bool, NotFlat> {
    if let Some((flat, key)) = c.memo.get(encoded) {
        c.out.extend_from_slice(flat);
        c.keys.push(key);
        return Ok(true);
    }
    let start = c.out.len();
    c.inlined = false;
    let key = parse_key_value(c, encoded, always)?;
    if !c.inlined {
        c.memo.put(encoded, &c.out[start..], key);
    }
    Ok(false)
}

/// Writes one `KeyValue`; returns its key word.
fn parse_key_value(c: &mut Ctx<'_>, mut kv: &[u8], always: bool) -> Result<u64, NotFlat> {
    let (mut key, mut val): (&[u8], &[u8]) = (&[], &[]);
    let mut last = 0;
    while !kv.is_empty() {
        let (num, w) = next_field(&mut kv)?;
        match num {
            1 if last < 1 => key = bytes(w)?,
            2 if last < 2 => val = bytes(w)?,
            _ => return Err(NotFlat),
        }
        last = num;
    }
    let k = put_key(c, key)?;
    c.keys.push(k);
    value(c, val, always)?;
    Ok(k)
}

/// Writes an `AnyValue` message. String values are interned when
/// `always`, otherwise once they repeat.
pub(crate) fn value(c: &mut Ctx<'_>, v: &[u8], always: bool) -> Result<(), NotFlat> {
    if v.is_empty() {
        c.out.push(kind::EMPTY);
        return Ok(());
    }
    let mut rest = v;
    let (num, w) = next_field(&mut rest)?;
    if !rest.is_empty() {
        // More than one field: pdata decides what the value holds.
        return embedded(c.out, v);
    }
    match (num, w) {
        (1, Wire::Bytes(s)) => {
            c.out.push(kind::STR);
            put_str(c, s, always)?;
        }
        (2, Wire::Varint(b)) => {
            c.out.push(kind::BOOL);
            c.out.push((b != 0) as u8);
        }
        (3, Wire::Varint(i)) => {
            c.out.push(kind::INT);
            put_u64(c.out, i);
        }
        (4, Wire::Fixed64(d)) => {
            c.out.push(kind::DOUBLE);
            put_u64(c.out, d);
        }
        (7, Wire::Bytes(b)) => {
            c.out.push(kind::BYTES);
            put_u32(c.out, u32::try_from(b.len()).map_err(|_| NotFlat)?);
            c.out.extend_from_slice(b);
        }
        (5 | 6, Wire::Bytes(_)) => embedded(c.out, v)?,
        _ => return Err(NotFlat),
    }
    Ok(())
}

/// An `AnyValue` Go decodes with pdata (arrays, kvlists).
fn embedded(out: &mut Vec<u8>, v: &[u8]) -> Result<(), NotFlat> {
    out.push(kind::ANY_VALUE);
    put_u32(out, u32::try_from(v.len()).map_err(|_| NotFlat)?);
    out.extend_from_slice(v);
    Ok(())
}
