//! The `gilscope/2` summary JSON (docs/DESIGN.md, "JSON: gilscope/2", says what every field
//! means). Add fields freely; never rename, drop or change the meaning of one without bumping
//! the schema. `gilscope/2` replaced `gilscope/1` when `native` came to mean on a CPU only
//! and `idle` lost the waits that now have states of their own (`ready`, `lock`, `io`,
//! `sleep`).

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use super::{Combined, Render, Report};
use crate::analysis::{Blamed, CpuSupply, Finding, GilMetrics, Profile, RunCounts, Site, Verdict};
use crate::model::{IoKind, TargetInfo, ThreadState};

pub const SCHEMA: &str = "gilscope/2";

pub struct Json;

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    #[serde(flatten)]
    root: ProcessDoc<'a>,
    /// `--subprocesses`: each Python descendant followed, in the same shape as the root.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subprocesses: Vec<ProcessDoc<'a>>,
    /// `--subprocesses`: the root and its descendants together.
    #[serde(skip_serializing_if = "Option::is_none")]
    combined: Option<Combined>,
}

#[derive(Serialize)]
struct ProcessDoc<'a> {
    target: Target<'a>,
    run: Run<'a>,
    process: Process<'a>,
    gils: &'a [GilMetrics],
    threads: Vec<Thread<'a>>,
    verdict: VerdictDoc<'a>,
    findings: &'a [Finding],
    /// Innermost frames of the holder's stacks.
    top_holders: &'a [Site],
    /// Innermost frames of stacks waiting for the GIL.
    top_waiters: &'a [Site],
    /// Free-threaded runs: where threads ran without a GIL.
    top_running: &'a [Site],
    /// Holder sites weighted by the number of threads waiting meanwhile.
    top_blame: &'a [Site],
    /// Where threads waited for a lock held by another thread (`lock` stacks that are not a
    /// wait for a signal).
    top_lock_waits: &'a [Site],
    /// What the GIL's holder ran while threads waited for a lock, weighted by how many did.
    top_lock_holders: &'a [Site],
    /// Native modules (extensions, libraries) the GIL's holder ran while holding it, each
    /// with its share of the ticks the GIL was held; empty where the kernel did not let
    /// gilscope sample instruction pointers.
    native_modules: Vec<NativeModule<'a>>,
    /// Where Python code calls native code that keeps the GIL.
    top_native_callers: &'a [Site],
    /// How the launched program ended (`record`); `null` when gilscope attached to it.
    exit: Option<Exit>,
    /// Each exec of the process during the run: `at` (s), `before`, `after` (command
    /// lines), `python` (the new program's version; `null` when it is not Python).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    execs: Vec<ExecDoc<'a>>,
}

/// One exec of the process.
#[derive(Serialize)]
struct ExecDoc<'a> {
    at_s: f64,
    before: &'a [String],
    after: &'a [String],
    python: Option<&'a str>,
}

/// `exit`: the program's status and when it ended.
#[derive(Serialize)]
struct Exit {
    /// Its exit code; `null` when a signal killed it.
    code: Option<i32>,
    /// The signal that killed it (`SIGKILL`); `null` when it exited.
    signal: Option<String>,
    /// Seconds from its launch to its end.
    after_s: f64,
    /// gilscope ended the run (`--duration`, Ctrl-C) and stopped it: not its own failure.
    stopped_by_gilscope: bool,
    /// It ended on its own with a status other than 0.
    failed: bool,
}

/// The verdict, and the code it names.
#[derive(Serialize)]
struct VerdictDoc<'a> {
    #[serde(flatten)]
    verdict: &'a Verdict,
    /// The function the summary names (a site of the list `code.list`) and the library
    /// function it goes through (`via`), or `null` when it names none.
    code: Option<&'a Blamed>,
}

#[derive(Serialize)]
struct NativeModule<'a> {
    module: &'a str,
    share: f64,
}

#[derive(Serialize)]
struct Target<'a> {
    pid: i32,
    python: &'a str,
    free_threaded: bool,
    command: &'a [String],
}

