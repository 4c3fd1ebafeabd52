//! The report stays small and simple however long and wide the run: 64 threads for an hour,
//! one thread holding the whole run.

use super::*;

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
    let run_width = first_run_width(d);
    assert!(
        (crate::report::svg::timeline::LANES_W - run_width).abs() < 1.0,
        "{run_width} of {}",
        crate::report::svg::timeline::LANES_W
    );
    assert_legends_match(&doc);
    let texts = texts(&doc).join(" ");
    assert!(texts.contains("solo (1)"));
    assert!(
        texts.contains("VERDICT: SINGLE-THREAD CPU-BOUND"),
        "{texts}"
    );
}
