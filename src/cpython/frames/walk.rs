//! The frame chains of every thread of a tick, walked together so that each step is one
//! batch of reads for all threads ([`Batch`]), not one read per thread per frame:
//!
//! 1. every thread state's head: its newest frame (or 3.11–3.12's `cframe`), its data-stack
//!    chunk and top, and (3.14+) its interpreter;
//! 2. 3.11–3.12's `cframe->current_frame`, each thread's newest data-stack chunk up to its
//!    top, copied whole (3.11+ lays frames out one after another there), and each
//!    interpreter's code generation;
//! 3. then, round after round, each thread follows its frames as far as the copies go; the
//!    first frame outside them is read in the next round: the chunk before (from the copied
//!    chunk's header up to that frame, in one read) when it lies there, else the frame alone
//!    (generators' frames, frames on the C stack, and every frame before 3.11).
//!
//! A shallow stack costs three system calls for all threads together; a deep one, one more
//! per data-stack chunk (16 KiB each). Everything read is hostile: a copy is capped, a chain
//! longer than [`MAX_FRAMES`] (a cycle) or a frame owner no CPython has fails that thread,
//! and only that thread.

use anyhow::{anyhow, bail, Result};

use super::{at, int, word, FrameLayout, FrameRoot, Position};
use crate::cpython::{Batch, Memory, ReadId};

/// Frames one thread may have before its chain is taken for garbage.
const MAX_FRAMES: usize = 4096;
/// The most one copy of a data-stack chunk reads, and all copies of a tick together.
const MAX_COPY: u64 = 1 << 20;
const MAX_COPIES: usize = 16 << 20;

/// A frame the walk found: its code object (not yet known to be one) and the instruction
/// it runs, as [`super::lines::line_at`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Found {
    pub code: u64,
    pub index: i64,
}

/// One thread state's walk.
#[derive(Default)]
pub(super) struct Walk {
    /// The next frame to take; 0 when the walk is over.
    next: u64,
    walked: usize,
    /// Innermost first.
    pub found: Vec<Found>,
    pub error: Option<anyhow::Error>,
    /// 3.11, 3.12: the `_PyCFrame` holding the newest frame.
    cframe: u64,
    /// The newest chunk and its top, to copy.
    chunk: Option<(u64, u64)>,
    /// The chunk before the oldest one copied, where older frames are (0: none known).
    older: u64,
    pending: Pending,
}

#[derive(Clone, Copy, Default)]
enum Pending {
    #[default]
    None,
    Frame(ReadId),
    /// A copy of a chunk from its start.
    Chunk(ReadId),
}

/// A copied stretch of a thread's data stack.
struct Copy {
    thread: usize,
    start: u64,
    end: u64,
    /// Where its bytes start in [`Walker::copied`].
    at: usize,
}

/// The walks of a tick and what they read, kept from tick to tick so that walking costs no
/// allocation once warm.
#[derive(Default)]
pub(super) struct Walker {
    pub walks: Vec<Walk>,
    batch: Batch,
    copies: Vec<Copy>,
    copied: Vec<u8>,
    interps: Vec<u64>,
}

impl Walker {
    /// Walks the frame chain of each thread state of `tstates`, into [`Walker::walks`] (one
    /// each, in order). Returns what identifies every interpreter's code generation at this
    /// tick (3.14+), `None` where there is none or it could not be read.
    pub fn walk(&mut self, mem: &dyn Memory, l: &FrameLayout, tstates: &[u64]) -> Option<u64> {
        self.walks.resize_with(tstates.len(), Walk::default);
        for w in &mut self.walks {
            w.next = 0;
            w.walked = 0;
            w.found.clear();
            w.error = None;
            w.cframe = 0;
            w.chunk = None;
            w.older = 0;
            w.pending = Pending::None;
        }
        self.copies.clear();
        self.copied.clear();
        self.interps.clear();
        self.heads(mem, l, tstates);
        let generation = self.starts(mem, l);
        while self.round(mem, l) {}
        generation
    }

