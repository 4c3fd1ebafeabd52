//! Recordings: the raw samples of a run, kept in a file as the run goes, so that any report
//! can be rendered from it later (`gilscope report FILE`), exactly as the live run would have.
//!
//! Format, version 2 (version 1 had five GIL-build states, where `native` also meant
//! "runnable" and `idle` every off-CPU wait; this gilscope refuses it): a gzip stream of JSON
//! lines. The first line is the header
//! (`{"t":"header","format":"gilscope-recording","version":2,…}`); then, in the order they
//! happened, a `process` line for each profiled process (index `p`, 0 the target), `frame`
//! lines that define each distinct frame once, and one line per sample (stack samples name
//! frames by id). The stream is flushed every second, so a crash or Ctrl-C loses at most the
//! last second.
//!
//! This module defines the lines; [`writer`] writes them during a run, [`reader`] reads them
//! back as [`Record`]s (telling a cut-off end from damage in the middle), and [`bounds`] caps
//! what a small hostile file can make a replay hold in memory. Storage only: what the samples
//! mean is for the layers above.

mod bounds;
mod reader;
#[cfg(test)]
mod tests;
mod writer;

use serde::{Deserialize, Serialize};

use crate::model::{ProgramExit, Sample, TargetInfo, ThreadState, Tid};

pub use bounds::{
    MAX_DEPTH, MAX_FRAMES, MAX_GAP, MAX_GILS, MAX_LINE_BYTES, MAX_PROCESSES, MAX_THREADS,
};
pub use reader::{open, Reader, Record};
pub use writer::{Tape, Writer};

pub const FORMAT: &str = "gilscope-recording";
/// The version this gilscope writes; it reads this one only.
pub const VERSION: u32 = 2;

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
