//! Checks before attaching to a process, and the retries while a just-launched interpreter
//! starts up. Turns every failure into a [`UserError`] with advice.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use crate::error::UserError;
use crate::sampler::{is_alive, OpenError, Target};

/// Fails early, with advice, when `pid` does not exist, is a kernel thread, or may not be
/// read.
pub fn check(pid: i32) -> Result<(), UserError> {
    if pid <= 0 || !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return Err(UserError::NoSuchProcess(pid));
    }
    if is_kernel_thread(pid) {
        return Err(UserError::KernelThread {
            pid,
            name: comm(pid).unwrap_or_else(|| "no name".into()),
        });
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

/// PF_KTHREAD in the flags of /proc/PID/stat: the kernel's own threads (`kthreadd`, workers)
/// have no memory gilscope could read.
fn is_kernel_thread(pid: i32) -> bool {
    const PF_KTHREAD: u64 = 0x0020_0000;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The name in parentheses may hold spaces and parentheses: fields follow the last ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return false;
    };
    // After the name: state, ppid, pgrp, session, tty_nr, tpgid, flags.
    rest.split_whitespace()
        .nth(6)
        .and_then(|f| f.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_KTHREAD != 0)
}

/// The process's name (`comm`), with anything unprintable dropped.
fn comm(pid: i32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/comm")).ok()?;
    let name: String = String::from_utf8_lossy(&raw)
        .trim_end()
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    (!name.is_empty()).then_some(name)
}

/// What a process is, for messages: its executable, else its name.
pub fn describe(pid: i32) -> String {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let exe = exe.map(|p| {
        p.to_string_lossy()
            .chars()
            .filter(|c| !c.is_control())
            .collect::<String>()
    });
    exe.or_else(|| comm(pid))
        .unwrap_or_else(|| "unknown executable".into())
}

fn permission_denied(pid: i32) -> UserError {
    use std::os::unix::fs::MetadataExt;
    let owner_uid = std::fs::metadata(format!("/proc/{pid}"))
        .map(|m| m.uid())
        .ok();
    let owner = owner_uid
        .map(|uid| format!(" (owned by uid {uid})"))
        .unwrap_or_default();
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let advice = advice(euid, owner_uid, scope, has_ptrace_capability());
    UserError::PermissionDenied { pid, owner, advice }
}

/// CAP_SYS_PTRACE among gilscope's effective capabilities (/proc/self/status `CapEff`).
fn has_ptrace_capability() -> bool {
    const CAP_SYS_PTRACE: u32 = 19;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
            u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_PTRACE) != 0)
}

/// The fix for a refused read, likeliest first. Root is refused only by what stands above
/// it, so root is never told to run as root.
fn advice(euid: u32, owner: Option<u32>, scope: Option<u32>, ptrace_cap: bool) -> String {
    const RECORD: &str = "`gilscope record -- python app.py`";
    if euid == 0 && !ptrace_cap {
        return "gilscope runs as root but without CAP_SYS_PTRACE, as in a container started \
                without it: add it (docker run --cap-add SYS_PTRACE)"
            .into();
    }
    if euid == 0 && scope == Some(3) {
        return "kernel.yama.ptrace_scope=3 forbids ptrace to everyone, root included, until \
                the next boot"
            .into();
    }
    if euid == 0 {
        let yama = scope.map_or(String::new(), |s| {
            format!(", or kernel.yama.ptrace_scope=3 would (now {s})")
        });
        return format!(
            "gilscope runs as root with CAP_SYS_PTRACE, so something above root refuses: the \
             process may belong to another container, or a seccomp or LSM policy (AppArmor, \
             SELinux) may forbid ptrace{yama}"
        );
    }
    match (owner, scope) {
        (Some(uid), _) if uid != euid => format!(
            "It runs as another user: run `sudo gilscope …` (or grant gilscope \
             CAP_SYS_PTRACE), or launch the program with {RECORD}, which needs neither"
        ),
        (_, Some(s)) if s >= 1 => format!(
            "kernel.yama.ptrace_scope={s} lets you read only your own children: run `sudo \
             gilscope …`, or launch the program with {RECORD}, or set the sysctl to 0"
        ),
        _ => format!(
            "Run `sudo gilscope …` (or grant gilscope CAP_SYS_PTRACE), or launch the program \
             with {RECORD}"
        ),
    }
}

/// Opens `pid` as a Python target, retrying until `patience` has passed while the interpreter
/// is still starting (a just-launched program has not loaded libpython yet).
pub fn open(pid: i32, patience: Duration) -> Result<Target, UserError> {
    let deadline = Instant::now() + patience;
    loop {
        // A signal that ends the run is not kept waiting by a slow start.
        if let Some(stop) = crate::run::signals::received() {
            return Err(UserError::StoppedBeforeAttach {
                pid,
                signal: stop.name(),
            });
        }
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
            return Err(UserError::NotPython {
                pid,
                what: describe(pid),
                detail: err.to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    #[test]
    fn root_is_never_told_to_run_as_root() {
        for cap in [false, true] {
            let a = advice(0, Some(0), Some(1), cap);
            assert!(!a.contains("sudo") && !a.contains("as root ("), "{a}");
        }
        assert!(advice(0, Some(0), None, false).contains("--cap-add SYS_PTRACE"));
        let a = advice(0, Some(0), Some(1), true);
        assert!(
            a.contains("seccomp") && a.contains("ptrace_scope=3 would (now 1)"),
            "{a}"
        );
        assert!(!advice(0, Some(0), None, true).contains("yama"));
        assert!(advice(0, Some(0), Some(3), true).starts_with("kernel.yama.ptrace_scope=3"));
    }

    #[test]
    fn the_unprivileged_hint_is_short_and_starts_with_the_likeliest_fix() {
        for (owner, scope) in [
            (Some(0), Some(1)),
            (Some(1000), Some(1)),
            (Some(1000), Some(0)),
        ] {
            let a = advice(1000, owner, scope, false);
            assert!(words(&a) <= 35, "{} words: {a}", words(&a));
            assert!(a.contains("sudo gilscope"), "{a}");
        }
        assert!(advice(1000, Some(0), Some(1), false).starts_with("It runs as another user"));
        assert!(advice(1000, Some(1000), Some(1), false).starts_with("kernel.yama.ptrace_scope=1"));
    }

    #[test]
    fn a_kernel_thread_is_named() {
        // kthreadd is pid 2 wherever the kernel's threads are visible.
        if comm(2).as_deref() == Some("kthreadd") {
            assert!(is_kernel_thread(2));
            let err = check(2).unwrap_err().to_string();
            assert_eq!(
                err,
                "process 2 (kthreadd) is a kernel thread, not a Python process; point \
                 gilscope at a python process (`pgrep -a python` lists them)"
            );
        }
        assert!(!is_kernel_thread(std::process::id() as i32));
    }
}
