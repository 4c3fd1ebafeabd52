//! Where a stack walk finds what it reads: the offsets of thread states, frames, code
//! objects and strings, from CPython's own `_Py_DebugOffsets` (3.13+, [`FrameLayout::new`])
//! or gilscope's table ([`crate::cpython::layout::frame_layout`], 3.8–3.12).

use anyhow::{bail, Result};

use super::LineFormat;
use crate::cpython::debug_offsets::DebugOffsets;

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
    /// 3.11+: `PyThreadState.datastack_chunk`, followed by `datastack_top`: the chunk of
    /// the data stack the thread's newest frames live in, read whole rather than frame by
    /// frame.
    pub datastack: Option<usize>,
    /// 3.14+: `PyThreadState.interp`, and in the interpreter the `_code_object_generation`
    /// counter CPython raises whenever it frees a code object: while it stays the same, a
    /// cached code object cannot have been freed and its address reused.
    pub tstate_interp: Option<usize>,
    pub code_generation: Option<usize>,
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
        let code_generation = offsets
            .get("interpreter_state", "code_object_generation")
            .ok()
            .map(|_| offsets.offset("interpreter_state", "code_object_generation"))
            .transpose()?;
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
            datastack: Some(offsets.offset("thread_state", "datastack_chunk")?),
            tstate_interp: match code_generation {
                Some(_) => Some(offsets.offset("thread_state", "interp")?),
                None => None,
            },
            code_generation,
        })
    }

    /// Bytes of a frame read to hold the fields the walk reads.
    pub(super) fn frame_len(&self) -> usize {
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
    pub(super) fn code_len(&self) -> usize {
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
