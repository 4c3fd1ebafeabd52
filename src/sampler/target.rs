//! Opening a process as a sampling target: which Python it runs, where `_PyRuntime` is, and
//! the layout to read it with. Reads the target; never samples it.

use anyhow::anyhow;
use remoteprocess::Process;

use super::maps;
use super::python::{self, PythonInfo};
pub(super) use super::remote::Remote;
use super::stacks::StackSource;
use crate::cpython::debug_offsets::{self, DebugOffsets, Preamble};
use crate::cpython::frames::{self, FrameLayout};
use crate::cpython::{layout, Layout, Memory};

/// A Python process gilscope has opened and understood, ready to sample.
pub struct Target {
    pub pid: i32,
    pub python: PythonInfo,
    /// Whether the layout came from CPython's own `_Py_DebugOffsets` (3.13+) rather than
    /// gilscope's table.
    pub layout_from_debug_offsets: bool,
    /// A free-threaded build (3.13t): its GIL is disabled unless something enabled it.
    pub free_threaded: bool,
    pub(super) process: Process,
    pub(super) runtime: u64,
    /// The offsets the target is read with.
    pub layout: Layout,
    pub(super) stacks: StackSource,
    /// What tells an exec; `None` when `/proc/<pid>/mem` could not be opened.
    pub(super) image: Option<super::procfs::Image>,
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

/// The version of a CPython 3.13+ process as its `_Py_DebugOffsets` states it, with the
/// `_PyRuntime` found through its mapped binaries.
fn inspect_published(pid: i32, process: &Process) -> Option<PythonInfo> {
    let runtime = maps::find_runtime(pid).ok()?;
    let mut bytes = [0u8; 24];
    Remote(process).read(runtime, &mut bytes).ok()?;
    let hex = Preamble::read(&bytes)?.version;
    let (major, minor, patch) = (hex >> 24, (hex >> 16) & 0xff, (hex >> 8) & 0xff);
    let level = match (hex >> 4) & 0xf {
        0xa => "a",
        0xb => "b",
        0xc => "rc",
        _ => "",
    };
    let serial = if level.is_empty() {
        String::new()
    } else {
        (hex & 0xf).to_string()
    };
    Some(PythonInfo {
        major,
        minor,
        patch,
        version: format!("{major}.{minor}.{patch}{level}{serial}"),
        runtime: Some(runtime),
    })
}

impl Target {
    /// Opens `pid`: finds its Python version, `_PyRuntime` and the layout to read it with.
    pub fn open(pid: i32) -> Result<Target, OpenError> {
        let process = Process::new(pid).map_err(|e| OpenError::NotPython(anyhow!(e)))?;
        let python = match python::inspect(&process) {
            Ok(python) => python,
            // py-spy does not know every build by its file names (free-threaded builds'
            // libpython3.13t.so): a 3.13+ runtime names its own version.
            Err(e) => inspect_published(pid, &process).ok_or(OpenError::NotPython(e))?,
        };
        let Some(table) = Layout::for_version(python.major, python.minor) else {
            return Err(OpenError::Unsupported(python.version.clone()));
        };
        let runtime = python
            .runtime
            .ok_or_else(|| OpenError::NotPython(anyhow!("no _PyRuntime symbol")))?;
        let mut published = None;
        let mut frame_reader = None;
        let mut free_threaded = false;
        if python.minor >= 13 {
            let mut bytes = vec![0u8; debug_offsets::read_len()];
            if Remote(&process).read(runtime, &mut bytes).is_ok() {
                let offsets = DebugOffsets::parse(&bytes);
                // The runtime states its own version: it must be the one the binary said.
                if let Some(p) = Preamble::read(&bytes) {
                    if p.major_minor() != (python.major, python.minor) {
                        let (major, minor) = p.major_minor();
                        return Err(OpenError::Unsupported(format!(
                            "{} (its runtime says {major}.{minor}: a mismatched binary)",
                            python.version
                        )));
                    }
                }
                free_threaded = Preamble::read(&bytes).is_some_and(|p| p.free_threaded);
                if free_threaded {
                    // The table describes builds with a GIL only, and py-spy cannot read a
                    // free-threaded build's stacks: both come from the debug offsets here.
                    let unsupported = |e: anyhow::Error| {
                        OpenError::Unsupported(format!("{} free-threaded ({e:#})", python.version))
                    };
                    let offsets = offsets.map_err(unsupported)?;
                    let frames = FrameLayout::new(&offsets).map_err(unsupported)?;
                    published = Some(offsets.layout().map_err(unsupported)?);
                    frame_reader = Some(frames::StackReader::new(frames));
                } else if let Ok(offsets) = offsets {
                    // A shape gilscope knows whose values disagree with it (a GIL struct that
                    // moved) must not be read with the table either.
                    published = Some(offsets.layout().map_err(|e| {
                        OpenError::Unsupported(format!("{} ({e:#})", python.version))
                    })?);
                    frame_reader = FrameLayout::new(&offsets)
                        .ok()
                        .map(frames::StackReader::new);
                }
            }
        }
        if python.minor < 13 {
            frame_reader =
                layout::frame_layout(python.major, python.minor).map(frames::StackReader::new);
        }
        let layout_from_debug_offsets = published.is_some();
        let layout = published.unwrap_or(table);
        // The interpreter must have a thread before there is anything to sample.
        let interpreters = crate::cpython::walk(&Remote(&process), runtime, &layout)
            .map_err(OpenError::NotReady)?;
        if interpreters.iter().all(|i| i.threads.is_empty()) {
            return Err(OpenError::NotReady(anyhow!("no Python thread yet")));
        }
        let py_spy = match free_threaded {
            true => None,
            false => Some(python::StackReader::new(pid).map_err(OpenError::NotReady)?),
        };
        let stacks = StackSource::new(py_spy, frame_reader);
        let image = super::procfs::Image::open(pid, runtime).ok();
        Ok(Target {
            pid,
            python,
            layout_from_debug_offsets,
            free_threaded,
            process,
            runtime,
            layout,
            stacks,
            image,
        })
    }
}
