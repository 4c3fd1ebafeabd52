//! Flame graphs drawn as plain rectangles (no script): the wall view, every thread with its
//! state as the top frame, and the blame view, holder stacks weighted by waiters. Each frame
//! carries a `<title>` with its full name and count, for hovering. Deep stacks are cut in the
//! middle and narrow frames dropped, so that the file stays small whatever the run.

use std::collections::BTreeMap;

use super::canvas::{esc, fit, hex, state_rgb, Canvas, Font, CONTENT, DIM, MARGIN};
use super::summary::program;
use crate::analysis::{folded, View};
use crate::model::ThreadState;
use crate::report::Report;

/// Frames deeper than this are folded into one `[… n frames]` frame, keeping the outermost
/// ones and the last two (the leaf, and in the wall view its state).
const MAX_DEPTH: usize = 40;
/// Frames narrower than this share of the whole graph are not drawn…
const MIN_SHARE: f64 = 0.001;
/// …nor any beyond this many, narrowest first…
const MAX_FRAMES: usize = 3000;
/// …nor any above the last level where frames still fill this share of the width: a tower a
/// few pixels wide does not get to make the graph tall.
const LEVEL_SHARE: f64 = 0.03;
const FRAME_H: f64 = 17.0;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Process,
    Thread,
    Code,
    State(ThreadState),
    Elided,
}

#[derive(Debug)]
struct Node {
    name: String,
    kind: Kind,
    count: u64,
    /// By name, so that the graph is the same for the same profile.
    children: BTreeMap<String, usize>,
}

/// A flame graph's frames, merged by path.
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn new() -> Tree {
        Tree {
            nodes: vec![Node {
                name: String::new(),
                kind: Kind::Code,
                count: 0,
                children: BTreeMap::new(),
            }],
        }
    }

    fn add(&mut self, frames: &[(String, Kind)], count: u64) {
        self.nodes[0].count += count;
        let mut at = 0;
        for (name, kind) in frames {
            at = match self.nodes[at].children.get(name) {
                Some(&child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(Node {
                        name: name.clone(),
                        kind: *kind,
                        count: 0,
                        children: BTreeMap::new(),
                    });
                    self.nodes[at].children.insert(name.clone(), child);
                    child
                }
            };
            self.nodes[at].count += count;
        }
    }

    /// The smallest count drawn: at least [`MIN_SHARE`] of the whole, and about
    /// [`MAX_FRAMES`] frames at most (frames as wide as the last one kept stay, unless they
    /// would double it). A frame counts at least as much as any frame above it, so the
    /// frames kept always stand on kept frames.
    fn threshold(&self) -> u64 {
        let total = self.nodes[0].count;
        let by_share = ((total as f64 * MIN_SHARE).ceil() as u64).max(1);
        let mut counts: Vec<u64> = self.nodes[1..].iter().map(|n| n.count).collect();
        if counts.len() <= MAX_FRAMES {
            return by_share;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let last = counts[MAX_FRAMES - 1];
        let ties = counts.partition_point(|&n| n >= last);
        let cut = if ties <= 2 * MAX_FRAMES {
            last
        } else {
            last + 1
        };
        by_share.max(cut)
    }

    /// How many levels to draw: up to the last where the frames at least `min` wide fill
    /// [`LEVEL_SHARE`] of the width.
    fn depth(&self, min: u64) -> usize {
        let mut filled: Vec<u64> = Vec::new();
        let mut stack = vec![(0usize, 0usize)];
        while let Some((at, level)) = stack.pop() {
            for &child in self.nodes[at].children.values() {
                let n = self.nodes[child].count;
                if n >= min {
                    if filled.len() <= level {
                        filled.resize(level + 1, 0);
                    }
                    filled[level] += n;
                    stack.push((child, level + 1));
                }
            }
        }
        let enough = (self.nodes[0].count as f64 * LEVEL_SHARE).ceil() as u64;
        filled
            .iter()
            .rposition(|&n| n >= enough)
            .map_or(0, |last| last + 1)
    }
}