#[derive(Serialize)]
struct Run<'a> {
    #[serde(flatten)]
    counts: &'a RunCounts,
    /// The rates asked.
    state_rate_hz: f64,
    stack_rate_hz: f64,
    /// The rates taken ([`RunCounts::achieved`]); `null` for a run of fewer than two state
    /// samples.
    achieved_state_rate_hz: Option<f64>,
    achieved_stack_rate_hz: Option<f64>,
    /// Either achieved rate fell short of the one asked ([`RunCounts::shortfall`]): what the
    /// summary says in a sentence.
    rate_fell_short: bool,
    /// `CLOCK_MONOTONIC` (ns) of the first GIL-state sample: the window the metrics cover is
    /// [this, this + duration_s], comparable with bpftrace's `nsecs` and perf timestamps.
    monotonic_start_ns: u64,
}

#[derive(Serialize)]
struct Process<'a> {
    /// CPU seconds of the whole process per wall second.
    cores_used: Option<f64>,
    /// CPUs of the machine.
    cpu_count: usize,
    /// What the machine and the process's CPU quota gave it; `null` when neither was read.
    cpu_supply: Option<&'a CpuSupply>,
}

#[derive(Serialize)]
struct Thread<'a> {
    tid: i32,
    name: Option<&'a str>,
    interpreter: i64,
    /// CPU seconds the kernel charged it during the run.
    cpu_s: f64,
    /// The time the samples saw it on a CPU (holding on a CPU, native, running): the
    /// sampled counterpart of `cpu_s`.
    on_cpu_s: f64,
    /// Share of its samples in each state, every state present, in the order of
    /// [`ThreadState::ALL`]; they sum to 1.
    states: States,
    /// Share of its samples runnable but waiting for a CPU, whatever its state (`ready`, a
    /// GIL holder preempted, a woken waiter not run yet).
    queued: f64,
    /// Share of its ticks in state `io`, by what it waited on.
    io: std::collections::BTreeMap<&'static str, f64>,
    /// Share of its ticks waiting for a lock held by another thread (part of `lock`; the
    /// rest waited for a signal: an event, a queue, a join).
    contended_lock: f64,
    /// Share of its ticks waiting for the GIL inside a lock's acquire (part of `waiting`,
    /// but the lock's cost: a convoy's threads take the GIL back where they take the lock).
    lock_gil_wait: f64,
    /// Share of its ticks holding the GIL on a CPU in a native module's code (part of
    /// `holding`).
    holding_native: f64,
    /// Share of its ticks the thread held the GIL while blocked in the kernel.
    held_off_cpu: f64,
}

/// Per-state shares, serialized as an object in the order of [`ThreadState::ALL`] (the
/// order of every table) rather than alphabetically.
struct States([f64; ThreadState::COUNT]);

impl Serialize for States {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(ThreadState::COUNT))?;
        for state in ThreadState::ALL {
            map.serialize_entry(state.key(), &self.0[state.index()])?;
        }
        map.end()
    }
}

impl Render for Json {
    fn render(&self, report: &Report, out: &mut dyn Write) -> Result<()> {
        let subprocesses: Vec<ProcessDoc> = report
            .subprocesses
            .iter()
            .map(|s| process(&s.info, &s.profile))
            .collect();
        let combined = report.combined();
        let doc = Document {
            schema: SCHEMA,
            root: process(report.target, report.profile),
            subprocesses,
            combined,
        };
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
        Ok(())
    }
}

