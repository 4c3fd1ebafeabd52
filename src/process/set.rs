//! The processes of one run, live or replayed from a recording: each with where its samples
//! come from (its sampler, or the recording being read) and its accumulator. Every sample of
//! every process goes through [`ProcessSet::push`] once: into the recording when one is kept,
//! onto the progress line when it is the target's, and into its process's accumulator.

use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
use std::time::Duration;

use anyhow::Result;

use crate::analysis::{Accumulator, Profile, Subprocess};
use crate::model::{ProgramExit, Sample, TargetInfo};
use crate::recording::{Reader, Record, Tape};
use crate::run::progress::Progress;
use crate::sampler::{End, Sampler};

/// A process's place in the run: its index in the recording too. The target is [`TARGET`].
pub type ProcessId = u32;
/// The target: the first process of every run.
pub const TARGET: ProcessId = 0;

/// The processes of one run.
pub struct ProcessSet {
    members: Vec<Member>,
    tape: Tape,
    progress: Option<Progress>,
    /// The command gilscope launched, when it did and it is not the target's own (a wrapper
    /// that started the target): the program whose exit the target's end carries.
    launched: Option<Vec<String>>,
}

struct Member {
    info: TargetInfo,
    cpu_count: usize,
    acc: Accumulator,
    /// Its sampler while one runs; a replayed process has none.
    sampler: Option<Sampler>,
    late_ticks: u64,
    exit: Option<ProgramExit>,
    /// Its end was written to the recording.
    ended: bool,
}

/// What [`ProcessSet::receive`] found of a sampler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// It runs on.
    Running,
    /// It ended on its own (its process exited or exec'd): stop it with [`ProcessSet::stop`].
    Ended,
}

/// Every process's analysis at the end of a run.
pub struct Profiles {
    pub target: TargetInfo,
    pub profile: Profile,
    /// The other processes that sampled anything, in order of pid.
    pub subprocesses: Vec<Subprocess>,
}

impl ProcessSet {
    /// A run that keeps its samples on `tape` and shows the target's on `progress`.
    pub fn new(tape: Tape, progress: Option<Progress>) -> ProcessSet {
        ProcessSet {
            members: Vec::new(),
            tape,
            progress,
            launched: None,
        }
    }

    /// The target's program exit, given at its [`ProcessSet::end`], is that of `command`,
    /// which gilscope launched (a wrapper around the target).
    pub fn launched(&mut self, command: Vec<String>) {
        self.launched = Some(command);
    }

    /// Replays a recording: every process it declares, each sample into its process.
    pub fn replay(reader: &mut Reader<impl std::io::BufRead>) -> Result<ProcessSet> {
        let mut set = ProcessSet::new(Tape::new(None), None);
        while let Some(record) = reader.record()? {
            match record {
                Record::Process {
                    target, cpu_count, ..
                } => _ = set.add(target, cpu_count, None),
                Record::Sample { p, sample } => set.push(p, sample),
                Record::End {
                    p,
                    late_ticks,
                    exit,
                } => {
                    set.members[p as usize].late_ticks = late_ticks;
                    set.end(p, exit);
                }
            }
        }
        Ok(set)
    }

    /// Adds a process (the first one added is the target), sampled by `sampler` if it is
    /// live; `cpu_count` is the machine's.
    pub fn add(
        &mut self,
        info: TargetInfo,
        cpu_count: usize,
        sampler: Option<Sampler>,
    ) -> ProcessId {
        let p = self.members.len() as ProcessId;
        self.tape.process(p, &info, cpu_count);
        self.members.push(Member {
            acc: Accumulator::with_cwd(info.cwd.clone()),
            info,
            cpu_count,
            sampler,
            late_ticks: 0,
            exit: None,
            ended: false,
        });
        p
    }

    /// One sample of process `p`.
    pub fn push(&mut self, p: ProcessId, sample: Sample) {
        self.tape.sample(p, &sample);
        if p == TARGET {
            if let Some(progress) = self.progress.as_mut() {
                progress.sample(&sample);
            }
        }
        self.members[p as usize].acc.push(sample);
    }

    /// Takes every sample `p`'s sampler has sent, waiting up to `wait` for the first.
    pub fn receive(&mut self, p: ProcessId, wait: Duration) -> Received {
        let Some(sampler) = self.members[p as usize].sampler.as_ref() else {
            return Received::Ended;
        };
        let first = match sampler.samples.recv_timeout(wait) {
            Ok(batch) => batch,
            Err(RecvTimeoutError::Timeout) => return Received::Running,
            Err(RecvTimeoutError::Disconnected) => return Received::Ended,
        };
        let mut batches = vec![first];
        let received = loop {
            match sampler.samples.try_recv() {
                Ok(batch) => batches.push(batch),
                Err(TryRecvError::Empty) => break Received::Running,
                Err(TryRecvError::Disconnected) => break Received::Ended,
            }
        };
        for sample in batches.into_iter().flatten() {
            self.push(p, sample);
        }
        received
    }

    /// Stops `p`'s sampler, takes the samples it had not sent, and returns how it ended
    /// (`None` when it had none running).
    pub fn stop(&mut self, p: ProcessId) -> Result<Option<End>> {
        let Some(sampler) = self.members[p as usize].sampler.take() else {
            return Ok(None);
        };
        let (end, counters, rest) = sampler.finish()?;
        for sample in rest {
            self.push(p, sample);
        }
        self.members[p as usize].late_ticks += counters.late_ticks;
        Ok(Some(end))
    }

