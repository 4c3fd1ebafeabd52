//! What a replay keeps of a recording, whatever the file asks for: a few kilobytes of gzip can
//! name a million-character function, a hundred thousand threads in one sample, a timestamp
//! five centuries after the run began. Each line passes through [`Bounds`] before analysis;
//! what goes over a limit is cut or dropped and counted, and [`Bounds::warnings`] says so.
//!
//! The limits sit above what a live run of a real program produces (the sampler's own caps,
//! in `cpython/`), so that a replay of a real recording stays byte-identical to its run; they
//! keep the memory of a replay, and so the size of every report, within a few hundred MiB.

use std::collections::HashSet;
use std::time::Duration;

use crate::model::{
    bounded_name, CpuQuota, Frame, MachineCpu, ProgramExit, Sample, TargetInfo, Tid,
    IN_INTERPRETER, MAX_NAME_CHARS,
};

/// The longest line a recording may have: far above a sample of thousands of deep stacks.
pub const MAX_LINE_BYTES: usize = 16 << 20;
/// Processes kept (the target and its subprocesses).
pub const MAX_PROCESSES: usize = 256;
/// Threads kept, over all processes: each one costs a timeline lane.
pub const MAX_THREADS: usize = 2048;
/// GILs (interpreters) kept per process: the sampler reads at most 256 interpreters.
pub const MAX_GILS: usize = 256;
/// Frames kept of one stack, the innermost: the sampler reads at most 4096.
pub const MAX_DEPTH: usize = 4096;
/// Distinct frames kept.
pub const MAX_FRAMES: usize = 1 << 18;
/// How far a sample may be from the latest one before it (or from the run's start, for the
/// first): further, its time is implausible (a damaged or forged recording), and it is dropped.
pub const MAX_GAP: Duration = Duration::from_secs(24 * 3600);
/// The name bytes of all distinct frames together.
const MAX_FRAME_BYTES: usize = 32 << 20;
/// The frame bytes of all distinct stacks together; a new stack beyond keeps its innermost
/// frame only.
const MAX_STACK_BYTES: usize = 32 << 20;
/// The frame bytes of one stack sample, over its threads; a stack beyond keeps its innermost
/// frame only.
const MAX_SAMPLE_BYTES: usize = 16 << 20;
/// What a frame costs beyond its names (the struct, the vectors that hold it).
const FRAME_OVERHEAD: usize = 64;
/// Arguments kept of a command line.
const MAX_ARGS: usize = 1024;
/// The largest count (of ticks) taken for real: a year at 100 kHz is far below it.
const MAX_COUNT: u64 = 1 << 48;
/// The largest GIL switch count taken for real: a year of switches every 5 ms is 2^33.
const MAX_SWITCHES: u64 = 1 << 40;
/// Native module ids an accumulator keeps names for (its own limit).
const MAX_MODULES: usize = 4096;
/// CPUs a machine may claim.
const MAX_CPUS: usize = 1 << 16;
/// The largest count of seconds or a rate that is taken for real: anything above (or not a
/// finite, non-negative number) is a damaged value.
const MAX_NUMBER: f64 = 1e12;

/// What was cut or dropped, by kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub names: u64,
    pub processes: u64,
    pub process_samples: u64,
    pub threads: u64,
    pub gils: u64,
    pub deep_stacks: u64,
    pub frames: u64,
    pub stacks: u64,
    pub times: u64,
    pub numbers: u64,
}

/// The name of a frame dropped for going over [`MAX_FRAMES`] or the frames' byte budget.
pub const DROPPED_FRAME: &str = "[frame dropped: the recording has too many]";

/// One process's view of the limits.
#[derive(Debug, Default)]
struct ProcessBounds {
    threads: HashSet<Tid>,
    gils: HashSet<i64>,
    /// The latest sample time seen.
    latest: Duration,
}

