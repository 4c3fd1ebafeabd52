//! Reading a recording back: line by line through [`Bounds`] into an accumulator per process.
//!
//! A run that was killed leaves a file whose gzip stream stops early, perhaps in the middle of
//! a line: that end is "cut short", and everything before it is reported. Anything else that
//! is wrong — a blank line, bytes that are not UTF-8, a line that does not parse, gzip data
//! that does not decode, a checksum that does not match — means the file was damaged, and is
//! an error naming the line.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use flate2::read::GzDecoder;
use serde::Deserialize;

use super::bounds::{Bounds, MAX_FRAMES, MAX_LINE_BYTES};
use super::{Line, FORMAT, VERSION};
use crate::analysis::Accumulator;
use crate::model::{Frame, ProgramExit, Sample, StackTick, TargetInfo, ThreadStack};
use crate::report::Subprocess;

/// What a recording holds, analysed as a live run would have been.
pub struct Replayed {
    pub target: TargetInfo,
    pub profile: crate::analysis::Profile,
    pub subprocesses: Vec<Subprocess>,
    /// False when the file ends mid-stream (the run crashed or was killed): the profile covers
    /// what was written up to then.
    pub complete: bool,
    /// How it ends early, when it does: "its gzip stream stops early".
    pub cut_short: Option<String>,
    /// What the replay cut or dropped to stay within its bounds, a clause each.
    pub warnings: Vec<String>,
}

struct Process {
    target: TargetInfo,
    cpu_count: usize,
    acc: Accumulator,
    late_ticks: u64,
    exit: Option<ProgramExit>,
    ended: bool,
}

/// One read from the decompressed stream.
enum Read1 {
    /// A whole line, without its newline.
    Line,
    /// The end of a whole stream.
    End,
    /// The stream stops early (the writer was killed): why, in a few words.
    Cut(&'static str),
}

/// The decompressed lines of a recording, numbered from 1.
struct Lines<R> {
    input: R,
    number: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    /// Reads the next line into `self.buf`; an error when the stream is damaged.
    fn next(&mut self) -> Result<Read1> {
        self.buf.clear();
        self.number += 1;
        let limit = MAX_LINE_BYTES as u64 + 1;
        let read = (&mut self.input)
            .take(limit)
            .read_until(b'\n', &mut self.buf);
        match read {
            Ok(0) => Ok(Read1::End),
            Ok(_) if self.buf.last() == Some(&b'\n') => {
                self.buf.pop();
                Ok(Read1::Line)
            }
            Ok(_) if self.buf.len() > MAX_LINE_BYTES => bail!(
                "line {} is longer than {} MiB, which no recording has",
                self.number,
                MAX_LINE_BYTES >> 20
            ),
            // A last line without its newline: the writer stopped in the middle of it.
            Ok(_) => match self.input.read(&mut [0u8; 1]) {
                Ok(0) => Ok(Read1::Cut("its last line is incomplete")),
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                    Ok(Read1::Cut("its last line is incomplete"))
                }
                Ok(_) => bail!("line {} is damaged", self.number),
                Err(e) => Err(damaged(self.number, &e)),
            },
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                Ok(Read1::Cut(if self.buf.is_empty() {
                    "its gzip stream stops early"
                } else {
                    "its last line is incomplete"
                }))
            }
            Err(e) => Err(damaged(self.number, &e)),
        }
    }
}

/// Data that does not decompress, met while reading line `number`.
fn damaged(number: usize, e: &std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "its compressed data is damaged after line {} ({e}), so the file was changed after it \
         was written",
        number - 1
    )
}

/// What is wrong with a line's JSON, by column: serde's own "at line 1" would contradict
/// the line number of the message.
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let place = format!(" at line {} column {}", e.line(), e.column());
    let what = text.strip_suffix(&place).unwrap_or(&text);
    // A name the file made up is quoted in the message: cut it.
    let what: String = what
        .chars()
        .take(200)
        .map(|c| if inert(c) { c } else { '\u{fffd}' })
        .collect();
    match e.column() {
        0 => what,
        column => format!("{what} at column {column}"),
    }
}

/// Reads the recording at `path` and analyses every process in it.
pub fn replay(path: &Path) -> Result<Replayed> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        bail!("it is a directory: give the file that `gilscope record --recording` wrote");
    }
    read(BufReader::new(GzDecoder::new(BufReader::new(file))))
}

