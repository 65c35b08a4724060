//! Protobuf fields read back from the requests our own encoder wrote: a
//! tight reader for what it writes (short keys and lengths take one byte),
//! anything malformed an error, so that the batch goes as OTLP.

use otlp_mmap_core::view::Wire;

use super::NotFlat;

/// Takes a varint off the front of `b`.
#[inline(always)]
fn varint(b: &mut &[u8]) -> Result<u64, NotFlat> {
    if let Some((&first, rest)) = b.split_first()
        && first < 0x80
    {
        *b = rest;
        return Ok(u64::from(first));
    }
    long_varint(b)
}

#[inline(never)]
fn long_varint(b: &mut &[u8]) -> Result<u64, NotFlat> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        if i == 9 && byte > 1 {
            // Past 64 bits.
            return Err(NotFlat);
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            *b = &b[i + 1..];
            return Ok(v);
        }
    }
    Err(NotFlat)
}

/// Takes the next field off the front of `b`: its number and value.
#[inline(always)]
pub(crate) fn next_field<'a>(b: &mut &'a [u8]) -> Result<(u32, Wire<'a>), NotFlat> {
    let key = varint(b)?;
    let field = u32::try_from(key >> 3).map_err(|_| NotFlat)?;
    let value = match key & 7 {
        0 => Wire::Varint(varint(b)?),
        1 => {
            let (v, rest) = b.split_first_chunk::<8>().ok_or(NotFlat)?;
            *b = rest;
            Wire::Fixed64(u64::from_le_bytes(*v))
        }
        2 => {
            let len = varint(b)?;
            if len > b.len() as u64 {
                return Err(NotFlat);
            }
            let (v, rest) = b.split_at(len as usize);
            *b = rest;
            Wire::Bytes(v)
        }
        5 => {
            let (v, rest) = b.split_first_chunk::<4>().ok_or(NotFlat)?;
            *b = rest;
            Wire::Fixed32(u32::from_le_bytes(*v))
        }
        _ => return Err(NotFlat),
    };
    if field == 0 {
        return Err(NotFlat);
    }
    Ok((field, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use otlp_mmap_core::view::Fields;

    fn all(mut b: &[u8]) -> Result<Vec<(u32, Wire<'_>)>, NotFlat> {
        let mut out = Vec::new();
        while !b.is_empty() {
            out.push(next_field(&mut b)?);
        }
        Ok(out)
    }

    proptest::proptest! {
        /// Agrees with the views of the core crate on any bytes.
        #[test]
        fn agrees_with_the_views(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let views: Result<Vec<_>, _> = Fields::new(&bytes).collect();
            match (all(&bytes), views) {
                (Ok(a), Ok(b)) => proptest::prop_assert_eq!(a, b),
                (a, b) => proptest::prop_assert_eq!(a.is_err(), b.is_err()),
            }
        }
    }
}
