//! Synthetic runs, targets and a render helper for the renderers' tests.

use std::time::Duration;

use crate::analysis::{Accumulator, Profile};
use crate::model::{
    Frame, GilReading, IoKind, Sample, StackTick, StateTick, TargetInfo, ThreadInfo,
    ThreadObservation, ThreadStack, ThreadState, Tid,
};
use crate::report::{Render, Report, Subprocess};

/// The bytes `renderer` writes for a target, its profile and its subprocesses.
pub fn render(
    renderer: &dyn Render,
    target: &TargetInfo,
    profile: &Profile,
    subprocesses: &[Subprocess],
) -> Vec<u8> {
    let mut out = Vec::new();
    renderer
        .render(
            &Report {
                target,
                profile,
                subprocesses,
            },
            &mut out,
        )
        .unwrap();
    out
}

/// `python3 app.py`, pid `pid`, sampled at 1000 Hz (stacks at 100 Hz), time zero at 5 s.
pub fn app(pid: i32) -> TargetInfo {
    TargetInfo {
        pid,
        python: "3.12.1".into(),
        command: vec!["python3".into(), "app.py".into()],
        state_hz: 1000.0,
        stack_hz: 100.0,
        monotonic_zero_ns: 5_000_000_000,
        cwd: None,
    }
}

/// [`app`] (pid 42) asking for other rates: with [`every_state`] (250 state and 50 stack
/// samples/s for 1 s), the asked rates are met at (250, 50) and fall short at more.
pub fn asking(state_hz: f64, stack_hz: f64) -> TargetInfo {
    TargetInfo {
        state_hz,
        stack_hz,
        ..app(42)
    }
}

pub const HOSTILE: &str = "</script>\"\u{1}";

/// A 10 kB thread name.
pub fn long_name() -> String {
    "ab\u{e9}\\\n".repeat(2000)
}

pub fn frame(function: &str, line: u32) -> Frame {
    Frame {
        function: function.into(),
        file: "app.py".into(),
        line,
    }
}

/// One thread over the run: its name, its state at each ms from the start (`None`:
/// not seen), and its stack at stack ticks.
pub struct Thread {
    pub tid: Tid,
    pub name: Option<String>,
    pub state: fn(u64) -> Option<ThreadState>,
    pub stack: Vec<Frame>,
}

/// A run of 100 ms starting 1 s after time zero, a state tick every ms, a stack tick
/// every 10 ms; the GIL changes hands every 5 ms.
pub fn profile(threads: &[Thread]) -> Profile {
    let mut acc = Accumulator::default();
    for t in threads {
        acc.push(Sample::Thread(ThreadInfo {
            tid: t.tid,
            name: t.name.clone(),
            interpreter: 0,
        }));
    }
    for ms in 0..100u64 {
        let at = Duration::from_millis(1000 + ms);
        let seen: Vec<(Tid, ThreadState)> = threads
            .iter()
            .filter_map(|t| Some((t.tid, (t.state)(ms)?)))
            .collect();
        let holder = seen
            .iter()
            .find(|(_, s)| *s == ThreadState::Holding)
            .map(|(tid, _)| *tid);
        acc.push(Sample::State(StateTick {
            at,
            gils: vec![GilReading {
                interpreter: 0,
                locked: holder.is_some(),
                holder,
                switch_number: ms / 5,
                interval_us: 5000,
                enabled: None,
            }],
            threads: seen
                .iter()
                .map(|&(tid, state)| ThreadObservation {
                    tid,
                    state,
                    on_cpu: true,
                    gil: 0,
                    ..Default::default()
                })
                .collect(),
        }));
        if ms % 10 == 0 {
            acc.push(Sample::Stacks(StackTick {
                at,
                waiters: 0,
                stacks: threads
                    .iter()
                    .filter_map(|t| {
                        Some(ThreadStack {
                            tid: t.tid,
                            state: (t.state)(ms)?,
                            on_cpu: true,
                            frames: t.stack.clone().into(),
                            ..Default::default()
                        })
                    })
                    .collect(),
            }));
        }
    }
    acc.finish(0, 4)
}

