//! The colour language of every picture — the SVG report's bars, timeline and flame graphs, and
//! the standalone flame graphs: each thread state has a colour of its own that nothing else
//! uses; code frames are one pale sand hue in a few shades, which no state has; the root frames
//! of threads and processes, frames cut from deep stacks and the timeline's slices without a
//! sample have pale colours of their own. [`Paint`] is what a legend can name, with its colours
//! and words, so that every legend is built from what its picture drew.

use crate::model::ThreadState;

pub(crate) type Rgb = (u8, u8, u8);

/// The colour of each state in every graphic format: holding green, waiting red, handoff
/// orange, native blue, ready (no CPU) yellow, lock purple, I/O brown, sleep light grey,
/// idle grey, running without a GIL (free-threaded builds) teal.
pub(crate) fn state_rgb(state: ThreadState) -> Rgb {
    match state {
        ThreadState::Holding => (60, 170, 80),
        ThreadState::Waiting => (220, 50, 47),
        ThreadState::Handoff => (240, 150, 40),
        ThreadState::Native => (70, 130, 200),
        ThreadState::Ready => (235, 200, 50),
        ThreadState::Lock => (150, 90, 190),
        ThreadState::Io => (150, 110, 70),
        ThreadState::Sleep => (210, 210, 210),
        ThreadState::Idle => (170, 170, 170),
        ThreadState::Running => (30, 160, 150),
    }
}

/// The colour of a state by name, for the words beside a legend's swatch.
pub(crate) fn colour_name(state: ThreadState) -> &'static str {
    match state {
        ThreadState::Holding => "green",
        ThreadState::Waiting => "red",
        ThreadState::Handoff => "orange",
        ThreadState::Native => "blue",
        ThreadState::Ready => "yellow",
        ThreadState::Lock => "purple",
        ThreadState::Io => "brown",
        ThreadState::Sleep => "light grey",
        ThreadState::Idle => "grey",
        ThreadState::Running => "teal",
    }
}

/// The root frame of a process's stacks (with subprocesses), and inferno's `all`: pale
/// lavender.
pub(crate) const PROCESS_RGB: Rgb = (190, 168, 216);
/// The root frame of a thread's stacks in the wall view: pale steel blue.
pub(crate) const THREAD_RGB: Rgb = (165, 185, 220);
/// Code frames: shades of one pale sand hue, picked by the frame's name (function, file and
/// line) so that neighbours part, the same frame the same shade everywhere.
pub(crate) const CODE_SHADES: [Rgb; 4] = [
    (238, 222, 184),
    (226, 208, 166),
    (244, 230, 196),
    (231, 214, 174),
];
/// A frame that stands for the middle of a stack too deep to draw.
pub(crate) const CUT_RGB: Rgb = (247, 247, 247);
/// A timeline slice in which the sampler saw the process but not this thread: before the
/// thread started or after it ended.
pub(crate) const ABSENT_RGB: Rgb = (236, 236, 236);
/// The stripes of a timeline slice with no sample at all: the sampler got no CPU in time.
pub(crate) const SKIPPED_RGB: Rgb = (150, 150, 150);

/// A code frame's colour, by its name (`function (file:line)`).
pub(crate) fn code_rgb(frame: &str) -> Rgb {
    // FNV-1a: stable across runs and platforms.
    let h = frame.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    CODE_SHADES[(h % CODE_SHADES.len() as u64) as usize]
}

/// Something a picture draws in a colour of its own, which its legend names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Paint {
    State(ThreadState),
    Code,
    Thread,
    Process,
    /// The middle of a stack too deep to draw, as one frame.
    Cut,
    /// Timeline: the thread did not exist yet, or any more.
    Absent,
    /// Timeline: the sampler took no sample (it got no CPU in time); drawn hatched.
    Skipped,
}

impl Paint {
    /// The colours it is drawn in: one, or for code frames its shades.
    pub(crate) fn fills(self) -> Vec<Rgb> {
        match self {
            Paint::State(s) => vec![state_rgb(s)],
            Paint::Code => CODE_SHADES.to_vec(),
            Paint::Thread => vec![THREAD_RGB],
            Paint::Process => vec![PROCESS_RGB],
            Paint::Cut => vec![CUT_RGB],
            Paint::Absent => vec![ABSENT_RGB],
            Paint::Skipped => vec![SKIPPED_RGB],
        }
    }

