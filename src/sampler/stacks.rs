//! Where Python stacks come from: gilscope's own reader ([`crate::cpython::frames`]) for every
//! CPython it supports, and the py-spy library only for thread names (CPython before 3.14
//! does not name its OS threads) and as a fallback for a build the own reader cannot lay out.
//!
//! py-spy drops a frame whose function name is 4096 characters or more or whose file name is
//! not UTF-8, and so blames its caller; the own reader keeps such a frame with its names
//! decoded lossily and capped. It also reads free-threaded builds (py-spy's issue #711) and
//! every interpreter's threads, where py-spy reads one interpreter.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::python;
use super::raw_stack::RawStack;
use super::threads::ThreadTable;
use crate::cpython::{frames, Memory};
use crate::model::Stack;

/// The readers a target's stacks can come from.
pub struct StackSource {
    /// py-spy, for builds with a GIL: it knows the thread names `threading` gave, which the
    /// OS does not. It reads one interpreter only.
    pub py_spy: Option<python::StackReader>,
    /// gilscope's own reader: every interpreter, and free-threaded builds.
    pub own: Option<frames::StackReader>,
    /// Threads py-spy has named, by `pthread_t` and OS thread id (a `pthread_t` is reused by
    /// a later thread), and when it was last asked for names.
    named: HashSet<(u64, Option<i32>)>,
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

    /// The stacks of every Python thread: from the own reader, or py-spy where the own
    /// reader has no layout. A torn read fails the whole call; the caller counts it as one
    /// failed stack sample.
    pub fn read(&mut self, mem: &dyn Memory, table: &ThreadTable) -> Result<Vec<RawStack>> {
        let mut stacks = match (&mut self.own, &mut self.py_spy) {
            (Some(own), _) => read_own(own, mem, table)?,
            (None, Some(py_spy)) => py_spy.read()?,
            (None, None) => Vec::new(),
        };
        if self.own.is_some() {
            self.add_names(&mut stacks);
        }
        Ok(stacks)
    }

    /// Names the own reader's stacks from py-spy (at most every [`NAMES_EVERY`], while some
    /// thread has no name yet): CPython before 3.14 does not name its OS threads. Threads
    /// are matched by `pthread_t`, which both readers know on every version.
    fn add_names(&mut self, stacks: &mut [RawStack]) {
        // Forget threads that ended, so that a run with many short threads stays small.
        let alive: HashSet<_> = stacks.iter().map(|s| (s.pthread, s.tid)).collect();
        self.named.retain(|k| alive.contains(k));
        for s in stacks.iter().filter(|s| s.name.is_some()) {
            self.named.insert((s.pthread, s.tid));
        }
        let unnamed = stacks
            .iter()
            .any(|s| !self.named.contains(&(s.pthread, s.tid)));
        let due = self.names_asked.is_none_or(|t| t.elapsed() >= NAMES_EVERY);
        let Some(py_spy) = self.py_spy.as_mut().filter(|_| unnamed && due) else {
            return;
        };
        // A failed read (torn while threads run) is tried again at the next stack tick.
        let Ok(named) = py_spy.read() else { return };
        self.names_asked = Some(Instant::now());
        for n in named {
            let Some(name) = n.name else { continue };
            if let Some(s) = stacks.iter_mut().find(|s| s.pthread == n.pthread) {
                s.name = Some(name);
                self.named.insert((s.pthread, s.tid));
            }
        }
    }
}

/// Each thread's stack from its thread states, oldest interpreter first: a thread inside a
/// subinterpreter shows the call that entered it, then the code it runs there. Every thread
/// state is read in one batched walk. A thread that ended since the thread table was read
/// (its `/proc` files no longer answer) is left out rather than failing the sample with its
/// freed thread state.
fn read_own(
    reader: &mut frames::StackReader,
    mem: &dyn Memory,
    table: &ThreadTable,
) -> Result<Vec<RawStack>> {
    let tstates: Vec<u64> = table
        .threads
        .iter()
        .flat_map(|t| t.tstates.iter().map(|&(_, tstate)| tstate))
        .collect();
    let mut read = reader.read_stacks(mem, &tstates).into_iter();
    let mut stacks = Vec::with_capacity(table.threads.len());
    for t in &table.threads {
        let mut parts = Vec::with_capacity(t.tstates.len());
        let mut gone = false;
        for part in read.by_ref().take(t.tstates.len()) {
            match part {
                Ok(part) => parts.push(part),
                Err(_) if gone || t.files.stat().is_none() => gone = true,
                Err(e) => return Err(e.context(format!("reading the stack of thread {}", t.tid))),
            }
        }
        if gone {
            continue;
        }
        // One thread state, the usual case: its stack as the reader shares it.
        let frames: Stack = match parts.len() {
            1 => parts.pop().unwrap_or_default(),
            _ => parts.iter().flat_map(|p| p.iter().cloned()).collect(),
        };
        stacks.push(RawStack {
            pthread: t.pthread,
            tid: Some(t.tid),
            name: None,
            frames,
        });
    }
    Ok(stacks)
}
