//! The sampling thread: reads the target at two rates and sends plain samples.
//!
//! At every state tick it reads each GIL's head (one `process_vm_readv` per GIL) and each
//! Python thread's `/proc/…/syscall` (one `pread` per thread); at every stack tick it also asks
//! py-spy for every thread's stack. It never stops the target and never renders anything: it
//! sends [`Sample`]s over a channel and counts what failed.

mod maps;
mod procfs;
mod python;
mod snapshot;
mod stacks;
mod target;
mod threads;
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

use crate::gil::{classify, classify_without_gil, futex_gil, still_waiting, GilHead, Memory};
use crate::model::{
    GilEnabled, GilReading, Sample, StackTick, StateTick, ThreadInfo, ThreadObservation,
    ThreadStack, ThreadState, Tid,
};
use target::Remote;
use threads::ThreadTable;

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

/// How the sampler ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Asked to stop.
    Stopped,
    /// The target exited.
    TargetExited,
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
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<(End, Counters)>>,
}

/// What the sampling thread counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub late_ticks: u64,
}

impl Sampler {
    pub fn start(target: Target, rates: Rates) -> Result<Sampler> {
        // Bounded, so a stalled consumer slows the sampler instead of growing memory.
        let (tx, rx) = sync_channel(64);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let start = Instant::now();
        let monotonic_zero_ns = procfs::monotonic_ns();
        let handle = std::thread::Builder::new()
            .name("gilscope-sampler".into())
            .spawn(move || run(target, rates, start, &flag, &tx))
            .context("starting the sampling thread")?;
        Ok(Sampler {
            samples: rx,
            monotonic_zero_ns,
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
            .map_err(|_| anyhow!("the sampling thread panicked"))??;
        Ok((end, counters, rest))
    }
}

fn run(
    mut target: Target,
    rates: Rates,
    start: Instant,
    stop: &AtomicBool,
    tx: &SyncSender<Vec<Sample>>,
) -> Result<(End, Counters)> {
    let pid = target.pid;
    let tick_s = procfs::clock_tick_s();
    let mut table = ThreadTable::default();
    let mut timer = timer::Timer::new(rates.state_hz);
    let stack_share = rates.stack_share();
    let mut stack_credit = 1.0;
    let mut next_refresh = Instant::now();
    let mut refreshed_at = Instant::now();
    let mut last_cpu: Option<Instant> = None;
    let mut names: std::collections::HashMap<Tid, String> = Default::default();
    let mut interpreter_gils = Vec::new();
    let mut out = Outbox {
        tx,
        batch: Vec::new(),
        since: Instant::now(),
    };

    let mut end = End::TargetExited;
    for tick in 0u64.. {
        if stop.load(Ordering::Relaxed) || !out.flush_if_due() {
            end = End::Stopped;
            break;
        }
        if tick > 0 {
            timer.wait();
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
                Err(_) => {
                    next_refresh = refreshed_at + REFRESH_RETRY;
                    out.push(Sample::Failed { stacks: false });
                    continue;
                }
            }
        }

        let Some(state) = read_state(&mem, &mut table, at) else {
            if !procfs::is_alive(pid) {
                break;
            }
            // The holder may be a thread we do not know yet: read the thread list soon.
            next_refresh = next_refresh.min(refreshed_at + REFRESH_RETRY);
            out.push(Sample::Failed { stacks: false });
            continue;
        };

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
                            frames: s.frames,
                        });
                    }
                    let waiters = state
                        .threads
                        .iter()
                        .filter(|o| o.state == ThreadState::Waiting)
                        .count() as u32;
                    out.push(Sample::Stacks(StackTick {
                        at,
                        waiters,
                        stacks,
                    }));
                }
                Err(_) => {
                    out.push(Sample::Failed { stacks: true });
                }
            }
        }
        out.push(Sample::State(state));

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
            });
            last_cpu = Some(Instant::now());
        }
    }
    out.flush();
    Ok((
        end,
        Counters {
            late_ticks: timer.late,
        },
    ))
}

/// Samples waiting to be sent as one batch.
struct Outbox<'a> {
    tx: &'a SyncSender<Vec<Sample>>,
    batch: Vec<Sample>,
    since: Instant,
}

