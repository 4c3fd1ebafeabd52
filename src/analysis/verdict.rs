//! The verdict: which of a few plain situations the run was in, the rule that says so, and
//! the next step that fits (DESIGN.md §4).

use serde::Serialize;

use super::{GilMetrics, Site};

/// GIL-bound when at least this share of ticks has a holder and a waiter…
const GIL_BOUND_CONTENDED: f64 = 0.5;
/// …and removing the GIL could give at least this speed-up.
const GIL_BOUND_CEILING: f64 = 1.5;
const PARTLY_CONTENDED: f64 = 0.1;
const PARTLY_CEILING: f64 = 1.1;
/// Native-parallel when on average this many threads run C code without the GIL.
const NATIVE_THREADS: f64 = 0.5;
/// Single-thread CPU-bound when the GIL is held this much without contention.
const SINGLE_HELD: f64 = 0.5;
/// A free-threaded run is judged as GIL-disabled unless the GIL was enabled for at least
/// this share of it (a module import can enable it for a moment).
pub const GIL_DISABLED_BELOW: f64 = 0.05;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictKind {
    GilBound,
    PartlyGilContended,
    SingleThreadCpu,
    NativeParallel,
    MostlyIdle,
    GilDisabled,
}

impl VerdictKind {
    pub fn title(self) -> &'static str {
        match self {
            VerdictKind::GilBound => "GIL-bound",
            VerdictKind::PartlyGilContended => "partly GIL-contended",
            VerdictKind::SingleThreadCpu => "single-thread CPU-bound",
            VerdictKind::NativeParallel => "native-parallel",
            VerdictKind::MostlyIdle => "mostly idle / I/O-bound",
            VerdictKind::GilDisabled => "GIL disabled",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub kind: VerdictKind,
    pub summary: String,
    /// The rule that gave this verdict, with the numbers it compared.
    pub rule: String,
    pub advice: Vec<String>,
}

/// What the verdict is judged on.
pub struct Evidence<'a> {
    /// The GIL judged: the one most threads want (the main one but with subinterpreters).
    pub gil: Option<&'a GilMetrics>,
    /// GILs held at least half the time (more than one only with subinterpreters).
    pub busy_gils: usize,
    /// Mean number of threads running C code with the GIL released.
    pub native_threads: f64,
    pub cpu_count: usize,
    /// The function that makes others wait most, with its share of the holding samples.
    pub top_holder: Option<&'a Site>,
    pub state_samples: u64,
    /// The GIL was held by threads blocked off CPU (a finding of its own).
    pub held_off_cpu: bool,
    /// Mean number of threads running without a GIL (free-threaded builds).
    pub running_threads: f64,
    /// CPU seconds of the whole process per wall second.
    pub cores_used: Option<f64>,
    /// The thread that runs an asyncio event loop, if one was seen.
    pub event_loop: Option<String>,
}

/// A file's last path component: what the verdict names (the JSON keeps the whole path).
fn base_name(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

pub fn judge(e: &Evidence) -> Verdict {
    let mut verdict = judge_situation(e);
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
            kind: VerdictKind::MostlyIdle,
            summary: "No GIL samples were taken: the run was too short or no Python thread ran."
                .into(),
            rule: "no samples".into(),
            advice: vec!["Profile for longer (--duration) while the program does its work.".into()],
        };
    };
    if g.free_threaded && g.enabled_share < GIL_DISABLED_BELOW {
        return gil_disabled(e, g);
    }
    let holder = e.top_holder.map_or(String::new(), |s| {
        format!(
            "; {}() at {}:{} holds it {} of the time",
            s.function,
            base_name(&s.file),
            s.line,
            pct(s.share * g.held)
        )
    });
    let hot = e
        .top_holder
        .map_or("the hot loop".to_string(), |s| format!("{}()", s.function));
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

    if g.contended >= GIL_BOUND_CONTENDED && g.speedup_ceiling >= GIL_BOUND_CEILING {
        return Verdict {
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
    if e.native_threads >= NATIVE_THREADS {
        return Verdict {
            kind: VerdictKind::NativeParallel,
            summary: format!(
                "Native-parallel: on average {:.1} threads run C code with the GIL released \
                 and the GIL is held {}; the GIL is not the limit.",
                e.native_threads,
                pct(g.held)
            ),
            rule: format!("not contended, native threads ≥ {NATIVE_THREADS} ({numbers})"),
            advice: vec![format!(
                "More threads help up to the CPU count ({}); beyond it, the CPUs are the \
                 limit, not the GIL.",
                e.cpu_count
            )],
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
    Verdict {
        kind: VerdictKind::MostlyIdle,
        summary: format!(
            "Mostly idle / I/O-bound: the GIL is held {} of the time and threads mostly wait \
             on I/O, sleeps or locks.",
            pct(g.held)
        ),
        rule: format!(
            "held < {} and little native work ({numbers})",
            pct(SINGLE_HELD)
        ),
        advice: vec![
            "The GIL is not the bottleneck: look at what the threads wait for (the [idle] \
             stacks in the flame graph)."
                .into(),
        ],
    }
}

/// A free-threaded build whose GIL stayed disabled: threads run Python in parallel, and the
/// question is how many did and where.
fn gil_disabled(e: &Evidence, g: &GilMetrics) -> Verdict {
    let hot = e.top_holder.map_or(String::new(), |s| {
        format!(
            "; the hottest code is {}() at {}:{} ({} of running samples)",
            s.function,
            base_name(&s.file),
            s.line,
            pct(s.share)
        )
    });
    let cores = e.cores_used.map_or(String::new(), |c| {
        format!(" using {c:.2} of {} cores", e.cpu_count)
    });
    Verdict {
        kind: VerdictKind::GilDisabled,
        summary: format!(
            "GIL disabled (free-threaded CPython): on average {:.1} threads were running or \
             ready to run Python at once{cores}{hot}.",
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
        Site {
            function: function.into(),
            file: "app.py".into(),
            line: 12,
            share: 0.9,
        }
    }

    /// A 2-CPU run of 1000 samples judged on `g`, its top holder `site`; the rest quiet.
    fn evidence<'a>(g: Option<&'a GilMetrics>, site: Option<&'a Site>) -> Evidence<'a> {
        Evidence {
            gil: g,
            busy_gils: 1,
            native_threads: 0.0,
            cpu_count: 2,
            top_holder: site,
            state_samples: 1000,
            held_off_cpu: false,
            running_threads: 0.0,
            cores_used: None,
            event_loop: None,
        }
    }

    fn judge_with(g: &GilMetrics, native_threads: f64) -> Verdict {
        let site = site("compute");
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
        let site = site("compute");
        let v = judge(&Evidence {
            held_off_cpu: true,
            ..evidence(Some(&g), Some(&site))
        });
        assert!(v.advice[0].contains("held while blocked"), "{:?}", v.advice);
        assert_eq!(judge_with(&g, 0.0).advice.len() + 1, v.advice.len());
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
        let site = site("handle");
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
        let site = Site {
            function: "compute".into(),
            file: "app.py".into(),
            line: 12,
            share: 0.8,
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
}
