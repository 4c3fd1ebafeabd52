//! `--subprocesses`: the target's descendants, followed as they start and end (a
//! `multiprocessing` pool, a pre-fork server). Each Python one gets a sampler and an
//! accumulator of its own; processes that are not Python (a shell between, a helper binary)
//! are passed over, but their children are still followed. One that execs is opened again
//! and shows as a process of its own, before and after.

use std::collections::HashSet;
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use crate::analysis::Accumulator;
use crate::attach;
use crate::error::UserError;
use crate::model::TargetInfo;
use crate::recording::Tape;
use crate::report::Subprocess;
use crate::sampler::{is_alive, Rates, Sampler, Target};

use super::tree::{cmdline, descendants, parents, working_dir};

/// How often `/proc` is scanned for new descendants.
const SCAN_EVERY: Duration = Duration::from_millis(100);
/// How long a new child may take before its interpreter can be read (a `spawn`ed worker
/// starts a fresh interpreter).
const CHILD_PATIENCE: Duration = Duration::from_secs(10);

struct Running {
    /// Its index in the recording (the target is 0).
    index: u32,
    info: TargetInfo,
    sampler: Sampler,
    acc: Accumulator,
}

/// The descendants of one process and their samplers.
pub struct Children {
    root: i32,
    rates: Rates,
    cpu_count: usize,
    next_index: u32,
    seen: HashSet<i32>,
    last_scan: Option<Instant>,
    opened_tx: Sender<(i32, Result<Target, UserError>)>,
    opened: Receiver<(i32, Result<Target, UserError>)>,
    running: Vec<Running>,
    /// Samplers that ended (their process exited), with their samples so far.
    ended: Vec<Running>,
    /// Descendants that were not Python, or exited before they could be read.
    pub passed_over: usize,
}

impl Children {
    pub fn new(root: i32, rates: Rates, cpu_count: usize) -> Children {
        let (opened_tx, opened) = channel();
        Children {
            root,
            rates,
            cpu_count,
            next_index: 1,
            seen: HashSet::from([root]),
            last_scan: None,
            opened_tx,
            opened,
            running: Vec::new(),
            ended: Vec::new(),
            passed_over: 0,
        }
    }

    /// Leaves `pid` out: it is profiled already (the target a wrapper started).
    pub fn skip(&mut self, pid: i32) {
        self.seen.insert(pid);
    }

    /// Finds new descendants, starts samplers for those that opened as Python, and moves
    /// every sampler's samples into its accumulator and the recording. Call it often; it
    /// never blocks.
    pub fn poll(&mut self, tape: &mut Tape) {
        if self.last_scan.is_none_or(|t| t.elapsed() >= SCAN_EVERY) {
            self.last_scan = Some(Instant::now());
            for pid in descendants(self.root, &parents()) {
                if self.seen.insert(pid) {
                    // Opening waits for the interpreter to start: off this thread.
                    let tx = self.opened_tx.clone();
                    std::thread::spawn(move || {
                        let _ = tx.send((pid, attach::open(pid, CHILD_PATIENCE)));
                    });
                }
            }
        }
        while let Ok((pid, opened)) = self.opened.try_recv() {
            match opened.map_err(anyhow::Error::from).and_then(|target| {
                let python = target.python.version.clone();
                Ok((python, Sampler::start(target, self.rates)?))
            }) {
                Ok((python, sampler)) => {
                    let info = TargetInfo {
                        pid,
                        python,
                        command: cmdline(pid),
                        state_hz: self.rates.state_hz,
                        stack_hz: self.rates.stack_hz,
                        monotonic_zero_ns: sampler.monotonic_zero_ns,
                        cwd: working_dir(pid),
                    };
                    tape.process(self.next_index, &info, self.cpu_count);
                    let acc = Accumulator::with_cwd(info.cwd.clone());
                    self.running.push(Running {
                        index: self.next_index,
                        info,
                        sampler,
                        acc,
                    });
                    self.next_index += 1;
                }
                Err(_) => self.passed_over += 1,
            }
        }
        let mut i = 0;
        while i < self.running.len() {
            let r = &mut self.running[i];
            let ended = loop {
                match r.sampler.samples.try_recv() {
                    Ok(batch) => {
                        for s in batch {
                            tape.sample(r.index, &s);
                            r.acc.push(s);
                        }
                    }
                    Err(TryRecvError::Empty) => break false,
                    Err(TryRecvError::Disconnected) => break true,
                }
            };
            if ended {
                let pid = r.info.pid;
                if is_alive(pid) {
                    // Its sampler ended while it runs on: it exec'd. What it runs now is
                    // opened again at the next scan, as a process of its own in the report.
                    self.seen.remove(&pid);
                }
                self.ended.push(self.running.swap_remove(i));
            } else {
                i += 1;
            }
        }
    }

    /// Stops every sampler and returns each process's profile, in order of pid.
    pub fn finish(mut self, tape: &mut Tape) -> Vec<Subprocess> {
        self.poll(tape);
        let cpu_count = self.cpu_count;
        let mut done: Vec<Subprocess> = self
            .running
            .into_iter()
            .chain(self.ended)
            .filter_map(|mut r| {
                let (_, counters, rest) = r.sampler.finish().ok()?;
                for s in rest {
                    tape.sample(r.index, &s);
                    r.acc.push(s);
                }
                tape.end(r.index, counters.late_ticks);
                let profile = r.acc.finish(counters.late_ticks, cpu_count);
                Some(Subprocess {
                    info: r.info,
                    profile,
                })
            })
            .filter(|p| p.profile.run.state_samples > 0)
            .collect();
        done.sort_by_key(|p| p.info.pid);
        done
    }
}
