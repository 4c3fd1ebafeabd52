//! What each verdict says: its summary, the rule with the numbers it compared, and the advice
//! that fits. The rules that pick the verdict are in [`super`]; this is their wording.

use super::evidence::Evidence;
use super::phrase::{at, gil_not_the_limit, holder_clause, named, pct};
use super::*;
use crate::model::{IoKind, ThreadState};

/// The waits of threads that do not want to run, in mean threads: what `io-bound` and
/// `mostly-idle` compare.
pub(super) struct Waits {
    /// On I/O: the more of the `io` threads and their sum by kind.
    pub io: f64,
    /// Waiting for a signal (an event, a queue, a join): the rest of `lock`.
    pub signal: f64,
    pub sleep: f64,
    pub idle: f64,
    /// All of them.
    pub total: f64,
}

/// No sample to judge.
pub(super) fn no_samples() -> Verdict {
    Verdict {
        then: None,
        kind: VerdictKind::MostlyIdle,
        summary: "No GIL samples were taken: the run was too short or no Python thread ran.".into(),
        rule: "no samples".into(),
        advice: vec!["Profile for longer (--duration) while the program does its work.".into()],
    }
}

/// `the hot loop`, or the function the verdict names: `compute()`.
fn hot(e: &Evidence) -> String {
    e.top_holder.map_or("the hot loop".to_string(), |b| {
        format!("{}()", b.site.function)
    })
}

/// What removing the GIL could give: `removing the GIL could give up to 3.9× (2.0× on this
/// machine's 2 CPUs)`.
fn ceiling(e: &Evidence, g: &GilMetrics) -> String {
    let capped = g.speedup_ceiling.min(e.cpu_count as f64);
    format!(
        "removing the GIL could give up to {:.1}× ({:.1}× on this machine's {} CPUs)",
        g.speedup_ceiling, capped, e.cpu_count
    )
}

/// The numbers the GIL rules compare.
fn numbers(e: &Evidence, g: &GilMetrics) -> String {
    format!(
        "contended {}, speed-up ceiling {:.2}, held {}, native threads {:.1}",
        pct(g.contended),
        g.speedup_ceiling,
        pct(g.held),
        e.native_threads
    )
}

/// Threads wait for the GIL most of the time and removing it would give much.
pub(super) fn gil_bound(e: &Evidence, g: &GilMetrics) -> Verdict {
    let (holder, hot, ceiling, numbers) = (holder_clause(e), hot(e), ceiling(e, g), numbers(e, g));
    Verdict {
        then: None,
        kind: VerdictKind::GilBound,
        summary: format!(
            "GIL-bound: {:.1} threads want the GIL, one runs{holder}; {ceiling}.",
            g.demand
        ),
        rule: format!(
            "contended ≥ {} and ceiling ≥ {GIL_BOUND_CEILING} ({numbers})",
            pct(GIL_BOUND_CONTENDED)
        ),
        advice: vec![
            "Run the CPU-bound work in processes (multiprocessing, ProcessPoolExecutor) \
             instead of threads."
                .into(),
            format!(
                "Move {hot} into code that releases the GIL (NumPy, a C or Rust \
                 extension, Cython `with nogil`)."
            ),
            "Or try a free-threaded CPython (3.13t and later), where threads run Python \
             in parallel."
                .into(),
        ],
    }
}

/// Threads wait for the GIL some of the time.
pub(super) fn partly_contended(e: &Evidence, g: &GilMetrics) -> Verdict {
    let (holder, hot, ceiling, numbers) = (holder_clause(e), hot(e), ceiling(e, g), numbers(e, g));
    Verdict {
        then: None,
        kind: VerdictKind::PartlyGilContended,
        summary: format!(
            "Partly GIL-contended: threads wait for the GIL {} of the time \
             ({:.2} waiting on average){holder}; {ceiling}.",
            pct(g.contended),
            g.avg_waiters
        ),
        rule: format!(
            "contended ≥ {} and ceiling ≥ {PARTLY_CEILING}, below GIL-bound ({numbers})",
            pct(PARTLY_CONTENDED)
        ),
        advice: vec![
            format!(
                "Waiting threads are delayed by {hot}: give them a process of their \
                 own, or move {hot} to code that releases the GIL."
            ),
            "If the waiting threads serve I/O, keep the CPU-heavy work off their \
             process (ProcessPoolExecutor) so they answer sooner."
                .into(),
            "Larger work units per GIL acquisition cut switching; \
             sys.setswitchinterval() trades latency for throughput."
                .into(),
        ],
    }
}

