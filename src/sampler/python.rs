//! Everything gilscope asks of the py-spy library: which Python a process runs, where its
//! `_PyRuntime` is, and the Python stack of every thread.
//!
//! The only file that names `py_spy`, so that an upgrade touches one file.

use anyhow::{Context, Result};
use py_spy::config::{Config, LockingStrategy};
use py_spy::python_process_info::{get_python_version, PythonProcessInfo};
use py_spy::PythonSpy;
use remoteprocess::Process;

use super::raw_stack::RawStack;
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

/// The address of dynamic symbol `name` in the ELF file at `path`, whose executable segment
/// is mapped at `start` for `size` bytes; `None` when the file cannot be read or lacks it.
pub fn elf_symbol(path: &str, start: u64, size: u64, name: &str) -> Option<u64> {
    let info = py_spy::binary_parser::parse_binary(std::path::Path::new(path), start, size).ok()?;
    info.symbols.get(name).copied()
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
                name: trace.thread_name.map(crate::model::bounded_name),
                frames: trace
                    .frames
                    .into_iter()
                    .rev()
                    .map(|f| Frame::new(f.name, f.filename, f.line.max(0) as u32))
                    .collect(),
            })
            .collect())
    }
}
