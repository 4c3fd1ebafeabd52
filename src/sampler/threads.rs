//! The Python threads of the target: which OS thread each `PyThreadState` is, which GIL it
//! belongs to, and its open `/proc` files. Refreshed from the interpreter's thread list.

use std::collections::{HashMap, HashSet};

use anyhow::Result;

use super::native::IpSampler;
use super::procfs::{task_ids, TaskFiles};
use crate::cpython::{self, Interpreter, Layout, Memory};
use crate::gil::{Classified, GilAddresses};
use crate::model::{IoKind, Tid};

/// Where glibc keeps `tid` inside `struct pthread` on x86-64; tried first, then a scan.
const GLIBC_PTHREAD_TID: usize = 0x2d0;
/// How far into `struct pthread` the scan looks for the tid.
const PTHREAD_SCAN: usize = 2048;

/// `(interpreter id, PyThreadState*)` pairs of one OS thread.
type ThreadStates = Vec<(i64, u64)>;

/// One Python thread being followed: one OS thread, which has a `PyThreadState` in every
/// interpreter it runs code of (a thread inside `_interpreters.exec` has one in the main
/// interpreter and one in the subinterpreter).
#[derive(Debug)]
pub struct Tracked {
    pub tid: Tid,
    /// The interpreter it runs in: of those it has a thread state in, the newest (the
    /// subinterpreter it entered, not the one it entered it from).
    pub interpreter: i64,
    pub pthread: u64,
    /// Its thread states, oldest interpreter first.
    pub tstates: ThreadStates,
    pub files: TaskFiles,
    /// The kernel's samples of its instruction pointer, where the kernel allows them.
    pub ip: Option<IpSampler>,
    /// What the classifier concluded about it at the previous tick.
    pub previous: Option<Classified>,
}

/// What one GIL is and which interpreters use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gil {
    pub address: u64,
    /// The lowest id among the interpreters that share it.
    pub interpreter: i64,
    /// Free-threaded builds: where its `int enabled` is.
    pub enabled_at: Option<u64>,
}

#[derive(Debug, Default)]
pub struct ThreadTable {
    pub threads: Vec<Tracked>,
    pub gils: Vec<Gil>,
    /// How many interpreters the process has.
    pub interpreters: usize,
    /// Each interpreter's id and the id naming its GIL ([`Gil::interpreter`]).
    pub interpreter_gils: Vec<(i64, i64)>,
    /// `PyThreadState*` → tid, to name the GIL holder.
    by_tstate: HashMap<u64, Tid>,
    /// `pthread_t` → tid, to match py-spy's stacks to threads.
    by_pthread: HashMap<u64, Tid>,
    /// Offset of `tid` in `struct pthread`, once found (3.8–3.10 only).
    pthread_tid_offset: Option<usize>,
    /// What the file descriptors that threads were seen blocked on are; forgotten at every
    /// refresh, since a descriptor number may be closed and reused.
    fd_kinds: HashMap<i32, Option<IoKind>>,
}

impl ThreadTable {
    pub fn holder(&self, tstate: u64) -> Option<Tid> {
        self.by_tstate.get(&tstate).copied()
    }

    pub fn tid_of_pthread(&self, pthread: u64) -> Option<Tid> {
        self.by_pthread.get(&pthread).copied()
    }

    /// Index in `gils` of the GIL a thread of `interpreter` uses.
    pub fn gil_of(&self, interpreter: i64) -> usize {
        self.gils
            .iter()
            .position(|g| g.interpreter == interpreter)
            .unwrap_or(0)
    }

    /// What descriptor `fd` is, looked up once between refreshes.
    pub fn fd_kind(&mut self, pid: i32, fd: i32) -> Option<IoKind> {
        *self
            .fd_kinds
            .entry(fd)
            .or_insert_with(|| super::procfs::fd_kind(pid, fd))
    }

    pub fn gil_addresses(&self) -> Vec<GilAddresses> {
        self.gils
            .iter()
            .map(|g| GilAddresses { base: g.address })
            .collect()
    }

