//! The verdict: which of a few plain situations the run was in, the rule that says so, and
//! the next step that fits (docs/DESIGN.md, "Verdicts").
//!
//! This module holds the thresholds and the rules in the order they are judged; what each
//! verdict says is [`say`]'s, how its sentences name code [`phrase`]'s, what it is judged on
//! [`evidence`]'s, and the `program-failed` verdict [`program`]'s.

mod evidence;
mod phrase;
mod program;
mod say;

use serde::Serialize;

use super::{CpuSupply, GilMetrics};
use crate::model::ThreadState;

pub use evidence::Evidence;
pub use program::{exit_sentence, program_ended};
use say::{Starvation, Waits};

/// GIL-bound when at least this share of ticks has a holder and a waiter…
const GIL_BOUND_CONTENDED: f64 = 0.5;
/// …and removing the GIL could give at least this speed-up.
const GIL_BOUND_CEILING: f64 = 1.5;
const PARTLY_CONTENDED: f64 = 0.1;
const PARTLY_CEILING: f64 = 1.1;
/// Native-parallel when on average this many threads run C code without the GIL.
const NATIVE_THREADS: f64 = 0.5;
/// GIL-bound "held in native code" when the holder runs one native module's code this share
/// of the time it holds the GIL.
const NATIVE_HOLD_SHARE: f64 = 0.5;
/// Single-thread CPU-bound when the GIL is held this much without contention.
const SINGLE_HELD: f64 = 0.5;
/// CPU-starved when threads waited for a CPU this share of the time they wanted to run…
const STARVED_READY: f64 = 0.2;
/// …and at least this many threads did on average…
const STARVED_THREADS: f64 = 0.1;
/// …because other processes kept this many CPUs busy…
const STARVED_OTHERS_CORES: f64 = 0.5;
/// …and the process got at least this many CPUs fewer than it wanted and the machine has…
const STARVED_SHORTFALL: f64 = 0.3;
/// …or the cgroup's quota withheld the CPUs for this share of the wall time.
const STARVED_THROTTLED: f64 = 0.05;
/// Lock-bound when threads wait for a lock held by another thread this share of the time
/// they want to run (and more than they wait for the GIL)…
const LOCK_BOUND_SHARE: f64 = 0.5;
/// …and at least this many do on average.
const LOCK_BOUND_THREADS: f64 = 0.5;
/// I/O-bound when I/O is this share of the threads' off-CPU waits…
const IO_BOUND_SHARE: f64 = 0.5;
/// …and this many threads wait on I/O on average.
const IO_BOUND_THREADS: f64 = 0.3;
/// A free-threaded run is judged as GIL-disabled unless the GIL was enabled for at least
/// this share of it (a module import can enable it for a moment).
pub const GIL_DISABLED_BELOW: f64 = 0.05;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictKind {
    GilBound,
    PartlyGilContended,
    LockBound,
    CpuStarved,
    SingleThreadCpu,
    NativeParallel,
    IoBound,
    MostlyIdle,
    GilDisabled,
    /// The launched program failed before any thread ran its own code.
    ProgramFailed,
}

