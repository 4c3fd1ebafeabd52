//! The pprof profile decoded with the `perftools.profiles` types, as `go tool pprof` reads it.

use super::*;
use crate::analysis::Accumulator;
use crate::model::{
    Frame, GilReading, Sample, StackTick, StateTick, ThreadInfo, ThreadObservation, ThreadStack,
    ThreadState,
};
use crate::report::{fixtures, Subprocess};
use std::io::Read;
use std::time::Duration;

// ---- The output read back through the prost messages, ids resolved to strings. ----

#[derive(Debug)]
struct DecodedSample {
    locations: Vec<u64>,
    values: Vec<i64>,
    /// key, str, num
    labels: Vec<(String, String, i64)>,
}

impl DecodedSample {
    fn str(&self, key: &str) -> &str {
        let found: Vec<_> = self.labels.iter().filter(|l| l.0 == key).collect();
        assert_eq!(found.len(), 1, "one {key} label in {:?}", self.labels);
        &found[0].1
    }

    fn num(&self, key: &str) -> i64 {
        let found: Vec<_> = self.labels.iter().filter(|l| l.0 == key).collect();
        assert_eq!(found.len(), 1, "one {key} label in {:?}", self.labels);
        assert_eq!(found[0].1, "", "{key} is a numeric label");
        found[0].2
    }
}

#[derive(Debug)]
struct Decoded {
    strings: Vec<String>,
    sample_types: Vec<(String, String)>,
    samples: Vec<DecodedSample>,
    /// location id -> function id
    locations: HashMap<u64, (u64, i64)>,
    /// function id -> (name, file)
    functions: HashMap<u64, (String, String)>,
    period_type: (String, String),
    period: i64,
    duration_nanos: i64,
    time_nanos: i64,
    comments: Vec<String>,
    default_sample_type: String,
}

impl Decoded {
    /// Function names of a sample, leaf first.
    fn names(&self, s: &DecodedSample) -> Vec<&str> {
        s.locations
            .iter()
            .map(|l| self.functions[&self.locations[l].0].0.as_str())
            .collect()
    }
}

/// The gzipped profile, decoded.
fn raw(gzipped: &[u8]) -> proto::Profile {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gzipped)
        .read_to_end(&mut raw)
        .expect("valid gzip");
    proto::Profile::decode(raw.as_slice()).expect("a valid Profile message")
}

