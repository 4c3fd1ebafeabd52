//! Plain data shared by every stage: thread states, samples, interned stacks.
//!
//! No I/O and no knowledge of how the data was read or will be shown: the sampler fills these
//! types, analysis reads them.

mod stacks;
mod state;

pub use stacks::{bounded_name, Frame, Stack, StackId, StackTable, MAX_NAME_CHARS};
pub use state::ThreadState;

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What was profiled and how: the facts a report states about the run itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    pub pid: i32,
    /// The CPython version, `3.11.7`.
    pub python: String,
    /// The command line, when gilscope launched it or could read it.
    pub command: Vec<String>,
    pub state_hz: f64,
    pub stack_hz: f64,
    /// `CLOCK_MONOTONIC` (ns) at the run's time zero, which samples' times count from.
    pub monotonic_zero_ns: u64,
    /// The program's working directory as it sees it (inside its chroot or container), which
    /// reports show its own files relative to; `None` in recordings made before it was kept
    /// or when it could not be read.
    #[serde(default)]
    pub cwd: Option<String>,
}

/// How a program gilscope launched ended (`record`; unknown for `attach`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProgramExit {
    /// Its exit code, when it exited (`None` when a signal killed it).
    pub code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// Seconds from its launch to its end.
    pub after_s: f64,
    /// gilscope ended the run (`--duration`, Ctrl-C) and stopped or interrupted it, so its
    /// status is not its own failure.
    pub stopped: bool,
}

impl ProgramExit {
    /// It ended on its own with a status other than 0.
    pub fn failed(&self) -> bool {
        !self.stopped && self.code != Some(0)
    }

    /// `exited with status 2`, `was killed by SIGKILL`.
    pub fn status_text(&self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("was killed by {}", signal_name(sig)),
            (None, None) => "ended with an unknown status".into(),
        }
    }
}

/// `SIGKILL` for 9: the name a shell user knows (x86-64 Linux numbering).
pub fn signal_name(sig: i32) -> String {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(sig - 1)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("signal {sig}"), |name| (*name).to_string())
}

/// An OS thread id (`gettid()`), as in `/proc/<pid>/task/<tid>`.
pub type Tid = i32;

/// One reading of one interpreter's GIL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GilReading {
    /// The interpreter that owns this GIL (0 is the main interpreter).
    pub interpreter: i64,
    /// `gil->locked`.
    pub locked: bool,
    /// The thread `gil->last_holder` names, when it is a thread we know.
    pub holder: Option<Tid>,
    /// `gil->switch_number`: GIL handoffs between threads since the interpreter started.
    pub switch_number: u64,
    /// `gil->interval`: the switch interval in microseconds.
    pub interval_us: u64,
    /// Free-threaded builds: whether the GIL was enabled at this tick (`gil->enabled`);
    /// `None` for builds with a GIL, where it always is.
    pub enabled: Option<GilEnabled>,
}

/// A free-threaded build's GIL switch (`_gil_runtime_state.enabled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GilEnabled {
    Disabled,
    /// Enabled for a while, as CPython does while it imports an extension module until it
    /// knows whether the module is safe without the GIL.
    Transiently,
    /// Enabled for good: `PYTHON_GIL=1`, or an imported module not marked safe without it.
    Permanently,
}

impl GilEnabled {
    /// From the value of `int enabled`: 0, a count of transient requests, or `INT_MAX`.
    pub fn from_raw(value: i32) -> GilEnabled {
        match value {
            0 => GilEnabled::Disabled,
            i32::MAX => GilEnabled::Permanently,
            _ => GilEnabled::Transiently,
        }
    }
}

/// What one thread was doing at one tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadObservation {
    pub tid: Tid,
    pub state: ThreadState,
    /// On a CPU at this tick, as the kernel's scheduler statistics say (as opposed to
    /// blocked, or runnable and waiting on a run queue).
    pub on_cpu: bool,
    /// Runnable but waiting on a run queue for a CPU (a holder preempted, a woken waiter not
    /// run yet, or state `ready`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub queued: bool,
    /// Holds the GIL while blocked in the kernel (outside the GIL's own locks).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stalled: bool,
    /// The GIL its state is about, named by [`GilReading::interpreter`]: the one it holds or
    /// waits for, else its interpreter's.
    pub gil: i64,
    /// In state [`ThreadState::Io`]: what it waits on, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io: Option<IoKind>,
    /// Holding the GIL on a CPU: the native module ([`Sample::Module`]) its instruction
    /// pointer was in, or [`IN_INTERPRETER`], when the kernel's samples tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<u32>,
}

/// [`ThreadObservation::native`] for a holder seen in the interpreter's own code.
pub const IN_INTERPRETER: u32 = u32::MAX;

/// What a thread blocked in I/O waits on: the kind of its file descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoKind {
    /// A socket: the network, or a local socket.
    Socket,
    /// A regular file or a block device.
    File,
    /// A pipe or FIFO.
    Pipe,
    /// A terminal.
    Terminal,
    /// Several descriptors at once (select, poll, epoll, io_uring).
    Poll,
    /// A descriptor of another kind, or one not looked up.
    Other,
}

impl IoKind {
    pub const ALL: [IoKind; 6] = [
        IoKind::Socket,
        IoKind::File,
        IoKind::Pipe,
        IoKind::Terminal,
        IoKind::Poll,
        IoKind::Other,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn key(self) -> &'static str {
        match self {
            IoKind::Socket => "socket",
            IoKind::File => "file",
            IoKind::Pipe => "pipe",
            IoKind::Terminal => "terminal",
            IoKind::Poll => "poll",
            IoKind::Other => "other",
        }
    }

