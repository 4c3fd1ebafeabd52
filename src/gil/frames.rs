//! One thread's Python stack, read with nothing but CPython's own `_Py_DebugOffsets` (3.13+):
//! the frame chain from `PyThreadState.current_frame`, each frame's code object, and its line
//! from the code object's location table (`Objects/locations.md` in CPython).
//!
//! py-spy's library cannot read free-threaded builds; this reader has no table of its own, so
//! it reads a free-threaded 3.13t as it reads a build with a GIL. Frames are reported as
//! py-spy reports them: the function is `co_name` (not `co_qualname`), so that flame graphs
//! from both readers agree, and the file is `co_filename` as CPython holds it.
//!
//! Reads target memory only through [`Memory`]. Everything read is hostile input: a failed
//! read, a list that loops, an owner no CPython has or a name that is not a string is an error
//! (one failed sample), never a panic or a hang. Frames that are not Python code (shims, and
//! executables that are not code objects) are left out, as py-spy leaves them out.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};

use super::debug_offsets::DebugOffsets;
use super::Memory;
use crate::model::Frame;

/// Bounds on what garbage can make the reader do.
const MAX_FRAMES: usize = 4096;
const MAX_STR_CHARS: usize = 4096;
const MAX_LINETABLE: usize = 1 << 20;
const MAX_CACHED_CODE: usize = 4096;

/// `_PyInterpreterFrame.owner` from which on a frame is a shim with no Python code, skipped
/// as py-spy skips it: `FRAME_OWNED_BY_CSTACK` (3) in 3.13, `FRAME_OWNED_BY_INTERPRETER` (3)
/// and `FRAME_OWNED_BY_CSTACK` (4) in 3.14. Larger values are garbage.
const SHIM_OWNERS: std::ops::RangeInclusive<u8> = 3..=4;

/// `Py_TPFLAGS_HEAPTYPE`: `PyCode_Type` is a static type, a class named `code` is not.
const HEAP_TYPE: u64 = 1 << 9;

/// The offsets a stack walk follows, resolved once from `_Py_DebugOffsets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLayout {
    current_frame: usize,
    previous: usize,
    executable: usize,
    instr_ptr: usize,
    owner: usize,
    /// Bytes of a `_PyInterpreterFrame` read to hold the fields above.
    frame_len: usize,
    ob_type: usize,
    tp_name: usize,
    tp_flags: usize,
    co_filename: usize,
    co_name: usize,
    co_linetable: usize,
    co_firstlineno: usize,
    co_code_adaptive: usize,
    /// Bytes of a `PyCodeObject` read to hold the fields above and `ob_type`.
    code_len: usize,
    bytes_size: usize,
    bytes_data: usize,
    str_state: usize,
    str_length: usize,
    /// Where the characters start: after a `PyASCIIObject` for compact ASCII strings, after
    /// a `PyCompactUnicodeObject` for other compact strings.
    ascii_data: usize,
    compact_data: usize,
    /// The bit of `state` where `kind:3` starts (then `compact:1`, `ascii:1`): 2, after
    /// `interned:2`; 8 in free-threaded 3.14+, where `interned` is an `unsigned char`.
    kind_shift: u32,
}

