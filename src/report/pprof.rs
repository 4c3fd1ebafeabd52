//! The pprof format: a gzipped `perftools.profiles.Profile` protocol buffer
//! (github.com/google/pprof, `proto/profile.proto`), as `go tool pprof`, Pyroscope and Grafana
//! read it.
//!
//! Every stack sample of the target and of each subprocess becomes one pprof `Sample`, its
//! frames leaf first, labelled with its process, thread and GIL state: in pprof the state is a
//! label (`-tagfocus state=waiting`), never a frame. The protocol buffer is written by hand:
//! the format needs only varints and length-delimited fields.

// Until `Format` names this renderer, nothing outside the tests constructs it.
use std::collections::HashMap;
use std::io::Write;

use anyhow::{Context, Result};
use flate2::{Compression, GzBuilder};

use super::{Render, Report};
use crate::analysis::Profile;
use crate::model::{Frame, TargetInfo};

/// Renders the analysis as a gzipped pprof profile.
pub struct Pprof;

/// Field numbers of `profile.proto`.
mod field {
    pub mod profile {
        pub const SAMPLE_TYPE: u32 = 1;
        pub const SAMPLE: u32 = 2;
        pub const LOCATION: u32 = 4;
        pub const FUNCTION: u32 = 5;
        pub const STRING_TABLE: u32 = 6;
        pub const DURATION_NANOS: u32 = 10;
        pub const PERIOD_TYPE: u32 = 11;
        pub const PERIOD: u32 = 12;
        pub const COMMENT: u32 = 13;
        pub const DEFAULT_SAMPLE_TYPE: u32 = 14;
    }
    pub mod value_type {
        pub const TYPE: u32 = 1;
        pub const UNIT: u32 = 2;
    }
    pub mod sample {
        pub const LOCATION_ID: u32 = 1;
        pub const VALUE: u32 = 2;
        pub const LABEL: u32 = 3;
    }
    pub mod label {
        pub const KEY: u32 = 1;
        pub const STR: u32 = 2;
        pub const NUM: u32 = 3;
    }
    pub mod location {
        pub const ID: u32 = 1;
        pub const LINE: u32 = 4;
    }
    pub mod line {
        pub const FUNCTION_ID: u32 = 1;
        pub const LINE: u32 = 2;
    }
    pub mod function {
        pub const ID: u32 = 1;
        pub const NAME: u32 = 2;
        pub const SYSTEM_NAME: u32 = 3;
        pub const FILENAME: u32 = 4;
    }
}

/// Protocol buffer wire types.
const VARINT: u32 = 0;
const LEN: u32 = 2;

/// A protocol buffer message being written.
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u32) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    /// A `uint64` field; zero, the default, is left out.
    fn uint(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key(field, VARINT);
            self.varint(v);
        }
    }

    /// An `int64` field: negative values as their two's complement, as protobuf does.
    fn int(&mut self, field: u32, v: i64) {
        self.uint(field, v as u64);
    }

    /// A length-delimited field (string, bytes, embedded message), always written: the
    /// string table's first entry is the empty string.
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, LEN);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn message(&mut self, field: u32, m: &Message) {
        self.bytes(field, &m.0);
    }

    /// A packed repeated `uint64` or `int64` field.
    fn packed(&mut self, field: u32, values: impl IntoIterator<Item = u64>) {
        let mut inner = Message::default();
        for v in values {
            inner.varint(v);
        }
        if !inner.0.is_empty() {
            self.message(field, &inner);
        }
    }
}

/// The tables of the profile being built: strings, functions and locations, each stored once
/// and numbered in order of first use, so that the same input gives the same bytes.
#[derive(Default)]
struct Tables {
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    /// (name, file) string indices; the function id is the position + 1.
    functions: Vec<(i64, i64)>,
    function_ids: HashMap<(i64, i64), u64>,
    /// (function id, line); the location id is the position + 1.
    locations: Vec<(u64, i64)>,
    location_ids: HashMap<(u64, i64), u64>,
}

impl Tables {
    fn new() -> Tables {
        let mut t = Tables::default();
        t.string("");
        t
    }

