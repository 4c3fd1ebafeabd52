//! The verdict: which of a few plain situations the run was in, the rule that says so, and
//! the next step that fits (docs/DESIGN.md, "Verdicts").

use serde::Serialize;

use super::sites::MIN_SAMPLES;
use super::{code, Blamed, CpuSupply, GilMetrics, Profile, Site};
use crate::model::{IoKind, ProgramExit, ThreadState};

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

/// What the verdict is judged on.
#[derive(Clone)]
pub struct Evidence<'a> {
    /// The GIL judged: the one most threads want (the main one but with subinterpreters).
    pub gil: Option<&'a GilMetrics>,
    /// GILs held at least half the time (more than one only with subinterpreters).
    pub busy_gils: usize,
    /// Mean number of threads running C code with the GIL released.
    pub native_threads: f64,
    pub cpu_count: usize,
    /// The code to name: the user's function that makes others wait most (or holds the
    /// GIL most, or runs most without one), with its inclusive share of that list.
    pub top_holder: Option<&'a Blamed>,
    pub state_samples: u64,
    /// Stack samples in the run: below [`MIN_SAMPLES`], too few to name code.
    pub stack_samples: u64,
    /// The GIL was held by threads blocked off CPU (a finding of its own).
    pub held_off_cpu: bool,
    /// Mean number of threads running without a GIL (free-threaded builds).
    pub running_threads: f64,
    /// CPU seconds of the whole process per wall second.
    pub cores_used: Option<f64>,
    /// The thread that runs an asyncio event loop, if one was seen.
    pub event_loop: Option<String>,
    /// Mean number of threads in each state, indexed like [`ThreadState::ALL`].
    pub threads_in: [f64; ThreadState::COUNT],
    /// Mean number of threads waiting for a lock held by another thread (part of `lock`).
    pub contended_lock_threads: f64,
    /// Mean number of threads waiting for the GIL inside a lock's acquire (part of
    /// `waiting`): a convoy's threads take the GIL back where they take the lock.
    pub lock_gil_threads: f64,
    /// Mean number of threads runnable but waiting for a CPU, whatever their state.
    pub queued_threads: f64,
    /// Mean number of threads waiting on I/O, by kind, indexed like [`IoKind::ALL`].
    pub io_threads: [f64; IoKind::ALL.len()],
    /// What the machine and the CPU quota gave the process.
    pub supply: Option<&'a CpuSupply>,
    /// Where threads wait for a lock most, and what the GIL's holder runs meanwhile.
    pub top_lock_wait: Option<&'a Site>,
    pub top_lock_holder: Option<&'a Blamed>,
    /// From the first to the last sample.
    pub duration_s: f64,
    /// The native module the GIL's holder ran most while holding it, with its share of
    /// the ticks the GIL was held.
    pub native_module: Option<(&'a str, f64)>,
    /// Where the Python code calls it.
    pub native_caller: Option<&'a Site>,
}

impl Evidence<'_> {
    fn threads(&self, state: ThreadState) -> f64 {
        self.threads_in[state.index()]
    }

    /// Mean number of threads that want to run: holding, waiting for or handing off the
    /// GIL, running, waiting for a CPU, or waiting for a lock another thread holds.
    fn wanting(&self) -> f64 {
        ThreadState::ALL
            .into_iter()
            .filter(|s| s.wants_to_run())
            .map(|s| self.threads(s))
            .sum::<f64>()
            + self.contended_lock_threads
    }
}

/// `compute() at app.py:22`: a function at its hottest line, its file as reports show it
/// (the JSON keeps the whole path).
fn at(s: &Site) -> String {
    format!("{}() at {}:{}", s.function, s.path_shown, s.line)
}

/// `report() at app.py:12, via jinja2's render()`: the named code and the library call it
/// goes through on its hottest path.
fn named(b: &Blamed) -> String {
    match &b.via {
        Some(via) => format!("{}, via {}'s {}()", at(&b.site), via.package, via.function),
        None => at(&b.site),
    }
}

/// [`named`] as the subject of a clause: with a comma after the `via` part.
fn subject(b: &Blamed) -> String {
    match b.via {
        Some(_) => format!("{},", named(b)),
        None => named(b),
    }
}