impl Outbox<'_> {
    fn push(&mut self, sample: Sample) {
        self.batch.push(sample);
    }

    /// Sends the batch; false once the receiver is gone.
    fn flush(&mut self) -> bool {
        self.since = Instant::now();
        if self.batch.is_empty() {
            return true;
        }
        self.tx.send(std::mem::take(&mut self.batch)).is_ok()
    }

    fn flush_if_due(&mut self) -> bool {
        self.since.elapsed() < BATCH_EVERY || self.flush()
    }
}

/// One state tick: every GIL's head, then every thread's syscall file. `None` when a read
/// failed or the GIL names a holder that is not in the thread table.
fn read_state(mem: &dyn Memory, table: &mut ThreadTable, at: Duration) -> Option<StateTick> {
    let mut gils = Vec::with_capacity(table.gils.len());
    let mut last_holders = Vec::with_capacity(table.gils.len());
    for gil in &table.gils {
        let enabled = match gil.enabled_at {
            Some(addr) => Some(gil_enabled(mem, addr)?),
            None => None,
        };
        let head = GilHead::read(mem, gil.address).ok()?;
        let last_holder = table.holder(head.last_holder);
        let holder = if head.locked && enabled != Some(GilEnabled::Disabled) {
            Some(last_holder?)
        } else {
            None
        };
        last_holders.push(last_holder);
        gils.push(GilReading {
            interpreter: gil.interpreter,
            locked: head.locked,
            holder,
            switch_number: head.switch_number,
            interval_us: head.interval_us,
            enabled,
        });
    }
    let addresses = table.gil_addresses();
    let mut threads = Vec::with_capacity(table.threads.len());
    for i in 0..table.threads.len() {
        let own = table.gil_of(table.threads[i].interpreter);
        let t = &mut table.threads[i];
        // A thread that ended between the refresh and now is simply left out of this tick.
        let Some(syscall) = t.files.syscall() else {
            continue;
        };
        let gil_id = |g: usize| gils.get(g).map_or(0, |r| r.interpreter);
        if gils
            .get(own)
            .is_some_and(|r| r.enabled == Some(GilEnabled::Disabled))
        {
            let (state, on_cpu) = classify_without_gil(syscall);
            t.previous = None;
            threads.push(ThreadObservation {
                tid: t.tid,
                state,
                on_cpu,
                gil: gil_id(own),
            });
            continue;
        }
        // The GIL its state is about: the one it holds, else the one it sleeps on, else
        // its interpreter's.
        let held = gils.iter().position(|r| r.holder == Some(t.tid));
        let (mut state, on_cpu) = classify(held.is_some(), syscall, &addresses);
        let g = held
            .or_else(|| futex_gil(syscall, &addresses))
            .unwrap_or(own);
        if let (ThreadState::Native, Some((previous, was, then))) = (state, t.previous) {
            // A woken waiter is still about the GIL it waited for.
            let switch_number = gils.get(was).map_or(0, |r| r.switch_number);
            let last_holder_is_self = last_holders.get(was).copied().flatten() == Some(t.tid);
            let handoffs = switch_number.wrapping_sub(then);
            if still_waiting(previous, handoffs, last_holder_is_self) {
                state = ThreadState::Waiting;
                t.previous = Some((state, was, then));
                threads.push(ThreadObservation {
                    tid: t.tid,
                    state,
                    on_cpu,
                    gil: gil_id(was),
                });
                continue;
            }
        }
        t.previous = Some((state, g, gils.get(g).map_or(0, |r| r.switch_number)));
        threads.push(ThreadObservation {
            tid: t.tid,
            state,
            on_cpu,
            gil: gil_id(g),
        });
    }
    Some(StateTick { at, gils, threads })
}

/// A free-threaded GIL's `int enabled`: 0 while disabled, a count of transient requests or
/// `INT_MAX` once enabled for good. `None` when the read failed.
fn gil_enabled(mem: &dyn Memory, addr: u64) -> Option<GilEnabled> {
    let mut buf = [0u8; 4];
    mem.read(addr, &mut buf).ok()?;
    Some(GilEnabled::from_raw(i32::from_le_bytes(buf)))
}
