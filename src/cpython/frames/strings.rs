//! The `str` and `bytes` objects a code object points to, read lossily: a name is never a
//! reason to drop a frame.
//!
//! A `str` is read in its compact form (all that code objects hold): latin-1, UCS-2 or UCS-4
//! characters after the object's header. A character no `char` can hold (a lone surrogate, as
//! `surrogateescape` makes of a file name's non-UTF-8 bytes) becomes U+FFFD, one per
//! surrogate, so one per bad byte. Only the first [`MAX_NAME_CHARS`] + 1 characters are read,
//! and [`bounded_name`] cuts a longer name to the cap, ending it in `…`.

use anyhow::{bail, Context, Result};

use super::{at, word, FrameLayout};
use crate::cpython::Memory;
use crate::model::{bounded_name, MAX_NAME_CHARS};

/// The contents of the `bytes` object at `addr`, its first `cap` bytes when longer.
pub(super) fn read_bytes(
    mem: &dyn Memory,
    l: &FrameLayout,
    addr: u64,
    cap: usize,
) -> Result<Vec<u8>> {
    let size = mem.read_u64(at(addr, l.bytes_size))? as i64;
    if size < 0 {
        bail!("a bytes object of {size} bytes at {addr:#x}");
    }
    let mut data = vec![0u8; (size as u64).min(cap as u64) as usize];
    mem.read(at(addr, l.bytes_data), &mut data)
        .with_context(|| format!("reading {} bytes at {addr:#x}", data.len()))?;
    Ok(data)
}

/// The `str` at `addr`, cut to [`MAX_NAME_CHARS`] (ending in `…`) when longer. Only compact
/// strings are read; anything else is an error, which the caller shows as a placeholder.
pub(super) fn read_str(mem: &dyn Memory, l: &FrameLayout, addr: u64) -> Result<String> {
    let mut head = vec![0u8; (l.str_state + 4).max(l.str_length + 8)];
    mem.read(addr, &mut head)
        .with_context(|| format!("reading the str at {addr:#x}"))?;
    let length = word(&head, l.str_length) as i64;
    let state = u32::from_le_bytes(head[l.str_state..l.str_state + 4].try_into().unwrap());
    let kind = (state >> l.kind_shift) & 7;
    let compact = (state >> (l.kind_shift + 3)) & 1 == 1;
    let ascii = (state >> (l.kind_shift + 4)) & 1 == 1;
    if !compact || !matches!(kind, 1 | 2 | 4) || (ascii && kind != 1) || length < 0 {
        bail!("the str at {addr:#x} is not a compact string (state {state:#x}, length {length})");
    }
    let data = at(addr, if ascii { l.ascii_data } else { l.compact_data });
    let mut raw =
        vec![0u8; (length as u64).min(MAX_NAME_CHARS as u64 + 1) as usize * kind as usize];
    mem.read(data, &mut raw)
        .with_context(|| format!("reading the characters of the str at {addr:#x}"))?;
    Ok(bounded_name(decode_str(&raw, kind)))
}

/// Characters of `kind` bytes each (latin-1, UCS-2, UCS-4); invalid ones become U+FFFD.
fn decode_str(raw: &[u8], kind: u32) -> String {
    let char_of = |c: u32| char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER);
    match kind {
        1 => raw.iter().map(|&b| char::from(b)).collect(),
        2 => raw
            .chunks_exact(2)
            .map(|c| char_of(u16::from_le_bytes([c[0], c[1]]).into()))
            .collect(),
        _ => raw
            .chunks_exact(4)
            .map(|c| char_of(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
    }
}