/// One process's part of the document.
fn process<'a>(target: &'a TargetInfo, p: &'a Profile) -> ProcessDoc<'a> {
    ProcessDoc {
        target: Target {
            pid: target.pid,
            python: &target.python,
            free_threaded: p.gils.iter().any(|g| g.free_threaded),
            command: &target.command,
        },
        run: Run {
            counts: &p.run,
            state_rate_hz: target.state_hz,
            stack_rate_hz: target.stack_hz,
            achieved_state_rate_hz: p.run.achieved().map(|a| a.state_hz),
            achieved_stack_rate_hz: p.run.achieved().map(|a| a.stack_hz),
            rate_fell_short: p.run.shortfall(target).is_some(),
            monotonic_start_ns: target.monotonic_zero_ns + (p.run.first_sample_s * 1e9) as u64,
        },
        process: Process {
            cores_used: p.cores_used,
            cpu_count: p.cpu_count,
            cpu_supply: p.supply.as_ref(),
        },
        gils: &p.gils,
        threads: p
            .threads
            .iter()
            .map(|t| Thread {
                tid: t.tid,
                name: t.name.as_deref(),
                interpreter: t.interpreter,
                cpu_s: t.cpu_s,
                on_cpu_s: t.on_cpu_s,
                states: States(t.shares),
                queued: t.queued_share,
                io: IoKind::ALL
                    .iter()
                    .zip(t.io)
                    .filter(|(_, share)| *share > 0.0)
                    .map(|(k, share)| (k.key(), share))
                    .collect(),
                contended_lock: t.contended_lock,
                lock_gil_wait: t.lock_gil_wait,
                holding_native: t.holding_native,
                held_off_cpu: t.held_off_cpu as f64 / t.ticks.max(1) as f64,
            })
            .collect(),
        verdict: VerdictDoc {
            verdict: &p.verdict,
            code: p.blamed.as_ref(),
        },
        findings: &p.findings,
        top_holders: &p.top_holders,
        top_waiters: &p.top_waiters,
        top_running: &p.top_running,
        top_blame: &p.top_blame,
        top_lock_waits: &p.top_lock_waits,
        top_lock_holders: &p.top_lock_holders,
        native_modules: p
            .native_modules
            .iter()
            .map(|(module, share)| NativeModule {
                module,
                share: *share,
            })
            .collect(),
        top_native_callers: &p.top_native_callers,
        exit: p.exit.map(|e| Exit {
            code: e.code,
            signal: e.signal.map(crate::model::signal_name),
            after_s: e.after_s,
            stopped_by_gilscope: e.stopped,
            failed: e.failed(),
        }),
        execs: p
            .execs
            .iter()
            .map(|e| ExecDoc {
                at_s: e.at.as_secs_f64(),
                before: &e.before,
                after: &e.after,
                python: e.python.as_deref(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Accumulator;
    use crate::model::{
        Frame, GilReading, Sample, StackTick, StateTick, TargetInfo, ThreadInfo, ThreadObservation,
        ThreadStack,
    };
    use crate::report::fixtures;
    use std::time::Duration;

    fn render() -> serde_json::Value {
        let mut acc = Accumulator::default();
        let name = "</script>\"\u{1}".to_string();
        acc.push(Sample::Thread(ThreadInfo {
            tid: 7,
            name: Some(name),
            interpreter: 0,
        }));
        for (ms, holder) in [(0, Some(7)), (10, None)] {
            acc.push(Sample::State(StateTick {
                at: Duration::from_millis(ms),
                gils: vec![GilReading {
                    interpreter: 0,
                    locked: holder.is_some(),
                    holder,
                    switch_number: ms,
                    interval_us: 5000,
                    enabled: None,
                }],
                threads: vec![ThreadObservation {
                    tid: 7,
                    state: if holder.is_some() {
                        ThreadState::Holding
                    } else {
                        ThreadState::Idle
                    },
                    on_cpu: true,
                    gil: 0,
                    ..Default::default()
                }],
            }));
        }
        acc.push(Sample::Stacks(StackTick {
            at: Duration::ZERO,
            waiters: 0,
            stacks: vec![ThreadStack {
                tid: 7,
                state: ThreadState::Holding,
                on_cpu: true,
                frames: vec![Frame {
                    function: "compute".into(),
                    file: "app.py".into(),
                    line: 12,
                }]
                .into(),
                ..Default::default()
            }],
        }));
        let profile = acc.finish(0, 2);
        let target = TargetInfo {
            cwd: Some("/srv".into()),
            ..fixtures::app(42)
        };
        let out = fixtures::render(&Json, &target, &profile, &[]);
        serde_json::from_slice(&out).expect("valid JSON, whatever the thread is called")
    }

    #[test]
    fn the_rates_taken_are_beside_the_rates_asked_and_a_shortfall_is_flagged() {
        // 250 GIL-state and 50 stack samples a second for a second.
        let p = fixtures::every_state(500);
        let run = |t| {
            let out = fixtures::render(&Json, &t, &p, &[]);
            serde_json::from_slice::<serde_json::Value>(&out).unwrap()["run"].clone()
        };
        let met = run(fixtures::asking(250.0, 50.0));
        let hz = |run: &serde_json::Value, key: &str| run[key].as_f64().unwrap();
        assert!(
            (hz(&met, "achieved_state_rate_hz") - 250.0).abs() < 0.5,
            "{met}"
        );
        assert!(
            (hz(&met, "achieved_stack_rate_hz") - 50.0).abs() < 0.5,
            "{met}"
        );
        assert_eq!(met["rate_fell_short"], false);
        let short = run(fixtures::asking(10_000.0, 10_000.0));
        assert_eq!(hz(&short, "state_rate_hz"), 10_000.0);
        assert!((hz(&short, "achieved_state_rate_hz") - 250.0).abs() < 0.5);
        assert_eq!(short["rate_fell_short"], true);
        // A run too short to have a rate.
        let (t, empty) = fixtures::empty();
        let out = fixtures::render(&Json, &t, &empty, &[]);
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(doc["run"]["achieved_state_rate_hz"].is_null(), "{doc}");
        assert_eq!(doc["run"]["rate_fell_short"], false);
    }

    #[test]
    fn has_every_field_of_the_gilscope_2_contract() {
        let doc = render();
        assert_eq!(doc["schema"], "gilscope/2");
        for (section, keys) in [
            ("target", &["pid", "python", "free_threaded", "command"][..]),
            (
                "run",
                &[
                    "duration_s",
                    "state_samples",
                    "stack_samples",
                    "failed_samples",
                    "achieved_state_rate_hz",
                    "achieved_stack_rate_hz",
                    "rate_fell_short",
                ][..],
            ),
            ("process", &["cores_used", "cpu_count", "cpu_supply"][..]),
            ("verdict", &["kind", "summary", "advice"][..]),
        ] {
            for key in keys {
                assert!(
                    doc[section].get(key).is_some(),
                    "{section}.{key} missing: {doc}"
                );
            }
        }
        let gil = &doc["gils"][0];
        // The names `--fail-if` tests are keys of the JSON, read from one table.
        let metrics = crate::run::threshold::GIL_METRICS.map(|(name, _)| name);
        for key in ["interpreter", "enabled"].iter().chain(&metrics) {
            assert!(gil.get(key).is_some(), "gils[0].{key} missing");
        }
        for (key, _) in crate::run::threshold::PROCESS_METRICS {
            assert!(
                doc["process"].get(key).is_some() || doc["run"].get(key).is_some(),
                "process.{key} or run.{key} missing"
            );
        }
        let thread = &doc["threads"][0];
        for key in [
            "tid",
            "name",
            "interpreter",
            "cpu_s",
            "on_cpu_s",
            "states",
            "queued",
            "io",
            "contended_lock",
            "lock_gil_wait",
            "held_off_cpu",
        ] {
            assert!(thread.get(key).is_some(), "threads[0].{key} missing");
        }
        // Every state, in the order of every table (serde_json keeps it only with
        // preserve_order, so the order is checked in the text).
        for state in ThreadState::ALL {
            assert!(thread["states"][state.key()].is_f64(), "states.{state:?}");
        }
        let text = serde_json::to_string(&States([0.0; ThreadState::COUNT])).unwrap();
        let order: Vec<usize> = ThreadState::ALL
            .iter()
            .map(|s| text.find(&format!("\"{}\"", s.key())).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(thread["queued"], 0.0);
        assert!(doc["process"]["cpu_supply"].is_null(), "no supply was read");
        assert!(doc["top_lock_waits"].as_array().unwrap().is_empty());
        assert!(doc["top_lock_holders"].as_array().unwrap().is_empty());
        assert_eq!(thread["name"], "</script>\"\u{1}");
        assert_eq!(gil["held"], 0.5);
        assert_eq!(doc["run"]["monotonic_start_ns"], 5_000_000_000u64);
        assert_eq!(doc["top_holders"][0]["function"], "compute");
        assert_eq!(doc["top_holders"][0]["line"], 12);
        assert!(doc["top_waiters"].as_array().unwrap().is_empty());
        assert!(doc["top_blame"].as_array().unwrap().is_empty());
        assert!(doc["findings"].as_array().unwrap().is_empty());
    }
}
