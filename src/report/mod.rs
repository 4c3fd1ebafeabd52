//! Output formats, each in its own file behind [`Render`].
//!
//! Renders a finished [`Profile`]; never reads the target or the sampler.

mod collapsed;
mod colour;
mod command;
#[cfg(test)]
mod fixtures;
mod flamegraph;
mod flametree;
mod json;
mod markdown;
mod perfetto;
mod pprof;
mod speedscope;
mod svg;
pub mod terminal;
pub(crate) mod text;

use std::io::Write;

use anyhow::Result;

use crate::analysis::{GilMetrics, Profile, RunCounts, ShortCause, Site, View};
use crate::model::{TargetInfo, ThreadState};
pub(crate) use colour::{code_rgb, state_rgb, Paint};

/// What every format renders: the run and its analysis.
pub struct Report<'a> {
    pub target: &'a TargetInfo,
    pub profile: &'a Profile,
    /// `--subprocesses`: the Python descendants followed, each with its own analysis.
    pub subprocesses: &'a [Subprocess],
}

/// The target and its subprocesses together (`--subprocesses`): what the summary, the SVG
/// report and the JSON say of them as a whole.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Combined {
    pub processes: usize,
    /// CPU seconds of all of them per wall second.
    pub cores_used: f64,
    pub cpu_count: usize,
    /// Sum over the processes of the mean number of threads waiting for their main GIL.
    pub avg_waiters: f64,
    /// What that means, in a sentence.
    pub reading: String,
}

impl Report<'_> {
    /// Every process: the target first, then the subprocesses.
    pub fn processes(&self) -> Vec<(&TargetInfo, &Profile)> {
        std::iter::once((self.target, self.profile))
            .chain(self.subprocesses.iter().map(|s| (&s.info, &s.profile)))
            .collect()
    }

    /// The processes as a whole; `None` without subprocesses.
    pub fn combined(&self) -> Option<Combined> {
        if self.subprocesses.is_empty() {
            return None;
        }
        let all = self.processes();
        let cores_used: f64 = all.iter().filter_map(|(_, p)| p.cores_used).sum();
        let avg_waiters: f64 = all
            .iter()
            .filter_map(|(_, p)| p.main_gil())
            .map(|g| g.avg_waiters)
            .sum();
        let busy = all
            .iter()
            .filter(|(_, p)| p.main_gil().is_some_and(|g| g.held >= 0.5))
            .count();
        let reading = if busy >= 2 && avg_waiters < 0.1 * busy as f64 {
            format!(
                "{busy} processes each kept a GIL of its own busy with almost no thread \
                 waiting: the work runs in parallel across processes, as the GIL allows"
            )
        } else if avg_waiters >= 0.5 {
            "threads still wait for a GIL inside the processes: see each one's verdict".into()
        } else {
            "no process was GIL-bound".into()
        };
        Some(Combined {
            processes: all.len(),
            cores_used,
            cpu_count: self.profile.cpu_count,
            avg_waiters,
            reading,
        })
    }
}

pub use crate::analysis::Subprocess;

