//! Flame graph SVGs (inferno) for each view: the wall view with each thread's state as its top
//! frame, and the holder, blame and waiter views. They speak the report's colour language
//! ([`super::colour`]: states in their own colours, code in pale sand, roots in pale hues of
//! their own) with a legend of what was drawn appended under inferno's picture, and draw what
//! the report's flame graphs draw ([`super::flametree`]): narrow frames and thin towers (a few
//! start-up imports) are left out, so the picture is as tall as what it shows.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

use anyhow::{Context, Result};
use inferno::flamegraph::color::{BackgroundColor, Color, PaletteMap};
use inferno::flamegraph::{self as inferno_fg, Options, TextTruncateDirection};

use super::colour::Rgb;
use super::flametree::{self, Tree};
use super::{code_rgb, text, Paint, Render, Report};
use crate::analysis::View;

pub struct Flamegraph(pub View);

/// The width inferno draws at (its default) and its margin on each side.
const IMAGE_W: f64 = 1200.0;
const XPAD: f64 = 10.0;
/// inferno's text: 12 px monospace; an advance of 0.6 em (DejaVu Sans Mono's) to fit ours.
const CHAR_W: f64 = 7.3;
const KEY_ROW: f64 = 20.0;

fn rgb_color((r, g, b): Rgb) -> Color {
    Color { r, g, b }
}

fn rgb_attr((r, g, b): Rgb) -> String {
    format!("rgb({r},{g},{b})")
}

/// Title, subtitle and what a sample counts, of each view.
fn describe(view: View) -> (&'static str, &'static str, &'static str) {
    match view {
        View::Wall => (
            "all threads",
            "every thread's stacks, the thread at the bottom, its state on top",
            "samples",
        ),
        View::Holders => (
            "who holds the GIL",
            "stacks of the thread holding the GIL",
            "samples",
        ),
        View::Blame => (
            "who makes others wait",
            "stacks of the GIL holder, each sample weighted by the number of threads waiting \
             for the GIL meanwhile",
            "waiter-samples",
        ),
        View::Waiters => (
            "where threads wait for the GIL",
            "stacks of threads blocked waiting to take the GIL",
            "samples",
        ),
    }
}

impl Render for Flamegraph {
    fn render(&self, report: &Report, out: &mut dyn Write) -> Result<()> {
        let (what, subtitle, count_name) = describe(self.0);
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
        let tree = Tree::of(report, self.0, None);
        if tree.total() == 0 {
            // inferno refuses empty input; an empty view still gets a valid, readable file.
            let note = match self.0 {
                View::Blame => "no thread waited for the GIL while a stack was sampled",
                View::Waiters => "no thread was seen waiting for the GIL",
                _ => "no stack samples were taken",
            };
            write!(
                out,
                r#"<?xml version="1.0" standalone="no"?><svg xmlns="http://www.w3.org/2000/svg" width="900" height="70"><text x="10" y="25" font-family="monospace" font-size="14">{}</text><text x="10" y="50" font-family="monospace" font-size="12">{note}</text></svg>"#,
                text::xml(&title)
            )?;
            return Ok(());
        }
        let cut = tree.cut();
        let lines = cut_lines(report, self.0, cut.depth);
        // Every frame's colour is chosen here, as in the SVG report: states in their
        // colours, threads and processes as roots, code in pale sand no state has.
        let mut palette = PaletteMap::default();
        for node in &tree.nodes[1..] {
            let rgb = match node.paint {
                Paint::Code => code_rgb(&node.name),
                paint => paint.fills()[0],
            };
            palette.insert(&node.name, rgb_color(rgb));
        }
        // The root ("all") is the frame with no name: all of the process's samples.
        palette.insert("", rgb_color(super::colour::PROCESS_RGB));
        let mut options = Options::default();
        // inferno escapes markup but passes every other character; frame names come
        // escaped from the folded lines ([`text::folded`]).
        options.title = text::xml_for_inferno(&title).into_owned();
        options.subtitle = Some(subtitle.into());
        options.count_name = count_name.into();
        // Colours follow frame names, not a random sequence, so that the same profile
        // renders to the same file (a recording rendered later, CI artifacts compared).
        options.hash = true;
        options.deterministic = true;
        options.palette_map = Some(&mut palette);
        // A percentage of the width: frames narrower than the tree's threshold are left
        // out, as in the report (half a sample below it, against rounding).
        options.min_width = 100.0 * (cut.min as f64 - 0.5).max(0.0) / tree.total() as f64;
        // A cut name keeps its start, which says what it is: `[waiting on a..`, `compute (a..`.
        options.text_truncate_direction = TextTruncateDirection::Right;
        // The advance of common monospace fonts (DejaVu Sans Mono: 0.602 em) and a little
        // more, so that a label inferno writes fits its frame before any script runs.
        options.font_width = 0.62;
        // Grey, not the yellow of ready threads behind the frames.
        options.bgcolors = Some(BackgroundColor::Grey);
        let mut svg = Vec::new();
        inferno_fg::from_lines(&mut options, lines.iter().map(String::as_str), &mut svg)
            .context("rendering the flame graph")?;
        // inferno draws the root frame, `all`, in the process's colour.
        let mut paints = tree.paints(cut);
        if !paints.contains(&Paint::Process) {
            paints.push(Paint::Process);
            paints.sort();
        }
        let svg = with_legend(&svg, &paints, &flametree::note(&tree, cut, count_name))?;
        out.write_all(svg.as_bytes())?;
        Ok(())
    }
}