    fn string(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), id);
        id
    }

    fn location(&mut self, frame: &Frame) -> u64 {
        let key = (self.string(&frame.function), self.string(&frame.file));
        let function = match self.function_ids.get(&key) {
            Some(&id) => id,
            None => {
                self.functions.push(key);
                let id = self.functions.len() as u64;
                self.function_ids.insert(key, id);
                id
            }
        };
        let key = (function, i64::from(frame.line));
        match self.location_ids.get(&key) {
            Some(&id) => id,
            None => {
                self.locations.push(key);
                let id = self.locations.len() as u64;
                self.location_ids.insert(key, id);
                id
            }
        }
    }
}

/// Nanoseconds between two stack samples at `hz`, or 0 when the rate is unknown.
fn period_ns(hz: f64) -> f64 {
    if hz.is_finite() && hz > 0.0 {
        1e9 / hz
    } else {
        0.0
    }
}

/// The program a command runs: the script or module for `python3 app.py`, else the
/// executable, without its directory.
fn value_type(t: &mut Tables, kind: &str, unit: &str) -> Message {
    let mut m = Message::default();
    m.int(field::value_type::TYPE, t.string(kind));
    m.int(field::value_type::UNIT, t.string(unit));
    m
}

fn str_label(t: &mut Tables, key: &str, value: &str) -> Message {
    let mut m = Message::default();
    m.int(field::label::KEY, t.string(key));
    m.int(field::label::STR, t.string(value));
    m
}

fn num_label(t: &mut Tables, key: &str, value: i64) -> Message {
    let mut m = Message::default();
    m.int(field::label::KEY, t.string(key));
    m.int(field::label::NUM, value);
    m
}

/// Appends one `Sample` per (thread, state, stack) of one process to `out`.
fn samples(t: &mut Tables, info: &TargetInfo, profile: &Profile, out: &mut Message) {
    let threads: HashMap<_, _> = profile
        .threads
        .iter()
        .map(|th| (th.tid, (th.label(), th.interpreter)))
        .collect();
    let process = super::program_name(info);
    let period = period_ns(info.stack_hz);
    for &((tid, state, id), count) in &profile.stack_counts {
        let mut sample = Message::default();
        // pprof lists a sample's frames leaf first; gilscope's stacks are outermost first.
        let locations: Vec<u64> = profile
            .stacks
            .get(id)
            .iter()
            .rev()
            .map(|frame| t.location(frame))
            .collect();
        sample.packed(field::sample::LOCATION_ID, locations);
        let wall = (count as f64 * period).round() as i64;
        sample.packed(
            field::sample::VALUE,
            [count as i64, wall].into_iter().map(|v| v as u64),
        );
        let (thread, interpreter) = match threads.get(&tid) {
            Some((label, interpreter)) => (label.clone(), Some(*interpreter)),
            None => (format!("thread {tid}"), None),
        };
        let mut labels = vec![
            str_label(t, "thread", &thread),
            num_label(t, "tid", i64::from(tid)),
            str_label(t, "state", state.key()),
        ];
        // Interpreter 0 is written as an absent `num`, protobuf's default; `go tool pprof`
        // drops a numeric label of 0 that has no unit, so there it shows no interpreter tag.
        if let Some(interpreter) = interpreter {
            labels.push(num_label(t, "interpreter", interpreter));
        }
        labels.push(num_label(t, "pid", i64::from(info.pid)));
        labels.push(str_label(t, "process", process));
        for label in &labels {
            sample.message(field::sample::LABEL, label);
        }
        out.message(field::profile::SAMPLE, &sample);
    }
}

