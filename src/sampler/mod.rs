//! The sampling thread: reads the target at two rates and sends plain samples.
//!
//! At every state tick it reads each GIL's head (all in one `process_vm_readv`, with 3.15's
//! per-thread GIL words) and each Python thread's `/proc/…/syscall` (one `pread` per thread,
//! except 3.15 threads known from memory to wait inside take_gil()); at every stack tick it also
//! reads every thread's stack ([`stacks`]: gilscope's own reader, all threads together in a few
//! batched `process_vm_readv` calls; py-spy only for thread names). It never stops the target
//! and never renders anything: it sends [`Sample`]s over a channel and counts what failed.

mod cgroup;
mod maps;
mod native;
pub mod procfs;
mod python;
mod raw_stack;
mod remote;
mod snapshot;
mod stacks;
mod target;
mod threads;
mod tick;
mod timer;

pub use procfs::{is_alive, task_ids};
pub use python::PythonInfo;
pub use snapshot::{snapshot, Snapshot, ThreadSnapshot};
pub use target::{OpenError, Target};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

use crate::gil::{settle, Classified};
use crate::model::{Sample, StackTick, StateTick, ThreadInfo, ThreadStack, ThreadState, Tid};
use target::Remote;
use threads::ThreadTable;
use tick::StateReader;

/// How often the thread list is re-read even when nothing suggests a change.
const REFRESH_EVERY: Duration = Duration::from_millis(200);
/// How soon it is re-read when a read failed or the GIL names an unknown holder: soon, but
/// not at every tick, so that a target whose memory stays garbage is not hammered.
const REFRESH_RETRY: Duration = Duration::from_millis(10);
/// How often CPU times are read.
const CPU_EVERY: Duration = Duration::from_millis(250);
/// How long samples are batched before they are sent: one wake-up of the consumer per batch
/// instead of one per tick.
const BATCH_EVERY: Duration = Duration::from_millis(50);
/// How much a batch holds before it is sent sooner, counted in frames and thread readings
/// ([`weight`]): 50 ms of a deep stack at 1 kHz is over a hundred thousand frames.
const BATCH_WEIGHT: usize = 8192;
/// Batches the channel holds. While the consumer falls behind (a recording, a busy machine)
/// the sampler waits at a full channel, so what waits in it is bounded in frames, not in
/// ticks: at most this many batches of [`BATCH_WEIGHT`] and one tick each (tens of MiB at
/// most, with 900-frame stacks), or 0.8 s of samples at 1 kHz from 17 shallow threads.
const CHANNEL_BATCHES: usize = 16;

/// How the sampler ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Asked to stop.
    Stopped,
    /// The target exited.
    TargetExited,
    /// The target exec'd: the process goes on with another program, which must be opened
    /// again. Reads that failed around the exec are not counted.
    Exec,
}

/// Sampling rates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    /// GIL state samples per second.
    pub state_hz: f64,
    /// Stack samples per second (at most `state_hz`).
    pub stack_hz: f64,
}

impl Rates {
    /// Stack ticks per state tick (at most 1): stacks are taken at the state ticks where
    /// this fraction, accumulated, passes a whole number, so the mean stack rate is exact.
    fn stack_share(&self) -> f64 {
        (self.stack_hz / self.state_hz).min(1.0)
    }
}

/// A running sampler.
pub struct Sampler {
    pub samples: Receiver<Vec<Sample>>,
    /// `CLOCK_MONOTONIC` at the run's time zero (samples' `at` count from it), in ns: what
    /// ties gilscope's samples to other tools' timestamps (bpftrace's `nsecs`, perf).
    pub monotonic_zero_ns: u64,
    /// The run's time zero, which samples' `at` count from.
    pub zero: Instant,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(End, Counters)>,
}

/// What the sampling thread counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub late_ticks: u64,
}

impl Sampler {
    pub fn start(target: Target, rates: Rates) -> Result<Sampler> {
        Sampler::start_at(target, rates, Instant::now(), procfs::monotonic_ns())
    }

