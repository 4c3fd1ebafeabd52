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

use super::set::{ProcessSet, Received, TARGET};
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

/// The target's sampling, across its execs: its sampler is the [`ProcessSet`]'s
/// [`TARGET`].
pub struct Followed {
    pub pid: i32,
    rates: Rates,
    quiet: bool,
    zero: Instant,
    pub monotonic_zero_ns: u64,
    /// What it runs now.
    command: Vec<String>,
    gone: Option<Gone>,
}

impl Followed {
    /// Starts sampling `target`, which runs `command`; `quiet` keeps the exec notes off
    /// the terminal. Returns the sampler, for the process set.
    pub fn start(
        target: Target,
        rates: Rates,
        command: Vec<String>,
        quiet: bool,
    ) -> Result<(Followed, Sampler)> {
        let pid = target.pid;
        let sampler = Sampler::start(target, rates)?;
        let followed = Followed {
            pid,
            rates,
            quiet,
            zero: sampler.zero,
            monotonic_zero_ns: sampler.monotonic_zero_ns,
            command,
            gone: None,
        };
        Ok((followed, sampler))
    }

    /// Waits up to `wait` for the target's samples, following an exec when its sampler saw
    /// one. Returns how sampling ended once it has for good.
    pub fn poll(&mut self, set: &mut ProcessSet, wait: Duration) -> Result<Option<Gone>> {
        if self.gone.is_some() {
            std::thread::sleep(wait);
            return Ok(self.gone);
        }
        if set.receive(TARGET, wait) == Received::Ended {
            match set.stop(TARGET)? {
                Some(End::Exec) => self.after_exec(set)?,
                Some(End::TargetExited) | None => self.gone = Some(Gone::Exited),
                Some(End::Stopped) => self.gone = Some(Gone::Stopped),
            }
        }
        Ok(self.gone)
    }

    /// Stops sampling the target; returns how it ended.
    pub fn finish(mut self, set: &mut ProcessSet) -> Result<Gone> {
        if let Some(end) = set.stop(TARGET)? {
            self.gone = Some(match end {
                End::TargetExited => Gone::Exited,
                // An exec seen as the run ended: nothing more is sampled either way.
                End::Stopped | End::Exec => Gone::Stopped,
            });
        }
        Ok(self.gone.unwrap_or(Gone::Stopped))
    }

    /// The process runs another program: open it again and sample on, or say why not.
    fn after_exec(&mut self, set: &mut ProcessSet) -> Result<()> {
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
                set.push(TARGET, Sample::Exec(exec));
                let sampler =
                    Sampler::start_at(*target, self.rates, self.zero, self.monotonic_zero_ns)?;
                set.resume(TARGET, sampler);
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
                set.push(TARGET, Sample::Exec(exec));
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
