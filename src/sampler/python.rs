//! Everything gilscope asks of the py-spy library: which Python a process runs, where its
//! `_PyRuntime` is, and the Python stack of every thread.
//!
//! The only file that names `py_spy`, so that an upgrade touches one file.

use anyhow::{Context, Result};
use py_spy::config::{Config, LockingStrategy};
use py_spy::python_process_info::{get_python_version, PythonProcessInfo};
use py_spy::PythonSpy;
use remoteprocess::Process;

use crate::model::Frame;

/// The Python a process runs, as read from its binaries and memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PythonInfo {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// `3.11.7`, with any release suffix (`3.14.0rc1`).
    pub version: String,
    /// Address of `_PyRuntime` in the target, from the binary's symbols (3.7+).
    pub runtime: Option<u64>,
}

/// Reads the version and the `_PyRuntime` address. Fails when the process has no Python
/// binary or library that py-spy recognises.
pub fn inspect(process: &Process) -> Result<PythonInfo> {
    let info = PythonProcessInfo::new(process)?;
    let version = get_python_version(&info, process)?;
    Ok(PythonInfo {
        major: version.major,
        minor: version.minor,
        patch: version.patch,
        version: version.to_string(),
        runtime: info.get_symbol("_PyRuntime").copied(),
    })
}

/// One thread's stack as py-spy read it.
#[derive(Clone, Debug)]
pub struct RawStack {
    /// `PyThreadState.thread_id` (the `pthread_t`).
    pub pthread: u64,
    /// The OS thread id, when py-spy knows it (3.11+ on Linux).
    pub tid: Option<i32>,
    pub name: Option<String>,
    /// Outermost frame first.
    pub frames: Vec<Frame>,
}

/// Reads Python stacks without ever stopping the target (py-spy's non-blocking mode).
pub struct StackReader {
    spy: PythonSpy,
}

impl StackReader {
    pub fn new(pid: i32) -> Result<StackReader> {
        let config = Config {
            blocking: LockingStrategy::NonBlocking,
            include_idle: true,
            collect_thread_names: true,
            ..Config::default()
        };
        let spy = PythonSpy::new(pid, &config).context("py-spy could not read the process")?;
        Ok(StackReader { spy })
    }

    /// The stacks of every Python thread. A torn read fails the whole call; the caller
    /// counts it as one failed stack sample.
    pub fn read(&mut self) -> Result<Vec<RawStack>> {
        let traces = self.spy.get_stack_traces()?;
        Ok(traces
            .into_iter()
            .map(|trace| RawStack {
                pthread: trace.thread_id,
                tid: trace.os_thread_id.map(|t| t as i32),
                name: trace.thread_name,
                frames: trace
                    .frames
                    .into_iter()
                    .rev()
                    .map(|f| Frame {
                        function: f.name,
                        file: f.short_filename.unwrap_or(f.filename),
                        line: f.line.max(0) as u32,
                    })
                    .collect(),
            })
            .collect())
    }
}
