//! gilscope's offset tables against each installed CPython's own debug information (gdb
//! reading its DWARF), and the offsets CPython 3.13+ publishes against the table.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
// gilscope's internals these tests read, named here alone.
use gilscope::cpython::frames::{FrameRoot, LineFormat};
use gilscope::cpython::layout::{frame_layout, gil_struct, GilPlace, Layout};
use gilscope::process::attach;

fn gdb_offsets(lib: &Path, exprs: &[String]) -> Option<Vec<usize>> {
    let mut cmd = Command::new("gdb");
    cmd.args(["-q", "-batch", "-nx"]);
    for e in exprs {
        cmd.arg("-ex").arg(format!("p/d {e}"));
    }
    let out = cmd.arg(lib).output().ok()?;
    let values: Vec<usize> = text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(" = ").and_then(|(_, v)| v.trim().parse().ok()))
        .collect();
    (values.len() == exprs.len()).then_some(values)
}

/// The stack reader's table row for `py` (3.8–3.12) against the debug information of `lib`.
fn check_frame_layout(py: &Python, lib: &Path) {
    let (major, minor) = py.version;
    let l = frame_layout(major.into(), minor.into()).unwrap();
    let off = |ty: &str, field: &str| format!("(long)&(({ty}*)0)->{field}");
    let (frame, previous, code, instr) = if minor >= 11 {
        ("_PyInterpreterFrame", "previous", "f_code", "prev_instr")
    } else {
        ("PyFrameObject", "f_back", "f_code", "f_lasti")
    };
    let table = match l.lines {
        LineFormat::Lnotab => "co_lnotab",
        _ => "co_linetable",
    };
    let mut checks: Vec<(String, usize)> = vec![
        (off(frame, previous), l.previous),
        (off(frame, code), l.executable),
        (off(frame, instr), l.instr_ptr),
        (off("PyObject", "ob_type"), l.ob_type),
        (off("PyTypeObject", "tp_name"), l.tp_name),
        (off("PyTypeObject", "tp_flags"), l.tp_flags),
        (off("PyCodeObject", "co_filename"), l.co_filename),
        (off("PyCodeObject", "co_name"), l.co_name),
        (off("PyCodeObject", table), l.co_linetable),
        (off("PyCodeObject", "co_firstlineno"), l.co_firstlineno),
        (off("PyBytesObject", "ob_base.ob_size"), l.bytes_size),
        (off("PyBytesObject", "ob_sval"), l.bytes_data),
        (off("PyASCIIObject", "length"), l.str_length),
        (off("PyASCIIObject", "state"), l.str_state),
        ("sizeof(PyASCIIObject)".into(), l.ascii_data),
        ("sizeof(PyCompactUnicodeObject)".into(), l.compact_data),
    ];
    match l.root {
        FrameRoot::CFrame(cframe) => {
            checks.push((off("PyThreadState", "cframe"), cframe));
            checks.push((off("_PyCFrame", "current_frame"), l.current_frame));
        }
        FrameRoot::ThreadState => checks.push((off("PyThreadState", "frame"), l.current_frame)),
    }
    if minor >= 11 {
        checks.push((off(frame, "owner"), l.owner.unwrap()));
        checks.push((off("PyCodeObject", "co_qualname"), l.co_qualname.unwrap()));
        checks.push((off("PyCodeObject", "co_code_adaptive"), l.co_code_adaptive));
        // The highest owner 3.11 has; 3.12's shim owner.
        let owner = if minor == 11 {
            ("(int)FRAME_OWNED_BY_FRAME_OBJECT", l.max_owner)
        } else {
            ("(int)FRAME_OWNED_BY_CSTACK", l.shim_owner)
        };
        checks.push((owner.0.into(), owner.1.into()));
    }
    let exprs: Vec<String> = checks.iter().map(|(e, _)| e.clone()).collect();
    let v = gdb_offsets(lib, &exprs)
        .unwrap_or_else(|| panic!("{}: gdb could not read the frame fields", py.label));
    for ((expr, ours), theirs) in checks.iter().zip(&v) {
        assert_eq!(theirs, ours, "{}: frames: {expr}", py.label);
    }
}

