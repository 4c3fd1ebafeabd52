//! Where CPython keeps what gilscope reads, per version (Linux x86-64).
//!
//! The one dispatch point for versions: every offset into CPython's runtime structures lives in
//! this file. The tables were read from each version's own debug information
//! (`gdb -batch -ex 'p/d &((PyThreadState*)0)->next' libpython3.X.so`) and the test
//! `layout_matches_debug_info` checks them again against every installed pyenv build. From 3.13
//! on CPython publishes the offsets itself in `_Py_DebugOffsets` at the start of `_PyRuntime`;
//! [`Layout::from_debug_offsets`] reads them and the table is only the fallback.

use anyhow::{bail, Result};

/// The CPython versions gilscope reads, for messages.
pub const SUPPORTED: &str = "3.8, 3.9, 3.10, 3.11, 3.12 and 3.13";

/// Offsets inside `struct _gil_runtime_state`; the same from 3.8 through 3.13 on x86-64.
pub mod gil_struct {
    /// `unsigned long interval`: the switch interval in microseconds.
    pub const INTERVAL: usize = 0;
    /// `last_holder`: the `PyThreadState*` that took the GIL last.
    pub const LAST_HOLDER: usize = 8;
    /// `locked`: non-zero while some thread holds the GIL.
    pub const LOCKED: usize = 16;
    /// `unsigned long switch_number`: handoffs between threads since start.
    pub const SWITCH_NUMBER: usize = 24;
    /// `cond` and `mutex`: where threads sleep while they wait to take the GIL.
    pub const COND: usize = 32;
    pub const MUTEX: usize = 80;
    /// `switch_cond` and `switch_mutex`: where a thread that dropped the GIL on request waits
    /// until a waiter took it (FORCE_SWITCHING).
    pub const SWITCH_COND: usize = 120;
    pub const SWITCH_MUTEX: usize = 168;
    /// `sizeof(struct _gil_runtime_state)`.
    pub const SIZE: usize = 208;
    /// The leading fields read at every tick: interval, last_holder, locked, switch_number.
    pub const HEAD: usize = 32;
}

/// Where the GIL of an interpreter is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GilPlace {
    /// 3.8–3.11: one GIL, inline in `_PyRuntime` at this offset (`_PyRuntime.ceval.gil`).
    InRuntime(usize),
    /// 3.12+: `PyInterpreterState.ceval.gil`, a pointer at this offset in each interpreter.
    InterpreterPointer(usize),
}

/// Byte offsets of the fields gilscope follows from `_PyRuntime` to every thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `_PyRuntime.interpreters.head`.
    pub runtime_interpreters_head: usize,
    pub gil: GilPlace,
    /// `PyInterpreterState.next`, `.id`, and the head of its thread list.
    pub interp_next: usize,
    pub interp_id: usize,
    pub interp_threads_head: usize,
    /// `PyThreadState.next`, `.thread_id` (a `pthread_t`), `.native_thread_id` (3.11+).
    pub tstate_next: usize,
    pub tstate_thread_id: usize,
    pub tstate_native_thread_id: Option<usize>,
}

impl Layout {
    /// The built-in table for CPython `major.minor`, or `None` if gilscope does not read it.
    pub fn for_version(major: u64, minor: u64) -> Option<Layout> {
        let layout = match (major, minor) {
            (3, 8) => Layout {
                runtime_interpreters_head: 32,
                gil: GilPlace::InRuntime(1152),
                interp_next: 0,
                interp_id: 16,
                interp_threads_head: 8,
                tstate_next: 8,
                tstate_thread_id: 176,
                tstate_native_thread_id: None,
            },
            (3, 9) | (3, 10) => Layout {
                runtime_interpreters_head: 32,
                gil: GilPlace::InRuntime(352),
                interp_next: 0,
                interp_id: 24,
                interp_threads_head: 8,
                tstate_next: 8,
                tstate_thread_id: 176,
                tstate_native_thread_id: None,
            },
            (3, 11) => Layout {
                runtime_interpreters_head: 40,
                gil: GilPlace::InRuntime(360),
                interp_next: 0,
                interp_id: 48,
                interp_threads_head: 16,
                tstate_next: 8,
                tstate_thread_id: 152,
                tstate_native_thread_id: Some(160),
            },
            (3, 12) => Layout {
                runtime_interpreters_head: 40,
                gil: GilPlace::InterpreterPointer(384),
                interp_next: 0,
                interp_id: 8,
                interp_threads_head: 72,
                tstate_next: 8,
                tstate_thread_id: 136,
                tstate_native_thread_id: Some(144),
            },
            (3, 13) => Layout {
                runtime_interpreters_head: 632,
                gil: GilPlace::InterpreterPointer(16),
                interp_next: 7264,
                interp_id: 7272,
                interp_threads_head: 7344,
                tstate_next: 8,
                tstate_thread_id: 152,
                tstate_native_thread_id: Some(160),
            },
            _ => return None,
        };
        Some(layout)
    }

