//! Flame graph SVGs (inferno) for each view: the wall view coloured by thread state so that
//! waiting stands out, and the holder, blame and waiter views.

use std::io::Write;

use anyhow::{Context, Result};
use inferno::flamegraph::color::{BasicPalette, Color, Palette, PaletteMap};
use inferno::flamegraph::{self as inferno_fg, Options};

use super::{Render, Report};
use crate::analysis::View;
use crate::model::ThreadState;

pub struct Flamegraph(pub View);

/// The colour of each state's top frame, as in every graphic format.
fn state_color(state: ThreadState) -> Color {
    rgb_color(super::state_rgb(state))
}

fn rgb_color((r, g, b): (u8, u8, u8)) -> Color {
    Color { r, g, b }
}

/// Title, subtitle, what a sample counts, and the palette of each view.
fn describe(view: View, report: &Report) -> (&'static str, String, &'static str, BasicPalette) {
    let (what, subtitle, count, palette) = match view {
        View::Wall => {
            let profiles: Vec<&crate::analysis::Profile> = std::iter::once(report.profile)
                .chain(report.subprocesses.iter().map(|s| &s.profile))
                .collect();
            let key = super::colour_key(&super::state_columns(&profiles), true);
            return (
                "all threads",
                format!("top frame = state: {key}"),
                "samples",
                BasicPalette::Aqua,
            );
        }
        View::Holders => (
            "who holds the GIL",
            "stacks of the thread holding the GIL",
            "samples",
            BasicPalette::Green,
        ),
        View::Blame => (
            "who makes others wait",
            "stacks of the GIL holder, each sample weighted by the number of threads waiting \
             for the GIL meanwhile",
            "waiter-samples",
            BasicPalette::Red,
        ),
        View::Waiters => (
            "where threads wait for the GIL",
            "stacks of threads blocked waiting to take the GIL",
            "samples",
            BasicPalette::Orange,
        ),
    };
    (what, subtitle.to_string(), count, palette)
}

impl Render for Flamegraph {
    fn render(&self, report: &Report, out: &mut dyn Write) -> Result<()> {
        let (what, subtitle, count_name, basic) = describe(self.0, report);
        let text = super::collapsed::lines(report, self.0);
        let title = match report.subprocesses.len() {
            0 => format!(
                "gilscope: {what} — pid {}, CPython {}, {}",
                report.target.pid,
                report.target.python,
                report.profile.verdict.kind.title()
            ),
            n => format!(
                "gilscope: {what} — pid {} and {n} subprocesses, CPython {}",
                report.target.pid, report.target.python
            ),
        };
        if text.is_empty() {
            // inferno refuses empty input; an empty view still gets a valid, readable file.
            let note = match self.0 {
                View::Blame => "no thread waited for the GIL while a stack was sampled",
                View::Waiters => "no thread was seen waiting for the GIL",
                _ => "no stack samples were taken",
            };
            write!(
                out,
                r#"<?xml version="1.0" standalone="no"?><svg xmlns="http://www.w3.org/2000/svg" width="900" height="70"><text x="10" y="25" font-family="monospace" font-size="14">{}</text><text x="10" y="50" font-family="monospace" font-size="12">{note}</text></svg>"#,
                escape(&title)
            )?;
            return Ok(());
        }
        // Every frame's colour is chosen here, as in the SVG report: states in their
        // colours, threads and processes as roots, code in one pale hue no state has.
        let mut palette = PaletteMap::default();
        let multi = !report.subprocesses.is_empty();
        for line in &text {
            let stack = line
                .rsplit_once(' ')
                .map_or(line.as_str(), |(stack, _)| stack);
            for (depth, frame) in stack.split(';').enumerate() {
                let rgb = if multi && depth == 0 {
                    super::PROCESS_RGB
                } else if depth == usize::from(multi) {
                    super::THREAD_RGB
                } else {
                    super::code_rgb(frame)
                };
                palette.insert(frame, rgb_color(rgb));
            }
        }
        // The root ("all") is the frame with no name.
        palette.insert("", rgb_color(super::PROCESS_RGB));
        for state in ThreadState::ALL {
            palette.insert(state.frame_label(), state_color(state));
        }
        let mut options = Options::default();
        options.title = title;
        options.subtitle = Some(subtitle);
        options.count_name = count_name.into();
        options.colors = Palette::Basic(basic);
        // Colours follow frame names, not a random sequence, so that the same profile
        // renders to the same file (a recording rendered later, CI artifacts compared).
        options.hash = true;
        options.deterministic = true;
        if self.0 == View::Wall {
            options.palette_map = Some(&mut palette);
        }
        inferno_fg::from_lines(&mut options, text.iter().map(String::as_str), out)
            .context("rendering the flame graph")?;
        Ok(())
    }
}

/// Escapes text for SVG.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
