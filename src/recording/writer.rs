//! Writing a recording during a live run: one JSON line per event, gzip-compressed, each
//! distinct frame defined once, flushed every second.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use flate2::write::GzEncoder;
use flate2::Compression;

use super::{Line, StackLine, FORMAT, VERSION};
use crate::model::{Frame, ProgramExit, Sample, TargetInfo};

/// How often the stream is flushed to the file: what a crash can lose at most.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

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
            function: frame.function.to_string(),
            file: frame.file.to_string(),
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
                crate::sayln!(
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
                crate::sayln!(
                    "gilscope: warning: the recording {} is incomplete ({e:#})",
                    path.display()
                );
                None
            }
        }
    }
}
