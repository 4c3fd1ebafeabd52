//! `record`: launch the program, stop it when gilscope ends the run, and pass on how it ended.

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::error::UserError;

/// How long a program gets between SIGTERM and SIGKILL when gilscope stops it.
pub const TERMINATE_GRACE: Duration = Duration::from_secs(2);

/// A program gilscope launched. If it is dropped while still running (gilscope failed
/// before the end of the run), it is stopped: gilscope leaves no orphan behind.
pub struct Program {
    child: Child,
    status: Option<ExitStatus>,
}

impl Program {
    /// Starts `command` with the terminal's stdin, stdout and stderr, untouched.
    pub fn spawn(command: &[String]) -> Result<Program, UserError> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| UserError::Usage("record needs a command to run".into()))?;
        let child =
            Command::new(program)
                .args(args)
                .spawn()
                .map_err(|e| UserError::CannotStart {
                    command: command.join(" "),
                    reason: e.to_string(),
                })?;
        Ok(Program {
            child,
            status: None,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// How it ended, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
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

    /// Ends it: SIGTERM, then SIGKILL after [`TERMINATE_GRACE`].
    pub fn stop(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(status) = self.exited() {
            return Ok(status);
        }
        // SAFETY: kill has no memory-safety preconditions; the pid is our own unreaped child.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        if let Some(status) = self.wait_for(TERMINATE_GRACE) {
            return Ok(status);
        }
        self.child.kill()?;
        let status = self.child.wait()?;
        self.status = Some(status);
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

/// The exit code that passes a failed command's status on: its own code, or 128 + the signal
/// that killed it, as shells do. `None` when it succeeded.
pub fn failure_code(status: ExitStatus) -> Option<u8> {
    use std::os::unix::process::ExitStatusExt;
    if status.success() {
        return None;
    }
    match (status.code(), status.signal()) {
        (Some(code), _) => Some(code.clamp(1, 255) as u8),
        (None, Some(sig)) => Some((128 + sig).min(255) as u8),
        _ => Some(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn a_failing_command_is_never_a_pass() {
        assert_eq!(failure_code(ExitStatus::from_raw(0)), None);
        assert_eq!(failure_code(ExitStatus::from_raw(3 << 8)), Some(3));
        // Killed by SIGKILL (9).
        assert_eq!(failure_code(ExitStatus::from_raw(9)), Some(137));
    }

    #[test]
    fn a_dropped_program_is_stopped() {
        let program = Program::spawn(&["sleep".into(), "60".into()]).unwrap();
        let pid = program.pid();
        drop(program);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        assert!(stat.is_err(), "sleep still exists: {stat:?}");
    }
}
