//! Folds the sample stream into counters as it arrives: memory grows with threads and
//! distinct stacks, never with the length of the run.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::sites::{self, Rank, Weighted};
use super::{
    findings, verdict, waits, CpuSupply, GilMetrics, Profile, RunCounts, ThreadSummary, Timeline,
};
use crate::model::{
    CpuQuota, Frame, GilEnabled, IoKind, MachineCpu, Sample, StackId, StackTable, StateTick,
    ThreadState, Tid, IN_INTERPRETER,
};

/// Native modules an accumulator keeps names for: ids beyond are a hostile recording's.
const MAX_MODULES: usize = 4096;
/// The most execs a profile keeps.
const MAX_EXECS: usize = 64;

#[derive(Debug, Default)]
struct GilCounts {
    /// The interpreters seen using this GIL.
    interpreters: std::collections::BTreeSet<i64>,
    /// Ticks this GIL was read at.
    ticks: u64,
    /// Ticks it was enabled at (all of them but in a free-threaded build): the ticks its
    /// metrics are over.
    enabled_ticks: u64,
    free_threaded: bool,
    /// When it was first seen enabled for good, in a free-threaded build.
    enabled_at: Option<Duration>,
    held: u64,
    waiters: u64,
    contended: u64,
    first_switch: Option<(Duration, u64)>,
    last_switch: Option<(Duration, u64)>,
    interval_us: u64,
}

#[derive(Debug, Default)]
struct ThreadCounts {
    name: Option<String>,
    interpreter: i64,
    states: [u64; ThreadState::COUNT],
    /// Ticks it was on a CPU, whatever its state.
    on_cpu: u64,
    /// Ticks it was runnable but waiting for a CPU, whatever its state.
    queued: u64,
    /// Ticks it held the GIL on a CPU with a fresh instruction-pointer sample.
    ip_known: u64,
    /// Ticks it held the GIL on a CPU in a native module's code.
    holding_native: u64,
    /// Ticks in state `io`, by what it waited on.
    io: [u64; IoKind::ALL.len()],
    /// Stack samples in state `lock`, and those among them that waited for a lock held by
    /// another thread rather than for a signal.
    lock_stacks: u64,
    contended_stacks: u64,
    held_off_cpu: u64,
    stalling: u64,
    first_cpu: Option<f64>,
    last_cpu: Option<f64>,
    /// `on_cpu` at its first and last CPU reading: the on-CPU ticks over the same window as
    /// the kernel's CPU time.
    on_cpu_at_first_cpu: Option<f64>,
    on_cpu_at_last_cpu: f64,
    /// Seconds seen on a CPU: each on-CPU tick stands for the time since the thread's
    /// previous tick.
    on_cpu_s: f64,
    last_tick: Option<Duration>,
}

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
    first_process_cpu: Option<(Duration, f64)>,
    last_process_cpu: Option<(Duration, f64)>,
    stacks: StackTable,
    stack_counts: HashMap<(Tid, ThreadState, StackId), u64>,
    /// Holder stacks weighted by the number of waiters at their tick (weight, samples).
    blame: HashMap<StackId, (u64, u64)>,
    /// Holder stacks seen while the holder was off CPU and others waited.
    stalling: HashMap<StackId, u64>,
    /// Where threads waited for a lock held by another thread.
    lock_waits: HashMap<StackId, u64>,
    /// What the GIL's holder ran while threads waited for a lock, weighted by how many
    /// (weight, samples).
    lock_holders: HashMap<StackId, (u64, u64)>,
    /// Native modules by id ([`Sample::Module`]).
    modules: Vec<String>,
    /// Ticks the GIL's holder ran each native module's code, by module id.
    module_ticks: BTreeMap<u32, u64>,
    /// Holder stacks seen in native code, weighted by the waiters at their tick (at least 1):
    /// where the Python code calls the module that keeps the GIL (weight, samples).
    native_callers: HashMap<StackId, (u64, u64)>,
    first_machine: Option<MachineCpu>,
    last_machine: Option<MachineCpu>,
    first_quota: Option<CpuQuota>,
    last_quota: Option<CpuQuota>,
    timeline: Timeline,
    /// The program's working directory, which the user's files are shown relative to.
    cwd: Option<String>,
}

/// Adds a weighted sample of a stack to a (weight, samples) map.
fn add(map: &mut HashMap<StackId, (u64, u64)>, id: StackId, weight: u64) {
    let e = map.entry(id).or_default();
    e.0 += weight;
    e.1 += 1;
}

