//! Output formats, each in its own file behind [`Render`].
//!
//! Renders a finished [`Profile`]; never reads the target or the sampler.

mod flamegraph;
mod json;
pub mod terminal;

use std::io::Write;

use anyhow::Result;

use crate::analysis::Profile;
use crate::model::TargetInfo;

/// What every format renders: the run and its analysis.
pub struct Report<'a> {
    pub target: &'a TargetInfo,
    pub profile: &'a Profile,
}

/// One output format.
pub trait Render {
    fn render(&self, report: &Report, out: &mut dyn Write) -> Result<()>;
}

/// The formats `--format` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Flame graph SVG of every thread, its state as the top frame.
    Flamegraph,
    /// The `gilscope/1` summary JSON.
    Json,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Flamegraph => "svg",
            Format::Json => "json",
        }
    }

    pub fn renderer(self) -> Box<dyn Render> {
        match self {
            Format::Flamegraph => Box::new(flamegraph::Flamegraph),
            Format::Json => Box::new(json::Json),
        }
    }
}
