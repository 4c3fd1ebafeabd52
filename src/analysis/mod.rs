//! Pure functions from samples to what a user reads: metrics, per-thread shares, the verdict,
//! top holders and waiters, folded stacks.
//!
//! Reads [`crate::model`] values only: no I/O, no clocks, no knowledge of the sampler.

mod accumulate;
pub mod code;
mod findings;
mod folded;
mod rates;
pub mod sites;
pub mod timeline;
mod verdict;
mod waits;

pub use accumulate::Accumulator;
pub use findings::{Finding, FindingKind};
pub use folded::{folded, FoldedLine, Paths, View};
pub use rates::{Achieved, ShortCause, Shortfall};
pub use sites::{Blamed, Via};
pub use timeline::{Lane, TimedStack, Timeline};
pub use verdict::{exit_sentence, program_ended, Verdict, VerdictKind};

use serde::Serialize;

use crate::model::{CpuQuota, IoKind, MachineCpu, StackTable, ThreadState, Tid};

/// Metrics of one GIL over a run (docs/DESIGN.md, "Metrics").
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GilMetrics {
    /// The interpreter that names this GIL: the oldest of those that use it.
    pub interpreter: i64,
    /// Every interpreter seen using it (subinterpreters may share the main GIL).
    pub interpreters: Vec<i64>,
    /// Whether the GIL was enabled at any tick (always, but in a free-threaded build).
    pub enabled: bool,
    /// A free-threaded build (3.13t+), where the GIL is disabled unless something enabled it.
    pub free_threaded: bool,
    /// Fraction of ticks the GIL was enabled at; every metric below is over those ticks.
    pub enabled_share: f64,
    /// Free-threaded builds: when the GIL was first seen enabled for good, in seconds after
    /// the first sample.
    pub enabled_at_s: Option<f64>,
    /// Fraction of ticks with the GIL held.
    pub held: f64,
    /// Mean number of threads waiting for the GIL.
    pub avg_waiters: f64,
    /// Fraction of ticks with the GIL held and at least one waiter.
    pub contended: f64,
    /// Mean number of threads holding or waiting: threads that want to run Python.
    pub demand: f64,
    /// demand / held: what removing the GIL could give at most.
    pub speedup_ceiling: f64,
    /// GIL handoffs between threads per second, counted by CPython (`switch_number`).
    pub switches_per_s: f64,
    /// GIL handoffs between threads during the run.
    pub switches: u64,
    /// The switch interval read from the GIL (`sys.getswitchinterval()`), in ms.
    pub switch_interval_ms: f64,
    /// Ticks this GIL was read at.
    #[serde(skip)]
    pub ticks: u64,
}

impl GilMetrics {
    /// A free-threaded build whose GIL was off for (nearly) the whole run: its threads ran
    /// without one, and the GIL's numbers say nothing.
    pub fn ran_without_gil(&self) -> bool {
        self.free_threaded && self.enabled_share < verdict::GIL_DISABLED_BELOW
    }
}

/// `n / d`, 0 when there is nothing to divide by.
pub(crate) fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

/// One thread over a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ThreadSummary {
    pub tid: Tid,
    pub name: Option<String>,
    pub interpreter: i64,
    /// CPU seconds the thread used during the run.
    pub cpu_s: f64,
    /// Share of the ticks it was seen in each state, indexed like [`ThreadState::ALL`].
    #[serde(skip)]
    pub shares: [f64; ThreadState::COUNT],
    /// The time it was seen on a CPU (in any state: holding, native, running, or inside
    /// the GIL's handoff), in seconds, over the same window as `cpu_s`: what the samples say
    /// of the CPU time the kernel charged it.
    pub on_cpu_s: f64,
    /// Share of its ticks on a CPU.
    #[serde(skip)]
    pub on_cpu_share: f64,
    /// Share of its ticks runnable but waiting for a CPU, whatever its state (`ready`, a
    /// holder preempted, a woken waiter not run yet).
    #[serde(skip)]
    pub queued_share: f64,
    /// Share of its ticks in state `io`, by what it waited on, indexed like [`IoKind::ALL`].
    #[serde(skip)]
    pub io: [f64; IoKind::ALL.len()],
    /// Share of its ticks waiting for a lock held by another thread (the part of `lock`
    /// that its stacks show is not a wait for a signal: an event, a queue, a join).
    #[serde(skip)]
    pub contended_lock: f64,
    /// Share of its ticks holding the GIL on a CPU in a native module's code (part of
    /// `holding`), where the kernel's instruction-pointer samples tell.
    #[serde(skip)]
    pub holding_native: f64,
    /// Share of its ticks waiting for the GIL inside a lock's acquire (at a line where
    /// threads wait for a held lock): part of `waiting`, but the lock's cost, not the GIL's.
    #[serde(skip)]
    pub lock_gil_wait: f64,
    /// Ticks it was seen at.
    #[serde(skip)]
    pub ticks: u64,
    /// Ticks it held the GIL while off CPU.
    #[serde(skip)]
    pub held_off_cpu: u64,
    /// Ticks it held the GIL while off CPU and another thread waited for it.
    #[serde(skip)]
    pub stalling: u64,
}

