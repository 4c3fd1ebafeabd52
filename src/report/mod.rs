//! Output formats, each in its own file behind [`Render`].
//!
//! Renders a finished [`Profile`]; never reads the target or the sampler.

mod collapsed;
mod flamegraph;
mod json;
mod markdown;
mod perfetto;
mod pprof;
mod speedscope;
mod svg;
pub mod terminal;

use std::io::Write;

use anyhow::Result;

use crate::analysis::{Profile, View};
use crate::model::{TargetInfo, ThreadState};

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

/// A descendant process profiled beside the target.
pub struct Subprocess {
    pub info: TargetInfo,
    pub profile: Profile,
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

/// The colour of each state in every graphic format: holding green, waiting red, handoff
/// orange, native blue, ready (no CPU) yellow, lock purple, I/O brown, sleep light grey,
/// idle grey, running without a GIL (free-threaded builds) teal.
pub(crate) fn state_rgb(state: ThreadState) -> (u8, u8, u8) {
    match state {
        ThreadState::Holding => (60, 170, 80),
        ThreadState::Waiting => (220, 50, 47),
        ThreadState::Handoff => (240, 150, 40),
        ThreadState::Native => (70, 130, 200),
        ThreadState::Ready => (235, 200, 50),
        ThreadState::Lock => (150, 90, 190),
        ThreadState::Io => (150, 110, 70),
        ThreadState::Sleep => (210, 210, 210),
        ThreadState::Idle => (170, 170, 170),
        ThreadState::Running => (30, 160, 150),
    }
}

/// One output format.
pub trait Render {
    fn render(&self, report: &Report, out: &mut dyn Write) -> Result<()>;
}

/// The formats `--format` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Format {
    /// The report: one self-contained SVG with the verdict, the metrics, per-thread state
    /// bars, a timeline and the wall and blame flame graphs.
    Svg,
    /// Flame graph SVG of every thread, its state as the top frame.
    Flamegraph,
    /// Flame graph SVG of the code that holds the GIL.
    Holders,
    /// Flame graph SVG of the code that holds the GIL weighted by how many threads wait
    /// meanwhile: the code that makes others wait.
    Blame,
    /// Flame graph SVG of where threads wait for the GIL.
    Waiters,
    /// The `gilscope/1` summary JSON.
    Json,
    /// Collapsed stacks (`frame;frame count`), the state as the top frame.
    Collapsed,
    /// A Markdown summary for CI job pages.
    Markdown,
    /// speedscope's JSON file format (a sampled profile per thread).
    Speedscope,
    /// Chrome trace / Perfetto JSON: a track per thread with state slices and stack samples.
    Perfetto,
    /// pprof's gzipped protocol buffer (go tool pprof, Pyroscope, Grafana), with thread,
    /// state, interpreter and process labels.
    Pprof,
}

impl Format {
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