/// Threads run C code in parallel with the GIL released.
pub(super) fn native_parallel(e: &Evidence, g: &GilMetrics, io: f64) -> Verdict {
    let numbers = numbers(e, g);
    let cores = e.cores_used.map_or(String::new(), |c| {
        format!(" (the process used {c:.1} of {} CPUs)", e.cpu_count)
    });
    let ready = e.threads(ThreadState::Ready);
    let advice = if ready >= STARVED_THREADS {
        format!(
            "The CPUs are the limit, not the GIL: on average {ready:.1} threads were \
             ready to run with no CPU free. More threads will not help; fewer, or more \
             CPUs, will."
        )
    } else {
        format!(
            "More threads help up to the CPU count ({}); beyond it, the CPUs are the \
             limit, not the GIL.",
            e.cpu_count
        )
    };
    Verdict {
        then: None,
        kind: VerdictKind::NativeParallel,
        summary: format!(
            "Native-parallel: on average {:.1} threads run C code on a CPU with the GIL \
             released{cores} and the GIL is held {}; the GIL is not the limit.",
            e.native_threads,
            pct(g.held)
        ),
        rule: format!(
            "not contended, native threads ≥ {NATIVE_THREADS} and ≥ threads on I/O \
             ({numbers}, I/O threads {io:.1})"
        ),
        advice: vec![advice],
    }
}

/// One thread (per interpreter) runs Python and almost nobody waits.
pub(super) fn single_thread(e: &Evidence, g: &GilMetrics) -> Verdict {
    let (holder, hot, numbers) = (holder_clause(e), hot(e), numbers(e, g));
    let summary = if e.busy_gils > 1 {
        format!(
            "Single-thread CPU-bound per interpreter: {} GILs, each an interpreter's own, \
             are held at least half the time and almost nobody waits for them: the \
             interpreters run Python in parallel{holder}.",
            e.busy_gils
        )
    } else {
        format!(
            "Single-thread CPU-bound: the GIL is held {} of the time and almost nobody \
             waits for it{holder}.",
            pct(g.held)
        )
    };
    Verdict {
        then: None,
        kind: VerdictKind::SingleThreadCpu,
        summary,
        rule: format!("not contended, held ≥ {} ({numbers})", pct(SINGLE_HELD)),
        advice: match &e.event_loop {
            _ if e.busy_gils > 1 => vec![format!(
                "Each busy interpreter runs on a GIL of its own: more interpreters (an \
                 InterpreterPoolExecutor of more workers) help up to the CPU count ({}).",
                e.cpu_count
            )],
            Some(thread) => vec![
                format!(
                    "{thread} runs an asyncio event loop: while {hot} computes, every \
                     other coroutine waits, with or without a GIL."
                ),
                format!(
                    "Move {hot} off the loop: await loop.run_in_executor() with a \
                     ProcessPoolExecutor, or asyncio.to_thread() if it releases the GIL."
                ),
            ],
            None => vec![format!(
                "One thread does the Python work: more threads will not speed it up. \
                 Make {hot} faster, or split the work across processes."
            )],
        },
    }
}

/// Threads mostly wait, and not on I/O: the split of their waits.
pub(super) fn mostly_idle(e: &Evidence, g: &GilMetrics, w: &Waits) -> Verdict {
    let numbers = numbers(e, g);
    let (waits, sleep, signal_waits, io, idle) = (w.total, w.sleep, w.signal, w.io, w.idle);
    let part = |n: f64| pct(if waits > 0.0 { n / waits } else { 0.0 });
    Verdict {
        then: None,
        kind: VerdictKind::MostlyIdle,
        summary: format!(
            "Mostly idle: the GIL is held {} of the time and threads mostly wait: sleeping \
             {}, waiting for a signal (an event, a queue, a join) {}, on I/O {}, otherwise \
             idle {} of their waits.",
            pct(g.held),
            part(sleep),
            part(signal_waits),
            part(io),
            part(idle)
        ),
        rule: format!(
            "held < {}, little native work, I/O below {} of the waits ({numbers})",
            pct(SINGLE_HELD),
            pct(IO_BOUND_SHARE)
        ),
        advice: vec![
            "The GIL is not the bottleneck: look at what the threads wait for (the [sleeping], \
             [waiting on a lock] and [idle] stacks in the flame graph)."
                .into(),
        ],
    }
}

