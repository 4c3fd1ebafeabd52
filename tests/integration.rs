//! The real binary against real CPython processes: every interpreter found on the machine,
//! every fixture, and every error a user can cause.
//!
//! The interpreters are those `common` finds (pyenv's, Debian's, and what
//! `scripts/test-pythons` provides: sid's 3.13–3.15 in a chroot); it prints which it used and
//! which it skipped, and why.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
// gilscope's internals that the layout and debug-offset tests read, named here alone.
use gilscope::cpython::frames::{FrameRoot, LineFormat};
use gilscope::cpython::layout::{frame_layout, gil_struct, GilPlace, Layout};
use gilscope::process::attach;
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// What a user checks, per fixture and interpreter.

#[test]
fn gil_bound_workers_hold_and_wait_on_every_interpreter() {
    let _turn = exclusive();
    on_every_python(
        "gil_bound_workers_hold_and_wait_on_every_interpreter",
        |py| {
            let (json, summary) =
                record_json(py, "gil_bound.py", &["--threads", "4", "--seconds", "3"]);
            let g = gil0(&json);
            let who = &py.label;
            assert!(f(&g["held"]) >= 0.9, "{who}: held {}", g["held"]);
            assert!(
                f(&g["speedup_ceiling"]) >= 2.5,
                "{who}: ceiling {}",
                g["speedup_ceiling"]
            );
            assert!(
                f(&g["switches_per_s"]) > 20.0,
                "{who}: switches {}",
                g["switches_per_s"]
            );
            assert_eq!(f(&g["switch_interval_ms"]), 5.0, "{who}");
            assert_eq!(verdict_kind(&json), "gil-bound", "{who}: {summary}");
            let workers = threads_named(&json, "worker-");
            assert_eq!(workers.len(), 4, "{who}: {:?}", json["threads"]);
            for w in workers {
                let s = &w["states"];
                assert!(
                    f(&s["waiting"]) >= 0.4,
                    "{who}: {} waiting {}",
                    w["name"],
                    s["waiting"]
                );
                assert!(
                    f(&s["holding"]) >= 0.1,
                    "{who}: {} holding {}",
                    w["name"],
                    s["holding"]
                );
                // Every state the JSON has, whatever the model's states are.
                let total: f64 = s.as_object().unwrap().values().map(f).sum();
                assert!((total - 1.0).abs() < 1e-6, "{who}: shares sum to {total}");
                assert!(
                    f(&w["cpu_s"]) > 0.1,
                    "{who}: {} cpu {}",
                    w["name"],
                    w["cpu_s"]
                );
            }
            assert_eq!(json["top_holders"][0]["function"], "compute", "{who}");
            assert_eq!(
                json["target"]["python"]
                    .as_str()
                    .unwrap()
                    .split('.')
                    .nth(1)
                    .unwrap(),
                py.version.1.to_string()
            );
            assert!(summary.contains("GIL-bound"), "{who}: {summary}");
            passed(py, "GIL-bound threads");
        },
    )
}

#[test]
fn io_bound_threads_leave_the_gil_free() {
    let _turn = exclusive();
    on_every_python("io_bound_threads_leave_the_gil_free", |py| {
        let (json, _) = record_json(py, "io_bound.py", &["--seconds", "2"]);
        let who = &py.label;
        assert!(
            f(&gil0(&json)["held"]) <= 0.1,
            "{who}: held {}",
            gil0(&json)["held"]
        );
        assert_eq!(verdict_kind(&json), "mostly-idle", "{who}");
        assert_not_held_off_cpu(&json, who);
        // The sleepers and the feeder sleep; the socket waiters wait on I/O in select().
        for t in threads_named(&json, "io-") {
            let name = t["name"].as_str().unwrap();
            let state = if name.starts_with("io-sock") {
                "io"
            } else {
                "sleep"
            };
            assert!(
                f(&t["states"][state]) >= 0.8,
                "{who}: {name} {state} {}",
                t["states"]
            );
        }
        passed(py, "I/O-bound threads");
    })
}

