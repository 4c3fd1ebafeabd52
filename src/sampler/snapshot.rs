//! One snapshot of every Python thread of a target, for `gilscope dump`: its GIL state at one
//! instant and its Python stack read right after, the way the sampling loop pairs a state tick
//! with a stack tick.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::procfs;
use super::raw_stack::RawStack;
use super::target::Remote;
use super::threads::ThreadTable;
use super::tick::StateReader;
use super::Target;
use crate::model::{Frame, GilReading, IoKind, StateTick, ThreadState, Tid};

/// The gap between the two state ticks: the second one reports a woken waiter that has not
/// taken the GIL yet as waiting, which needs the first ([`crate::gil::still_waiting`]).
const TICK_GAP: Duration = Duration::from_millis(2);
/// How many times a torn or inconsistent read is retried before giving up.
const ATTEMPTS: u32 = 40;
/// The pause between attempts.
const RETRY_AFTER: Duration = Duration::from_millis(5);

/// Every Python thread of a process at one instant.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub pid: i32,
    /// The CPython version, `3.12.1`.
    pub python: String,
    pub free_threaded: bool,
    /// Every GIL, at the state tick the threads' states come from.
    pub gils: Vec<GilReading>,
    /// Ordered by tid.
    pub threads: Vec<ThreadSnapshot>,
}

/// One Python thread in a [`Snapshot`].
#[derive(Clone, Debug, Default)]
pub struct ThreadSnapshot {
    pub tid: Tid,
    /// py-spy's name for it (`threading`'s), else the kernel's (`comm`), if either is known.
    pub name: Option<String>,
    /// The interpreter it runs in (0 is the main interpreter).
    pub interpreter: i64,
    pub state: ThreadState,
    /// On a CPU, as opposed to blocked or waiting for a CPU.
    pub on_cpu: bool,
    /// The GIL its state is about, named by [`GilReading::interpreter`].
    pub gil: i64,
    /// In state `io`: what it waits on, when known.
    pub io: Option<IoKind>,
    /// Its Python stack, innermost frame first; empty when it could not be matched to a stack.
    pub frames: Vec<Frame>,
}

/// Reads one snapshot of `target`: refreshes its thread list, takes two state ticks
/// [`TICK_GAP`] apart and reports the second, then reads every thread's stack. Retries torn
/// reads for a while; fails when the process exits or its memory stays inconsistent.
pub fn snapshot(mut target: Target) -> Result<Snapshot> {
    let pid = target.pid;
    let start = Instant::now();
    let mut table = ThreadTable::default();
    let mut failure = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(RETRY_AFTER);
        }
        match read_once(&mut target, &mut table, start) {
            Ok(snapshot) => return Ok(snapshot),
            Err(_) if !procfs::is_alive(pid) => {
                bail!("process {pid} exited while gilscope was reading it")
            }
            Err(e) => failure = Some(e),
        }
    }
    Err(failure.unwrap_or_else(|| anyhow!("no attempt made"))).with_context(|| {
        format!("could not read a consistent snapshot of process {pid} in {ATTEMPTS} attempts")
    })
}

/// One attempt: fails on any torn or inconsistent read.
fn read_once(target: &mut Target, table: &mut ThreadTable, start: Instant) -> Result<Snapshot> {
    let pid = target.pid;
    let mem = Remote(&target.process);
    table
        .refresh(pid, &mem, target.runtime, &target.layout)
        .context("reading the thread list")?;
    let inconsistent = || anyhow!("the GIL state read was torn or names an unknown thread");
    let mut reader = StateReader::default();
    let layout = &target.layout;
    reader
        .read(&mem, pid, layout, table, start.elapsed())
        .ok_or_else(inconsistent)?;
    std::thread::sleep(TICK_GAP);
    let state = reader
        .read(&mem, pid, layout, table, start.elapsed())
        .ok_or_else(inconsistent)?;
    let stacks = target
        .stacks
        .read(&mem, table)
        .context("reading the stacks")?;
    Ok(assemble(target, table, state, stacks))
}

fn assemble(
    target: &Target,
    table: &ThreadTable,
    state: StateTick,
    stacks: Vec<RawStack>,
) -> Snapshot {
    let pid = target.pid;
    let mut by_tid: Vec<(Tid, RawStack)> = stacks
        .into_iter()
        .filter_map(|s| Some((s.tid.or_else(|| table.tid_of_pthread(s.pthread))?, s)))
        .collect();
    let mut threads: Vec<ThreadSnapshot> = state
        .threads
        .iter()
        .map(|obs| {
            let stack = by_tid
                .iter()
                .position(|(tid, _)| *tid == obs.tid)
                .map(|i| by_tid.swap_remove(i).1);
            let (name, mut frames) = match stack {
                Some(s) => (s.name, s.frames.to_vec()),
                None => (None, Vec::new()),
            };
            frames.reverse();
            let interpreter = table
                .threads
                .iter()
                .find(|t| t.tid == obs.tid)
                .map_or(0, |t| t.interpreter);
            ThreadSnapshot {
                tid: obs.tid,
                name: name.or_else(|| procfs::thread_comm(pid, obs.tid)),
                interpreter,
                state: obs.state,
                on_cpu: obs.on_cpu,
                gil: obs.gil,
                io: obs.io,
                frames,
            }
        })
        .collect();
    threads.sort_by_key(|t| t.tid);
    Snapshot {
        pid,
        python: target.python.version.clone(),
        free_threaded: target.free_threaded,
        gils: state.gils,
        threads,
    }
}
