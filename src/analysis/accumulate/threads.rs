//! Per thread: the ticks in each state, on a CPU, queued, on I/O by kind, holding in native
//! code or off CPU, its CPU readings, and the thread's summary drawn from them
//! (docs/DESIGN.md, "Metrics").

use std::time::Duration;

use crate::analysis::ratio;
use crate::analysis::ThreadSummary;
use crate::model::{IoKind, StateTick, ThreadObservation, ThreadState, Tid, IN_INTERPRETER};

#[derive(Debug, Default)]
pub(super) struct ThreadCounts {
    pub(super) name: Option<String>,
    pub(super) interpreter: i64,
    states: [u64; ThreadState::COUNT],
    /// Ticks it was on a CPU, whatever its state.
    on_cpu: u64,
    /// Ticks it was runnable but waiting for a CPU, whatever its state.
    queued: u64,
    /// Ticks it held the GIL on a CPU with a fresh instruction-pointer sample.
    pub(super) ip_known: u64,
    /// Ticks it held the GIL on a CPU in a native module's code.
    holding_native: u64,
    /// Ticks in state `io`, by what it waited on.
    io: [u64; IoKind::ALL.len()],
    /// Stack samples in state `lock`, and those among them that waited for a lock held by
    /// another thread rather than for a signal.
    pub(super) lock_stacks: u64,
    pub(super) contended_stacks: u64,
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

impl ThreadCounts {
    /// Its observation `o` at a state tick; the native module it held the GIL in, if any.
    pub(super) fn observe(&mut self, o: &ThreadObservation, tick: &StateTick) -> Option<u32> {
        let t = self;
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
        let mut native = None;
        if let (ThreadState::Holding, Some(m)) = (o.state, o.native) {
            t.ip_known += 1;
            if m != IN_INTERPRETER {
                t.holding_native += 1;
                native = Some(m);
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
        native
    }

    /// Its CPU time, as the kernel charged it, at a CPU reading.
    pub(super) fn cpu_reading(&mut self, cpu: f64) {
        self.first_cpu.get_or_insert(cpu);
        self.last_cpu = Some(cpu);
        self.on_cpu_at_first_cpu.get_or_insert(self.on_cpu_s);
        self.on_cpu_at_last_cpu = self.on_cpu_s;
    }

    /// The thread's summary, `None` when it was never seen at a state tick. `gil_waits`: its
    /// stack samples waiting for the GIL, and those among them inside a lock's acquire.
    pub(super) fn summary(
        &self,
        tid: Tid,
        gil_waits: Option<&(u64, u64)>,
    ) -> Option<ThreadSummary> {
        let t = self;
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
            on_cpu_s: (t.on_cpu_at_last_cpu - t.on_cpu_at_first_cpu.unwrap_or(0.0)).max(0.0),
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
            lock_gil_wait: match gil_waits {
                Some(&(all, at_lock)) if all > 0 => {
                    t.states[ThreadState::Waiting.index()] as f64 / ticks as f64 * at_lock as f64
                        / all as f64
                }
                _ => 0.0,
            },
            ticks,
            held_off_cpu: t.held_off_cpu,
            stalling: t.stalling,
        })
    }
}

/// Mean number of threads per tick of `ticks` in what `share` reads of each (its share of its
/// own ticks in a state, in a queue, ...).
pub(super) fn mean_threads(
    threads: &[ThreadSummary],
    ticks: u64,
    share: &dyn Fn(&ThreadSummary) -> f64,
) -> f64 {
    let n: f64 = threads.iter().map(|t| share(t) * t.ticks as f64).sum();
    if ticks == 0 {
        0.0
    } else {
        n / ticks as f64
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{obs, tick};
    use crate::analysis::Accumulator;
    use crate::model::{GilReading, Sample, StateTick, ThreadObservation, ThreadState::*, Tid};
    use std::time::Duration;

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
        assert_eq!(p.findings[0].kind, crate::analysis::FindingKind::HeldOffCpu);
    }
}
