//! Folds the sample stream into counters as it arrives: memory grows with threads and
//! distinct stacks, never with the length of the run.
//!
//! Per concern: [`gils`] counts each GIL's ticks, [`threads`] each thread's, [`cpu`] the CPU
//! supply's readings, [`stacks`] the stack samples and the lists drawn from them; this
//! module routes samples to them and, at the end, gathers a [`Profile`].

mod cpu;
mod gils;
mod stacks;
mod threads;

use std::collections::BTreeMap;
use std::time::Duration;

use super::{findings, ratio, verdict, GilMetrics, Profile, RunCounts, ThreadSummary, Timeline};
use crate::model::{IoKind, Sample, StateTick, ThreadState, Tid};
use gils::GilCounts;
use stacks::StackCounts;
use threads::{mean_threads, ThreadCounts};

/// Native modules an accumulator keeps names for: ids beyond are a hostile recording's.
const MAX_MODULES: usize = 4096;
/// The most execs a profile keeps.
const MAX_EXECS: usize = 64;

/// Consumes [`Sample`]s and produces a [`Profile`].
#[derive(Debug, Default)]
pub struct Accumulator {
    gils: BTreeMap<i64, GilCounts>,
    threads: BTreeMap<Tid, ThreadCounts>,
    state_samples: u64,
    stack_samples: u64,
    failed_state: u64,
    execs: Vec<crate::model::Exec>,
    failed_stack: u64,
    first_at: Option<Duration>,
    last_at: Duration,
    cpu: cpu::CpuCounts,
    stacks: StackCounts,
    /// Native modules by id ([`Sample::Module`]).
    modules: Vec<String>,
    /// Ticks the GIL's holder ran each native module's code, by module id.
    module_ticks: BTreeMap<u32, u64>,
    timeline: Timeline,
    /// The program's working directory, which the user's files are shown relative to.
    cwd: Option<String>,
}

impl Accumulator {
    /// An accumulator for a program running in `cwd`, which its own files are shown
    /// relative to.
    pub fn with_cwd(cwd: Option<String>) -> Accumulator {
        Accumulator {
            cwd,
            ..Accumulator::default()
        }
    }

    pub fn push(&mut self, sample: Sample) {
        match sample {
            Sample::State(tick) => self.state(&tick),
            Sample::Stacks(tick) => {
                self.stack_samples += 1;
                self.stacks
                    .push(tick, &mut self.threads, &mut self.timeline);
            }
            Sample::Interpreters(pairs) => {
                for (interpreter, gil) in pairs {
                    self.gils
                        .entry(gil)
                        .or_default()
                        .interpreters
                        .insert(interpreter);
                }
            }
            Sample::Thread(info) => {
                let t = self.threads.entry(info.tid).or_default();
                t.interpreter = info.interpreter;
                if info.name.is_some() {
                    t.name = info.name;
                }
            }
            Sample::Cpu {
                at,
                process_s,
                threads,
                machine,
                quota,
            } => {
                self.cpu.read(at, process_s, machine, quota);
                for (tid, cpu) in threads {
                    self.threads.entry(tid).or_default().cpu_reading(cpu);
                }
            }
            Sample::Module { id, name } => {
                let at = id as usize;
                if at < MAX_MODULES {
                    if self.modules.len() <= at {
                        self.modules.resize(at + 1, String::new());
                    }
                    self.modules[at] = name;
                }
            }
            Sample::Failed { stacks: true } => self.failed_stack += 1,
            Sample::Failed { stacks: false } => self.failed_state += 1,
            Sample::Exec(exec) => {
                // Bounded: a hostile recording could hold any number.
                if self.execs.len() < MAX_EXECS {
                    self.execs.push(exec);
                }
            }
        }
    }

    fn state(&mut self, tick: &StateTick) {
        self.state_samples += 1;
        self.timeline.tick(tick);
        self.first_at.get_or_insert(tick.at);
        self.last_at = tick.at;
        for reading in &tick.gils {
            self.gils
                .entry(reading.interpreter)
                .or_default()
                .read(tick, reading);
        }
        for o in &tick.threads {
            let t = self.threads.entry(o.tid).or_default();
            if let Some(m) = t.observe(o, tick) {
                *self.module_ticks.entry(m).or_default() += 1;
            }
        }
    }

