//! CPython's own map of its structures: `_Py_DebugOffsets`, the first bytes of `_PyRuntime`
//! from 3.13 on (`Include/internal/pycore_debug_offsets.h`).
//!
//! Every field of the struct is a `uint64_t` (after the 8-byte cookie), so the struct of one
//! version is fully described by the names of its sections and fields in declaration order.
//! [`SHAPES`] holds those lists, transcribed from each version's header; a new CPython whose
//! header only appends or reorders fields needs one new entry here and nothing else.

use anyhow::{bail, Context, Result};

use super::layout::{gil_struct, GilFlags, GilPlace, Layout};

/// The first eight bytes of `_Py_DebugOffsets`.
pub const COOKIE: &[u8; 8] = b"xdebugpy";

/// One version's `_Py_DebugOffsets`: each section's name and its fields, in declaration order.
/// The leading `cookie`, `version` and `free_threaded` words are the unnamed first section.
pub struct Shape {
    pub minor: u64,
    sections: &'static [(&'static str, &'static [&'static str])],
}

/// The shapes gilscope knows, oldest first: every section and field of each version's
/// `_Py_DebugOffsets`, in declaration order, as in its `pycore_debug_offsets.h`.
#[rustfmt::skip]
pub const SHAPES: &[Shape] = &[
    Shape {
        minor: 13,
        sections: &[
            ("", &["cookie", "version", "free_threaded"]),
            ("runtime_state", &["size", "finalizing", "interpreters_head"]),
            ("interpreter_state", &["size", "id", "next", "threads_head", "gc",
                "imports_modules", "sysdict", "builtins", "ceval_gil", "gil_runtime_state",
                "gil_runtime_state_enabled", "gil_runtime_state_locked",
                "gil_runtime_state_holder"]),
            ("thread_state", &["size", "prev", "next", "interp", "current_frame", "thread_id",
                "native_thread_id", "datastack_chunk", "status"]),
            ("interpreter_frame", &["size", "previous", "executable", "instr_ptr", "localsplus",
                "owner"]),
            ("code_object", &["size", "filename", "name", "qualname", "linetable",
                "firstlineno", "argcount", "localsplusnames", "localspluskinds",
                "co_code_adaptive"]),
            ("pyobject", &["size", "ob_type"]),
            ("type_object", &["size", "tp_name", "tp_repr", "tp_flags"]),
            ("tuple_object", &["size", "ob_item", "ob_size"]),
            ("list_object", &["size", "ob_item", "ob_size"]),
            ("dict_object", &["size", "ma_keys", "ma_values"]),
            ("float_object", &["size", "ob_fval"]),
            ("long_object", &["size", "lv_tag", "ob_digit"]),
            ("bytes_object", &["size", "ob_size", "ob_sval"]),
            ("unicode_object", &["size", "state", "length", "asciiobject_size"]),
            ("gc", &["size", "collecting"]),
        ],
    },
    Shape {
        minor: 14,
        sections: &[
            ("", &["cookie", "version", "free_threaded"]),
            ("runtime_state", &["size", "finalizing", "interpreters_head"]),
            ("interpreter_state", &["size", "id", "next", "threads_head", "threads_main", "gc",
                "imports_modules", "sysdict", "builtins", "ceval_gil", "gil_runtime_state",
                "gil_runtime_state_enabled", "gil_runtime_state_locked",
                "gil_runtime_state_holder", "code_object_generation", "tlbc_generation"]),
            ("thread_state", &["size", "prev", "next", "interp", "current_frame", "thread_id",
                "native_thread_id", "datastack_chunk", "status"]),
            ("interpreter_frame", &["size", "previous", "executable", "instr_ptr", "localsplus",
                "owner", "stackpointer", "tlbc_index"]),
            ("code_object", &["size", "filename", "name", "qualname", "linetable",
                "firstlineno", "argcount", "localsplusnames", "localspluskinds",
                "co_code_adaptive", "co_tlbc"]),
            ("pyobject", &["size", "ob_type"]),
            ("type_object", &["size", "tp_name", "tp_repr", "tp_flags"]),
            ("tuple_object", &["size", "ob_item", "ob_size"]),
            ("list_object", &["size", "ob_item", "ob_size"]),
            ("set_object", &["size", "used", "table", "mask"]),
            ("dict_object", &["size", "ma_keys", "ma_values"]),
            ("float_object", &["size", "ob_fval"]),
            ("long_object", &["size", "lv_tag", "ob_digit"]),
            ("bytes_object", &["size", "ob_size", "ob_sval"]),
            ("unicode_object", &["size", "state", "length", "asciiobject_size"]),
            ("gc", &["size", "collecting"]),
            ("gen_object", &["size", "gi_name", "gi_iframe", "gi_frame_state"]),
            ("llist_node", &["next", "prev"]),
            ("debugger_support", &["eval_breaker", "remote_debugger_support",
                "remote_debugging_enabled", "debugger_pending_call", "debugger_script_path",
                "debugger_script_path_size"]),
        ],
    },
    Shape {
        minor: 15,
        sections: &[
            ("", &["cookie", "version", "free_threaded"]),
            ("runtime_state", &["size", "finalizing", "interpreters_head"]),
            ("interpreter_state", &["size", "id", "next", "threads_head", "threads_main", "gc",
                "imports_modules", "sysdict", "builtins", "ceval_gil", "gil_runtime_state",
                "gil_runtime_state_enabled", "gil_runtime_state_locked",
                "gil_runtime_state_holder", "code_object_generation", "tlbc_generation"]),
            ("thread_state", &["size", "prev", "next", "interp", "current_frame", "base_frame",
                "last_profiled_frame", "last_profiled_frame_seq", "thread_id",
                "native_thread_id", "datastack_chunk", "status", "holds_gil", "gil_requested",
                "current_exception", "exc_state"]),
            ("err_stackitem", &["exc_value"]),
            ("interpreter_frame", &["size", "previous", "executable", "instr_ptr", "localsplus",
                "owner", "stackpointer", "tlbc_index"]),
            ("code_object", &["size", "filename", "name", "qualname", "linetable",
                "firstlineno", "argcount", "localsplusnames", "localspluskinds",
                "co_code_adaptive", "co_tlbc"]),
            ("pyobject", &["size", "ob_type"]),
            ("type_object", &["size", "tp_name", "tp_repr", "tp_flags", "tp_basicsize",
                "tp_dictoffset"]),
            ("heap_type_object", &["size", "ht_cached_keys"]),
            ("tuple_object", &["size", "ob_item", "ob_size"]),
            ("list_object", &["size", "ob_item", "ob_size"]),
            ("set_object", &["size", "used", "table", "mask"]),
            ("dict_object", &["size", "ma_keys", "ma_values"]),
            ("float_object", &["size", "ob_fval"]),
            ("long_object", &["size", "lv_tag", "ob_digit"]),
            ("bytes_object", &["size", "ob_size", "ob_sval"]),
            ("unicode_object", &["size", "state", "length", "asciiobject_size",
                "compactunicodeobject_size"]),
            ("gc", &["size", "collecting", "frame", "generation_stats_size", "generation_stats"]),
            ("gen_object", &["size", "gi_name", "gi_iframe", "gi_frame_state"]),
            ("llist_node", &["next", "prev"]),
            ("debugger_support", &["eval_breaker", "remote_debugger_support",
                "remote_debugging_enabled", "debugger_pending_call", "debugger_script_path",
                "debugger_script_path_size"]),
        ],
    },
];

