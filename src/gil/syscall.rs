//! What `/proc/<pid>/task/<tid>/syscall` says about a thread, and what the system call it is
//! blocked in means: a lock, I/O (on what), a sleep, or another wait. x86-64 numbers.

use crate::model::{IoKind, ThreadState};

/// x86-64 system call numbers the classifier tells apart.
mod nr {
    pub const READ: i64 = 0;
    pub const WRITE: i64 = 1;
    pub const POLL: i64 = 7;
    pub const PREAD64: i64 = 17;
    pub const PWRITE64: i64 = 18;
    pub const READV: i64 = 19;
    pub const WRITEV: i64 = 20;
    pub const SELECT: i64 = 23;
    pub const SCHED_YIELD: i64 = 24;
    pub const PAUSE: i64 = 34;
    pub const NANOSLEEP: i64 = 35;
    pub const SENDFILE: i64 = 40;
    pub const CONNECT: i64 = 42;
    pub const ACCEPT: i64 = 43;
    pub const SENDTO: i64 = 44;
    pub const RECVFROM: i64 = 45;
    pub const SENDMSG: i64 = 46;
    pub const RECVMSG: i64 = 47;
    pub const FCNTL: i64 = 72;
    pub const FLOCK: i64 = 73;
    pub const FSYNC: i64 = 74;
    pub const FDATASYNC: i64 = 75;
    pub const FUTEX: i64 = 202;
    pub const EPOLL_WAIT: i64 = 232;
    pub const CLOCK_NANOSLEEP: i64 = 230;
    pub const PSELECT6: i64 = 270;
    pub const PPOLL: i64 = 271;
    pub const SPLICE: i64 = 275;
    pub const EPOLL_PWAIT: i64 = 281;
    pub const ACCEPT4: i64 = 288;
    pub const PREADV: i64 = 295;
    pub const PWRITEV: i64 = 296;
    pub const RECVMMSG: i64 = 299;
    pub const SENDMMSG: i64 = 307;
    pub const COPY_FILE_RANGE: i64 = 326;
    pub const PREADV2: i64 = 327;
    pub const PWRITEV2: i64 = 328;
    pub const IO_URING_ENTER: i64 = 426;
    pub const EPOLL_PWAIT2: i64 = 441;
    pub const FUTEX_WAITV: i64 = 449;
}

/// What `/proc/<pid>/task/<tid>/syscall` said about a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    /// `running`: on a CPU or runnable.
    Running,
    /// Blocked in system call `nr` with these arguments.
    Blocked { nr: i64, args: [u64; 6] },
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
        let mut args = [0u64; 6];
        for arg in &mut args {
            *arg = u64::from_str_radix(fields.next()?.strip_prefix("0x")?, 16).ok()?;
        }
        Some(Syscall::Blocked { nr, args })
    }

    /// A thread blocked in `futex()` on `addr` (x86-64 syscall 202, its first argument).
    #[cfg(test)]
    pub fn futex(addr: u64) -> Syscall {
        Syscall::Blocked {
            nr: nr::FUTEX,
            args: [addr, 0x189, 0, 0, 0, 0xffff_ffff],
        }
    }

    /// The address a thread blocked in `futex()` sleeps on.
    pub fn futex_addr(&self) -> Option<u64> {
        match *self {
            Syscall::Blocked {
                nr: nr::FUTEX,
                args,
            } => Some(args[0]),
            _ => None,
        }
    }

    /// The file descriptor whose kind says what a blocked I/O call waits on: the first
    /// argument of the calls that take one descriptor. The sampler looks its kind up.
    pub fn io_fd(&self) -> Option<i32> {
        match *self {
            Syscall::Blocked { nr, args } if off_cpu_state(nr, args).1 == Some(IoKind::Other) => {
                i32::try_from(args[0]).ok()
            }
            _ => None,
        }
    }
}

/// What a blocked system call means for the thread, the GIL aside.
pub(super) fn off_cpu_state(nr: i64, args: [u64; 6]) -> (ThreadState, Option<IoKind>) {
    use ThreadState::{Idle, Io, Lock, Ready, Sleep};
    let no_fds = args[0] == 0 && args[1] == 0 && args[2] == 0 && args[3] == 0;
    match nr {
        nr::FUTEX | nr::FUTEX_WAITV | nr::FLOCK => (Lock, None),
        // fcntl(F_SETLKW / F_OFD_SETLKW) waits for a file lock; other commands do not block.
        nr::FCNTL if matches!(args[1], 7 | 38) => (Lock, None),
        nr::NANOSLEEP | nr::CLOCK_NANOSLEEP => (Sleep, None),
        // 3.8–3.10's time.sleep is select()/pselect6() with no descriptors at all.
        nr::SELECT | nr::PSELECT6 if no_fds => (Sleep, None),
        nr::POLL | nr::PPOLL if args[1] == 0 => (Sleep, None),
        nr::POLL
        | nr::PPOLL
        | nr::SELECT
        | nr::PSELECT6
        | nr::EPOLL_WAIT
        | nr::EPOLL_PWAIT
        | nr::EPOLL_PWAIT2
        | nr::IO_URING_ENTER => (Io, Some(IoKind::Poll)),
        nr::CONNECT
        | nr::ACCEPT
        | nr::ACCEPT4
        | nr::SENDTO
        | nr::RECVFROM
        | nr::SENDMSG
        | nr::RECVMSG
        | nr::RECVMMSG
        | nr::SENDMMSG => (Io, Some(IoKind::Socket)),
        nr::READ
        | nr::WRITE
        | nr::PREAD64
        | nr::PWRITE64
        | nr::READV
        | nr::WRITEV
        | nr::PREADV
        | nr::PWRITEV
        | nr::PREADV2
        | nr::PWRITEV2
        | nr::SENDFILE
        | nr::SPLICE
        | nr::COPY_FILE_RANGE
        | nr::FSYNC
        | nr::FDATASYNC => (Io, Some(IoKind::Other)),
        // A yield leaves the thread runnable: it waits for a CPU.
        nr::SCHED_YIELD => (Ready, None),
        nr::PAUSE => (Idle, None),
        _ => (Idle, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(nr: i64, args: [u64; 6]) -> Syscall {
        Syscall::Blocked { nr, args }
    }

    #[test]
    fn parses_the_three_forms_of_the_syscall_file() {
        assert_eq!(Syscall::parse(b"running\n"), Some(Syscall::Running));
        assert_eq!(
            Syscall::parse(b"202 0x7f0000001028 0x189 0x0 0x0 0x0 0xffffffff 0x7ffd 0x7f12\n"),
            Some(blocked(
                202,
                [0x7f00_0000_1028, 0x189, 0, 0, 0, 0xffff_ffff]
            ))
        );
        assert_eq!(
            Syscall::parse(b"-1 0x7ffc 0x7f12\n"),
            Some(Syscall::NotInSyscall)
        );
        assert_eq!(Syscall::parse(b"202 0x1 0x2"), None, "cut short");
        assert_eq!(Syscall::parse(b"garbage"), None);
        assert_eq!(Syscall::parse(b""), None);
        assert_eq!(Syscall::parse(b"\xff\xfe"), None);
    }
}
