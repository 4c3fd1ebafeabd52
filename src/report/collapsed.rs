//! Collapsed stacks, Brendan Gregg's folded format (`frame;frame;frame count`), which
//! inferno, flamegraph.pl, speedscope and many other tools read: every thread's stacks with
//! the thread as the root frame and its state (`[waiting for GIL]`, …) as the top frame.
//! With subprocesses, a root frame per process comes first.

use std::io::Write;

use anyhow::Result;

use super::{Render, Report};
use crate::analysis::{folded, Paths, View};
use crate::model::TargetInfo;

pub struct Collapsed;

impl Render for Collapsed {
    fn render(&self, report: &Report, out: &mut dyn Write) -> Result<()> {
        for line in lines(report, View::Wall, false) {
            writeln!(out, "{line}")?;
        }
        Ok(())
    }
}

fn paths(info: &TargetInfo, shown: bool) -> Paths<'_> {
    if shown {
        Paths::Shown(info.cwd.as_deref())
    } else {
        Paths::Full
    }
}

/// The folded lines of one view, `stack count`, for the target and every subprocess; with
/// `shown`, files as a user reads them (for pictures), else CPython's full paths.
pub fn lines(report: &Report, view: View, shown: bool) -> Vec<String> {
    if report.subprocesses.is_empty() {
        return folded(report.profile, view, paths(report.target, shown))
            .iter()
            .map(|(stack, n)| format!("{stack} {n}"))
            .collect();
    }
    let all = std::iter::once((report.target, report.profile))
        .chain(report.subprocesses.iter().map(|s| (&s.info, &s.profile)));
    all.flat_map(|(info, profile)| {
        let root = process_frame(info);
        folded(profile, view, paths(info, shown))
            .into_iter()
            .map(move |(stack, n)| format!("{root};{stack} {n}"))
    })
    .collect()
}

/// `process 1234 (worker.py)`: the root frame of one process's stacks, made safe for the
/// folded format.
pub(super) fn process_frame(info: &TargetInfo) -> String {
    let name = super::text::folded(super::program_name(info), 60);
    format!("process {} ({name})", info.pid)
}
