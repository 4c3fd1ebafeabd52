//! Flame graphs drawn as plain rectangles (no script): the wall view, every thread with its
//! state as the top frame, and the blame view, holder stacks weighted by waiters. Each frame
//! carries a `<title>` with its full name and count, for hovering. Deep stacks are cut in the
//! middle, and what is drawn (narrow frames and thin towers left out) is
//! [`crate::report::flametree`]'s rule, shared with the standalone flame graphs; the legend
//! names what was drawn.

use super::canvas::{clean, fit, hex, ink_on, Canvas, Font, CONTENT, DIM, MARGIN};
use crate::analysis::View;
use crate::report::flametree::{self, Node, Tree};
use crate::report::{code_rgb, text, Paint, Report};

/// Frames deeper than this are folded into one `[… n frames]` frame, keeping the outermost
/// ones and the last two (the leaf, and in the wall view its state).
const MAX_DEPTH: usize = 40;
const FRAME_H: f64 = 17.0;

fn fill(node: &Node) -> String {
    match node.paint {
        Paint::Code => hex(code_rgb(&node.name)),
        paint => hex(paint.fills()[0]),
    }
}

fn ink(node: &Node) -> &'static str {
    match node.paint {
        Paint::State(state) => ink_on(state),
        _ => "#222222",
    }
}

/// Draws the view's flame graph; the blame view only when somebody waited.
pub fn draw(c: &mut Canvas, report: &Report, view: View) {
    let tree = Tree::of(report, view, Some(MAX_DEPTH));
    let (title, about, unit, id) = match view {
        View::Blame => (
            "Who makes others wait (blame)",
            "Stacks of the thread holding the GIL, each sample weighted by the number of threads \
             waiting for the GIL meanwhile: the wider a frame, the more waiting it caused.",
            "waiter-samples",
            "flame-blame",
        ),
        _ => (
            "All threads (wall clock)",
            "Every thread's sampled stacks, outermost frame at the bottom, the thread's state on \
             top. Hover a frame for its name.",
            "samples",
            "flame-wall",
        ),
    };
    if tree.total() == 0 {
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
    let total = tree.total();
    let cut = tree.cut();
    c.begin_picture(id);
    c.legend(&tree.paints(cut));
    c.raw("<g class=\"data\">\n");
    let top = c.y;
    let font = Font::mono(11.0);
    // Frames drawn from the root up: (node, x, level).
    let mut stack = vec![(0usize, MARGIN, 0usize)];
    while let Some((at, x, level)) = stack.pop() {
        if level == cut.depth {
            continue;
        }
        let mut child_x = x;
        for &child in tree.nodes[at].children.values() {
            let node = &tree.nodes[child];
            let w = node.count as f64 / total as f64 * CONTENT;
            if node.count >= cut.min {
                let y = top + (cut.depth - 1 - level) as f64 * FRAME_H;
                let share = node.count as f64 / total as f64 * 100.0;
                c.raw(&format!(
                    "<g><title>{} — {} {unit}, {share:.2}%</title><rect x=\"{child_x:.1}\" \
                     y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>",
                    text::xml(&clean(&node.name)),
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
                        text::xml(&text)
                    ));
                }
                c.raw("</g>\n");
                stack.push((child, child_x, level + 1));
            }
            child_x += w;
        }
    }
    c.raw("</g>\n");
    c.y = top + cut.depth as f64 * FRAME_H;
    let mut note = flametree::note(&tree, cut, unit);
    if tree.nodes.iter().any(|n| n.paint == Paint::Cut) {
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
    c.end_picture();
}
