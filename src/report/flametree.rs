//! A flame graph's frames merged by path, and which of them are drawn: the one rule the SVG
//! report's flame graphs and the standalone (inferno) ones share. Frames narrower than a small
//! share of the whole are not drawn, nor any beyond a few thousand, nor the levels above the
//! last one that still fills a few percent of the width — so a tower of start-up imports a
//! few pixels wide does not make a picture tall and empty. What is drawn decides the height
//! and the legend. Renders nothing itself.

use std::collections::{BTreeMap, BTreeSet};

use super::{Paint, Report};
use crate::analysis::{folded, Paths, View};
use crate::model::ThreadState;

/// Frames narrower than this share of the whole graph are not drawn…
pub(crate) const MIN_SHARE: f64 = 0.001;
/// …nor any beyond this many, narrowest first…
const MAX_FRAMES: usize = 3000;
/// …nor any above the last level where frames still fill this share of the width.
pub(crate) const LEVEL_SHARE: f64 = 0.03;

#[derive(Debug)]
pub(crate) struct Node {
    pub name: String,
    pub paint: Paint,
    pub count: u64,
    /// By name, so that the graph is the same for the same profile.
    pub children: BTreeMap<String, usize>,
}

/// A flame graph's frames, merged by path; node 0 is the root (all samples).
pub(crate) struct Tree {
    pub nodes: Vec<Node>,
}

/// What to draw of a [`Tree`]: frames at least `min` wide, on the first `depth` levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cut {
    pub min: u64,
    pub depth: usize,
}

impl Tree {
    pub fn new() -> Tree {
        Tree {
            nodes: vec![Node {
                name: String::new(),
                paint: Paint::Process,
                count: 0,
                children: BTreeMap::new(),
            }],
        }
    }

    /// The view's stacks of the target and every subprocess, each under a root frame of its
    /// process when there are subprocesses (`process 1234 (app.py)`); with `max_depth`, deeper
    /// stacks are cut in the middle ([`elide`]).
    pub fn of(report: &Report, view: View, max_depth: Option<usize>) -> Tree {
        let multi = !report.subprocesses.is_empty();
        let mut tree = Tree::new();
        for (info, profile) in report.processes() {
            let root = super::collapsed::process_frame(info);
            for (line, count) in folded(profile, view, Paths::Shown(info.cwd.as_deref())) {
                let line = if multi {
                    format!("{root};{line}")
                } else {
                    line
                };
                let mut frames = frames(&line, view, multi);
                if let Some(max) = max_depth {
                    elide(&mut frames, max);
                }
                tree.add(&frames, count);
            }
        }
        tree
    }

    pub fn total(&self) -> u64 {
        self.nodes[0].count
    }

