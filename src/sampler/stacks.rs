//! Where Python stacks come from: the py-spy library for builds with a GIL, and gilscope's own
//! reader of CPython's published debug offsets ([`crate::gil::frames`]) for free-threaded
//! builds, which py-spy cannot read (its issue #711).

use anyhow::{Context, Result};

use super::python;
use super::threads::ThreadTable;
use crate::gil::{frames, Memory};
use crate::model::Frame;

/// One thread's stack as read.
#[derive(Clone, Debug)]
pub struct RawStack {
    /// `PyThreadState.thread_id` (the `pthread_t`).
    pub pthread: u64,
    /// The OS thread id, when the reader knows it.
    pub tid: Option<i32>,
    pub name: Option<String>,
    /// Outermost frame first.
    pub frames: Vec<Frame>,
}

pub enum StackSource {
    PySpy(python::StackReader),
    DebugOffsets(frames::StackReader),
}

impl StackSource {
    /// The stacks of every Python thread. A torn read fails the whole call; the caller
    /// counts it as one failed stack sample.
    pub fn read(&mut self, mem: &dyn Memory, table: &ThreadTable) -> Result<Vec<RawStack>> {
        match self {
            StackSource::PySpy(reader) => reader.read(),
            StackSource::DebugOffsets(reader) => table
                .threads
                .iter()
                .map(|t| {
                    let frames = reader
                        .read_stack(mem, t.tstate)
                        .with_context(|| format!("reading the stack of thread {}", t.tid))?;
                    Ok(RawStack {
                        pthread: t.pthread,
                        tid: Some(t.tid),
                        name: None,
                        frames,
                    })
                })
                .collect(),
        }
    }
}