/// The frames of one folded line, each with what it is, deep stacks cut in the middle.
fn frames(line: &str, view: View, multi: bool) -> Vec<(String, Kind)> {
    let parts: Vec<&str> = line.split(';').collect();
    let mut out: Vec<(String, Kind)> = parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let state = ThreadState::ALL
                .into_iter()
                .find(|s| s.frame_label() == *part);
            let kind = match (i, state) {
                (0, _) if multi => Kind::Process,
                (_, Some(state)) if view == View::Wall && i + 1 == parts.len() => {
                    Kind::State(state)
                }
                (i, _) if view == View::Wall && i == usize::from(multi) => Kind::Thread,
                _ => Kind::Code,
            };
            (part.to_string(), kind)
        })
        .collect();
    if out.len() > MAX_DEPTH {
        let keep_top = 2;
        let cut = out.len() - (MAX_DEPTH - 1);
        let tail = out.split_off(out.len() - keep_top);
        out.truncate(MAX_DEPTH - 1 - keep_top);
        out.push((format!("[… {cut} frames]"), Kind::Elided));
        out.extend(tail);
    }
    out
}

fn fill(node: &Node) -> String {
    match node.kind {
        Kind::Process => hex(crate::report::PROCESS_RGB),
        Kind::Thread => hex(crate::report::THREAD_RGB),
        Kind::Elided => "#e6e6e6".into(),
        Kind::State(state) => hex(state_rgb(state)),
        Kind::Code => hex(crate::report::code_rgb(&node.name)),
    }
}

fn ink(node: &Node) -> &'static str {
    match node.kind {
        Kind::State(state) => super::canvas::ink_on(state),
        _ => "#222222",
    }
}