/// GIL-bound, and the holder spends most of its time in one native module's code: that
/// module keeps the GIL while it computes, so moving code into C is no advice.
pub(super) fn held_in_native(e: &Evidence, g: &GilMetrics, module: &str, share: f64) -> Verdict {
    let (ceiling, numbers) = (ceiling(e, g), numbers(e, g));
    let from = e
        .native_caller
        .map_or(String::new(), |s| format!(", called from {}", at(s)));
    Verdict {
        then: None,
        kind: VerdictKind::GilBound,
        summary: format!(
            "GIL-bound, held in native code: {:.1} threads want the GIL, one runs, and the \
             holder runs {module}'s native code {} of the time it holds it{from}; {module} \
             keeps the GIL while it computes; {ceiling}.",
            g.demand,
            pct(share)
        ),
        rule: format!(
            "contended ≥ {} and ceiling ≥ {GIL_BOUND_CEILING}, and the holder in one native \
             module ≥ {} of the held time ({numbers}, {module} {})",
            pct(GIL_BOUND_CONTENDED),
            pct(NATIVE_HOLD_SHARE),
            pct(share)
        ),
        advice: vec![
            format!(
                "{module} does not release the GIL while it runs: look for its own option to \
                 release it (a `nogil`/`release_gil` flag, a batch API that works on many \
                 items per call), or ask its authors for one."
            ),
            "Run the calls in processes (multiprocessing, ProcessPoolExecutor): each process \
             has a GIL of its own."
                .into(),
            format!("Or try a free-threaded CPython (3.13t and later) if {module} supports it."),
        ],
    }
}

/// Threads mostly wait for a lock another thread holds: the lock, not the GIL, serialises
/// the work.
pub(super) fn lock_bound(e: &Evidence, g: &GilMetrics, wanting: f64) -> Verdict {
    let locked = e.contended_lock_threads + e.lock_gil_threads;
    let inside = if e.lock_gil_threads >= 0.1 {
        format!(
            " ({:.1} of them waiting for the GIL inside the lock's acquire)",
            e.lock_gil_threads
        )
    } else {
        String::new()
    };
    let wait_at = e.top_lock_wait.map_or(String::new(), |s| {
        format!(" at {}() in {}:{}", s.function, s.path_shown, s.line)
    });
    let meanwhile = e.top_lock_holder.map_or(String::new(), |b| {
        format!("; meanwhile the GIL's holder runs {}", named(b))
    });
    Verdict {
        then: None,
        kind: VerdictKind::LockBound,
        summary: format!(
            "Lock-bound: on average {locked:.1} threads wait for a lock another thread \
             holds{wait_at}{inside}, {} of the time threads want to run{meanwhile}; the lock \
             serialises the work, {}.",
            pct(locked / wanting.max(1e-9)),
            gil_not_the_limit(g),
        ),
        rule: format!(
            "threads waiting for a held lock (or for the GIL inside its acquire) ≥ {} of \
             threads wanting to run, ≥ {LOCK_BOUND_THREADS}, and more than wait for the GIL \
             elsewhere (lock {locked:.2}, wanting {wanting:.2}, other GIL waiters {:.2})",
            pct(LOCK_BOUND_SHARE),
            (e.threads(ThreadState::Waiting) - e.lock_gil_threads).max(0.0)
        ),
        advice: vec![
            "Shrink the critical section: prepare the work outside `with lock:` and hold the \
             lock only to read or publish the shared state."
                .into(),
            "Or take the lock less: shard it (one lock per key or bucket), batch updates, or \
             hand the work to one owner thread through a queue.Queue."
                .into(),
            "Processes, C extensions and a free-threaded build do not help while one lock \
             serialises the work."
                .into(),
        ],
    }
}

/// Threads mostly wait on I/O: say on what.
pub(super) fn io_bound(e: &Evidence, g: &GilMetrics, w: &Waits) -> Verdict {
    let (io, waits) = (w.io, w.total);
    let mut kinds: Vec<(IoKind, f64)> = IoKind::ALL
        .into_iter()
        .zip(e.io_threads)
        .filter(|(_, n)| *n >= 0.005 * io)
        .collect();
    kinds.sort_by(|a, b| b.1.total_cmp(&a.1));
    let on = if kinds.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = kinds
            .iter()
            .map(|(k, n)| format!("{} {}", k.description(), pct(n / io)))
            .collect();
        format!(" ({})", parts.join(", "))
    };
    let first = kinds.first().map(|k| k.0);
    let mut advice = vec![match first {
        Some(IoKind::File) => "The threads wait for files: larger reads and writes, fewer \
             fsyncs, or faster storage help; the GIL is not the bottleneck."
            .to_string(),
        Some(IoKind::Pipe) => "The threads wait on pipes: the time goes to the process at \
             the other end; profile that one."
            .to_string(),
        _ => "The threads wait for the network: more concurrency (more threads, or asyncio) \
              helps while the other end keeps up; make fewer, larger requests, or reuse \
              connections. The GIL is not the bottleneck."
            .to_string(),
    }];
    if e.threads(ThreadState::Ready) >= STARVED_THREADS {
        advice.push(format!(
            "Threads woken by their I/O waited for a CPU {:.1} threads' worth of the time: \
             answers would come sooner on a less busy machine.",
            e.threads(ThreadState::Ready)
        ));
    }
    Verdict {
        then: None,
        kind: VerdictKind::IoBound,
        summary: format!(
            "I/O-bound: on average {io:.1} threads wait on I/O{on}, {} of the time threads \
             wait; {}.",
            pct(io / waits.max(1e-9)),
            if g.ran_without_gil() {
                "no GIL limits them (free-threaded CPython)".to_string()
            } else {
                format!(
                    "the GIL is held {} of the time and is not the limit",
                    pct(g.held)
                )
            }
        ),
        rule: format!(
            "held < {}, little native work, I/O ≥ {} of the waits and ≥ {IO_BOUND_THREADS} \
             threads (I/O {io:.2}, waits {waits:.2})",
            pct(SINGLE_HELD),
            pct(IO_BOUND_SHARE)
        ),
        advice,
    }
}