/// A share as a percentage with one decimal, `87.0%`: the SVG report's and the Markdown's
/// (the terminal right-aligns it in a column, [`terminal`]'s `pct_column`; the verdict's
/// sentences round to whole percents with their own, in `analysis`).
pub(crate) fn pct(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// Above this share of late ticks, CPU scarcity biases the holding shares: measured against
/// ground truth (ACCURACY.md), holding reads high for CPU-bound holders and low for threads
/// that alternate running and sleeping, by up to a few points.
const SCARCE_CPU_LATE_SHARE: f64 = 0.05;

/// The percentage of ticks that came late when it is above [`SCARCE_CPU_LATE_SHARE`], for
/// the warning of the terminal summary and the SVG report; `None` below it.
pub(crate) fn scarce_cpu_late_percent(r: &RunCounts) -> Option<f64> {
    let late = r.late_ticks as f64;
    let ticks = (r.state_samples + r.late_ticks) as f64;
    (late > SCARCE_CPU_LATE_SHARE * ticks).then(|| 100.0 * late / ticks)
}

/// What the terminal summary, the Markdown and the SVG report say under the run's counts when
/// the sampler took fewer samples a second than asked (the rule: [`RunCounts::shortfall`]),
/// starting in lower case: `asked for 10000 stack samples/s, took 731/s: the sampler could
/// not keep up; …`. `None` when the rates were met or the run was too short to tell.
pub(crate) fn rate_shortfall(target: &TargetInfo, r: &RunCounts) -> Option<String> {
    let short = r.shortfall(target)?;
    let took = |kind: &str, (asked, got): (f64, f64)| {
        format!("{asked:.0} {kind} samples/s, took {got:.0}/s")
    };
    let facts: Vec<String> = [
        short.state.map(|s| took("GIL-state", s)),
        short.stack.map(|s| took("stack", s)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let why = match short.cause {
        ShortCause::Failed => {
            "most of the missing samples were failed reads (torn reads or threads ending \
             mid-read)"
                .to_string()
        }
        ShortCause::Slow => {
            // The state ticks set the pace, and `--state-rate` is raised to `--rate`.
            let flags = match short.state {
                Some(_) if target.stack_hz >= target.state_hz => "--rate and --state-rate",
                Some(_) => "--state-rate",
                None => "--rate",
            };
            format!(
                "the sampler could not keep up, so shares rest on fewer samples; a lower \
                 {flags}, or fewer threads in the target, lets it"
            )
        }
    };
    Some(format!("asked for {}: {why}", facts.join(", and ")))
}

/// `s` with its first letter in upper case, for a sentence of its own.
pub(crate) fn sentence_case(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map_or(String::new(), |c| c.to_uppercase().chain(chars).collect())
}

/// The program a process runs, for labels: the script of `python3 -u app.py` (`app.py`),
/// else the executable's name.
pub(crate) fn program_name(info: &TargetInfo) -> &str {
    info.command
        .iter()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .or(info.command.first())
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .unwrap_or("python")
}

/// The state columns of the per-thread tables and the legends of the terminal summary, the
/// Markdown and the SVG report, for one process or several drawn together: every state some
/// thread was seen in, and always `holding` and `waiting` while a GIL was enabled (that no
/// thread waited is itself the news) and `running` in a free-threaded build whose GIL was off
/// for part of the run, in the order of [`ThreadState::ALL`]. One rule, so every format shows
/// the same columns.
pub(crate) fn state_columns(profiles: &[&Profile]) -> Vec<ThreadState> {
    let always = |p: &Profile, s: ThreadState| match s {
        ThreadState::Holding | ThreadState::Waiting => p.gils.iter().any(|g| g.enabled),
        ThreadState::Running => p
            .gils
            .iter()
            .any(|g| g.free_threaded && g.enabled_share < 1.0),
        _ => false,
    };
    ThreadState::ALL
        .into_iter()
        .filter(|&s| {
            profiles
                .iter()
                .any(|p| always(p, s) || p.threads.iter().any(|t| t.share(s) > 0.0))
        })
        .collect()
}

/// What a state means, in the few words of every legend: the SVG report's, the terminal's
/// and the Markdown's (the flame graphs' top frames are [`ThreadState::frame_label`]).
pub fn state_label(state: ThreadState) -> &'static str {
    match state {
        ThreadState::Holding => "holding the GIL",
        ThreadState::Waiting => "waiting for the GIL",
        ThreadState::Handoff => "handing off the GIL",
        ThreadState::Native => "native, GIL released",
        ThreadState::Ready => "ready, no CPU",
        ThreadState::Lock => "waiting on a lock",
        ThreadState::Io => "waiting on I/O",
        ThreadState::Sleep => "sleeping",
        ThreadState::Idle => "idle (other waits)",
        ThreadState::Running => "running, no GIL",
    }
}

/// What a state counts, for the definitions under a table.
pub fn state_meaning(state: ThreadState) -> &'static str {
    match state {
        ThreadState::Holding => "owns the GIL",
        ThreadState::Waiting => "blocked taking the GIL",
        ThreadState::Handoff => "dropped the GIL on request, waits for a waiter to take it",
        ThreadState::Native => "GIL released, on a CPU (C code)",
        ThreadState::Ready => "runnable, waiting for a CPU",
        ThreadState::Lock => "blocked on a lock, condition, event, queue or join",
        ThreadState::Io => "blocked on a socket, file, pipe or poll",
        ThreadState::Sleep => "in time.sleep",
        ThreadState::Idle => "any other wait",
        ThreadState::Running => "on a CPU with the GIL disabled",
    }
}

/// `key: meaning` for each state among `columns` whose key does not say it all.
pub(crate) fn state_definitions(columns: &[ThreadState]) -> Vec<String> {
    columns
        .iter()
        .filter(|s| !matches!(s, ThreadState::Holding | ThreadState::Waiting))
        .map(|s| format!("{}: {}", s.key(), state_meaning(*s)))
        .collect()
}

/// What the CPUs gave the process, in a sentence's worth of clauses, for the line after
/// `cores used`: how busy the machine was and what its CPU quota allowed and withheld.
/// `None` when neither was read.
pub(crate) fn supply_note(p: &Profile) -> Option<String> {
    let s = p.supply.as_ref()?;
    let mut parts = Vec::new();
    if let Some(busy) = s.machine_busy_cores {
        let others = s.others_cores.map_or(String::new(), |o| {
            format!(", {o:.2} of them by other processes")
        });
        parts.push(format!(
            "machine busy {busy:.2} of {} CPUs{others}",
            p.cpu_count
        ));
    }
    if let Some(quota) = s.quota_cores {
        let throttled = if s.throttled_periods > 0 {
            format!(
                ", throttled {:.2} s in {} periods",
                s.throttled_s, s.throttled_periods
            )
        } else {
            ", never throttled".to_string()
        };
        parts.push(format!("CPU quota {quota:.2} CPUs{throttled}"));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The cells of a GIL's row in the GIL tables of the terminal summary, the Markdown and (from
/// the second on) the SVG report, not yet padded: the interpreter's id, held, avg waiters, contended, demand, ceiling,
/// switches/s and the switch interval.
pub(crate) fn gil_row(g: &GilMetrics) -> [String; 8] {
    [
        g.interpreter.to_string(),
        pct(g.held),
        format!("{:.2}", g.avg_waiters),
        pct(g.contended),
        format!("{:.2}", g.demand),
        format!("{:.2}×", g.speedup_ceiling),
        format!("{:.0}", g.switches_per_s),
        crate::analysis::interval_text(g.switch_interval_ms),
    ]
}

/// The lists of code every summary shows, titled, in order: who holds the GIL (weighted by
/// waiters when anyone waited), where threads wait for it, where they wait for a lock
/// another thread holds, and where they run without a GIL. Empty lists are left out.
pub(crate) fn site_lists(p: &Profile) -> Vec<(&'static str, &[Site])> {
    let holders: (&'static str, &[Site]) = if p.top_blame.is_empty() {
        ("Holds the GIL", &p.top_holders)
    } else {
        ("Holds the GIL while others wait", &p.top_blame)
    };
    [
        holders,
        ("Waits for the GIL at", &p.top_waiters[..]),
        ("Waits for a lock at", &p.top_lock_waits[..]),
        ("Runs without a GIL at", &p.top_running[..]),
    ]
    .into_iter()
    .filter(|(_, sites)| !sites.is_empty())
    .collect()
}

/// What the columns of every table of code sites mean (the terminal's, the Markdown's, the
/// SVG report's).
pub(crate) fn site_definitions() -> [&'static str; 3] {
    [
        "incl.: share of the samples with the function anywhere on the stack",
        "self: as the innermost frame",
        "samples: stack samples behind incl.; holders and blame rank by incl., the others by self",
    ]
}

/// One output format.
pub trait Render {
    fn render(&self, report: &Report, out: &mut dyn Write) -> Result<()>;
}

/// The report formats, one renderer each; `--format` names them (`cli::FormatArg`, which
/// says what each is).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Svg,
    Flamegraph,
    Holders,
    Blame,
    Waiters,
    Json,
    Collapsed,
    Markdown,
    Speedscope,
    Perfetto,
    Pprof,
}

impl Format {
    /// Every format, in `--help`'s order.
    pub const ALL: [Format; 11] = [
        Format::Svg,
        Format::Flamegraph,
        Format::Holders,
        Format::Blame,
        Format::Waiters,
        Format::Json,
        Format::Collapsed,
        Format::Markdown,
        Format::Speedscope,
        Format::Perfetto,
        Format::Pprof,
    ];

    /// The end of the default file name, `gilscope-<pid>.<suffix>`.
    pub fn suffix(self) -> &'static str {
        match self {
            Format::Svg => "svg",
            Format::Flamegraph => "flamegraph.svg",
            Format::Holders => "holders.svg",
            Format::Blame => "blame.svg",
            Format::Waiters => "waiters.svg",
            Format::Json => "json",
            Format::Collapsed => "collapsed.txt",
            Format::Markdown => "md",
            Format::Speedscope => "speedscope.json",
            Format::Perfetto => "perfetto.json",
            Format::Pprof => "pb.gz",
        }
    }

    pub fn renderer(self) -> Box<dyn Render> {
        match self {
            Format::Svg => Box::new(svg::SvgReport),
            Format::Flamegraph => Box::new(flamegraph::Flamegraph(View::Wall)),
            Format::Holders => Box::new(flamegraph::Flamegraph(View::Holders)),
            Format::Blame => Box::new(flamegraph::Flamegraph(View::Blame)),
            Format::Waiters => Box::new(flamegraph::Flamegraph(View::Waiters)),
            Format::Json => Box::new(json::Json),
            Format::Collapsed => Box::new(collapsed::Collapsed),
            Format::Markdown => Box::new(markdown::Markdown),
            Format::Speedscope => Box::new(speedscope::Speedscope),
            Format::Perfetto => Box::new(perfetto::Perfetto),
            Format::Pprof => Box::new(pprof::Pprof),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_the_states_used_and_always_holding_and_waiting() {
        let p = fixtures::every_state(5000);
        let all: Vec<ThreadState> = ThreadState::WITH_GIL.to_vec();
        assert_eq!(state_columns(&[&p]), all);
        // A thread alone, sleeping: holding and waiting stay, unused states go.
        let mut sleepy = fixtures::every_state(5000);
        sleepy.threads.retain(|t| t.share(ThreadState::Sleep) > 0.0);
        assert_eq!(
            state_columns(&[&sleepy]),
            [
                ThreadState::Holding,
                ThreadState::Waiting,
                ThreadState::Sleep
            ]
        );
        // Several processes drawn together: the union, in the usual order.
        assert_eq!(state_columns(&[&sleepy, &p]), all);
        // Without a GIL enabled, nothing is kept for its own sake.
        sleepy.gils.clear();
        assert_eq!(state_columns(&[&sleepy]), [ThreadState::Sleep]);
    }

    #[test]
    fn every_state_has_one_label_and_one_meaning() {
        let labels: std::collections::HashSet<_> = ThreadState::ALL.map(state_label).into();
        let meanings: std::collections::HashSet<_> = ThreadState::ALL.map(state_meaning).into();
        assert_eq!(labels.len(), ThreadState::COUNT);
        assert_eq!(meanings.len(), ThreadState::COUNT);
    }
}