impl FrameLayout {
    /// Resolves every offset the walk needs. Fails when one is missing or lies outside its
    /// structure, and for free-threaded 3.14+ (see below).
    pub fn new(offsets: &DebugOffsets) -> Result<FrameLayout> {
        let frame = |field| offsets.offset("interpreter_frame", field);
        let code = |field| offsets.offset("code_object", field);
        let string = |field| offsets.offset("unicode_object", field);
        // Free-threaded 3.14+ runs thread-local copies of the bytecode: `instr_ptr` points
        // into `co_tlbc->entries[tlbc_index]`, not `co_code_adaptive`. No such build is at
        // hand to check a reader against, so refuse rather than report wrong lines.
        if offsets.free_threaded && offsets.get("code_object", "co_tlbc").unwrap_or(0) != 0 {
            bail!("thread-local bytecode not supported (free-threaded CPython 3.14+)");
        }
        let (previous, executable, instr_ptr, owner) = (
            frame("previous")?,
            frame("executable")?,
            frame("instr_ptr")?,
            frame("owner")?,
        );
        let (ob_type, co_filename, co_name, co_linetable, co_firstlineno) = (
            offsets.offset("pyobject", "ob_type")?,
            code("filename")?,
            code("name")?,
            code("linetable")?,
            code("firstlineno")?,
        );
        let ascii_data = string("asciiobject_size")?;
        // 3.15 publishes the size of a `PyCompactUnicodeObject`; before, it is a
        // `PyASCIIObject` followed by `utf8_length` and `utf8` (two words).
        let compact_data = match offsets.get("unicode_object", "compactunicodeobject_size") {
            Ok(_) => string("compactunicodeobject_size")?,
            Err(_) => ascii_data + 16,
        };
        let minor = (offsets.version >> 16) & 0xff;
        Ok(FrameLayout {
            current_frame: offsets.offset("thread_state", "current_frame")?,
            previous,
            executable,
            instr_ptr,
            owner,
            frame_len: [previous + 8, executable + 8, instr_ptr + 8, owner + 1]
                .into_iter()
                .max()
                .unwrap_or(0),
            ob_type,
            tp_name: offsets.offset("type_object", "tp_name")?,
            tp_flags: offsets.offset("type_object", "tp_flags")?,
            co_filename,
            co_name,
            co_linetable,
            co_firstlineno,
            co_code_adaptive: code("co_code_adaptive")?,
            code_len: [
                ob_type + 8,
                co_filename + 8,
                co_name + 8,
                co_linetable + 8,
                co_firstlineno + 4,
            ]
            .into_iter()
            .max()
            .unwrap_or(0),
            bytes_size: offsets.offset("bytes_object", "ob_size")?,
            bytes_data: offsets.offset("bytes_object", "ob_sval")?,
            str_state: string("state")?,
            str_length: string("length")?,
            ascii_data,
            compact_data,
            kind_shift: if offsets.free_threaded && minor >= 14 {
                8
            } else {
                2
            },
        })
    }
}

/// The stack of the thread whose `PyThreadState` is at `tstate`, outermost frame first, with
/// no cache: [`StackReader`] is the one to sample with.
pub fn read_stack(mem: &dyn Memory, layout: &FrameLayout, tstate: u64) -> Result<Vec<Frame>> {
    StackReader::new(*layout).read_stack(mem, tstate)
}

/// Reads stacks, remembering what each code object says (names and line table) so that a
/// sample reads two small structs per frame rather than four objects.
pub struct StackReader {
    layout: FrameLayout,
    code: HashMap<CodeKey, CodeInfo>,
    /// `PyCode_Type`'s address, once a frame has shown it.
    code_type: Option<u64>,
}

/// A code object as the cache knows it. Freed code's address can be reused by new code;
/// the new object's strings and line table are new objects too, so a reused address with
/// another filename, name or line table is another entry, not a stale hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct CodeKey {
    addr: u64,
    filename: u64,
    name: u64,
    linetable: u64,
    firstlineno: i32,
}

struct CodeInfo {
    function: String,
    file: String,
    lines: Vec<LineRun>,
}

impl StackReader {
    pub fn new(layout: FrameLayout) -> StackReader {
        StackReader {
            layout,
            code: HashMap::new(),
            code_type: None,
        }
    }

    /// The stack of the thread whose `PyThreadState` is at `tstate`, outermost frame first
    /// (empty when the thread runs no Python). Shim frames, and frames whose executable is
    /// not a code object, are left out.
    pub fn read_stack(&mut self, mem: &dyn Memory, tstate: u64) -> Result<Vec<Frame>> {
        let l = self.layout;
        let mut addr = mem
            .read_u64(at(tstate, l.current_frame))
            .context("reading tstate->current_frame")?;
        let mut buf = vec![0u8; l.frame_len];
        let mut frames = Vec::new();
        let mut walked = 0;
        while addr != 0 {
            walked += 1;
            if walked > MAX_FRAMES {
                bail!("more than {MAX_FRAMES} frames: the frame list is garbage");
            }
            mem.read(addr, &mut buf)
                .with_context(|| format!("reading the frame at {addr:#x}"))?;
            let owner = buf[l.owner];
            if owner > *SHIM_OWNERS.end() {
                bail!("the frame at {addr:#x} has owner {owner}: garbage");
            }
            if !SHIM_OWNERS.contains(&owner) {
                // 3.14+ holds a `_PyStackRef` whose low bits are tags; a 3.13 `PyObject*`
                // is aligned, so masking it changes nothing.
                let code = word(&buf, l.executable) & !3;
                let instr_ptr = word(&buf, l.instr_ptr);
                if let Some(frame) = self.frame(mem, code, instr_ptr)? {
                    frames.push(frame);
                }
            }
            addr = word(&buf, l.previous);
        }
        frames.reverse();
        Ok(frames)
    }