    /// Samples `p` on with `sampler` (its process exec'd into another Python).
    pub fn resume(&mut self, p: ProcessId, sampler: Sampler) {
        self.members[p as usize].sampler = Some(sampler);
    }

    /// The processes whose sampler runs.
    pub fn live(&self) -> Vec<ProcessId> {
        (0..self.members.len() as ProcessId)
            .filter(|&p| self.members[p as usize].sampler.is_some())
            .collect()
    }

    /// Shows the progress line, at most once a second.
    pub fn show_progress(&mut self) {
        if let Some(progress) = self.progress.as_mut() {
            progress.tick();
        }
    }

    /// Process `p` is done: how its program ended when gilscope launched it, written to the
    /// recording with the late ticks it counted.
    pub fn end(&mut self, p: ProcessId, exit: Option<ProgramExit>) {
        let member = &mut self.members[p as usize];
        member.exit = exit;
        member.ended = true;
        self.tape.end_with(p, member.late_ticks, exit);
    }

    /// Takes the progress line off the terminal for good, before the run's last messages.
    pub fn hide_progress(&mut self) {
        if let Some(mut progress) = self.progress.take() {
            progress.clear();
        }
    }

    /// Stops every sampler still running and takes its last samples. A sampler that failed
    /// costs its last samples, said in one line, not its process.
    pub fn stop_sampling(&mut self) {
        for p in self.live() {
            if let Err(e) = self.stop(p) {
                crate::sayln!(
                    "gilscope: warning: sampling pid {} failed at the end ({e:#}); its report \
                     holds the samples taken before",
                    self.members[p as usize].info.pid
                );
            }
        }
    }

    /// Stops every sampler still running, ends the recording, and analyses each process.
    /// Returns the profiles and the recording's path if it was written whole.
    pub fn finish(mut self) -> (Profiles, Option<std::path::PathBuf>) {
        self.hide_progress();
        self.stop_sampling();
        for p in 0..self.members.len() as ProcessId {
            if !self.members[p as usize].ended {
                self.end(p, None);
            }
        }
        let recorded = self.tape.finish();
        let mut launched = self.launched;
        let mut profiles = self.members.into_iter().map(|m| {
            let mut profile = m.acc.finish(m.late_ticks, m.cpu_count);
            let command = launched.take().unwrap_or_else(|| m.info.command.clone());
            if let Some(exit) = m.exit {
                crate::analysis::program_ended(&mut profile, &command, exit);
            }
            (m.info, profile)
        });
        let (target, profile) = profiles.next().expect("a run has a target");
        let mut subprocesses: Vec<Subprocess> = profiles
            .filter(|(_, profile)| profile.run.state_samples > 0)
            .map(|(info, profile)| Subprocess { info, profile })
            .collect();
        subprocesses.sort_by_key(|s| s.info.pid);
        let profiles = Profiles {
            target,
            profile,
            subprocesses,
        };
        (profiles, recorded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GilReading, StateTick};

    fn info(pid: i32, command: &[&str]) -> TargetInfo {
        TargetInfo {
            pid,
            python: "3.12.1".into(),
            command: command.iter().map(|w| w.to_string()).collect(),
            state_hz: 100.0,
            stack_hz: 100.0,
            monotonic_zero_ns: 0,
            cwd: None,
        }
    }

    fn tick(ms: u64) -> Sample {
        Sample::State(StateTick {
            at: Duration::from_millis(ms),
            gils: vec![GilReading {
                interpreter: 0,
                locked: false,
                holder: None,
                switch_number: 0,
                interval_us: 5000,
                enabled: None,
            }],
            threads: Vec::new(),
        })
    }

    #[test]
    fn each_process_gets_its_own_samples_and_the_target_its_launched_exit() {
        let mut set = ProcessSet::new(Tape::new(None), None);
        assert_eq!(set.add(info(50, &["python3", "app.py"]), 2, None), TARGET);
        let late = set.add(info(90, &["python3", "-c", "w"]), 2, None);
        let early = set.add(info(60, &["python3", "-c", "w"]), 2, None);
        set.add(info(70, &["python3", "-c", "w"]), 2, None);
        set.launched(vec!["sh".into(), "run.sh".into()]);
        for ms in 0..3 {
            set.push(TARGET, tick(ms));
        }
        set.push(late, tick(0));
        set.push(early, tick(0));
        set.push(early, tick(1));
        assert!(set.live().is_empty(), "no sampler runs in a replay");
        let exit = ProgramExit {
            code: Some(2),
            signal: None,
            after_s: 0.1,
            stopped: false,
        };
        set.end(TARGET, Some(exit));
        let (profiles, recorded) = set.finish();
        assert_eq!(recorded, None);
        assert_eq!(profiles.target.pid, 50);
        assert_eq!(profiles.profile.run.state_samples, 3);
        // The process that sampled nothing is left out; the others come in order of pid.
        let subs: Vec<(i32, u64)> = profiles
            .subprocesses
            .iter()
            .map(|s| (s.info.pid, s.profile.run.state_samples))
            .collect();
        assert_eq!(subs, [(60, 2), (90, 1)]);
        // The exit is the launched wrapper's, and the verdict names it.
        assert_eq!(profiles.profile.exit, Some(exit));
        assert!(
            profiles
                .profile
                .verdict
                .summary
                .starts_with("sh exited with status 2"),
            "{}",
            profiles.profile.verdict.summary
        );
    }
}
