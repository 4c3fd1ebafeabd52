//! `--subprocesses`: the target's descendants, followed as they start and end (a
//! `multiprocessing` pool, a pre-fork server). Each Python one becomes a process of the
//! run's [`ProcessSet`], with a sampler of its own; processes that are not Python (a shell
//! between, a helper binary) are passed over, but their children are still followed. One
//! that execs is opened again and shows as a process of its own, before and after.

use std::time::Duration;

use super::descendants::NewDescendants;
use super::set::{ProcessId, ProcessSet, Received};
use super::tree::{cmdline, working_dir};
use crate::model::TargetInfo;
use crate::sampler::{is_alive, Rates, Sampler};

/// The descendants of one process and their samplers.
pub struct Children {
    rates: Rates,
    cpu_count: usize,
    found: NewDescendants,
    /// The processes of the set whose sampler runs, with their pids.
    running: Vec<(ProcessId, i32)>,
}

impl Children {
    pub fn new(root: i32, rates: Rates, cpu_count: usize) -> Children {
        Children {
            rates,
            cpu_count,
            found: NewDescendants::new(root),
            running: Vec::new(),
        }
    }

    /// Leaves `pid` out: it is profiled already (the target a wrapper started).
    pub fn skip(&mut self, pid: i32) {
        self.found.skip(pid);
    }

    /// Finds new descendants, adds those that opened as Python to `set` with a sampler each,
    /// and takes every sampler's samples. Call it often; it never blocks.
    pub fn poll(&mut self, set: &mut ProcessSet) {
        self.found.scan();
        for (pid, opened) in self.found.opened() {
            // One that is not Python, or exited before it could be read, is passed over.
            let Ok(target) = opened else { continue };
            let python = target.python.version.clone();
            match Sampler::start(target, self.rates) {
                Ok(sampler) => {
                    let info = TargetInfo {
                        pid,
                        python,
                        command: cmdline(pid),
                        state_hz: self.rates.state_hz,
                        stack_hz: self.rates.stack_hz,
                        monotonic_zero_ns: sampler.monotonic_zero_ns,
                        cwd: working_dir(pid),
                    };
                    let p = set.add(info, self.cpu_count, Some(sampler));
                    self.running.push((p, pid));
                }
                Err(e) => crate::sayln!(
                    "gilscope: warning: cannot sample subprocess {pid} ({e:#}); the report \
                     leaves it out"
                ),
            }
        }
        let found = &mut self.found;
        self.running.retain(|&(p, pid)| {
            if set.receive(p, Duration::ZERO) == Received::Running {
                return true;
            }
            if let Err(e) = set.stop(p) {
                crate::sayln!(
                    "gilscope: warning: sampling subprocess {pid} failed ({e:#}); its report \
                     holds the samples taken before"
                );
            }
            if is_alive(pid) {
                // Its sampler ended while it runs on: it exec'd. What it runs now is opened
                // again at the next scan, as a process of its own in the report.
                found.forget(pid);
            }
            false
        });
    }
}
