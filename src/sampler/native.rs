//! Where a thread's CPU time goes in machine code: the kernel samples each Python thread's
//! user-space instruction pointer every millisecond of its CPU time (`perf_event_open`, the
//! task clock, user space only), so a GIL holder running an extension's C code can be told
//! from one running the interpreter. Optional: where the kernel refuses
//! (`kernel.perf_event_paranoid`, a container's seccomp profile) the split is unknown and the
//! rest of gilscope works as before. The target is never stopped: the kernel writes the
//! samples into a ring buffer that gilscope reads.

use std::path::Path;

use perf_event::events::Software;
use perf_event::{Builder, Clock, SampleFlag, Sampler};

use crate::model::Tid;

/// Task-clock nanoseconds between two samples of a thread.
const PERIOD_NS: u64 = 1_000_000;
/// Ring buffer bytes per thread: about 170 samples of 24 bytes, well over what a thread
/// writes between two reads.
const RING_BYTES: usize = 4096;
/// `PERF_RECORD_SAMPLE`.
const RECORD_SAMPLE: u32 = 9;

/// One thread's instruction-pointer samples.
pub struct IpSampler {
    sampler: Sampler,
    /// The newest sample read: instruction pointer and `CLOCK_MONOTONIC` nanoseconds.
    newest: Option<(u64, u64)>,
}

impl std::fmt::Debug for IpSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpSampler")
            .field("newest", &self.newest)
            .finish()
    }
}

impl IpSampler {
    /// Starts sampling thread `tid`; fails where the kernel does not allow it.
    pub fn open(tid: Tid) -> std::io::Result<IpSampler> {
        let mut counter = Builder::new(Software::TASK_CLOCK)
            .observe_pid(tid)
            .any_cpu()
            .exclude_kernel(true)
            .exclude_hv(true)
            .sample_period(PERIOD_NS)
            .sample(SampleFlag::IP | SampleFlag::TIME)
            .clockid(Clock::MONOTONIC)
            .build()?;
        counter.enable()?;
        Ok(IpSampler {
            sampler: counter.sampled(RING_BYTES)?,
            newest: None,
        })
    }

    /// Reads every sample written since the last call and returns the newest one seen:
    /// `(instruction pointer, CLOCK_MONOTONIC ns)`.
    pub fn newest(&mut self) -> Option<(u64, u64)> {
        while let Some(record) = self.sampler.next_record() {
            if record.ty() != RECORD_SAMPLE {
                continue;
            }
            let bytes = record.to_contiguous();
            if let (Some(ip), Some(at)) = (word(&bytes, 0), word(&bytes, 8)) {
                self.newest = Some((ip, at));
            }
        }
        self.newest
    }
}

fn word(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Which code an instruction pointer is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// The interpreter's own object: libpython, or the executable that holds `_PyRuntime`.
    Interpreter,
    /// The C library, the loader, the vDSO: the interpreter calls them all the time
    /// (memcpy, malloc), and so does C code.
    System,
    /// Another object's machine code: an extension module or a library it links, by its
    /// index in [`CodeMap::modules`].
    Native(u32),
}

/// The executable mappings of the target and what each is.
#[derive(Debug, Default)]
pub struct CodeMap {
    /// `(start, end, what)`, sorted by start.
    ranges: Vec<(u64, u64, Code)>,
    /// The native modules' names, by index; an index stays the same across re-reads.
    pub modules: Vec<String>,
}

impl CodeMap {
    /// Reads `/proc/<pid>/maps` again; `interpreter` is an address inside the interpreter's
    /// own object (`_PyRuntime`), whose file is the interpreter.
    pub fn reread(&mut self, pid: i32, interpreter: u64) -> std::io::Result<()> {
        let maps = proc_maps::get_process_maps(pid)?;
        let own = owner(
            maps.iter().map(|m| (m.start() as u64, m.filename())),
            interpreter,
        )
        .map(Path::to_path_buf);
        self.ranges.clear();
        for m in maps.iter().filter(|m| m.is_exec()) {
            let Some(file) = m.filename() else { continue };
            let code = if Some(file) == own.as_deref() {
                Code::Interpreter
            } else if is_system_library(file) {
                Code::System
            } else {
                let name = module_name(file);
                let at = match self.modules.iter().position(|n| *n == name) {
                    Some(at) => at,
                    None => {
                        self.modules.push(name);
                        self.modules.len() - 1
                    }
                };
                Code::Native(at as u32)
            };
            let start = m.start() as u64;
            self.ranges.push((start, start + m.size() as u64, code));
        }
        self.ranges.sort_by_key(|r| r.0);
        Ok(())
    }

    /// What `ip` is in; `None` outside every file-backed executable mapping (JIT code, a
    /// mapping that appeared since the map was read).
    pub fn code(&self, ip: u64) -> Option<Code> {
        let i = self.ranges.partition_point(|r| r.0 <= ip).checked_sub(1)?;
        let (start, end, code) = self.ranges[i];
        (start..end).contains(&ip).then_some(code)
    }
}

/// The file whose object holds `addr`: the file-backed mapping that starts last at or below
/// it. A variable in an object's zero-filled tail (`.bss`, where CPython 3.8 and 3.9 keep
/// `_PyRuntime`) lies in an anonymous mapping right after the object's data, so the mapping
/// holding the address itself may have no file.
fn owner<'a>(maps: impl Iterator<Item = (u64, Option<&'a Path>)>, addr: u64) -> Option<&'a Path> {
    maps.filter_map(|(start, file)| Some((start, file?)))
        .filter(|(start, _)| *start <= addr)
        .max_by_key(|(start, _)| *start)
        .map(|(_, file)| file)
}

