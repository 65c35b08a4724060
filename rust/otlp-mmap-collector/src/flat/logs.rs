//! Log records in the flat layout (see the parent module), from the
//! `LogRecord` messages of an `ExportLogsServiceRequest`.

use super::body::{
    Scratch, attributes, bytes, fields, fixed32, fixed64, id, once, put_str, put_u8, put_u32,
    put_u64, request, value, varint,
};
use super::strings::StringTable;
use super::{NotFlat, kind};

/// Writes the body of a logs batch.
pub(crate) fn write(
    req: &[u8],
    strings: &mut StringTable,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Result<(), NotFlat> {
    request(req, strings, scratch, out, record)
}

fn record(
    msg: &[u8],
    strings: &mut StringTable,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Result<(), NotFlat> {
    let (mut time, mut observed, mut severity) = (0u64, 0u64, 0u32);
    let (mut severity_text, mut body, mut event_name) = (&[][..], None, &[][..]);
    let (mut dropped, mut flags) = (0u32, 0u32);
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    let mut seen = 0u64;
    for f in fields(msg) {
        let (field, w) = f?;
        if field == 6 {
            bytes(w)?;
            continue;
        }
        once(&mut seen, field)?;
        match field {
            1 => time = fixed64(w)?,
            2 => severity = varint(w)? as u32,
            3 => severity_text = bytes(w)?,
            5 => body = Some(bytes(w)?),
            7 => dropped = varint(w)? as u32,
            8 => flags = fixed32(w)?,
            9 => trace_id = id(bytes(w)?)?,
            10 => span_id = id(bytes(w)?)?,
            11 => observed = fixed64(w)?,
            12 => event_name = bytes(w)?,
            _ => return Err(NotFlat),
        }
    }
    put_u64(out, time);
    put_u64(out, observed);
    put_u32(out, severity);
    put_str(strings, out, severity_text, true)?;
    match body {
        Some(b) => value(b, strings, out, false)?,
        None => put_u8(out, kind::EMPTY),
    }
    attributes(msg, 6, strings, scratch, out, false)?;
    put_u32(out, dropped);
    put_u32(out, flags);
    out.extend_from_slice(&trace_id);
    out.extend_from_slice(&span_id);
    put_str(strings, out, event_name, true)?;
    Ok(())
}