fn decode(gzipped: &[u8]) -> Decoded {
    let p = raw(gzipped);
    let strings = p.string_table.clone();
    let s = |i: i64| strings[usize::try_from(i).unwrap()].clone();
    let vt = |v: &proto::ValueType| (s(v.r#type), s(v.unit));
    assert!(p.mapping.is_empty(), "Python frames have no mapping");
    let mut locations = HashMap::new();
    for l in &p.location {
        assert_eq!(l.line.len(), 1, "one line per location");
        assert_ne!(l.id, 0);
        let previous = locations.insert(l.id, (l.line[0].function_id, l.line[0].line));
        assert!(previous.is_none(), "location ids are unique");
    }
    let mut functions = HashMap::new();
    for f in &p.function {
        assert_ne!(f.id, 0);
        assert_eq!(f.name, f.system_name, "system_name is the name");
        let previous = functions.insert(f.id, (s(f.name), s(f.filename)));
        assert!(previous.is_none(), "function ids are unique");
    }
    let samples = p
        .sample
        .iter()
        .map(|m| DecodedSample {
            locations: m.location_id.clone(),
            values: m.value.clone(),
            labels: m
                .label
                .iter()
                .map(|l| (s(l.key), s(l.str), l.num))
                .collect(),
        })
        .collect();
    Decoded {
        sample_types: p.sample_type.iter().map(vt).collect(),
        samples,
        locations,
        functions,
        period_type: vt(p.period_type.as_ref().expect("a period type")),
        period: p.period,
        duration_nanos: p.duration_nanos,
        time_nanos: p.time_nanos,
        comments: p.comment.iter().map(|&i| s(i)).collect(),
        default_sample_type: s(p.default_sample_type),
        strings,
    }
}

// ---- Input. ----

fn frame(function: &str, file: &str, line: u32) -> Frame {
    Frame {
        function: function.into(),
        file: file.into(),
        line,
    }
}

fn long_name() -> String {
    // 10 000 characters, some of them more than one byte.
    let unit = "é</>\"\u{1}x";
    let n = unit.chars().count();
    unit.repeat(10_000 / n) + &"y".repeat(10_000 % n)
}

fn thread(acc: &mut Accumulator, tid: i32, name: &str) {
    acc.push(Sample::Thread(ThreadInfo {
        tid,
        name: Some(name.into()),
        interpreter: 0,
    }));
}

fn state_tick(acc: &mut Accumulator, ms: u64, threads: &[(i32, ThreadState)]) {
    let holder = threads
        .iter()
        .find(|(_, s)| *s == ThreadState::Holding)
        .map(|(t, _)| *t);
    acc.push(Sample::State(StateTick {
        at: Duration::from_millis(ms),
        gils: vec![GilReading {
            interpreter: 0,
            locked: holder.is_some(),
            holder,
            switch_number: ms,
            interval_us: 5000,
            enabled: None,
        }],
        threads: threads
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
}

fn stack_tick(acc: &mut Accumulator, ms: u64, stacks: &[(i32, ThreadState, Vec<Frame>)]) {
    acc.push(Sample::Stacks(StackTick {
        at: Duration::from_millis(ms),
        waiters: 1,
        stacks: stacks
            .iter()
            .map(|(tid, state, frames)| ThreadStack {
                tid: *tid,
                state: *state,
                on_cpu: true,
                frames: frames.clone().into(),
                ..Default::default()
            })
            .collect(),
    }));
}

/// The target: thread 7 (`</svg><script>`) computes holding the GIL while thread 8 (a
/// 10 000-character name) waits for it; then they swap once. Plus a thread seen in
/// stacks only, with no Python frame.
fn target_profile() -> Profile {
    let mut acc = Accumulator::default();
    thread(&mut acc, 7, "</svg><script>");
    thread(&mut acc, 8, &long_name());
    let compute = vec![frame("main", "app.py", 1), frame("compute", "app.py", 12)];
    let wait = vec![
        frame("main", "app.py", 1),
        frame("acquire", "/usr/lib/python3.12/threading.py", 300),
    ];
    for ms in 0..3 {
        let ms = ms * 10;
        state_tick(
            &mut acc,
            ms,
            &[(7, ThreadState::Holding), (8, ThreadState::Waiting)],
        );
        stack_tick(
            &mut acc,
            ms,
            &[
                (7, ThreadState::Holding, compute.clone()),
                (8, ThreadState::Waiting, wait.clone()),
            ],
        );
    }
    state_tick(
        &mut acc,
        30,
        &[(7, ThreadState::Waiting), (8, ThreadState::Holding)],
    );
    stack_tick(
        &mut acc,
        30,
        &[
            (7, ThreadState::Waiting, wait.clone()),
            (8, ThreadState::Holding, compute.clone()),
            (9, ThreadState::Native, vec![]),
        ],
    );
    acc.finish(0, 2)
}

fn subprocess() -> Subprocess {
    let mut acc = Accumulator::default();
    thread(&mut acc, 100, "MainThread");
    for ms in [0, 10] {
        state_tick(&mut acc, ms, &[(100, ThreadState::Holding)]);
        stack_tick(
            &mut acc,
            ms,
            &[(
                100,
                ThreadState::Holding,
                vec![frame("main", "app.py", 1), frame("work", "worker.py", 5)],
            )],
        );
    }
    Subprocess {
        info: TargetInfo {
            pid: 43,
            python: "3.12.1".into(),
            command: vec![
                "/usr/bin/python3".into(),
                "-u".into(),
                "/srv/worker.py".into(),
            ],
            state_hz: 1000.0,
            stack_hz: 50.0,
            monotonic_zero_ns: 0,
            cwd: None,
        },
        profile: acc.finish(0, 2),
    }
}

fn target() -> TargetInfo {
    fixtures::app(42)
}

fn render(target: &TargetInfo, profile: &Profile, subprocesses: &[Subprocess]) -> Vec<u8> {
    fixtures::render(&Pprof, target, profile, subprocesses)
}

// ---- Tests. ----

/// A sample as the test sees it: pid, tid, state, thread, process, functions leaf
/// first, count.
type Row<'a> = (i64, i64, &'a str, String, &'a str, Vec<&'a str>, u64);

#[test]
fn header_names_the_sample_types_period_and_run() {
    let (target, profile, subs) = (target(), target_profile(), [subprocess()]);
    let d = decode(&render(&target, &profile, &subs));
    assert_eq!(d.strings[0], "");
    let vt = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        d.sample_types,
        [vt("samples", "count"), vt("wall", "nanoseconds")]
    );
    assert_eq!(d.period_type, vt("wall", "nanoseconds"));
    assert_eq!(d.period, 10_000_000, "100 Hz");
    assert_eq!(d.default_sample_type, "wall");
    assert_eq!(d.duration_nanos, 30_000_000);
    assert_eq!(d.time_nanos, 0, "no wall-clock start is known");
    assert_eq!(
        d.comments,
        [format!(
            "gilscope {}: pid 42, CPython 3.12.1, and 1 subprocesses",
            env!("CARGO_PKG_VERSION")
        )]
    );
    let single = decode(&render(&target, &profile, &[]));
    assert_eq!(
        single.comments,
        [format!(
            "gilscope {}: pid 42, CPython 3.12.1",
            env!("CARGO_PKG_VERSION")
        )]
    );
}

#[test]
fn every_stack_count_is_one_labelled_sample() {
    let (target, profile, subs) = (target(), target_profile(), [subprocess()]);
    let d = decode(&render(&target, &profile, &subs));

    let total: u64 = profile
        .stack_counts
        .iter()
        .chain(&subs[0].profile.stack_counts)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(total, 11, "3×2 + 3 in the target, 2 in the subprocess");
    let samples: i64 = d.samples.iter().map(|s| s.values[0]).sum();
    assert_eq!(samples as u64, total);
    assert_eq!(
        d.samples.len(),
        profile.stack_counts.len() + subs[0].profile.stack_counts.len()
    );

    // Each (process, tid, state, stack) entry, found by its labels and leaf.
    let mut expected: Vec<Row> = Vec::new();
    let long = long_name();
    for ((tid, state, id), n) in &profile.stack_counts {
        let name = match tid {
            7 => "</svg><script>".to_string(),
            8 => long.clone(),
            t => format!("thread {t}"),
        };
        let names = profile
            .stacks
            .get(*id)
            .iter()
            .rev()
            .map(|f| &*f.function)
            .collect();
        expected.push((42, (*tid).into(), state.key(), name, "app.py", names, *n));
    }
    expected.push((
        43,
        100,
        "holding",
        "MainThread".into(),
        "worker.py",
        vec!["work", "main"],
        2,
    ));
    let mut got: Vec<_> = d
        .samples
        .iter()
        .map(|s| {
            assert_eq!(s.values.len(), 2, "samples and wall");
            let (pid, count) = (s.num("pid"), s.values[0]);
            let period = if pid == 42 { 10_000_000 } else { 20_000_000 };
            assert_eq!(s.values[1], count * period, "wall = count × period");
            (
                pid,
                s.num("tid"),
                s.str("state"),
                s.str("thread").to_string(),
                s.str("process"),
                d.names(s),
                count as u64,
            )
        })
        .collect();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);

    // The interpreter is known for threads seen in state ticks, not for thread 9.
    for s in &d.samples {
        let interpreters: Vec<_> = s.labels.iter().filter(|l| l.0 == "interpreter").collect();
        if s.num("tid") == 9 {
            assert!(interpreters.is_empty());
            assert!(s.locations.is_empty(), "no Python frame");
        } else {
            assert_eq!(s.num("interpreter"), 0);
        }
    }
}

#[test]
fn leaf_comes_first_and_frames_are_stored_once() {
    let (target, profile) = (target(), target_profile());
    let d = decode(&render(&target, &profile, &[]));
    let holding = d
        .samples
        .iter()
        .find(|s| s.num("tid") == 7 && s.str("state") == "holding")
        .unwrap();
    assert_eq!(d.names(holding), ["compute", "main"]);
    let leaf = &d.locations[&holding.locations[0]];
    assert_eq!(leaf.1, 12, "line of the leaf");
    assert_eq!(d.functions[&leaf.0], ("compute".into(), "app.py".into()));

    // `main (app.py:1)` is in every stack: one function, one location.
    let mains: Vec<_> = d.functions.values().filter(|f| f.0 == "main").collect();
    assert_eq!(mains.len(), 1);
    assert_eq!(d.functions.len(), 3, "main, compute, acquire");
    assert_eq!(d.locations.len(), 3);
    let unique: std::collections::HashSet<_> = d.strings.iter().collect();
    assert_eq!(unique.len(), d.strings.len(), "each string once");
    for s in &d.samples {
        for l in &s.locations {
            assert!(d.locations.contains_key(l), "location {l} exists");
        }
    }
}

#[test]
fn hostile_and_huge_thread_names_round_trip() {
    let (target, profile) = (target(), target_profile());
    let d = decode(&render(&target, &profile, &[]));
    let long = long_name();
    assert_eq!(long.chars().count(), 10_000);
    let names: std::collections::BTreeSet<&str> =
        d.samples.iter().map(|s| s.str("thread")).collect();
    assert!(names.contains("</svg><script>"), "{names:?}");
    assert!(names.contains(long.as_str()));
    assert!(names.contains("thread 9"));
}

#[test]
fn the_same_profile_gives_the_same_bytes() {
    let (target, profile, subs) = (target(), target_profile(), [subprocess()]);
    let a = render(&target, &profile, &subs);
    let b = render(&target, &profile, &subs);
    assert_eq!(a, b);
    assert_eq!(&a[..2], [0x1f, 0x8b], "gzip magic");
    assert_eq!(&a[4..8], [0, 0, 0, 0], "mtime 0");
}

#[test]
fn per_state_totals_match_the_profile() {
    let (target, profile) = (target(), target_profile());
    let d = decode(&render(&target, &profile, &[]));
    let mut expected: HashMap<&str, i64> = HashMap::new();
    for ((_, state, _), n) in &profile.stack_counts {
        *expected.entry(state.key()).or_default() += *n as i64;
    }
    let mut got: HashMap<&str, i64> = HashMap::new();
    for s in &d.samples {
        *got.entry(s.str("state")).or_default() += s.values[0];
    }
    assert_eq!(got, expected);
    assert_eq!(got["holding"], 4);
    assert_eq!(got["waiting"], 4);
}

#[test]
fn known_frames_name_their_function_and_file() {
    let (target, profile) = (target(), target_profile());
    let d = decode(&render(&target, &profile, &[]));
    let mut functions: Vec<_> = d.functions.values().cloned().collect();
    functions.sort();
    let f = |n: &str, file: &str| (n.to_string(), file.to_string());
    assert_eq!(
        functions,
        [
            f("acquire", "/usr/lib/python3.12/threading.py"),
            f("compute", "app.py"),
            f("main", "app.py"),
        ]
    );
}

#[test]
fn an_empty_run_is_a_valid_profile() {
    let target = TargetInfo::default();
    let profile = Accumulator::default().finish(0, 1);
    let d = decode(&render(&target, &profile, &[]));
    assert_eq!(d.strings[0], "");
    assert!(d.samples.is_empty());
    assert_eq!(d.period, 0, "no stack rate");
    assert_eq!(d.sample_types.len(), 2);
}