#[test]
fn layout_matches_debug_info() {
    let test = "layout_matches_debug_info";
    if require_program(test, "gdb", "apt-get install gdb").is_none() {
        return;
    }
    let mut checked = 0;
    for py in pythons() {
        let (major, minor) = py.version;
        if py.root.is_some() {
            skip(test, format_args!("{}: runs chrooted, stripped", py.label));
            continue;
        }
        let lib = py
            .program
            .parent()
            .unwrap()
            .join(format!("../lib/libpython{major}.{minor}.so.1.0"));
        if !lib.exists() {
            skip(
                test,
                format_args!("{}: no shared libpython with debug info", py.label),
            );
            continue;
        }
        let layout = Layout::for_version(major.into(), minor.into()).unwrap();
        let off = |ty: &str, field: &str| format!("(long)&(({ty}*)0)->{field}");
        let threads = if minor >= 11 {
            "threads.head"
        } else {
            "tstate_head"
        };
        let mut exprs = vec![
            off("_PyRuntimeState", "interpreters.head"),
            off("PyInterpreterState", "next"),
            off("PyInterpreterState", "id"),
            off("PyInterpreterState", threads),
            off("PyThreadState", "next"),
            off("PyThreadState", "thread_id"),
            match layout.gil {
                GilPlace::InRuntime(_) => off("_PyRuntimeState", "ceval.gil"),
                GilPlace::InterpreterPointer(_) => off("PyInterpreterState", "ceval.gil"),
            },
        ];
        for field in [
            "interval",
            "last_holder",
            "locked",
            "switch_number",
            "cond",
            "mutex",
            "switch_cond",
            "switch_mutex",
        ] {
            exprs.push(off("struct _gil_runtime_state", field));
        }
        exprs.push("sizeof(struct _gil_runtime_state)".into());
        if minor >= 11 {
            exprs.push(off("PyThreadState", "native_thread_id"));
        }
        let Some(v) = gdb_offsets(&lib, &exprs) else {
            skip(
                test,
                format_args!("{}: gdb found no debug information", py.label),
            );
            continue;
        };
        let gil_at = match layout.gil {
            GilPlace::InRuntime(o) | GilPlace::InterpreterPointer(o) => o,
        };
        let ours = [
            layout.runtime_interpreters_head,
            layout.interp_next,
            layout.interp_id,
            layout.interp_threads_head,
            layout.tstate_next,
            layout.tstate_thread_id,
            gil_at,
            gil_struct::INTERVAL,
            gil_struct::LAST_HOLDER,
            gil_struct::LOCKED,
            gil_struct::SWITCH_NUMBER,
            gil_struct::COND,
            gil_struct::MUTEX,
            gil_struct::SWITCH_COND,
            gil_struct::SWITCH_MUTEX,
            gil_struct::SIZE,
        ];
        let mut ours = ours.to_vec();
        ours.extend(layout.tstate_native_thread_id);
        for ((expr, theirs), ours) in exprs.iter().zip(&v).zip(&ours) {
            assert_eq!(theirs, ours, "{}: {expr}", py.label);
        }
        if minor <= 12 {
            check_frame_layout(py, &lib);
        }
        checked += 1;
    }
    eprintln!("layout: checked {checked} interpreters against their debug information");
}

#[test]
fn cpython_3_13_and_later_are_read_through_their_published_debug_offsets() {
    let _turn = exclusive();
    let mut checked = Vec::new();
    for py in require_from(
        "cpython_3_13_and_later_are_read_through_their_published_debug_offsets",
        13,
    ) {
        let target = Running::start(py, "single_busy.py", &["--seconds", "30"]);
        let opened = attach::open(target.pid, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{}: {e}", py.label));
        assert!(
            opened.layout_from_debug_offsets,
            "{}: fell back to the table",
            py.label
        );
        // The fallback table agrees with what the process publishes about itself.
        let (major, minor) = py.version;
        assert_eq!(
            Some(opened.layout),
            Layout::for_version(major.into(), minor.into()),
            "{}",
            py.label
        );
        checked.push(py.full_version.clone());
        passed(py, "debug offsets");
    }
    eprintln!("debug offsets: checked {checked:?}");
}
