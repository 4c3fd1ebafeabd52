//! Checks before attaching to a process, and the retries while a just-launched interpreter
//! starts up. Turns every failure into a [`UserError`] with advice.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use crate::error::UserError;
use crate::sampler::{is_alive, OpenError, Target};

/// Fails early, with advice, when `pid` does not exist or may not be read.
pub fn check(pid: i32) -> Result<(), UserError> {
    if pid <= 0 || !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return Err(UserError::NoSuchProcess(pid));
    }
    // The syscall file needs the same ptrace access as reading the process's memory.
    let path = format!("/proc/{pid}/syscall");
    match std::fs::read(&path) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(e.kind(), ErrorKind::PermissionDenied)
                || e.raw_os_error() == Some(libc::EPERM) =>
        {
            Err(permission_denied(pid))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Err(UserError::NoSuchProcess(pid)),
        // Other errors (a zombie, an odd kernel) surface when the target is opened.
        Err(_) => Ok(()),
    }
}

fn permission_denied(pid: i32) -> UserError {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(format!("/proc/{pid}"))
        .map(|m| format!(" (owned by uid {})", m.uid()))
        .unwrap_or_default();
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "not set: no Yama on this kernel".into());
    UserError::PermissionDenied { pid, owner, scope }
}

/// Opens `pid` as a Python target, retrying until `patience` has passed while the interpreter
/// is still starting (a just-launched program has not loaded libpython yet).
pub fn open(pid: i32, patience: Duration) -> Result<Target, UserError> {
    let deadline = Instant::now() + patience;
    loop {
        let err = match Target::open(pid) {
            Ok(target) => return Ok(target),
            Err(OpenError::Unsupported(version)) => {
                return Err(UserError::UnsupportedVersion { pid, version })
            }
            Err(e) => e,
        };
        if !is_alive(pid) {
            return Err(UserError::ExitedBeforeAttach { pid });
        }
        if Instant::now() >= deadline {
            check(pid)?;
            let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "unknown executable".into());
            return Err(UserError::NotPython {
                pid,
                exe,
                detail: err.to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
