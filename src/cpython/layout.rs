//! Where CPython keeps what gilscope reads, per version (Linux x86-64).
//!
//! gilscope's own table of the offsets it follows, one row per version. The tables were read from each version's own debug information
//! (`gdb -batch -ex 'p/d &((PyThreadState*)0)->next' libpython3.X.so`) and the test
//! `layout_matches_debug_info` checks them again against every installed pyenv build. From 3.13
//! on CPython publishes the offsets itself in `_Py_DebugOffsets` at the start of `_PyRuntime`;
//! [`super::debug_offsets`] reads them and the table is only the fallback. The 3.14 and 3.15
//! rows were read from Debian's builds through that struct, since those builds are stripped.
//!
//! [`frame_layout`] is the stack reader's row for 3.8 to 3.12 (frame chain, code object and
//! string fields), from the same debug information and checked by the same test.

use super::frames::{FrameLayout, FrameRoot, LineFormat, Position};

/// The CPython versions gilscope reads, for messages.
pub const SUPPORTED: &str = "3.8 to 3.15, and free-threaded 3.13t";

/// Offsets inside `struct _gil_runtime_state`; the same from 3.8 through 3.15 on x86-64
/// in builds with a GIL (a free-threaded build puts an `int enabled` first).
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
    /// In a free-threaded build, where the fields above start: after `int enabled` (at 0),
    /// padded to the alignment of `unsigned long interval`.
    pub const FREE_THREADED_FIELDS_AT: u64 = 8;
}

/// Where the GIL of an interpreter is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GilPlace {
    /// 3.8–3.11: one GIL, inline in `_PyRuntime` at this offset (`_PyRuntime.ceval.gil`).
    InRuntime(usize),
    /// 3.12+: `PyInterpreterState.ceval.gil`, a pointer at this offset in each interpreter.
    InterpreterPointer(usize),
}

/// Where a `PyThreadState` (3.15+) says whether its thread holds its interpreter's GIL
/// (`int holds_gil`, set by take_gil() once it took the GIL, cleared by drop_gil()) and
/// whether it waits for it (`int gil_requested`, set while the thread is inside take_gil()).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GilFlags {
    pub holds_gil: usize,
    pub gil_requested: usize,
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
    /// `PyThreadState.holds_gil` and `.gil_requested` (3.15+), which let a state tick tell a
    /// thread waiting inside `take_gil()` from memory alone.
    pub tstate_gil_flags: Option<GilFlags>,
    /// A free-threaded build (3.13t+): its GIL struct starts with `int enabled`, and the
    /// fields of [`gil_struct`] follow at [`gil_struct::FREE_THREADED_FIELDS_AT`].
    pub free_threaded: bool,
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
                tstate_gil_flags: None,
                free_threaded: false,
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
                tstate_gil_flags: None,
                free_threaded: false,
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
                tstate_gil_flags: None,
                free_threaded: false,
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
                tstate_gil_flags: None,
                free_threaded: false,
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
                tstate_gil_flags: None,
                free_threaded: false,
            },
            (3, 14) => Layout {
                runtime_interpreters_head: 808,
                gil: GilPlace::InterpreterPointer(16),
                interp_next: 7272,
                interp_id: 7280,
                interp_threads_head: 7344,
                tstate_next: 8,
                tstate_thread_id: 152,
                tstate_native_thread_id: Some(160),
                tstate_gil_flags: None,
                free_threaded: false,
            },
            (3, 15) => Layout {
                runtime_interpreters_head: 936,
                gil: GilPlace::InterpreterPointer(16),
                interp_next: 7264,
                interp_id: 7272,
                interp_threads_head: 7336,
                tstate_next: 8,
                tstate_thread_id: 176,
                tstate_native_thread_id: Some(184),
                // `status`, `holds_gil`, `gil_requested` follow `eval_breaker` (at 24).
                tstate_gil_flags: Some(GilFlags {
                    holds_gil: 36,
                    gil_requested: 40,
                }),
                free_threaded: false,
            },
            _ => return None,
        };
        Some(layout)
    }
}