    /// The words beside its swatch.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Paint::State(s) => super::state_label(s),
            Paint::Code => "code",
            Paint::Thread => "thread",
            Paint::Process => "process",
            Paint::Cut => "frames cut from a deep stack",
            Paint::Absent => "thread not started or ended",
            Paint::Skipped => "no sample: sampler got no CPU",
        }
    }

    /// What it stands for, in a sentence, for hovering its swatch.
    pub(crate) fn meaning(self) -> String {
        match self {
            Paint::State(s) => format!(
                "{} ({}): {}",
                s.key(),
                colour_name(s),
                super::state_meaning(s)
            ),
            Paint::Code => "code (pale sand, a few shades so that neighbours part): a \
                            Python function and the line it was at"
                .into(),
            Paint::Thread => "thread (pale steel blue): the root of one thread's stacks".into(),
            Paint::Process => "process (pale lavender): all the samples of one process".into(),
            Paint::Cut => "frames cut (near white): the middle of a stack deeper than can be \
                           drawn, as one frame that says how many"
                .into(),
            Paint::Absent => "not started or ended (light grey): the process was sampled but \
                              this thread did not exist then"
                .into(),
            Paint::Skipped => "no sample (grey stripes): ticks the sampler skipped, having \
                               fallen behind (no CPU in time, or ticks longer than their \
                               period); the run's header counts them"
                .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distance(a: Rgb, b: Rgb) -> f64 {
        let d = |x: u8, y: u8| (f64::from(x) - f64::from(y)).powi(2);
        (d(a.0, b.0) + d(a.1, b.1) + d(a.2, b.2)).sqrt()
    }

    #[test]
    fn state_colours_are_reserved_for_states() {
        let states: Vec<Rgb> = ThreadState::ALL.map(state_rgb).to_vec();
        let distinct: std::collections::HashSet<_> = states.iter().collect();
        assert_eq!(distinct.len(), ThreadState::COUNT);
        let names: std::collections::HashSet<_> = ThreadState::ALL.map(colour_name).into();
        assert_eq!(names.len(), ThreadState::COUNT);
        // Whatever else is drawn stays well away from every state's colour (Euclidean RGB),
        // so that no frame, root or gap reads as a state.
        let others = [
            Paint::Code,
            Paint::Thread,
            Paint::Process,
            Paint::Cut,
            Paint::Absent,
        ];
        for paint in others {
            for rgb in paint.fills() {
                for (state, s) in ThreadState::ALL.iter().zip(&states) {
                    assert!(
                        distance(rgb, *s) >= 35.0,
                        "{paint:?} {rgb:?} is close to {state:?}'s {s:?}"
                    );
                }
            }
        }
        // Code frames are a code shade whatever the function.
        for f in ["compute (app.py:1)", "run", "", "<module> (x.py:3)", "a"] {
            assert!(CODE_SHADES.contains(&code_rgb(f)), "{f}");
        }
        // Neighbours part: the shades of a function's lines are not all one.
        let lines: std::collections::HashSet<Rgb> = (1..20)
            .map(|l| code_rgb(&format!("compute (app.py:{l})")))
            .collect();
        assert!(lines.len() > 1);
    }

    #[test]
    fn every_paint_has_words_of_its_own() {
        let all: Vec<Paint> = ThreadState::ALL
            .map(Paint::State)
            .into_iter()
            .chain([
                Paint::Code,
                Paint::Thread,
                Paint::Process,
                Paint::Cut,
                Paint::Absent,
                Paint::Skipped,
            ])
            .collect();
        let labels: std::collections::HashSet<_> = all.iter().map(|p| p.label()).collect();
        assert_eq!(labels.len(), all.len());
        assert_eq!(
            Paint::State(ThreadState::Lock).meaning(),
            "lock (purple): blocked on a lock, condition, event, queue or join"
        );
    }
}
