//! The run over time: for every thread, how many ticks it spent in each state within each of
//! at most [`MAX_BUCKETS`] equal slices of the run, and the GIL handoffs in each slice. Built
//! as the samples arrive; when the run outgrows the buckets, neighbours merge and the
//! buckets double in width, so memory stays bounded however long the run.

use std::time::Duration;

use serde::Serialize;

use crate::model::{StackId, StateTick, ThreadState, Tid};

/// How many slices a timeline has at most: enough for a readable picture, bounded for an
/// hour-long run.
pub const MAX_BUCKETS: usize = 512;
/// The width of a slice until the run outgrows the buckets.
const FIRST_WIDTH: Duration = Duration::from_millis(10);
/// How many timed stack samples are kept at most (for trace formats); beyond it, every
/// other one is dropped and only every second one after is kept, and so on.
pub const MAX_TIMED_STACKS: usize = 20_000;

/// One thread's lane: ticks in each state, per slice, indexed like [`ThreadState::ALL`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Lane {
    pub tid: Tid,
    pub counts: Vec<[u32; ThreadState::COUNT]>,
}

impl Lane {
    /// The state it spent most ticks in during slice `i`, if it was seen then.
    pub fn dominant(&self, i: usize) -> Option<ThreadState> {
        let counts = self.counts.get(i)?;
        let (best, n) = counts
            .iter()
            .enumerate()
            .max_by_key(|&(i, n)| (*n, std::cmp::Reverse(i)))?;
        (*n > 0).then(|| ThreadState::ALL[best])
    }
}

/// A stack sample with its time, for formats that show samples on a time axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedStack {
    pub at: Duration,
    pub tid: Tid,
    pub state: ThreadState,
    pub stack: StackId,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    /// Time of the first tick, from the run's time zero.
    pub start: Duration,
    /// Width of every slice.
    pub width: Duration,
    /// Slices in use.
    pub buckets: usize,
    /// One per thread, in the order first seen.
    pub lanes: Vec<Lane>,
    /// GIL handoffs of the main GIL in each slice (CPython's `switch_number`).
    pub handoffs: Vec<u64>,
    /// State ticks taken in each slice: 0 where the sampler skipped every tick of a slice
    /// (it got no CPU in time), which the lanes then show as a gap of its own.
    pub ticks: Vec<u32>,
    /// Stack samples in time order, thinned evenly past [`MAX_TIMED_STACKS`].
    pub stacks: Vec<TimedStack>,
    /// Keep one stack sample in this many (doubles each time the list is thinned).
    stack_stride: u64,
    stacks_seen: u64,
    last_switch: Option<u64>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            start: Duration::ZERO,
            width: FIRST_WIDTH,
            buckets: 0,
            lanes: Vec::new(),
            handoffs: Vec::new(),
            ticks: Vec::new(),
            stacks: Vec::new(),
            stack_stride: 1,
            stacks_seen: 0,
            last_switch: None,
        }
    }
}

impl Timeline {
    /// Adds one state tick. Ticks come in time order.
    pub fn tick(&mut self, tick: &StateTick) {
        if self.buckets == 0 {
            self.start = tick.at;
        }
        let mut i = self.bucket_of(tick.at);
        while i >= MAX_BUCKETS {
            self.merge();
            i = self.bucket_of(tick.at);
        }
        if i >= self.buckets {
            self.buckets = i + 1;
            self.handoffs.resize(self.buckets, 0);
            self.ticks.resize(self.buckets, 0);
        }
        self.ticks[i] += 1;
        for o in &tick.threads {
            let lane = match self.lanes.iter().position(|l| l.tid == o.tid) {
                Some(at) => &mut self.lanes[at],
                None => {
                    self.lanes.push(Lane {
                        tid: o.tid,
                        counts: Vec::new(),
                    });
                    self.lanes.last_mut().unwrap()
                }
            };
            if lane.counts.len() <= i {
                lane.counts.resize(i + 1, [0; ThreadState::COUNT]);
            }
            lane.counts[i][o.state.index()] += 1;
        }
        if let Some(main) = tick.main_gil() {
            if let Some(last) = self.last_switch {
                self.handoffs[i] += main.switch_number.saturating_sub(last);
            }
            self.last_switch = Some(main.switch_number);
        }
    }

    /// Adds one thread's stack sample.
    pub fn stack(&mut self, at: Duration, tid: Tid, state: ThreadState, stack: StackId) {
        self.stacks_seen += 1;
        if self.stacks_seen % self.stack_stride != 0 {
            return;
        }
        self.stacks.push(TimedStack {
            at,
            tid,
            state,
            stack,
        });
        if self.stacks.len() >= MAX_TIMED_STACKS {
            let mut keep = false;
            self.stacks.retain(|_| {
                keep = !keep;
                keep
            });
            self.stack_stride *= 2;
        }
    }

