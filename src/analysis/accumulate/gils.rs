//! Per GIL: the ticks it was read, enabled, held, waited for and contended at, its handoffs,
//! and the metrics drawn from them (docs/DESIGN.md, "Metrics").

use std::collections::BTreeSet;
use std::time::Duration;

use crate::analysis::ratio;
use crate::analysis::GilMetrics;
use crate::model::{GilEnabled, GilReading, StateTick, ThreadState};

#[derive(Debug, Default)]
pub(super) struct GilCounts {
    /// The interpreters seen using this GIL.
    pub(super) interpreters: BTreeSet<i64>,
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

impl GilCounts {
    /// Its reading at a state tick; its waiters are the tick's threads waiting for it.
    pub(super) fn read(&mut self, tick: &StateTick, reading: &GilReading) {
        let waiters = tick
            .threads
            .iter()
            .filter(|o| o.state == ThreadState::Waiting && o.gil == reading.interpreter)
            .count() as u64;
        self.ticks += 1;
        self.free_threaded |= reading.enabled.is_some();
        match reading.enabled {
            Some(GilEnabled::Disabled) => return,
            Some(GilEnabled::Permanently) => {
                self.enabled_at.get_or_insert(tick.at);
            }
            Some(GilEnabled::Transiently) | None => {}
        }
        self.enabled_ticks += 1;
        let held = reading.holder.is_some();
        self.held += u64::from(held);
        self.waiters += waiters;
        self.contended += u64::from(held && waiters > 0);
        self.first_switch
            .get_or_insert((tick.at, reading.switch_number));
        self.last_switch = Some((tick.at, reading.switch_number));
        self.interval_us = reading.interval_us;
    }

    /// Whether it was read at any tick.
    pub(super) fn was_read(&self) -> bool {
        self.ticks > 0
    }

    /// Its metrics, `start` being the first sample's time.
    pub(super) fn metrics(&self, interpreter: i64, start: Duration) -> GilMetrics {
        let g = self;
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
}

#[cfg(test)]
mod tests {
    use super::super::testing::tick;
    use crate::analysis::Accumulator;
    use crate::model::{GilReading, Sample, StateTick, ThreadObservation, ThreadState::*};
    use std::time::Duration;

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
}