/// Draws the view's flame graph; the blame view only when somebody waited.
pub fn draw(c: &mut Canvas, report: &Report, view: View) {
    let multi = !report.subprocesses.is_empty();
    let mut tree = Tree::new();
    let all = std::iter::once((report.target, report.profile))
        .chain(report.subprocesses.iter().map(|s| (&s.info, &s.profile)));
    for (info, profile) in all {
        let root = format!("process {} ({})", info.pid, program(info));
        for (line, count) in folded(profile, view) {
            let line = if multi {
                format!("{root};{line}")
            } else {
                line
            };
            tree.add(&frames(&line, view, multi), count);
        }
    }
    let wall_about;
    let (title, about, unit) = match view {
        View::Blame => (
            "Who makes others wait (blame)",
            "Stacks of the thread holding the GIL, each sample weighted by the number of threads \
             waiting for the GIL meanwhile: the wider a frame, the more waiting it caused.",
            "waiter-samples",
        ),
        _ => {
            let profiles: Vec<&crate::analysis::Profile> = std::iter::once(report.profile)
                .chain(report.subprocesses.iter().map(|s| &s.profile))
                .collect();
            wall_about = format!(
                "Every thread's sampled stacks, outermost frame at the bottom, the thread's \
                 state on top ({}); code frames are pale beige. Hover a frame for its name.",
                crate::report::colour_key(&crate::report::state_columns(&profiles), false)
            );
            ("All threads (wall clock)", wall_about.as_str(), "samples")
        }
    };
    if tree.nodes[0].count == 0 {
        if view == View::Wall {
            c.heading(title, "");
            c.line(
                MARGIN,
                Font::sans(13.0),
                &format!(r#" fill="{DIM}""#),
                "No stack samples were taken.",
            );
        }
        return;
    }
    c.heading(title, about);
    let total = tree.nodes[0].count;
    let min = tree.threshold();
    let depth = tree.depth(min);
    let top = c.y;
    let font = Font::mono(11.0);
    let mut shown = 0usize;
    // Frames drawn from the root up: (node, x, level).
    let mut stack = vec![(0usize, MARGIN, 0usize)];
    while let Some((at, x, level)) = stack.pop() {
        if level == depth {
            continue;
        }
        let mut child_x = x;
        for &child in tree.nodes[at].children.values() {
            let node = &tree.nodes[child];
            let w = node.count as f64 / total as f64 * CONTENT;
            if node.count >= min {
                shown += 1;
                let y = top + (depth - 1 - level) as f64 * FRAME_H;
                let share = node.count as f64 / total as f64 * 100.0;
                c.raw(&format!(
                    "<g><title>{} — {} {unit}, {share:.2}%</title><rect x=\"{child_x:.1}\" \
                     y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>",
                    esc(&node.name),
                    node.count,
                    (w - 0.6).max(0.3),
                    FRAME_H - 1.0,
                    fill(node)
                ));
                let text = fit(&node.name, w - 6.0, font);
                if text.chars().count() >= 3 {
                    c.raw(&format!(
                        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" font-family=\"monospace\" \
                         fill=\"{}\">{}</text>",
                        child_x + 3.0,
                        y + FRAME_H - 5.0,
                        ink(node),
                        esc(&text)
                    ));
                }
                c.raw("</g>\n");
                stack.push((child, child_x, level + 1));
            }
            child_x += w;
        }
    }
    c.y = top + depth as f64 * FRAME_H;
    let mut note = format!("{total} {unit}");
    let left_out = tree.nodes.len() - 1 - shown;
    if left_out > 0 {
        note.push_str(&format!(
            "; {left_out} of {} frames left out: those narrower than {:.2}% of the width, and \
             levels where less than {:.0}% of the width is left",
            tree.nodes.len() - 1,
            min as f64 / total as f64 * 100.0,
            LEVEL_SHARE * 100.0
        ));
    }
    if tree.nodes.iter().any(|n| n.kind == Kind::Elided) {
        note.push_str(&format!(
            "; stacks deeper than {MAX_DEPTH} frames are cut in the middle"
        ));
    }
    c.y += 4.0;
    c.line(
        MARGIN,
        Font::sans(11.0),
        &format!(r#" fill="{DIM}""#),
        &note,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_stacks_keep_their_root_leaf_and_state() {
        let mut line: Vec<String> = vec!["t1".into()];
        line.extend((0..100).map(|i| format!("f{i} (a.py:1)")));
        line.push("[holding GIL]".into());
        let frames = frames(&line.join(";"), View::Wall, false);
        assert_eq!(frames.len(), MAX_DEPTH);
        assert_eq!(frames[0].1, Kind::Thread);
        assert_eq!(frames[MAX_DEPTH - 2].0, "f99 (a.py:1)");
        assert_eq!(frames[MAX_DEPTH - 1].1, Kind::State(ThreadState::Holding));
        assert!(frames.iter().any(|f| f.1 == Kind::Elided));
    }

    #[test]
    fn a_narrow_tower_does_not_make_the_graph_tall() {
        let mut tree = Tree::new();
        let wide: Vec<(String, Kind)> = (0..5).map(|d| (format!("w{d}"), Kind::Code)).collect();
        tree.add(&wide, 990);
        let tower: Vec<(String, Kind)> = (0..30).map(|d| (format!("t{d}"), Kind::Code)).collect();
        tree.add(&tower, 10);
        assert_eq!(tree.depth(tree.threshold()), 5);
        // Many narrow stacks side by side fill a level as well as one wide one.
        let mut threads = Tree::new();
        for k in 0..64 {
            let stack: Vec<(String, Kind)> =
                (0..12).map(|d| (format!("k{k}_{d}"), Kind::Code)).collect();
            threads.add(&stack, 10);
        }
        assert_eq!(threads.depth(threads.threshold()), 12);
    }

    #[test]
    fn frames_beyond_the_cap_are_dropped_narrowest_first_never_under_a_kept_one() {
        // 900 distinct chains 10 frames deep, all wider than MIN_SHARE: 9000 frames.
        let mut tree = Tree::new();
        for i in 0..900u64 {
            let chain: Vec<(String, Kind)> =
                (0..10).map(|d| (format!("f{i}_{d}"), Kind::Code)).collect();
            tree.add(&chain, 10 + i % 5);
        }
        let min = tree.threshold();
        let kept: Vec<&Node> = tree.nodes[1..].iter().filter(|n| n.count >= min).collect();
        assert!(
            (MAX_FRAMES / 2..=2 * MAX_FRAMES).contains(&kept.len()),
            "{}",
            kept.len()
        );
        // Whole chains are kept or dropped: the widest ones.
        assert_eq!(kept.len() % 10, 0);
        assert!(kept.iter().all(|n| n.count >= 13));
    }
}
