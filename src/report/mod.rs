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
use crate::model::TargetInfo;

/// What every format renders: the run and its analysis.
pub struct Report<'a> {
    pub target: &'a TargetInfo,
    pub profile: &'a Profile,
    /// `--subprocesses`: the Python descendants followed, each with its own analysis.
    pub subprocesses: &'a [Subprocess],
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