    pub fn add(&mut self, frames: &[(String, Paint)], count: u64) {
        self.nodes[0].count += count;
        let mut at = 0;
        for (name, paint) in frames {
            at = match self.nodes[at].children.get(name) {
                Some(&child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(Node {
                        name: name.clone(),
                        paint: *paint,
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

    /// What to draw: [`Tree::threshold`] and [`Tree::depth`] together.
    pub fn cut(&self) -> Cut {
        let min = self.threshold();
        Cut {
            min,
            depth: self.depth(min),
        }
    }

    /// The smallest count drawn: at least [`MIN_SHARE`] of the whole, and about
    /// [`MAX_FRAMES`] frames at most (frames as wide as the last one kept stay, unless they
    /// would double it). A frame counts at least as much as any frame above it, so the
    /// frames kept always stand on kept frames.
    pub fn threshold(&self) -> u64 {
        let total = self.total();
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
    pub fn depth(&self, min: u64) -> usize {
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
        let enough = (self.total() as f64 * LEVEL_SHARE).ceil() as u64;
        filled
            .iter()
            .rposition(|&n| n >= enough)
            .map_or(0, |last| last + 1)
    }

    /// The frames drawn under `cut`, as (node, level), parents before their children.
    pub fn drawn(&self, cut: Cut) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut stack = vec![(0usize, 0usize)];
        while let Some((at, level)) = stack.pop() {
            if level == cut.depth {
                continue;
            }
            for &child in self.nodes[at].children.values().rev() {
                if self.nodes[child].count >= cut.min {
                    out.push((child, level));
                    stack.push((child, level + 1));
                }
            }
        }
        out
    }

    /// What the frames drawn under `cut` are, in legend order: the picture's legend.
    pub fn paints(&self, cut: Cut) -> Vec<Paint> {
        let set: BTreeSet<Paint> = self
            .drawn(cut)
            .iter()
            .map(|&(n, _)| self.nodes[n].paint)
            .collect();
        set.into_iter().collect()
    }

    /// Frames that `cut` leaves out.
    pub fn left_out(&self, cut: Cut) -> usize {
        self.nodes.len() - 1 - self.drawn(cut).len()
    }
}

/// The frames of one folded line, each with what it is: a process root (with subprocesses),
/// in the wall view the thread root and the state on top, code otherwise.
pub(crate) fn frames(line: &str, view: View, multi: bool) -> Vec<(String, Paint)> {
    let parts: Vec<&str> = line.split(';').collect();
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let state = ThreadState::ALL
                .into_iter()
                .find(|s| s.frame_label() == *part);
            let paint = match (i, state) {
                (0, _) if multi => Paint::Process,
                (_, Some(state)) if view == View::Wall && i + 1 == parts.len() => {
                    Paint::State(state)
                }
                (i, _) if view == View::Wall && i == usize::from(multi) => Paint::Thread,
                _ => Paint::Code,
            };
            (part.to_string(), paint)
        })
        .collect()
}

/// Cuts a stack deeper than `max` frames in the middle: the outermost frames and the last two
/// (the leaf, and in the wall view its state) stay, one `[… n frames]` frame between them.
pub(crate) fn elide(frames: &mut Vec<(String, Paint)>, max: usize) {
    if frames.len() <= max {
        return;
    }
    let keep_top = 2;
    let cut = frames.len() - (max - 1);
    let tail = frames.split_off(frames.len() - keep_top);
    frames.truncate(max - 1 - keep_top);
    frames.push((format!("[… {cut} frames]"), Paint::Cut));
    frames.extend(tail);
}

/// The note under a flame graph: how many samples, and what was left out and why.
pub(crate) fn note(tree: &Tree, cut: Cut, unit: &str) -> String {
    let total = tree.total();
    let mut note = format!("{total} {unit}");
    let left_out = tree.left_out(cut);
    if left_out > 0 {
        note.push_str(&format!(
            "; {left_out} of {} frames left out: those narrower than {:.2}% of the width, and \
             levels where less than {:.0}% of the width is left",
            tree.nodes.len() - 1,
            cut.min as f64 / total.max(1) as f64 * 100.0,
            LEVEL_SHARE * 100.0
        ));
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(names: impl Iterator<Item = String>) -> Vec<(String, Paint)> {
        names.map(|n| (n, Paint::Code)).collect()
    }

    #[test]
    fn deep_stacks_keep_their_root_leaf_and_state() {
        let mut line: Vec<String> = vec!["t1".into()];
        line.extend((0..100).map(|i| format!("f{i} (a.py:1)")));
        line.push("[holding GIL]".into());
        let mut f = frames(&line.join(";"), View::Wall, false);
        elide(&mut f, 40);
        assert_eq!(f.len(), 40);
        assert_eq!(f[0].1, Paint::Thread);
        assert_eq!(f[38].0, "f99 (a.py:1)");
        assert_eq!(f[39].1, Paint::State(ThreadState::Holding));
        assert!(f.iter().any(|f| f.1 == Paint::Cut));
    }

    #[test]
    fn a_narrow_tower_does_not_make_the_graph_tall() {
        let mut tree = Tree::new();
        tree.add(&code((0..5).map(|d| format!("w{d}"))), 990);
        tree.add(&code((0..30).map(|d| format!("t{d}"))), 10);
        let cut = tree.cut();
        assert_eq!(cut.depth, 5);
        // The tower's base is drawn, its top is not.
        let drawn = tree.drawn(cut);
        assert_eq!(drawn.len(), 10);
        assert!(drawn.iter().all(|&(_, level)| level < 5));
        assert_eq!(tree.left_out(cut), 25);
        // Many narrow stacks side by side fill a level as well as one wide one.
        let mut threads = Tree::new();
        for k in 0..64 {
            threads.add(&code((0..12).map(|d| format!("k{k}_{d}"))), 10);
        }
        assert_eq!(threads.cut().depth, 12);
    }

    #[test]
    fn frames_beyond_the_cap_are_dropped_narrowest_first_never_under_a_kept_one() {
        // 900 distinct chains 10 frames deep, all wider than MIN_SHARE: 9000 frames.
        let mut tree = Tree::new();
        for i in 0..900u64 {
            tree.add(&code((0..10).map(|d| format!("f{i}_{d}"))), 10 + i % 5);
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

    #[test]
    fn the_legend_is_what_is_drawn() {
        let mut tree = Tree::new();
        let line = "t1;run (a.py:1);[holding GIL]";
        tree.add(&frames(line, View::Wall, false), 1999);
        // A state one sample wide is not drawn, so not in the legend.
        tree.add(&frames("t1;run (a.py:1);[sleeping]", View::Wall, false), 1);
        assert_eq!(
            tree.paints(tree.cut()),
            [
                Paint::State(ThreadState::Holding),
                Paint::Code,
                Paint::Thread
            ]
        );
        // In the other views the same names are code; with subprocesses a process comes first.
        let f = frames("process 1 (a.py);t1;[holding GIL]", View::Holders, true);
        assert_eq!(f[0].1, Paint::Process);
        assert!(f[1..].iter().all(|(_, p)| *p == Paint::Code));
    }
}