    /// The frame running `instr_ptr` in the code object at `code`; `None` when `code` is not
    /// a code object.
    fn frame(&mut self, mem: &dyn Memory, code: u64, instr_ptr: u64) -> Result<Option<Frame>> {
        let l = self.layout;
        if code == 0 {
            return Ok(None);
        }
        let mut head = vec![0u8; l.code_len];
        mem.read(code, &mut head)
            .with_context(|| format!("reading the code object at {code:#x}"))?;
        if !self.is_code_type(mem, word(&head, l.ob_type))? {
            return Ok(None);
        }
        let key = CodeKey {
            addr: code,
            filename: word(&head, l.co_filename),
            name: word(&head, l.co_name),
            linetable: word(&head, l.co_linetable),
            firstlineno: i32::from_le_bytes(
                head[l.co_firstlineno..l.co_firstlineno + 4]
                    .try_into()
                    .unwrap(),
            ),
        };
        if !self.code.contains_key(&key) {
            let info = read_code(mem, &l, &key)
                .with_context(|| format!("reading the code object at {code:#x}"))?;
            if self.code.len() >= MAX_CACHED_CODE {
                self.code.clear();
            }
            self.code.insert(key, info);
        }
        let info = &self.code[&key];
        // `instr_ptr` counts 2-byte code units from `co_code_adaptive` (with a GIL, and in
        // 3.13t; free-threaded 3.14+ is refused by `FrameLayout::new`).
        let base = at(code, l.co_code_adaptive);
        let index = (instr_ptr.wrapping_sub(base) as i64) / 2;
        Ok(Some(Frame {
            function: info.function.clone(),
            file: info.file.clone(),
            line: line_at(&info.lines, index, key.firstlineno),
        }))
    }

    /// Whether `ty` is `PyCode_Type`: a static type named `code`. The first one found is
    /// remembered, after which the check costs no read.
    fn is_code_type(&mut self, mem: &dyn Memory, ty: u64) -> Result<bool> {
        if let Some(code_type) = self.code_type {
            return Ok(ty == code_type);
        }
        if ty == 0 {
            return Ok(false);
        }
        let l = self.layout;
        let name = mem.read_u64(at(ty, l.tp_name)).context("reading tp_name")?;
        let flags = mem
            .read_u64(at(ty, l.tp_flags))
            .context("reading tp_flags")?;
        let mut text = [0u8; 5];
        mem.read(name, &mut text)
            .with_context(|| format!("reading the type name at {name:#x}"))?;
        let is_code = &text == b"code\0" && flags & HEAP_TYPE == 0;
        if is_code {
            self.code_type = Some(ty);
        }
        Ok(is_code)
    }
}

/// Names and line table of a code object, which [`StackReader::frame`] has checked is one.
fn read_code(mem: &dyn Memory, l: &FrameLayout, key: &CodeKey) -> Result<CodeInfo> {
    let function = read_str(mem, l, key.name).context("reading co_name")?;
    let file = read_str(mem, l, key.filename).context("reading co_filename")?;
    let table = read_bytes(mem, l, key.linetable, MAX_LINETABLE).context("reading co_linetable")?;
    Ok(CodeInfo {
        function,
        file,
        lines: decode_linetable(&table, key.firstlineno),
    })
}

/// The contents of the `bytes` object at `addr`, its first `cap` bytes when longer.
fn read_bytes(mem: &dyn Memory, l: &FrameLayout, addr: u64, cap: usize) -> Result<Vec<u8>> {
    let size = mem.read_u64(at(addr, l.bytes_size))? as i64;
    if size < 0 {
        bail!("a bytes object of {size} bytes at {addr:#x}");
    }
    let mut data = vec![0u8; (size as u64).min(cap as u64) as usize];
    mem.read(at(addr, l.bytes_data), &mut data)
        .with_context(|| format!("reading {} bytes at {addr:#x}", data.len()))?;
    Ok(data)
}

/// The `str` at `addr`, its first [`MAX_STR_CHARS`] characters when longer. Only compact
/// strings (all that code objects hold) are read; anything else is an error.
fn read_str(mem: &dyn Memory, l: &FrameLayout, addr: u64) -> Result<String> {
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
    let mut raw = vec![0u8; (length as usize).min(MAX_STR_CHARS) * kind as usize];
    mem.read(data, &mut raw)
        .with_context(|| format!("reading the characters of the str at {addr:#x}"))?;
    Ok(decode_str(&raw, kind))
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

/// Code units sharing one line: those from the previous run's `end` up to this `end`.
/// `line` is `None` for code with no location.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LineRun {
    end: u64,
    line: Option<i64>,
}

