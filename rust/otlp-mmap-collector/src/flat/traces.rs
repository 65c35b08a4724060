//! Spans in the flat layout (see the parent module), from the `Span`
//! messages of an `ExportTraceServiceRequest`.

use super::NotFlat;
use super::body::{
    Scratch, attributes, bytes, count_at, fields, fixed32, fixed64, id, once, patch, put_str,
    put_u32, put_u64, request, varint,
};
use super::strings::StringTable;

/// Writes the body of a traces batch.
pub(crate) fn write(
    req: &[u8],
    strings: &mut StringTable,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Result<(), NotFlat> {
    request(req, strings, scratch, out, span)
}

fn span(
    msg: &[u8],
    strings: &mut StringTable,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Result<(), NotFlat> {
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    let mut parent = [0u8; 8];
    let (mut trace_state, mut name) = (&[][..], &[][..]);
    let (mut flags, mut kind, mut start, mut end) = (0u32, 0u32, 0u64, 0u64);
    let (mut dropped_attributes, mut dropped_links) = (0u32, 0u32);
    let (mut status_message, mut status_code) = (&[][..], 0u32);
    let mut seen = 0u64;
    for f in fields(msg) {
        let (field, w) = f?;
        match field {
            // attributes, links: written below.
            9 | 13 => {
                bytes(w)?;
                continue;
            }
            _ => once(&mut seen, field)?,
        }
        match field {
            1 => trace_id = id(bytes(w)?)?,
            2 => span_id = id(bytes(w)?)?,
            3 => trace_state = bytes(w)?,
            4 => parent = id(bytes(w)?)?,
            5 => name = bytes(w)?,
            6 => kind = varint(w)? as u32,
            7 => start = fixed64(w)?,
            8 => end = fixed64(w)?,
            10 => dropped_attributes = varint(w)? as u32,
            14 => dropped_links = varint(w)? as u32,
            15 => {
                let mut seen = 0u64;
                for f in fields(bytes(w)?) {
                    let (field, w) = f?;
                    once(&mut seen, field)?;
                    match field {
                        2 => status_message = bytes(w)?,
                        3 => status_code = varint(w)? as u32,
                        _ => return Err(NotFlat),
                    }
                }
            }
            16 => flags = fixed32(w)?,
            // events, dropped_events_count: the reader writes none.
            _ => return Err(NotFlat),
        }
    }
    out.extend_from_slice(&trace_id);
    out.extend_from_slice(&span_id);
    out.extend_from_slice(&parent);
    put_str(strings, out, trace_state, false)?;
    put_str(strings, out, name, true)?;
    put_u32(out, flags);
    put_u32(out, kind);
    put_u64(out, start);
    put_u64(out, end);
    attributes(msg, 9, strings, scratch, out, false)?;
    put_u32(out, dropped_attributes);
    let links_at = count_at(out);
    let mut links = 0u32;
    for f in fields(msg) {
        let (13, w) = f? else { continue };
        link(bytes(w)?, strings, scratch, out)?;
        links += 1;
    }
    patch(out, links_at, links);
    put_u32(out, dropped_links);
    put_str(strings, out, status_message, false)?;
    put_u32(out, status_code);
    Ok(())
}

fn link(
    msg: &[u8],
    strings: &mut StringTable,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Result<(), NotFlat> {
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    let (mut trace_state, mut dropped, mut flags) = (&[][..], 0u32, 0u32);
    let mut seen = 0u64;
    for f in fields(msg) {
        let (field, w) = f?;
        if field == 4 {
            bytes(w)?;
            continue;
        }
        once(&mut seen, field)?;
        match field {
            1 => trace_id = id(bytes(w)?)?,
            2 => span_id = id(bytes(w)?)?,
            3 => trace_state = bytes(w)?,
            5 => dropped = varint(w)? as u32,
            6 => flags = fixed32(w)?,
            _ => return Err(NotFlat),
        }
    }
    out.extend_from_slice(&trace_id);
    out.extend_from_slice(&span_id);
    put_str(strings, out, trace_state, false)?;
    attributes(msg, 4, strings, scratch, out, false)?;
    put_u32(out, dropped);
    put_u32(out, flags);
    Ok(())
}