/// The limits, applied line by line, and what they dropped.
#[derive(Debug, Default)]
pub struct Bounds {
    pub dropped: Dropped,
    processes: Vec<ProcessBounds>,
    threads: usize,
    frame_bytes: usize,
    stacks: HashSet<Vec<u32>>,
    stack_bytes: usize,
}

/// A name cut to [`MAX_NAME_CHARS`], counted when it was longer.
fn name(dropped: &mut Dropped, s: String) -> String {
    // A quick test first: a name with fewer bytes than the cap has fewer characters too.
    if s.len() > MAX_NAME_CHARS && s.chars().nth(MAX_NAME_CHARS).is_some() {
        dropped.names += 1;
    }
    bounded_name(s)
}

/// A count of seconds or a rate from the file, if it is one.
fn number(x: f64) -> Option<f64> {
    (x.is_finite() && (0.0..=MAX_NUMBER).contains(&x)).then_some(x)
}

impl Bounds {
    /// Whether process `p` is one of those kept; a sample of another is counted.
    pub fn keeps_process(&mut self, p: u32) -> bool {
        let kept = (p as usize) < self.processes.len();
        if !kept {
            self.dropped.process_samples += 1;
        }
        kept
    }

    /// A process declared in the file: `None` when there are [`MAX_PROCESSES`] already;
    /// else its facts with their names cut and their numbers made sane. `zero` is the
    /// target's time zero, which a subprocess's must be near.
    pub fn process(
        &mut self,
        mut target: TargetInfo,
        cpu_count: usize,
        zero: Option<u64>,
    ) -> Option<(TargetInfo, usize)> {
        if self.processes.len() >= MAX_PROCESSES {
            self.dropped.processes += 1;
            return None;
        }
        self.processes.push(ProcessBounds::default());
        let d = &mut self.dropped;
        target.python = name(d, target.python);
        if target.command.len() > MAX_ARGS {
            target.command.truncate(MAX_ARGS);
            d.names += 1;
        }
        target.command = target.command.into_iter().map(|a| name(d, a)).collect();
        target.cwd = target.cwd.map(|c| name(d, c));
        for hz in [&mut target.state_hz, &mut target.stack_hz] {
            if number(*hz).is_none() {
                *hz = 0.0;
                d.numbers += 1;
            }
        }
        if let Some(zero) = zero.filter(|&z| z != 0 && target.monotonic_zero_ns != 0) {
            let apart = u128::from(zero.abs_diff(target.monotonic_zero_ns));
            if apart > MAX_GAP.as_nanos() {
                // Taken to be the target's, as when it is not known.
                target.monotonic_zero_ns = 0;
                d.times += 1;
            }
        }
        let cpus = if (1..=MAX_CPUS).contains(&cpu_count) {
            cpu_count
        } else {
            d.numbers += 1;
            cpu_count.clamp(1, MAX_CPUS)
        };
        Some((target, cpus))
    }

    /// A frame definition; one beyond the limits keeps its line and a placeholder name.
    pub fn frame(&mut self, function: String, file: String, line: u32) -> Frame {
        let function = name(&mut self.dropped, function);
        let file = name(&mut self.dropped, file);
        let cost = function.len() + file.len() + FRAME_OVERHEAD;
        if self.frame_bytes + cost > MAX_FRAME_BYTES {
            self.dropped.frames += 1;
            return Frame::new(DROPPED_FRAME, "", line);
        }
        self.frame_bytes += cost;
        Frame::new(function, file, line)
    }

    /// A frame id past [`MAX_FRAMES`]: its definition is dropped.
    pub fn frame_over(&mut self) {
        self.dropped.frames += 1;
    }

    /// Whether a sample of process `p` at `at` is near enough the one before it; moves the
    /// latest time on.
    pub fn time(&mut self, p: u32, at: Duration) -> bool {
        let process = &mut self.processes[p as usize];
        if at.saturating_sub(process.latest) > MAX_GAP {
            self.dropped.times += 1;
            return false;
        }
        process.latest = process.latest.max(at);
        true
    }