/// Decodes a 3.11+ location table into runs of code units. Each entry starts with a byte
/// `1 cccc lll`: code `c`, covering `l + 1` code units. The line starts at `co_firstlineno`
/// and each entry's delta applies to it; an entry with no location leaves it unchanged.
/// Garbage ends the table: the runs decoded up to there are kept.
fn decode_linetable(table: &[u8], firstlineno: i32) -> Vec<LineRun> {
    let mut runs = Vec::new();
    let mut line = i64::from(firstlineno);
    let mut end = 0u64;
    let mut at = 0;
    while let Some((units, delta, next)) = entry(table, at) {
        end += units;
        runs.push(LineRun {
            end,
            line: delta.map(|d| {
                line = line.saturating_add(d);
                line
            }),
        });
        at = next;
    }
    runs
}

/// The location entry at `at`: the code units it covers, its line delta (`None`: no
/// location) and where the next entry starts. `None` at the end or on a malformed entry.
fn entry(table: &[u8], at: usize) -> Option<(u64, Option<i64>, usize)> {
    let first = *table.get(at)?;
    if first & 0x80 == 0 {
        return None;
    }
    let units = u64::from(first & 7) + 1;
    let mut next = at + 1;
    let delta = match (first >> 3) & 15 {
        // No location.
        15 => None,
        // Long form: line delta, end line delta, column + 1, end column + 1.
        14 => {
            let delta = svarint(table, &mut next)?;
            for _ in 0..3 {
                varint(table, &mut next)?;
            }
            Some(delta)
        }
        // No column: line delta.
        13 => Some(svarint(table, &mut next)?),
        // One line: the code is the line delta + 10, then column and end column.
        code @ 10..=12 => {
            skip(table, &mut next, 2)?;
            Some(i64::from(code) - 10)
        }
        // Short form: same line, one byte of columns.
        _ => {
            skip(table, &mut next, 1)?;
            Some(0)
        }
    };
    Some((units, delta, next))
}

/// Steps over `n` bytes, if the table has them.
fn skip(table: &[u8], at: &mut usize, n: usize) -> Option<()> {
    *at += n;
    (*at <= table.len()).then_some(())
}

/// An unsigned varint: 6-bit chunks, least significant first, bit 6 set when another
/// chunk follows.
fn varint(table: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = *table.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 63) << shift;
        if byte & 64 == 0 {
            return Some(value);
        }
        shift += 6;
        if shift >= 64 {
            return None;
        }
    }
}

/// A signed varint: a varint whose lowest bit is the sign.
fn svarint(table: &[u8], at: &mut usize) -> Option<i64> {
    let v = varint(table, at)?;
    let magnitude = (v >> 1) as i64;
    Some(if v & 1 == 1 { -magnitude } else { magnitude })
}

/// The line of code unit `index` as CPython's `PyCode_Addr2Line` gives it: `co_firstlineno`
/// before the code, 0 for code with no location (where CPython says `None`; py-spy reports
/// the line before it) or past the table's end.
fn line_at(runs: &[LineRun], index: i64, firstlineno: i32) -> u32 {
    let line = if index < 0 {
        Some(i64::from(firstlineno))
    } else {
        let i = runs.partition_point(|r| r.end <= index as u64);
        runs.get(i).and_then(|r| r.line)
    };
    line.and_then(|l| u32::try_from(l).ok()).unwrap_or(0)
}

fn at(base: u64, offset: usize) -> u64 {
    base.wrapping_add(offset as u64)
}

