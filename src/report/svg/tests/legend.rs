//! Colours: every state is in the legend, the bars and the lanes in its colour, and slices
//! without a sample say why.

use super::*;

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
        .map(crate::report::svg::canvas::legend_label)
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
    let ink = |state: ThreadState| crate::report::svg::canvas::ink_on(state);
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
        let w = first_run_width(d);
        let expected = crate::report::svg::timeline::LANES_W * 0.2 / 2.0;
        assert!((w - expected).abs() < expected * 0.2, "{w} vs {expected}");
    }
    // Only the thread that started late has a slice before it existed.
    let absent = |lane: &roxmltree::Node| {
        lane.children().any(|n| {
            n.attribute("fill")
                == Some(&crate::report::svg::canvas::paint_fills(crate::report::Paint::Absent)[0])
        })
    };
    assert!(!absent(&lanes[0]) && !absent(&lanes[1]) && absent(&lanes[2]));
}