impl VerdictKind {
    pub fn title(self) -> &'static str {
        match self {
            VerdictKind::GilBound => "GIL-bound",
            VerdictKind::PartlyGilContended => "partly GIL-contended",
            VerdictKind::SingleThreadCpu => "single-thread CPU-bound",
            VerdictKind::LockBound => "lock-bound",
            VerdictKind::CpuStarved => "CPU-starved",
            VerdictKind::NativeParallel => "native-parallel",
            VerdictKind::IoBound => "I/O-bound",
            VerdictKind::MostlyIdle => "mostly idle",
            VerdictKind::GilDisabled => "GIL disabled",
            VerdictKind::ProgramFailed => "program failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub kind: VerdictKind,
    /// With `cpu-starved`: the verdict on the time the threads did run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub then: Option<VerdictKind>,
    pub summary: String,
    /// The rule that gave this verdict, with the numbers it compared.
    pub rule: String,
    pub advice: Vec<String>,
}

pub fn judge(e: &Evidence) -> Verdict {
    let mut verdict = match starved(e) {
        Some(starved) => starved,
        None => judge_situation(e),
    };
    if e.held_off_cpu
        && matches!(
            verdict.kind,
            VerdictKind::GilBound | VerdictKind::PartlyGilContended
        )
    {
        // Threads wait for a GIL that nobody uses: that is the first thing to fix.
        verdict.advice.insert(
            0,
            "First release the GIL where it is held while blocked (see Findings): waiting \
             threads wait for a holder that is not even running."
                .into(),
        );
    }
    verdict
}

/// The rules after starvation, in order; the first that holds wins.
fn judge_situation(e: &Evidence) -> Verdict {
    let Some(g) = e.gil.filter(|_| e.state_samples > 0) else {
        return say::no_samples();
    };
    let without_gil = g.ran_without_gil();
    let wanting = e.wanting();
    // Waiting for a lock, or for the GIL inside its acquire, against waiting for the GIL
    // anywhere else.
    let locked = e.contended_lock_threads + e.lock_gil_threads;
    let gil_waits = (e.threads(ThreadState::Waiting) - e.lock_gil_threads).max(0.0);
    if locked >= LOCK_BOUND_THREADS && locked >= LOCK_BOUND_SHARE * wanting && locked > gil_waits {
        return say::lock_bound(e, g, wanting);
    }
    let io: f64 = e
        .io_threads
        .iter()
        .sum::<f64>()
        .max(e.threads(ThreadState::Io));
    let signal = (e.threads(ThreadState::Lock) - locked).max(0.0);
    let sleep = e.threads(ThreadState::Sleep);
    let idle = e.threads(ThreadState::Idle);
    let waits = Waits {
        io,
        signal,
        sleep,
        idle,
        total: io + signal + sleep + idle,
    };
    let io_bound_now = io >= IO_BOUND_THREADS && io >= IO_BOUND_SHARE * waits.total;
    if without_gil {
        // Without a GIL, threads that wait on the network or a lock are still not running
        // in parallel: those verdicts come first.
        if io_bound_now && io >= e.running_threads {
            return say::io_bound(e, g, &waits);
        }
        return say::gil_disabled(e, g);
    }
    if g.contended >= GIL_BOUND_CONTENDED && g.speedup_ceiling >= GIL_BOUND_CEILING {
        if let Some((module, share)) = e.native_module.filter(|m| m.1 >= NATIVE_HOLD_SHARE) {
            return say::held_in_native(e, g, module, share);
        }
        return say::gil_bound(e, g);
    }
    if g.contended >= PARTLY_CONTENDED && g.speedup_ceiling >= PARTLY_CEILING {
        return say::partly_contended(e, g);
    }
    // More threads waiting on I/O than running C code: the program waits, whatever its
    // threads do for a moment when an answer arrives.
    if e.native_threads >= NATIVE_THREADS && e.native_threads >= io {
        return say::native_parallel(e, g, io);
    }
    if g.held >= SINGLE_HELD {
        return say::single_thread(e, g);
    }
    if io_bound_now {
        return say::io_bound(e, g, &waits);
    }
    say::mostly_idle(e, g, &waits)
}

/// Threads were ready to run but got no CPU, because of other processes or the CPU quota:
/// say which, with the numbers, then judge the rest as if they had run.
fn starved(e: &Evidence) -> Option<Verdict> {
    // Waiting for a CPU in any state: ready, a GIL holder preempted, a woken waiter.
    let ready = e.queued_threads.max(e.threads(ThreadState::Ready));
    let wanting = e.wanting();
    // Starvation leads only when it is the biggest wait of threads that want to run: a lock
    // convoy or a GIL on a busy machine is still about the lock or the GIL.
    let biggest_other = e
        .contended_lock_threads
        .max(e.threads(ThreadState::Waiting));
    if e.state_samples == 0
        || ready < STARVED_THREADS
        || ready < STARVED_READY * wanting
        || ready < biggest_other
    {
        return None;
    }
    let supply = e.supply?;
    let throttled = supply.throttled_s / e.duration_s.max(1e-9);
    let why = match (supply.quota_cores, supply.others_cores) {
        (Some(quota), _) if throttled >= STARVED_THROTTLED => {
            Starvation::Quota { quota, throttled }
        }
        // Other processes starve it only when it got fewer CPUs than it wanted and the
        // machine has: 4 busy threads on 2 CPUs wait for each other, not for a neighbour.
        (_, Some(others))
            if others >= STARVED_OTHERS_CORES
                && e.cores_used.is_some_and(|used| {
                    e.wanting_cpu().min(e.cpu_count as f64) - used >= STARVED_SHORTFALL
                }) =>
        {
            Starvation::Others { others }
        }
        _ => return None,
    };
    // Judged on the time they ran: threads that only waited for a CPU do not count among
    // those that want to run (a lock convoy on a busy machine is still lock-bound).
    let mut ran = e.clone();
    ran.threads_in[ThreadState::Ready.index()] = 0.0;
    let rest = judge_situation(&ran);
    Some(say::cpu_starved(e, supply, why, ready, wanting, rest))
}

#[cfg(test)]
mod tests;
