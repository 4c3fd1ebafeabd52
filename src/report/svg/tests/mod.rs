//! The SVG report against built profiles: well-formed whatever the run (empty, free-threaded,
//! 64 threads for an hour, subprocesses, hostile names), saying what the terminal says.

use std::time::Duration;

use super::SvgReport;
use crate::analysis::{Accumulator, Profile};
use crate::model::{
    Frame, GilEnabled, GilReading, Sample, StackTick, StateTick, TargetInfo, ThreadInfo,
    ThreadObservation, ThreadStack, ThreadState, Tid,
};
use crate::report::{fixtures, Subprocess};

/// How a synthetic run goes.
struct Run<'a> {
    /// Thread ids and names.
    threads: Vec<(Tid, String)>,
    ticks: u64,
    every: Duration,
    /// The state of thread `k` at tick `i`.
    state: &'a dyn Fn(usize, u64) -> ThreadState,
    free_threaded: bool,
    /// The frames of thread `k`'s stack.
    frames: &'a dyn Fn(usize) -> Vec<Frame>,
}

fn frame(function: &str, file: &str, line: u32) -> Frame {
    Frame {
        function: function.into(),
        file: file.into(),
        line,
    }
}

fn app_frames(k: usize) -> Vec<Frame> {
    let mut frames = vec![
        frame("<module>", "/srv/app/app.py", 40),
        frame("run", "/usr/lib/python3.12/threading.py", 1010),
        frame("worker", "/srv/app/app.py", 20),
    ];
    frames.push(frame(
        ["compute", "parse", "encode"][k % 3],
        "/srv/app/work.py",
        12 + k as u32 % 3,
    ));
    frames
}

fn build(run: &Run) -> Profile {
    let mut acc = Accumulator::default();
    for (tid, name) in &run.threads {
        acc.push(Sample::Thread(ThreadInfo {
            tid: *tid,
            name: Some(name.clone()),
            interpreter: 0,
        }));
    }
    let mut switches = 0;
    let mut last_holder = None;
    for i in 0..run.ticks {
        let at = run.every * i as u32;
        let states: Vec<ThreadState> = (0..run.threads.len()).map(|k| (run.state)(k, i)).collect();
        let holder = states
            .iter()
            .position(|&s| s == ThreadState::Holding)
            .map(|k| run.threads[k].0);
        if holder.is_some() && holder != last_holder {
            switches += 1;
            last_holder = holder;
        }
        acc.push(Sample::State(StateTick {
            at,
            gils: vec![GilReading {
                interpreter: 0,
                locked: holder.is_some(),
                holder,
                switch_number: switches,
                interval_us: 5000,
                enabled: run.free_threaded.then_some(GilEnabled::Disabled),
            }],
            threads: run
                .threads
                .iter()
                .zip(&states)
                .map(|((tid, _), &state)| ThreadObservation {
                    tid: *tid,
                    state,
                    on_cpu: state != ThreadState::Idle,
                    gil: 0,
                    ..Default::default()
                })
                .collect(),
        }));
        if i % 4 == 0 {
            let waiters = states
                .iter()
                .filter(|&&s| s == ThreadState::Waiting)
                .count() as u32;
            acc.push(Sample::Stacks(StackTick {
                at,
                waiters,
                stacks: run
                    .threads
                    .iter()
                    .zip(&states)
                    .enumerate()
                    .map(|(k, ((tid, _), &state))| ThreadStack {
                        tid: *tid,
                        state,
                        on_cpu: state != ThreadState::Idle,
                        frames: (run.frames)(k).into(),
                        ..Default::default()
                    })
                    .collect(),
            }));
        }
        if i == 0 || i + 1 == run.ticks {
            let s = at.as_secs_f64();
            acc.push(Sample::Cpu {
                at,
                process_s: Some(s),
                threads: run
                    .threads
                    .iter()
                    .map(|(tid, _)| (*tid, s / run.threads.len() as f64))
                    .collect(),
                machine: None,
                quota: None,
            });
        }
    }
    acc.finish(0, 8)
}

fn workers(n: usize) -> Vec<(Tid, String)> {
    (0..n)
        .map(|k| (100 + k as Tid, format!("worker-{}", k + 1)))
        .collect()
}

/// `n` threads taking turns with the GIL, a few ticks each, the others waiting: GIL-bound.
fn gil_bound(n: usize, ticks: u64, every: Duration) -> Profile {
    let state = move |k: usize, i: u64| {
        if (i / 5) as usize % n == k {
            ThreadState::Holding
        } else {
            ThreadState::Waiting
        }
    };
    build(&Run {
        threads: workers(n),
        ticks,
        every,
        state: &state,
        free_threaded: false,
        frames: &app_frames,
    })
}