impl Shape {
    /// The word index of `section.field`, if this version has it.
    fn index(&self, section: &str, field: &str) -> Option<usize> {
        let mut at = 0;
        for (name, fields) in self.sections {
            if *name == section {
                return fields.iter().position(|f| *f == field).map(|i| at + i);
            }
            at += fields.len();
        }
        None
    }

    /// Bytes of the struct up to the end of the last section gilscope reads.
    fn len(&self) -> usize {
        8 * self.sections.iter().map(|(_, f)| f.len()).sum::<usize>()
    }
}

/// How many bytes to read from the start of `_PyRuntime` to hold any known shape.
pub fn read_len() -> usize {
    SHAPES.iter().map(Shape::len).max().unwrap_or(0)
}

/// A `_Py_DebugOffsets` read from a process, checked for its cookie and known shape.
pub struct DebugOffsets {
    /// `PY_VERSION_HEX` of the running interpreter, as the runtime states it.
    pub version: u64,
    pub free_threaded: bool,
    shape: &'static Shape,
    words: Vec<u64>,
}

/// What the first bytes of `_PyRuntime` say before their shape is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preamble {
    pub version: u64,
    pub free_threaded: bool,
}

impl Preamble {
    /// `None` when the bytes do not start with the cookie (before 3.13, or a garbage read).
    pub fn read(bytes: &[u8]) -> Option<Preamble> {
        if bytes.len() < 24 || &bytes[0..8] != COOKIE {
            return None;
        }
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        Some(Preamble {
            version: word(8),
            free_threaded: word(16) != 0,
        })
    }