    /// Whether thread `tid` of process `p` is kept: seen before, or there is room.
    pub fn thread(&mut self, p: u32, tid: Tid) -> bool {
        let process = &mut self.processes[p as usize];
        if process.threads.contains(&tid) {
            return true;
        }
        if self.threads >= MAX_THREADS {
            self.dropped.threads += 1;
            return false;
        }
        self.threads += 1;
        process.threads.insert(tid);
        true
    }

    /// Whether GIL `gil` of process `p` is kept: seen before, or there is room.
    pub fn gil(&mut self, p: u32, gil: i64) -> bool {
        let process = &mut self.processes[p as usize];
        if process.gils.contains(&gil) {
            return true;
        }
        if process.gils.len() >= MAX_GILS {
            self.dropped.gils += 1;
            return false;
        }
        process.gils.insert(gil);
        true
    }

    /// A module id a thread was seen in, if it is one an accumulator keeps.
    pub fn native(id: Option<u32>) -> Option<u32> {
        id.filter(|&m| m == IN_INTERPRETER || (m as usize) < MAX_MODULES)
    }

    /// The frame ids of one thread's stack in a stack sample, cut to the limits: `spent` is
    /// what the sample's stacks before it cost, `cost` what a frame does.
    pub fn stack(
        &mut self,
        mut ids: Vec<u32>,
        spent: &mut usize,
        cost: impl Fn(u32) -> usize,
    ) -> Vec<u32> {
        if ids.len() > MAX_DEPTH {
            ids.drain(..ids.len() - MAX_DEPTH);
            self.dropped.deep_stacks += 1;
        }
        let mut bytes: usize = ids.iter().map(|&id| cost(id)).sum();
        let known = self.stacks.contains(&ids);
        if *spent + bytes > MAX_SAMPLE_BYTES
            || (!known && self.stack_bytes + bytes > MAX_STACK_BYTES)
        {
            self.dropped.stacks += 1;
            ids.drain(..ids.len().saturating_sub(1));
            bytes = ids.iter().map(|&id| cost(id)).sum();
        }
        if !self.stacks.contains(&ids) {
            self.stack_bytes += bytes + 4 * ids.len();
            self.stacks.insert(ids.clone());
        }
        *spent += bytes;
        ids
    }

    /// A sample other than a stack sample, kept within the limits, or `None` when dropped.
    pub fn sample(&mut self, p: u32, sample: Sample) -> Option<Sample> {
        match sample {
            Sample::State(mut tick) => {
                if !self.time(p, tick.at) {
                    return None;
                }
                let before = tick.gils.len();
                tick.gils.retain(|g| self.gil(p, g.interpreter));
                self.dropped.gils += (before - tick.gils.len()) as u64;
                // A counter forged near u64::MAX would overflow the sums of its steps.
                for g in &mut tick.gils {
                    if g.switch_number > MAX_SWITCHES {
                        g.switch_number = MAX_SWITCHES;
                        self.dropped.numbers += 1;
                    }
                }
                tick.threads.retain(|o| self.thread(p, o.tid));
                for o in &mut tick.threads {
                    o.native = Self::native(o.native);
                }
                Some(Sample::State(tick))
            }
            Sample::Thread(mut info) => {
                if !self.thread(p, info.tid) {
                    return None;
                }
                info.name = info.name.map(|n| name(&mut self.dropped, n));
                Some(Sample::Thread(info))
            }
            Sample::Interpreters(mut pairs) => {
                pairs.retain(|&(_, gil)| self.gil(p, gil));
                pairs.truncate(MAX_GILS);
                Some(Sample::Interpreters(pairs))
            }
            Sample::Cpu {
                at,
                process_s,
                mut threads,
                machine,
                quota,
            } => {
                let sane = process_s.is_none_or(|s| number(s).is_some())
                    && threads.iter().all(|&(_, s)| number(s).is_some())
                    && machine.is_none_or(|m: MachineCpu| {
                        number(m.busy_s).is_some() && number(m.total_s).is_some()
                    })
                    && quota.is_none_or(|q: CpuQuota| {
                        number(q.cores).is_some() && number(q.throttled_s).is_some()
                    });
                if !sane {
                    self.dropped.numbers += 1;
                    return None;
                }
                if !self.time(p, at) {
                    return None;
                }
                threads.retain(|&(tid, _)| self.thread(p, tid));
                Some(Sample::Cpu {
                    at,
                    process_s,
                    threads,
                    machine,
                    quota,
                })
            }
            Sample::Module { id, name: n } => Some(Sample::Module {
                id,
                name: name(&mut self.dropped, n),
            }),
            failed @ Sample::Failed { .. } => Some(failed),
            Sample::Exec(mut exec) => {
                if !self.time(p, exec.at) {
                    return None;
                }
                for words in [&mut exec.before, &mut exec.after] {
                    words.truncate(MAX_ARGS);
                    for w in words.iter_mut() {
                        *w = name(&mut self.dropped, std::mem::take(w));
                    }
                }
                exec.python = exec.python.map(|v| name(&mut self.dropped, v));
                Some(Sample::Exec(exec))
            }
            // Written as `stacks` lines, with frames by id; the reader refuses this form.
            Sample::Stacks(_) => None,
        }
    }

