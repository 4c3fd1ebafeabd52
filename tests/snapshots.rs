//! Snapshot tests: a fixed, synthetic recording rendered in every format must match the
//! files in `tests/snapshots/`, byte for byte. A change to a format shows up here as a diff
//! to review; `GILSCOPE_UPDATE_SNAPSHOTS=1 cargo test --release --test snapshots` rewrites
//! them after a deliberate change.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use gilscope::model::{
    CpuQuota, Frame, GilReading, IoKind, MachineCpu, Sample, StackTick, StateTick, TargetInfo,
    ThreadInfo, ThreadObservation, ThreadStack, ThreadState,
};

const FORMATS: [&str; 11] = [
    "svg",
    "flamegraph",
    "holders",
    "blame",
    "waiters",
    "collapsed",
    "speedscope",
    "perfetto",
    "pprof",
    "markdown",
    "json",
];

fn frame(function: &str, line: u32) -> Frame {
    Frame {
        function: function.into(),
        file: "/srv/app/app.py".into(),
        line,
    }
}

/// Two workers taking turns on the GIL for 2 s, the shape of the GIL-bound fixture, beside
/// a thread of every other kind, with every number fixed:
///
/// - MainThread waits in `join()`: `lock`, but a wait for a signal, not contention;
/// - worker-1 and worker-2 take turns holding the GIL every 5 ms, the other waiting (every
///   7th tick it reads `native`, every 11th the holder is preempted: queued for a CPU);
/// - db-writer waits for a lock another thread holds: `lock`, contended;
/// - fetcher waits on a socket: `io` (socket);
/// - ticker sleeps, and one tick in ten is woken but has no CPU yet: `ready`.
///
/// The machine is busy 1.5 of its 2 CPUs and a CPU quota of 2 throttled it a little.
fn synthetic(path: &Path) {
    use ThreadState::*;
    let target = TargetInfo {
        pid: 4242,
        python: "3.12.1".into(),
        command: vec!["python3".into(), "app.py".into()],
        state_hz: 250.0,
        stack_hz: 50.0,
        monotonic_zero_ns: 1_000_000_000,
        cwd: Some("/srv/app".into()),
    };
    let mut w = gilscope::recording::Writer::create(path).unwrap();
    w.process(0, &target, 2).unwrap();
    w.sample(0, &Sample::Interpreters(vec![(0, 0)])).unwrap();
    let names = [
        (1, "MainThread"),
        (2, "worker-1"),
        (3, "worker-2"),
        (4, "db-writer"),
        (5, "fetcher"),
        (6, "ticker"),
    ];
    for (tid, name) in names {
        let info = ThreadInfo {
            tid,
            name: Some(name.into()),
            interpreter: 0,
        };
        w.sample(0, &Sample::Thread(info)).unwrap();
    }
    let join = Frame {
        function: "join".into(),
        file: "/usr/lib/python3.12/threading.py".into(),
        line: 1147,
    };
    for i in 0..500u64 {
        let at = Duration::from_millis(4 * i);
        // The holder changes every 5 ms; every 7th tick the waiter reads native.
        let (holder, other) = if (i / 5) % 2 == 0 { (2, 3) } else { (3, 2) };
        let waiting = if i % 7 == 0 { Native } else { Waiting };
        let preempted = i % 11 == 0;
        let ticker = if i % 10 == 3 { Ready } else { Sleep };
        // (tid, state, on a CPU, queued for one, the stack's frames)
        let threads = [
            (
                1,
                Lock,
                false,
                false,
                vec![frame("<module>", 30), join.clone()],
            ),
            (
                holder,
                Holding,
                !preempted,
                preempted,
                vec![frame("run", 5), frame("compute", 12 + (i % 2) as u32)],
            ),
            (
                other,
                waiting,
                waiting == Native,
                false,
                vec![frame("run", 5), frame("compute", 12)],
            ),
            (
                4,
                Lock,
                false,
                false,
                vec![frame("run", 5), frame("save", 52)],
            ),
            (
                5,
                Io,
                false,
                false,
                vec![frame("run", 5), frame("fetch", 41)],
            ),
            (
                6,
                ticker,
                false,
                ticker == Ready,
                vec![frame("run", 5), frame("tick", 60)],
            ),
        ];
        let observations = threads
            .iter()
            .map(|(tid, state, on_cpu, queued, _)| ThreadObservation {
                tid: *tid,
                state: *state,
                on_cpu: *on_cpu,
                queued: *queued,
                gil: 0,
                io: (*state == Io).then_some(IoKind::Socket),
                ..Default::default()
            })
            .collect();
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
                threads: observations,
            }),
        )
        .unwrap();
        if i % 5 == 0 {
            let tick = StackTick {
                at,
                waiters: u32::from(waiting == Waiting),
                stacks: threads
                    .iter()
                    .map(|(tid, state, on_cpu, queued, frames)| ThreadStack {
                        tid: *tid,
                        state: *state,
                        on_cpu: *on_cpu,
                        queued: *queued,
                        frames: frames.clone().into(),
                        ..Default::default()
                    })
                    .collect(),
            };
            w.sample(0, &Sample::Stacks(tick)).unwrap();
        }
        if i % 50 == 0 {
            let s = i as f64 * 0.004;
            let cpu = Sample::Cpu {
                at,
                process_s: Some(s),
                threads: vec![
                    (1, 0.0),
                    (2, s / 2.0),
                    (3, s / 2.0),
                    (4, 0.0),
                    (5, s / 100.0),
                    (6, s / 200.0),
                ],
                machine: Some(MachineCpu {
                    busy_s: 400.0 + 1.5 * s,
                    total_s: 1000.0 + 2.0 * s,
                }),
                quota: Some(CpuQuota {
                    cores: 2.0,
                    nr_throttled: 10 + i / 100,
                    throttled_s: 0.5 + s / 100.0,
                }),
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
    // Every format on standard output, and the terminal summary, which goes to stderr.
    let runs = FORMATS
        .iter()
        .map(|&format| (format, vec!["-q", "-f", format], false))
        .chain([("summary", vec!["-f", "collapsed"], true)]);
    for (format, options, stderr) in runs {
        let mut args = vec!["report"];
        args.extend(options);
        args.extend(["-o", "-", "synthetic.gilscope"]);
        let out = gilscope(dir.path(), &args);
        assert!(out.status.success(), "{format}: {}", text(&out.stderr));
        let out = if stderr { out.stderr } else { out.stdout };
        let path = snapshot_dir().join(format!("synthetic.{format}"));
        if update {
            std::fs::create_dir_all(snapshot_dir()).unwrap();
            std::fs::write(&path, &out).unwrap();
            continue;
        }
        // A missing snapshot is a difference like any other: every one is reported at once.
        if std::fs::read(&path).ok().as_ref() != Some(&out) {
            let got = path.with_extension(format!("{format}.new"));
            std::fs::write(&got, &out).unwrap();
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