/// The C library and the loader: the interpreter calls them all the time (memcpy, malloc),
/// so time there is no sign of an extension.
fn is_system_library(file: &Path) -> bool {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    [
        "libc.so",
        "libc-",
        "libm.so",
        "libm-",
        "ld-linux",
        "libpthread",
        "libdl",
        "librt",
    ]
    .iter()
    .any(|p| name.starts_with(p))
        || name == "[vdso]"
}

/// A module's name as a Python user knows it: `pydantic_core._pydantic_core` for
/// `…/site-packages/pydantic_core/_pydantic_core.cpython-312-x86_64-linux-gnu.so`, `_json`
/// for a standard-library extension, the file name for other libraries (`libz.so.1`).
pub fn module_name(file: &Path) -> String {
    let text = file.to_string_lossy();
    let tail = ["site-packages/", "dist-packages/", "lib-dynload/"]
        .iter()
        .find_map(|marker| text.rsplit_once(marker).map(|(_, rest)| rest))
        .unwrap_or_else(|| text.rsplit('/').next().unwrap_or(&text));
    let is_extension =
        tail.contains(".cpython-") || tail.contains(".abi3.") || tail.ends_with(".so");
    let stem = if is_extension && !tail.starts_with("lib") {
        tail.split_once(".cpython-")
            .or_else(|| tail.split_once(".abi3."))
            .map_or(tail.trim_end_matches(".so"), |(stem, _)| stem)
    } else {
        tail
    };
    if is_extension && !tail.starts_with("lib") {
        stem.replace('/', ".")
    } else {
        stem.rsplit('/').next().unwrap_or(stem).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_are_named_as_python_users_know_them() {
        let name = |p: &str| module_name(Path::new(p));
        assert_eq!(
            name("/venv/lib/python3.12/site-packages/pydantic_core/_pydantic_core.cpython-312-x86_64-linux-gnu.so"),
            "pydantic_core._pydantic_core"
        );
        assert_eq!(
            name("/usr/lib/python3.11/lib-dynload/_json.cpython-311-x86_64-linux-gnu.so"),
            "_json"
        );
        assert_eq!(
            name("/usr/lib/python3/dist-packages/numpy/core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so"),
            "numpy.core._multiarray_umath"
        );
        assert_eq!(name("/tmp/build/spin.abi3.so"), "spin");
        assert_eq!(
            name("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"),
            "libz.so.1.2.13"
        );
        assert_eq!(name("/tmp/x/hold.so"), "hold");
        assert!(is_system_library(Path::new(
            "/lib/x86_64-linux-gnu/libc.so.6"
        )));
        assert!(!is_system_library(Path::new("/usr/lib/libz.so.1")));
    }

    #[test]
    fn the_interpreter_is_the_object_whose_data_or_bss_holds_the_runtime() {
        let python = Path::new("/usr/lib/libpython3.8.so.1.0");
        let libc = Path::new("/lib/libc.so.6");
        let maps = [
            (0x1000, Some(python)), // text
            (0x5000, Some(python)), // data
            (0x6000, None),         // the .bss beyond the file's last page
            (0x9000, None),         // a heap
            (0xa000, Some(libc)),
        ];
        assert_eq!(owner(maps.into_iter(), 0x5800), Some(python));
        assert_eq!(owner(maps.into_iter(), 0x6800), Some(python));
        assert_eq!(owner(maps.into_iter(), 0xa010), Some(libc));
        assert_eq!(owner(maps.into_iter(), 0x10), None);
    }

    #[test]
    fn instruction_pointers_fall_in_their_mappings() {
        let map = CodeMap {
            ranges: vec![
                (0x1000, 0x2000, Code::Interpreter),
                (0x5000, 0x6000, Code::Native(0)),
            ],
            modules: vec!["spin".into()],
        };
        assert_eq!(map.code(0x1000), Some(Code::Interpreter));
        assert_eq!(map.code(0x5fff), Some(Code::Native(0)));
        assert_eq!(map.code(0x6000), None);
        assert_eq!(map.code(0x10), None);
        assert_eq!(map.code(0x3000), None);
    }

    #[test]
    fn samples_a_busy_thread_of_this_process() {
        let me = std::process::id() as i32;
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let spinner = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tx.send(unsafe { libc::gettid() }).unwrap();
            let mut x = 0u64;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                x = x.wrapping_mul(31).wrapping_add(1);
            }
            x
        });
        let tid = rx.recv().unwrap();
        let Ok(mut s) = IpSampler::open(tid) else {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            spinner.join().unwrap();
            eprintln!("SKIPPED: perf_event_open refused here");
            return;
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut seen = None;
        while seen.is_none() && std::time::Instant::now() < deadline {
            std::thread::yield_now();
            seen = s.newest();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        spinner.join().unwrap();
        let (ip, _) = seen.expect("no sample of a spinning thread in 30 s");
        let mut map = CodeMap::default();
        map.reread(
            me,
            samples_a_busy_thread_of_this_process as *const () as u64,
        )
        .unwrap();
        assert_eq!(map.code(ip), Some(Code::Interpreter), "{ip:#x}: {map:?}");
    }
}