/// The encoded, uncompressed `Profile` message.
fn encode(report: &Report) -> Vec<u8> {
    let mut t = Tables::new();
    let mut profile = Message::default();
    let sample_types = [
        value_type(&mut t, "samples", "count"),
        value_type(&mut t, "wall", "nanoseconds"),
    ];
    for st in &sample_types {
        profile.message(field::profile::SAMPLE_TYPE, st);
    }
    let processes = std::iter::once((report.target, report.profile))
        .chain(report.subprocesses.iter().map(|s| (&s.info, &s.profile)));
    let mut duration_s: f64 = 0.0;
    for (info, p) in processes {
        samples(&mut t, info, p, &mut profile);
        duration_s = duration_s.max(p.run.duration_s);
    }
    for (i, &(function, line)) in t.locations.iter().enumerate() {
        let mut l = Message::default();
        l.uint(field::line::FUNCTION_ID, function);
        l.int(field::line::LINE, line);
        let mut location = Message::default();
        location.uint(field::location::ID, i as u64 + 1);
        location.message(field::location::LINE, &l);
        profile.message(field::profile::LOCATION, &location);
    }
    for (i, &(name, file)) in t.functions.iter().enumerate() {
        let mut function = Message::default();
        function.uint(field::function::ID, i as u64 + 1);
        function.int(field::function::NAME, name);
        function.int(field::function::SYSTEM_NAME, name);
        function.int(field::function::FILENAME, file);
        profile.message(field::profile::FUNCTION, &function);
    }
    let comment = match report.subprocesses.len() {
        0 => format!(
            "gilscope {}: pid {}, CPython {}",
            env!("CARGO_PKG_VERSION"),
            report.target.pid,
            report.target.python
        ),
        n => format!(
            "gilscope {}: pid {}, CPython {}, and {n} subprocesses",
            env!("CARGO_PKG_VERSION"),
            report.target.pid,
            report.target.python
        ),
    };
    let comment = t.string(&comment);
    let wall = t.string("wall");
    let period_type = value_type(&mut t, "wall", "nanoseconds");
    // Every string is interned by now: the table can be written.
    for s in &t.strings {
        profile.bytes(field::profile::STRING_TABLE, s.as_bytes());
    }
    profile.int(
        field::profile::DURATION_NANOS,
        (duration_s * 1e9).round() as i64,
    );
    profile.message(field::profile::PERIOD_TYPE, &period_type);
    profile.int(
        field::profile::PERIOD,
        period_ns(report.target.stack_hz).round() as i64,
    );
    profile.int(field::profile::COMMENT, comment);
    profile.int(field::profile::DEFAULT_SAMPLE_TYPE, wall);
    profile.0
}