/// The view's folded lines with each stack cut to its first `depth` frames (the levels that
/// are drawn), equal stacks merged, sorted as inferno wants them.
fn cut_lines(report: &Report, view: View, depth: usize) -> Vec<String> {
    let mut merged: BTreeMap<String, u64> = BTreeMap::new();
    for line in super::collapsed::lines(report, view, true) {
        let Some((stack, count)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(count) = count.parse::<u64>() else {
            continue;
        };
        let kept: Vec<&str> = stack.split(';').take(depth.max(1)).collect();
        *merged.entry(kept.join(";")).or_default() += count;
    }
    let mut lines: Vec<String> = merged
        .into_iter()
        .map(|(stack, n)| format!("{stack} {n}"))
        .collect();
    lines.sort();
    lines
}

/// inferno's SVG with a legend of `paints` and a `note` appended under the picture, the
/// document made taller to hold them.
fn with_legend(svg: &[u8], paints: &[Paint], note: &str) -> Result<String> {
    let svg = std::str::from_utf8(svg).context("inferno wrote something that is not UTF-8")?;
    let frames = svg
        .find("<svg id=\"frames\"")
        .context("inferno's SVG has no frames")?;
    let (head, body) = svg.split_at(frames);
    let height: f64 = head
        .split("height=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|h| h.parse().ok())
        .context("inferno's SVG has no height")?;
    let mut legend = String::from("<g class=\"legend\">\n");
    let (mut x, mut y) = (XPAD, height + 4.0);
    for &paint in paints {
        let label = paint.label();
        let w = 17.0 + label.chars().count() as f64 * CHAR_W + 18.0;
        if x > XPAD && x + w - 18.0 > IMAGE_W - XPAD {
            x = XPAD;
            y += KEY_ROW;
        }
        let _ = write!(
            legend,
            "<g class=\"key\"><title>{}</title>",
            text::xml(&paint.meaning())
        );
        let fills = paint.fills();
        let stripe = 12.0 / fills.len() as f64;
        for (k, rgb) in fills.into_iter().enumerate() {
            let _ = write!(
                legend,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{stripe:.1}\" height=\"12\" fill=\"{}\"/>",
                x + stripe * k as f64,
                y + 2.0,
                rgb_attr(rgb)
            );
        }
        let _ = writeln!(
            legend,
            "<text x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
            x + 17.0,
            y + 12.5,
            text::xml(label)
        );
        x += w;
    }
    y += KEY_ROW;
    let _ = writeln!(
        legend,
        "<text x=\"{XPAD}\" y=\"{:.1}\" fill=\"rgb(100,100,100)\">{}</text></g>",
        y + 10.0,
        text::xml(note)
    );
    let new_height = (y + 22.0).ceil();
    // The document's height and viewBox, and inferno's background, grow to hold the legend.
    let head = head
        .replace(
            &format!("height=\"{height}\""),
            &format!("height=\"{new_height}\""),
        )
        .replace(
            &format!(" {height}\" xmlns="),
            &format!(" {new_height}\" xmlns="),
        );
    let end = body
        .rfind("</svg>")
        .context("inferno's SVG is not closed")?;
    Ok(format!("{}{}{legend}</svg>", no_stubs(&head), &body[..end]))
}

/// inferno's script fits each label to its frame as the page loads, and leaves a bare `..`
/// in a frame two or three characters wide; `[..` or `..` says nothing. It is told to leave
/// out a label unless three characters and the dots fit.
fn no_stubs(head: &str) -> String {
    head.replace(
        "if (w < 2 * known_font_width) {",
        "if (w < 5 * known_font_width) {",
    )
    .replace(
        "if (w < 2 * fontsize * fontwidth) {",
        "if (w < 5 * fontsize * fontwidth) {",
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::analysis::Accumulator;
    use crate::model::{
        Frame, Sample, StackTick, StateTick, TargetInfo, ThreadInfo, ThreadObservation,
        ThreadStack, ThreadState,
    };

    fn target() -> TargetInfo {
        TargetInfo {
            pid: 42,
            python: "3.12.1".into(),
            command: vec!["python3".into(), "app.py".into()],
            state_hz: 250.0,
            stack_hz: 50.0,
            monotonic_zero_ns: 0,
            cwd: Some("/srv".into()),
        }
    }

    fn render(profile: &crate::analysis::Profile, view: View) -> String {
        String::from_utf8(crate::report::fixtures::render(
            &Flamegraph(view),
            &target(),
            profile,
            &[],
        ))
        .unwrap()
    }

    /// inferno's SVG, which has a DOCTYPE.
    fn parse(svg: &str) -> roxmltree::Document<'_> {
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        roxmltree::Document::parse_with_options(svg, options).unwrap()
    }

    fn rgb(fill: &str) -> Rgb {
        let inner = fill.trim_start_matches("rgb(").trim_end_matches(')');
        let v: Vec<u8> = inner.split(',').map(|c| c.parse().unwrap()).collect();
        (v[0], v[1], v[2])
    }

    /// Each frame inferno drew: its name, its fill, its width in px and its label.
    fn frames(doc: &roxmltree::Document) -> Vec<(String, Rgb, f64, String)> {
        let container = doc
            .descendants()
            .find(|n| n.attribute("id") == Some("frames"))
            .unwrap();
        container
            .children()
            .filter(|g| g.has_tag_name("g"))
            .map(|g| {
                let child = |tag: &str| g.children().find(|c| c.has_tag_name(tag)).unwrap();
                let title = child("title").text().unwrap_or_default();
                let name = title
                    .rsplit_once(" (")
                    .map_or(title, |(n, _)| n)
                    .to_string();
                let rect = child("rect");
                let width: f64 = rect
                    .attribute("width")
                    .unwrap()
                    .trim_end_matches('%')
                    .parse()
                    .unwrap();
                let label = child("text").text().unwrap_or_default().to_string();
                (
                    name,
                    rgb(rect.attribute("fill").unwrap()),
                    width / 100.0 * (IMAGE_W - 2.0 * XPAD),
                    label,
                )
            })
            .collect()
    }

    /// The legend's keys: label and colours.
    fn legend(doc: &roxmltree::Document) -> Vec<(String, Vec<Rgb>)> {
        doc.descendants()
            .filter(|n| n.attribute("class") == Some("key"))
            .map(|k| {
                let label = k
                    .children()
                    .find(|c| c.has_tag_name("text"))
                    .and_then(|t| t.text())
                    .unwrap()
                    .to_string();
                let fills = k
                    .children()
                    .filter(|c| c.has_tag_name("rect"))
                    .map(|r| rgb(r.attribute("fill").unwrap()))
                    .collect();
                (label, fills)
            })
            .collect()
    }

    #[test]
    fn every_view_speaks_the_colour_language_with_a_legend_of_what_it_drew() {
        let p = crate::report::fixtures::every_state(5000);
        let states: Vec<Rgb> = ThreadState::ALL.map(super::super::state_rgb).to_vec();
        for view in [View::Wall, View::Holders, View::Blame, View::Waiters] {
            let svg = render(&p, view);
            let doc = parse(&svg);
            let frames = frames(&doc);
            let keys = legend(&doc);
            assert!(!frames.is_empty(), "{view:?}");
            for (name, fill, _, _) in &frames {
                let state = ThreadState::ALL
                    .into_iter()
                    .find(|s| s.frame_label() == name);
                match state {
                    // A state's frame is in its colour, and its key is in the legend.
                    Some(s) if view == View::Wall => {
                        assert_eq!(*fill, super::super::state_rgb(s), "{name}");
                        assert!(keys
                            .iter()
                            .any(|(l, f)| l == crate::report::state_label(s) && f == &[*fill]));
                    }
                    // Any other frame is in no state's colour, and in the legend.
                    _ => {
                        assert!(!states.contains(fill), "{view:?}: {name} is {fill:?}");
                        assert!(
                            keys.iter().any(|(_, f)| f.contains(fill)),
                            "{view:?}: {name}'s {fill:?} is not in the legend {keys:?}"
                        );
                    }
                }
            }
            // Every key's colour is drawn.
            for (label, fills) in &keys {
                assert!(
                    fills.iter().any(|f| frames.iter().any(|fr| fr.1 == *f)),
                    "{view:?}: {label} is in the legend but not drawn"
                );
            }
            let labels: Vec<&str> = keys.iter().map(|(l, _)| l.as_str()).collect();
            match view {
                View::Wall => {
                    assert_eq!(labels.len(), ThreadState::WITH_GIL.len() + 3, "{labels:?}");
                    assert!(
                        labels.ends_with(&["code", "thread", "process"]),
                        "{labels:?}"
                    );
                }
                _ => assert_eq!(labels, ["code", "process"]),
            }
        }
    }

    #[test]
    fn the_script_leaves_out_labels_that_would_be_only_dots() {
        let p = crate::report::fixtures::every_state(5000);
        let svg = render(&p, View::Wall);
        // Both of inferno's fitting paths (fixed-width fonts, and any other) were told.
        assert!(svg.contains("if (w < 5 * known_font_width) {"));
        assert!(svg.contains("if (w < 5 * fontsize * fontwidth) {"));
        assert!(!svg.contains("if (w < 2 *"));
    }

    #[test]
    fn labels_fit_their_frames_and_keep_their_start() {
        let p = crate::report::fixtures::every_state(5000);
        let svg = render(&p, View::Wall);
        let doc = parse(&svg);
        let mut cut = 0;
        for (name, _, width, label) in frames(&doc) {
            if label.is_empty() {
                continue;
            }
            let chars = label.chars().count() as f64;
            assert!(
                chars * 0.602 * 12.0 <= width,
                "{label:?} overflows {width:.0} px"
            );
            match label.strip_suffix("..") {
                Some(start) => {
                    cut += 1;
                    assert!(name.starts_with(start), "{label:?} of {name:?}");
                }
                None => assert_eq!(label, if name.is_empty() { "all" } else { &name }),
            }
        }
        assert!(cut > 0, "no label had to be cut");
    }

    #[test]
    fn thin_start_up_stacks_do_not_stretch_the_picture() {
        // 2 s of one thread holding the GIL in a 3-frame loop, and at start-up two stack
        // samples (1%) deep in imports, 40 frames.
        let mut acc = Accumulator::default();
        acc.push(Sample::Thread(ThreadInfo {
            tid: 1,
            name: Some("MainThread".into()),
            interpreter: 0,
        }));
        let frame = |function: String, file: &str| Frame {
            function: function.into(),
            file: file.into(),
            line: 1,
        };
        for i in 0..200u64 {
            let at = Duration::from_millis(10 * i);
            acc.push(Sample::State(StateTick {
                at,
                gils: vec![],
                threads: vec![ThreadObservation {
                    tid: 1,
                    state: ThreadState::Holding,
                    on_cpu: true,
                    ..Default::default()
                }],
            }));
            let frames: Vec<Frame> = if i < 2 {
                (0..40)
                    .map(|d| frame(format!("_find_and_load_{d}"), "<frozen importlib>"))
                    .collect()
            } else {
                ["<module>", "main", "compute"]
                    .map(|f| frame(f.into(), "/srv/app.py"))
                    .to_vec()
            };
            acc.push(Sample::Stacks(StackTick {
                at,
                waiters: 0,
                stacks: vec![ThreadStack {
                    tid: 1,
                    state: ThreadState::Holding,
                    on_cpu: true,
                    frames: frames.into(),
                    ..Default::default()
                }],
            }));
        }
        let p = acc.finish(0, 2);
        for view in [View::Wall, View::Holders] {
            let svg = render(&p, view);
            let doc = parse(&svg);
            let frames = frames(&doc);
            let height: f64 = doc
                .root_element()
                .attribute("height")
                .unwrap()
                .parse()
                .unwrap();
            // all, the 3 frames (the thread and the state besides in the wall view): no
            // more than 5 levels of 16 px, the title and the legend.
            // The tower's base stays, on the levels drawn anyway; its 36 frames above do not.
            let tower = frames
                .iter()
                .filter(|f| f.0.starts_with("_find_and_load"))
                .count();
            assert!(
                (1..=4).contains(&tower),
                "{view:?}: {tower} frames of the tower"
            );
            assert!(
                height < 60.0 + 5.0 * 16.0 + 34.0 + 70.0,
                "{view:?}: {height}"
            );
            assert!(
                frames.iter().any(|f| f.0 == "compute (app.py:1)"),
                "{view:?}"
            );
            assert!(svg.contains("levels where less than 3% of the width is left"));
        }
    }
}