/// A map's stacks, heaviest first (ties by id, so that the order is reproducible).
fn weighted(map: HashMap<StackId, (u64, u64)>) -> Vec<Weighted> {
    let mut v: Vec<Weighted> = map
        .into_iter()
        .map(|(id, (weight, samples))| Weighted {
            id,
            weight,
            samples,
        })
        .collect();
    v.sort_by(|a, b| b.weight.cmp(&a.weight).then(a.id.cmp(&b.id)));
    v
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
                let mut lock_waiters = 0;
                let mut holders = Vec::new();
                for s in tick.stacks {
                    if s.state == ThreadState::Lock {
                        let t = self.threads.entry(s.tid).or_default();
                        t.lock_stacks += 1;
                        if !waits::is_signal_wait(&s.frames) {
                            t.contended_stacks += 1;
                            lock_waiters += 1;
                            let id = self.stacks.intern(s.frames.clone());
                            *self.lock_waits.entry(id).or_default() += 1;
                        }
                    }
                    let id = self.stacks.intern(s.frames);
                    if s.state == ThreadState::Holding {
                        holders.push(id);
                        if s.native.is_some_and(|m| m != IN_INTERPRETER) {
                            add(&mut self.native_callers, id, u64::from(tick.waiters.max(1)));
                        }
                    }
                    self.timeline.stack(tick.at, s.tid, s.state, id);
                    *self.stack_counts.entry((s.tid, s.state, id)).or_default() += 1;
                    if s.state == ThreadState::Holding {
                        if tick.waiters > 0 {
                            add(&mut self.blame, id, u64::from(tick.waiters));
                        }
                        if s.stalled && tick.waiters > 0 {
                            *self.stalling.entry(id).or_default() += 1;
                        }
                    }
                }
                if lock_waiters > 0 {
                    for id in holders {
                        add(&mut self.lock_holders, id, lock_waiters);
                    }
                }
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
                if let Some(m) = machine {
                    self.first_machine.get_or_insert(m);
                    self.last_machine = Some(m);
                }
                if let Some(q) = quota {
                    self.first_quota.get_or_insert(q);
                    self.last_quota = Some(q);
                }
                if let Some(cpu) = process_s {
                    self.first_process_cpu.get_or_insert((at, cpu));
                    self.last_process_cpu = Some((at, cpu));
                }
                for (tid, cpu) in threads {
                    let t = self.threads.entry(tid).or_default();
                    t.first_cpu.get_or_insert(cpu);
                    t.last_cpu = Some(cpu);
                    t.on_cpu_at_first_cpu.get_or_insert(t.on_cpu_s);
                    t.on_cpu_at_last_cpu = t.on_cpu_s;
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
            let waiters = tick
                .threads
                .iter()
                .filter(|o| o.state == ThreadState::Waiting && o.gil == reading.interpreter)
                .count() as u64;
            let g = self.gils.entry(reading.interpreter).or_default();
            g.ticks += 1;
            g.free_threaded |= reading.enabled.is_some();
            match reading.enabled {
                Some(GilEnabled::Disabled) => continue,
                Some(GilEnabled::Permanently) => {
                    g.enabled_at.get_or_insert(tick.at);
                }
                Some(GilEnabled::Transiently) | None => {}
            }
            g.enabled_ticks += 1;
            let held = reading.holder.is_some();
            g.held += u64::from(held);
            g.waiters += waiters;
            g.contended += u64::from(held && waiters > 0);
            g.first_switch
                .get_or_insert((tick.at, reading.switch_number));
            g.last_switch = Some((tick.at, reading.switch_number));
            g.interval_us = reading.interval_us;
        }
        for o in &tick.threads {
            let t = self.threads.entry(o.tid).or_default();
            t.states[o.state.index()] += 1;
            if let (ThreadState::Io, Some(kind)) = (o.state, o.io) {
                t.io[kind.index()] += 1;
            }
            t.on_cpu += u64::from(o.on_cpu);
            if let (true, Some(last)) = (o.on_cpu, t.last_tick) {
                t.on_cpu_s += tick.at.saturating_sub(last).as_secs_f64();
            }
            t.last_tick = Some(tick.at);
            t.queued += u64::from(o.queued);
            if let (ThreadState::Holding, Some(m)) = (o.state, o.native) {
                t.ip_known += 1;
                if m != IN_INTERPRETER {
                    t.holding_native += 1;
                    *self.module_ticks.entry(m).or_default() += 1;
                }
            }
            if o.state == ThreadState::Holding && o.stalled {
                t.held_off_cpu += 1;
                // Off CPU with the GIL while another thread wants that GIL: a stall.
                let others_wait = tick
                    .threads
                    .iter()
                    .any(|w| w.state == ThreadState::Waiting && w.gil == o.gil);
                t.stalling += u64::from(others_wait);
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
            .filter(|(_, g)| g.ticks > 0)
            .map(|(&interpreter, g)| gil_metrics(interpreter, g, self.first_at.unwrap_or_default()))
            .collect();
        // GIL waits inside a lock's acquire: stacks waiting for the GIL whose innermost frame
        // is a line where threads were also seen waiting for a lock held by another thread
        // (3.13+'s PyMutex, and every version's Lock once acquired, take the GIL back there).
        // A line counts once three lock-wait samples were seen there: a tick or two of a GIL
        // wait read as a lock wait must not turn every GIL wait at that line into a lock's.
        let mut lock_at: HashMap<&Frame, u64> = HashMap::new();
        for (&id, &n) in &self.lock_waits {
            if let Some(f) = self.stacks.get(id).last() {
                *lock_at.entry(f).or_default() += n;
            }
        }
        let lock_lines: std::collections::HashSet<&Frame> = lock_at
            .into_iter()
            .filter(|&(_, n)| n >= 3)
            .map(|(f, _)| f)
            .collect();
        let mut gil_waits: HashMap<Tid, (u64, u64)> = HashMap::new();
        for (&(tid, state, id), &n) in &self.stack_counts {
            if state == ThreadState::Waiting {
                let w = gil_waits.entry(tid).or_default();
                w.0 += n;
                if self
                    .stacks
                    .get(id)
                    .last()
                    .is_some_and(|f| lock_lines.contains(f))
                {
                    w.1 += n;
                }
            }
        }
        let threads: Vec<ThreadSummary> = self
            .threads
            .iter()
            .filter_map(|(&tid, t)| {
                let ticks: u64 = t.states.iter().sum();
                if ticks == 0 {
                    return None;
                }
                Some(ThreadSummary {
                    tid,
                    name: t.name.clone(),
                    interpreter: t.interpreter,
                    cpu_s: match (t.first_cpu, t.last_cpu) {
                        (Some(a), Some(b)) => (b - a).max(0.0),
                        _ => 0.0,
                    },
                    shares: t.states.map(|n| n as f64 / ticks as f64),
                    on_cpu_s: (t.on_cpu_at_last_cpu - t.on_cpu_at_first_cpu.unwrap_or(0.0))
                        .max(0.0),
                    on_cpu_share: ratio(t.on_cpu, ticks),
                    queued_share: ratio(t.queued, ticks),
                    holding_native: ratio(t.holding_native, ticks),
                    io: t.io.map(|n| n as f64 / ticks as f64),
                    contended_lock: t.states[ThreadState::Lock.index()] as f64 / ticks as f64
                        * match t.lock_stacks {
                            // Without a stack to tell, a lock wait counts as contention.
                            0 => 1.0,
                            n => t.contended_stacks as f64 / n as f64,
                        },
                    lock_gil_wait: match gil_waits.get(&tid) {
                        Some(&(all, at_lock)) if all > 0 => {
                            t.states[ThreadState::Waiting.index()] as f64 / ticks as f64
                                * at_lock as f64
                                / all as f64
                        }
                        _ => 0.0,
                    },
                    ticks,
                    held_off_cpu: t.held_off_cpu,
                    stalling: t.stalling,
                })
            })
            .collect();
        let cores_used = match (self.first_process_cpu, self.last_process_cpu) {
            (Some((t0, c0)), Some((t1, c1))) if t1 > t0 => {
                Some((c1 - c0).max(0.0) / (t1 - t0).as_secs_f64())
            }
            _ => None,
        };
        let mut stack_counts: Vec<_> = self.stack_counts.into_iter().collect();
        stack_counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let in_state = |state: ThreadState| -> Vec<Weighted> {
            stack_counts
                .iter()
                .filter(move |((_, s, _), _)| *s == state)
                .map(|((_, _, id), n)| Weighted::counted(*id, *n))
                .collect()
        };
        let cwd = self.cwd.as_deref();
        let top = |w: &[Weighted], rank, named| sites::top_sites(&self.stacks, w, rank, cwd, named);
        let event_loop = stack_counts
            .iter()
            .find(|((_, _, id), _)| self.stacks.get(*id).iter().any(is_event_loop_frame))
            .and_then(|((tid, _, _), _)| threads.iter().find(|t| t.tid == *tid))
            .map(ThreadSummary::label);
        let holding = in_state(ThreadState::Holding);
        let running = in_state(ThreadState::Running);
        let blame_stacks = weighted(self.blame);
        let blame: Vec<(StackId, u64)> = blame_stacks.iter().map(|w| (w.id, w.weight)).collect();
        let lock_holder_stacks = weighted(self.lock_holders);
        // The verdict blames the code that makes others wait; with no waiters, the holder;
        // with no GIL, the code that runs most.
        let gil_disabled = gils
            .iter()
            .min_by_key(|g| g.interpreter)
            .is_some_and(|g| g.free_threaded && g.enabled_share < verdict::GIL_DISABLED_BELOW);
        let name = |w: &[Weighted], list| sites::blamed(&self.stacks, w, list, cwd);
        let blamed = if gil_disabled {
            name(&running, "running")
        } else {
            name(&blame_stacks, "blame").or_else(|| name(&holding, "holders"))
        };
        let lock_holder = name(&lock_holder_stacks, "lock_holders");
        // Each list keeps the row of the code the verdict names from it.
        let named_in = |list: &str| blamed.as_ref().filter(|b| b.list == list).map(|b| &b.site);
        let top_holders = top(&holding, Rank::Inclusive, named_in("holders"));
        let top_waiters = top(&in_state(ThreadState::Waiting), Rank::Innermost, None);
        let top_running = top(&running, Rank::Inclusive, named_in("running"));
        let top_blame = top(&blame_stacks, Rank::Inclusive, named_in("blame"));
        // A stall seen only inside imports (start-up) is no finding: nobody can change it.
        let stalled_stacks = !self.stalling.is_empty();
        let stalls: Vec<Weighted> = self
            .stalling
            .into_iter()
            .filter(|(id, _)| !sites::is_import_stack(self.stacks.get(*id)))
            .map(|(id, n)| Weighted::counted(id, n))
            .collect();
        let off_cpu_sites = top(&stalls, Rank::Innermost, None);
        let lock_waits: Vec<Weighted> = weighted(
            self.lock_waits
                .into_iter()
                .map(|(id, n)| (id, (n, n)))
                .collect(),
        );
        let top_lock_waits = top(&lock_waits, Rank::Innermost, None);
        let top_lock_holders = top(
            &lock_holder_stacks,
            Rank::Inclusive,
            lock_holder.as_ref().map(|b| &b.site),
        );
        let mean_in = |state| mean_threads_in(&threads, self.state_samples, state);
        let threads_in: [f64; ThreadState::COUNT] = ThreadState::ALL.map(mean_in);
        let queued_threads: f64 = threads
            .iter()
            .map(|t| t.queued_share * t.ticks as f64)
            .sum::<f64>()
            / self.state_samples.max(1) as f64;
        let lock_gil_threads: f64 = threads
            .iter()
            .map(|t| t.lock_gil_wait * t.ticks as f64)
            .sum::<f64>()
            / self.state_samples.max(1) as f64;
        let contended_lock_threads: f64 = if self.state_samples == 0 {
            0.0
        } else {
            threads
                .iter()
                .map(|t| t.contended_lock * t.ticks as f64)
                .sum::<f64>()
                / self.state_samples as f64
        };
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
        let top_native_callers = top(&weighted(self.native_callers), Rank::Innermost, None);
        let supply = CpuSupply::between(
            self.first_machine.zip(self.last_machine),
            self.first_quota.zip(self.last_quota),
            cores_used,
            cpu_count,
        );
        let native_threads = mean_threads_in(&threads, self.state_samples, ThreadState::Native);
        let running_threads = mean_threads_in(&threads, self.state_samples, ThreadState::Running);
        let main_gil = gils.iter().min_by_key(|g| g.interpreter);
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
            off_cpu_sites: &off_cpu_sites,
            stalls_in_imports_only: stalled_stacks && stalls.is_empty(),
            ticks: self.state_samples,
        });
        let verdict = verdict::judge(&verdict::Evidence {
            gil: verdict_gil,
            busy_gils,
            native_threads,
            cpu_count,
            top_holder: blamed.as_ref(),
            stack_samples: self.stack_samples,
            held_off_cpu: findings
                .iter()
                .any(|f| f.kind == findings::FindingKind::HeldOffCpu),
            state_samples: self.state_samples,
            running_threads,
            cores_used,
            event_loop,
            threads_in,
            contended_lock_threads,
            lock_gil_threads,
            queued_threads,
            io_threads,
            supply: supply.as_ref(),
            top_lock_wait: top_lock_waits.first().filter(|s| !s.too_few()),
            top_lock_holder: lock_holder.as_ref(),
            native_module: native_modules
                .first()
                .map(|(n, share)| (n.as_str(), *share)),
            native_caller: top_native_callers.first().filter(|s| !s.too_few()),
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
            blamed,
            top_holders,
            top_waiters,
            top_running,
            top_blame,
            top_lock_waits,
            top_lock_holders,
            native_modules,
            top_native_callers,
            supply,
            findings,
            blame,
            stack_counts,
            stacks: self.stacks,
            timeline: self.timeline,
            exit: None,
            execs: self.execs,
        }
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

fn gil_metrics(interpreter: i64, g: &GilCounts, start: Duration) -> GilMetrics {
    let ticks = g.enabled_ticks;
    let held = ratio(g.held, ticks);
    let demand = ratio(g.held + g.waiters, ticks);
    let (switches, switches_per_s) = match (g.first_switch, g.last_switch) {
        (Some((t0, s0)), Some((t1, s1))) if t1 > t0 => {
            let n = s1.saturating_sub(s0);
            (n, n as f64 / (t1 - t0).as_secs_f64())
        }
        _ => (0, 0.0),
    };
    GilMetrics {
        interpreter,
        interpreters: g.interpreters.iter().copied().collect(),
        enabled: ticks > 0,
        free_threaded: g.free_threaded,
        enabled_share: ratio(ticks, g.ticks),
        enabled_at_s: g
            .enabled_at
            .filter(|_| g.free_threaded)
            .map(|at| at.saturating_sub(start).as_secs_f64()),
        held,
        avg_waiters: ratio(g.waiters, ticks),
        contended: ratio(g.contended, ticks),
        demand,
        speedup_ceiling: if held > 0.0 { demand / held } else { 1.0 },
        switches_per_s,
        switches,
        switch_interval_ms: g.interval_us as f64 / 1000.0,
        ticks: g.ticks,
    }
}

/// asyncio's `BaseEventLoop._run_once`, which every event loop runs each iteration.
fn is_event_loop_frame(frame: &Frame) -> bool {
    frame.function.ends_with("_run_once")
        && (frame.file.ends_with("asyncio/base_events.py") || frame.file == "base_events.py")
}

/// Mean number of threads in `state` per tick.
fn mean_threads_in(threads: &[ThreadSummary], ticks: u64, state: ThreadState) -> f64 {
    let n: f64 = threads
        .iter()
        .map(|t| t.share(state) * t.ticks as f64)
        .sum();
    if ticks == 0 {
        0.0
    } else {
        n / ticks as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GilReading, StackTick, ThreadInfo, ThreadObservation, ThreadStack};

    fn obs(tid: Tid, state: ThreadState) -> ThreadObservation {
        ThreadObservation {
            tid,
            state,
            on_cpu: state == ThreadState::Holding,
            gil: 0,
            ..Default::default()
        }
    }

    fn tick(ms: u64, holder: Option<Tid>, switch: u64, threads: &[(Tid, ThreadState)]) -> Sample {
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

    use ThreadState::*;

    #[test]
    fn metrics_follow_their_definitions() {
        let mut acc = Accumulator::default();
        // Tick 1: 1 holds, 2 and 3 wait. Tick 2: 2 holds, 3 waits. Tick 3: 3 holds alone.
        // Tick 4: nobody holds, everyone idle.
        acc.push(tick(
            0,
            Some(1),
            100,
            &[(1, Holding), (2, Waiting), (3, Waiting)],
        ));
        acc.push(tick(
            10,
            Some(2),
            101,
            &[(1, Idle), (2, Holding), (3, Waiting)],
        ));
        acc.push(tick(
            20,
            Some(3),
            102,
            &[(1, Idle), (2, Idle), (3, Holding)],
        ));
        acc.push(tick(1000, None, 110, &[(1, Idle), (2, Idle), (3, Idle)]));
        let p = acc.finish(0, 2);
        let g = p.main_gil().unwrap();
        assert_eq!(g.held, 0.75);
        assert_eq!(g.avg_waiters, 3.0 / 4.0);
        assert_eq!(g.contended, 0.5);
        assert_eq!(g.demand, 1.5);
        assert_eq!(g.speedup_ceiling, 2.0);
        assert!((g.switches_per_s - 10.0).abs() < 1e-9);
        assert_eq!(g.switch_interval_ms, 5.0);
        let t3 = p.threads.iter().find(|t| t.tid == 3).unwrap();
        assert_eq!(t3.share(Waiting), 0.5);
        assert_eq!(t3.share(Holding), 0.25);
        assert_eq!(t3.shares.iter().sum::<f64>(), 1.0);
        assert_eq!(p.run.state_samples, 4);
        assert_eq!(p.run.duration_s, 1.0);
    }

    #[test]
    fn waiters_count_for_the_gil_they_wait_for() {
        let mut acc = Accumulator::default();
        acc.push(Sample::Interpreters(vec![(0, 0), (1, 1), (2, 0)]));
        let reading = |interpreter, holder| GilReading {
            interpreter,
            locked: true,
            holder: Some(holder),
            switch_number: 0,
            interval_us: 5000,
            enabled: None,
        };
        let o = |tid, state, gil| ThreadObservation {
            tid,
            state,
            on_cpu: state == Holding,
            gil,
            ..Default::default()
        };
        // Thread 1 holds GIL 0 and thread 3 waits for it; thread 2 holds GIL 1 alone.
        acc.push(Sample::State(StateTick {
            at: Duration::ZERO,
            gils: vec![reading(0, 1), reading(1, 2)],
            threads: vec![o(1, Holding, 0), o(2, Holding, 1), o(3, Waiting, 0)],
        }));
        let p = acc.finish(0, 2);
        let gil = |id| p.gils.iter().find(|g| g.interpreter == id).unwrap();
        assert_eq!(gil(0).avg_waiters, 1.0);
        assert_eq!(gil(0).interpreters, [0, 2]);
        assert_eq!(gil(1).avg_waiters, 0.0);
        assert_eq!(gil(1).contended, 0.0);
        assert_eq!(gil(1).interpreters, [1]);
    }

    #[test]
    fn shares_are_over_the_ticks_a_thread_was_alive() {
        let mut acc = Accumulator::default();
        acc.push(tick(0, Some(1), 0, &[(1, Holding)]));
        acc.push(tick(1, Some(1), 0, &[(1, Holding), (2, Waiting)]));
        let p = acc.finish(0, 2);
        let t2 = p.threads.iter().find(|t| t.tid == 2).unwrap();
        assert_eq!(t2.share(Waiting), 1.0);
        assert_eq!(t2.ticks, 1);
    }

    #[test]
    fn top_holders_rank_leaf_frames_of_holding_stacks() {
        let f = |name: &str, line| Frame {
            function: name.into(),
            file: "app.py".into(),
            line,
        };
        let mut acc = Accumulator::default();
        acc.push(Sample::Thread(ThreadInfo {
            tid: 1,
            name: Some("w".into()),
            interpreter: 0,
        }));
        for i in 0..4 {
            let hot = match i {
                0 | 1 => f("compute", 12),
                2 => f("compute", 13),
                _ => f("other", 30),
            };
            acc.push(Sample::Stacks(StackTick {
                at: Duration::from_millis(i),
                waiters: 1,
                stacks: vec![
                    ThreadStack {
                        tid: 1,
                        state: Holding,
                        on_cpu: true,
                        frames: vec![f("main", 1), hot],
                        ..Default::default()
                    },
                    ThreadStack {
                        tid: 2,
                        state: Waiting,
                        on_cpu: false,
                        frames: vec![f("worker", 20)],
                        ..Default::default()
                    },
                ],
            }));
        }
        let p = acc.finish(0, 2);
        // One row per function, named at its hottest line; main() is on every stack and
        // never innermost, so it says nothing.
        let rows: Vec<(&str, u32, f64, u64)> = p
            .top_holders
            .iter()
            .map(|s| (s.function.as_str(), s.line, s.share, s.inclusive_samples))
            .collect();
        assert_eq!(rows, [("compute", 12, 0.75, 3), ("other", 30, 0.25, 1)]);
        assert_eq!(p.top_waiters[0].function, "worker");
        assert_eq!(p.top_waiters[0].share, 1.0);
        assert_eq!(p.threads.len(), 0, "no state ticks, no thread rows");
        assert_eq!(p.run.stack_samples, 4);
    }

    #[test]
    fn the_verdict_names_the_users_code_with_the_number_of_the_table_beside_it() {
        let frame = |function: &str, file: &str, line| Frame {
            function: function.into(),
            file: file.into(),
            line,
        };
        let lib = "/venv/lib/python3.12/site-packages/tmpl/render.py";
        let mut acc = Accumulator::with_cwd(Some("/srv/app".into()));
        for i in 0..40u64 {
            acc.push(tick(i, Some(1), i, &[(1, Holding), (2, Waiting)]));
            // The user's report() renders through the library, whose loop is innermost.
            let leaf = if i % 4 == 0 {
                frame("report", "/srv/app/web/app.py", 9)
            } else {
                frame("_loop", lib, 30)
            };
            let mut frames = vec![frame("main", "/srv/app/app.py", 1)];
            frames.push(frame("report", "/srv/app/web/app.py", 8));
            if leaf.function == "_loop" {
                frames.push(frame("render", lib, 20));
            }
            frames.push(leaf);
            acc.push(Sample::Stacks(StackTick {
                at: Duration::from_millis(i),
                waiters: 1,
                stacks: vec![ThreadStack {
                    tid: 1,
                    state: Holding,
                    on_cpu: true,
                    frames,
                    ..Default::default()
                }],
            }));
        }
        let p = acc.finish(0, 2);
        assert_eq!(p.verdict.kind, verdict::VerdictKind::GilBound);
        let named = p.blamed.as_ref().unwrap();
        assert_eq!(named.site.path_shown, "web/app.py");
        let row = p.top_blame.iter().find(|s| s.function == "report").unwrap();
        let share = format!("{:.0}%", 100.0 * row.inclusive_share);
        assert!(
            p.verdict.summary.contains(&format!(
                "report() at web/app.py:8, via tmpl's render(), holds it {share} of the time \
                 others wait"
            )),
            "{}",
            p.verdict.summary
        );
        assert!(
            p.verdict.advice[1].contains("Move report()"),
            "{:?}",
            p.verdict.advice
        );
    }

    #[test]
    fn holding_off_cpu_is_a_stall_only_while_someone_waits() {
        let off_cpu = |waiter: Option<Tid>| {
            let mut threads = vec![ThreadObservation {
                tid: 1,
                state: Holding,
                on_cpu: false,
                stalled: true,
                gil: 0,
                ..Default::default()
            }];
            threads.extend(waiter.map(|tid| obs(tid, Waiting)));
            Sample::State(StateTick {
                at: Duration::ZERO,
                gils: vec![GilReading {
                    interpreter: 0,
                    locked: true,
                    holder: Some(1),
                    switch_number: 0,
                    interval_us: 5000,
                    enabled: None,
                }],
                threads,
            })
        };
        // Importing at start-up, nobody else around: not a finding.
        let mut acc = Accumulator::default();
        (0..20).for_each(|_| acc.push(off_cpu(None)));
        let p = acc.finish(0, 2);
        assert_eq!(p.threads[0].held_off_cpu, 20);
        assert!(p.findings.is_empty(), "{:?}", p.findings);
        // The same while another thread waits: every one of those ticks is a stall.
        let mut acc = Accumulator::default();
        (0..20).for_each(|_| acc.push(off_cpu(Some(2))));
        let p = acc.finish(0, 2);
        assert_eq!(p.findings[0].kind, super::findings::FindingKind::HeldOffCpu);
    }

    #[test]
    fn cpu_time_is_what_was_used_during_the_run() {
        let mut acc = Accumulator::default();
        acc.push(Sample::Cpu {
            at: Duration::ZERO,
            process_s: Some(10.0),
            threads: vec![(1, 4.0)],
            machine: None,
            quota: None,
        });
        acc.push(tick(0, Some(1), 0, &[(1, Holding)]));
        acc.push(Sample::Cpu {
            at: Duration::from_secs(2),
            process_s: Some(13.0),
            threads: vec![(1, 5.5)],
            machine: None,
            quota: None,
        });
        let p = acc.finish(0, 2);
        assert_eq!(p.cores_used, Some(1.5));
        assert_eq!(p.threads[0].cpu_s, 1.5);
    }
}