impl ThreadSummary {
    pub fn share(&self, state: ThreadState) -> f64 {
        self.shares[state.index()]
    }

    /// The name to show: the Python thread name, else the tid.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!("thread {}", self.tid),
        }
    }
}

/// A switch interval as a user reads it: `5 ms`, `0.5 ms`… and in µs below 1 ms (`1 µs`).
pub fn interval_text(ms: f64) -> String {
    if ms >= 1.0 {
        format!("{} ms", trim(ms))
    } else {
        format!("{} µs", trim(ms * 1000.0))
    }
}

/// A number with at most three decimals and no trailing zeros.
fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// What the CPUs gave the process during the run: how busy the machine was, and what its
/// cgroup's CPU quota allowed and withheld.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CpuSupply {
    /// CPUs' worth of time the whole machine was busy, on average.
    pub machine_busy_cores: Option<f64>,
    /// Of that, what other processes used (busy minus this process).
    pub others_cores: Option<f64>,
    /// The CPU quota of the process's cgroup, if it has one.
    pub quota_cores: Option<f64>,
    /// Quota periods in which the cgroup was throttled during the run.
    pub throttled_periods: u64,
    /// Time the cgroup's threads were kept off the CPUs by the quota during the run.
    pub throttled_s: f64,
}

impl CpuSupply {
    /// From the first and last readings of the machine and the quota in a run.
    pub fn between(
        machine: Option<(MachineCpu, MachineCpu)>,
        quota: Option<(CpuQuota, CpuQuota)>,
        cores_used: Option<f64>,
        cpu_count: usize,
    ) -> Option<CpuSupply> {
        let machine_busy_cores = machine.and_then(|(a, b)| {
            let total = b.total_s - a.total_s;
            (total > 0.0).then(|| (b.busy_s - a.busy_s).max(0.0) / total * cpu_count as f64)
        });
        if machine_busy_cores.is_none() && quota.is_none() {
            return None;
        }
        Some(CpuSupply {
            machine_busy_cores,
            others_cores: machine_busy_cores
                .zip(cores_used)
                .map(|(busy, own)| (busy - own).max(0.0)),
            quota_cores: quota.map(|(_, b)| b.cores),
            throttled_periods: quota
                .map_or(0, |(a, b)| b.nr_throttled.saturating_sub(a.nr_throttled)),
            throttled_s: quota.map_or(0.0, |(a, b)| (b.throttled_s - a.throttled_s).max(0.0)),
        })
    }
}

/// A function on the stacks of a list (holders, waiters, blame…), with its shares of the
/// list's weight and the stack samples behind them (docs/DESIGN.md, "Sites").
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Site {
    pub function: String,
    /// The full path, as CPython has it.
    pub file: String,
    /// The file as reports show it ([`code::display_path`]): relative to the program's
    /// working directory for the user's files, `package/module.py` for libraries.
    pub path_shown: String,
    /// Whose code it is: `user`, `package` or `stdlib`.
    #[serde(serialize_with = "origin_key")]
    pub origin: code::Origin,
    /// Its hottest line: the line of its frame on the most weight.
    pub line: u32,
    /// Self share: of the list's weight, where it is the innermost frame.
    pub share: f64,
    /// Inclusive share: of the list's weight, where it is anywhere on the stack (once per
    /// stack, however deep the recursion). At least `share`.
    pub inclusive_share: f64,
    /// Stack samples where it is the innermost frame.
    pub self_samples: u64,
    /// Stack samples where it is on the stack.
    pub inclusive_samples: u64,
    /// Stack samples behind the whole list: below [`sites::MIN_SAMPLES`], too few to rank.
    pub list_samples: u64,
}

