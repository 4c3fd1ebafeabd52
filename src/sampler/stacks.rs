//! Where Python stacks come from: the py-spy library for builds with a GIL, and gilscope's own
//! reader of CPython's published debug offsets ([`crate::gil::frames`]) for free-threaded
//! builds, which py-spy cannot read (its issue #711).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::python;
use super::threads::ThreadTable;
use crate::gil::{frames, Memory};
use crate::model::{Frame, Tid};

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

/// The readers a target's stacks can come from.
pub struct StackSource {
    /// py-spy, for builds with a GIL: it also knows 3.13's thread names, which the OS does
    /// not. It reads one interpreter only.
    pub py_spy: Option<python::StackReader>,
    /// gilscope's own reader, wherever CPython publishes debug offsets (3.13+): every
    /// interpreter, and free-threaded builds.
    pub own: Option<frames::StackReader>,
    /// Threads py-spy has named, and when it was last asked for names while the own reader
    /// reads the stacks.
    named: HashSet<Tid>,
    names_asked: Option<Instant>,
}

/// How often py-spy is asked for the names of threads it has not named yet, while the own
/// reader reads the stacks.
const NAMES_EVERY: Duration = Duration::from_secs(1);

impl StackSource {
    pub fn new(py_spy: Option<python::StackReader>, own: Option<frames::StackReader>) -> Self {
        StackSource {
            py_spy,
            own,
            named: HashSet::new(),
            names_asked: None,
        }
    }

    /// The stacks of every Python thread. py-spy reads them while the process has one
    /// interpreter; the own reader once it has several (py-spy would miss the threads of all
    /// but one) or when py-spy cannot read the build at all. A torn read fails the whole
    /// call; the caller counts it as one failed stack sample.
    pub fn read(&mut self, mem: &dyn Memory, table: &ThreadTable) -> Result<Vec<RawStack>> {
        let mut stacks = match (&mut self.own, &mut self.py_spy) {
            (Some(own), Some(_)) if table.interpreters > 1 => read_own(own, mem, table)?,
            (_, Some(py_spy)) => py_spy.read()?,
            (Some(own), None) => read_own(own, mem, table)?,
            (None, None) => Vec::new(),
        };
        self.add_names(&mut stacks);
        Ok(stacks)
    }

    /// Names the own reader's stacks from py-spy (at most every [`NAMES_EVERY`], while some
    /// thread has no name yet): CPython 3.13 does not name its OS threads.
    fn add_names(&mut self, stacks: &mut [RawStack]) {
        for s in stacks.iter().filter(|s| s.name.is_some()) {
            self.named.extend(s.tid);
        }
        let unnamed = stacks
            .iter()
            .any(|s| s.tid.is_some_and(|t| !self.named.contains(&t)));
        let due = self.names_asked.is_none_or(|t| t.elapsed() >= NAMES_EVERY);
        let Some(py_spy) = self.py_spy.as_mut().filter(|_| unnamed && due) else {
            return;
        };
        self.names_asked = Some(Instant::now());
        let Ok(named) = py_spy.read() else { return };
        for n in named {
            let (Some(tid), Some(name)) = (n.tid, n.name) else {
                continue;
            };
            if let Some(s) = stacks.iter_mut().find(|s| s.tid == Some(tid)) {
                s.name = Some(name);
                self.named.insert(tid);
            }
        }
    }
}

/// Each thread's stack from its thread states, oldest interpreter first: a thread inside a
/// subinterpreter shows the call that entered it, then the code it runs there.
fn read_own(
    reader: &mut frames::StackReader,
    mem: &dyn Memory,
    table: &ThreadTable,
) -> Result<Vec<RawStack>> {
    table
        .threads
        .iter()
        .map(|t| {
            let mut frames = Vec::new();
            for &(_, tstate) in &t.tstates {
                let part = reader
                    .read_stack(mem, tstate)
                    .with_context(|| format!("reading the stack of thread {}", t.tid))?;
                frames.extend(part);
            }
            Ok(RawStack {
                pthread: t.pthread,
                tid: Some(t.tid),
                name: None,
                frames,
            })
        })
        .collect()
}
