//! `record`: launch the program, and pass on how it ended.

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::error::UserError;

/// Starts `command` with the terminal's stdin, stdout and stderr, untouched.
pub fn spawn(command: &[String]) -> Result<Child, UserError> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| UserError::Usage("record needs a command to run".into()))?;
    Command::new(program)
        .args(args)
        .spawn()
        .map_err(|e| UserError::CannotStart {
            command: command.join(" "),
            reason: e.to_string(),
        })
}

/// Ends a child gilscope was asked to stop (--duration): SIGTERM, then SIGKILL after `grace`.
pub fn terminate(child: &mut Child, grace: Duration) -> std::io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    // SAFETY: kill has no memory-safety preconditions; the pid is our own unreaped child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    wait_for(child, grace).map_or_else(
        || {
            child.kill()?;
            child.wait()
        },
        Ok,
    )
}

/// Waits up to `limit` for the child to exit.
pub fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
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
}
