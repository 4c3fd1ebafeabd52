//! Recordings: the raw samples of a run, kept in a file as the run goes, so that any report
//! can be rendered from it later (`gilscope report FILE`), exactly as the live run would have.
//!
//! Format, version 2 (version 1 had five GIL-build states, where `native` also meant
//! "runnable" and `idle` every off-CPU wait; this gilscope refuses it): a gzip stream of JSON lines. The first line is the header
//! (`{"t":"header","format":"gilscope-recording","version":2,…}`); then, in the order they
//! happened, a `process` line for each profiled process (index `p`, 0 the target), `frame`
//! lines that define each distinct frame once, and one line per sample (stack samples name
//! frames by id). The stream is flushed every second, so a crash or Ctrl-C loses at most the
//! last second; a reader stops at a cut-off end and says so.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};

use crate::analysis::Accumulator;
use crate::model::{
    Frame, ProgramExit, Sample, StackTick, TargetInfo, ThreadStack, ThreadState, Tid,
};
use crate::report::Subprocess;

pub const FORMAT: &str = "gilscope-recording";
/// The version this gilscope writes; it reads this one only.
pub const VERSION: u32 = 2;
/// How often the stream is flushed to the file: what a crash can lose at most.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// One line of a recording.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Line {
    Header {
        format: String,
        version: u32,
        gilscope: String,
    },
    /// A profiled process: index `p` in this recording (0 is the target).
    Process {
        p: u32,
        target: TargetInfo,
        cpu_count: usize,
    },
    /// A distinct frame, defined once; stack samples name it by `id`.
    Frame {
        id: u32,
        function: String,
        file: String,
        line: u32,
    },
    /// A stack sample, its frames by id.
    Stacks {
        p: u32,
        at_ns: u64,
        waiters: u32,
        stacks: Vec<StackLine>,
    },
    /// Any other sample, as the sampler sent it.
    Sample { p: u32, sample: Sample },
    /// The process's sampler ended; `late_ticks` it counted, and how the program ended
    /// when gilscope launched it.
    End {
        p: u32,
        late_ticks: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit: Option<ProgramExit>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct StackLine {
    tid: Tid,
    state: ThreadState,
    on_cpu: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    queued: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    stalled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    native: Option<u32>,
    frames: Vec<u32>,
}

/// Writes a recording as the run goes.
pub struct Writer {
    path: PathBuf,
    out: GzEncoder<BufWriter<File>>,
    frames: HashMap<Frame, u32>,
    last_flush: Instant,
}

impl Writer {
    /// Creates (or replaces) the recording at `path` and writes its header.
    pub fn create(path: &Path) -> std::io::Result<Writer> {
        let file = File::create(path)?;
        let mut w = Writer {
            path: path.to_path_buf(),
            out: GzEncoder::new(BufWriter::new(file), Compression::default()),
            frames: HashMap::new(),
            last_flush: Instant::now(),
        };
        w.line(&Line::Header {
            format: FORMAT.into(),
            version: VERSION,
            gilscope: env!("CARGO_PKG_VERSION").into(),
        })?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn line(&mut self, line: &Line) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, line)?;
        self.out.write_all(b"\n")
    }

    /// A process joins the recording as index `p`.
    pub fn process(&mut self, p: u32, target: &TargetInfo, cpu_count: usize) -> Result<()> {
        self.line(&Line::Process {
            p,
            target: target.clone(),
            cpu_count,
        })
        .with_context(|| format!("writing the recording {}", self.path.display()))
    }

    /// One sample of process `p`.
    pub fn sample(&mut self, p: u32, sample: &Sample) -> Result<()> {
        let line = match sample {
            Sample::Stacks(tick) => {
                let mut stacks = Vec::with_capacity(tick.stacks.len());
                for s in &tick.stacks {
                    let frames = s
                        .frames
                        .iter()
                        .map(|f| self.frame_id(f))
                        .collect::<std::io::Result<Vec<u32>>>()?;
                    stacks.push(StackLine {
                        tid: s.tid,
                        state: s.state,
                        on_cpu: s.on_cpu,
                        queued: s.queued,
                        stalled: s.stalled,
                        native: s.native,
                        frames,
                    });
                }
                Line::Stacks {
                    p,
                    at_ns: tick.at.as_nanos() as u64,
                    waiters: tick.waiters,
                    stacks,
                }
            }
            other => Line::Sample {
                p,
                sample: other.clone(),
            },
        };
        self.line(&line)
            .with_context(|| format!("writing the recording {}", self.path.display()))?;
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    fn frame_id(&mut self, frame: &Frame) -> std::io::Result<u32> {
        if let Some(&id) = self.frames.get(frame) {
            return Ok(id);
        }
        let id = self.frames.len() as u32;
        self.line(&Line::Frame {
            id,
            function: frame.function.clone(),
            file: frame.file.clone(),
            line: frame.line,
        })?;
        self.frames.insert(frame.clone(), id);
        Ok(id)
    }

    /// Process `p`'s sampler ended.
    pub fn end(&mut self, p: u32, late_ticks: u64) -> Result<()> {
        self.end_with(p, late_ticks, None)
    }

    /// Process `p`'s sampler ended, and its program ended so.
    pub fn end_with(&mut self, p: u32, late_ticks: u64, exit: Option<ProgramExit>) -> Result<()> {
        self.line(&Line::End {
            p,
            late_ticks,
            exit,
        })
        .with_context(|| format!("writing the recording {}", self.path.display()))
    }

    /// Makes everything written so far readable from the file (a gzip sync flush).
    pub fn flush(&mut self) -> Result<()> {
        self.last_flush = Instant::now();
        self.out
            .flush()
            .with_context(|| format!("writing the recording {}", self.path.display()))
    }

    /// Ends the gzip stream and closes the file.
    pub fn finish(self) -> Result<()> {
        let path = self.path.clone();
        let mut inner = self
            .out
            .finish()
            .with_context(|| format!("writing the recording {}", path.display()))?;
        inner
            .flush()
            .with_context(|| format!("writing the recording {}", path.display()))
    }
}

/// The recording of a live run, if one was asked for. A write that fails (a full disk) ends
/// the recording with a warning; the run and its reports go on.
pub struct Tape(Option<Writer>);

impl Tape {
    pub fn new(writer: Option<Writer>) -> Tape {
        Tape(writer)
    }

    fn keep(&mut self, result: Result<()>) {
        if let Err(e) = result {
            if let Some(w) = self.0.take() {
                eprintln!(
                    "gilscope: warning: stopped recording to {} ({e:#}); the run goes on",
                    w.path().display()
                );
            }
        }
    }

    pub fn process(&mut self, p: u32, target: &TargetInfo, cpu_count: usize) {
        let result = self.0.as_mut().map(|w| w.process(p, target, cpu_count));
        self.keep(result.unwrap_or(Ok(())));
    }

    pub fn sample(&mut self, p: u32, sample: &Sample) {
        let result = self.0.as_mut().map(|w| w.sample(p, sample));
        self.keep(result.unwrap_or(Ok(())));
    }

    pub fn end(&mut self, p: u32, late_ticks: u64) {
        self.end_with(p, late_ticks, None);
    }

    pub fn end_with(&mut self, p: u32, late_ticks: u64, exit: Option<ProgramExit>) {
        let result = self.0.as_mut().map(|w| w.end_with(p, late_ticks, exit));
        self.keep(result.unwrap_or(Ok(())));
    }

    /// Closes the file; returns its path if the recording is whole.
    pub fn finish(mut self) -> Option<PathBuf> {
        let w = self.0.take()?;
        let path = w.path().to_path_buf();
        match w.finish() {
            Ok(()) => Some(path),
            Err(e) => {
                eprintln!(
                    "gilscope: warning: the recording {} is incomplete ({e:#})",
                    path.display()
                );
                None
            }
        }
    }
}

/// What a recording holds, analysed as a live run would have been.
pub struct Replayed {
    pub target: TargetInfo,
    pub profile: crate::analysis::Profile,
    pub subprocesses: Vec<Subprocess>,
    /// False when the file ends mid-stream (the run crashed or was killed): the profile covers
    /// what was written up to then.
    pub complete: bool,
}

struct Process {
    target: TargetInfo,
    cpu_count: usize,
    acc: Accumulator,
    late_ticks: u64,
    exit: Option<ProgramExit>,
}

/// Reads the recording at `path` and analyses every process in it.
pub fn replay(path: &Path) -> Result<Replayed> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut lines = BufReader::new(GzDecoder::new(BufReader::new(file))).lines();
    let first = match lines.next() {
        Some(Ok(line)) => line,
        _ => bail!(
            "{} is not a gilscope recording (it does not start with a gzip-compressed header)",
            path.display()
        ),
    };
    check_header(path, &first)?;
    let mut frames: Vec<Frame> = Vec::new();
    let mut processes: Vec<Process> = Vec::new();
    let mut ended = 0;
    let mut complete = true;
    for (n, line) in lines.enumerate() {
        let Ok(line) = line else {
            // A cut-off gzip stream: everything before it was flushed whole.
            complete = false;
            break;
        };
        let parsed: Line = match serde_json::from_str(&line) {
            Ok(parsed) => parsed,
            // The last line of a cut-off file may be partial.
            Err(_) if line.is_empty() || !line.ends_with('}') => {
                complete = false;
                break;
            }
            Err(e) => bail!("{}: line {} is not valid: {e}", path.display(), n + 2),
        };
        match parsed {
            Line::Header { .. } => bail!("{}: a second header at line {}", path.display(), n + 2),
            Line::Process {
                p,
                target,
                cpu_count,
            } => {
                if p as usize != processes.len() {
                    bail!("{}: process {p} out of order", path.display());
                }
                processes.push(Process {
                    acc: Accumulator::with_cwd(target.cwd.clone()),
                    target,
                    cpu_count,
                    late_ticks: 0,
                    exit: None,
                });
            }
            Line::Frame {
                id,
                function,
                file,
                line,
            } => {
                if id as usize != frames.len() {
                    bail!("{}: frame {id} out of order", path.display());
                }
                frames.push(Frame {
                    function,
                    file,
                    line,
                });
            }
            Line::Stacks {
                p,
                at_ns,
                waiters,
                stacks,
            } => {
                let process = process_mut(&mut processes, p, path)?;
                let mut tick = StackTick {
                    at: Duration::from_nanos(at_ns),
                    waiters,
                    stacks: Vec::with_capacity(stacks.len()),
                };
                for s in stacks {
                    let frames = s
                        .frames
                        .iter()
                        .map(|&id| frames.get(id as usize).cloned())
                        .collect::<Option<Vec<Frame>>>()
                        .with_context(|| format!("{}: an undefined frame", path.display()))?;
                    tick.stacks.push(ThreadStack {
                        tid: s.tid,
                        state: s.state,
                        on_cpu: s.on_cpu,
                        queued: s.queued,
                        stalled: s.stalled,
                        native: s.native,
                        frames,
                    });
                }
                process.acc.push(Sample::Stacks(tick));
            }
            Line::Sample { p, sample } => process_mut(&mut processes, p, path)?.acc.push(sample),
            Line::End {
                p,
                late_ticks,
                exit,
            } => {
                let process = process_mut(&mut processes, p, path)?;
                process.late_ticks = late_ticks;
                process.exit = exit;
                ended += 1;
            }
        }
    }
    if ended < processes.len() {
        complete = false;
    }
    let mut analysed = processes.into_iter().map(|p| {
        let mut profile = p.acc.finish(p.late_ticks, p.cpu_count);
        if let Some(exit) = p.exit {
            crate::analysis::program_ended(&mut profile, &p.target.command, exit);
        }
        (p.target, profile)
    });
    let Some((target, profile)) = analysed.next() else {
        bail!("{} holds no profiled process", path.display());
    };
    let subprocesses = analysed
        .filter(|(_, profile)| profile.run.state_samples > 0)
        .map(|(info, profile)| Subprocess { info, profile })
        .collect();
    Ok(Replayed {
        target,
        profile,
        subprocesses,
        complete,
    })
}