/// Replays the decompressed stream of a recording. Errors do not name the file: the caller's
/// message does.
fn read(input: impl BufRead) -> Result<Replayed> {
    let mut lines = Lines {
        input,
        number: 0,
        buf: Vec::new(),
    };
    let not_one = || {
        anyhow::anyhow!(
            "it is not a gilscope recording (it does not start with a gzip-compressed header)"
        )
    };
    match lines.next() {
        Ok(Read1::Line) => {}
        _ => return Err(not_one()),
    }
    check_header(std::str::from_utf8(&lines.buf).map_err(|_| not_one())?)?;
    let mut bounds = Bounds::default();
    let mut frames: Vec<Frame> = Vec::new();
    // Frames defined in the file: those past MAX_FRAMES are counted, not kept.
    let mut defined: u32 = 0;
    let mut processes: Vec<Process> = Vec::new();
    let mut declared: u32 = 0;
    let mut cut_short = None;
    loop {
        match lines.next()? {
            Read1::Line => {}
            Read1::End => break,
            Read1::Cut(why) => {
                cut_short = Some(why.to_string());
                break;
            }
        }
        let n = lines.number;
        let text = std::str::from_utf8(&lines.buf).map_err(|e| {
            anyhow::anyhow!(
                "line {n} is not valid UTF-8 (at byte {}), so the file was damaged after it \
                 was written",
                e.valid_up_to() + 1
            )
        })?;
        if text.trim().is_empty() {
            bail!("line {n} is blank, so the file was damaged after it was written");
        }
        let parsed: Line = parse(text).map_err(|e| {
            anyhow::anyhow!(
                "line {n} is not a recording line ({}), so the file was damaged after it was \
                 written",
                json_error(&e)
            )
        })?;
        match parsed {
            Line::Header { .. } => bail!("line {n} is a second header"),
            Line::Process {
                p,
                target,
                cpu_count,
            } => {
                if p != declared {
                    bail!("line {n} declares process {p} out of order");
                }
                declared += 1;
                let zero = processes.first().map(|p| p.target.monotonic_zero_ns);
                if let Some((target, cpu_count)) = bounds.process(target, cpu_count, zero) {
                    processes.push(Process {
                        acc: Accumulator::with_cwd(target.cwd.clone()),
                        target,
                        cpu_count,
                        late_ticks: 0,
                        exit: None,
                        ended: false,
                    });
                }
            }
            Line::Frame {
                id,
                function,
                file,
                line,
            } => {
                if id != defined {
                    bail!("line {n} defines frame {id} out of order");
                }
                defined += 1;
                if frames.len() < MAX_FRAMES {
                    frames.push(bounds.frame(function, file, line));
                } else {
                    bounds.frame_over();
                }
            }
            Line::Stacks {
                p,
                at_ns,
                waiters,
                stacks,
            } => {
                check_process(p, declared, n)?;
                let at = Duration::from_nanos(at_ns);
                if !bounds.keeps_process(p) || !bounds.time(p, at) {
                    continue;
                }
                let mut tick = StackTick {
                    at,
                    waiters,
                    stacks: Vec::with_capacity(stacks.len().min(64)),
                };
                let mut spent = 0;
                for s in stacks {
                    if let Some(&id) = s.frames.iter().find(|&&id| id >= defined) {
                        bail!("line {n} names frame {id}, which no line before defines");
                    }
                    if !bounds.thread(p, s.tid) {
                        continue;
                    }
                    let ids = bounds.stack(s.frames, &mut spent, |id| Bounds::cost(&frames, id));
                    tick.stacks.push(ThreadStack {
                        tid: s.tid,
                        state: s.state,
                        on_cpu: s.on_cpu,
                        queued: s.queued,
                        stalled: s.stalled,
                        native: Bounds::native(s.native),
                        frames: ids.iter().map(|&id| frame(&frames, id)).collect(),
                    });
                }
                processes[p as usize].acc.push(Sample::Stacks(tick));
            }
            Line::Sample { p, sample } => {
                check_process(p, declared, n)?;
                if matches!(sample, Sample::Stacks(_)) {
                    bail!("line {n} holds a stack sample in a form gilscope never writes");
                }
                if !bounds.keeps_process(p) {
                    continue;
                }
                if let Some(sample) = bounds.sample(p, sample) {
                    processes[p as usize].acc.push(sample);
                }
            }
            Line::End {
                p,
                late_ticks,
                exit,
            } => {
                check_process(p, declared, n)?;
                if !bounds.keeps_process(p) {
                    continue;
                }
                let exit = bounds.exit(exit);
                let process = &mut processes[p as usize];
                process.late_ticks = bounds.late_ticks(late_ticks);
                process.exit = exit;
                process.ended = true;
            }
        }
    }
    if cut_short.is_none() {
        if let Some(p) = processes.iter().position(|p| !p.ended) {
            cut_short = Some(format!("the end of process {p} was never written"));
        }
    }
    let mut analysed = processes.into_iter().map(|p| {
        let mut profile = p.acc.finish(p.late_ticks, p.cpu_count);
        if let Some(exit) = p.exit {
            crate::analysis::program_ended(&mut profile, &p.target.command, exit);
        }
        (p.target, profile)
    });
    let Some((target, profile)) = analysed.next() else {
        bail!("it holds no profiled process");
    };
    let subprocesses = analysed
        .filter(|(_, profile)| profile.run.state_samples > 0)
        .map(|(info, profile)| Subprocess { info, profile })
        .collect();
    Ok(Replayed {
        target,
        profile,
        subprocesses,
        complete: cut_short.is_none(),
        cut_short,
        warnings: bounds.warnings(),
    })
}

