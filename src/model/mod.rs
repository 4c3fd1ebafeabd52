//! Plain data shared by every stage: thread states, samples, interned stacks.
//!
//! No I/O and no knowledge of how the data was read or will be shown: the sampler fills these
//! types, analysis reads them.

mod stacks;
mod state;

pub use stacks::{Frame, StackId, StackTable};
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadObservation {
    pub tid: Tid,
    pub state: ThreadState,
    /// Runnable or running on a CPU (as opposed to blocked in the kernel).
    pub on_cpu: bool,
    /// The GIL its state is about, named by [`GilReading::interpreter`]: the one it holds or
    /// waits for, else its interpreter's.
    pub gil: i64,
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
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ThreadStack {
    pub tid: Tid,
    pub state: ThreadState,
    /// Running or runnable, as opposed to blocked in the kernel.
    pub on_cpu: bool,
    pub frames: Vec<Frame>,
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
    /// CPU seconds used so far by the whole process and by each Python thread.
    Cpu {
        #[serde(with = "nanos")]
        at: Duration,
        process_s: Option<f64>,
        threads: Vec<(Tid, f64)>,
    },
    /// A state or stack read that failed (torn or garbage memory, a thread that vanished).
    Failed {
        stacks: bool,
    },
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
