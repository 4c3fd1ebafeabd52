//! Snapshot tests: a fixed, synthetic recording rendered in every format must match the
//! files in `tests/snapshots/`, byte for byte. A change to a format shows up here as a diff
//! to review; `GILSCOPE_UPDATE_SNAPSHOTS=1 cargo test --release --test snapshots` rewrites
//! them after a deliberate change.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use gilscope::model::{
    Frame, GilReading, Sample, StackTick, StateTick, TargetInfo, ThreadInfo, ThreadObservation,
    ThreadStack, ThreadState,
};

const FORMATS: [&str; 10] = [
    "svg",
    "flamegraph",
    "blame",
    "collapsed",
    "speedscope",
    "perfetto",
    "pprof",
    "markdown",
    "json",
    "waiters",
];

fn frame(function: &str, line: u32) -> Frame {
    Frame {
        function: function.into(),
        file: "/srv/app/app.py".into(),
        line,
    }
}

/// Two workers taking turns on the GIL for 2 s, a main thread idle in join(): the shape of
/// the GIL-bound fixture, with every number fixed.
fn synthetic(path: &Path) {
    use ThreadState::*;
    let target = TargetInfo {
        pid: 4242,
        python: "3.12.1".into(),
        command: vec!["python3".into(), "app.py".into()],
        state_hz: 250.0,
        stack_hz: 50.0,
        monotonic_zero_ns: 1_000_000_000,
    };
    let mut w = gilscope::recording::Writer::create(path).unwrap();
    w.process(0, &target, 2).unwrap();
    w.sample(0, &Sample::Interpreters(vec![(0, 0)])).unwrap();
    for (tid, name) in [(1, "MainThread"), (2, "worker-1"), (3, "worker-2")] {
        let info = ThreadInfo {
            tid,
            name: Some(name.into()),
            interpreter: 0,
        };
        w.sample(0, &Sample::Thread(info)).unwrap();
    }
    for i in 0..500u64 {
        let at = Duration::from_millis(4 * i);
        // The holder changes every 5 ms; every 7th tick the waiter reads native.
        let (holder, other) = if (i / 5) % 2 == 0 { (2, 3) } else { (3, 2) };
        let waiting = if i % 7 == 0 { Native } else { Waiting };
        let obs = |tid, state| ThreadObservation {
            tid,
            state,
            on_cpu: state != Idle && state != Waiting,
            gil: 0,
            ..Default::default()
        };
        w.sample(
            0,
            &Sample::State(StateTick {
                at,
                gils: vec![GilReading {
                    interpreter: 0,
                    locked: true,
                    holder: Some(holder),
                    switch_number: i / 5,
                    interval_us: 5000,
                    enabled: None,
                }],
                threads: vec![obs(1, Idle), obs(holder, Holding), obs(other, waiting)],
            }),
        )
        .unwrap();
        if i % 5 == 0 {
            let worker = |tid, state, line| ThreadStack {
                tid,
                state,
                on_cpu: state == Holding,
                frames: vec![frame("run", 5), frame("compute", line)],
                ..Default::default()
            };
            let tick = StackTick {
                at,
                waiters: u32::from(waiting == Waiting),
                stacks: vec![
                    ThreadStack {
                        tid: 1,
                        state: Idle,
                        on_cpu: false,
                        frames: vec![frame("<module>", 30), frame("join", 1100)],
                        ..Default::default()
                    },
                    worker(holder, Holding, 12 + (i % 2) as u32),
                    worker(other, waiting, 12),
                ],
            };
            w.sample(0, &Sample::Stacks(tick)).unwrap();
        }
        if i % 50 == 0 {
            let s = i as f64 * 0.004;
            let cpu = Sample::Cpu {
                at,
                process_s: Some(s),
                threads: vec![(1, 0.0), (2, s / 2.0), (3, s / 2.0)],
                machine: None,
                quota: None,
            };
            w.sample(0, &cpu).unwrap();
        }
    }
    w.end(0, 3).unwrap();
    w.finish().unwrap();
}

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

#[test]
fn every_format_matches_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(&dir.path().join("synthetic.gilscope"));
    let update = std::env::var_os("GILSCOPE_UPDATE_SNAPSHOTS").is_some();
    let mut differ = Vec::new();
    for format in FORMATS {
        let out = gilscope(
            dir.path(),
            &[
                "report",
                "-q",
                "-f",
                format,
                "-o",
                "-",
                "synthetic.gilscope",
            ],
        );
        assert!(out.status.success(), "{format}: {}", text(&out.stderr));
        let path = snapshot_dir().join(format!("synthetic.{format}"));
        if update {
            std::fs::create_dir_all(snapshot_dir()).unwrap();
            std::fs::write(&path, &out.stdout).unwrap();
            continue;
        }
        let expected = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; GILSCOPE_UPDATE_SNAPSHOTS=1 writes it",
                path.display()
            )
        });
        if expected != out.stdout {
            let got = path.with_extension(format!("{format}.new"));
            std::fs::write(&got, &out.stdout).unwrap();
            differ.push(format!("{} (got {})", path.display(), got.display()));
        }
    }
    assert!(
        differ.is_empty(),
        "output differs from the snapshots; review the diff, then rerun with \
         GILSCOPE_UPDATE_SNAPSHOTS=1 if the change is meant:\n  {}",
        differ.join("\n  ")
    );
}