/// The target: pid 42, threads 1 (holding, then waiting), 2 (hostile name and function;
/// waiting, then holding), 3 (10 kB name, idle, unseen from 30 to 60 ms, no frames).
pub fn target() -> (TargetInfo, Profile) {
    use ThreadState::*;
    let info = app(42);
    let profile = profile(&[
        Thread {
            tid: 1,
            name: Some("MainThread".into()),
            state: |ms| Some(if ms < 50 { Holding } else { Waiting }),
            stack: vec![frame("main", 3), frame("compute", 12)],
        },
        Thread {
            tid: 2,
            name: Some(HOSTILE.into()),
            state: |ms| Some(if ms < 50 { Waiting } else { Holding }),
            stack: vec![frame("main", 3), frame(HOSTILE, 7)],
        },
        Thread {
            tid: 3,
            name: Some(long_name()),
            state: |ms| (!(30..60).contains(&ms)).then_some(Idle),
            stack: vec![],
        },
    ]);
    (info, profile)
}

/// A subprocess, pid 43, whose time zero is 2 ms after the target's.
pub fn subprocess() -> Subprocess {
    let info = TargetInfo {
        command: vec!["python3".into(), "worker.py".into()],
        monotonic_zero_ns: 5_002_000_000,
        ..app(43)
    };
    let profile = profile(&[Thread {
        tid: 100,
        name: Some("Sub".into()),
        state: |_| Some(ThreadState::Holding),
        stack: vec![frame("main", 3), frame("work", 20)],
    }]);
    Subprocess { info, profile }
}

pub fn empty() -> (TargetInfo, Profile) {
    let info = TargetInfo {
        pid: 7,
        ..TargetInfo::default()
    };
    (info, Accumulator::default().finish(0, 1))
}

/// A thread in each state a build with a GIL has, for 1 s at 250 Hz: two workers take
/// turns holding the GIL and waiting for it (one hands it off now and then), the others
/// stay native, ready, lock, I/O (a socket), sleep, idle. The switch interval is
/// `interval_us`.
pub fn every_state(interval_us: u64) -> Profile {
    use ThreadState::*;
    let mut acc = Accumulator::default();
    let names = [
        "worker-1", "worker-2", "zlib", "starved", "db", "fetcher", "ticker", "parked",
    ];
    for (k, name) in names.iter().enumerate() {
        acc.push(Sample::Thread(ThreadInfo {
            tid: 10 + k as i32,
            name: Some(name.to_string()),
            interpreter: 0,
        }));
    }
    for i in 0..250u64 {
        let (holder, other) = if (i / 5) % 2 == 0 { (10, 11) } else { (11, 10) };
        let other_state = if i % 9 == 0 { Handoff } else { Waiting };
        let states = [
            (holder, Holding),
            (other, other_state),
            (12, Native),
            (13, Ready),
            (14, Lock),
            (15, Io),
            (16, Sleep),
            (17, Idle),
        ];
        let at = Duration::from_millis(4 * i);
        acc.push(Sample::State(StateTick {
            at,
            gils: vec![GilReading {
                interpreter: 0,
                locked: true,
                holder: Some(holder),
                switch_number: i / 5,
                interval_us,
                enabled: None,
            }],
            threads: states
                .iter()
                .map(|&(tid, state)| ThreadObservation {
                    tid,
                    state,
                    on_cpu: matches!(state, Holding | Native),
                    queued: state == Ready,
                    gil: 0,
                    io: (state == Io).then_some(IoKind::Socket),
                    ..Default::default()
                })
                .collect(),
        }));
        if i % 5 == 0 {
            acc.push(Sample::Stacks(StackTick {
                at,
                waiters: 1,
                stacks: states
                    .iter()
                    .map(|&(tid, state)| ThreadStack {
                        tid,
                        state,
                        on_cpu: matches!(state, Holding | Native),
                        frames: vec![Frame {
                            function: format!("work_{tid}").into(),
                            file: "/srv/app.py".into(),
                            line: tid as u32,
                        }]
                        .into(),
                        ..Default::default()
                    })
                    .collect(),
            }));
        }
    }
    acc.finish(0, 4)
}
