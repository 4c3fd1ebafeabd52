//! Errors a user can cause, against the real binary: one sentence each saying what to do, and
//! exit 2 (or the command's own status).

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

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