    /// Re-reads the interpreter and thread lists. Returns the threads seen for the first time
    /// and those that moved to another interpreter, with their interpreter now.
    pub fn refresh(
        &mut self,
        pid: i32,
        mem: &dyn Memory,
        runtime: u64,
        layout: &Layout,
    ) -> Result<Vec<(Tid, i64)>> {
        self.fd_kinds.clear();
        let interpreters = cpython::walk(mem, runtime, layout)?;
        let live: HashSet<Tid> = task_ids(pid)?.into_iter().collect();
        let pthread_tids = self.resolve_pthreads(mem, &interpreters, &live);

        let mut gils: Vec<Gil> = Vec::new();
        let mut by_tstate = HashMap::new();
        let mut by_pthread = HashMap::new();
        // tid → (pthread, thread states), in the order first seen.
        let mut wanted: Vec<(Tid, u64, ThreadStates)> = Vec::new();
        for interp in &interpreters {
            match gils.iter_mut().find(|g| g.address == interp.gil) {
                Some(g) => g.interpreter = g.interpreter.min(interp.id),
                None if interp.gil != 0 => gils.push(Gil {
                    address: interp.gil,
                    interpreter: interp.id,
                    enabled_at: interp.gil_enabled,
                }),
                None => {}
            }
            for t in &interp.threads {
                let tid = t
                    .native_tid
                    .or_else(|| pthread_tids.get(&t.pthread).copied());
                let Some(tid) = tid.filter(|tid| live.contains(tid)) else {
                    continue;
                };
                by_tstate.insert(t.tstate, tid);
                by_pthread.insert(t.pthread, tid);
                match wanted.iter_mut().find(|w| w.0 == tid) {
                    Some(w) => w.2.push((interp.id, t.tstate)),
                    None => wanted.push((tid, t.pthread, vec![(interp.id, t.tstate)])),
                }
            }
        }

        let mut kept: HashMap<Tid, Tracked> = self.threads.drain(..).map(|t| (t.tid, t)).collect();
        let mut changed = Vec::new();
        for (tid, pthread, mut tstates) in wanted {
            tstates.sort_unstable();
            let interpreter = tstates.last().map_or(0, |&(id, _)| id);
            if let Some(mut t) = kept.remove(&tid) {
                if t.interpreter != interpreter {
                    changed.push((tid, interpreter));
                }
                t.interpreter = interpreter;
                t.pthread = pthread;
                t.tstates = tstates;
                self.threads.push(t);
            } else if let Ok(files) = TaskFiles::open(pid, tid) {
                self.threads.push(Tracked {
                    tid,
                    interpreter,
                    pthread,
                    tstates,
                    files,
                    ip: IpSampler::open(tid).ok(),
                    previous: None,
                });
                changed.push((tid, interpreter));
            }
        }
        self.interpreter_gils = interpreters
            .iter()
            .filter_map(|i| {
                let gil = gils.iter().find(|g| g.address == i.gil)?;
                Some((i.id, gil.interpreter))
            })
            .collect();
        self.gils = gils;
        self.interpreters = interpreters.len();
        self.by_tstate = by_tstate;
        self.by_pthread = by_pthread;
        Ok(changed)
    }

    /// Maps `pthread_t` values to OS thread ids for versions whose thread states do not carry
    /// `native_thread_id`: the tid is a field of glibc's (or musl's) `struct pthread`, at an
    /// offset found once by looking for the offset where every thread's value is a live,
    /// distinct tid of the process.
    fn resolve_pthreads(
        &mut self,
        mem: &dyn Memory,
        interpreters: &[Interpreter],
        live: &HashSet<Tid>,
    ) -> HashMap<u64, Tid> {
        let pthreads: Vec<u64> = interpreters
            .iter()
            .flat_map(|i| &i.threads)
            .filter(|t| t.native_tid.is_none() && t.pthread != 0)
            .map(|t| t.pthread)
            .collect();
        if pthreads.is_empty() {
            return HashMap::new();
        }
        let blocks: Vec<(u64, Vec<u8>)> = pthreads
            .iter()
            .filter_map(|&p| {
                let mut buf = vec![0u8; PTHREAD_SCAN];
                mem.read(p, &mut buf).ok().map(|_| (p, buf))
            })
            .collect();
        let tid_at =
            |block: &[u8], off: usize| i32::from_le_bytes(block[off..off + 4].try_into().unwrap());
        let matches = |off: usize| {
            let tids: HashSet<Tid> = blocks
                .iter()
                .map(|(_, b)| tid_at(b, off))
                .filter(|t| live.contains(t))
                .collect();
            tids.len() == blocks.len()
        };
        if self.pthread_tid_offset.is_none() && !blocks.is_empty() {
            self.pthread_tid_offset = std::iter::once(GLIBC_PTHREAD_TID)
                .chain((0..PTHREAD_SCAN - 4).step_by(4))
                .find(|&off| matches(off));
        }
        let Some(off) = self.pthread_tid_offset else {
            return HashMap::new();
        };
        blocks.iter().map(|(p, b)| (*p, tid_at(b, off))).collect()
    }
}
