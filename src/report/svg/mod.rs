//! The SVG report, gilscope's default output: one self-contained file (no script, no network,
//! no font but the generic families) that answers the question at a glance — the verdict, the
//! GIL metrics, each thread's states, a timeline and flame graphs — in a browser or a CI
//! artifact viewer.
//!
//! Drawn top to bottom on a fixed width; the height follows the content. The same profile
//! renders to the same bytes. Every string from the target is cleaned and cut by [`canvas`]
//! and escaped by [`text::xml`](crate::report::text::xml).

mod canvas;
mod flame;
mod summary;
mod tables;
#[cfg(test)]
mod tests;
mod timeline;

use std::io::Write;

use anyhow::Result;

use super::{Render, Report};
use crate::analysis::View;
use canvas::Canvas;

/// The SVG report.
pub struct SvgReport;

impl Render for SvgReport {
    fn render(&self, report: &Report, out: &mut dyn Write) -> Result<()> {
        let mut c = Canvas::new();
        summary::header(&mut c, report);
        summary::verdict(&mut c, report.profile);
        summary::findings(&mut c, report.profile);
        tables::gils(&mut c, report.profile);
        tables::threads(&mut c, report);
        if !report.subprocesses.is_empty() {
            // Before the timeline, which shows each of them under a heading.
            tables::processes(&mut c, report);
        }
        summary::sites(&mut c, report.profile);
        timeline::draw(&mut c, report);
        flame::draw(&mut c, report, View::Wall);
        flame::draw(&mut c, report, View::Blame);
        c.finish(&summary::title(report), out)?;
        Ok(())
    }
}
