//! The recording as storage: what the writer writes, the reader gives back, record for
//! record. (Replays analysed as a live run are `command::replay`'s tests.)

use std::time::Duration;

use super::*;
use crate::model::{Frame, GilReading, StackTick, StateTick, ThreadStack};

fn target(pid: i32) -> TargetInfo {
    TargetInfo {
        pid,
        python: "3.12.1".into(),
        command: vec!["python3".into(), "app.py".into()],
        state_hz: 250.0,
        stack_hz: 100.0,
        monotonic_zero_ns: 1_000_000,
        cwd: Some("/app".into()),
    }
}

fn samples() -> Vec<Sample> {
    let frame = |function: &str, line| Frame {
        function: function.into(),
        file: "/app/app.py".into(),
        line,
    };
    vec![
        Sample::State(StateTick {
            at: Duration::from_millis(4),
            gils: vec![GilReading {
                interpreter: 0,
                locked: true,
                holder: Some(7),
                switch_number: 3,
                interval_us: 5000,
                enabled: None,
            }],
            threads: Vec::new(),
        }),
        Sample::Stacks(StackTick {
            at: Duration::from_millis(8),
            waiters: 1,
            stacks: vec![ThreadStack {
                tid: 7,
                state: ThreadState::Holding,
                on_cpu: true,
                // The same frame twice: defined once in the file, named by id.
                frames: vec![frame("main", 1), frame("compute", 10), frame("compute", 10)].into(),
                ..Default::default()
            }],
        }),
        Sample::Failed { stacks: true },
    ]
}

/// A record as JSON, to compare what was written with what was read.
fn json(record: &Record) -> serde_json::Value {
    match record {
        Record::Process {
            p,
            target,
            cpu_count,
        } => serde_json::json!(["process", p, target, cpu_count]),
        Record::Sample { p, sample } => serde_json::json!(["sample", p, sample]),
        Record::End {
            p,
            late_ticks,
            exit,
        } => serde_json::json!(["end", p, late_ticks, exit]),
    }
}

#[test]
fn what_is_written_is_read_back_record_for_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.gilscope");
    let mut written = Vec::new();
    let mut w = Writer::create(&path).unwrap();
    for p in 0..2 {
        let (target, cpu_count) = (target(42 + p as i32), 4);
        w.process(p, &target, cpu_count).unwrap();
        written.push(Record::Process {
            p,
            target,
            cpu_count,
        });
    }
    for sample in samples() {
        for p in [1, 0] {
            w.sample(p, &sample).unwrap();
            written.push(Record::Sample {
                p,
                sample: sample.clone(),
            });
        }
    }
    w.end(1, 2).unwrap();
    let exit = ProgramExit {
        code: Some(3),
        signal: None,
        after_s: 1.5,
        stopped: false,
    };
    w.end_with(0, 5, Some(exit)).unwrap();
    w.finish().unwrap();
    written.push(Record::End {
        p: 1,
        late_ticks: 2,
        exit: None,
    });
    written.push(Record::End {
        p: 0,
        late_ticks: 5,
        exit: Some(exit),
    });

    let mut reader = open(&path).unwrap();
    let mut read = Vec::new();
    while let Some(record) = reader.record().unwrap() {
        read.push(json(&record));
    }
    let written: Vec<_> = written.iter().map(json).collect();
    assert_eq!(read, written);
    assert_eq!(reader.cut_short(), None);
    assert!(reader.warnings().is_empty());
}

#[test]
fn a_file_whose_process_never_ended_is_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.gilscope");
    let mut w = Writer::create(&path).unwrap();
    w.process(0, &target(42), 2).unwrap();
    w.sample(0, &samples()[0]).unwrap();
    w.finish().unwrap();
    let mut reader = open(&path).unwrap();
    while reader.record().unwrap().is_some() {}
    assert_eq!(
        reader.cut_short(),
        Some("the end of process 0 was never written")
    );
}
