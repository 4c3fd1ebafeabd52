//! The `gilscope/1` summary JSON (DESIGN.md §8). Add fields freely; never rename or drop one
//! without bumping the schema.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use super::{Render, Report};
use crate::analysis::{GilMetrics, RunCounts, Site, Verdict};
use crate::model::ThreadState;

pub const SCHEMA: &str = "gilscope/1";

pub struct Json;

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    target: Target<'a>,
    run: Run<'a>,
    process: Process,
    gils: &'a [GilMetrics],
    threads: Vec<Thread<'a>>,
    verdict: &'a Verdict,
    top_holders: &'a [Site],
    top_waiters: &'a [Site],
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
    state_rate_hz: f64,
    stack_rate_hz: f64,
}

#[derive(Serialize)]
struct Process {
    cores_used: Option<f64>,
    cpu_count: usize,
}

#[derive(Serialize)]
struct Thread<'a> {
    tid: i32,
    name: Option<&'a str>,
    interpreter: i64,
    cpu_s: f64,
    states: std::collections::BTreeMap<&'static str, f64>,
    /// Share of its ticks the thread held the GIL while off CPU.
    held_off_cpu: f64,
}

impl Render for Json {
    fn render(&self, report: &Report, out: &mut dyn Write) -> Result<()> {
        let p = report.profile;
        let doc = Document {
            schema: SCHEMA,
            target: Target {
                pid: report.target.pid,
                python: &report.target.python,
                free_threaded: false,
                command: &report.target.command,
            },
            run: Run {
                counts: &p.run,
                state_rate_hz: report.target.state_hz,
                stack_rate_hz: report.target.stack_hz,
            },
            process: Process {
                cores_used: p.cores_used,
                cpu_count: p.cpu_count,
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
                    states: ThreadState::ALL
                        .iter()
                        .map(|&s| (s.key(), t.share(s)))
                        .collect(),
                    held_off_cpu: t.held_off_cpu as f64 / t.ticks.max(1) as f64,
                })
                .collect(),
            verdict: &p.verdict,
            top_holders: &p.top_holders,
            top_waiters: &p.top_waiters,
        };
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
        Ok(())
    }
}
