//! Failures a user can cause, each one sentence that says what to do.
//!
//! Callers branch on these (a permission problem is not retried, an interpreter that is still
//! starting is); everything else travels as `anyhow::Error` with context.

use std::path::PathBuf;

use crate::gil::layout::SUPPORTED;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("no process has pid {0}: check the pid (for example with `pgrep -a python`)")]
    NoSuchProcess(i32),

    #[error(
        "permission denied: gilscope may not read process {pid}{owner}. Run it as root \
         (sudo gilscope …), or as the process's own user with kernel.yama.ptrace_scope=0 \
         (now {scope}), or grant it CAP_SYS_PTRACE (sudo setcap cap_sys_ptrace+ep \
         $(which gilscope)); in a container, start it with --cap-add SYS_PTRACE. \
         `gilscope record -- python app.py` needs none of this, since the program is its child"
    )]
    PermissionDenied {
        pid: i32,
        owner: String,
        scope: String,
    },

    #[error(
        "process {pid} ({exe}) is not a CPython process gilscope can read ({detail}); \
         point gilscope at a python process"
    )]
    NotPython {
        pid: i32,
        exe: String,
        detail: String,
    },

    #[error(
        "process {pid} runs CPython {version}, which gilscope cannot read; supported: {SUPPORTED}"
    )]
    UnsupportedVersion { pid: i32, version: String },

    #[error(
        "no Python process appeared under `{command}`, which {how}, so there is no report; \
         gilscope profiles the first Python process a command runs (itself or one it starts)"
    )]
    NoPython {
        command: String,
        /// "exited with status 3 after 12.0 s"
        how: String,
        /// The exit code gilscope passes on: the command's own.
        code: u8,
    },

    #[error("process {pid} exited before gilscope could attach, so there is nothing to report")]
    ExitedBeforeAttach { pid: i32 },

    #[error("cannot write {path}: {reason}; choose a writable path with -o")]
    OutputNotWritable { path: PathBuf, reason: String },

    #[error("cannot start `{command}`: {reason}; check the command name and that it is on PATH")]
    CannotStart { command: String, reason: String },

    #[error("cannot write the recording {path}: {reason}; choose a writable path for --recording")]
    RecordingNotWritable { path: PathBuf, reason: String },

    #[error("cannot read the recording {path}: {reason}")]
    BadRecording { path: PathBuf, reason: String },

    #[error("{0}")]
    Usage(String),
}