/// How to walk the stacks of CPython `3.minor` before 3.13 (from 3.13 on, the offsets come
/// from `_Py_DebugOffsets`), or `None` for a version without a row. Read with gdb from each
/// pyenv build's debug information, e.g.
/// `gdb -batch -ex 'p/d &((PyFrameObject*)0)->f_back' libpython3.9.so.1.0`, and checked again
/// by the test `layout_matches_debug_info`.
pub fn frame_layout(major: u64, minor: u64) -> Option<FrameLayout> {
    // What every version from 3.8 has in the same place: `ob_type`, `tp_name`, `tp_flags`,
    // `bytes.ob_size`, `bytes.ob_sval`, `str.length`, `str.state`, and `kind` after
    // `interned:2` in `state`.
    let common = FrameLayout {
        root: FrameRoot::ThreadState,
        current_frame: 0,
        previous: 0,
        executable: 0,
        instr_ptr: 0,
        position: Position::Pointer,
        owner: None,
        shim_owner: 3,
        max_owner: 3,
        ob_type: 8,
        tp_name: 24,
        tp_flags: 168,
        co_filename: 0,
        co_name: 0,
        co_qualname: None,
        co_linetable: 0,
        lines: LineFormat::Locations,
        co_firstlineno: 0,
        co_code_adaptive: 0,
        bytes_size: 16,
        bytes_data: 32,
        str_state: 32,
        str_length: 16,
        // 3.8–3.11: a `PyASCIIObject` ends with `wchar_t *wstr`, a `PyCompactUnicodeObject`
        // adds `utf8_length`, `utf8` and `wstr_length`.
        ascii_data: 48,
        compact_data: 72,
        kind_shift: 2,
        datastack: None,
        tstate_interp: None,
        code_generation: None,
    };
    // 3.8–3.10: `PyFrameObject`s from `tstate->frame`, each with `f_back`, `f_code`, and
    // `int f_lasti`; `PyCodeObject` with `co_filename`, `co_name` (no `co_qualname` yet),
    // `co_lnotab` (3.10: `co_linetable`) and `int co_firstlineno`.
    let frame_objects = FrameLayout {
        current_frame: 24,
        previous: 24,
        executable: 32,
        co_filename: 104,
        co_name: 112,
        co_linetable: 120,
        co_firstlineno: 40,
        ..common
    };
    let layout = match (major, minor) {
        (3, 8) | (3, 9) => FrameLayout {
            instr_ptr: 104,
            position: Position::LastiBytes,
            lines: LineFormat::Lnotab,
            ..frame_objects
        },
        (3, 10) => FrameLayout {
            instr_ptr: 96,
            position: Position::LastiUnits,
            lines: LineFormat::Linetable310,
            ..frame_objects
        },
        // `_PyInterpreterFrame`s from `tstate->cframe->current_frame`, running
        // `prev_instr`; 3.11 has no shim frames (its owners are 0 to 2).
        (3, 11) => FrameLayout {
            root: FrameRoot::CFrame(56),
            current_frame: 8,
            previous: 48,
            executable: 32,
            instr_ptr: 56,
            owner: Some(69),
            max_owner: 2,
            co_filename: 112,
            co_name: 120,
            co_qualname: Some(128),
            co_linetable: 136,
            co_firstlineno: 72,
            co_code_adaptive: 184,
            datastack: Some(296),
            ..common
        },
        // 3.12 drops `wstr`: a `PyASCIIObject` is 40 bytes, a compact one 56.
        (3, 12) => FrameLayout {
            root: FrameRoot::CFrame(56),
            current_frame: 0,
            previous: 8,
            executable: 0,
            instr_ptr: 56,
            owner: Some(70),
            co_filename: 112,
            co_name: 120,
            co_qualname: Some(128),
            co_linetable: 136,
            co_firstlineno: 68,
            co_code_adaptive: 192,
            datastack: Some(232),
            ascii_data: 40,
            compact_data: 56,
            ..common
        },
        _ => return None,
    };
    Some(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_versions_have_no_table() {
        assert!(Layout::for_version(3, 7).is_none());
        assert!(Layout::for_version(2, 7).is_none());
        assert!(Layout::for_version(3, 16).is_none());
        assert!(Layout::for_version(3, 12).is_some());
    }

    #[test]
    fn every_version_before_3_13_has_a_frame_layout() {
        for minor in 8..=12 {
            assert!(frame_layout(3, minor).is_some(), "3.{minor}");
        }
        assert!(frame_layout(3, 7).is_none());
        assert!(
            frame_layout(3, 13).is_none(),
            "3.13+ publishes its own offsets"
        );
    }
}