#[test]
fn native_code_that_releases_the_gil_reads_native_not_gil_bound() {
    let _turn = exclusive();
    on_every_python(
        "native_code_that_releases_the_gil_reads_native_not_gil_bound",
        |py| {
            let (json, _) = record_json(py, "native_release.py", &["--seconds", "2"]);
            let who = &py.label;
            assert_ne!(json["verdict"]["kind"], "gil-bound", "{who}");
            assert_not_held_off_cpu(&json, who);
            let workers = threads_named(&json, "native-");
            assert_eq!(workers.len(), 4, "{who}");
            // Four threads on this machine's two CPUs: each runs C code about half the time
            // and waits for a CPU the rest.
            for t in workers {
                let s = &t["states"];
                assert!(
                    f(&s["native"]) + f(&s["ready"]) >= 0.8 && f(&s["native"]) >= 0.25,
                    "{who}: {} {s}",
                    t["name"],
                );
            }
            assert!(
                f(&gil0(&json)["held"]) <= 0.5,
                "{who}: held {}",
                gil0(&json)["held"]
            );
            passed(py, "native code");
        },
    )
}

#[test]
fn a_single_busy_thread_is_single_thread_cpu_bound() {
    let _turn = exclusive();
    on_every_python("a_single_busy_thread_is_single_thread_cpu_bound", |py| {
        let (json, _) = record_json(py, "single_busy.py", &["--seconds", "2"]);
        let who = &py.label;
        let g = gil0(&json);
        assert!(f(&g["held"]) >= 0.9, "{who}: held {}", g["held"]);
        assert!(
            f(&g["avg_waiters"]) <= 0.05,
            "{who}: waiters {}",
            g["avg_waiters"]
        );
        assert_eq!(verdict_kind(&json), "single-thread-cpu", "{who}");
        assert_not_held_off_cpu(&json, who);
        let busy = threads_named(&json, "busy");
        assert!(f(&busy[0]["states"]["holding"]) >= 0.9, "{who}");
        assert_eq!(json["top_holders"][0]["function"], "spin", "{who}");
        passed(py, "single busy thread");
    })
}

#[test]
fn one_cpu_thread_with_bursty_threads_makes_them_wait() {
    let _turn = exclusive();
    on_every_python("one_cpu_thread_with_bursty_threads_makes_them_wait", |py| {
        let (json, _) = record_json(py, "cpu_plus_bursty.py", &["--seconds", "2"]);
        let who = &py.label;
        let cpu = threads_named(&json, "cpu-1");
        assert!(
            f(&cpu[0]["states"]["holding"]) >= 0.5,
            "{who}: cpu-1 {}",
            cpu[0]["states"]
        );
        for t in threads_named(&json, "bursty-") {
            let s = &t["states"];
            assert!(f(&s["sleep"]) >= 0.3, "{who}: {} {s}", t["name"]);
            assert!(f(&s["waiting"]) >= 0.02, "{who}: {} {s}", t["name"]);
            assert!(f(&s["holding"]) < f(&cpu[0]["states"]["holding"]), "{who}");
        }
        let kind = verdict_kind(&json);
        assert!(
            ["gil-bound", "partly-gil-contended"].contains(&kind),
            "{who}: {kind}"
        );
        passed(py, "CPU + bursty threads");
    })
}

#[test]
fn a_gil_held_off_cpu_is_a_finding_with_its_stack() {
    let _turn = exclusive();
    on_every_python("a_gil_held_off_cpu_is_a_finding_with_its_stack", |py| {
        let (json, summary) = record_json(py, "gil_offcpu.py", &["--seconds", "3"]);
        let who = &py.label;
        let finding = json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == "held-off-cpu")
            .unwrap_or_else(|| panic!("{who}: no held-off-cpu finding: {summary}"));
        assert!(
            finding["summary"].as_str().unwrap().contains("blocker"),
            "{who}: {finding}"
        );
        assert_eq!(
            finding["sites"][0]["function"], "block_with_gil",
            "{who}: {finding}"
        );
        let blocker = threads_named(&json, "blocker");
        assert!(
            f(&blocker[0]["held_off_cpu"]) > 0.1,
            "{who}: {}",
            blocker[0]
        );
        for w in threads_named(&json, "worker-") {
            assert!(
                f(&w["states"]["waiting"]) >= 0.3,
                "{who}: {} {}",
                w["name"],
                w["states"]
            );
        }
        assert!(summary.contains("Findings"), "{who}: {summary}");
        passed(py, "GIL held off CPU");
    })
}