    /// What a user calls it.
    pub fn description(self) -> &'static str {
        match self {
            IoKind::Socket => "sockets (the network)",
            IoKind::File => "files",
            IoKind::Pipe => "pipes",
            IoKind::Terminal => "a terminal",
            IoKind::Poll => "select/poll/epoll (sockets or pipes)",
            IoKind::Other => "other descriptors",
        }
    }

    /// From the target of `/proc/<pid>/fd/<fd>`: `socket:[…]`, `pipe:[…]`, a path.
    pub fn from_link(link: &[u8]) -> IoKind {
        if link.starts_with(b"socket:") {
            IoKind::Socket
        } else if link.starts_with(b"pipe:") {
            IoKind::Pipe
        } else if link.starts_with(b"/dev/pts/") || link.starts_with(b"/dev/tty") {
            IoKind::Terminal
        } else if link.starts_with(b"/") {
            IoKind::File
        } else {
            IoKind::Other
        }
    }
}

/// The GIL state of every Python thread at one instant: the cheap, frequent sample.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StateTick {
    /// Time since the run started.
    #[serde(with = "nanos")]
    pub at: Duration,
    pub gils: Vec<GilReading>,
    pub threads: Vec<ThreadObservation>,
}

impl StateTick {
    /// The main GIL's reading (interpreter 0's, or the lowest interpreter read).
    pub fn main_gil(&self) -> Option<&GilReading> {
        self.gils.iter().min_by_key(|g| g.interpreter)
    }
}

/// The Python stack of every thread at one instant: the expensive, rarer sample. Each stack
/// carries the state its thread was in at the state tick taken with it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StackTick {
    #[serde(with = "nanos")]
    pub at: Duration,
    /// Threads waiting for the GIL at this tick: the weight of the holder's stack in the
    /// blame view.
    pub waiters: u32,
    pub stacks: Vec<ThreadStack>,
}

/// One thread's stack, outermost frame first, and its state at that tick.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ThreadStack {
    pub tid: Tid,
    pub state: ThreadState,
    /// On a CPU at that tick.
    pub on_cpu: bool,
    /// Runnable but waiting for a CPU at that tick.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub queued: bool,
    /// Held the GIL while blocked in the kernel at that tick.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stalled: bool,
    /// Held the GIL in this native module's code at that tick ([`Sample::Module`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<u32>,
    pub frames: Stack,
}

/// Facts about a thread that change rarely: sent when first seen and when they change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThreadInfo {
    pub tid: Tid,
    pub name: Option<String>,
    pub interpreter: i64,
}

/// What the sampler sends, in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Sample {
    State(StateTick),
    Stacks(StackTick),
    /// A thread seen for the first time, or whose name or interpreter changed.
    Thread(ThreadInfo),
    /// Every interpreter's id and the id naming its GIL ([`GilReading::interpreter`]): an
    /// interpreter that shares another's GIL names that one. Sent when it changes.
    Interpreters(Vec<(i64, i64)>),
    /// CPU seconds used so far by the whole process and by each Python thread, and what
    /// the machine and the process's CPU quota allowed meanwhile.
    Cpu {
        #[serde(with = "nanos")]
        at: Duration,
        process_s: Option<f64>,
        threads: Vec<(Tid, f64)>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        machine: Option<MachineCpu>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quota: Option<CpuQuota>,
    },
    /// A native module (an extension, a library) the GIL's holder was seen running in,
    /// named once: observations name it by `id`.
    Module {
        id: u32,
        name: String,
    },
    /// A state or stack read that failed (torn or garbage memory, a thread that vanished).
    Failed {
        stacks: bool,
    },
    /// The process exec'd: it runs another program from here on (sent by whoever follows
    /// the target, not by the sampler).
    Exec(Exec),
}

/// An `exec` of the target: what it ran before and after, and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exec {
    #[serde(with = "nanos")]
    pub at: Duration,
    pub before: Vec<String>,
    pub after: Vec<String>,
    /// The new program's CPython version; `None` when it is not Python (sampling stopped).
    pub python: Option<String>,
}

impl Exec {
    /// One sentence for people: "exec'd at 1.2 s: `a` → `b` (CPython 3.12.1)".
    pub fn sentence(&self) -> String {
        let what = match &self.python {
            Some(v) => format!("CPython {v}"),
            None => "not Python: sampling stopped there".into(),
        };
        format!(
            "exec'd at {:.1} s: `{}` → `{}` ({what})",
            self.at.as_secs_f64(),
            self.before.join(" "),
            self.after.join(" ")
        )
    }
}

/// The whole machine's CPU time so far (`/proc/stat`'s first line), in seconds summed over
/// every CPU: whether other processes kept the CPUs busy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineCpu {
    /// Time the CPUs were busy (anything but idle and iowait).
    pub busy_s: f64,
    /// Busy and idle together.
    pub total_s: f64,
}

/// The CPU quota of the target's cgroup and its throttling so far (cgroup v2 `cpu.max` and
/// `cpu.stat`, or v1 `cpu.cfs_quota_us`, `cpu.cfs_period_us` and `cpu.stat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuQuota {
    /// CPUs' worth of time the cgroup may use per wall second (`quota / period`).
    pub cores: f64,
    /// Periods in which the cgroup ran out of quota and was stopped.
    pub nr_throttled: u64,
    /// Time its threads were kept off the CPUs by the quota.
    pub throttled_s: f64,
}

/// Times in samples as whole nanoseconds: exact, and compact in recordings.
mod nanos {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_nanos().min(u128::from(u64::MAX)) as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_nanos(u64::deserialize(d)?))
    }
}
