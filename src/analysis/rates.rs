//! The sampling rates a run achieved, and whether they fell short of the ones asked
//! (docs/DESIGN.md, "Achieved rates"): what every report says when the sampler could not keep
//! up, so that no one reads 730 samples a second as the 10 000 they asked for.

use super::RunCounts;
use crate::model::TargetInfo;

/// A rate below this share of the one asked fell short: sleeping to a jittered timer costs
/// nothing over a run, so a sampler that keeps up lands within a percent or two of it.
pub const SHORT_BELOW: f64 = 0.9;

/// A run shorter than this is not judged: its first ticks read every thread and code object
/// once, which a short run does not amortise.
pub const MIN_JUDGED_S: f64 = 0.5;

/// Nor is a rate that the asked one would have given fewer sample intervals than this over
/// the run: one sample more or less would move it by more than a few percent.
pub const MIN_JUDGED_INTERVALS: f64 = 20.0;

/// The samples per second a run took.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Achieved {
    /// GIL-state samples per second: intervals between them over the time from the first to
    /// the last (`state_samples - 1` over `duration_s`; counting the first sample too would
    /// overstate a short run by one sample over its length).
    pub state_hz: f64,
    /// Stack samples per second. Stacks are taken at state ticks, so this is the state rate
    /// times the share of state samples that came with stacks: the same window, within one
    /// sample over the run, and defined for a run with one stack sample or none.
    pub stack_hz: f64,
}

/// What fell short: each rate's asked and achieved values, `None` where it was met.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shortfall {
    /// (asked, achieved) GIL-state samples per second.
    pub state: Option<(f64, f64)>,
    /// (asked, achieved) stack samples per second.
    pub stack: Option<(f64, f64)>,
    /// Why, as far as the counts tell.
    pub cause: ShortCause,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShortCause {
    /// The sampler's ticks came slower than asked: each took longer than the period (many
    /// threads, deep stacks), or it got no CPU in time.
    Slow,
    /// Most of the missing samples were reads that failed, each costing its sample.
    Failed,
}

impl RunCounts {
    /// The rates the run achieved; `None` for a run of fewer than two state samples, which
    /// has no length to divide by.
    pub fn achieved(&self) -> Option<Achieved> {
        if self.state_samples < 2 || self.duration_s <= 0.0 {
            return None;
        }
        let state_hz = (self.state_samples - 1) as f64 / self.duration_s;
        let stack_hz = state_hz * self.stack_samples as f64 / self.state_samples as f64;
        Some(Achieved { state_hz, stack_hz })
    }

    /// Whether the achieved rates fell short of those `target` asked for: either is below
    /// [`SHORT_BELOW`] of its asked rate, in a run long enough to judge it
    /// ([`MIN_JUDGED_S`], [`MIN_JUDGED_INTERVALS`]). `None` when both were met or the run
    /// cannot tell.
    pub fn shortfall(&self, target: &TargetInfo) -> Option<Shortfall> {
        let achieved = self.achieved()?;
        if self.duration_s < MIN_JUDGED_S {
            return None;
        }
        let short = |asked: f64, got: f64| {
            (asked > 0.0
                && asked * self.duration_s >= MIN_JUDGED_INTERVALS
                && got < SHORT_BELOW * asked)
                .then_some((asked, got))
        };
        let state = short(target.state_hz, achieved.state_hz);
        let stack = short(target.stack_hz, achieved.stack_hz);
        if state.is_none() && stack.is_none() {
            return None;
        }
        // State ticks set the pace (a failed state read costs its tick, stacks included);
        // stacks alone fall short only when their own reads fail.
        let (missing, failed) = match (state, stack) {
            (Some((asked, got)), _) => (asked - got, self.failed_state_samples),
            (None, Some((asked, got))) => (asked - got, self.failed_stack_samples),
            (None, None) => unreachable!("returned above"),
        };
        let cause = if 2.0 * failed as f64 >= missing * self.duration_s {
            ShortCause::Failed
        } else {
            ShortCause::Slow
        };
        Some(Shortfall {
            state,
            stack,
            cause,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(duration_s: f64, state_samples: u64, stack_samples: u64) -> RunCounts {
        RunCounts {
            duration_s,
            state_samples,
            stack_samples,
            ..RunCounts::default()
        }
    }

    fn asked(state_hz: f64, stack_hz: f64) -> TargetInfo {
        TargetInfo {
            state_hz,
            stack_hz,
            ..TargetInfo::default()
        }
    }

    #[test]
    fn rates_count_intervals_and_stacks_share_the_state_window() {
        // 501 ticks 4 ms apart over 2 s, one in five with stacks (the first included).
        let a = run(2.0, 501, 101).achieved().unwrap();
        assert!((a.state_hz - 250.0).abs() < 1e-9, "{a:?}");
        assert!((a.stack_hz - 50.4).abs() < 0.1, "{a:?}");
        assert_eq!(run(0.0, 1, 1).achieved(), None);
        assert_eq!(run(2.0, 0, 0).achieved(), None);
    }

    #[test]
    fn a_met_rate_is_not_short_and_a_slow_sampler_is() {
        assert_eq!(run(2.0, 501, 101).shortfall(&asked(250.0, 50.0)), None);
        // 10 000 Hz asked of both, 731 taken.
        let s = run(2.0, 1463, 1463)
            .shortfall(&asked(10_000.0, 10_000.0))
            .unwrap();
        assert_eq!(s.state.unwrap().0, 10_000.0);
        assert!((s.state.unwrap().1 - 731.0).abs() < 1.0, "{s:?}");
        assert!((s.stack.unwrap().1 - 731.0).abs() < 1.0, "{s:?}");
        assert_eq!(s.cause, ShortCause::Slow);
        // 89% is short, 91% is not.
        assert!(run(10.0, 891, 0).shortfall(&asked(100.0, 0.0)).is_some());
        assert!(run(10.0, 911, 0).shortfall(&asked(100.0, 0.0)).is_none());
    }

    #[test]
    fn short_runs_and_few_asked_samples_are_not_judged() {
        // A tenth of a second, even at a tenth of the rate asked.
        assert_eq!(run(0.1, 10, 10).shortfall(&asked(1000.0, 1000.0)), None);
        // One stack a second over 5 s: one sample more or less is 20%.
        assert_eq!(run(5.0, 1251, 6).shortfall(&asked(250.0, 1.0)), None);
        // A recording that kept no rates.
        assert_eq!(run(2.0, 10, 10).shortfall(&asked(0.0, 0.0)), None);
    }

    #[test]
    fn stacks_short_of_their_rate_by_failed_reads_say_so() {
        let mut r = run(2.0, 501, 41);
        r.failed_stack_samples = 60;
        let s = r.shortfall(&asked(250.0, 50.0)).unwrap();
        assert_eq!(s.state, None);
        assert!(s.stack.is_some());
        assert_eq!(s.cause, ShortCause::Failed);
    }
}