fn check_header(path: &Path, first: &str) -> Result<()> {
    #[derive(Deserialize)]
    struct Head {
        format: Option<String>,
        version: Option<u32>,
        gilscope: Option<String>,
    }
    let head: Head = serde_json::from_str(first).map_err(|_| {
        anyhow::anyhow!(
            "{} is not a gilscope recording (no header line)",
            path.display()
        )
    })?;
    if head.format.as_deref() != Some(FORMAT) {
        bail!("{} is not a gilscope recording", path.display());
    }
    match head.version {
        Some(VERSION) => Ok(()),
        Some(v) => bail!(
            "{} is a version {v} recording (written by gilscope {}); this gilscope {} reads \
             version {VERSION}: render it with the gilscope that wrote it",
            path.display(),
            head.gilscope.as_deref().unwrap_or("unknown"),
            env!("CARGO_PKG_VERSION")
        ),
        None => bail!("{} has no format version", path.display()),
    }
}

fn process_mut<'a>(processes: &'a mut [Process], p: u32, path: &Path) -> Result<&'a mut Process> {
    processes
        .get_mut(p as usize)
        .with_context(|| format!("{}: a sample of undeclared process {p}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GilReading, StateTick, ThreadInfo, ThreadObservation};

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
                        }],
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
        assert_eq!(replayed.target, target());
        let r = &replayed.profile;
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
        assert!(replayed.profile.run.state_samples >= 50);
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
}
