use serde::Serialize;

/// What a thread is doing with respect to the GIL (DESIGN.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
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
    /// GIL released, off CPU (sleep, socket, lock, select).
    Idle,
}

impl ThreadState {
    pub const ALL: [ThreadState; 5] = [
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
        }
    }
}