#[test]
fn a_changed_switch_interval_is_read_from_the_gil_and_reported() {
    let _turn = exclusive();
    on_every_python(
        "a_changed_switch_interval_is_read_from_the_gil_and_reported",
        |py| {
            let args = [
                "--threads",
                "2",
                "--seconds",
                "1.5",
                "--switch-interval-ms",
                "2",
            ];
            let (json, _) = record_json(py, "gil_bound.py", &args);
            let who = &py.label;
            assert_eq!(f(&gil0(&json)["switch_interval_ms"]), 2.0, "{who}");
            assert!(
                finding_kinds(&json).contains(&"switch-interval"),
                "{who}: {}",
                json["findings"]
            );
            passed(py, "switch interval");
        },
    )
}

#[test]
fn attach_profiles_a_running_process_and_writes_the_report() {
    let _turn = exclusive();
    on_every_python(
        "attach_profiles_a_running_process_and_writes_the_report",
        |py| {
            let target = Running::start(py, "gil_bound.py", &["--seconds", "30"]);
            let dir = tempfile::tempdir().unwrap();
            let pid = target.pid.to_string();
            let out = gilscope(dir.path(), &["attach", "--duration", "1.5", &pid]);
            let stderr = text(&out.stderr);
            assert!(out.status.success(), "{}: {stderr}", py.label);
            assert!(stderr.contains("GIL-bound"), "{}: {stderr}", py.label);
            // Attaching never stops the target: it is still running afterwards.
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            assert!(!state.contains(") T "), "{}: target left stopped", py.label);
            let svg = std::fs::read_to_string(dir.path().join(format!("gilscope-{pid}.svg")))
                .unwrap_or_else(|e| panic!("{}: default report: {e}", py.label));
            let doc = roxmltree::Document::parse(&svg)
                .unwrap_or_else(|e| panic!("{}: the report is not well-formed: {e}", py.label));
            let texts: String = doc.descendants().filter_map(|n| n.text()).collect();
            assert!(texts.contains("GIL-bound"), "{}: no verdict", py.label);
            assert!(texts.contains("[waiting for GIL]"), "{}", py.label);
            // Frames name their file as the program's working directory sees it.
            assert!(
                doc.descendants()
                    .filter_map(|n| n.text())
                    .any(|t| t.starts_with("compute (") && t.contains("gil_bound.py:")),
                "{}",
                py.label
            );
            for worker in ["worker-1", "worker-4"] {
                assert!(texts.contains(worker), "{}: no lane for {worker}", py.label);
            }
            // Waiting is red, holding green: the state colours.
            assert!(
                svg.contains("#dc322f") && svg.contains("#3caa50"),
                "{}",
                py.label
            );
            passed(py, "attach + report");
        },
    )
}

// ---------------------------------------------------------------------------------------
// Errors a user can cause: one sentence, exit 2 (or the command's own status).

#[test]
fn attaching_to_a_pid_that_does_not_exist() {
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["attach", &gone.id().to_string()]);
    assert_error(&out, "no process has pid");
    // A failed run leaves an existing report alone and creates no empty one.
    std::fs::write(dir.path().join("old.svg"), "old report").unwrap();
    for name in ["old.svg", "new.svg"] {
        let out = gilscope(dir.path(), &["attach", "-o", name, &gone.id().to_string()]);
        assert_error(&out, "no process has pid");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("old.svg")).unwrap(),
        "old report"
    );
    assert!(!dir.path().join("new.svg").exists());
}

