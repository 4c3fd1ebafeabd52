//! Reading a recording back: line by line through [`Bounds`], as the [`Record`]s it holds.
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
use crate::model::{Frame, ProgramExit, Sample, StackTick, TargetInfo, ThreadStack};

/// What a recording says, in order: each within the replay's bounds.
#[derive(Debug)]
pub enum Record {
    /// A profiled process, `p` counting from 0 (the target) in the order they are declared.
    Process {
        p: u32,
        target: TargetInfo,
        cpu_count: usize,
    },
    /// One of its samples, stack samples with their frames.
    Sample { p: u32, sample: Sample },
    /// Its sampler ended: the ticks it counted late, and how the program ended when gilscope
    /// launched it.
    End {
        p: u32,
        late_ticks: u64,
        exit: Option<ProgramExit>,
    },
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

/// A recording being read: [`Reader::record`] gives its records one at a time.
pub struct Reader<R> {
    lines: Lines<R>,
    bounds: Bounds,
    frames: Vec<Frame>,
    /// Frames defined in the file: those past MAX_FRAMES are counted, not kept.
    defined: u32,
    /// Processes declared in the file, and whether each kept one's end was read.
    declared: u32,
    ended: Vec<bool>,
    /// The first process's time zero, which the others' are checked against.
    first_zero: Option<u64>,
    cut_short: Option<String>,
    done: bool,
}

/// Opens the recording at `path` and reads its header.
pub fn open(path: &Path) -> Result<Reader<impl BufRead>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        bail!("it is a directory: give the file that `gilscope record --recording` wrote");
    }
    Reader::new(BufReader::new(GzDecoder::new(BufReader::new(file))))
}

impl<R: BufRead> Reader<R> {
    /// Reads the header of the decompressed stream of a recording. Errors do not name the
    /// file: the caller's message does.
    pub fn new(input: R) -> Result<Reader<R>> {
        let mut lines = Lines {
            input,
            number: 0,
            buf: Vec::new(),
        };
        let not_one = || {
            anyhow::anyhow!(
                "it is not a gilscope recording (it does not start with a gzip-compressed \
                 header)"
            )
        };
        match lines.next() {
            Ok(Read1::Line) => {}
            _ => return Err(not_one()),
        }
        check_header(std::str::from_utf8(&lines.buf).map_err(|_| not_one())?)?;
        Ok(Reader {
            lines,
            bounds: Bounds::default(),
            frames: Vec::new(),
            defined: 0,
            declared: 0,
            ended: Vec::new(),
            first_zero: None,
            cut_short: None,
            done: false,
        })
    }

    /// How the file ends early, once [`Reader::record`] has given its last record: "its gzip
    /// stream stops early", "the end of process 1 was never written".
    pub fn cut_short(&self) -> Option<&str> {
        self.cut_short.as_deref()
    }

    /// What the reader cut or dropped to stay within its bounds, a clause each.
    pub fn warnings(&self) -> Vec<String> {
        self.bounds.warnings()
    }

    /// The next record, `None` after the last; an error when the file is damaged.
    pub fn record(&mut self) -> Result<Option<Record>> {
        while !self.done {
            if let Some(record) = self.line()? {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    /// Reads one line: the record it holds, if any is kept.
    fn line(&mut self) -> Result<Option<Record>> {
        match self.lines.next()? {
            Read1::Line => {}
            Read1::End => return self.end().map(|()| None),
            Read1::Cut(why) => {
                self.cut_short = Some(why.to_string());
                return self.end().map(|()| None);
            }
        }
        let lines = &self.lines;
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
        let bounds = &mut self.bounds;
        Ok(match parsed {
            Line::Header { .. } => bail!("line {n} is a second header"),
            Line::Process {
                p,
                target,
                cpu_count,
            } => {
                if p != self.declared {
                    bail!("line {n} declares process {p} out of order");
                }
                self.declared += 1;
                let zero = self.first_zero;
                bounds
                    .process(target, cpu_count, zero)
                    .map(|(target, cpu_count)| {
                        self.first_zero.get_or_insert(target.monotonic_zero_ns);
                        self.ended.push(false);
                        Record::Process {
                            p,
                            target,
                            cpu_count,
                        }
                    })
            }
            Line::Frame {
                id,
                function,
                file,
                line,
            } => {
                if id != self.defined {
                    bail!("line {n} defines frame {id} out of order");
                }
                self.defined += 1;
                if self.frames.len() < MAX_FRAMES {
                    self.frames.push(bounds.frame(function, file, line));
                } else {
                    bounds.frame_over();
                }
                None
            }
            Line::Stacks {
                p,
                at_ns,
                waiters,
                stacks,
            } => {
                check_process(p, self.declared, n)?;
                let at = Duration::from_nanos(at_ns);
                if !bounds.keeps_process(p) || !bounds.time(p, at) {
                    return Ok(None);
                }
                let mut tick = StackTick {
                    at,
                    waiters,
                    stacks: Vec::with_capacity(stacks.len().min(64)),
                };
                let mut spent = 0;
                let frames = &self.frames;
                for s in stacks {
                    if let Some(&id) = s.frames.iter().find(|&&id| id >= self.defined) {
                        bail!("line {n} names frame {id}, which no line before defines");
                    }
                    if !bounds.thread(p, s.tid) {
                        continue;
                    }
                    let ids = bounds.stack(s.frames, &mut spent, |id| Bounds::cost(frames, id));
                    tick.stacks.push(ThreadStack {
                        tid: s.tid,
                        state: s.state,
                        on_cpu: s.on_cpu,
                        queued: s.queued,
                        stalled: s.stalled,
                        native: Bounds::native(s.native),
                        frames: ids.iter().map(|&id| frame(frames, id)).collect(),
                    });
                }
                Some(Record::Sample {
                    p,
                    sample: Sample::Stacks(tick),
                })
            }
            Line::Sample { p, sample } => {
                check_process(p, self.declared, n)?;
                if matches!(sample, Sample::Stacks(_)) {
                    bail!("line {n} holds a stack sample in a form gilscope never writes");
                }
                if !bounds.keeps_process(p) {
                    return Ok(None);
                }
                bounds
                    .sample(p, sample)
                    .map(|sample| Record::Sample { p, sample })
            }
            Line::End {
                p,
                late_ticks,
                exit,
            } => {
                check_process(p, self.declared, n)?;
                if !bounds.keeps_process(p) {
                    return Ok(None);
                }
                let exit = bounds.exit(exit);
                self.ended[p as usize] = true;
                Some(Record::End {
                    p,
                    late_ticks: bounds.late_ticks(late_ticks),
                    exit,
                })
            }
        })
    }

    /// The stream ended, whole or cut short: a file without a process is refused, and one
    /// whose process never ended is cut short.
    fn end(&mut self) -> Result<()> {
        self.done = true;
        if self.ended.is_empty() {
            bail!("it holds no profiled process");
        }
        if self.cut_short.is_none() {
            if let Some(p) = self.ended.iter().position(|&ended| !ended) {
                self.cut_short = Some(format!("the end of process {p} was never written"));
            }
        }
        Ok(())
    }
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
        file: "".into(),
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
