use serde_json::Value;

use super::*;
use crate::report::fixtures::{self, HOSTILE};
use crate::report::Subprocess;

fn render(target: &TargetInfo, profile: &Profile, subprocesses: &[Subprocess]) -> Value {
    let out = fixtures::render(&Perfetto, target, profile, subprocesses);
    let text = String::from_utf8(out).expect("UTF-8");
    assert!(!text.contains('\u{1}'), "control characters are escaped");
    serde_json::from_str(&text).expect("valid JSON, whatever the threads are called")
}

fn full() -> Value {
    let (target, profile) = fixtures::target();
    render(&target, &profile, &[fixtures::subprocess()])
}

fn events<'a>(doc: &'a Value, ph: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    doc["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(move |e| e["ph"] == ph)
}

fn on_thread<'a>(doc: &'a Value, ph: &'a str, pid: i32, tid: Tid) -> Vec<&'a Value> {
    events(doc, ph)
        .filter(|e| e["pid"] == pid && e["tid"] == tid)
        .collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn has_the_trace_event_shape() {
    let doc = full();
    assert_eq!(doc["displayTimeUnit"], "ms");
    assert_eq!(doc["otherData"]["monotonic_zero_ns"], "5000000000");
    assert_eq!(doc["otherData"]["subprocesses"], "43");
    let all = doc["traceEvents"].as_array().unwrap();
    for e in all {
        assert!(e["name"].is_string() && e["ph"].is_string(), "{e}");
        assert!(e["pid"].is_i64() && e["ts"].is_number(), "{e}");
    }
    // Metadata first, then everything by time.
    let first_timed = all.iter().position(|e| e["ph"] != "M").unwrap();
    assert!(all[first_timed..].iter().all(|e| e["ph"] != "M"));
    assert!(all[first_timed..]
        .windows(2)
        .all(|w| f(&w[0]["ts"]) <= f(&w[1]["ts"])));
}

#[test]
fn every_thread_and_process_is_named() {
    let doc = full();
    let names: Vec<(i64, i64, &str)> = events(&doc, "M")
        .filter(|e| e["name"] == "thread_name")
        .map(|e| {
            (
                e["pid"].as_i64().unwrap(),
                e["tid"].as_i64().unwrap(),
                e["args"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    let long = fixtures::long_name();
    assert_eq!(
        names,
        [
            (42, 1, "MainThread"),
            (42, 2, HOSTILE),
            (42, 3, long.as_str()),
            (43, 100, "Sub")
        ]
    );
    let processes: Vec<(i64, &str)> = events(&doc, "M")
        .filter(|e| e["name"] == "process_name")
        .map(|e| {
            (
                e["pid"].as_i64().unwrap(),
                e["args"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        processes,
        [(42, "python3 app.py"), (43, "python3 worker.py")]
    );
    let sort: Vec<i64> = events(&doc, "M")
        .filter(|e| e["name"] == "thread_sort_index" && e["pid"] == 42)
        .map(|e| e["args"]["sort_index"].as_i64().unwrap())
        .collect();
    assert_eq!(sort, [0, 1, 2]);
}

#[test]
fn state_slices_follow_the_dominant_state_without_overlap() {
    let doc = full();
    let slices = |pid, tid| -> Vec<(String, f64, f64)> {
        on_thread(&doc, "X", pid, tid)
            .iter()
            .map(|e| {
                assert_eq!(e["cat"], "gil");
                (
                    e["name"].as_str().unwrap().to_string(),
                    f(&e["ts"]),
                    f(&e["dur"]),
                )
            })
            .collect()
    };
    for (pid, tid) in [(42, 1), (42, 2), (42, 3), (43, 100)] {
        let s = slices(pid, tid);
        assert!(!s.is_empty());
        for w in s.windows(2) {
            assert!(
                w[0].1 + w[0].2 <= w[1].1 + 1e-6,
                "{pid}/{tid} overlap: {w:?}"
            );
        }
        assert!(s.iter().all(|(_, _, dur)| *dur > 0.0));
    }
    // Run 1 s after time zero, 10 ms slices: holding for the first half, then waiting.
    assert_eq!(
        slices(42, 1),
        [
            ("holding".into(), 1_000_000.0, 50_000.0),
            ("waiting".into(), 1_050_000.0, 50_000.0),
        ]
    );
    assert_eq!(
        slices(42, 2),
        [
            ("waiting".into(), 1_000_000.0, 50_000.0),
            ("holding".into(), 1_050_000.0, 50_000.0),
        ]
    );
    // Unseen from 30 to 60 ms: no event there.
    assert_eq!(
        slices(42, 3),
        [
            ("idle".into(), 1_000_000.0, 30_000.0),
            ("idle".into(), 1_060_000.0, 40_000.0),
        ]
    );
    // The subprocess's time zero is 2 ms later: its times shift onto the target's axis.
    assert_eq!(
        slices(43, 100),
        [("holding".into(), 1_002_000.0, 100_000.0)]
    );
    let first = &on_thread(&doc, "X", 42, 1)[0];
    assert_eq!(first["args"]["ticks"]["holding"], 50);
}

#[test]
fn stack_samples_are_instants_in_time_order() {
    let doc = full();
    let main = on_thread(&doc, "i", 42, 1);
    assert_eq!(main.len(), 10);
    assert!(main.windows(2).all(|w| f(&w[0]["ts"]) < f(&w[1]["ts"])));
    assert_eq!(f(&main[0]["ts"]), 1_000_000.0);
    for (k, e) in main.iter().enumerate() {
        assert_eq!(e["s"], "t");
        assert_eq!(e["name"], "compute");
        assert_eq!(e["args"]["stack"], "main;compute");
        assert_eq!(e["args"]["location"], "app.py:12");
        assert_eq!(
            e["args"]["state"],
            if k < 5 { "holding" } else { "waiting" }
        );
    }
    let hostile = on_thread(&doc, "i", 42, 2);
    assert_eq!(hostile[0]["name"], HOSTILE);
    assert_eq!(hostile[0]["args"]["stack"], format!("main;{HOSTILE}"));
    // No frames: named by the state.
    let idle = on_thread(&doc, "i", 42, 3);
    assert_eq!(idle.len(), 7);
    assert_eq!(idle[0]["name"], "[idle]");
    assert_eq!(idle[0]["args"]["stack"], "");
    let sub = on_thread(&doc, "i", 43, 100);
    assert_eq!(f(&sub[0]["ts"]), 1_002_000.0);
    assert_eq!(events(&doc, "i").count(), 10 + 10 + 7 + 10);
}

#[test]
fn handoffs_are_a_counter_per_process() {
    let doc = full();
    for pid in [42, 43] {
        let counter: Vec<&Value> = events(&doc, "C").filter(|e| e["pid"] == pid).collect();
        assert_eq!(counter.len(), 10, "one per slice");
        assert!(counter.iter().all(|e| e["name"] == HANDOFFS));
        assert!(counter.iter().all(|e| e.get("tid").is_none()));
        // A handoff every 5 ms: 200/s in full slices.
        assert_eq!(counter[5]["args"]["value"], 200.0);
        assert!(counter
            .iter()
            .all(|e| (0.0..=200.0).contains(&f(&e["args"]["value"]))));
    }
}

#[test]
fn is_deterministic() {
    let bytes = || {
        let (target, profile) = fixtures::target();
        fixtures::render(&Perfetto, &target, &profile, &[fixtures::subprocess()])
    };
    assert_eq!(bytes(), bytes());
}

#[test]
fn an_empty_profile_is_valid() {
    let (target, profile) = fixtures::empty();
    let doc = render(&target, &profile, &[]);
    let all = doc["traceEvents"].as_array().unwrap();
    assert_eq!(all.len(), 2, "the process's name and order: {all:?}");
    assert_eq!(all[0]["name"], "process_name");
    assert_eq!(all[0]["args"]["name"], "python");
}

#[test]
fn a_run_of_many_threads_draws_a_bounded_number_of_tracks_and_says_so() {
    use crate::analysis::Accumulator;
    use crate::model::{Sample, StateTick, ThreadObservation};
    let mut acc = Accumulator::default();
    let threads = MAX_STATE_TRACKS + 88;
    for k in 0..20u64 {
        acc.push(Sample::State(StateTick {
            at: Duration::from_millis(10 * k),
            gils: Vec::new(),
            threads: (0..threads as i32)
                .map(|tid| ThreadObservation {
                    tid,
                    state: if (tid as u64 + k) % 2 == 0 {
                        ThreadState::Holding
                    } else {
                        ThreadState::Idle
                    },
                    ..Default::default()
                })
                .collect(),
        }));
    }
    let (target, _) = fixtures::empty();
    let doc = render(&target, &acc.finish(0, 1), &[]);
    let tracked: BTreeSet<i64> = events(&doc, "X")
        .map(|e| e["tid"].as_i64().unwrap())
        .collect();
    assert_eq!(tracked.len(), MAX_STATE_TRACKS);
    let said = doc["otherData"]["untracked_threads"].as_str().unwrap();
    assert!(said.starts_with("88 threads have no state track"), "{said}");
    // Every thread is still named.
    let named = events(&doc, "M")
        .filter(|e| e["name"] == "thread_name")
        .count();
    assert_eq!(named, threads);
}