/// A free-threaded build whose GIL stayed disabled: threads run Python in parallel, and the
/// question is how many did and where.
pub(super) fn gil_disabled(e: &Evidence, g: &GilMetrics) -> Verdict {
    let hot = e.top_holder.map_or(String::new(), |b| {
        format!(
            "; the hottest code is {} ({} of running samples)",
            named(b),
            pct(b.site.inclusive_share)
        )
    });
    let cores = e.cores_used.map_or(String::new(), |c| {
        format!(" using {c:.2} of {} cores", e.cpu_count)
    });
    Verdict {
        then: None,
        kind: VerdictKind::GilDisabled,
        summary: format!(
            "GIL disabled (free-threaded CPython): on average {:.1} threads ran Python at \
             once{cores}{hot}.",
            e.running_threads
        ),
        rule: format!(
            "free-threaded build and the GIL enabled < {} of the run (enabled {}, running \
             threads {:.1})",
            pct(GIL_DISABLED_BELOW),
            pct(g.enabled_share),
            e.running_threads
        ),
        advice: vec![
            format!(
                "Threads already run in parallel: more help up to the CPU count ({}).",
                e.cpu_count
            ),
            "If the run is slower than expected, the cost is elsewhere than a GIL: locks and \
             shared objects the threads contend on (the [running, no GIL] stacks show where \
             they spend their time)."
                .into(),
        ],
    }
}

/// What took the CPUs away from a starved process.
pub(super) enum Starvation {
    /// The cgroup's CPU quota (its CPUs) throttled it this share of the run.
    Quota { quota: f64, throttled: f64 },
    /// Other processes kept this many CPUs busy.
    Others { others: f64 },
}

/// Threads were ready to run but got no CPU: say why, with the numbers, then what `rest`,
/// the verdict on the time they ran, says.
pub(super) fn cpu_starved(
    e: &Evidence,
    supply: &CpuSupply,
    why: Starvation,
    ready: f64,
    wanting: f64,
    rest: Verdict,
) -> Verdict {
    let quota = matches!(why, Starvation::Quota { .. });
    let cause = match why {
        Starvation::Quota { quota, throttled } => format!(
            "the CPU quota of its cgroup ({quota:.2} CPUs) throttled it in {} periods, for \
             {:.1} s ({} of the run)",
            supply.throttled_periods,
            supply.throttled_s,
            pct(throttled)
        ),
        Starvation::Others { others } => format!(
            "other processes kept {others:.1} of this machine's {} CPUs busy ({} busy in \
             all)",
            e.cpu_count,
            pct(supply.machine_busy_cores.unwrap_or(0.0) / e.cpu_count.max(1) as f64)
        ),
    };
    let mut advice = vec![if quota {
        "Raise the CPU limit (docker --cpus, Kubernetes resources.limits.cpu), or run fewer \
         threads or processes than the quota's CPUs."
            .to_string()
    } else {
        "Give the program CPUs of its own: move the other load elsewhere, or lower its \
         priority (nice), before reading the GIL numbers below."
            .to_string()
    }];
    advice.extend(rest.advice);
    Verdict {
        then: Some(rest.kind),
        kind: VerdictKind::CpuStarved,
        summary: format!(
            "CPU-starved: on average {ready:.1} threads were ready to run but had no CPU, {} \
             of the time threads wanted to run: {cause}. Judged on the time they ran: {}",
            pct(ready / wanting.max(1e-9)),
            rest.summary
        ),
        rule: format!(
            "ready ≥ {} of threads wanting to run, ≥ {STARVED_THREADS} threads and more than \
             wait for a lock or the GIL, with the quota throttling ≥ {} of the run or other \
             processes using ≥ {STARVED_OTHERS_CORES} CPUs (ready {ready:.2}, wanting \
             {wanting:.2}); then {}",
            pct(STARVED_READY),
            pct(STARVED_THROTTLED),
            rest.rule
        ),
        advice,
    }
}
