use std::fs::File;
use std::io::{Read, Write};
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::*;
use crate::analysis::Accumulator;
use crate::model::{
    Frame, GilReading, Sample, StackTick, StateTick, TargetInfo, ThreadInfo, ThreadObservation,
    ThreadStack, ThreadState,
};
use crate::recording::{Writer, MAX_DEPTH, MAX_THREADS};

fn samples() -> Vec<Sample> {
    let mut out = vec![Sample::Thread(ThreadInfo {
        tid: 7,
        name: Some("worker-1".into()),
        interpreter: 0,
    })];
    for i in 0..50u64 {
        let holder = if i % 3 == 0 { None } else { Some(7) };
        out.push(Sample::State(StateTick {
            at: Duration::from_millis(4 * i),
            gils: vec![GilReading {
                interpreter: 0,
                locked: holder.is_some(),
                holder,
                switch_number: i,
                interval_us: 5000,
                enabled: None,
            }],
            threads: vec![ThreadObservation {
                tid: 7,
                state: if holder.is_some() {
                    ThreadState::Holding
                } else {
                    ThreadState::Idle
                },
                on_cpu: holder.is_some(),
                gil: 0,
                ..Default::default()
            }],
        }));
        if i % 5 == 0 {
            out.push(Sample::Stacks(StackTick {
                at: Duration::from_millis(4 * i),
                waiters: 0,
                stacks: vec![ThreadStack {
                    tid: 7,
                    state: ThreadState::Holding,
                    on_cpu: true,
                    frames: vec![Frame {
                        function: "compute".into(),
                        file: "/app/app.py".into(),
                        line: 10 + (i % 2) as u32,
                    }]
                    .into(),
                    ..Default::default()
                }],
            }));
        }
    }
    out.push(Sample::Cpu {
        at: Duration::from_millis(200),
        process_s: Some(0.123456789),
        threads: vec![(7, 0.1)],
        machine: None,
        quota: None,
    });
    out
}

fn target() -> TargetInfo {
    TargetInfo {
        pid: 42,
        python: "3.12.1".into(),
        command: vec!["python3".into(), "app.py".into()],
        state_hz: 250.0,
        stack_hz: 100.0,
        monotonic_zero_ns: 1,
        cwd: None,
    }
}

#[test]
fn a_replayed_recording_analyses_as_the_live_run_did() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.gilscope");
    let mut live = Accumulator::default();
    let mut w = Writer::create(&path).unwrap();
    w.process(0, &target(), 4).unwrap();
    for s in samples() {
        w.sample(0, &s).unwrap();
        live.push(s);
    }
    w.end(0, 3).unwrap();
    w.finish().unwrap();
    let live = live.finish(3, 4);
    let replayed = replay(&path).unwrap();
    assert!(replayed.complete);
    assert_eq!(replayed.profiles.target, target());
    let r = &replayed.profiles.profile;
    assert_eq!(r.run, live.run);
    assert_eq!(r.gils, live.gils);
    assert_eq!(r.threads, live.threads);
    assert_eq!(r.top_holders, live.top_holders);
    assert_eq!(r.verdict, live.verdict);
    assert_eq!(r.cores_used, live.cores_used);
    assert_eq!(r.cpu_count, 4);
}

#[test]
fn a_cut_off_recording_gives_what_was_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.gilscope");
    let mut w = Writer::create(&path).unwrap();
    w.process(0, &target(), 2).unwrap();
    for s in samples() {
        w.sample(0, &s).unwrap();
    }
    w.flush().unwrap();
    // The process dies here: the gzip stream is never finished.
    std::mem::forget(w);
    let replayed = replay(&path).unwrap();
    assert!(!replayed.complete);
    assert!(replayed.profiles.profile.run.state_samples >= 50);
}

#[test]
fn other_files_and_versions_are_refused_with_a_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.txt");
    std::fs::write(&plain, "hello").unwrap();
    let err = replay(&plain).err().unwrap().to_string();
    assert!(err.contains("is not a gilscope recording"), "{err}");

    let future = dir.path().join("future.gilscope");
    let mut gz = GzEncoder::new(File::create(&future).unwrap(), Compression::fast());
    writeln!(
        gz,
        r#"{{"t":"header","format":"gilscope-recording","version":9,"gilscope":"9.0.0"}}"#
    )
    .unwrap();
    gz.finish().unwrap();
    let err = replay(&future).err().unwrap().to_string();
    assert!(err.contains("version 9 recording"), "{err}");
    assert!(err.contains("reads version 2"), "{err}");
}

/// A recording of `lines` (after the header), gzip-compressed; `finish` ends the stream.
fn raw(dir: &std::path::Path, lines: &[String], finish: bool) -> std::path::PathBuf {
    let path = dir.join("raw.gilscope");
    let mut gz = GzEncoder::new(File::create(&path).unwrap(), Compression::fast());
    writeln!(
        gz,
        r#"{{"t":"header","format":"gilscope-recording","version":2,"gilscope":"0.1.0"}}"#
    )
    .unwrap();
    for line in lines {
        gz.write_all(line.as_bytes()).unwrap();
    }
    if finish {
        gz.finish().unwrap();
    } else {
        gz.flush().unwrap();
        std::mem::forget(gz);
    }
    path
}

/// A line as gilscope writes it: its type first, then `fields`.
fn tagged(t: &str, fields: serde_json::Value) -> String {
    let rest = fields.to_string();
    format!("{{\"t\":\"{t}\",{}\n", &rest[1..])
}

