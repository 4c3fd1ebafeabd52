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
                        frames: (run.frames)(k),
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
        state_hz: 250.0,
        stack_hz: 100.0,
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

fn states_fill(state: ThreadState) -> String {
    super::canvas::state_fill(state)
}

#[test]
fn a_gil_bound_run_shows_its_verdict_threads_and_both_flame_graphs() {
    let p = gil_bound(4, 750, Duration::from_millis(4));
    let svg = render(&p);
    let doc = parse(&svg);
    let text = texts(&doc).join(" ");
    assert!(
        text.contains(&p.verdict.summary),
        "{}\nnot in\n{text}",
        p.verdict.summary
    );
    assert!(text.contains(p.verdict.rule.as_str()), "{}", p.verdict.rule);
    assert!(text.contains("VERDICT: GIL-BOUND"));
    assert!(text.contains("gilscope — pid 42 (python3 app.py --threads), CPython 3.12.1"));
    for k in 0..4 {
        assert!(
            text.contains(&format!("worker-{} ({})", k + 1, 100 + k)),
            "{k}"
        );
    }
    for heading in [
        "GIL",
        "Threads",
        "Timeline",
        "All threads (wall clock)",
        "Who makes others wait (blame)",
    ] {
        assert!(texts(&doc).contains(&heading), "{heading}");
    }
    // Every metric is defined under the table.
    for word in [
        "held:",
        "avg waiters:",
        "contended:",
        "demand:",
        "ceiling:",
        "switches/s:",
    ] {
        assert!(text.contains(word), "{word}");
    }
    // One lane per thread, and handoffs drawn.
    let lanes: Vec<_> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("lane"))
        .collect();
    assert_eq!(lanes.len(), 4);
    assert!(svg.contains("GIL handoffs per second"));
    // Frames name their function and count on hover.
    assert!(doc.descendants().any(|n| n.has_tag_name("title")
        && n.text()
            .is_some_and(|t| t.starts_with("compute (app/work.py:12) — "))));
    // The state colours, exactly.
    assert!(svg.contains(r##"fill="#3caa50""##) && svg.contains(r##"fill="#dc322f""##));
    assert_legends_match(&doc);
}

#[test]
fn the_same_profile_renders_to_the_same_bytes() {
    let a = render(&gil_bound(3, 300, Duration::from_millis(4)));
    let b = render(&gil_bound(3, 300, Duration::from_millis(4)));
    assert!(a == b, "two renders differ");
}

#[test]
fn an_empty_profile_is_a_valid_report_that_says_so() {
    let p = Accumulator::default().finish(0, 2);
    let svg = render(&p);
    let doc = parse(&svg);
    let text = texts(&doc).join(" ");
    assert!(text.contains("No GIL samples were taken"), "{text}");
    assert!(text.contains("no timeline to draw"));
    assert!(text.contains("No stack samples were taken"));
}

#[test]
fn a_free_threaded_run_shows_running_threads_and_a_disabled_gil() {
    let state = |k: usize, i: u64| {
        if (i + k as u64) % 4 == 0 {
            ThreadState::Idle
        } else {
            ThreadState::Running
        }
    };
    let p = build(&Run {
        threads: workers(3),
        ticks: 500,
        every: Duration::from_millis(4),
        state: &state,
        free_threaded: true,
        frames: &app_frames,
    });
    let svg = render(&p);
    let doc = parse(&svg);
    let text = texts(&doc).join(" ");
    assert!(text.contains("VERDICT: GIL DISABLED"), "{text}");
    assert!(text.contains("disabled for the whole run"));
    assert!(text.contains("running, no GIL") && text.contains("idle (other waits)"));
    assert!(!text.contains("waiting for the GIL"), "no GIL states");
    assert!(text.contains("no GIL handoffs"));
    assert!(svg.contains(&format!(r#"fill="{}""#, states_fill(ThreadState::Running))));
    assert!(!text.contains("Who makes others wait"), "nobody waited");
    assert_legends_match(&doc);
}

/// 64 threads for an hour, each changing state at every slice, with deep distinct stacks: the
/// most a report has to draw.
fn busiest_hour() -> Profile {
    let state = |k: usize, i: u64| ThreadState::ALL[(k + i as usize / 3) % 5];
    let frames = |k: usize| {
        let mut f = app_frames(k);
        // Deep and distinct stacks: every thread a stack of its own, 60 frames deep.
        f.extend((0..60).map(|d| frame(&format!("level{d}_{}", k % 16), "/srv/deep.py", d)));
        f
    };
    build(&Run {
        threads: workers(64),
        ticks: 3600 * 3,
        every: Duration::from_millis(333),
        state: &state,
        free_threaded: false,
        frames: &frames,
    })
}

#[test]
fn sixty_four_threads_for_an_hour_stay_small() {
    let p = busiest_hour();
    assert!(p.timeline.buckets > 256, "{}", p.timeline.buckets);
    let svg = render(&p);
    let doc = parse(&svg);
    let elements = doc.descendants().filter(|n| n.is_element()).count();
    eprintln!("64 threads: {elements} elements, {} bytes", svg.len());
    assert!(elements < 60_000, "{elements} elements");
    assert!(svg.len() < 2_000_000, "{} bytes", svg.len());
    let lanes = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("lane"))
        .count();
    assert_eq!(lanes, 64);
    assert_legends_match(&doc);
    // Minutes on the axis of an hour.
    assert!(texts(&doc).contains(&"30 min"), "{:?}", texts(&doc));
    // Lanes stay at least 6 px high.
    let height: f64 = doc
        .root_element()
        .attribute("height")
        .unwrap()
        .parse()
        .unwrap();
    assert!(height > 64.0 * 6.0 * 2.0);
}

#[test]
fn a_thread_that_holds_the_whole_run_is_one_rectangle() {
    let p = build(&Run {
        threads: vec![(1, "solo".into())],
        ticks: 5000,
        every: Duration::from_millis(4),
        state: &|_, _| ThreadState::Holding,
        free_threaded: false,
        frames: &app_frames,
    });
    assert!(p.timeline.buckets > 100);
    let svg = render(&p);
    let doc = parse(&svg);
    let lane = doc
        .descendants()
        .find(|n| n.attribute("class") == Some("lane"))
        .expect("a lane");
    let holding = states_fill(ThreadState::Holding);
    let shapes: Vec<_> = lane.children().filter(|n| n.has_tag_name("path")).collect();
    // One path for the one state, holding one rectangle for the whole run.
    assert_eq!(shapes.len(), 1, "{shapes:?}");
    assert_eq!(shapes[0].attribute("fill"), Some(holding.as_str()));
    let d = shapes[0].attribute("d").unwrap();
    assert_eq!(d.matches('M').count(), 1, "{d}");
    // It spans the lanes' width.
    let run_width: f64 = d
        .split('h')
        .nth(1)
        .unwrap()
        .split('v')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (super::timeline::LANES_W - run_width).abs() < 1.0,
        "{run_width} of {}",
        super::timeline::LANES_W
    );
    assert_legends_match(&doc);
    let texts = texts(&doc).join(" ");
    assert!(texts.contains("solo (1)"));
    assert!(
        texts.contains("VERDICT: SINGLE-THREAD CPU-BOUND"),
        "{texts}"
    );
}

#[test]
fn subprocesses_get_a_table_and_lanes_of_their_own() {
    let main = build(&Run {
        threads: vec![(10, "MainThread".into())],
        ticks: 400,
        every: Duration::from_millis(4),
        state: &|_, _| ThreadState::Idle,
        free_threaded: false,
        frames: &app_frames,
    });
    // 12 starts 0.3 s after the target; 13's time zero is not known.
    let children: Vec<Subprocess> = [(11, Some(0u64)), (12, Some(300_000_000)), (13, None)]
        .into_iter()
        .map(|(pid, later_ns)| Subprocess {
            info: TargetInfo {
                pid,
                command: vec!["python3".into(), "/srv/pool_worker.py".into()],
                monotonic_zero_ns: later_ns.map_or(0, |ns| 1_000_000_000 + ns),
                ..target(pid)
            },
            profile: build(&Run {
                threads: vec![(pid, "MainThread".into())],
                ticks: 300,
                every: Duration::from_millis(4),
                state: &|_, _| ThreadState::Holding,
                free_threaded: false,
                frames: &app_frames,
            }),
        })
        .collect();
    let svg = render_with(&target(10), &main, &children);
    let doc = parse(&svg);
    let texts = texts(&doc);
    let all = texts.join(" ");
    assert!(texts.contains(&"Processes"));
    for pid in ["10", "11", "12", "13"] {
        assert!(texts.contains(&pid), "pid {pid} in the table");
    }
    assert!(
        all.contains("process 11 (pool_worker.py) — single-thread CPU-bound"),
        "{all}"
    );
    assert!(all.contains("process 12 (pool_worker.py)"));
    assert!(all.contains("All 4 processes"));
    assert!(all.contains("3 processes each kept a GIL of its own busy"));
    let lanes = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("lane"))
        .collect::<Vec<_>>();
    assert_eq!(lanes.len(), 4);
    // On one axis: the target's 1.6 s run is the whole width, 12 starts 0.3 s in, and 13
    // (time zero unknown) is drawn from the start.
    let first_x = |lane: &roxmltree::Node| -> f64 {
        let d = lane
            .children()
            .find(|n| n.has_tag_name("path"))
            .unwrap()
            .attribute("d")
            .unwrap();
        d[1..].split(' ').next().unwrap().parse().unwrap()
    };
    let (x10, x12, x13) = (first_x(&lanes[0]), first_x(&lanes[2]), first_x(&lanes[3]));
    assert!((x13 - x10).abs() < 0.5, "{x13} vs {x10}");
    let per_s = (super::timeline::LANES_W) / 1.6;
    assert!((x12 - x10 - 0.3 * per_s).abs() < 15.0, "{x12} vs {x10}");
    // The flame graph roots each process's stacks in a frame of its own.
    assert!(svg.contains("<title>process 12 (pool_worker.py) — "));
    assert_legends_match(&doc);
}

/// Names a hostile target could give its threads, functions, files and command line.
fn hostile() -> (TargetInfo, Profile) {
    let evil = "</svg><script>alert(1)</script>";
    let long = format!("{evil}{}", "&\"'<>\u{0}\u{1b}[31m".repeat(1000));
    let frames = move |_: usize| {
        vec![
            frame(evil, "/tmp/<img src=x onerror=alert(1)>.py", 1),
            frame(&"x".repeat(10_000), "\u{202e}yp.evil", 2),
        ]
    };
    let p = build(&Run {
        threads: vec![(1, evil.into()), (2, long.clone())],
        ticks: 200,
        every: Duration::from_millis(4),
        state: &|k, i| {
            if (i as usize + k) % 2 == 0 {
                ThreadState::Holding
            } else {
                ThreadState::Waiting
            }
        },
        free_threaded: false,
        frames: &frames,
    });
    let mut info = target(7);
    info.command = vec!["python3".into(), evil.into(), long];
    (info, p)
}

#[test]
fn hostile_names_are_escaped_and_cut() {
    let (info, p) = hostile();
    let svg = render_with(&info, &p, &[]);
    let doc = parse(&svg);
    assert!(!svg.contains("<script"), "raw markup from the target");
    assert!(!svg.contains("<img"));
    assert!(!svg.contains('\u{1b}') && !svg.contains('\u{202e}'));
    assert!(svg.contains("&lt;/svg&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
    // The name reads as itself once parsed.
    let texts = texts(&doc);
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("</svg><script>alert(1)</script> (1)")),
        "{texts:?}"
    );
    // 10 kB names are cut: no text or title holds more than a few hundred characters.
    let longest = doc
        .descendants()
        .filter_map(|n| n.text())
        .map(|t| t.chars().count())
        .max()
        .unwrap();
    assert!(longest < 400, "{longest}");
    assert!(svg.len() < 200_000, "{} bytes", svg.len());
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

#[test]
fn every_state_is_in_the_legend_the_bars_and_the_lanes_in_its_colour() {
    let p = crate::report::fixtures::every_state(500);
    let svg = render(&p);
    let doc = parse(&svg);
    let text = texts(&doc);
    assert_legends_match(&doc);
    let legend_of = |id: &str| -> Vec<&str> {
        doc.descendants()
            .filter(|n| n.attribute("id") == Some(id))
            .flat_map(|p| p.descendants())
            .filter(|n| n.attribute("class") == Some("key"))
            .filter_map(|k| k.descendants().find(|n| n.has_tag_name("text")))
            .filter_map(|t| t.text())
            .collect()
    };
    // Every state of a build with a GIL is in the threads' legend, in the order of the
    // tables; the timeline's has those that rule a slice (handoff, one tick in nine of one
    // thread, never does), the wall flame graph's those of some stack sample.
    let labels: Vec<&str> = ThreadState::WITH_GIL
        .into_iter()
        .map(super::canvas::legend_label)
        .collect();
    assert_eq!(legend_of("threads"), labels);
    let timeline = legend_of("timeline");
    assert!(!timeline.contains(&"handing off the GIL"), "{timeline:?}");
    assert!(timeline.contains(&"waiting on a lock") && timeline.contains(&"sleeping"));
    let wall = legend_of("flame-wall");
    assert!(
        wall.contains(&"code") && wall.contains(&"thread"),
        "{wall:?}"
    );
    assert!(!text.contains(&"running, no GIL"), "a build with a GIL");
    // State colours are reserved: each state's frame is in its colour, and no other frame
    // (code, thread) is in any state's colour.
    for state in ThreadState::WITH_GIL {
        let fills = frame_fills(&doc, "flame-wall", &|name| name == state.frame_label());
        assert!(!fills.is_empty(), "{state:?}");
        assert!(
            fills.iter().all(|f| *f == states_fill(state)),
            "{state:?}: {fills:?}"
        );
    }
    let state_fills: Vec<String> = ThreadState::ALL.into_iter().map(states_fill).collect();
    for picture in ["flame-wall", "flame-blame"] {
        let others = frame_fills(&doc, picture, &|name| {
            !ThreadState::ALL.iter().any(|s| s.frame_label() == name)
        });
        assert!(!others.is_empty(), "{picture}");
        assert!(
            others.iter().all(|f| !state_fills.contains(f)),
            "{picture}: {others:?}"
        );
    }
    // Hovering a swatch says what the state counts.
    assert!(doc.descendants().any(|n| n.has_tag_name("title")
        && n.text() == Some("lock (purple): blocked on a lock, condition, event, queue or join")));
    // Shares drawn on light colours are dark, on dark ones white.
    let ink = |state: ThreadState| super::canvas::ink_on(state);
    for light in [ThreadState::Ready, ThreadState::Sleep, ThreadState::Idle] {
        assert_eq!(ink(light), "#222222", "{light:?}");
    }
    for dark in [ThreadState::Waiting, ThreadState::Lock, ThreadState::Io] {
        assert_eq!(ink(dark), "#ffffff", "{dark:?}");
    }
    // A switch interval below a millisecond reads in µs.
    assert!(text.contains(&"500 µs"), "{text:?}");
}

#[test]
fn slices_without_a_sample_say_why_in_the_legend() {
    // Three threads for 2 s; the sampler gets no CPU from 0.8 to 1.0 s (no tick at all), and
    // the third thread starts at 1.2 s.
    let mut acc = Accumulator::default();
    for tid in 1..=3 {
        acc.push(Sample::Thread(ThreadInfo {
            tid,
            name: Some(format!("t{tid}")),
            interpreter: 0,
        }));
    }
    for i in 0..500u64 {
        let ms = 4 * i;
        if (800..1000).contains(&ms) {
            continue;
        }
        let alive = if ms >= 1200 { 3 } else { 2 };
        acc.push(Sample::State(StateTick {
            at: Duration::from_millis(ms),
            gils: vec![],
            threads: (1..=alive)
                .map(|tid| ThreadObservation {
                    tid,
                    state: ThreadState::Sleep,
                    ..Default::default()
                })
                .collect(),
        }));
    }
    let p = acc.finish(10, 2);
    let svg = render(&p);
    let doc = parse(&svg);
    assert_legends_match(&doc);
    let timeline = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("timeline"))
        .unwrap();
    let keys: Vec<&str> = timeline
        .descendants()
        .filter(|n| n.attribute("class") == Some("key"))
        .filter_map(|k| k.descendants().find(|n| n.has_tag_name("text")))
        .filter_map(|t| t.text())
        .collect();
    assert_eq!(
        keys,
        [
            "sleeping",
            "thread not started or ended",
            "no sample: sampler got no CPU"
        ]
    );
    // The gap is hatched across every lane, about 0.2 s of the 2 s wide.
    let lanes: Vec<_> = timeline
        .descendants()
        .filter(|n| n.attribute("class") == Some("lane"))
        .collect();
    assert_eq!(lanes.len(), 3);
    for lane in &lanes {
        let hatch = lane
            .children()
            .find(|n| n.attribute("fill") == Some("url(#skipped)"))
            .expect("a hatched gap");
        let d = hatch.attribute("d").unwrap();
        let w: f64 = d
            .split('h')
            .nth(1)
            .unwrap()
            .split('v')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let expected = super::timeline::LANES_W * 0.2 / 2.0;
        assert!((w - expected).abs() < expected * 0.2, "{w} vs {expected}");
    }
    // Only the thread that started late has a slice before it existed.
    let absent = |lane: &roxmltree::Node| {
        lane.children().any(|n| {
            n.attribute("fill")
                == Some(&super::canvas::paint_fills(crate::report::Paint::Absent)[0])
        })
    };
    assert!(!absent(&lanes[0]) && !absent(&lanes[1]) && absent(&lanes[2]));
}
