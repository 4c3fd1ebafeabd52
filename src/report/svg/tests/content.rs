//! What the report says: the verdict, threads and flame graphs of a run, byte-stable output,
//! empty and free-threaded runs, subprocesses, and hostile names escaped and cut.

use super::*;

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
fn a_rate_that_fell_short_is_a_warning_under_the_run_and_a_met_one_is_not() {
    // 250 GIL-state and 50 stack samples a second for a second.
    let p = fixtures::every_state(500);
    let text = |t: &TargetInfo| texts(&parse(&render_with(t, &p, &[]))).join(" ");
    let met = text(&fixtures::asking(250.0, 50.0));
    assert!(!met.contains("Asked for"), "{met}");
    assert!(
        met.contains("250 GIL-state samples (250/s, 250 Hz asked)"),
        "{met}"
    );
    let short = text(&fixtures::asking(10_000.0, 10_000.0));
    assert!(
        short.contains(
            "Asked for 10000 GIL-state samples/s, took 250/s, and 10000 stack samples/s, took \
             50/s: the sampler could not keep up"
        ),
        "{short}"
    );
    let at = |needle: &str| short.find(needle).unwrap();
    assert!(at("Asked for") < at("VERDICT"), "{short}");
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
    let per_s = (crate::report::svg::timeline::LANES_W) / 1.6;
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
