use serde::{Deserialize, Serialize};

/// What a thread is doing with respect to the GIL (DESIGN.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThreadState {
    /// Owns the GIL.
    Holding,
    /// Blocked trying to take the GIL.
    Waiting,
    /// Dropped the GIL on request and waits until a waiter has taken it.
    Handoff,
    /// GIL released, running on a CPU (C code that dropped the GIL).
    Native,
    /// GIL released, off CPU (sleep, socket, lock, select). In a free-threaded build with
    /// the GIL disabled: off CPU.
    Idle,
    /// Free-threaded build with the GIL disabled: on a CPU (there is no GIL to hold).
    Running,
}

impl ThreadState {
    pub const ALL: [ThreadState; 6] = [
        ThreadState::Holding,
        ThreadState::Waiting,
        ThreadState::Handoff,
        ThreadState::Native,
        ThreadState::Idle,
        ThreadState::Running,
    ];

    /// The states of a build with a GIL (all but [`ThreadState::Running`]).
    pub const WITH_GIL: [ThreadState; 5] = [
        ThreadState::Holding,
        ThreadState::Waiting,
        ThreadState::Handoff,
        ThreadState::Native,
        ThreadState::Idle,
    ];

    /// Position in [`ThreadState::ALL`], for per-state counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The key used in JSON and on the command line.
    pub fn key(self) -> &'static str {
        match self {
            ThreadState::Holding => "holding",
            ThreadState::Waiting => "waiting",
            ThreadState::Handoff => "handoff",
            ThreadState::Native => "native",
            ThreadState::Idle => "idle",
            ThreadState::Running => "running",
        }
    }

    /// The pseudo-frame that tops a stack in flame graphs.
    pub fn frame_label(self) -> &'static str {
        match self {
            ThreadState::Holding => "[holding GIL]",
            ThreadState::Waiting => "[waiting for GIL]",
            ThreadState::Handoff => "[handing off GIL]",
            ThreadState::Native => "[native, GIL released]",
            ThreadState::Idle => "[idle]",
            ThreadState::Running => "[running, no GIL]",
        }
    }
}