#[test]
fn attaching_to_a_process_that_is_not_python() {
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["attach", &sleeper.id().to_string()]);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    assert_error(&out, "is not a CPython process");
}

#[test]
fn a_too_old_python_gets_the_list_of_supported_versions() {
    let old = old_pythons();
    if old.is_empty() {
        skip(
            "a_too_old_python_gets_the_list_of_supported_versions",
            "no CPython 2.7, 3.6 or 3.7 in ~/.pyenv/versions (pyenv install 3.7)",
        );
    }
    for py in old {
        let dir = tempfile::tempdir().unwrap();
        let script = "import time\nwhile True: time.sleep(0.01)";
        let out = gilscope(
            dir.path(),
            &["record", "--", py.to_str().unwrap(), "-c", script],
        );
        assert_error(&out, "supported: 3.8 to 3.15, and free-threaded 3.13t");
        assert!(
            text(&out.stderr).contains("runs CPython"),
            "{}: {}",
            py.display(),
            text(&out.stderr)
        );
        // ~/.pyenv/versions/2.7.18/bin/python → 2.7.18
        let version = py.ancestors().nth(2).and_then(|v| v.file_name());
        let version = version.map_or("?".into(), |v| v.to_string_lossy().into_owned());
        passed_as(&version, "pyenv", "refused: too old");
    }
}

#[test]
fn pypy_is_not_cpython() {
    let Some(pypy) = require_program("pypy_is_not_cpython", "pypy3", "apt-get install pypy3")
    else {
        return;
    };
    let mut child = Command::new(&pypy)
        .args(["-c", "import time\nwhile True: time.sleep(0.01)"])
        .spawn()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["attach", &child.id().to_string()]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_error(&out, "is not a CPython process");
    assert!(text(&out.stderr).contains("pypy"), "{}", text(&out.stderr));
    passed_as("PyPy", "Debian", "refused: not CPython");
}

#[test]
fn permission_denied_explains_what_to_do() {
    if !require_nobody("permission_denied_explains_what_to_do") {
        return;
    }
    let _turn = exclusive();
    let py = pythons()[0];
    let target = Running::start(py, "single_busy.py", &["--seconds", "30"]);
    let out = gilscope_as_nobody(&["attach", &target.pid.to_string()]);
    assert_error(&out, "permission denied");
    let stderr = text(&out.stderr);
    for hint in ["sudo", "CAP_SYS_PTRACE", "gilscope record"] {
        assert!(stderr.contains(hint), "no {hint} in: {stderr}");
    }
}

#[test]
fn a_target_that_exits_mid_run_still_gets_its_report() {
    let _turn = exclusive();
    let py = pythons()[0];
    let target = Running::start(py, "gil_bound.py", &["--seconds", "1.5"]);
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(
        dir.path(),
        &[
            "attach",
            "-f",
            "json",
            "-o",
            "out.json",
            &target.pid.to_string(),
        ],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("exited; reporting what was collected"),
        "{stderr}"
    );
    let json: Value = json_file(&dir.path().join("out.json"));
    assert!(f(&json["run"]["state_samples"]) > 100.0, "{json}");
    assert_eq!(json["verdict"]["kind"], "gil-bound");
}

#[test]
fn an_unwritable_output_fails_before_the_program_starts() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let script = format!("open({:?}, 'w')", marker.to_str().unwrap());
    let out = gilscope(
        dir.path(),
        &[
            "record",
            "-o",
            "/nonexistent-dir/report.svg",
            "--",
            "python3",
            "-c",
            &script,
        ],
    );
    assert_error(&out, "cannot write /nonexistent-dir/report.svg");
    assert!(
        !marker.exists(),
        "the program ran although the report could not be written"
    );
}

#[test]
fn a_command_that_cannot_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["record", "--", "/nonexistent/program", "arg"]);
    assert_error(&out, "cannot start `/nonexistent/program arg`");
}