    /// Starts sampling with the time zero of an earlier sampler (the same run, after an
    /// exec), so that the samples go on in one timeline.
    pub fn start_at(
        target: Target,
        rates: Rates,
        zero: Instant,
        monotonic_zero_ns: u64,
    ) -> Result<Sampler> {
        // Bounded, so a stalled consumer slows the sampler instead of growing memory.
        let (tx, rx) = sync_channel(CHANNEL_BATCHES);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let start = zero;
        let handle = std::thread::Builder::new()
            .name("gilscope-sampler".into())
            .spawn(move || run(target, rates, start, &flag, &tx))
            .context("starting the sampling thread")?;
        Ok(Sampler {
            samples: rx,
            monotonic_zero_ns,
            zero,
            stop,
            handle,
        })
    }

    /// Stops the sampling thread and returns how it ended, with every sample it sent that
    /// was not received yet.
    pub fn finish(self) -> Result<(End, Counters, Vec<Sample>)> {
        self.stop.store(true, Ordering::Relaxed);
        // The thread drops its sender when it ends, which ends this loop; receiving meanwhile
        // keeps a full channel from blocking its last send.
        let rest: Vec<Sample> = self.samples.iter().flatten().collect();
        let (end, counters) = self
            .handle
            .join()
            .map_err(|_| anyhow!("the sampling thread panicked"))?;
        Ok((end, counters, rest))
    }
}

/// The sampling loop, on its own thread: until it is stopped, or the target exits or execs.
/// A read that fails is a [`Sample::Failed`], never an error: the loop goes on.
fn run(
    mut target: Target,
    rates: Rates,
    start: Instant,
    stop: &AtomicBool,
    tx: &SyncSender<Vec<Sample>>,
) -> (End, Counters) {
    let pid = target.pid;
    let tick_s = procfs::clock_tick_s();
    let mut table = ThreadTable::default();
    let mut reader = StateReader::default();
    let mut timer = timer::Timer::new(rates.state_hz);
    let stack_share = rates.stack_share();
    let mut stack_credit = 1.0;
    let mut next_refresh = Instant::now();
    let mut refreshed_at = Instant::now();
    let mut last_cpu: Option<Instant> = None;
    let mut names: std::collections::HashMap<Tid, String> = Default::default();
    let mut interpreter_gils = Vec::new();
    let quota = cgroup::QuotaSource::find(pid);
    let mut native = NativeCode::default();
    let mut out = Outbox {
        tx,
        batch: Vec::new(),
        weight: 0,
        since: Instant::now(),
    };

    let mut pending: Option<Pending> = None;
    let mut end = End::TargetExited;
    for tick in 0u64.. {
        if stop.load(Ordering::Relaxed) || !out.flush_if_due() {
            end = End::Stopped;
            break;
        }
        if tick > 0 {
            timer.wait();
        }
        if exec_seen(&target) {
            end = End::Exec;
            break;
        }
        let at = start.elapsed();
        let mem = Remote(&target.process);

        if Instant::now() >= next_refresh {
            refreshed_at = Instant::now();
            next_refresh = refreshed_at + REFRESH_EVERY;
            match table.refresh(pid, &mem, target.runtime, &target.layout) {
                Ok(changed) => {
                    if table.interpreter_gils != interpreter_gils {
                        interpreter_gils = table.interpreter_gils.clone();
                        out.push(Sample::Interpreters(interpreter_gils.clone()));
                    }
                    for (tid, interpreter) in changed {
                        let name = names
                            .get(&tid)
                            .cloned()
                            .or_else(|| procfs::thread_comm(pid, tid));
                        out.push(Sample::Thread(ThreadInfo {
                            tid,
                            name,
                            interpreter,
                        }));
                    }
                }
                Err(_) if !procfs::is_alive(pid) => break,
                Err(_) if exec_seen(&target) => {
                    end = End::Exec;
                    break;
                }
                Err(_) => {
                    next_refresh = refreshed_at + REFRESH_RETRY;
                    out.push(Sample::Failed { stacks: false });
                    continue;
                }
            }
        }

        let Some(mut state) = reader.read(&mem, pid, &target.layout, &mut table, at) else {
            if !procfs::is_alive(pid) {
                break;
            }
            if exec_seen(&target) {
                end = End::Exec;
                break;
            }
            // The holder may be a thread we do not know yet: read the thread list soon.
            next_refresh = next_refresh.min(refreshed_at + REFRESH_RETRY);
            out.push(Sample::Failed { stacks: false });
            continue;
        };

        native.tag(pid, target.runtime, &mut table, &mut state, &mut out);

        let mut stack_tick = None;
        stack_credit += stack_share;
        if stack_credit >= 1.0 {
            stack_credit -= 1.0;
            match target.stacks.read(&mem, &table) {
                Ok(raw) => {
                    let mut stacks = Vec::with_capacity(raw.len());
                    for s in raw {
                        let Some(tid) = s.tid.or_else(|| table.tid_of_pthread(s.pthread)) else {
                            continue;
                        };
                        let Some(obs) = state.threads.iter().find(|o| o.tid == tid) else {
                            continue;
                        };
                        if let Some(name) = s.name.filter(|n| names.get(&tid) != Some(n)) {
                            names.insert(tid, name.clone());
                            let interpreter = table
                                .threads
                                .iter()
                                .find(|t| t.tid == tid)
                                .map_or(0, |t| t.interpreter);
                            out.push(Sample::Thread(ThreadInfo {
                                tid,
                                name: Some(name),
                                interpreter,
                            }));
                        }
                        stacks.push(ThreadStack {
                            tid,
                            state: obs.state,
                            on_cpu: obs.on_cpu,
                            queued: obs.queued,
                            stalled: obs.stalled,
                            native: obs.native,
                            frames: s.frames,
                        });
                    }
                    let waiters = state
                        .threads
                        .iter()
                        .filter(|o| o.state == ThreadState::Waiting)
                        .count() as u32;
                    stack_tick = Some(StackTick {
                        at,
                        waiters,
                        stacks,
                    });
                }
                Err(_) if exec_seen(&target) => {
                    end = End::Exec;
                    break;
                }
                Err(_) => {
                    out.push(Sample::Failed { stacks: true });
                }
            }
        }
        // This tick settles the previous one's provisional states, then waits for the next.
        let classified = table
            .threads
            .iter()
            .filter_map(|t| Some((t.tid, t.previous?)))
            .collect();
        let tick = Pending {
            state,
            stacks: stack_tick,
            classified,
        };
        if let Some(mut before) = pending.replace(tick) {
            before.settle(pending.as_ref().expect("just set"));
            before.send(&mut out);
        }

        if last_cpu.is_none_or(|t| t.elapsed() >= CPU_EVERY) {
            let threads = table
                .threads
                .iter()
                .filter_map(|t| Some((t.tid, t.files.stat()?.cpu_ticks as f64 * tick_s)))
                .collect();
            let process_s = procfs::process_stat(pid).map(|s| s.cpu_ticks as f64 * tick_s);
            out.push(Sample::Cpu {
                at: start.elapsed(),
                process_s,
                threads,
                machine: procfs::machine_cpu(tick_s),
                quota: quota.as_ref().and_then(cgroup::QuotaSource::read),
            });
            last_cpu = Some(Instant::now());
        }
    }
    if end == End::Exec {
        // The last tick may have read the new image at the old addresses, and the reads
        // that failed just before were the exec's (its threads ending): neither counts.
        out.batch.retain(|s| !matches!(s, Sample::Failed { .. }));
    } else if let Some(last) = pending {
        last.send(&mut out);
    }
    out.flush();
    (
        end,
        Counters {
            late_ticks: timer.late,
        },
    )
}