    /// Reads the offsets CPython 3.13 publishes in `_Py_DebugOffsets`, the first bytes of
    /// `_PyRuntime` (`bytes` must hold at least [`DEBUG_OFFSETS_LEN`] of them). Returns the
    /// layout and the `PY_VERSION_HEX` the runtime reports about itself.
    ///
    /// The struct's own shape changes between versions (3.14 inserts fields), so only a
    /// version whose shape is known here is accepted; anything else is an error and the
    /// caller falls back to [`Layout::for_version`].
    pub fn from_debug_offsets(bytes: &[u8]) -> Result<(Layout, u64)> {
        if bytes.len() < DEBUG_OFFSETS_LEN {
            bail!("_Py_DebugOffsets: short read ({} bytes)", bytes.len());
        }
        if &bytes[0..8] != b"xdebugpy" {
            bail!("_Py_DebugOffsets: no cookie (not CPython 3.13+, or a garbage read)");
        }
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let version = word(8);
        let (major, minor) = (version >> 24, (version >> 16) & 0xff);
        if (major, minor) != (3, 13) {
            bail!("_Py_DebugOffsets of CPython {major}.{minor}: shape not known to gilscope");
        }
        if word(16) != 0 {
            bail!("free-threaded CPython is not supported yet");
        }
        // Sections of the 3.13 struct: runtime_state at 24, interpreter_state at 48,
        // thread_state at 152; each starts with the size of the structure it describes.
        let interp_size = word(48);
        let tstate_size = word(152);
        let field = |at: usize, limit: u64| -> Result<usize> {
            let off = word(at);
            if off >= limit {
                bail!("_Py_DebugOffsets: offset {off} at {at} outside its struct ({limit} bytes)");
            }
            Ok(off as usize)
        };
        let layout = Layout {
            runtime_interpreters_head: field(40, word(24))?,
            gil: GilPlace::InterpreterPointer(field(112, interp_size)?),
            interp_next: field(64, interp_size)?,
            interp_id: field(56, interp_size)?,
            interp_threads_head: field(72, interp_size)?,
            tstate_next: field(168, tstate_size)?,
            tstate_thread_id: field(192, tstate_size)?,
            tstate_native_thread_id: Some(field(200, tstate_size)?),
        };
        Ok((layout, version))
    }
}

/// Whether `_Py_DebugOffsets` (3.13+) says the build is free-threaded; `None` when the bytes
/// are not a debug-offsets struct.
pub fn debug_offsets_free_threaded(bytes: &[u8]) -> Option<bool> {
    if bytes.len() < 24 || &bytes[0..8] != b"xdebugpy" {
        return None;
    }
    Some(u64::from_le_bytes(bytes[16..24].try_into().unwrap()) != 0)
}

/// How many bytes of `_Py_DebugOffsets` [`Layout::from_debug_offsets`] reads.
pub const DEBUG_OFFSETS_LEN: usize = 224;

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 224 bytes of `_Py_DebugOffsets` as CPython 3.13.0 fills them in.
    fn debug_offsets_3_13() -> Vec<u8> {
        let mut words = vec![0u64; DEBUG_OFFSETS_LEN / 8];
        words[1] = 0x030d00f0; // 3.13.0 final
        words[3] = 283320; // runtime_state.size
        words[5] = 632; // interpreters_head
        let interp = [
            194968, 7272, 7264, 7344, 7400, 7656, 7640, 7648, 16, 7752, 0, 7768, 7760,
        ];
        words[6..19].copy_from_slice(&interp);
        let tstate = [304, 0, 8, 16, 72, 152, 160, 232, 32];
        words[19..28].copy_from_slice(&tstate);
        let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        bytes[0..8].copy_from_slice(b"xdebugpy");
        bytes
    }

    #[test]
    fn debug_offsets_agree_with_the_3_13_table() {
        let (layout, version) = Layout::from_debug_offsets(&debug_offsets_3_13()).unwrap();
        assert_eq!(version >> 16, 0x030d);
        assert_eq!(Some(layout), Layout::for_version(3, 13));
    }

    #[test]
    fn debug_offsets_refuse_garbage() {
        let mut bytes = debug_offsets_3_13();
        bytes[0] = b'X';
        assert!(Layout::from_debug_offsets(&bytes).is_err());
        let mut bytes = debug_offsets_3_13();
        bytes[40..48].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Layout::from_debug_offsets(&bytes).is_err());
        assert!(Layout::from_debug_offsets(&bytes[..100]).is_err());
    }

    #[test]
    fn free_threaded_builds_are_told_apart() {
        let mut bytes = debug_offsets_3_13();
        assert_eq!(debug_offsets_free_threaded(&bytes), Some(false));
        bytes[16] = 1;
        assert_eq!(debug_offsets_free_threaded(&bytes), Some(true));
        assert!(Layout::from_debug_offsets(&bytes).is_err());
        assert_eq!(
            debug_offsets_free_threaded(b"garbage garbage garbage!"),
            None
        );
    }

    #[test]
    fn unknown_versions_have_no_table() {
        assert!(Layout::for_version(3, 7).is_none());
        assert!(Layout::for_version(2, 7).is_none());
        assert!(Layout::for_version(3, 12).is_some());
    }
}