    /// The late ticks a process's end counts, if a run could have had that many (the sums
    /// of counts that reports make must not overflow).
    pub fn late_ticks(&mut self, n: u64) -> u64 {
        if n > MAX_COUNT {
            self.dropped.numbers += 1;
            return 0;
        }
        n
    }

    /// How a process ended, its numbers made sane.
    pub fn exit(&mut self, exit: Option<ProgramExit>) -> Option<ProgramExit> {
        exit.map(|mut e| {
            if number(e.after_s).is_none() {
                e.after_s = 0.0;
                self.dropped.numbers += 1;
            }
            e
        })
    }

    /// One sentence for each kind of thing dropped.
    pub fn warnings(&self) -> Vec<String> {
        let d = &self.dropped;
        let mut out = Vec::new();
        let mut say = |n: u64, what: String| {
            if n > 0 {
                out.push(format!("{n} {what}"));
            }
        };
        say(
            d.names,
            format!("names longer than {MAX_NAME_CHARS} characters were cut"),
        );
        say(
            d.processes,
            format!("processes beyond the first {MAX_PROCESSES} were left out"),
        );
        say(
            d.process_samples,
            "samples of processes left out were dropped".into(),
        );
        say(
            d.threads,
            format!("samples of threads beyond the first {MAX_THREADS} were dropped"),
        );
        say(
            d.gils,
            format!("readings of GILs beyond the first {MAX_GILS} of a process were dropped"),
        );
        say(
            d.deep_stacks,
            format!("stacks deeper than {MAX_DEPTH} frames kept their innermost {MAX_DEPTH}"),
        );
        say(
            d.frames,
            format!(
                "frames beyond the first {MAX_FRAMES} (or {} MiB of names) lost their names",
                MAX_FRAME_BYTES >> 20
            ),
        );
        say(
            d.stacks,
            format!(
                "stacks beyond {} MiB of distinct stacks (or {} MiB in one sample) kept their \
                 innermost frame only",
                MAX_STACK_BYTES >> 20,
                MAX_SAMPLE_BYTES >> 20
            ),
        );
        say(
            d.times,
            format!(
                "samples with implausible times (over {} h after the one before) were dropped",
                MAX_GAP.as_secs() / 3600
            ),
        );
        say(d.numbers, "impossible numbers were dropped".into());
        out
    }

    /// What a frame costs in memory, for [`Bounds::stack`].
    pub fn cost(frames: &[Frame], id: u32) -> usize {
        frames
            .get(id as usize)
            .map_or(DROPPED_FRAME.len(), |f| f.function.len() + f.file.len())
            + FRAME_OVERHEAD
    }
}
