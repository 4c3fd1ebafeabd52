//! Folded stacks (`frame;frame;frame count`), the input of flame graphs, for each view
//! (docs/DESIGN.md, "Flame-graph views").

use std::collections::BTreeMap;

use super::Profile;
use crate::model::{Frame, ThreadState, MAX_NAME_CHARS};
use crate::report::text;

/// One folded line: frames outermost first, joined by `;`, and its weight.
pub type FoldedLine = (String, u64);

/// Which stacks a flame graph shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Every thread's stacks, the thread as the root frame and its state as the top frame.
    Wall,
    /// Stacks of the thread holding the GIL.
    Holders,
    /// Holder stacks weighted by the number of threads waiting at that tick: the code that
    /// makes others wait.
    Blame,
    /// Where threads stand when they wait for the GIL.
    Waiters,
}

/// A frame or thread name made safe for the folded format, whose separators are `;` between
/// frames and the last space before the count ([`text::folded`]): target strings are hostile.
/// Names stay as long as the model keeps them ([`MAX_NAME_CHARS`]), escapes included.
fn clean(s: &str) -> String {
    text::folded(s, MAX_NAME_CHARS)
}

/// How frames name their files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paths<'a> {
    /// The path CPython has, for files other tools read (collapsed stacks).
    Full,
    /// As a user reads it in a picture ([`super::code::display_path`]): relative to the
    /// program's working directory (given here) for its own files, `package/module.py` for
    /// installed packages and the standard library.
    Shown(Option<&'a str>),
}

/// `function (file:line)`, as py-spy and inferno show frames.
pub fn frame_label(f: &Frame, paths: Paths) -> String {
    let file = match paths {
        Paths::Full => &*f.file,
        Paths::Shown(cwd) => super::code::display_path(&f.file, cwd),
    };
    format!("{} ({}:{})", clean(&f.function), clean(file), f.line)
}

fn join(root: Option<String>, frames: &[Frame], top: Option<&str>, paths: Paths) -> String {
    let mut parts: Vec<String> = root.into_iter().collect();
    parts.extend(frames.iter().map(|f| frame_label(f, paths)));
    parts.extend(top.map(str::to_string));
    if parts.is_empty() {
        // A thread sampled with no Python frame (starting up, or in C only).
        parts.push("[no Python frames]".into());
    }
    parts.join(";")
}

