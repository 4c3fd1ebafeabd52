//! Folded stacks (`frame;frame;frame count`), the input of flame graphs.

use std::collections::BTreeMap;

use super::Profile;
use crate::model::Frame;

/// One folded line: frames outermost first, joined by `;`, and its sample count.
pub type FoldedLine = (String, u64);

/// A frame or thread name made safe for the folded format, whose separators are `;` between
/// frames and the last space before the count. Target strings are hostile: control
/// characters and separators are replaced, and very long names are cut.
fn clean(s: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = s
        .chars()
        .map(|c| if c == ';' || c.is_control() { '_' } else { c })
        .take(MAX)
        .collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// `function (file:line)`, as py-spy and inferno show frames.
pub fn frame_label(f: &Frame) -> String {
    let file = f.file.rsplit('/').next().unwrap_or(&f.file);
    clean(&format!("{} ({}:{})", f.function, file, f.line))
}

/// The wall view: every thread's stacks, the thread as the root frame and its state as the
/// top frame, so a flame graph shows who held, who waited and where.
pub fn folded_wall(profile: &Profile) -> Vec<FoldedLine> {
    let names: BTreeMap<_, _> = profile.threads.iter().map(|t| (t.tid, t.label())).collect();
    let mut lines: BTreeMap<String, u64> = BTreeMap::new();
    for ((tid, state, id), n) in &profile.stack_counts {
        let thread = names
            .get(tid)
            .cloned()
            .unwrap_or_else(|| format!("thread {tid}"));
        let mut line = clean(&thread);
        for frame in profile.stacks.get(*id) {
            line.push(';');
            line.push_str(&frame_label(frame));
        }
        line.push(';');
        line.push_str(state.frame_label());
        *lines.entry(line).or_default() += n;
    }
    lines.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_and_control_characters_cannot_split_a_frame() {
        assert_eq!(clean("a;b\nc d"), "a_b_c d");
        let long = "x".repeat(10_000);
        assert_eq!(clean(&long).chars().count(), 201);
    }

    #[test]
    fn frame_labels_use_the_file_name() {
        let f = Frame {
            function: "compute".into(),
            file: "/srv/app/app.py".into(),
            line: 12,
        };
        assert_eq!(frame_label(&f), "compute (app.py:12)");
    }
}
