//! CPython's memory as gilscope reads it from outside: where the runtime, interpreters, GILs
//! and threads live in each version ([`layout`], and on 3.13+ the published
//! [`debug_offsets`]), the walk from `_PyRuntime` to them ([`walk`]), and the frame reader
//! ([`frames`]).
//!
//! Reads target memory only through [`Memory`], never opens files, tells no thread state
//! (that is [`crate::gil`]) and renders nothing.

mod batch;
pub mod debug_offsets;
pub mod frames;
pub mod layout;
mod walk;

pub use batch::{Batch, Range, ReadId};
pub use layout::Layout;
pub use walk::{walk, Interpreter, PyThread};

use anyhow::{Context, Result};

/// Reads another process's memory. The target is hostile input: any read may fail or return
/// garbage, and callers treat both as one failed sample.
pub trait Memory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()>;

    /// Every read of `batch`, each marked read or not. One by one unless the memory knows a
    /// faster way.
    fn read_batch(&self, batch: &mut Batch) {
        let (reads, data) = batch.parts();
        for r in reads {
            r.ok = self
                .read(r.addr, &mut data[r.start..r.start + r.len])
                .is_ok();
        }
    }

    fn read_u64(&self, addr: u64) -> Result<u64> {
        let mut buf = [0u8; 8];
        self.read(addr, &mut buf)
            .with_context(|| format!("reading 8 bytes at {addr:#x}"))?;
        Ok(u64::from_le_bytes(buf))
    }
}

/// The fields of one GIL that every state tick reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GilHead {
    pub interval_us: u64,
    pub last_holder: u64,
    pub locked: bool,
    pub switch_number: u64,
}

impl GilHead {
    /// Reads the first [`layout::gil_struct::HEAD`] bytes of the GIL struct at `addr`.
    pub fn read(mem: &dyn Memory, addr: u64) -> Result<GilHead> {
        let mut buf = [0u8; layout::gil_struct::HEAD];
        mem.read(addr, &mut buf)
            .with_context(|| format!("reading the GIL at {addr:#x}"))?;
        GilHead::parse(&buf).with_context(|| format!("reading the GIL at {addr:#x}"))
    }

    /// The head from its first [`layout::gil_struct::HEAD`] bytes; `None` when fewer.
    pub fn parse(buf: &[u8]) -> Option<GilHead> {
        use layout::gil_struct as g;
        if buf.len() < g::HEAD {
            return None;
        }
        let word = |at: usize| u64::from_le_bytes(buf[at..at + 8].try_into().unwrap());
        let locked = u32::from_le_bytes(buf[g::LOCKED..g::LOCKED + 4].try_into().unwrap());
        Some(GilHead {
            interval_us: word(g::INTERVAL),
            last_holder: word(g::LAST_HOLDER),
            locked: locked != 0,
            switch_number: word(g::SWITCH_NUMBER),
        })
    }
}
