//! `record`: launch the program, stop it when gilscope ends the run, and pass on how it ended.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::UserError;
use crate::model::ProgramExit;

/// How long a program gets between SIGTERM and SIGKILL when gilscope stops it.
pub const TERMINATE_GRACE: Duration = Duration::from_secs(2);

/// A program gilscope launched. If it is dropped while still running (gilscope failed
/// before the end of the run), it is stopped: gilscope leaves no orphan behind. If gilscope
/// itself is killed (SIGKILL, or a crash), the kernel sends the program SIGKILL
/// (`PR_SET_PDEATHSIG`), so it does not run on unnoticed with no one to report it.
pub struct Program {
    child: Child,
    status: Option<ExitStatus>,
    started: Instant,
    /// How long after its start it was seen to have ended.
    lived: Option<Duration>,
}

impl Program {
    /// Starts `command` with the terminal's stdin, stdout and stderr, untouched; with
    /// `stdout_to_stderr` (the report goes to standard output), its stdout is gilscope's
    /// stderr, so that standard output holds the report alone.
    ///
    /// Call it from the main thread: the kernel's parent-death signal follows the thread that
    /// spawned the program, not the process.
    pub fn spawn(command: &[OsString], stdout_to_stderr: bool) -> Result<Program, UserError> {
        let shown = || {
            command
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let cannot = |e: std::io::Error| UserError::CannotStart {
            command: shown(),
            reason: e.to_string(),
        };
        let (program, args) = command
            .split_first()
            .ok_or_else(|| UserError::Usage("record needs a command to run".into()))?;
        let mut cmd = Command::new(program);
        cmd.args(args);
        if stdout_to_stderr {
            let err = std::io::stderr()
                .as_fd()
                .try_clone_to_owned()
                .map_err(cannot)?;
            cmd.stdout(Stdio::from(err));
        }
        // SAFETY: between fork and exec the closure calls only async-signal-safe functions
        // (prctl, getppid) and allocates nothing.
        let parent = std::process::id() as libc::pid_t;
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // gilscope died before prctl took effect: the signal will never come.
                if libc::getppid() != parent {
                    libc::_exit(137);
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(cannot)?;
        Ok(Program {
            child,
            status: None,
            started: Instant::now(),
            lived: None,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// How it ended, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            let status = self.child.try_wait().ok().flatten();
            self.ended(status);
        }
        self.status
    }

    fn ended(&mut self, status: Option<ExitStatus>) {
        if status.is_some() && self.status.is_none() {
            self.status = status;
            self.lived = Some(self.started.elapsed());
        }
    }

    /// How it ended, for the reports, once it has; `stopped` when gilscope ended the run
    /// (its status is then not its own failure).
    pub fn exit(&mut self, stopped: bool) -> Option<ProgramExit> {
        use std::os::unix::process::ExitStatusExt;
        let status = self.exited()?;
        Some(ProgramExit {
            code: status.code(),
            signal: status.signal(),
            after_s: self.lived.unwrap_or_default().as_secs_f64(),
            stopped,
        })
    }

    /// Waits up to `limit` for it to end.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends it `signal`, unless it has ended (its pid may then belong to another process).
    pub fn signal(&mut self, signal: libc::c_int) {
        if self.exited().is_none() {
            // SAFETY: kill has no memory-safety preconditions; the pid is our own unreaped
            // child.
            unsafe { libc::kill(self.pid(), signal) };
        }
    }

    /// Ends it: SIGTERM, then SIGKILL after [`TERMINATE_GRACE`].
    pub fn stop(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(status) = self.exited() {
            return Ok(status);
        }
        self.signal(libc::SIGTERM);
        if let Some(status) = self.wait_for(TERMINATE_GRACE) {
            return Ok(status);
        }
        self.kill()
    }

    /// Ends it now: SIGKILL.
    pub fn kill(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(status) = self.exited() {
            return Ok(status);
        }
        self.child.kill()?;
        let status = self.child.wait()?;
        self.ended(Some(status));
        Ok(status)
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.stop();
        }
    }
}

/// Ends a process gilscope followed but did not launch (the Python a wrapper started), when
/// gilscope stopped the wrapper: a shell does not pass SIGTERM on to its child, which would
/// otherwise run on with init as its parent. SIGTERM, then SIGKILL after
/// [`TERMINATE_GRACE`]. Only `started` (its start time in clock ticks since boot, from
/// `/proc/<pid>/stat`) is signalled, so a reused pid is left alone.
pub fn stop_followed(pid: i32, started: u64) {
    let same = || crate::sampler::procfs::start_time(pid) == Some(started);
    if !same() {
        return;
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + TERMINATE_GRACE;
    while Instant::now() < deadline {
        if !same() || crate::sampler::procfs::is_zombie(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if same() {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// The exit code that passes a failed command's status on: its own code, or 128 + the signal
/// that killed it, as shells do. `None` when it succeeded, or when gilscope stopped it.
pub fn failure_code(exit: &ProgramExit) -> Option<u8> {
    if !exit.failed() {
        return None;
    }
    Some(match (exit.code, exit.signal) {
        (Some(code), _) => code.clamp(1, 255) as u8,
        (None, Some(sig)) => (128 + sig).min(255) as u8,
        _ => 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_command_is_never_a_pass() {
        let exit = |code, signal, stopped| ProgramExit {
            code,
            signal,
            after_s: 1.0,
            stopped,
        };
        assert_eq!(failure_code(&exit(Some(0), None, false)), None);
        assert_eq!(failure_code(&exit(Some(3), None, false)), Some(3));
        // Killed by SIGKILL (9).
        assert_eq!(failure_code(&exit(None, Some(9), false)), Some(137));
        // Stopped by gilscope at the end of --duration: not the program's failure.
        assert_eq!(failure_code(&exit(None, Some(15), true)), None);
    }

    #[test]
    fn its_exit_says_its_status_and_how_long_it_lived() {
        let mut program =
            Program::spawn(&["sh".into(), "-c".into(), "exit 4".into()], false).unwrap();
        assert!(program.wait_for(Duration::from_secs(10)).is_some());
        let exit = program.exit(false).unwrap();
        assert_eq!((exit.code, exit.signal), (Some(4), None));
        assert!(exit.failed());
        assert!(exit.after_s > 0.0 && exit.after_s < 10.0, "{exit:?}");
        assert_eq!(exit.status_text(), "exited with status 4");
        let mut killed = Program::spawn(&["sleep".into(), "60".into()], false).unwrap();
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child.
        unsafe { libc::kill(killed.pid(), libc::SIGKILL) };
        assert!(killed.wait_for(Duration::from_secs(10)).is_some());
        let exit = killed.exit(false).unwrap();
        assert_eq!(exit.status_text(), "was killed by SIGKILL");
        assert!(!killed.exit(true).unwrap().failed(), "stopped by gilscope");
    }

    #[test]
    fn a_dropped_program_is_stopped() {
        let program = Program::spawn(&["sleep".into(), "60".into()], false).unwrap();
        let pid = program.pid();
        drop(program);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        assert!(stat.is_err(), "sleep still exists: {stat:?}");
    }
}
