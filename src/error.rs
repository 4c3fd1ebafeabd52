//! Failures a user can cause, each one sentence that says what to do.
//!
//! Callers branch on these (a permission problem is not retried, an interpreter that is still
//! starting is); everything else travels as `anyhow::Error` with context.

use std::path::PathBuf;

use crate::cpython::layout::SUPPORTED;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("no process has pid {0}: check the pid (for example with `pgrep -a python`)")]
    NoSuchProcess(i32),

    /// `advice` is the likeliest fix first, for who gilscope runs as (see
    /// [`crate::process::attach`]): as root, what else can refuse root.
    #[error("permission denied: gilscope may not read process {pid}{owner}. {advice}")]
    PermissionDenied {
        pid: i32,
        owner: String,
        advice: String,
    },

    /// `what` is its executable, or its name when that cannot be read; `detail` is the
    /// reader's own wording, kept for debugging, not shown.
    #[error(
        "process {pid} ({what}) is not a CPython process: no Python interpreter was found in \
         it; point gilscope at a python process (`pgrep -a python` lists them)"
    )]
    NotPython {
        pid: i32,
        what: String,
        detail: String,
    },

    #[error(
        "process {pid} ({name}) is a kernel thread, not a Python process; point gilscope at a \
         python process (`pgrep -a python` lists them)"
    )]
    KernelThread { pid: i32, name: String },

    #[error(
        "process {pid} runs CPython {version}, which gilscope cannot read; supported: {SUPPORTED}"
    )]
    UnsupportedVersion { pid: i32, version: String },

    #[error(
        "{signal} ended the run before gilscope could read process {pid}'s interpreter, so \
         there is nothing to report"
    )]
    StoppedBeforeAttach { pid: i32, signal: &'static str },

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