/// Whether the target exec'd (its image is gone while the process lives on).
fn exec_seen(target: &Target) -> bool {
    target
        .image
        .as_ref()
        .is_some_and(|i| i.replaced() && procfs::is_alive(target.pid))
}

/// How recent an instruction-pointer sample must be to say where the holder is now.
const IP_FRESH_NS: u64 = 4_000_000;
/// How often the code map may be read again when a sample falls outside it.
const CODE_MAP_EVERY: Duration = Duration::from_secs(1);

/// Which native module the GIL's holder runs, from the kernel's instruction-pointer samples.
#[derive(Default)]
struct NativeCode {
    map: native::CodeMap,
    read_at: Option<Instant>,
    /// Modules already named in a [`Sample::Module`].
    named: usize,
}

impl NativeCode {
    /// Tags each holder on a CPU whose newest instruction-pointer sample, taken within the
    /// last few milliseconds, lies in a native module's code; and a thread read `native`
    /// (on a CPU, the GIL released) whose sample lies in the interpreter's own code is in
    /// the GIL's handoff, the only interpreter code that runs without the GIL: `waiting`
    /// (a waiter spinning through take_gil's timeouts at a tiny switch interval).
    fn tag(
        &mut self,
        pid: i32,
        interpreter: u64,
        table: &mut ThreadTable,
        state: &mut StateTick,
        out: &mut Outbox,
    ) {
        let now = procfs::monotonic_ns();
        for o in &mut state.threads {
            let holding = o.state == ThreadState::Holding && o.on_cpu;
            if !holding && o.state != ThreadState::Native {
                continue;
            }
            let Some(ip) = table.threads.iter_mut().find(|t| t.tid == o.tid) else {
                continue;
            };
            let Some((ip, at)) = ip.ip.as_mut().and_then(native::IpSampler::newest) else {
                continue;
            };

            if now.saturating_sub(at) > IP_FRESH_NS {
                continue;
            }
            let mut code = self.map.code(ip);
            if code.is_none() && self.read_at.is_none_or(|t| t.elapsed() >= CODE_MAP_EVERY) {
                self.read_at = Some(Instant::now());
                if self.map.reread(pid, interpreter).is_ok() {
                    code = self.map.code(ip);
                }
            }
            if !holding {
                if code == Some(native::Code::Interpreter) {
                    o.state = ThreadState::Waiting;
                }
                continue;
            }
            o.native = match code {
                Some(native::Code::Native(id)) => Some(id),
                Some(native::Code::Interpreter | native::Code::System) => {
                    Some(crate::model::IN_INTERPRETER)
                }
                None => None,
            };
        }
        while self.named < self.map.modules.len() {
            out.push(Sample::Module {
                id: self.named as u32,
                name: self.map.modules[self.named].clone(),
            });
            self.named += 1;
        }
    }
}

