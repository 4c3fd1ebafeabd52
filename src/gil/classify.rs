//! Thread-state classification (DESIGN.md §2): pure functions over what the sampler read.

use super::layout::gil_struct;
use crate::model::ThreadState;

/// x86-64 `futex(2)`.
const SYS_FUTEX: i64 = 202;

/// What `/proc/<pid>/task/<tid>/syscall` said about a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    /// `running`: on a CPU or runnable.
    Running,
    /// Blocked in system call `nr`, whose first argument was `arg0`.
    Blocked { nr: i64, arg0: u64 },
    /// Blocked, but not in a system call (`-1 …`: stopped, or in a page fault).
    NotInSyscall,
}

impl Syscall {
    /// Parses the file's text: `running`, `-1 sp pc`, or `nr arg0 … arg5 sp pc` in hex.
    pub fn parse(text: &[u8]) -> Option<Syscall> {
        let text = std::str::from_utf8(text).ok()?.trim();
        if text == "running" {
            return Some(Syscall::Running);
        }
        let mut fields = text.split_ascii_whitespace();
        let nr: i64 = fields.next()?.parse().ok()?;
        if nr < 0 {
            return Some(Syscall::NotInSyscall);
        }
        let arg0 = fields.next()?;
        let arg0 = u64::from_str_radix(arg0.strip_prefix("0x")?, 16).ok()?;
        Some(Syscall::Blocked { nr, arg0 })
    }
}

/// The address ranges inside one GIL struct that a blocked thread's futex may point into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GilAddresses {
    pub base: u64,
}

impl GilAddresses {
    fn region(&self, addr: u64) -> Option<usize> {
        let off = addr.checked_sub(self.base)? as usize;
        (off < gil_struct::SIZE).then_some(off)
    }

    /// The state of a thread that sleeps on futex `addr`, if that futex belongs to this GIL.
    pub fn futex_state(&self, addr: u64) -> Option<ThreadState> {
        match self.region(addr)? {
            off if (gil_struct::COND..gil_struct::SWITCH_COND).contains(&off) => {
                Some(ThreadState::Waiting)
            }
            off if off >= gil_struct::SWITCH_COND => Some(ThreadState::Handoff),
            _ => None,
        }
    }
}

/// Classifies one thread at one tick. `holds` is whether the GIL struct names this thread as
/// its locked holder; `gils` are every interpreter's GILs in the process.
/// Returns the state and whether the thread is on a CPU (running or runnable).
pub fn classify(holds: bool, syscall: Syscall, gils: &[GilAddresses]) -> (ThreadState, bool) {
    let on_cpu = syscall == Syscall::Running;
    if holds {
        return (ThreadState::Holding, on_cpu);
    }
    if let Syscall::Blocked {
        nr: SYS_FUTEX,
        arg0,
    } = syscall
    {
        if let Some(state) = gils.iter().find_map(|g| g.futex_state(arg0)) {
            return (state, false);
        }
    }
    let state = if on_cpu {
        ThreadState::Native
    } else {
        ThreadState::Idle
    };
    (state, on_cpu)
}

/// Which of `gils` a thread blocked in `futex()` sleeps on (its index), if any: the GIL a
/// waiting or handing-off thread is about.
pub fn futex_gil(syscall: Syscall, gils: &[GilAddresses]) -> Option<usize> {
    match syscall {
        Syscall::Blocked {
            nr: SYS_FUTEX,
            arg0,
        } => gils.iter().position(|g| g.futex_state(arg0).is_some()),
        _ => None,
    }
}

/// Classifies one thread of a free-threaded build while its GIL is disabled: there is no
/// GIL to hold or wait for, so it is running (on a CPU or runnable) or idle.
pub fn classify_without_gil(syscall: Syscall) -> (ThreadState, bool) {
    match syscall {
        Syscall::Running => (ThreadState::Running, true),
        _ => (ThreadState::Idle, false),
    }
}