fn process_line() -> String {
    tagged(
        "process",
        serde_json::json!({"p": 0, "target": target(), "cpu_count": 2}),
    )
}

fn state_line(at_ns: u64, tids: impl Iterator<Item = i32>) -> String {
    let threads: Vec<_> = tids
        .map(|tid| serde_json::json!({"tid": tid, "state": "holding", "on_cpu": true, "gil": 0}))
        .collect();
    tagged(
        "sample",
        serde_json::json!({"p": 0, "sample": {"State": {
            "at": at_ns, "gils": [], "threads": threads}}}),
    )
}

const END: &str = "{\"t\":\"end\",\"p\":0,\"late_ticks\":0}\n";

#[test]
fn damage_in_the_middle_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = state_line(1_000_000, [1].into_iter());
    for (bad, what) in [
        ("\n".to_string(), "line 4 is blank"),
        (
            "{\"t\":\"sample\"\n".to_string(),
            "line 4 is not a recording line",
        ),
        (
            "\"\u{1b}[31m\"\n".to_string(),
            "line 4 is not a recording line",
        ),
    ] {
        let lines = [process_line(), good.clone(), bad, good.clone(), END.into()];
        let err = replay(&raw(dir.path(), &lines, true)).err().unwrap();
        let err = format!("{err:#}");
        assert!(err.contains(what), "{err}");
        assert!(!err.contains('\u{1b}'), "{err}");
    }
    // Bytes that are not UTF-8.
    let path = raw(dir.path(), &[process_line()], false);
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(File::open(&path).unwrap())
        .read_to_end(&mut bytes)
        .ok();
    bytes.extend_from_slice(b"{\"t\":\"\xff\"}\n");
    bytes.extend_from_slice(END.as_bytes());
    let mut gz = GzEncoder::new(File::create(&path).unwrap(), Compression::fast());
    gz.write_all(&bytes).unwrap();
    gz.finish().unwrap();
    let err = format!("{:#}", replay(&path).err().unwrap());
    assert!(err.contains("line 3 is not valid UTF-8"), "{err}");
}

#[test]
fn only_a_cut_off_end_is_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let good = state_line(1_000_000, [1].into_iter());
    // The writer died in the middle of a line.
    let half = &good[..good.len() / 2];
    let lines = [process_line(), good.clone(), half.to_string()];
    let r = replay(&raw(dir.path(), &lines, false)).unwrap();
    assert_eq!(r.cut_short.as_deref(), Some("its last line is incomplete"));
    assert_eq!(r.profiles.profile.run.state_samples, 1);
    // The gzip stream stops after a flush.
    let lines = [process_line(), good.clone()];
    let r = replay(&raw(dir.path(), &lines, false)).unwrap();
    assert!(!r.complete);
    assert!(r.cut_short.is_some());
    // A whole file is not.
    let lines = [process_line(), good, END.into()];
    let r = replay(&raw(dir.path(), &lines, true)).unwrap();
    assert!(r.complete && r.cut_short.is_none() && r.warnings.is_empty());
}

#[test]
fn replay_bounds_names_threads_and_times_and_says_what_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(100_000);
    let frame = tagged(
        "frame",
        serde_json::json!({"id": 0, "function": long, "file": long, "line": 1}),
    );
    let deep = vec![0; 5000];
    let stacks = tagged(
        "stacks",
        serde_json::json!({"p": 0, "at_ns": 2_000_000, "waiters": 0,
            "stacks": [{"tid": 1, "state": "holding", "on_cpu": true, "frames": deep}]}),
    );
    let lines = [
        process_line(),
        frame,
        state_line(1_000_000, 0..(MAX_THREADS as i32 + 500)),
        stacks,
        state_line(u64::MAX, [1].into_iter()),
        state_line(3_000_000, [1].into_iter()),
        END.into(),
    ];
    let r = replay(&raw(dir.path(), &lines, true)).unwrap();
    assert!(r.complete);
    assert_eq!(r.profiles.profile.threads.len(), MAX_THREADS);
    assert_eq!(
        r.profiles.profile.run.state_samples, 2,
        "the u64::MAX tick is dropped"
    );
    assert!(r.profiles.profile.timeline.buckets < 10);
    let stack = r.profiles.profile.stacks.get(crate::model::StackId(0));
    assert_eq!(stack.len(), MAX_DEPTH);
    assert!(stack[0].function.chars().count() <= crate::model::MAX_NAME_CHARS);
    let all = r.warnings.join("\n");
    for what in [
        "2 names longer than",
        "500 samples of threads",
        "1 stacks deeper than",
        "1 samples with implausible times",
    ] {
        assert!(all.contains(what), "{what}: {all}");
    }
}

#[test]
fn the_exit_a_recording_ends_with_is_the_replayed_programs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.gilscope");
    let mut w = Writer::create(&path).unwrap();
    w.process(0, &target(), 2).unwrap();
    let exit = crate::model::ProgramExit {
        code: Some(2),
        signal: None,
        after_s: 0.0,
        stopped: false,
    };
    w.end_with(0, 0, Some(exit)).unwrap();
    w.finish().unwrap();
    let r = replay(&path).unwrap();
    assert!(r.complete);
    assert_eq!(r.profiles.profile.exit, Some(exit));
    assert_eq!(
        r.profiles.profile.verdict.kind,
        crate::analysis::VerdictKind::ProgramFailed
    );
}