    pub fn major_minor(&self) -> (u64, u64) {
        (self.version >> 24, (self.version >> 16) & 0xff)
    }
}

impl DebugOffsets {
    /// Parses `bytes`, the first [`read_len`] bytes (or more) of `_PyRuntime`.
    pub fn parse(bytes: &[u8]) -> Result<DebugOffsets> {
        let Some(preamble) = Preamble::read(bytes) else {
            bail!("_Py_DebugOffsets: no cookie (not CPython 3.13+, or a garbage read)");
        };
        let (major, minor) = preamble.major_minor();
        let Some(shape) = SHAPES.iter().find(|s| major == 3 && s.minor == minor) else {
            bail!("_Py_DebugOffsets of CPython {major}.{minor}: shape not known to gilscope");
        };
        if bytes.len() < shape.len() {
            bail!("_Py_DebugOffsets: short read ({} bytes)", bytes.len());
        }
        let words = bytes[..shape.len()]
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
            .collect();
        Ok(DebugOffsets {
            version: preamble.version,
            free_threaded: preamble.free_threaded,
            shape,
            words,
        })
    }

    /// The raw value of `section.field`.
    pub fn get(&self, section: &str, field: &str) -> Result<u64> {
        let i = self.shape.index(section, field).with_context(|| {
            format!(
                "_Py_DebugOffsets of 3.{} has no {section}.{field}",
                self.shape.minor
            )
        })?;
        Ok(self.words[i])
    }

    /// `section.field` as an offset, checked to lie inside the structure the section
    /// describes (its `size` field), so that garbage cannot send reads anywhere.
    pub fn offset(&self, section: &str, field: &str) -> Result<usize> {
        let off = self.get(section, field)?;
        let size = self.get(section, "size")?;
        if off >= size || size > max_size(section) {
            bail!("_Py_DebugOffsets: {section}.{field} = {off} lies outside its {size} bytes");
        }
        Ok(off as usize)
    }

    /// The offsets gilscope follows to every interpreter, GIL and thread, after checking
    /// that the GIL struct is laid out as [`gil_struct`] says (its `locked` and
    /// `last_holder` are published relative to the interpreter).
    pub fn layout(&self) -> Result<Layout> {
        let interp = "interpreter_state";
        let tstate = "thread_state";
        let gil = self.offset(interp, "gil_runtime_state")?;
        let shift = match self.free_threaded {
            true => gil_struct::FREE_THREADED_FIELDS_AT as usize,
            false => 0,
        };
        for (field, expected) in [
            ("gil_runtime_state_locked", gil_struct::LOCKED),
            ("gil_runtime_state_holder", gil_struct::LAST_HOLDER),
        ] {
            let at = self.offset(interp, field)?;
            if at.checked_sub(gil) != Some(shift + expected) {
                bail!(
                    "_Py_DebugOffsets: the GIL's {field} is at +{} in its struct, not +{}: \
                     the GIL struct changed",
                    at.wrapping_sub(gil),
                    shift + expected
                );
            }
        }
        Ok(Layout {
            runtime_interpreters_head: self.offset("runtime_state", "interpreters_head")?,
            gil: GilPlace::InterpreterPointer(self.offset(interp, "ceval_gil")?),
            interp_next: self.offset(interp, "next")?,
            interp_id: self.offset(interp, "id")?,
            interp_threads_head: self.offset(interp, "threads_head")?,
            tstate_next: self.offset(tstate, "next")?,
            tstate_thread_id: self.offset(tstate, "thread_id")?,
            tstate_native_thread_id: Some(self.offset(tstate, "native_thread_id")?),
            tstate_gil_flags: self.gil_flags()?,
            free_threaded: self.free_threaded,
        })
    }
}

