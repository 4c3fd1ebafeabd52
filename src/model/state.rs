use serde::{Deserialize, Serialize};

/// What a thread is doing at one tick: with the GIL, or what keeps it from running
/// (docs/DESIGN.md, "Thread states").
///
/// The order is the order of every table and legend: first the states that want to run
/// Python or are running (the GIL states, on CPU, ready), then the off-CPU waits from the
/// most to the least actionable.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ThreadState {
    /// Owns the GIL (on a CPU or not: see [`crate::model::ThreadObservation::on_cpu`]).
    Holding,
    /// Blocked trying to take the GIL, or woken and queued for a CPU inside `take_gil`.
    Waiting,
    /// Dropped the GIL on request and waits until a waiter has taken it.
    Handoff,
    /// GIL released and on a CPU, as the kernel's scheduler statistics say (C code that
    /// dropped the GIL: zlib, hashlib, NumPy).
    Native,
    /// Runnable but not on a CPU: waiting on a run queue (the machine or a CPU quota is busy).
    Ready,
    /// Blocked on a lock, condition, event or queue: `futex()` on an address that is not a
    /// GIL's.
    Lock,
    /// Blocked in an I/O system call (read, write, recv, send, poll, select, epoll, accept…).
    Io,
    /// Blocked in a sleep (`time.sleep`).
    Sleep,
    /// Any other off-CPU wait (wait4, pause, a page fault…).
    #[default]
    Idle,
    /// Free-threaded build with the GIL disabled: on a CPU (there is no GIL to hold).
    Running,
}

impl ThreadState {
    /// How many states there are: the length of per-state counters.
    pub const COUNT: usize = 10;

    pub const ALL: [ThreadState; ThreadState::COUNT] = [
        ThreadState::Holding,
        ThreadState::Waiting,
        ThreadState::Handoff,
        ThreadState::Native,
        ThreadState::Ready,
        ThreadState::Lock,
        ThreadState::Io,
        ThreadState::Sleep,
        ThreadState::Idle,
        ThreadState::Running,
    ];

    /// The states of a build with a GIL (all but [`ThreadState::Running`]).
    pub const WITH_GIL: [ThreadState; ThreadState::COUNT - 1] = [
        ThreadState::Holding,
        ThreadState::Waiting,
        ThreadState::Handoff,
        ThreadState::Native,
        ThreadState::Ready,
        ThreadState::Lock,
        ThreadState::Io,
        ThreadState::Sleep,
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
            ThreadState::Ready => "ready",
            ThreadState::Lock => "lock",
            ThreadState::Io => "io",
            ThreadState::Sleep => "sleep",
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
            ThreadState::Ready => "[ready, no CPU]",
            ThreadState::Lock => "[waiting on a lock]",
            ThreadState::Io => "[waiting on I/O]",
            ThreadState::Sleep => "[sleeping]",
            ThreadState::Idle => "[idle]",
            ThreadState::Running => "[running, no GIL]",
        }
    }

    /// Whether a thread in this state is on a CPU (holding counts only with its on-CPU flag).
    pub fn is_on_cpu(self) -> bool {
        matches!(self, ThreadState::Native | ThreadState::Running)
    }

    /// Whether a thread in this state wants to run: it runs, holds or waits for the GIL, or
    /// waits for a CPU. Off-CPU waits (lock, I/O, sleep, idle) are not.
    pub fn wants_to_run(self) -> bool {
        matches!(
            self,
            ThreadState::Holding
                | ThreadState::Waiting
                | ThreadState::Handoff
                | ThreadState::Native
                | ThreadState::Ready
                | ThreadState::Running
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_state_once_in_index_order() {
        for (i, s) in ThreadState::ALL.into_iter().enumerate() {
            assert_eq!(s.index(), i);
        }
        let keys: std::collections::HashSet<_> = ThreadState::ALL.map(|s| s.key()).into();
        assert_eq!(keys.len(), ThreadState::COUNT);
        assert!(!ThreadState::WITH_GIL.contains(&ThreadState::Running));
    }
}
