//! Opening a process as a sampling target: which Python it runs, where `_PyRuntime` is, and
//! the layout to read it with. Reads the target; never samples it.

use anyhow::anyhow;
use remoteprocess::{Process, ProcessMemory};

use super::python::{self, PythonInfo, StackReader};
use crate::gil::debug_offsets::{self, DebugOffsets, Preamble};
use crate::gil::{Layout, Memory};

/// A Python process gilscope has opened and understood, ready to sample.
pub struct Target {
    pub pid: i32,
    pub python: PythonInfo,
    /// Whether the layout came from CPython's own `_Py_DebugOffsets` (3.13+) rather than
    /// gilscope's table.
    pub layout_from_debug_offsets: bool,
    pub(super) process: Process,
    pub(super) runtime: u64,
    /// The offsets the target is read with.
    pub layout: Layout,
    pub(super) stacks: StackReader,
}

/// Why a process could not be opened as a target; the caller turns each into advice.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("not a CPython process: {0:#}")]
    NotPython(anyhow::Error),
    #[error("CPython {0} is not supported")]
    Unsupported(String),
    #[error("the interpreter is not ready yet: {0:#}")]
    NotReady(anyhow::Error),
}

/// The target's memory, as [`Memory`] for the GIL module.
pub(super) struct Remote<'a>(pub(super) &'a Process);

impl Memory for Remote<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.0
            .read(addr as usize, buf)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

impl Target {
    /// Opens `pid`: finds its Python version, `_PyRuntime` and the layout to read it with.
    pub fn open(pid: i32) -> Result<Target, OpenError> {
        let process = Process::new(pid).map_err(|e| OpenError::NotPython(anyhow!(e)))?;
        let python = python::inspect(&process).map_err(OpenError::NotPython)?;
        let Some(table) = Layout::for_version(python.major, python.minor) else {
            return Err(OpenError::Unsupported(python.version.clone()));
        };
        let runtime = python
            .runtime
            .ok_or_else(|| OpenError::NotPython(anyhow!("no _PyRuntime symbol")))?;
        let mut published = None;
        if python.minor >= 13 {
            let mut bytes = vec![0u8; debug_offsets::read_len()];
            if Remote(&process).read(runtime, &mut bytes).is_ok() {
                // The table describes builds with a GIL only; a free-threaded build's
                // structures differ, so it must not be read with it.
                if Preamble::read(&bytes).is_some_and(|p| p.free_threaded) {
                    return Err(OpenError::Unsupported(format!(
                        "{} (free-threaded)",
                        python.version
                    )));
                }
                published = DebugOffsets::parse(&bytes)
                    .and_then(|offsets| offsets.layout())
                    .ok();
            }
        }
        let layout_from_debug_offsets = published.is_some();
        let layout = published.unwrap_or(table);
        // The interpreter must have a thread before there is anything to sample.
        let interpreters =
            crate::gil::walk(&Remote(&process), runtime, &layout).map_err(OpenError::NotReady)?;
        if interpreters.iter().all(|i| i.threads.is_empty()) {
            return Err(OpenError::NotReady(anyhow!("no Python thread yet")));
        }
        let stacks = StackReader::new(pid).map_err(OpenError::NotReady)?;
        Ok(Target {
            pid,
            python,
            layout_from_debug_offsets,
            process,
            runtime,
            layout,
            stacks,
        })
    }
}