/// A tick held back until the next one: some of its states are settled by what the thread
/// did next ([`settle`]).
struct Pending {
    state: StateTick,
    stacks: Option<StackTick>,
    /// What the classifier concluded about each thread at this tick.
    classified: Vec<(Tid, Classified)>,
}

impl Pending {
    /// Settles this tick's provisional states from the `next` tick's.
    fn settle(&mut self, next: &Pending) {
        let interval = next.state.at.saturating_sub(self.state.at).as_nanos() as u64;
        for (tid, c) in &self.classified {
            let Some((_, after)) = next.classified.iter().find(|(t, _)| t == tid) else {
                continue;
            };
            let Some(state) = settle(c, after, interval) else {
                continue;
            };
            if let Some(o) = self.state.threads.iter_mut().find(|o| o.tid == *tid) {
                o.state = state;
            }
            if let Some(stacks) = &mut self.stacks {
                if let Some(s) = stacks.stacks.iter_mut().find(|s| s.tid == *tid) {
                    s.state = state;
                }
                stacks.waiters = self
                    .state
                    .threads
                    .iter()
                    .filter(|o| o.state == ThreadState::Waiting)
                    .count() as u32;
            }
        }
    }

    fn send(self, out: &mut Outbox) {
        if let Some(stacks) = self.stacks {
            out.push(Sample::Stacks(stacks));
        }
        out.push(Sample::State(self.state));
    }
}

/// Samples waiting to be sent as one batch.
struct Outbox<'a> {
    tx: &'a SyncSender<Vec<Sample>>,
    batch: Vec<Sample>,
    /// The batch's [`weight`].
    weight: usize,
    since: Instant,
}

/// What a sample weighs in a batch: its frames and thread readings, at least 1.
fn weight(sample: &Sample) -> usize {
    1 + match sample {
        Sample::Stacks(tick) => tick.stacks.iter().map(|s| 1 + s.frames.len()).sum(),
        Sample::State(tick) => tick.threads.len(),
        Sample::Cpu { threads, .. } => threads.len(),
        _ => 0,
    }
}

impl Outbox<'_> {
    fn push(&mut self, sample: Sample) {
        self.weight += weight(&sample);
        self.batch.push(sample);
    }

    /// Sends the batch; false once the receiver is gone.
    fn flush(&mut self) -> bool {
        self.since = Instant::now();
        self.weight = 0;
        if self.batch.is_empty() {
            return true;
        }
        self.tx.send(std::mem::take(&mut self.batch)).is_ok()
    }

    /// Sends the batch once it is [`BATCH_EVERY`] old or [`BATCH_WEIGHT`] heavy.
    fn flush_if_due(&mut self) -> bool {
        (self.since.elapsed() < BATCH_EVERY && self.weight < BATCH_WEIGHT) || self.flush()
    }
}