/// The word at `offset` of a buffer sized to hold it.
fn word(buf: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(buf[offset..offset + 8].try_into().unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gil::debug_offsets::{read_len, COOKIE};

    /// `_Py_DebugOffsets` after the cookie, as a free-threaded CPython 3.13.5 fills it in
    /// (read from a live process).
    const OFFSETS_3_13T: &[u64] = &[
        51185136, 1, 328320, 608, 632, 215616, 7272, 7264, 7344, 7400, 7664, 7648, 7656, 16, 7760,
        0, 7784, 7776, 304, 0, 8, 16, 72, 152, 160, 232, 32, 80, 8, 0, 56, 72, 70, 224, 128, 136,
        144, 152, 84, 68, 112, 120, 216, 32, 24, 432, 40, 104, 184, 48, 40, 32, 56, 40, 32, 64, 48,
        56, 40, 32, 48, 32, 40, 56, 32, 48, 80, 48, 32, 56,
    ];

    /// The same for Debian's CPython 3.14.10.
    const OFFSETS_3_14: &[u64] = &[
        51251952, 0, 316616, 784, 808, 225864, 7280, 7272, 7344, 7360, 7408, 7688, 7672, 7680, 16,
        7784, 0, 7800, 7792, 7992, 0, 832, 0, 8, 16, 72, 152, 160, 232, 32, 88, 8, 0, 56, 80, 74,
        64, 0, 216, 112, 120, 128, 136, 68, 52, 96, 104, 208, 0, 16, 8, 416, 24, 88, 168, 40, 32,
        16, 40, 24, 16, 200, 24, 40, 32, 48, 32, 40, 24, 16, 32, 16, 24, 40, 16, 32, 64, 32, 16,
        40,
    ];

    fn offsets(words: &[u64]) -> DebugOffsets {
        let mut bytes = COOKIE.to_vec();
        bytes.extend(words.iter().flat_map(|w| w.to_le_bytes()));
        bytes.resize(bytes.len().max(read_len()), 0);
        DebugOffsets::parse(&bytes).unwrap()
    }

    fn layout_3_13t() -> FrameLayout {
        FrameLayout::new(&offsets(OFFSETS_3_13T)).unwrap()
    }

    #[test]
    fn layouts_come_from_the_published_offsets() {
        let l = layout_3_13t();
        assert_eq!((l.current_frame, l.previous, l.executable), (72, 8, 0));
        assert_eq!((l.instr_ptr, l.owner, l.frame_len), (56, 70, 71));
        assert_eq!((l.co_filename, l.co_name, l.co_linetable), (128, 136, 152));
        assert_eq!(
            (l.co_firstlineno, l.co_code_adaptive, l.ob_type),
            (84, 216, 24)
        );
        assert_eq!((l.ascii_data, l.compact_data, l.kind_shift), (56, 72, 2));
        let l = FrameLayout::new(&offsets(OFFSETS_3_14)).unwrap();
        assert_eq!((l.instr_ptr, l.owner, l.co_code_adaptive), (56, 74, 208));
        assert_eq!((l.ascii_data, l.compact_data, l.kind_shift), (40, 56, 2));
    }

    #[test]
    fn free_threaded_3_14_is_refused_for_its_thread_local_bytecode() {
        let mut words = OFFSETS_3_14.to_vec();
        words[1] = 1; // free_threaded
        words[48] = 224; // code_object.co_tlbc
        let err = FrameLayout::new(&offsets(&words)).unwrap_err();
        assert!(err.to_string().contains("thread-local bytecode"), "{err}");
    }

    /// Memory made of byte ranges at chosen addresses; the last range put that holds a read
    /// answers it, and reading anything else fails.
    #[derive(Default)]
    struct Ranges(Vec<(u64, Vec<u8>)>);

    impl Ranges {
        fn put(&mut self, addr: u64, bytes: Vec<u8>) {
            self.0.push((addr, bytes));
        }
    }

    impl Memory for Ranges {
        fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
            for (start, bytes) in self.0.iter().rev() {
                if let Some(from) = addr.checked_sub(*start) {
                    if from + buf.len() as u64 <= bytes.len() as u64 {
                        let from = from as usize;
                        buf.copy_from_slice(&bytes[from..from + buf.len()]);
                        return Ok(());
                    }
                }
            }
            Err(std::io::ErrorKind::InvalidData.into())
        }
    }

    /// `len` zero bytes with `fields` written at their offsets.
    fn object(len: usize, fields: &[(usize, &[u8])]) -> Vec<u8> {
        let mut bytes = vec![0u8; len];
        for (at, value) in fields {
            bytes[*at..*at + value.len()].copy_from_slice(value);
        }
        bytes
    }

    /// A compact `str` in the 3.13t layout: `state` as CPython sets it, `units` its
    /// characters in their kind's width.
    fn str_object(l: &FrameLayout, state: u32, length: i64, units: &[u8]) -> Vec<u8> {
        let data = if state & ASCII_ONLY != 0 {
            l.ascii_data
        } else {
            l.compact_data
        };
        let mut bytes = object(
            data,
            &[
                (l.str_state, &state.to_le_bytes()),
                (l.str_length, &length.to_le_bytes()),
            ],
        );
        bytes.extend_from_slice(units);
        bytes
    }

    /// Bits of a 3.13 `state`: interned:2, kind:3, compact:1, ascii:1.
    const INTERNED: u32 = 1;
    const KIND: u32 = 1 << 2;
    const COMPACT: u32 = 1 << 5;
    const ASCII_ONLY: u32 = 1 << 6;
    const ASCII: u32 = INTERNED | KIND | COMPACT | ASCII_ONLY; // interned, as names are
    const LATIN1: u32 = KIND | COMPACT;
    const UCS2: u32 = (2 * KIND) | COMPACT;
    const UCS4: u32 = (4 * KIND) | COMPACT;

    fn ucs2(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn strings_of_every_kind_decode() {
        let l = layout_3_13t();
        let mut m = Ranges::default();
        m.put(0x1000, str_object(&l, ASCII, 4, b"spin"));
        m.put(
            0x2000,
            str_object(
                &l,
                LATIN1,
                3,
                "ünï"
                    .chars()
                    .map(|c| c as u8)
                    .collect::<Vec<_>>()
                    .as_slice(),
            ),
        );
        m.put(0x3000, str_object(&l, UCS2, 6, &ucs2("спин_λ")));
        m.put(
            0x4000,
            str_object(&l, UCS4, 2, &[0x30, 0xd5, 1, 0, 0, 0xd8, 0, 0]),
        );
        assert_eq!(read_str(&m, &l, 0x1000).unwrap(), "spin");
        assert_eq!(read_str(&m, &l, 0x2000).unwrap(), "ünï");
        assert_eq!(read_str(&m, &l, 0x3000).unwrap(), "спин_λ");
        // U+1D530, then a surrogate, which no char can hold.
        assert_eq!(read_str(&m, &l, 0x4000).unwrap(), "\u{1d530}\u{fffd}");
    }

    #[test]
    fn strings_that_are_not_compact_or_too_long_are_refused_or_cut() {
        let l = layout_3_13t();
        let mut m = Ranges::default();
        m.put(0x1000, str_object(&l, KIND, 4, b"spin")); // not compact
        m.put(0x2000, str_object(&l, ASCII, -1, b""));
        m.put(0x3000, str_object(&l, (3 * KIND) | COMPACT, 1, b"xxx")); // kind 3
        m.put(
            0x4000,
            str_object(&l, ASCII, 1 << 40, &[b'a'; MAX_STR_CHARS]),
        );
        m.put(0x5000, str_object(&l, ASCII, 4, b"sp")); // characters not readable
        for addr in [0x1000, 0x2000, 0x3000, 0x5000, 0x9000] {
            assert!(read_str(&m, &l, addr).is_err(), "{addr:#x}");
        }
        assert_eq!(read_str(&m, &l, 0x4000).unwrap().len(), MAX_STR_CHARS);
    }

    #[test]
    fn varints_are_six_bit_chunks_least_significant_first() {
        let read = |bytes: &[u8]| varint(bytes, &mut 0);
        assert_eq!(read(&[5]), Some(5));
        assert_eq!(read(&[0x41, 0x02]), Some(1 | 2 << 6));
        assert_eq!(read(&[0x7f, 0x7f, 0x01]), Some(63 | 63 << 6 | 1 << 12));
        assert_eq!(read(&[0x41]), None, "truncated");
        assert_eq!(read(&[0x7f; 20]), None, "longer than 64 bits");
        let mut at = 0;
        assert_eq!(varint(&[0x41, 0x02, 7], &mut at), Some(129));
        assert_eq!(at, 2);
        let signed = |bytes: &[u8]| svarint(bytes, &mut 0);
        assert_eq!(signed(&[7]), Some(-3));
        assert_eq!(signed(&[8]), Some(4));
        assert_eq!(signed(&[0]), Some(0));
        assert_eq!(signed(&[0x41, 0x02]), Some(-64));
    }

    /// The first byte of an entry: code `code`, covering `units` code units.
    fn head(code: u8, units: u8) -> u8 {
        0x80 | code << 3 | (units - 1)
    }

    fn lines_of(table: &[u8], firstlineno: i32, units: i64) -> Vec<u32> {
        let runs = decode_linetable(table, firstlineno);
        (0..units).map(|i| line_at(&runs, i, firstlineno)).collect()
    }

    #[test]
    fn every_entry_form_decodes() {
        let table = [
            vec![head(0, 2), 0x00],               // short: same line
            vec![head(11, 1), 5, 9],              // one line: +1
            vec![head(13, 1), 6],                 // no column: +3
            vec![head(15, 2)],                    // no location
            vec![head(14, 3), 11, 0, 0x46, 1, 0], // long: -5, column 69
            vec![head(12, 1), 0, 1],              // one line: +2
            vec![head(9, 1), 0x7f],               // short, last column group
        ]
        .concat();
        assert_eq!(
            lines_of(&table, 10, 12),
            [10, 10, 11, 14, 0, 0, 9, 9, 9, 11, 11, 0]
        );
        let runs = decode_linetable(&table, 10);
        assert_eq!(
            line_at(&runs, -1, 10),
            10,
            "before the code: co_firstlineno"
        );
        assert_eq!(line_at(&runs, i64::MAX, 10), 0, "past the table");
    }

    #[test]
    fn a_real_table_gives_the_lines_cpython_gives() {
        // `co_linetable` and `[p[0] for p in co_positions()]` of this function in 3.13t:
        //   1 def f(a,
        //   2       b):
        //   3     x = (a +
        //   4          b)
        //   5     if x:
        //   6         try:
        //   7             return [i for i in range(x)]
        //   8         except ValueError:
        //   9             pass
        //  10     return None
        let hex = "8000e0090ad8090af103010a0b8041e60708f002030911dc1f24a0519c78d313289a78982192\
                   419978d11328d00c28f006000c10f9f207001429f8dc0f19f300010911d80c10d80b0ff005010911fa";
        let table: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let expected = [
            1, 3, 4, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
            7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 10, 0, 0, 7, 7, 7, 0, 8, 8, 8, 8, 8, 8, 8, 8, 8, 9,
            10, 8, 0, 0, 0,
        ];
        assert_eq!(lines_of(&table, 1, 63), expected);
    }

    #[test]
    fn garbage_tables_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as u32
        };
        for _ in 0..5000 {
            let len = next() as usize % 48;
            // Mostly entry heads, so that decoding goes deep.
            let table: Vec<u8> = (0..len)
                .map(|_| next() as u8 | if next() % 4 == 0 { 0 } else { 0x80 })
                .collect();
            let firstlineno = next() as i32;
            let runs = decode_linetable(&table, firstlineno);
            assert!(runs.len() <= table.len());
            for index in [-1, 0, 1, 7, 100, i64::MAX] {
                line_at(&runs, index, firstlineno);
            }
        }
    }

    const CODE_TYPE: u64 = 0x10_000;
    const NONE_TYPE: u64 = 0x11_000;

    /// A process holding the types, a code object at `addr` named `name` in file.py with
    /// `table` as its line table, and the frames put by [`frame`].
    fn process(l: &FrameLayout) -> Ranges {
        let mut m = Ranges::default();
        for (ty, name) in [(CODE_TYPE, 0x10_800u64), (NONE_TYPE, 0x11_800)] {
            m.put(ty, object(432, &[(l.tp_name, &name.to_le_bytes())]));
        }
        m.put(0x10_800, b"code\0".to_vec());
        m.put(0x11_800, b"NoneType\0".to_vec());
        m.put(0x20_000, str_object(l, ASCII, 7, b"file.py"));
        // None: like every object, readable for as many bytes as a code object's head.
        m.put(
            0x30_000,
            object(256, &[(l.ob_type, &NONE_TYPE.to_le_bytes())]),
        );
        m
    }

    fn code(
        m: &mut Ranges,
        l: &FrameLayout,
        addr: u64,
        name: &str,
        firstlineno: i32,
        table: &[u8],
    ) {
        let (name_at, table_at) = (addr + 0x1000, addr + 0x2000);
        m.put(
            name_at,
            str_object(l, ASCII, name.len() as i64, name.as_bytes()),
        );
        let mut bytes = object(
            l.bytes_data,
            &[(l.bytes_size, &(table.len() as u64).to_le_bytes())],
        );
        bytes.extend_from_slice(table);
        m.put(table_at, bytes);
        m.put(
            addr,
            object(
                l.co_code_adaptive + 64,
                &[
                    (l.ob_type, &CODE_TYPE.to_le_bytes()),
                    (l.co_filename, &0x20_000u64.to_le_bytes()),
                    (l.co_name, &name_at.to_le_bytes()),
                    (l.co_linetable, &table_at.to_le_bytes()),
                    (l.co_firstlineno, &firstlineno.to_le_bytes()),
                ],
            ),
        );
    }

    /// A frame at `addr` running code unit `unit` of `executable`.
    fn frame(
        m: &mut Ranges,
        l: &FrameLayout,
        addr: u64,
        previous: u64,
        executable: u64,
        unit: u64,
        owner: u8,
    ) {
        let instr_ptr = (executable & !3) + l.co_code_adaptive as u64 + 2 * unit;
        m.put(
            addr,
            object(
                80,
                &[
                    (l.previous, &previous.to_le_bytes()),
                    (l.executable, &executable.to_le_bytes()),
                    (l.instr_ptr, &instr_ptr.to_le_bytes()),
                    (l.owner, &[owner]),
                ],
            ),
        );
    }

    const TSTATE: u64 = 0x90_000;

    fn tstate(m: &mut Ranges, l: &FrameLayout, current_frame: u64) {
        m.put(
            TSTATE,
            object(256, &[(l.current_frame, &current_frame.to_le_bytes())]),
        );
    }

    /// Line 10 for units 0-1, 11 for 2-3.
    const TABLE: [u8; 5] = [0x81, 0, 0xd9, 0, 0];

    fn at_line(function: &str, line: u32) -> Frame {
        Frame {
            function: function.into(),
            file: "file.py".into(),
            line,
        }
    }

    #[test]
    fn a_stack_is_read_outermost_first_without_shims_or_non_code() {
        let l = layout_3_13t();
        let mut m = process(&l);
        code(&mut m, &l, 0x40_000, "main", 10, &TABLE);
        code(&mut m, &l, 0x50_000, "spin", 20, &TABLE);
        // Innermost first: a frame running None, spin, a C-stack shim, main.
        tstate(&mut m, &l, 0xa0_000);
        frame(&mut m, &l, 0xa0_000, 0xa1_000, 0x30_000, 0, 0);
        frame(&mut m, &l, 0xa1_000, 0xa2_000, 0x50_002, 2, 0); // a tagged reference
        frame(&mut m, &l, 0xa2_000, 0xa3_000, 0x30_000, 0, 3);
        frame(&mut m, &l, 0xa3_000, 0, 0x40_000, 1, 1);
        let mut reader = StackReader::new(l);
        let expected = [at_line("main", 10), at_line("spin", 21)];
        assert_eq!(reader.read_stack(&m, TSTATE).unwrap(), expected);
        assert_eq!(read_stack(&m, &l, TSTATE).unwrap(), expected);
        assert_eq!(reader.code.len(), 2);

        // spin's code object is freed and another takes its address.
        code(&mut m, &l, 0x50_000, "work", 30, &TABLE);
        let stack = reader.read_stack(&m, TSTATE).unwrap();
        assert_eq!(stack[1], at_line("work", 31));

        tstate(&mut m, &l, 0);
        assert_eq!(reader.read_stack(&m, TSTATE).unwrap(), []);
    }

    #[test]
    fn a_cyclic_frame_list_is_an_error_not_a_hang() {
        let l = layout_3_13t();
        let mut m = process(&l);
        code(&mut m, &l, 0x40_000, "main", 10, &TABLE);
        tstate(&mut m, &l, 0xa0_000);
        frame(&mut m, &l, 0xa0_000, 0xa1_000, 0x40_000, 0, 0);
        frame(&mut m, &l, 0xa1_000, 0xa0_000, 0x40_000, 0, 0);
        assert!(StackReader::new(l).read_stack(&m, TSTATE).is_err());
    }

    #[test]
    fn garbage_frames_are_errors() {
        let l = layout_3_13t();
        let mut m = process(&l);
        code(&mut m, &l, 0x40_000, "main", 10, &TABLE);
        tstate(&mut m, &l, 0xa0_000);
        // An owner no CPython has.
        frame(&mut m, &l, 0xa0_000, 0, 0x40_000, 0, 9);
        assert!(StackReader::new(l).read_stack(&m, TSTATE).is_err());
        // An executable that cannot be read.
        frame(&mut m, &l, 0xa0_000, 0, 0x7000_0000, 0, 0);
        assert!(StackReader::new(l).read_stack(&m, TSTATE).is_err());
        // A previous frame that cannot be read.
        frame(&mut m, &l, 0xa0_000, 0x7000_0000, 0x40_000, 0, 0);
        assert!(StackReader::new(l).read_stack(&m, TSTATE).is_err());
        // A code object whose name is not a string.
        code(&mut m, &l, 0x40_000, "main", 10, &TABLE);
        m.put(0x41_000, object(128, &[]));
        frame(&mut m, &l, 0xa0_000, 0, 0x40_000, 0, 0);
        assert!(StackReader::new(l).read_stack(&m, TSTATE).is_err());
    }
}