    /// Ends the run: `late_ticks` from the sampler, `cpu_count` of this machine.
    pub fn finish(self, late_ticks: u64, cpu_count: usize) -> Profile {
        let duration = self
            .last_at
            .saturating_sub(self.first_at.unwrap_or_default());

        let gils: Vec<GilMetrics> = self
            .gils
            .iter()
            .filter(|(_, g)| g.was_read())
            .map(|(&interpreter, g)| g.metrics(interpreter, self.first_at.unwrap_or_default()))
            .collect();
        let gil_waits = self.stacks.gil_waits_at_locks();
        let threads: Vec<ThreadSummary> = self
            .threads
            .iter()
            .filter_map(|(&tid, t)| t.summary(tid, gil_waits.get(&tid)))
            .collect();
        let cores_used = self.cpu.cores_used();
        // The verdict blames the code that makes others wait; with no waiters, the holder;
        // with no GIL, the code that runs most.
        let main_gil = super::main_gil(&gils);
        let gil_disabled = main_gil.is_some_and(GilMetrics::ran_without_gil);
        let lists = self
            .stacks
            .lists(&threads, gil_disabled, self.cwd.as_deref());
        let mean = |share: &dyn Fn(&ThreadSummary) -> f64| {
            mean_threads(&threads, self.state_samples, share)
        };
        let threads_in: [f64; ThreadState::COUNT] = ThreadState::ALL.map(|s| mean(&|t| t.share(s)));
        let queued_threads = mean(&|t| t.queued_share);
        let lock_gil_threads = mean(&|t| t.lock_gil_wait);
        let contended_lock_threads = mean(&|t| t.contended_lock);
        let mut io_threads = [0.0; IoKind::ALL.len()];
        for t in &threads {
            for (sum, share) in io_threads.iter_mut().zip(t.io) {
                *sum += share * t.ticks as f64 / self.state_samples.max(1) as f64;
            }
        }
        // Of the ticks an instruction pointer told where the holder was.
        let held_ticks: u64 = self.threads.values().map(|t| t.ip_known).sum();
        let mut native_modules: Vec<(String, f64)> = self
            .module_ticks
            .iter()
            .map(|(&id, &n)| {
                let name = self.modules.get(id as usize).cloned().unwrap_or_default();
                (name, ratio(n, held_ticks))
            })
            .collect();
        native_modules.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let supply = self.cpu.supply(cores_used, cpu_count);
        let native_threads = threads_in[ThreadState::Native.index()];
        let running_threads = threads_in[ThreadState::Running.index()];
        // With subinterpreters, the verdict is about the GIL most threads want.
        let verdict_gil = gils
            .iter()
            .filter(|g| g.enabled)
            .max_by(|a, b| {
                a.demand
                    .total_cmp(&b.demand)
                    .then(b.interpreter.cmp(&a.interpreter))
            })
            .or(main_gil);
        let busy_gils = gils.iter().filter(|g| g.held >= 0.5 && g.enabled).count();
        let findings = findings::find(&findings::Evidence {
            gil: main_gil,
            threads: &threads,
            off_cpu_sites: &lists.off_cpu_sites,
            stalls_in_imports_only: lists.stalls_in_imports_only,
            ticks: self.state_samples,
        });
        let verdict = verdict::judge(&verdict::Evidence {
            gil: verdict_gil,
            busy_gils,
            native_threads,
            cpu_count,
            top_holder: lists.blamed.as_ref(),
            stack_samples: self.stack_samples,
            held_off_cpu: findings
                .iter()
                .any(|f| f.kind == findings::FindingKind::HeldOffCpu),
            state_samples: self.state_samples,
            running_threads,
            cores_used,
            event_loop: lists.event_loop,
            threads_in,
            contended_lock_threads,
            lock_gil_threads,
            queued_threads,
            io_threads,
            supply: supply.as_ref(),
            top_lock_wait: lists.top_lock_waits.first().filter(|s| !s.too_few()),
            top_lock_holder: lists.lock_holder.as_ref(),
            native_module: native_modules
                .first()
                .map(|(n, share)| (n.as_str(), *share)),
            native_caller: lists.top_native_callers.first().filter(|s| !s.too_few()),
            duration_s: duration.as_secs_f64(),
        });
        Profile {
            run: RunCounts {
                duration_s: duration.as_secs_f64(),
                first_sample_s: self.first_at.unwrap_or_default().as_secs_f64(),
                state_samples: self.state_samples,
                stack_samples: self.stack_samples,
                failed_samples: self.failed_state + self.failed_stack,
                failed_state_samples: self.failed_state,
                failed_stack_samples: self.failed_stack,
                late_ticks,
            },
            cores_used,
            cpu_count,
            gils,
            threads,
            verdict,
            blamed: lists.blamed,
            top_holders: lists.top_holders,
            top_waiters: lists.top_waiters,
            top_running: lists.top_running,
            top_blame: lists.top_blame,
            top_lock_waits: lists.top_lock_waits,
            top_lock_holders: lists.top_lock_holders,
            native_modules,
            top_native_callers: lists.top_native_callers,
            supply,
            findings,
            blame: lists.blame,
            stack_counts: lists.stack_counts,
            stacks: lists.table,
            timeline: self.timeline,
            exit: None,
            execs: self.execs,
        }
    }
}

/// What the tests of this module's parts feed an accumulator.
#[cfg(test)]
mod testing {
    use std::time::Duration;

    use crate::model::{GilReading, Sample, StateTick, ThreadObservation, ThreadState, Tid};

    pub fn obs(tid: Tid, state: ThreadState) -> ThreadObservation {
        ThreadObservation {
            tid,
            state,
            on_cpu: state == ThreadState::Holding,
            gil: 0,
            ..Default::default()
        }
    }

    pub fn tick(
        ms: u64,
        holder: Option<Tid>,
        switch: u64,
        threads: &[(Tid, ThreadState)],
    ) -> Sample {
        Sample::State(StateTick {
            at: Duration::from_millis(ms),
            gils: vec![GilReading {
                interpreter: 0,
                locked: holder.is_some(),
                holder,
                switch_number: switch,
                interval_us: 5000,
                enabled: None,
            }],
            threads: threads.iter().map(|&(t, s)| obs(t, s)).collect(),
        })
    }
}