impl DebugOffsets {
    /// `thread_state.holds_gil` and `.gil_requested`, where this version publishes them
    /// (3.15+; 3.13 and 3.14 have neither).
    fn gil_flags(&self) -> Result<Option<GilFlags>> {
        let has = |field| self.shape.index("thread_state", field).is_some();
        if !(has("holds_gil") && has("gil_requested")) {
            return Ok(None);
        }
        Ok(Some(GilFlags {
            holds_gil: self.offset("thread_state", "holds_gil")?,
            gil_requested: self.offset("thread_state", "gil_requested")?,
        }))
    }
}

/// The largest size a section of `_Py_DebugOffsets` may give its structure. The frame reader
/// reads a frame, a code object or a string's header whole at every sample, into a buffer as
/// long as the largest offset it needs: those objects are a few hundred bytes in every
/// CPython, so a hostile target that claims more costs a refused layout, not megabytes per
/// read. The runtime and an interpreter, read a field at a time, are large (an interpreter
/// holds its type cache: 220 KiB in 3.14) but never 16 MiB.
fn max_size(section: &str) -> u64 {
    match section {
        "runtime_state" | "interpreter_state" => 16 << 20,
        "thread_state" => 64 << 10,
        _ => 4 << 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `_Py_DebugOffsets` as Debian's CPython 3.14.10 fills in the runtime, interpreter and
    /// thread sections (read from a live process); every other field is 0.
    fn debug_offsets_3_14() -> Vec<u8> {
        let mut words = vec![0u64; read_len() / 8];
        words[1] = 0x030e0af0;
        words[3..6].copy_from_slice(&[316616, 784, 808]);
        words[6..22].copy_from_slice(&[
            225864, 7280, 7272, 7344, 7360, 7408, 7688, 7672, 7680, 16, 7784, 0, 7800, 7792, 7992,
            0,
        ]);
        words[22..29].copy_from_slice(&[832, 0, 8, 16, 72, 152, 160]);
        let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        bytes[0..8].copy_from_slice(COOKIE);
        bytes
    }

    #[test]
    fn the_3_14_shape_agrees_with_the_3_14_table() {
        let offsets = DebugOffsets::parse(&debug_offsets_3_14()).unwrap();
        assert_eq!(offsets.version >> 16, 0x030e);
        assert!(!offsets.free_threaded);
        assert_eq!(Some(offsets.layout().unwrap()), Layout::for_version(3, 14));
    }

    /// The fields gilscope reads of `_Py_DebugOffsets` as CPython 3.13.0 fills them in.
    fn debug_offsets_3_13() -> Vec<u8> {
        let mut words = vec![0u64; read_len() / 8];
        words[1] = 0x030d00f0;
        words[3..6].copy_from_slice(&[283320, 608, 632]);
        words[6..19].copy_from_slice(&[
            194968, 7272, 7264, 7344, 7400, 7656, 7640, 7648, 16, 7752, 0, 7768, 7760,
        ]);
        words[19..26].copy_from_slice(&[304, 0, 8, 16, 72, 152, 160]);
        let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        bytes[0..8].copy_from_slice(COOKIE);
        bytes
    }

    #[test]
    fn the_3_13_shape_agrees_with_the_3_13_table() {
        let offsets = DebugOffsets::parse(&debug_offsets_3_13()).unwrap();
        assert_eq!(Some(offsets.layout().unwrap()), Layout::for_version(3, 13));
    }

    /// The runtime, interpreter and thread sections as Debian sid's CPython 3.15.0a2 fills
    /// them in (read from a live process).
    fn debug_offsets_3_15() -> Vec<u8> {
        let mut words = vec![0u64; read_len() / 8];
        words[1] = 0x030f02f0;
        words[3..6].copy_from_slice(&[346568, 912, 936]);
        words[6..22].copy_from_slice(&[
            226240, 7272, 7264, 7336, 7352, 7400, 7592, 7576, 7584, 16, 7736, 0, 7752, 7744, 7944,
            0,
        ]);
        words[22..38].copy_from_slice(&[
            888, 0, 8, 16, 72, 80, 88, 96, 176, 184, 256, 32, 36, 40, 136, 288,
        ]);
        let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        bytes[0..8].copy_from_slice(COOKIE);
        bytes
    }

    #[test]
    fn only_3_15_publishes_where_a_thread_says_it_holds_or_wants_the_gil() {
        let v15 = DebugOffsets::parse(&debug_offsets_3_15()).unwrap();
        let layout = v15.layout().unwrap();
        assert_eq!(
            layout.tstate_gil_flags,
            Some(GilFlags {
                holds_gil: 36,
                gil_requested: 40
            })
        );
        assert_eq!(Some(layout), Layout::for_version(3, 15));
        for bytes in [debug_offsets_3_14(), debug_offsets_3_13()] {
            let layout = DebugOffsets::parse(&bytes).unwrap().layout().unwrap();
            assert_eq!(layout.tstate_gil_flags, None);
        }
        // An offset past the thread state's size is refused, not read.
        let mut bytes = debug_offsets_3_15();
        bytes[35 * 8..36 * 8].copy_from_slice(&4096u64.to_le_bytes());
        assert!(DebugOffsets::parse(&bytes).unwrap().layout().is_err());
    }

    #[test]
    fn a_struct_larger_than_any_cpython_has_is_refused() {
        let mut offsets = DebugOffsets::parse(&debug_offsets_3_14()).unwrap();
        let at = |o: &DebugOffsets, field| o.shape.index("interpreter_frame", field).unwrap();
        let (size, previous) = (at(&offsets, "size"), at(&offsets, "previous"));
        offsets.words[size] = 80;
        offsets.words[previous] = 8;
        assert_eq!(offsets.offset("interpreter_frame", "previous").unwrap(), 8);
        // A frame of 15 MiB would have the reader allocate as much at every read.
        offsets.words[size] = 15 << 20;
        offsets.words[previous] = (15 << 20) - 8;
        let err = offsets.offset("interpreter_frame", "previous").unwrap_err();
        assert!(err.to_string().contains("lies outside"), "{err}");
        // The interpreter itself is large and still read.
        assert!(offsets.offset("interpreter_state", "next").is_ok());
    }

    #[test]
    fn shapes_are_found_by_name() {
        let v15 = SHAPES.iter().find(|s| s.minor == 15).unwrap();
        // 3.15 inserts three frame fields before thread_id: 3 + 3 + 16 + 8 words precede it.
        assert_eq!(v15.index("thread_state", "thread_id"), Some(30));
        assert_eq!(v15.index("thread_state", "holds_gil"), Some(34));
        let v13 = SHAPES.iter().find(|s| s.minor == 13).unwrap();
        assert_eq!(v13.index("interpreter_state", "ceval_gil"), Some(14));
        assert_eq!(v13.index("thread_state", "holds_gil"), None);
    }

    #[test]
    fn garbage_and_unknown_versions_are_refused() {
        let mut bytes = debug_offsets_3_14();
        bytes[0] = b'X';
        assert!(DebugOffsets::parse(&bytes).is_err());
        let bytes = debug_offsets_3_14();
        assert!(DebugOffsets::parse(&bytes[..100]).is_err());
        let mut bytes = debug_offsets_3_14();
        bytes[8..16].copy_from_slice(&0x031000f0u64.to_le_bytes()); // 3.16
        assert!(DebugOffsets::parse(&bytes).is_err());
        let mut bytes = debug_offsets_3_14();
        bytes[40..48].copy_from_slice(&u64::MAX.to_le_bytes()); // interpreters_head
        let offsets = DebugOffsets::parse(&bytes).unwrap();
        assert!(offsets.layout().is_err());
        // A GIL struct whose `locked` moved is not read with gilscope's GIL offsets.
        let mut bytes = debug_offsets_3_14();
        bytes[18 * 8..19 * 8].copy_from_slice(&7804u64.to_le_bytes());
        let offsets = DebugOffsets::parse(&bytes).unwrap();
        let err = offsets.layout().unwrap_err().to_string();
        assert!(err.contains("GIL struct changed"), "{err}");
    }

    #[test]
    fn the_preamble_tells_free_threaded_builds_apart() {
        let mut bytes = debug_offsets_3_14();
        assert!(!Preamble::read(&bytes).unwrap().free_threaded);
        bytes[16] = 1;
        let preamble = Preamble::read(&bytes).unwrap();
        assert!(preamble.free_threaded);
        assert_eq!(preamble.major_minor(), (3, 14));
        assert_eq!(Preamble::read(b"garbage garbage garbage!"), None);
    }
}