fn target(pid: i32) -> TargetInfo {
    TargetInfo {
        pid,
        python: "3.12.1".into(),
        command: vec!["python3".into(), "app.py".into(), "--threads".into()],
        // What a run of 4 ms ticks, stacks at every 4th, takes: the rates are met.
        state_hz: 250.0,
        stack_hz: 62.5,
        monotonic_zero_ns: 1_000_000_000,
        cwd: Some("/srv".into()),
    }
}

fn render_with(target: &TargetInfo, profile: &Profile, subprocesses: &[Subprocess]) -> String {
    String::from_utf8(fixtures::render(&SvgReport, target, profile, subprocesses)).unwrap()
}

fn render(profile: &Profile) -> String {
    render_with(&target(42), profile, &[])
}

/// Parses the SVG, failing the test with the reason when it is not well-formed.
fn parse(svg: &str) -> roxmltree::Document<'_> {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not XML: {e}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert!(root.attribute("height").unwrap().parse::<f64>().unwrap() > 0.0);
    assert!(
        doc.descendants().all(|n| n.tag_name().name() != "script"),
        "a script element"
    );
    doc
}

/// Every line of text drawn, in order.
fn texts<'a>(doc: &'a roxmltree::Document) -> Vec<&'a str> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect()
}

/// The width of the first horizontal run (`h…`) of a path's `d`, as the timeline draws a
/// slice: `M x y h W v H …`.
fn first_run_width(d: &str) -> f64 {
    let after = d.split('h').nth(1).unwrap_or_else(|| panic!("no h in {d}"));
    after.split('v').next().unwrap().trim().parse().unwrap()
}

fn states_fill(state: ThreadState) -> String {
    crate::report::svg::canvas::state_fill(state)
}

/// Each picture's legend lists exactly the colours the picture drew: every fill of its data
/// is one of a legend key's, and every key's colour is drawn somewhere in it. Code frames' key
/// holds their shades; it counts as drawn when one of them is.
fn assert_legends_match(doc: &roxmltree::Document) {
    let has_class = |n: &roxmltree::Node, c: &str| n.attribute("class") == Some(c);
    let pictures: Vec<_> = doc
        .descendants()
        .filter(|n| has_class(n, "picture"))
        .collect();
    assert!(!pictures.is_empty(), "no picture");
    for picture in pictures {
        let id = picture.attribute("id").unwrap_or("?");
        let keys: Vec<(String, Vec<String>)> = picture
            .descendants()
            .filter(|n| has_class(n, "key"))
            .map(|key| {
                let label = key
                    .descendants()
                    .find(|n| n.has_tag_name("text"))
                    .and_then(|n| n.text())
                    .unwrap_or_default()
                    .to_string();
                let fills = key
                    .descendants()
                    .filter(|n| n.has_tag_name("rect"))
                    .filter_map(|n| n.attribute("fill"))
                    .map(str::to_string)
                    .collect();
                (label, fills)
            })
            .collect();
        let drawn: std::collections::BTreeSet<String> = picture
            .descendants()
            .filter(|n| has_class(n, "data"))
            .flat_map(|d| d.descendants())
            .filter(|n| n.has_tag_name("rect") || n.has_tag_name("path"))
            .filter_map(|n| n.attribute("fill"))
            .map(str::to_string)
            .collect();
        assert!(!drawn.is_empty(), "{id}: nothing drawn");
        for fill in &drawn {
            assert!(
                keys.iter().any(|(_, fills)| fills.contains(fill)),
                "{id}: {fill} is drawn but not in the legend {keys:?}"
            );
        }
        for (label, fills) in &keys {
            assert!(
                fills.iter().any(|f| drawn.contains(f)),
                "{id}: the legend has {label:?} ({fills:?}), which is not drawn"
            );
        }
    }
}

/// The fills of the flame-graph frames of a picture whose names `pred` accepts.
fn frame_fills(
    doc: &roxmltree::Document,
    picture: &str,
    pred: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.attribute("id") == Some(picture))
        .flat_map(|p| p.descendants())
        .filter(|n| n.attribute("class") == Some("data"))
        .flat_map(|d| d.descendants())
        .filter(|n| n.has_tag_name("g"))
        .filter(|g| {
            g.children()
                .find(|c| c.has_tag_name("title"))
                .and_then(|t| t.text())
                .is_some_and(|t| pred(t.split(" — ").next().unwrap_or(t)))
        })
        .filter_map(|g| g.children().find(|c| c.has_tag_name("rect")))
        .filter_map(|r| r.attribute("fill").map(str::to_string))
        .collect()
}

mod content;
mod legend;
mod scale;