    /// Step 1: each thread state's head.
    fn heads(&mut self, mem: &dyn Memory, l: &FrameLayout, tstates: &[u64]) {
        let root = match l.root {
            FrameRoot::ThreadState => l.current_frame,
            FrameRoot::CFrame(cframe) => cframe,
        };
        let fields = [
            Some(root),
            l.datastack,
            l.datastack.map(|d| d + 8),
            l.tstate_interp,
        ];
        let lo = fields.iter().flatten().copied().min().unwrap_or(0);
        let hi = fields.iter().flatten().map(|f| f + 8).max().unwrap_or(8);
        self.batch.clear();
        for &t in tstates {
            self.batch.push(at(t, lo), hi - lo);
        }
        self.batch.run(mem);
        for (k, w) in self.walks.iter_mut().enumerate() {
            let Some(head) = self.batch.get(k) else {
                w.error = Some(anyhow!("reading the thread state at {:#x}", tstates[k]));
                continue;
            };
            let field = |off: usize| word(head, off - lo);
            match l.root {
                FrameRoot::ThreadState => w.next = field(root),
                FrameRoot::CFrame(_) => w.cframe = field(root),
            }
            if let Some(d) = l.datastack {
                let (chunk, top) = (field(d), field(d + 8));
                if chunk != 0 && top > chunk && top - chunk <= MAX_COPY {
                    w.chunk = Some((chunk, top));
                }
            }
            if let Some(i) = l.tstate_interp {
                let interp = field(i);
                if !self.interps.contains(&interp) {
                    self.interps.push(interp);
                }
            }
        }
    }

    /// Step 2: 3.11–3.12's newest frame, the newest chunks, and the code generations.
    fn starts(&mut self, mem: &dyn Memory, l: &FrameLayout) -> Option<u64> {
        self.batch.clear();
        let mut reads = Vec::with_capacity(self.walks.len());
        for w in &self.walks {
            let cframe = (w.error.is_none() && w.cframe != 0)
                .then(|| self.batch.push(at(w.cframe, l.current_frame), 8));
            let chunk = match w.chunk {
                Some((chunk, top)) if w.error.is_none() => {
                    Some(self.batch.push(chunk, (top - chunk) as usize))
                }
                _ => None,
            };
            reads.push((cframe, chunk));
        }
        let generations: Vec<ReadId> = match l.code_generation {
            Some(g) => self
                .interps
                .iter()
                .map(|&i| self.batch.push(at(i, g), 8))
                .collect(),
            None => Vec::new(),
        };
        if self.batch.is_empty() {
            return None;
        }
        self.batch.run(mem);
        for (k, (cframe, chunk)) in reads.into_iter().enumerate() {
            if let Some(id) = cframe {
                match self.batch.get(id) {
                    Some(b) => self.walks[k].next = word(b, 0),
                    None => {
                        self.walks[k].error = Some(anyhow!("reading the thread's current frame"))
                    }
                }
            }
            if let Some(id) = chunk {
                let start = self.walks[k].chunk.map_or(0, |c| c.0);
                self.keep_copy(k, start, id);
            }
        }
        let mut generation: Option<u64> = (!generations.is_empty()).then_some(0);
        for (&interp, &id) in self.interps.iter().zip(&generations) {
            let gen = self.batch.get(id).map(|b| word(b, 0));
            generation = match (generation, gen) {
                (Some(sum), Some(gen)) => {
                    Some(sum.wrapping_mul(0x100_0000_01b3) ^ interp.wrapping_add(gen))
                }
                _ => None,
            };
        }
        generation
    }

