//! Flame graph SVG (inferno): every thread, its state as the top frame, coloured by state so
//! that waiting stands out.

use std::io::Write;

use anyhow::{Context, Result};
use inferno::flamegraph::color::{BasicPalette, Color, Palette, PaletteMap};
use inferno::flamegraph::{self as inferno_fg, Options};

use super::{Render, Report};
use crate::analysis::folded_wall;
use crate::model::ThreadState;

pub struct Flamegraph;

/// The colour of each state's top frame: holding green, waiting red, handoff orange, native
/// blue, idle grey.
fn state_color(state: ThreadState) -> Color {
    let (r, g, b) = match state {
        ThreadState::Holding => (60, 170, 80),
        ThreadState::Waiting => (220, 50, 47),
        ThreadState::Handoff => (240, 150, 40),
        ThreadState::Native => (70, 130, 200),
        ThreadState::Idle => (170, 170, 170),
    };
    Color { r, g, b }
}

impl Render for Flamegraph {
    fn render(&self, report: &Report, out: &mut dyn Write) -> Result<()> {
        let lines = folded_wall(report.profile);
        let text: Vec<String> = lines
            .iter()
            .map(|(stack, n)| format!("{stack} {n}"))
            .collect();
        let mut palette = PaletteMap::default();
        for state in ThreadState::ALL {
            palette.insert(state.frame_label(), state_color(state));
        }
        let mut options = Options::default();
        options.title = format!(
            "gilscope: pid {}, CPython {} — {}",
            report.target.pid,
            report.target.python,
            report.profile.verdict.kind.title()
        );
        options.subtitle = Some(
            "top frame = thread state: green holding the GIL, red waiting for it, orange \
             handing it off, blue native without it, grey idle"
                .into(),
        );
        options.count_name = "samples".into();
        options.colors = Palette::Basic(BasicPalette::Aqua);
        options.palette_map = Some(&mut palette);
        if text.is_empty() {
            // inferno refuses empty input; an empty run still gets a valid file.
            write!(
                out,
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="600" height="60"><text x="10" y="30">gilscope: no stack samples were taken</text></svg>"#
            )?;
            return Ok(());
        }
        inferno_fg::from_lines(&mut options, text.iter().map(String::as_str), out)
            .context("rendering the flame graph")?;
        Ok(())
    }
}
