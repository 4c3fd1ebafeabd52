//! Output formats, each in its own file behind [`Render`].
//!
//! Renders a finished [`Profile`]; never reads the target or the sampler.

mod flamegraph;
mod json;
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

/// One output format.
pub trait Render {
    fn render(&self, report: &Report, out: &mut dyn Write) -> Result<()>;
}

/// The formats `--format` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Format {
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
}

impl Format {
    /// The end of the default file name, `gilscope-<pid>.<suffix>`.
    pub fn suffix(self) -> &'static str {
        match self {
            Format::Flamegraph => "svg",
            Format::Holders => "holders.svg",
            Format::Blame => "blame.svg",
            Format::Waiters => "waiters.svg",
            Format::Json => "json",
        }
    }

    pub fn renderer(self) -> Box<dyn Render> {
        match self {
            Format::Flamegraph => Box::new(flamegraph::Flamegraph(View::Wall)),
            Format::Holders => Box::new(flamegraph::Flamegraph(View::Holders)),
            Format::Blame => Box::new(flamegraph::Flamegraph(View::Blame)),
            Format::Waiters => Box::new(flamegraph::Flamegraph(View::Waiters)),
            Format::Json => Box::new(json::Json),
        }
    }
}