#[test]
fn a_failing_program_is_not_turned_into_a_pass() {
    let _turn = exclusive();
    let py = pythons()[0];
    let dir = tempfile::tempdir().unwrap();
    // An older, longer report in the way: it must be replaced, not partly overwritten.
    std::fs::write(dir.path().join("r.svg"), "x".repeat(1 << 20)).unwrap();
    let script =
        "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass\nraise SystemExit(3)";
    let argv = py.argv();
    let mut args = vec!["record", "-q", "-o", "r.svg", "--"];
    args.extend(argv.iter().map(String::as_str));
    args.extend(["-c", script]);
    let out = gilscope(dir.path(), &args);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    // The report is still written, in full and alone.
    let svg = std::fs::read_to_string(dir.path().join("r.svg")).unwrap();
    assert!(
        svg.trim_end().ends_with("</svg>") && svg.contains("[holding GIL]"),
        "{svg:.200}"
    );
}

#[test]
fn bad_options_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["attach", "--rate", "0", "1"]);
    assert_error(&out, "--rate must be above 0");

    let out = gilscope(dir.path(), &["attach", "--format", "png", "1"]);
    assert_eq!(out.status.code(), Some(2));
}

// ---------------------------------------------------------------------------------------
// The offset tables against each installed version's own debug information.

/// `offsetof(type, field)` as gdb computes it from the library's DWARF.
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

#[test]
fn ctrl_c_ends_a_record_run_with_its_report() {
    use std::os::unix::process::CommandExt;
    let _turn = exclusive();
    let py = pythons()[0];
    let dir = tempfile::tempdir().unwrap();
    let mut run = Command::new(BIN)
        .args(["record", "-f", "json", "-o", "out.json", "--"])
        .args(py.argv())
        .arg(py.fixture("single_busy.py"))
        .args(["--seconds", "60"])
        .current_dir(dir.path())
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until gilscope says it samples (its first line on stderr).
    let (mut stderr, first) = first_stderr_line(&mut run);
    assert!(first.contains("sampling pid"), "{first}");
    // What a terminal does on Ctrl-C: SIGINT to the whole foreground process group.
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(-(run.id() as i32), libc::SIGINT) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(rest.contains("GIL-state samples"), "no summary: {rest}");
    let json: Value = json_file(&dir.path().join("out.json"));
    assert!(f(&json["run"]["state_samples"]) > 0.0, "{json}");
}

#[test]
fn an_asyncio_event_loop_reads_busy_or_idle_and_the_gil_is_not_blamed() {
    let _turn = exclusive();
    on_every_python(
        "an_asyncio_event_loop_reads_busy_or_idle_and_the_gil_is_not_blamed",
        |py| {
            let who = &py.label;
            let (busy, summary) = record_json(
                py,
                "asyncio_loop.py",
                &["--seconds", "2", "--busy-ms", "5", "--sleep-ms", "0"],
            );
            assert_eq!(verdict_kind(&busy), "single-thread-cpu", "{who}: {summary}");
            assert!(
                f(&gil0(&busy)["contended"]) <= 0.05,
                "{who}: {}",
                gil0(&busy)
            );
            let looping = threads_named(&busy, "event-loop");
            assert!(
                f(&looping[0]["states"]["holding"]) >= 0.8,
                "{who}: {}",
                looping[0]
            );
            // First, or after the advice about a starved run.
            let advice = &busy["verdict"]["advice"];
            assert!(
                advice
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a.as_str().unwrap().contains("asyncio event loop")),
                "{who}: {advice}"
            );

            let (idle, summary) = record_json(
                py,
                "asyncio_loop.py",
                &["--seconds", "2", "--busy-ms", "1", "--sleep-ms", "50"],
            );
            assert_eq!(verdict_kind(&idle), "mostly-idle", "{who}: {summary}");
            let looping = threads_named(&idle, "event-loop");
            assert!(
                // Off CPU in the selector's epoll_wait(): waiting on I/O.
                f(&looping[0]["states"]["io"]) >= 0.6,
                "{who}: {}",
                looping[0]
            );
            passed(py, "asyncio");
        },
    )
}