    fn bucket_of(&self, at: Duration) -> usize {
        (at.saturating_sub(self.start).as_nanos() / self.width.as_nanos().max(1)) as usize
    }

    /// Halves the number of slices: neighbours add up, the width doubles.
    fn merge(&mut self) {
        fn pairs<T: Copy>(v: &[T], add: impl Fn(T, T) -> T, zero: T) -> Vec<T> {
            v.chunks(2)
                .map(|c| add(c[0], c.get(1).copied().unwrap_or(zero)))
                .collect()
        }
        for lane in &mut self.lanes {
            lane.counts = pairs(
                &lane.counts,
                |a, b| std::array::from_fn(|k| a[k] + b[k]),
                [0; ThreadState::COUNT],
            );
        }
        self.handoffs = pairs(&self.handoffs, |a, b| a + b, 0);
        self.ticks = pairs(&self.ticks, |a, b| a + b, 0);
        self.buckets = self.buckets.div_ceil(2);
        self.width *= 2;
    }

    /// Start time of slice `i`, from the run's time zero.
    pub fn bucket_start(&self, i: usize) -> Duration {
        self.start + self.width * i as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GilReading, ThreadObservation};

    fn tick(ms: u64, switch: u64, states: &[(Tid, ThreadState)]) -> StateTick {
        StateTick {
            at: Duration::from_millis(ms),
            gils: vec![GilReading {
                interpreter: 0,
                locked: true,
                holder: None,
                switch_number: switch,
                interval_us: 5000,
                enabled: None,
            }],
            threads: states
                .iter()
                .map(|&(tid, state)| ThreadObservation {
                    tid,
                    state,
                    on_cpu: false,
                    gil: 0,
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn slices_count_states_and_handoffs() {
        use ThreadState::*;
        let mut t = Timeline::default();
        t.tick(&tick(100, 10, &[(1, Holding), (2, Waiting)]));
        t.tick(&tick(104, 12, &[(1, Waiting), (2, Holding)]));
        t.tick(&tick(108, 12, &[(1, Waiting), (2, Holding)]));
        t.tick(&tick(125, 20, &[(1, Idle)]));
        assert_eq!(t.start, Duration::from_millis(100));
        assert_eq!(t.buckets, 3);
        assert_eq!(t.lanes[0].counts[0][..3], [1, 2, 0]);
        assert_eq!(t.lanes[1].dominant(0), Some(Holding));
        assert_eq!(t.lanes[0].dominant(1), None);
        assert_eq!(t.lanes[0].dominant(2), Some(Idle));
        assert_eq!(t.handoffs, [2, 0, 8]);
        // The slice from 110 to 120 ms had no tick at all: the sampler skipped it.
        assert_eq!(t.ticks, [3, 0, 1]);
    }

    #[test]
    fn an_hour_stays_within_the_bucket_limit_and_keeps_every_tick() {
        let mut t = Timeline::default();
        // An hour at 250 Hz.
        for i in 0..900_000u64 {
            t.tick(&tick(i * 4, i, &[(1, ThreadState::Holding)]));
        }
        assert!(t.buckets <= MAX_BUCKETS, "{}", t.buckets);
        assert!(t.width >= Duration::from_secs(3600) / MAX_BUCKETS as u32);
        let total: u32 = t.lanes[0].counts.iter().map(|c| c[0]).sum();
        assert_eq!(total, 900_000);
        assert_eq!(t.handoffs.iter().sum::<u64>(), 899_999);
        assert_eq!(t.ticks.iter().sum::<u32>(), 900_000);
        assert!(t.ticks.iter().all(|&n| n > 0));
    }

    #[test]
    fn timed_stacks_thin_evenly_past_the_limit() {
        let mut t = Timeline::default();
        for i in 0..(3 * MAX_TIMED_STACKS as u64) {
            t.stack(
                Duration::from_millis(i),
                1,
                ThreadState::Holding,
                StackId(0),
            );
        }
        assert!(t.stacks.len() < MAX_TIMED_STACKS);
        assert!(t.stacks.len() > MAX_TIMED_STACKS / 4);
        assert!(t.stacks.windows(2).all(|w| w[0].at < w[1].at));
        // Spread over the whole run, not just its start.
        assert!(t.stacks.last().unwrap().at > Duration::from_millis(2 * MAX_TIMED_STACKS as u64));
    }
}