impl Site {
    /// The list it is in rests on too few samples to rank.
    pub fn too_few(&self) -> bool {
        self.list_samples < sites::MIN_SAMPLES
    }
}

#[cfg(test)]
impl Site {
    /// A site of `function` in `file`, innermost and on the stack alike `share` of 1000
    /// samples.
    pub fn example(function: &str, file: &str, line: u32, share: f64) -> Site {
        Site {
            function: function.into(),
            file: file.into(),
            path_shown: code::display_path(file, None).into(),
            origin: code::origin(file),
            line,
            share,
            inclusive_share: share,
            self_samples: (share * 1000.0) as u64,
            inclusive_samples: (share * 1000.0) as u64,
            list_samples: 1000,
        }
    }
}

fn origin_key<S: serde::Serializer>(o: &code::Origin, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match o {
        code::Origin::User => "user",
        code::Origin::Package => "package",
        code::Origin::Stdlib => "stdlib",
    })
}

/// Sample counts over a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunCounts {
    /// From the first to the last GIL-state sample.
    pub duration_s: f64,
    /// When the first GIL-state sample was taken, in seconds from the run's time zero.
    #[serde(skip)]
    pub first_sample_s: f64,
    pub state_samples: u64,
    pub stack_samples: u64,
    pub failed_samples: u64,
    pub failed_state_samples: u64,
    pub failed_stack_samples: u64,
    pub late_ticks: u64,
}

/// A descendant process profiled beside the target.
pub struct Subprocess {
    pub info: crate::model::TargetInfo,
    pub profile: Profile,
}

/// Everything a report shows about one process.
#[derive(Debug)]
pub struct Profile {
    pub run: RunCounts,
    /// Cores used: CPU seconds of the whole process per wall second.
    pub cores_used: Option<f64>,
    pub cpu_count: usize,
    pub gils: Vec<GilMetrics>,
    pub threads: Vec<ThreadSummary>,
    pub verdict: Verdict,
    /// The code the verdict names, when it names any.
    pub blamed: Option<Blamed>,
    pub top_holders: Vec<Site>,
    pub top_waiters: Vec<Site>,
    /// Where threads ran without a GIL (free-threaded builds with the GIL disabled).
    pub top_running: Vec<Site>,
    /// Holder sites weighted by the number of waiters: the code that makes others wait.
    pub top_blame: Vec<Site>,
    /// Where threads waited for a lock held by another thread.
    pub top_lock_waits: Vec<Site>,
    /// What the GIL's holder ran while threads waited for a lock, weighted by how many.
    pub top_lock_holders: Vec<Site>,
    /// Native modules the GIL's holder ran while holding it, each with its share of the
    /// holding ticks whose instruction pointer was known, most first.
    pub native_modules: Vec<(String, f64)>,
    /// Where the Python code calls into native code that keeps the GIL (innermost Python
    /// frames of holder stacks seen in native code, weighted by waiters).
    pub top_native_callers: Vec<Site>,
    /// What the machine and the CPU quota gave the process.
    pub supply: Option<CpuSupply>,
    pub findings: Vec<Finding>,
    /// Holder stacks weighted by the number of waiters at their tick.
    pub blame: Vec<(crate::model::StackId, u64)>,
    /// Every stack sample: (thread, state, stack) and how many times it was seen.
    pub stack_counts: Vec<((Tid, ThreadState, crate::model::StackId), u64)>,
    pub stacks: StackTable,
    /// The run over time, per thread.
    pub timeline: Timeline,
    /// How the launched program ended (`record` only; set by [`program_ended`]).
    pub exit: Option<crate::model::ProgramExit>,
    /// Each exec of the target during the run, in order.
    pub execs: Vec<crate::model::Exec>,
}

impl Profile {
    /// The main GIL (interpreter 0's, or the first one read).
    pub fn main_gil(&self) -> Option<&GilMetrics> {
        main_gil(&self.gils)
    }
}

/// The main GIL of `gils`: interpreter 0's, or the lowest interpreter read.
pub(crate) fn main_gil(gils: &[GilMetrics]) -> Option<&GilMetrics> {
    gils.iter().min_by_key(|g| g.interpreter)
}