    /// Keeps the copy of read `id` (a chunk from its `start`) for `thread`, and learns from
    /// its header where the chunk before it is. A copy past the tick's budget is dropped:
    /// its frames are read one by one.
    fn keep_copy(&mut self, thread: usize, start: u64, id: ReadId) {
        let Some(bytes) = self.batch.get(id) else {
            return;
        };
        if self.copied.len() + bytes.len() > MAX_COPIES || bytes.len() < 8 {
            return;
        }
        self.walks[thread].older = word(bytes, 0);
        self.copies.push(Copy {
            thread,
            start,
            end: start.saturating_add(bytes.len() as u64),
            at: self.copied.len(),
        });
        self.copied.extend_from_slice(bytes);
    }

    /// Step 3, once: every thread follows its chain through what is copied, and asks for
    /// the first frame it does not have. Whether anything was asked for.
    fn round(&mut self, mem: &dyn Memory, l: &FrameLayout) -> bool {
        let len = l.frame_len();
        self.batch.clear();
        for k in 0..self.walks.len() {
            while self.walks[k].error.is_none() && self.walks[k].next != 0 {
                let addr = self.walks[k].next;
                let Some(c) = self.copies.iter().find(|c| {
                    c.thread == k && addr >= c.start && addr.saturating_add(len as u64) <= c.end
                }) else {
                    let w = &mut self.walks[k];
                    let older = w.older;
                    w.pending = if older != 0 && addr > older && addr - older <= MAX_COPY {
                        // Older frames live in the chunk before: all of it up to this frame.
                        Pending::Chunk(self.batch.push(older, (addr - older) as usize + len))
                    } else {
                        Pending::Frame(self.batch.push(addr, len))
                    };
                    break;
                };
                let from = c.at + (addr - c.start) as usize;
                let frame = &self.copied[from..from + len];
                let w = &mut self.walks[k];
                if let Err(e) = step(l, w, addr, frame) {
                    w.error = Some(e);
                }
            }
        }
        if self.batch.is_empty() {
            return false;
        }
        self.batch.run(mem);
        for k in 0..self.walks.len() {
            match std::mem::take(&mut self.walks[k].pending) {
                Pending::None => {}
                Pending::Chunk(id) => {
                    let start = self.walks[k].older;
                    // A chunk that cannot be read: its frames are tried one by one.
                    self.walks[k].older = 0;
                    self.keep_copy(k, start, id);
                }
                Pending::Frame(id) => {
                    let w = &mut self.walks[k];
                    let addr = w.next;
                    let result = match self.batch.get(id) {
                        Some(frame) => step(l, w, addr, frame),
                        None => Err(anyhow!("reading the frame at {addr:#x}")),
                    };
                    if let Err(e) = result {
                        w.error = Some(e);
                    }
                }
            }
        }
        true
    }
}

/// Takes the frame at `addr`, whose first bytes are `buf`: moves the walk to the frame
/// before it and keeps its code and instruction unless it is a shim.
fn step(l: &FrameLayout, w: &mut Walk, addr: u64, buf: &[u8]) -> Result<()> {
    w.walked += 1;
    if w.walked > MAX_FRAMES {
        bail!("more than {MAX_FRAMES} frames: the frame list is garbage");
    }
    w.next = word(buf, l.previous);
    let owner = l.owner.map_or(0, |o| buf[o]);
    if owner > l.max_owner {
        bail!("the frame at {addr:#x} has owner {owner}: garbage");
    }
    if owner >= l.shim_owner {
        return Ok(());
    }
    // 3.14+ holds a `_PyStackRef` whose low bits are tags; an older `PyObject*` is aligned,
    // so masking it changes nothing.
    let code = word(buf, l.executable) & !3;
    if code == 0 {
        return Ok(());
    }
    let index = match l.position {
        Position::Pointer => {
            let base = at(code, l.co_code_adaptive);
            (word(buf, l.instr_ptr).wrapping_sub(base) as i64) / 2
        }
        Position::LastiBytes => i64::from(int(buf, l.instr_ptr)),
        Position::LastiUnits => 2 * i64::from(int(buf, l.instr_ptr)),
    };
    w.found.push(Found { code, index });
    Ok(())
}