impl Render for Pprof {
    fn render(&self, report: &Report, out: &mut dyn Write) -> Result<()> {
        let bytes = encode(report);
        // mtime 0 and no file name: the same profile gives the same file.
        let mut gz = GzBuilder::new()
            .mtime(0)
            .write(&mut *out, Compression::default());
        gz.write_all(&bytes).context("writing the pprof profile")?;
        gz.finish().context("writing the pprof profile")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Accumulator;
    use crate::model::{
        GilReading, Sample, StackTick, StateTick, ThreadInfo, ThreadObservation, ThreadStack,
        ThreadState,
    };
    use crate::report::Subprocess;
    use std::io::Read;
    use std::time::Duration;

    // ---- A minimal protocol buffer decoder, enough to read a Profile back. ----

    #[derive(Debug, Clone)]
    enum Value {
        Varint(u64),
        Bytes(Vec<u8>),
    }

    fn read_varint(buf: &[u8], pos: &mut usize) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = buf[*pos];
            *pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return v;
            }
            shift += 7;
            assert!(shift < 64, "varint too long");
        }
    }

    /// The fields of one message, in order.
    fn fields(buf: &[u8]) -> Vec<(u32, Value)> {
        let mut pos = 0;
        let mut out = Vec::new();
        while pos < buf.len() {
            let key = read_varint(buf, &mut pos);
            let (field, wire) = ((key >> 3) as u32, key & 7);
            let value = match wire {
                0 => Value::Varint(read_varint(buf, &mut pos)),
                2 => {
                    let len = read_varint(buf, &mut pos) as usize;
                    let v = buf[pos..pos + len].to_vec();
                    pos += len;
                    Value::Bytes(v)
                }
                1 => {
                    pos += 8;
                    continue;
                }
                5 => {
                    pos += 4;
                    continue;
                }
                w => panic!("unexpected wire type {w}"),
            };
            out.push((field, value));
        }
        assert_eq!(pos, buf.len(), "message overruns its bytes");
        out
    }

    /// A repeated integer field, packed or not.
    fn ints(fs: &[(u32, Value)], field: u32) -> Vec<u64> {
        let mut out = Vec::new();
        for (f, v) in fs {
            if *f != field {
                continue;
            }
            match v {
                Value::Varint(n) => out.push(*n),
                Value::Bytes(b) => {
                    let mut pos = 0;
                    while pos < b.len() {
                        out.push(read_varint(b, &mut pos));
                    }
                }
            }
        }
        out
    }

    /// A singular integer field, 0 when absent.
    fn int(fs: &[(u32, Value)], field: u32) -> i64 {
        ints(fs, field).last().copied().unwrap_or(0) as i64
    }

    fn messages(fs: &[(u32, Value)], field: u32) -> Vec<Vec<(u32, Value)>> {
        fs.iter()
            .filter(|(f, _)| *f == field)
            .map(|(_, v)| match v {
                Value::Bytes(b) => fields(b),
                Value::Varint(_) => panic!("field {field} is not a message"),
            })
            .collect()
    }

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

    fn decode(gzipped: &[u8]) -> Decoded {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(gzipped)
            .read_to_end(&mut raw)
            .expect("valid gzip");
        let p = fields(&raw);
        let strings: Vec<String> = p
            .iter()
            .filter(|(f, _)| *f == 6)
            .map(|(_, v)| match v {
                Value::Bytes(b) => String::from_utf8(b.clone()).expect("UTF-8 string"),
                Value::Varint(_) => panic!("string_table entry is not bytes"),
            })
            .collect();
        let s = |i: i64| strings[usize::try_from(i).unwrap()].clone();
        let vt = |m: &[(u32, Value)]| (s(int(m, 1)), s(int(m, 2)));
        let mut locations = HashMap::new();
        for l in messages(&p, 4) {
            let lines = messages(&l, 4);
            assert_eq!(lines.len(), 1, "one line per location");
            let id = int(&l, 1) as u64;
            assert_ne!(id, 0);
            let previous = locations.insert(id, (int(&lines[0], 1) as u64, int(&lines[0], 2)));
            assert!(previous.is_none(), "location ids are unique");
        }
        let mut functions = HashMap::new();
        for f in messages(&p, 5) {
            let id = int(&f, 1) as u64;
            assert_ne!(id, 0);
            assert_eq!(int(&f, 2), int(&f, 3), "system_name is the name");
            let previous = functions.insert(id, (s(int(&f, 2)), s(int(&f, 4))));
            assert!(previous.is_none(), "function ids are unique");
        }
        let samples = messages(&p, 2)
            .iter()
            .map(|m| DecodedSample {
                locations: ints(m, 1),
                values: ints(m, 2).into_iter().map(|v| v as i64).collect(),
                labels: messages(m, 3)
                    .iter()
                    .map(|l| (s(int(l, 1)), s(int(l, 2)), int(l, 3)))
                    .collect(),
            })
            .collect();
        Decoded {
            sample_types: messages(&p, 1).iter().map(|m| vt(m)).collect(),
            samples,
            locations,
            functions,
            period_type: vt(&messages(&p, 11)[0]),
            period: int(&p, 12),
            duration_nanos: int(&p, 10),
            time_nanos: int(&p, 9),
            comments: ints(&p, 13).into_iter().map(|i| s(i as i64)).collect(),
            default_sample_type: s(int(&p, 14)),
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
                    frames: frames.clone(),
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
        TargetInfo {
            pid: 42,
            python: "3.12.1".into(),
            command: vec!["python3".into(), "app.py".into()],
            state_hz: 1000.0,
            stack_hz: 100.0,
            monotonic_zero_ns: 5_000_000_000,
            cwd: None,
        }
    }

    fn render(target: &TargetInfo, profile: &Profile, subprocesses: &[Subprocess]) -> Vec<u8> {
        let mut out = Vec::new();
        Pprof
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

    // ---- Tests. ----

    /// A sample as the test sees it: pid, tid, state, thread, process, functions leaf
    /// first, count.
    type Row<'a> = (i64, i64, &'a str, String, &'a str, Vec<&'a str>, u64);

    #[test]
    fn varints_round_trip() {
        for v in [0, 1, 127, 128, 300, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut m = Message::default();
            m.varint(v);
            let mut pos = 0;
            assert_eq!(read_varint(&m.0, &mut pos), v);
            assert_eq!(pos, m.0.len());
        }
        let mut m = Message::default();
        m.int(3, -1);
        assert_eq!(
            m.0.len(),
            11,
            "a negative int64 takes ten bytes after its key"
        );
        assert_eq!(int(&fields(&m.0), 3), -1);
    }

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
                .map(|f| f.function.as_str())
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
    fn an_empty_run_is_a_valid_profile() {
        let target = TargetInfo::default();
        let profile = Accumulator::default().finish(0, 1);
        let d = decode(&render(&target, &profile, &[]));
        assert_eq!(d.strings[0], "");
        assert!(d.samples.is_empty());
        assert_eq!(d.period, 0, "no stack rate");
        assert_eq!(d.sample_types.len(), 2);
    }
}