/// Whether a thread that reads as running (not the holder, not asleep on the GIL) is in
/// fact still inside `take_gil()`, woken but waiting for a CPU or about to sleep again.
///
/// `take_gil()` is left only by taking the GIL, and a thread that takes it from another
/// thread increments `switch_number`; when it later drops the GIL, `last_holder` keeps naming
/// it until someone else takes it. So a thread seen waiting at the previous tick has provably
/// not taken the GIL since if no handoff happened at all (`handoffs == 0`), or exactly one
/// happened and `last_holder` is another thread. Without this, a woken waiter that the
/// scheduler has not run yet reads as `native` (DESIGN.md §2, the hard case).
pub fn still_waiting(previous: ThreadState, handoffs: u64, last_holder_is_self: bool) -> bool {
    previous == ThreadState::Waiting && (handoffs == 0 || (handoffs == 1 && !last_holder_is_self))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIL: GilAddresses = GilAddresses {
        base: 0x7f00_0000_1000,
    };

    fn futex(off: u64) -> Syscall {
        Syscall::Blocked {
            nr: SYS_FUTEX,
            arg0: GIL.base + off,
        }
    }

    #[test]
    fn parses_the_three_forms_of_the_syscall_file() {
        assert_eq!(Syscall::parse(b"running\n"), Some(Syscall::Running));
        assert_eq!(
            Syscall::parse(b"202 0x7f0000001028 0x189 0x0 0x0 0x0 0xffffffff 0x7ffd 0x7f12\n"),
            Some(Syscall::Blocked {
                nr: 202,
                arg0: 0x7f00_0000_1028
            })
        );
        assert_eq!(
            Syscall::parse(b"-1 0x7ffc 0x7f12\n"),
            Some(Syscall::NotInSyscall)
        );
        assert_eq!(Syscall::parse(b"garbage"), None);
        assert_eq!(Syscall::parse(b""), None);
        assert_eq!(Syscall::parse(b"\xff\xfe"), None);
    }

    #[test]
    fn futex_inside_cond_or_mutex_is_waiting() {
        for off in [32, 40, 79, 80, 119] {
            assert_eq!(
                classify(false, futex(off), &[GIL]),
                (ThreadState::Waiting, false),
                "+{off}"
            );
        }
    }

    #[test]
    fn futex_inside_switch_cond_or_switch_mutex_is_handoff() {
        for off in [120, 160, 168, 207] {
            assert_eq!(
                classify(false, futex(off), &[GIL]),
                (ThreadState::Handoff, false),
                "+{off}"
            );
        }
    }

    #[test]
    fn other_futexes_and_syscalls_are_idle_and_running_is_native() {
        assert_eq!(classify(false, futex(208), &[GIL]).0, ThreadState::Idle);
        assert_eq!(classify(false, futex(8), &[GIL]).0, ThreadState::Idle);
        let sleep = Syscall::Blocked {
            nr: 230,
            arg0: GIL.base + 40,
        };
        assert_eq!(classify(false, sleep, &[GIL]).0, ThreadState::Idle);
        assert_eq!(
            classify(false, Syscall::Running, &[GIL]),
            (ThreadState::Native, true)
        );
        assert_eq!(
            classify(false, Syscall::NotInSyscall, &[]).0,
            ThreadState::Idle
        );
    }

    #[test]
    fn the_holder_is_holding_on_or_off_cpu() {
        assert_eq!(
            classify(true, Syscall::Running, &[GIL]),
            (ThreadState::Holding, true)
        );
        let read = Syscall::Blocked { nr: 0, arg0: 3 };
        assert_eq!(classify(true, read, &[GIL]), (ThreadState::Holding, false));
    }

    #[test]
    fn a_woken_waiter_stays_waiting_until_it_can_have_taken_the_gil() {
        use ThreadState::*;
        // No handoff since it was seen waiting: it cannot have left take_gil().
        assert!(still_waiting(Waiting, 0, false));
        // One handoff, to another thread.
        assert!(still_waiting(Waiting, 1, false));
        // One handoff and it is the last holder: it took the GIL and dropped it again.
        assert!(!still_waiting(Waiting, 1, true));
        // Two or more handoffs: it may have taken the GIL in between.
        assert!(!still_waiting(Waiting, 2, false));
        // Only a waiter carries on waiting.
        assert!(!still_waiting(Native, 0, false));
        assert!(!still_waiting(Holding, 0, false));
    }

    #[test]
    fn any_interpreter_gil_counts() {
        let other = GilAddresses { base: 0x5000 };
        let s = Syscall::Blocked {
            nr: SYS_FUTEX,
            arg0: 0x5000 + 40,
        };
        assert_eq!(classify(false, s, &[GIL, other]).0, ThreadState::Waiting);
        assert_eq!(futex_gil(s, &[GIL, other]), Some(1));
        assert_eq!(futex_gil(futex(40), &[GIL, other]), Some(0));
        assert_eq!(futex_gil(futex(8), &[GIL, other]), None);
        assert_eq!(futex_gil(Syscall::Running, &[GIL, other]), None);
    }
}