/// The lines whose fields may be large, each read straight into its fields: serde reads an
/// internally tagged enum by first copying the whole line into a tree of its values, which
/// costs some twenty times the line, so only small lines go that way.
#[derive(Deserialize)]
struct StacksFields {
    p: u32,
    at_ns: u64,
    waiters: u32,
    stacks: Vec<super::StackLine>,
}

#[derive(Deserialize)]
struct SampleFields {
    p: u32,
    sample: Sample,
}

#[derive(Deserialize)]
struct ProcessFields {
    p: u32,
    target: TargetInfo,
    cpu_count: usize,
}

/// The longest line read through the tagged enum (one whose tag is not first, as gilscope
/// writes it, or a small kind of line).
const MAX_TREE_LINE: usize = 64 << 10;

/// One line, by its tag: gilscope writes `{"t":"…",` first.
fn parse(text: &str) -> serde_json::Result<Line> {
    if text.starts_with(r#"{"t":"stacks","#) {
        let f: StacksFields = serde_json::from_str(text)?;
        return Ok(Line::Stacks {
            p: f.p,
            at_ns: f.at_ns,
            waiters: f.waiters,
            stacks: f.stacks,
        });
    }
    if text.starts_with(r#"{"t":"sample","#) {
        let f: SampleFields = serde_json::from_str(text)?;
        return Ok(Line::Sample {
            p: f.p,
            sample: f.sample,
        });
    }
    if text.starts_with(r#"{"t":"process","#) {
        let f: ProcessFields = serde_json::from_str(text)?;
        return Ok(Line::Process {
            p: f.p,
            target: f.target,
            cpu_count: f.cpu_count,
        });
    }
    if text.len() > MAX_TREE_LINE && !text.starts_with(r#"{"t":"frame","#) {
        return Err(serde::de::Error::custom(
            "a long line that does not start with its type, as gilscope writes it",
        ));
    }
    serde_json::from_str(text)
}

/// A frame a stack names: a frame past [`MAX_FRAMES`] was not kept, and is a placeholder.
fn frame(frames: &[Frame], id: u32) -> Frame {
    frames.get(id as usize).cloned().unwrap_or_else(|| Frame {
        function: super::bounds::DROPPED_FRAME.into(),
        file: String::new(),
        line: 0,
    })
}

/// A sample's process must have been declared before it.
fn check_process(p: u32, declared: u32, n: usize) -> Result<()> {
    if p >= declared {
        bail!("line {n} is a sample of process {p}, which no line before declares");
    }
    Ok(())
}

fn check_header(first: &str) -> Result<()> {
    #[derive(Deserialize)]
    struct Head {
        format: Option<String>,
        version: Option<u32>,
        gilscope: Option<String>,
    }
    let head: Head = serde_json::from_str(first)
        .map_err(|_| anyhow::anyhow!("it is not a gilscope recording (no header line)"))?;
    if head.format.as_deref() != Some(FORMAT) {
        bail!("it is not a gilscope recording");
    }
    match head.version {
        Some(VERSION) => Ok(()),
        Some(v) => bail!(
            "it is a version {v} recording (written by gilscope {}); this gilscope {} reads \
             version {VERSION}: render it with the gilscope that wrote it",
            head.gilscope
                .as_deref()
                .unwrap_or("unknown")
                .chars()
                .take(32)
                .collect::<String>(),
            env!("CARGO_PKG_VERSION")
        ),
        None => bail!("it has no format version"),
    }
}

/// Whether a character from the file may reach a terminal in a message: no control
/// characters, no bidirectional overrides.
fn inert(c: char) -> bool {
    !c.is_control()
        && !matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}
