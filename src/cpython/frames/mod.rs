//! One thread's Python stack, read by gilscope itself for every CPython it supports: the
//! frame chain from the thread state, each frame's code object, and its line from the code
//! object's line table ([`lines`]).
//!
//! - 3.13+: `_PyInterpreterFrame`s from `PyThreadState.current_frame`, every offset from
//!   CPython's own `_Py_DebugOffsets` ([`FrameLayout::new`]), free-threaded 3.13t included.
//! - 3.11, 3.12: `_PyInterpreterFrame`s from `tstate->cframe->current_frame`.
//! - 3.8 to 3.10: `PyFrameObject`s from `tstate->frame`, linked by `f_back`.
//!
//! The offsets of 3.8 to 3.12 come from gilscope's table ([`crate::cpython::layout::frame_layout`]),
//! read from each version's debug information. Frames are reported as py-spy reported them:
//! the function is `co_qualname` from 3.11 on (`K.meth`), `co_name` before, and the file is
//! `co_filename`. Unlike py-spy,
//! a frame is never dropped for its names: they are decoded lossily and capped
//! ([`strings`]), and one that cannot be read at all shows as [`UNREADABLE_NAME`].
//!
//! Reads target memory only through [`Memory`]. Everything read is hostile input: a failed
//! read, a list that loops, an owner no CPython has is an error (one failed sample), never a
//! panic or a hang. Frames that are not Python code (shims, and executables that are not
//! code objects) are left out, as py-spy leaves them out.

mod lines;
mod strings;

use std::collections::HashMap;

use anyhow::{bail, Context, Result};

use super::debug_offsets::DebugOffsets;
use super::Memory;
use crate::model::Frame;
pub use lines::LineFormat;
use lines::{line_at, LineRun};
use strings::{read_bytes, read_str};

/// Bounds on what garbage can make the reader do.
const MAX_FRAMES: usize = 4096;
const MAX_LINETABLE: usize = 1 << 20;
const MAX_CACHED_CODE: usize = 4096;

/// What a frame shows for a name that cannot be read as a string.
pub const UNREADABLE_NAME: &str = "<unreadable name>";

/// `Py_TPFLAGS_HEAPTYPE`: `PyCode_Type` is a static type, a class named `code` is not.
const HEAP_TYPE: u64 = 1 << 9;

/// How the thread state leads to its innermost frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameRoot {
    /// 3.8–3.10 (`tstate->frame`) and 3.13+ (`tstate->current_frame`): a pointer in the
    /// thread state at [`FrameLayout::current_frame`].
    ThreadState,
    /// 3.11, 3.12: `tstate->cframe` at this offset, a `_PyCFrame` holding the pointer at
    /// [`FrameLayout::current_frame`].
    CFrame(usize),
}

/// What a frame's instruction field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// 3.11+: a pointer to a 2-byte code unit in `co_code_adaptive` (3.11, 3.12:
    /// `prev_instr`, the one running; 3.13+: `instr_ptr`), as py-spy reads both.
    Pointer,
    /// 3.8, 3.9: `int f_lasti`, a byte offset in `co_code`.
    LastiBytes,
    /// 3.10: `int f_lasti`, counted in 2-byte code units.
    LastiUnits,
}

/// The offsets a stack walk follows: from `_Py_DebugOffsets` (3.13+) or gilscope's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLayout {
    pub root: FrameRoot,
    pub current_frame: usize,
    /// `previous` (`f_back` before 3.11), `f_executable` (`f_code` before 3.13) and the
    /// instruction field ([`Position`]).
    pub previous: usize,
    pub executable: usize,
    pub instr_ptr: usize,
    pub position: Position,
    /// `_PyInterpreterFrame.owner` (3.11+): a frame whose owner is at least `shim_owner` is
    /// a shim with no Python code, skipped as py-spy skips it (`FRAME_OWNED_BY_CSTACK`, 3, in
    /// 3.12 and 3.13; `FRAME_OWNED_BY_INTERPRETER`, 3, and `_CSTACK`, 4, in 3.14); one above
    /// `max_owner` is garbage.
    pub owner: Option<usize>,
    pub shim_owner: u8,
    pub max_owner: u8,
    pub ob_type: usize,
    pub tp_name: usize,
    pub tp_flags: usize,
    pub co_filename: usize,
    pub co_name: usize,
    /// `co_qualname` (3.11+), the function's name as frames show it when it can be read.
    pub co_qualname: Option<usize>,
    /// `co_linetable` (`co_lnotab` in 3.8, 3.9), in [`FrameLayout::lines`]'s format.
    pub co_linetable: usize,
    pub lines: LineFormat,
    pub co_firstlineno: usize,
    /// Where the bytecode starts inside the code object (3.11+; 0 before, unused).
    pub co_code_adaptive: usize,
    pub bytes_size: usize,
    pub bytes_data: usize,
    pub str_state: usize,
    pub str_length: usize,
    /// Where the characters start: after a `PyASCIIObject` for compact ASCII strings, after
    /// a `PyCompactUnicodeObject` for other compact strings.
    pub ascii_data: usize,
    pub compact_data: usize,
    /// The bit of `state` where `kind:3` starts (then `compact:1`, `ascii:1`): 2, after
    /// `interned:2`; 8 in free-threaded 3.14+, where `interned` is an `unsigned char`.
    pub kind_shift: u32,
}

