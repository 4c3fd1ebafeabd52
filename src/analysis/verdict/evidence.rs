//! What a verdict is judged on: the run's means and the code its lists name, gathered by
//! the accumulator, and the sums the rules compare.

use super::super::{Blamed, CpuSupply, GilMetrics, Site};
use crate::model::{IoKind, ThreadState};

/// What the verdict is judged on.
#[derive(Clone)]
pub struct Evidence<'a> {
    /// The GIL judged: the one most threads want (the main one but with subinterpreters).
    pub gil: Option<&'a GilMetrics>,
    /// GILs held at least half the time (more than one only with subinterpreters).
    pub busy_gils: usize,
    /// Mean number of threads running C code with the GIL released.
    pub native_threads: f64,
    pub cpu_count: usize,
    /// The code to name: the user's function that makes others wait most (or holds the
    /// GIL most, or runs most without one), with its inclusive share of that list.
    pub top_holder: Option<&'a Blamed>,
    pub state_samples: u64,
    /// Stack samples in the run: below
    /// [`MIN_SAMPLES`](crate::analysis::sites::MIN_SAMPLES), too few to name code.
    pub stack_samples: u64,
    /// The GIL was held by threads blocked off CPU (a finding of its own).
    pub held_off_cpu: bool,
    /// Mean number of threads running without a GIL (free-threaded builds).
    pub running_threads: f64,
    /// CPU seconds of the whole process per wall second.
    pub cores_used: Option<f64>,
    /// The thread that runs an asyncio event loop, if one was seen.
    pub event_loop: Option<String>,
    /// Mean number of threads in each state, indexed like [`ThreadState::ALL`].
    pub threads_in: [f64; ThreadState::COUNT],
    /// Mean number of threads waiting for a lock held by another thread (part of `lock`).
    pub contended_lock_threads: f64,
    /// Mean number of threads waiting for the GIL inside a lock's acquire (part of
    /// `waiting`): a convoy's threads take the GIL back where they take the lock.
    pub lock_gil_threads: f64,
    /// Mean number of threads runnable but waiting for a CPU, whatever their state.
    pub queued_threads: f64,
    /// Mean number of threads waiting on I/O, by kind, indexed like [`IoKind::ALL`].
    pub io_threads: [f64; IoKind::ALL.len()],
    /// What the machine and the CPU quota gave the process.
    pub supply: Option<&'a CpuSupply>,
    /// Where threads wait for a lock most, and what the GIL's holder runs meanwhile.
    pub top_lock_wait: Option<&'a Site>,
    pub top_lock_holder: Option<&'a Blamed>,
    /// From the first to the last sample.
    pub duration_s: f64,
    /// The native module the GIL's holder ran most while holding it, with its share of
    /// the ticks the GIL was held.
    pub native_module: Option<(&'a str, f64)>,
    /// Where the Python code calls it.
    pub native_caller: Option<&'a Site>,
}

impl Evidence<'_> {
    pub(super) fn threads(&self, state: ThreadState) -> f64 {
        self.threads_in[state.index()]
    }

    /// Mean number of threads that want to run: holding, waiting for or handing off the
    /// GIL, running, waiting for a CPU, or waiting for a lock another thread holds.
    pub(super) fn wanting(&self) -> f64 {
        ThreadState::ALL
            .into_iter()
            .filter(|s| s.wants_to_run())
            .map(|s| self.threads(s))
            .sum::<f64>()
            + self.contended_lock_threads
    }

    /// Mean number of threads that want a CPU: on one (holding on a CPU is in `native` only
    /// when the GIL is released, so the holder counts as one), or waiting for one.
    pub(super) fn wanting_cpu(&self) -> f64 {
        self.threads(ThreadState::Holding).min(1.0)
            + self.threads(ThreadState::Native)
            + self.threads(ThreadState::Running)
            + self.queued_threads.max(self.threads(ThreadState::Ready))
    }
}
