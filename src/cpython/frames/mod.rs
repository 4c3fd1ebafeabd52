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

mod code;
mod known;
mod layout;
mod lines;
mod strings;
mod walk;

use anyhow::{Context, Result};

use super::Memory;
use crate::model::Stack;
use code::Codes;
use known::Known;
pub use layout::{FrameLayout, FrameRoot, Position};
pub use lines::LineFormat;
use walk::Walker;

/// What a frame shows for a name that cannot be read as a string.
pub const UNREADABLE_NAME: &str = "<unreadable name>";

/// Reads stacks: every thread's frames walked together ([`walk`]), what each code object
/// says remembered ([`code`]), and the stacks already built ([`known`]), so that a tick
/// costs a few batched reads however many threads there are, a frame costs no read once its
/// code is known, and a stack seen before costs no frame built.
pub struct StackReader {
    layout: FrameLayout,
    walker: Walker,
    codes: Codes,
    known: Known,
    /// The distinct code objects of a tick.
    distinct: Vec<u64>,
}

impl StackReader {
    pub fn new(layout: FrameLayout) -> StackReader {
        StackReader {
            layout,
            walker: Walker::default(),
            codes: Codes::default(),
            known: Known::default(),
            distinct: Vec::new(),
        }
    }

    /// The stack of each thread state of `tstates`, in order, outermost frame first (empty
    /// when the thread runs no Python). Shim frames, and frames whose executable is not a
    /// code object, are left out. A thread whose frames cannot be read is an error for that
    /// thread only.
    pub fn read_stacks(&mut self, mem: &dyn Memory, tstates: &[u64]) -> Vec<Result<Stack>> {
        let l = self.layout;
        self.codes.generation = self.walker.walk(mem, &l, tstates);
        self.distinct.clear();
        for w in self.walker.walks.iter().filter(|w| w.error.is_none()) {
            for f in &w.found {
                // A recursion runs one code object frame after frame.
                if self.distinct.last() != Some(&f.code) {
                    self.distinct.push(f.code);
                }
            }
        }
        self.distinct.sort_unstable();
        self.distinct.dedup();
        self.codes.check(mem, &l, &self.distinct);
        if self.codes.changed {
            self.known.forget();
        }
        // Only stacks of cached code objects are remembered: the others' frames may read
        // otherwise at the next tick.
        let remember = self.codes.all_cached();
        let (codes, known) = (&self.codes, &mut self.known);
        self.walker
            .walks
            .iter_mut()
            .zip(tstates)
            .map(|(w, &tstate)| {
                if let Some(e) = w.error.take() {
                    return Err(e.context(format!("walking the frames of {tstate:#x}")));
                }
                if remember {
                    if let Some(stack) = known.get(&w.found) {
                        return Ok(stack.clone());
                    }
                }
                let mut frames = Vec::with_capacity(w.found.len());
                for f in w.found.iter().rev() {
                    if let Some(info) = codes.get(f.code)? {
                        frames.push(info.frame(f.index));
                    }
                }
                let stack: Stack = frames.into();
                if remember {
                    known.insert(&w.found, stack.clone());
                }
                Ok(stack)
            })
            .collect()
    }

    /// The stack of the one thread whose `PyThreadState` is at `tstate`.
    pub fn read_stack(&mut self, mem: &dyn Memory, tstate: u64) -> Result<Stack> {
        self.read_stacks(mem, &[tstate])
            .pop()
            .context("no stack read")?
    }
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