/// The folded lines of one view, sorted, equal stacks merged.
pub fn folded(profile: &Profile, view: View, paths: Paths) -> Vec<FoldedLine> {
    let names: BTreeMap<_, _> = profile.threads.iter().map(|t| (t.tid, t.label())).collect();
    let mut lines: BTreeMap<String, u64> = BTreeMap::new();
    let wanted = match view {
        View::Holders => Some(ThreadState::Holding),
        View::Waiters => Some(ThreadState::Waiting),
        View::Wall | View::Blame => None,
    };
    match view {
        View::Blame => {
            for (id, weight) in &profile.blame {
                *lines
                    .entry(join(None, profile.stacks.get(*id), None, paths))
                    .or_default() += weight;
            }
        }
        _ => {
            for ((tid, state, id), n) in &profile.stack_counts {
                if wanted.is_some_and(|w| w != *state) {
                    continue;
                }
                let line = if view == View::Wall {
                    let thread = names
                        .get(tid)
                        .cloned()
                        .unwrap_or_else(|| format!("thread {tid}"));
                    join(
                        Some(clean(&thread)),
                        profile.stacks.get(*id),
                        Some(state.frame_label()),
                        paths,
                    )
                } else {
                    join(None, profile.stacks.get(*id), None, paths)
                };
                *lines.entry(line).or_default() += n;
            }
        }
    }
    lines.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Accumulator;
    use crate::model::{Sample, StackTick, StateTick, ThreadInfo, ThreadObservation, ThreadStack};
    use std::time::Duration;

    #[test]
    fn separators_and_control_characters_cannot_split_a_frame() {
        assert_eq!(clean("a;b\nc d"), "a\\x3bb\\nc d");
        let long = "x".repeat(10_000);
        assert_eq!(clean(&long).chars().count(), MAX_NAME_CHARS);
        // A long function keeps its file and line.
        let f = Frame {
            function: long.into(),
            file: "a;b.py".into(),
            line: 7,
        };
        assert!(frame_label(&f, Paths::Full).ends_with("… (a\\x3bb.py:7)"));
    }

    #[test]
    fn frame_labels_show_the_file_as_asked() {
        let f = Frame {
            function: "compute".into(),
            file: "/srv/app/app.py".into(),
            line: 12,
        };
        assert_eq!(
            frame_label(&f, Paths::Shown(None)),
            "compute (/srv/app/app.py:12)"
        );
        assert_eq!(
            frame_label(&f, Paths::Shown(Some("/srv/app"))),
            "compute (app.py:12)"
        );
        assert_eq!(frame_label(&f, Paths::Full), "compute (/srv/app/app.py:12)");
    }

    fn f(name: &str) -> Frame {
        Frame {
            function: name.into(),
            file: "app.py".into(),
            line: 1,
        }
    }

    /// Two stack ticks: `hot` holds while 3 threads wait, then `cold` holds while 1 waits.
    fn profile() -> Profile {
        let mut acc = Accumulator::default();
        acc.push(Sample::Thread(ThreadInfo {
            tid: 1,
            name: Some("w1".into()),
            interpreter: 0,
        }));
        acc.push(Sample::State(StateTick {
            at: Duration::ZERO,
            gils: Vec::new(),
            threads: vec![ThreadObservation {
                tid: 1,
                state: ThreadState::Holding,
                on_cpu: true,
                gil: 0,
                ..Default::default()
            }],
        }));
        for (waiters, leaf) in [(3u32, "hot"), (1, "cold")] {
            let mut stacks = vec![ThreadStack {
                tid: 1,
                state: ThreadState::Holding,
                on_cpu: true,
                frames: vec![f("main"), f(leaf)].into(),
                ..Default::default()
            }];
            for tid in 2..2 + waiters as i32 {
                stacks.push(ThreadStack {
                    tid,
                    state: ThreadState::Waiting,
                    on_cpu: false,
                    frames: vec![f("main"), f("step")].into(),
                    ..Default::default()
                });
            }
            acc.push(Sample::Stacks(StackTick {
                at: Duration::ZERO,
                waiters,
                stacks,
            }));
        }
        acc.finish(0, 2)
    }

    #[test]
    fn blame_weights_the_holder_by_its_waiters() {
        let p = profile();
        let blame = folded(&p, View::Blame, Paths::Full);
        assert_eq!(
            blame,
            [
                ("main (app.py:1);cold (app.py:1)".to_string(), 1),
                ("main (app.py:1);hot (app.py:1)".to_string(), 3)
            ]
        );
        assert_eq!(p.top_blame[0].function, "hot");
        assert_eq!(p.top_blame[0].share, 0.75);
        // The holder view counts samples, not waiters.
        let holders = folded(&p, View::Holders, Paths::Full);
        assert!(holders.iter().all(|(_, n)| *n == 1), "{holders:?}");
    }

    #[test]
    fn waiters_and_wall_views() {
        let p = profile();
        assert_eq!(
            folded(&p, View::Waiters, Paths::Full),
            [("main (app.py:1);step (app.py:1)".to_string(), 4)]
        );
        let wall = folded(&p, View::Wall, Paths::Full);
        assert!(wall
            .iter()
            .any(|(l, n)| l == "w1;main (app.py:1);hot (app.py:1);[holding GIL]" && *n == 1));
        assert!(wall
            .iter()
            .any(|(l, _)| l.starts_with("thread 2;") && l.ends_with(";[waiting for GIL]")));
    }
}