/// `; report() at app.py:12, via jinja2's render(), holds it 87% of the time others wait
/// for it`: the holder clause of the GIL verdicts, its share the one in the table of that
/// list (blame when anyone waited, else holders); or why no code is named.
fn holder_clause(e: &Evidence) -> String {
    match e.top_holder {
        Some(b) => {
            let of = if b.list == "blame" {
                "of the time others wait for it"
            } else {
                "of the time it is held"
            };
            format!(
                "; {} holds it {} {of}",
                subject(b),
                pct(b.site.inclusive_share)
            )
        }
        None if e.stack_samples < MIN_SAMPLES => format!(
            "; {} stack samples: too few to name the code",
            e.stack_samples
        ),
        None => String::new(),
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
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

fn judge_situation(e: &Evidence) -> Verdict {
    let Some(g) = e.gil.filter(|_| e.state_samples > 0) else {
        return Verdict {
            then: None,
            kind: VerdictKind::MostlyIdle,
            summary: "No GIL samples were taken: the run was too short or no Python thread ran."
                .into(),
            rule: "no samples".into(),
            advice: vec!["Profile for longer (--duration) while the program does its work.".into()],
        };
    };
    let without_gil = g.free_threaded && g.enabled_share < GIL_DISABLED_BELOW;
    let holder = holder_clause(e);
    let hot = e.top_holder.map_or("the hot loop".to_string(), |b| {
        format!("{}()", b.site.function)
    });
    let capped = g.speedup_ceiling.min(e.cpu_count as f64);
    let ceiling = format!(
        "removing the GIL could give up to {:.1}× ({:.1}× on this machine's {} CPUs)",
        g.speedup_ceiling, capped, e.cpu_count
    );
    let numbers = format!(
        "contended {}, speed-up ceiling {:.2}, held {}, native threads {:.1}",
        pct(g.contended),
        g.speedup_ceiling,
        pct(g.held),
        e.native_threads
    );

    let wanting = e.wanting();
    // Waiting for a lock, or for the GIL inside its acquire, against waiting for the GIL
    // anywhere else.
    let locked = e.contended_lock_threads + e.lock_gil_threads;
    let gil_waits = (e.threads(ThreadState::Waiting) - e.lock_gil_threads).max(0.0);
    if locked >= LOCK_BOUND_THREADS && locked >= LOCK_BOUND_SHARE * wanting && locked > gil_waits {
        return lock_bound(e, g, wanting);
    }
    let io: f64 = e
        .io_threads
        .iter()
        .sum::<f64>()
        .max(e.threads(ThreadState::Io));
    let signal_waits = (e.threads(ThreadState::Lock) - locked).max(0.0);
    let sleep = e.threads(ThreadState::Sleep);
    let idle = e.threads(ThreadState::Idle);
    let waits = io + signal_waits + sleep + idle;
    let io_bound_now = io >= IO_BOUND_THREADS && io >= IO_BOUND_SHARE * waits;
    if without_gil {
        // Without a GIL, threads that wait on the network or a lock are still not running
        // in parallel: those verdicts come first.
        if io_bound_now && io >= e.running_threads {
            return io_bound(e, g, io, waits);
        }
        return gil_disabled(e, g);
    }
    if g.contended >= GIL_BOUND_CONTENDED && g.speedup_ceiling >= GIL_BOUND_CEILING {
        if let Some((module, share)) = e.native_module.filter(|m| m.1 >= NATIVE_HOLD_SHARE) {
            return held_in_native(e, g, module, share, &ceiling, &numbers);
        }
        return Verdict {
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
        };
    }
    if g.contended >= PARTLY_CONTENDED && g.speedup_ceiling >= PARTLY_CEILING {
        return Verdict {
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
        };
    }
    // More threads waiting on I/O than running C code: the program waits, whatever its
    // threads do for a moment when an answer arrives.
    if e.native_threads >= NATIVE_THREADS && e.native_threads >= io {
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
        return Verdict {
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
        };
    }
    if g.held >= SINGLE_HELD {
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
        return Verdict {
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
        };
    }
    if io_bound_now {
        return io_bound(e, g, io, waits);
    }
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
fn held_in_native(
    e: &Evidence,
    g: &GilMetrics,
    module: &str,
    share: f64,
    ceiling: &str,
    numbers: &str,
) -> Verdict {
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
fn lock_bound(e: &Evidence, g: &GilMetrics, wanting: f64) -> Verdict {
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

/// "not the GIL (held 12%)", or on a free-threaded build without its GIL "no GIL".
fn gil_not_the_limit(g: &GilMetrics) -> String {
    if g.free_threaded && g.enabled_share < GIL_DISABLED_BELOW {
        "not a GIL (a free-threaded CPython, its GIL disabled)".into()
    } else {
        format!("not the GIL (held {})", pct(g.held))
    }
}

/// Threads mostly wait on I/O: say on what.
fn io_bound(e: &Evidence, g: &GilMetrics, io: f64, waits: f64) -> Verdict {
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
            if g.free_threaded && g.enabled_share < GIL_DISABLED_BELOW {
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

/// Mean number of threads that want a CPU: on one (holding on a CPU is in `native` only
/// when the GIL is released, so the holder counts as one), or waiting for one.
fn wanting_cpu(e: &Evidence) -> f64 {
    e.threads(ThreadState::Holding).min(1.0)
        + e.threads(ThreadState::Native)
        + e.threads(ThreadState::Running)
        + e.queued_threads.max(e.threads(ThreadState::Ready))
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
    let cause = match (supply.quota_cores, supply.others_cores) {
        (Some(quota), _) if throttled >= STARVED_THROTTLED => format!(
            "the CPU quota of its cgroup ({quota:.2} CPUs) throttled it in {} periods, for \
             {:.1} s ({} of the run)",
            supply.throttled_periods,
            supply.throttled_s,
            pct(throttled)
        ),
        // Other processes starve it only when it got fewer CPUs than it wanted and the
        // machine has: 4 busy threads on 2 CPUs wait for each other, not for a neighbour.
        (_, Some(others))
            if others >= STARVED_OTHERS_CORES
                && e.cores_used.is_some_and(|used| {
                    wanting_cpu(e).min(e.cpu_count as f64) - used >= STARVED_SHORTFALL
                }) =>
        {
            format!(
                "other processes kept {others:.1} of this machine's {} CPUs busy ({} busy in \
                 all)",
                e.cpu_count,
                pct(supply.machine_busy_cores.unwrap_or(0.0) / e.cpu_count.max(1) as f64)
            )
        }
        _ => return None,
    };
    let quota = supply.quota_cores.is_some() && throttled >= STARVED_THROTTLED;
    // Judged on the time they ran: threads that only waited for a CPU do not count among
    // those that want to run (a lock convoy on a busy machine is still lock-bound).
    let mut ran = e.clone();
    ran.threads_in[ThreadState::Ready.index()] = 0.0;
    let rest = judge_situation(&ran);
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
    Some(Verdict {
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
    })
}

/// A free-threaded build whose GIL stayed disabled: threads run Python in parallel, and the
/// question is how many did and where.
fn gil_disabled(e: &Evidence, g: &GilMetrics) -> Verdict {
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

/// `python3 exited with status 2 after 0.3 s`: how the launched program ended, named by its
/// executable (`command[0]`'s last component).
pub fn exit_sentence(command: &[String], exit: &ProgramExit) -> String {
    let program = command
        .first()
        .map_or("the program", |c| c.rsplit('/').next().unwrap_or(c));
    format!(
        "{program} {} after {:.1} s",
        exit.status_text(),
        exit.after_s
    )
}

/// Whether any stack sample ran the program's own code: a frame of the user's files (not
/// the standard library's, a package's or a frozen module's), the module of `python -m`
/// (whatever runpy's `_run_code` calls), or, when the command gives its code inline (`-c`,
/// or a script on standard input), that code: the outermost frame, in `<string>` or
/// `<stdin>`. Only then, since site's `.pth` lines run as `<string>` too, and a stack read
/// in a hurry can lose its outer frames.
fn ran_program_code(p: &Profile, command: &[String]) -> bool {
    let inline = command.len() == 1 || command.iter().any(|w| w == "-c" || w == "-");
    p.stack_counts.iter().any(|((_, _, stack), _)| {
        let frames = p.stacks.get(*stack);
        let inline = inline
            && frames
                .first()
                .is_some_and(|f| f.file == "<string>" || f.file == "<stdin>");
        let run_module = frames
            .iter()
            .rev()
            .skip(1)
            .any(|f| f.function == "_run_code" && f.file.ends_with("runpy.py"));
        inline || run_module || frames.iter().any(|f| code::origin(&f.file).is_user())
    })
}

/// Tells `p` how its program ended. A program that failed on its own before any thread ran
/// its code (no stack sample had a frame of it: it died in start-up or imports) gets that as
/// its verdict, with no advice: the GIL has nothing to do with it. Otherwise the verdict
/// stands and the reports say the status beside it.
pub fn program_ended(p: &mut Profile, command: &[String], exit: ProgramExit) {
    p.exit = Some(exit);
    if !exit.failed() || ran_program_code(p, command) {
        return;
    }
    p.verdict = Verdict {
        kind: VerdictKind::ProgramFailed,
        then: None,
        summary: format!(
            "{} (before any thread ran your code).",
            exit_sentence(command, &exit)
        ),
        rule: match (p.run.state_samples, p.run.stack_samples) {
            (0, 0) => "it failed on its own before gilscope could read its interpreter".into(),
            (_, 0) => "it failed on its own before gilscope took a stack sample".into(),
            (_, 1) => "it failed on its own and its one stack sample has no frame of its own \
                       code (only the standard library's, packages' and start-up's)"
                .into(),
            (_, n) => format!(
                "it failed on its own and none of its {n} stack samples has a frame of its own \
                 code (only the standard library's, packages' and start-up's)"
            ),
        },
        advice: Vec::new(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gil(held: f64, waiters: f64, contended: f64) -> GilMetrics {
        GilMetrics {
            interpreter: 0,
            interpreters: vec![0],
            enabled: true,
            free_threaded: false,
            enabled_share: 1.0,
            enabled_at_s: None,
            held,
            avg_waiters: waiters,
            contended,
            demand: held + waiters,
            speedup_ceiling: (held + waiters) / held.max(1e-9),
            switches_per_s: 200.0,
            switches: 2000,
            switch_interval_ms: 5.0,
            ticks: 1000,
        }
    }

    fn site(function: &str) -> Site {
        Site::example(function, "app.py", 12, 0.9)
    }

    fn blamed(function: &str) -> Blamed {
        Blamed {
            site: site(function),
            list: "blame",
            via: None,
        }
    }

    /// A 2-CPU run of 1000 samples judged on `g`, its top holder `site`; the rest quiet.
    fn evidence<'a>(g: Option<&'a GilMetrics>, site: Option<&'a Blamed>) -> Evidence<'a> {
        Evidence {
            gil: g,
            busy_gils: 1,
            native_threads: 0.0,
            cpu_count: 2,
            top_holder: site,
            state_samples: 1000,
            stack_samples: 200,
            held_off_cpu: false,
            running_threads: 0.0,
            cores_used: None,
            event_loop: None,
            threads_in: [0.0; ThreadState::COUNT],
            contended_lock_threads: 0.0,
            lock_gil_threads: 0.0,
            queued_threads: 0.0,
            io_threads: [0.0; IoKind::ALL.len()],
            supply: None,
            top_lock_wait: None,
            top_lock_holder: None,
            duration_s: 10.0,
            native_module: None,
            native_caller: None,
        }
    }

    fn judge_with(g: &GilMetrics, native_threads: f64) -> Verdict {
        let site = blamed("compute");
        judge(&Evidence {
            native_threads,
            ..evidence(Some(g), Some(&site))
        })
    }

    #[test]
    fn four_busy_threads_are_gil_bound_and_name_the_holder() {
        let v = judge_with(&gil(0.99, 2.9, 0.97), 0.0);
        assert_eq!(v.kind, VerdictKind::GilBound);
        assert!(
            v.summary.contains("compute() at app.py:12"),
            "{}",
            v.summary
        );
        assert!(v.summary.contains("3.9×"), "{}", v.summary);
        assert!(
            v.summary.contains("2.0× on this machine's 2 CPUs"),
            "{}",
            v.summary
        );
        assert!(v.rule.contains("contended ≥ 50%"));
    }

    #[test]
    fn each_rule_in_turn() {
        assert_eq!(
            judge_with(&gil(0.95, 0.3, 0.25), 0.0).kind,
            VerdictKind::PartlyGilContended
        );
        assert_eq!(
            judge_with(&gil(0.2, 0.0, 0.0), 3.5).kind,
            VerdictKind::NativeParallel
        );
        assert_eq!(
            judge_with(&gil(0.98, 0.01, 0.01), 0.0).kind,
            VerdictKind::SingleThreadCpu
        );
        assert_eq!(
            judge_with(&gil(0.03, 0.0, 0.0), 0.0).kind,
            VerdictKind::MostlyIdle
        );
        // Contended but with nothing to gain is not GIL-bound.
        assert_ne!(
            judge_with(&gil(1.0, 0.2, 0.6), 0.0).kind,
            VerdictKind::GilBound
        );
    }

    #[test]
    fn a_gil_held_off_cpu_comes_first_in_the_advice() {
        let g = gil(0.99, 2.9, 0.97);
        let site = blamed("compute");
        let v = judge(&Evidence {
            held_off_cpu: true,
            ..evidence(Some(&g), Some(&site))
        });
        assert!(v.advice[0].contains("held while blocked"), "{:?}", v.advice);
        assert_eq!(judge_with(&g, 0.0).advice.len() + 1, v.advice.len());
    }

    #[test]
    fn the_named_code_says_its_path_and_a_handful_of_stacks_names_none() {
        let g = gil(0.99, 2.9, 0.97);
        let mut b = blamed("report");
        b.site.path_shown = "web/app.py".into();
        b.via = Some(super::super::Via {
            function: "render".into(),
            package: "jinja2".into(),
            file: "/venv/lib/python3.12/site-packages/jinja2/environment.py".into(),
        });
        let v = judge(&evidence(Some(&g), Some(&b)));
        assert!(
            v.summary.contains(
                "report() at web/app.py:12, via jinja2's render(), holds it 90% of the time \
                 others wait for it;"
            ),
            "{}",
            v.summary
        );
        let v = judge(&Evidence {
            stack_samples: 3,
            ..evidence(Some(&g), None)
        });
        assert!(
            v.summary
                .contains("3 stack samples: too few to name the code"),
            "{}",
            v.summary
        );
        assert!(v.advice[1].contains("Move the hot loop"), "{:?}", v.advice);
    }

    #[test]
    fn no_samples_says_so() {
        let v = judge(&Evidence {
            busy_gils: 0,
            state_samples: 0,
            ..evidence(None, None)
        });
        assert!(v.summary.contains("No GIL samples"));
    }

    #[test]
    fn a_busy_event_loop_gets_event_loop_advice_not_gil_advice() {
        let g = gil(0.98, 0.01, 0.01);
        let site = blamed("handle");
        let v = judge(&Evidence {
            cores_used: Some(1.0),
            event_loop: Some("event-loop".into()),
            ..evidence(Some(&g), Some(&site))
        });
        assert_eq!(v.kind, VerdictKind::SingleThreadCpu);
        assert!(
            v.advice[0].contains("event-loop runs an asyncio event loop"),
            "{:?}",
            v.advice
        );
        assert!(v.advice[1].contains("run_in_executor"), "{:?}", v.advice);
    }

    #[test]
    fn a_free_threaded_run_without_its_gil_is_gil_disabled() {
        let mut g = gil(0.0, 0.0, 0.0);
        g.free_threaded = true;
        g.enabled_share = 0.0;
        g.enabled = false;
        let site = Blamed {
            site: Site::example("compute", "app.py", 12, 0.8),
            list: "running",
            via: None,
        };
        let evidence = Evidence {
            running_threads: 1.9,
            cores_used: Some(1.95),
            ..evidence(Some(&g), Some(&site))
        };
        let v = judge(&evidence);
        assert_eq!(v.kind, VerdictKind::GilDisabled);
        assert!(v.summary.contains("1.9 threads"), "{}", v.summary);
        assert!(
            v.summary.contains("compute() at app.py:12"),
            "{}",
            v.summary
        );
        // Enabled for most of the run, the GIL is judged as in any build with one.
        let mut enabled = gil(0.99, 2.9, 0.97);
        enabled.free_threaded = true;
        enabled.enabled_share = 0.6;
        let v = judge(&Evidence {
            gil: Some(&enabled),
            ..evidence
        });
        assert_eq!(v.kind, VerdictKind::GilBound);
    }

    /// Evidence with `threads` mean threads in each (state, count) pair.
    fn with_threads<'a>(
        g: &'a GilMetrics,
        site: Option<&'a Blamed>,
        threads: &[(ThreadState, f64)],
    ) -> Evidence<'a> {
        let mut e = evidence(Some(g), site);
        for &(state, n) in threads {
            e.threads_in[state.index()] = n;
        }
        e
    }

    #[test]
    fn a_lock_convoy_is_lock_bound_not_gil_bound_and_names_where_threads_wait() {
        use ThreadState::*;
        // Seven threads wait for the lock, the holder holds the GIL, a little GIL waiting.
        let g = gil(0.9, 0.4, 0.35);
        let wait = site("worker");
        let e = Evidence {
            contended_lock_threads: 6.0,
            top_lock_wait: Some(&wait),
            ..with_threads(&g, None, &[(Holding, 0.9), (Waiting, 0.4), (Lock, 6.2)])
        };
        let v = judge(&e);
        assert_eq!(v.kind, VerdictKind::LockBound, "{}", v.summary);
        assert!(v.summary.contains("worker() in app.py:12"), "{}", v.summary);
        assert!(v.advice[0].contains("critical section"), "{:?}", v.advice);
        // 3.13+: the convoy's threads wait for the GIL inside the lock's acquire.
        let g = gil(0.9, 6.5, 0.9);
        let e = Evidence {
            contended_lock_threads: 0.2,
            lock_gil_threads: 6.0,
            top_lock_wait: Some(&wait),
            ..with_threads(&g, None, &[(Holding, 0.9), (Waiting, 6.5), (Lock, 0.2)])
        };
        let v = judge(&e);
        assert_eq!(v.kind, VerdictKind::LockBound, "{}", v.summary);
        assert!(
            v.summary.contains("inside the lock's acquire"),
            "{}",
            v.summary
        );
        // The same GIL waiting anywhere else is GIL-bound.
        let e = Evidence {
            lock_gil_threads: 0.0,
            ..e
        };
        assert_eq!(judge(&e).kind, VerdictKind::GilBound);
        let g = gil(0.9, 0.4, 0.35);
        // Threads that wait for a signal (join, Event, queue.get) are no convoy.
        let e = Evidence {
            contended_lock_threads: 0.0,
            ..with_threads(&g, None, &[(Holding, 0.9), (Waiting, 0.4), (Lock, 6.2)])
        };
        assert_ne!(judge(&e).kind, VerdictKind::LockBound);
    }

    #[test]
    fn threads_waiting_on_sockets_are_io_bound_and_never_native_parallel() {
        use ThreadState::*;
        let g = gil(0.05, 0.0, 0.0);
        let mut e = with_threads(&g, None, &[(Io, 14.0), (Native, 0.6), (Sleep, 1.0)]);
        e.io_threads[crate::model::IoKind::Socket.index()] = 14.0;
        e.native_threads = 0.6;
        let v = judge(&e);
        assert_eq!(v.kind, VerdictKind::IoBound, "{}", v.summary);
        assert!(v.summary.contains("sockets"), "{}", v.summary);
        // Sleepers are mostly idle.
        let e = with_threads(&g, None, &[(Sleep, 4.0), (Io, 0.5)]);
        assert_eq!(judge(&e).kind, VerdictKind::MostlyIdle);
        // A kind with almost no share is left out rather than printed as 0%.
        let mut e = with_threads(&g, None, &[(Io, 14.0)]);
        e.io_threads[crate::model::IoKind::Socket.index()] = 14.0;
        e.io_threads[crate::model::IoKind::Pipe.index()] = 0.01;
        let v = judge(&e);
        assert!(!v.summary.contains("pipe"), "{}", v.summary);
    }

    #[test]
    fn without_a_gil_threads_on_the_network_are_io_bound_not_parallel() {
        use ThreadState::*;
        let mut g = gil(0.0, 0.0, 0.0);
        g.free_threaded = true;
        g.enabled_share = 0.0;
        g.enabled = false;
        let mut e = with_threads(&g, None, &[(Io, 14.0), (Running, 0.3)]);
        e.io_threads[crate::model::IoKind::Socket.index()] = 14.0;
        e.running_threads = 0.3;
        let v = judge(&e);
        assert_eq!(v.kind, VerdictKind::IoBound, "{}", v.summary);
        assert!(v.summary.contains("no GIL"), "{}", v.summary);
        // Threads that run Python in parallel beside a few on I/O: GIL disabled.
        let mut e = with_threads(&g, None, &[(Io, 1.0), (Running, 1.8)]);
        e.io_threads[crate::model::IoKind::Socket.index()] = 1.0;
        e.running_threads = 1.8;
        assert_eq!(judge(&e).kind, VerdictKind::GilDisabled);
    }

    #[test]
    fn starvation_names_the_quota_or_the_other_processes_and_judges_the_rest() {
        use ThreadState::*;
        let g = gil(0.3, 0.0, 0.0);
        let quota = CpuSupply {
            machine_busy_cores: Some(0.6),
            others_cores: Some(0.1),
            quota_cores: Some(0.5),
            throttled_periods: 80,
            throttled_s: 4.0,
        };
        let busy = CpuSupply {
            machine_busy_cores: Some(2.0),
            others_cores: Some(1.4),
            quota_cores: None,
            throttled_periods: 0,
            throttled_s: 0.0,
        };
        let threads = [(Native, 0.6), (Ready, 1.4), (Holding, 0.3)];
        let e = Evidence {
            supply: Some(&quota),
            queued_threads: 1.4,
            native_threads: 0.6,
            cores_used: Some(0.9),
            ..with_threads(&g, None, &threads)
        };
        let v = judge(&e);
        assert_eq!(v.kind, VerdictKind::CpuStarved, "{}", v.summary);
        assert!(
            v.summary.contains("quota") && v.summary.contains("0.50 CPUs"),
            "{}",
            v.summary
        );
        assert!(
            v.summary.contains("Native-parallel"),
            "the rest is judged: {}",
            v.summary
        );
        let e = Evidence {
            supply: Some(&busy),
            ..e
        };
        let v = judge(&e);
        assert!(
            v.summary.contains("other processes kept 1.4"),
            "{}",
            v.summary
        );
        // Busy neighbours, but the process got the CPUs it wanted: no starvation.
        let e2 = Evidence {
            cores_used: Some(1.95),
            event_loop: None,
            ..e
        };
        assert_ne!(judge(&e2).kind, VerdictKind::CpuStarved);
        let e = Evidence {
            cores_used: Some(0.9),
            ..e2
        };
        // The process itself filling the CPUs is no starvation: native-parallel.
        let own = CpuSupply {
            others_cores: Some(0.1),
            ..busy
        };
        let e = Evidence {
            supply: Some(&own),
            ..e
        };
        assert_eq!(judge(&e).kind, VerdictKind::NativeParallel);
        // A lock convoy on a busy machine is still about the lock.
        let e = Evidence {
            supply: Some(&busy),
            contended_lock_threads: 5.0,
            ..with_threads(&g, None, &[(Lock, 5.0), (Ready, 1.5), (Holding, 0.3)])
        };
        assert_eq!(judge(&e).kind, VerdictKind::LockBound);
        // Starved above all (more wait for a CPU than for the lock), it is lock-bound on the
        // time the threads ran: those that only waited for a CPU do not dilute the lock.
        let e = Evidence {
            supply: Some(&busy),
            contended_lock_threads: 3.0,
            queued_threads: 3.6,
            cores_used: Some(0.4),
            ..with_threads(&g, None, &[(Lock, 3.0), (Ready, 3.6), (Holding, 0.9)])
        };
        let v = judge(&e);
        assert_eq!(v.kind, VerdictKind::CpuStarved, "{}", v.summary);
        assert_eq!(v.then, Some(VerdictKind::LockBound), "{}", v.summary);
    }

    #[test]
    fn a_gil_held_in_an_extension_names_it_and_never_says_move_it_into_c() {
        let g = gil(0.99, 2.9, 0.97);
        let caller = site("validate");
        let holder = blamed("validate");
        let e = Evidence {
            native_module: Some(("pydantic_core._pydantic_core", 0.85)),
            native_caller: Some(&caller),
            ..evidence(Some(&g), Some(&holder))
        };
        let v = judge(&e);
        assert_eq!(v.kind, VerdictKind::GilBound);
        assert!(v.summary.contains("held in native code"), "{}", v.summary);
        assert!(
            v.summary
                .contains("pydantic_core._pydantic_core's native code 85%"),
            "{}",
            v.summary
        );
        assert!(
            v.summary.contains("validate() at app.py:12"),
            "{}",
            v.summary
        );
        assert!(
            v.advice.iter().all(|a| !a.contains("C or Rust extension")),
            "{:?}",
            v.advice
        );
        // A little time in a module is not the story.
        let e = Evidence {
            native_module: Some(("_json", 0.2)),
            ..e
        };
        assert!(judge(&e).advice[1].contains("C or Rust extension"));
    }

    fn profile_with(stacks: &[&[(&str, &str)]]) -> Profile {
        use crate::model::{Frame, Sample, StackTick, ThreadStack};
        let mut acc = super::super::Accumulator::default();
        for (i, frames) in stacks.iter().enumerate() {
            acc.push(Sample::Stacks(StackTick {
                at: std::time::Duration::from_millis(i as u64),
                waiters: 0,
                stacks: vec![ThreadStack {
                    tid: 1,
                    state: ThreadState::Holding,
                    on_cpu: true,
                    frames: frames
                        .iter()
                        .map(|&(function, file)| Frame {
                            function: function.into(),
                            file: file.into(),
                            line: 1,
                        })
                        .collect(),
                    ..Default::default()
                }],
            }));
        }
        acc.finish(0, 2)
    }

    #[test]
    fn a_program_that_failed_before_its_code_ran_is_said_to_have_failed() {
        let command = ["/usr/bin/python3".to_string(), "nosuchfile.py".to_string()];
        let exit = |code, signal| ProgramExit {
            code,
            signal,
            after_s: 0.31,
            stopped: false,
        };
        let start_up: &[(&str, &str)] = &[
            ("<module>", "<frozen site>"),
            ("_find_spec", "<frozen importlib._bootstrap>"),
            ("<module>", "/usr/lib/python3.12/zipfile/__init__.py"),
        ];
        let mut p = profile_with(&[start_up]);
        program_ended(&mut p, &command, exit(Some(2), None));
        assert_eq!(p.verdict.kind, VerdictKind::ProgramFailed);
        assert_eq!(
            p.verdict.summary,
            "python3 exited with status 2 after 0.3 s (before any thread ran your code)."
        );
        assert!(p.verdict.advice.is_empty(), "{:?}", p.verdict.advice);
        assert!(p.verdict.rule.contains("its one stack sample has no frame"));
        let mut p = profile_with(&[start_up]);
        program_ended(&mut p, &command, exit(None, Some(9)));
        assert!(p
            .verdict
            .summary
            .starts_with("python3 was killed by SIGKILL after 0.3 s"));

        // Code of the program's own: a file of the user's, `-c`, `-m`.
        let inline = [
            "python3".to_string(),
            "-c".to_string(),
            "work()".to_string(),
        ];
        let pth_line: &[(&str, &str)] = &[
            ("<module>", "<string>"),
            ("_find_and_load", "<frozen importlib._bootstrap>"),
        ];
        for (command, ran) in [
            (
                &command[..],
                &[("<module>", "/srv/app/app.py"), ("work", "/srv/app/app.py")][..],
            ),
            (&inline[..], pth_line),
            (
                &command[..],
                &[
                    ("_run_module_as_main", "/usr/lib/python3.12/runpy.py"),
                    ("_run_code", "/usr/lib/python3.12/runpy.py"),
                    ("<module>", "/usr/lib/python3.12/http/server.py"),
                ][..],
            ),
        ] {
            let mut p = profile_with(&[start_up, ran]);
            let before = p.verdict.clone();
            program_ended(&mut p, command, exit(Some(1), None));
            assert_eq!(p.verdict, before, "{ran:?}");
            assert_eq!(p.exit.unwrap().code, Some(1));
        }
        // Without -c, `<string>` is a `.pth` line of site's start-up, not the program.
        let mut p = profile_with(&[start_up, pth_line]);
        program_ended(&mut p, &command, exit(Some(1), None));
        assert_eq!(p.verdict.kind, VerdictKind::ProgramFailed);
        // A success, or a program gilscope stopped, keeps its verdict too.
        for (code, signal, stopped) in [(Some(0), None, false), (None, Some(15), true)] {
            let mut p = profile_with(&[start_up]);
            let e = ProgramExit {
                stopped,
                ..exit(code, signal)
            };
            program_ended(&mut p, &command, e);
            assert_ne!(p.verdict.kind, VerdictKind::ProgramFailed);
        }
    }
}
