//! CPU supply: the first and last readings of the process's CPU time, the machine's and the
//! cgroup's quota, and what they say of the run (docs/DESIGN.md, "Metrics").

use std::time::Duration;

use crate::analysis::CpuSupply;
use crate::model::{CpuQuota, MachineCpu};

#[derive(Debug, Default)]
pub(super) struct CpuCounts {
    first_process: Option<(Duration, f64)>,
    last_process: Option<(Duration, f64)>,
    first_machine: Option<MachineCpu>,
    last_machine: Option<MachineCpu>,
    first_quota: Option<CpuQuota>,
    last_quota: Option<CpuQuota>,
}

impl CpuCounts {
    /// A reading at `at`: the process's CPU seconds, the machine's, the quota's.
    pub(super) fn read(
        &mut self,
        at: Duration,
        process_s: Option<f64>,
        machine: Option<MachineCpu>,
        quota: Option<CpuQuota>,
    ) {
        if let Some(m) = machine {
            self.first_machine.get_or_insert(m);
            self.last_machine = Some(m);
        }
        if let Some(q) = quota {
            self.first_quota.get_or_insert(q);
            self.last_quota = Some(q);
        }
        if let Some(cpu) = process_s {
            self.first_process.get_or_insert((at, cpu));
            self.last_process = Some((at, cpu));
        }
    }

    /// CPU seconds of the whole process per wall second between its first and last reading.
    pub(super) fn cores_used(&self) -> Option<f64> {
        match (self.first_process, self.last_process) {
            (Some((t0, c0)), Some((t1, c1))) if t1 > t0 => {
                Some((c1 - c0).max(0.0) / (t1 - t0).as_secs_f64())
            }
            _ => None,
        }
    }

    /// What the machine and the quota gave the process.
    pub(super) fn supply(&self, cores_used: Option<f64>, cpu_count: usize) -> Option<CpuSupply> {
        CpuSupply::between(
            self.first_machine.zip(self.last_machine),
            self.first_quota.zip(self.last_quota),
            cores_used,
            cpu_count,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::tick;
    use crate::analysis::Accumulator;
    use crate::model::{Sample, ThreadState::*};
    use std::time::Duration;

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