impl FrameLayout {
    /// Resolves every offset the walk needs from CPython's `_Py_DebugOffsets` (3.13+).
    /// Fails when one is missing or lies outside its structure, and for free-threaded 3.14+
    /// (see below).
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
        let ascii_data = string("asciiobject_size")?;
        // 3.15 publishes the size of a `PyCompactUnicodeObject`; before, it is a
        // `PyASCIIObject` followed by `utf8_length` and `utf8` (two words).
        let compact_data = match offsets.get("unicode_object", "compactunicodeobject_size") {
            Ok(_) => string("compactunicodeobject_size")?,
            Err(_) => ascii_data + 16,
        };
        let minor = (offsets.version >> 16) & 0xff;
        Ok(FrameLayout {
            root: FrameRoot::ThreadState,
            current_frame: offsets.offset("thread_state", "current_frame")?,
            previous: frame("previous")?,
            executable: frame("executable")?,
            instr_ptr: frame("instr_ptr")?,
            position: Position::Pointer,
            owner: Some(frame("owner")?),
            shim_owner: 3,
            max_owner: 4,
            ob_type: offsets.offset("pyobject", "ob_type")?,
            tp_name: offsets.offset("type_object", "tp_name")?,
            tp_flags: offsets.offset("type_object", "tp_flags")?,
            co_filename: code("filename")?,
            co_name: code("name")?,
            co_qualname: Some(code("qualname")?),
            co_linetable: code("linetable")?,
            lines: LineFormat::Locations,
            co_firstlineno: code("firstlineno")?,
            co_code_adaptive: code("co_code_adaptive")?,
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

    /// Bytes of a frame read to hold the fields the walk reads.
    fn frame_len(&self) -> usize {
        let instr = match self.position {
            Position::Pointer => 8,
            Position::LastiBytes | Position::LastiUnits => 4,
        };
        [
            self.previous + 8,
            self.executable + 8,
            self.instr_ptr + instr,
            self.owner.map_or(0, |o| o + 1),
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }

    /// Bytes of a code object read to hold the fields the walk reads, `ob_type` included.
    fn code_len(&self) -> usize {
        [
            self.ob_type + 8,
            self.co_filename + 8,
            self.co_name + 8,
            self.co_qualname.map_or(0, |q| q + 8),
            self.co_linetable + 8,
            self.co_firstlineno + 4,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }
}

/// Reads stacks, remembering what each code object says (names and line table) so that a
/// sample reads two small structs per frame rather than four objects.
pub struct StackReader {
    layout: FrameLayout,
    code: HashMap<CodeKey, CodeInfo>,
    /// `PyCode_Type`'s address, once a frame has shown it.
    code_type: Option<u64>,
    /// Reused for every frame and code object read.
    frame_buf: Vec<u8>,
    code_buf: Vec<u8>,
}

/// A code object as the cache knows it. Freed code's address can be reused by new code;
/// the new object's strings and line table are new objects too, so a reused address with
/// another filename, name or line table is another entry, not a stale hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct CodeKey {
    addr: u64,
    filename: u64,
    name: u64,
    /// 0 before 3.11.
    qualname: u64,
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
            frame_buf: vec![0u8; layout.frame_len()],
            code_buf: vec![0u8; layout.code_len()],
        }
    }

    /// The stack of the thread whose `PyThreadState` is at `tstate`, outermost frame first
    /// (empty when the thread runs no Python). Shim frames, and frames whose executable is
    /// not a code object, are left out.
    pub fn read_stack(&mut self, mem: &dyn Memory, tstate: u64) -> Result<Vec<Frame>> {
        let l = self.layout;
        let holder = match l.root {
            FrameRoot::ThreadState => tstate,
            FrameRoot::CFrame(cframe) => {
                let cframe = mem
                    .read_u64(at(tstate, cframe))
                    .context("reading tstate->cframe")?;
                if cframe == 0 {
                    return Ok(Vec::new());
                }
                cframe
            }
        };
        let mut addr = mem
            .read_u64(at(holder, l.current_frame))
            .context("reading the thread's current frame")?;
        let mut buf = std::mem::take(&mut self.frame_buf);
        let result = self.walk(mem, &mut addr, &mut buf);
        self.frame_buf = buf;
        let mut frames = result?;
        frames.reverse();
        Ok(frames)
    }

    /// The frames from the one at `addr` outwards, innermost first.
    fn walk(&mut self, mem: &dyn Memory, addr: &mut u64, buf: &mut [u8]) -> Result<Vec<Frame>> {
        let l = self.layout;
        let mut frames = Vec::new();
        let mut walked = 0;
        while *addr != 0 {
            walked += 1;
            if walked > MAX_FRAMES {
                bail!("more than {MAX_FRAMES} frames: the frame list is garbage");
            }
            let at_frame = *addr;
            mem.read(at_frame, buf)
                .with_context(|| format!("reading the frame at {at_frame:#x}"))?;
            *addr = word(buf, l.previous);
            let owner = l.owner.map_or(0, |o| buf[o]);
            if owner > l.max_owner {
                bail!("the frame at {at_frame:#x} has owner {owner}: garbage");
            }
            if owner >= l.shim_owner {
                continue;
            }
            // 3.14+ holds a `_PyStackRef` whose low bits are tags; an older `PyObject*` is
            // aligned, so masking it changes nothing.
            let code = word(buf, l.executable) & !3;
            let index = match l.position {
                Position::Pointer => {
                    let base = at(code, l.co_code_adaptive);
                    (word(buf, l.instr_ptr).wrapping_sub(base) as i64) / 2
                }
                Position::LastiBytes => i64::from(int(buf, l.instr_ptr)),
                Position::LastiUnits => 2 * i64::from(int(buf, l.instr_ptr)),
            };
            if let Some(frame) = self.frame(mem, code, index)? {
                frames.push(frame);
            }
        }
        Ok(frames)
    }

    /// The frame at `index` (as [`lines::line_at`] counts) in the code object at `code`;
    /// `None` when `code` is not a code object.
    fn frame(&mut self, mem: &dyn Memory, code: u64, index: i64) -> Result<Option<Frame>> {
        let l = self.layout;
        if code == 0 {
            return Ok(None);
        }
        let head = &mut self.code_buf;
        mem.read(code, head)
            .with_context(|| format!("reading the code object at {code:#x}"))?;
        let key = CodeKey {
            addr: code,
            filename: word(head, l.co_filename),
            name: word(head, l.co_name),
            qualname: l.co_qualname.map_or(0, |q| word(head, q)),
            linetable: word(head, l.co_linetable),
            firstlineno: int(head, l.co_firstlineno),
        };
        let ty = word(head, l.ob_type);
        if !self.is_code_type(mem, ty)? {
            return Ok(None);
        }
        if !self.code.contains_key(&key) {
            let (info, complete) = read_code(mem, &l, &key)
                .with_context(|| format!("reading the code object at {code:#x}"))?;
            if !complete {
                // A name that could not be read now may be readable at the next sample.
                let line = line_at(&info.lines, index, key.firstlineno);
                return Ok(Some(Frame {
                    function: info.function,
                    file: info.file,
                    line,
                }));
            }
            if self.code.len() >= MAX_CACHED_CODE {
                self.code.clear();
            }
            self.code.insert(key, info);
        }
        let info = &self.code[&key];
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

/// Names and line table of a code object, which [`StackReader::frame`] has checked is one,
/// and whether both names were read (a placeholder is not worth remembering). The function
/// is its qualified name where there is one, else `co_name`.
fn read_code(mem: &dyn Memory, l: &FrameLayout, key: &CodeKey) -> Result<(CodeInfo, bool)> {
    let qualname = match l.co_qualname {
        Some(_) => read_str(mem, l, key.qualname).ok(),
        None => None,
    };
    let function = qualname.or_else(|| read_str(mem, l, key.name).ok());
    let file = read_str(mem, l, key.filename).ok();
    let complete = function.is_some() && file.is_some();
    let table = read_bytes(mem, l, key.linetable, MAX_LINETABLE).context("reading co_linetable")?;
    let info = CodeInfo {
        function: function.unwrap_or_else(|| UNREADABLE_NAME.into()),
        file: file.unwrap_or_else(|| UNREADABLE_NAME.into()),
        lines: lines::decode(l.lines, &table, key.firstlineno),
    };
    Ok((info, complete))
}

fn at(base: u64, offset: usize) -> u64 {
    base.wrapping_add(offset as u64)
}

/// The word at `offset` of a buffer sized to hold it.
fn word(buf: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(buf[offset..offset + 8].try_into().unwrap())
}

/// The `int` at `offset` of a buffer sized to hold it.
fn int(buf: &[u8], offset: usize) -> i32 {
    i32::from_le_bytes(buf[offset..offset + 4].try_into().unwrap())
}

#[cfg(test)]
mod tests;
