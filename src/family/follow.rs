//! The target through its life: its sampler, and every `exec` that replaces its program
//! (`os.execv` into another Python). The sampler notices the exec and ends; the process is
//! opened again and sampled on in the same timeline, into the same profile, with an
//! [`Exec`] sample that says what ran before and after. Into a program that is not Python,
//! sampling stops with one sentence saying so and when.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::error::UserError;
use crate::model::{Exec, Sample};
use crate::sampler::{is_alive, End, OpenError, Rates, Sampler, Target};

use super::tree::{cmdline, command_text};

/// How long the new program may stay unrecognisable (its libpython not mapped yet) before
/// it is taken for a program that is not Python.
const NOT_PYTHON_AFTER: Duration = Duration::from_secs(2);
/// How long a recognised interpreter may take to start its first thread.
const READY_PATIENCE: Duration = Duration::from_secs(10);

/// How the target's sampling ended for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gone {
    /// The run ended it (the program ended, Ctrl-C, `--duration`); it may still run.
    Stopped,
    /// The process exited.
    Exited,
    /// It exec'd into a program that gilscope cannot sample; the process runs on.
    LeftPython,
}

/// The target's sampling, across its execs.
pub struct Followed {
    pub pid: i32,
    rates: Rates,
    quiet: bool,
    sampler: Option<Sampler>,
    zero: Instant,
    pub monotonic_zero_ns: u64,
    /// What it runs now.
    command: Vec<String>,
    late_ticks: u64,
    gone: Option<Gone>,
}

impl Followed {
    /// Starts sampling `target`, which runs `command`; `quiet` keeps the exec notes off
    /// the terminal.
    pub fn start(
        target: Target,
        rates: Rates,
        command: Vec<String>,
        quiet: bool,
    ) -> Result<Followed> {
        let pid = target.pid;
        let sampler = Sampler::start(target, rates)?;
        Ok(Followed {
            pid,
            rates,
            quiet,
            zero: sampler.zero,
            monotonic_zero_ns: sampler.monotonic_zero_ns,
            sampler: Some(sampler),
            command,
            late_ticks: 0,
            gone: None,
        })
    }

    /// Waits up to `wait` for samples and adds them to `into`, following an exec when the
    /// sampler saw one. Returns how sampling ended once it has for good.
    pub fn poll(&mut self, wait: Duration, into: &mut Vec<Sample>) -> Result<Option<Gone>> {
        use std::sync::mpsc::RecvTimeoutError;
        let Some(sampler) = &self.sampler else {
            std::thread::sleep(wait);
            return Ok(self.gone);
        };
        match sampler.samples.recv_timeout(wait) {
            Ok(batch) => into.extend(batch),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let sampler = self.sampler.take().expect("checked above");
                let (end, counters, rest) = sampler.finish()?;
                into.extend(rest);
                self.late_ticks += counters.late_ticks;
                match end {
                    End::Exec => self.after_exec(into)?,
                    End::TargetExited => self.gone = Some(Gone::Exited),
                    End::Stopped => self.gone = Some(Gone::Stopped),
                }
            }
        }
        Ok(self.gone)
    }

    /// Stops sampling; adds the samples not taken yet to `into`. Returns how it ended and
    /// the late ticks of every sampler of the run.
    pub fn finish(mut self, into: &mut Vec<Sample>) -> Result<(Gone, u64)> {
        if let Some(sampler) = self.sampler.take() {
            let (end, counters, rest) = sampler.finish()?;
            into.extend(rest);
            self.late_ticks += counters.late_ticks;
            self.gone = Some(match end {
                End::TargetExited => Gone::Exited,
                // An exec seen as the run ended: nothing more is sampled either way.
                End::Stopped | End::Exec => Gone::Stopped,
            });
        }
        Ok((self.gone.unwrap_or(Gone::Stopped), self.late_ticks))
    }

    /// The process runs another program: open it again and sample on, or say why not.
    fn after_exec(&mut self, into: &mut Vec<Sample>) -> Result<()> {
        let pid = self.pid;
        let at = self.zero.elapsed();
        let reopened = reopen(pid);
        let after = cmdline(pid);
        let mut exec = Exec {
            at,
            before: std::mem::replace(&mut self.command, after.clone()),
            after,
            python: None,
        };
        let shown = |words: &[String]| command_text(words);
        match reopened {
            Reopened::Python(target) => {
                exec.python = Some(target.python.version.clone());
                if !self.quiet {
                    crate::sayln!(
                        "gilscope: pid {pid} exec'd at {:.1} s: `{}` → `{}`; sampling it on \
                         (CPython {})",
                        at.as_secs_f64(),
                        shown(&exec.before),
                        shown(&exec.after),
                        target.python.version
                    );
                }
                into.push(Sample::Exec(exec));
                self.sampler = Some(Sampler::start_at(
                    *target,
                    self.rates,
                    self.zero,
                    self.monotonic_zero_ns,
                )?);
            }
            Reopened::Exited => self.gone = Some(Gone::Exited),
            Reopened::Not(why) => {
                // Said even with -q: it is why the profile ends here.
                crate::sayln!(
                    "gilscope: pid {pid} exec'd at {:.1} s from `{}` into `{}`, {why}: \
                     sampling stopped there, and the report covers the {:.1} s before",
                    at.as_secs_f64(),
                    shown(&exec.before),
                    shown(&exec.after),
                    at.as_secs_f64(),
                );
                into.push(Sample::Exec(exec));
                self.gone = Some(Gone::LeftPython);
            }
        }
        Ok(())
    }
}

/// What the process turned out to run after its exec.
enum Reopened {
    Python(Box<Target>),
    /// Why it cannot be sampled: "which is not Python", "which runs CPython 3.7, …".
    Not(String),
    Exited,
}

/// Opens the process again after its exec, waiting while a new interpreter starts.
fn reopen(pid: i32) -> Reopened {
    let started = Instant::now();
    loop {
        let waited = started.elapsed();
        match Target::open(pid) {
            Ok(target) => return Reopened::Python(Box::new(target)),
            Err(OpenError::Unsupported(version)) => {
                let e = UserError::UnsupportedVersion { pid, version };
                return Reopened::Not(format!("which gilscope cannot read ({e})"));
            }
            Err(OpenError::NotPython(_)) if waited >= NOT_PYTHON_AFTER => {
                return Reopened::Not("which is not Python".into())
            }
            Err(OpenError::NotReady(_)) if waited >= READY_PATIENCE => {
                return Reopened::Not(format!(
                    "whose interpreter started no thread within {} s",
                    READY_PATIENCE.as_secs()
                ))
            }
            Err(_) => {}
        }
        if !is_alive(pid) {
            return Reopened::Exited;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
