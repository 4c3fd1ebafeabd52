//! The life of a run from the outside: signals end it with its reports and take the program
//! with it, closed pipes are not panics, `-o -` holds the report alone, bad arguments are
//! refused before anything is written, and every refusal says what to do. Each run is the
//! real binary, on a real CPython process where one is needed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Starts `command` (a gilscope run) in `dir`, its stderr in `dir/stderr`, and waits until the
/// program is `ready` and gilscope samples it.
fn spawn_sampling(mut command: Command, dir: &Path, ready: impl FnMut() -> bool) -> Child {
    let err = std::fs::File::create(dir.join("stderr")).unwrap();
    let child = command
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    wait_until("the program's ready file", ready);
    wait_until("gilscope to sample", || {
        std::fs::read_to_string(dir.join("stderr")).is_ok_and(|s| s.contains("sampling pid"))
    });
    child
}

/// `gilscope record -f json -o out.json -- PY single_busy.py` in `dir`, its stderr in
/// `dir/stderr`, once the program is ready and gilscope samples it: (gilscope, program pid).
fn start_recording(py: &Python, dir: &Path, opts: &[&str]) -> (Child, i32) {
    let ready = dir.join("ready");
    let mut command = Command::new(BIN);
    command
        .args(["record", "-f", "json", "-o", "out.json"])
        .args(opts)
        .arg("--")
        .args(py.argv())
        .arg(py.fixture("single_busy.py"))
        .args(["--seconds", "120", "--ready"])
        .arg(py.inside(&ready));
    let child = spawn_sampling(command, dir, || {
        std::fs::read_to_string(&ready).is_ok_and(|s| s.ends_with('\n'))
    });
    let pid = std::fs::read_to_string(&ready)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (child, pid)
}

/// The host's CPython: tests of the process's life need one interpreter, not all.
fn python() -> &'static Python {
    host_pythons()
        .first()
        .copied()
        .unwrap_or_else(|| pythons()[0])
}

#[test]
fn sigterm_sighup_and_sigint_sent_to_gilscope_end_the_run_with_its_report() {
    let _turn = exclusive();
    let py = python();
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGHUP, 129), (libc::SIGINT, 0)] {
        let dir = tempfile::tempdir().unwrap();
        let (mut gilscope, program) = start_recording(py, dir.path(), &[]);
        kill(gilscope.id(), signal);
        let status = gilscope.wait().unwrap();
        let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
        assert_eq!(status.code(), Some(code), "signal {signal}: {stderr}");
        let json: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("out.json")).unwrap())
                .unwrap_or_else(|e| panic!("signal {signal}: the report is not JSON: {e}"));
        assert!(f(&json["run"]["state_samples"]) > 0.0, "{}", json["run"]);
        // Passed on to the program, which it ended; gilscope stopped it, so no failure.
        assert_eq!(
            json["exit"]["stopped_by_gilscope"], true,
            "{}",
            json["exit"]
        );
        assert_eq!(json["exit"]["failed"], false, "{}", json["exit"]);
        assert!(
            gone(program),
            "signal {signal}: the program {program} still runs"
        );
        assert!(stderr.contains("GIL-state samples"), "no summary: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    passed(py, "signals end a run with its report");
}

#[test]
fn the_program_does_not_outlive_a_killed_gilscope() {
    let _turn = exclusive();
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let (mut gilscope, program) = start_recording(py, dir.path(), &[]);
    kill(gilscope.id(), libc::SIGKILL);
    gilscope.wait().unwrap();
    assert!(
        within(Duration::from_secs(10), || gone(program)),
        "the program {program} outlived gilscope by 10 s"
    );
}

#[test]
fn a_closed_stderr_is_not_a_panic_and_the_report_is_written() {
    let _turn = exclusive();
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    // `gilscope … 2>&1 | head -1`: the reader takes the first line and goes away.
    let mut gilscope = Command::new(BIN)
        .args(["record", "-d", "1", "-f", "json", "-o", "out.json", "--"])
        .args(py.argv())
        .arg(py.fixture("single_busy.py"))
        .args(["--seconds", "30"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stderr, first) = first_stderr_line(&mut gilscope);
    drop(stderr);
    let status = gilscope.wait().unwrap();
    assert_eq!(status.code(), Some(0), "after {first:?}");
    let json: Value = json_file(&dir.path().join("out.json"));
    assert!(f(&json["run"]["state_samples"]) > 0.0, "{}", json["run"]);
}

/// A recording of a short run of `py`, in `dir`.
fn recording(py: &Python, dir: &Path) -> PathBuf {
    let out = Command::new(BIN)
        .args(["record", "-q", "-d", "1", "-f", "json", "-o", "/dev/null"])
        .args(["--recording", "run.gz", "--"])
        .args(py.argv())
        .arg(py.fixture("single_busy.py"))
        .args(["--seconds", "30"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    dir.join("run.gz")
}

#[test]
fn a_closed_stdout_ends_quietly_in_every_format() {
    let _turn = exclusive();
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let rec = recording(py, dir.path());
    for format in ["json", "svg", "perfetto", "pprof", "collapsed", "markdown"] {
        // `report -o - rec | head -c 10`, with the reader gone before the first byte.
        let mut child = Command::new(BIN)
            .args(["report", "-q", "-f", format, "-o", "-"])
            .arg(&rec)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{format}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{format}: {stderr}");
        assert!(!stderr.contains("panicked"), "{format}: {stderr}");
    }
}

#[test]
fn with_o_dash_stdout_holds_the_report_alone_and_the_program_prints_to_stderr() {
    let _turn = exclusive();
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let script = "import time\nprint('hello from the program', flush=True)\ntime.sleep(0.5)\n";
    let out = Command::new(BIN)
        .args(["record", "-q", "-f", "json", "-o", "-", "--"])
        .args(py.argv())
        .args(["-c", script])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(&out.stdout)));
    assert_eq!(
        json["schema"].as_str().map(|s| s.starts_with("gilscope")),
        Some(true)
    );
    assert!(stderr.contains("hello from the program"), "{stderr}");
}

#[test]
fn durations_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["record", "-d", "1e20", "--", "true"]);
    assert_error(
        &out,
        "--duration must be a positive number of seconds, at most",
    );
    let out = gilscope(dir.path(), &["attach", "-d", "1e30", "1"]);
    assert_error(&out, "at most 2592000 (30 days)");
    let out = gilscope(dir.path(), &["attach", "-d", "NaN", "1"]);
    assert_error(&out, "--duration must be");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_report_never_overwrites_its_recording() {
    let _turn = exclusive();
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let rec = recording(py, dir.path());
    let before = std::fs::read(&rec).unwrap();
    std::os::unix::fs::symlink(&rec, dir.path().join("link.gz")).unwrap();
    for o in ["run.gz", "./run.gz", "link.gz"] {
        let out = gilscope(dir.path(), &["report", "-f", "json", "-o", o, "run.gz"]);
        assert_error(&out, "would overwrite the recording");
        assert_eq!(std::fs::read(&rec).unwrap(), before, "-o {o}");
    }
    // Nor does a live run write its report over its own recording.
    for o in ["run.gz", "new.gz"] {
        let out = gilscope(
            dir.path(),
            &["record", "--recording", o, "-o", o, "--", "true"],
        );
        assert_error(&out, "--recording and -o both name");
    }
    assert_eq!(std::fs::read(&rec).unwrap(), before);
    assert!(!dir.path().join("new.gz").exists());
}

#[test]
fn a_failed_run_leaves_no_empty_report() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old.json"), "old report").unwrap();
    for o in ["new.json", "old.json"] {
        let out = gilscope(
            dir.path(),
            &[
                "record",
                "-f",
                "json",
                "-o",
                o,
                "--",
                "no-such-program-here",
            ],
        );
        assert_error(&out, "cannot start");
        let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
        let out = gilscope(
            dir.path(),
            &["attach", "-f", "json", "-o", o, &sleeper.id().to_string()],
        );
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        assert_error(&out, "is not a CPython process");
    }
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["old.json"]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("old.json")).unwrap(),
        "old report"
    );
}

#[test]
fn a_program_argument_need_not_be_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let _turn = exclusive();
    let py = python();
    let dir = py.tempdir();
    let name = std::ffi::OsStr::from_bytes(b"bad\xff.py");
    std::fs::write(
        dir.path().join(name),
        "import time\nprint('ran', flush=True)\ntime.sleep(0.3)\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["record", "-f", "json", "-o", "-", "--"])
        .args(py.argv())
        .arg(name)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("ran"), "the program did not run: {stderr}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let shown = json.to_string();
    assert!(shown.contains("bad\u{fffd}.py"), "{}", json["target"]);
}

#[test]
fn a_directory_is_not_a_recording() {
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["report", "."]);
    assert_error(&out, "it is a directory");
    assert!(!text(&out.stderr).contains("gzip"), "{}", text(&out.stderr));
}

#[test]
fn a_kernel_thread_gets_one_sentence() {
    if std::fs::read_to_string("/proc/2/comm").ok().as_deref() != Some("kthreadd\n") {
        skip(
            "a_kernel_thread_gets_one_sentence",
            "pid 2 is not kthreadd here (a PID namespace)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["attach", "2"]);
    assert_error(
        &out,
        "process 2 (kthreadd) is a kernel thread, not a Python process",
    );
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("os error"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_process_that_is_not_python_is_named_in_gilscopes_words() {
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["attach", &sleeper.id().to_string()]);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    assert_error(&out, "sleep) is not a CPython process");
    let stderr = text(&out.stderr);
    for leaked in ["Failed to", "python version from target", "os error"] {
        assert!(!stderr.contains(leaked), "{leaked:?} in: {stderr}");
    }
}

#[test]
fn root_refused_is_not_told_to_run_as_root() {
    let test = "root_refused_is_not_told_to_run_as_root";
    if !require_root(test, "to be refused as root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["attach", "1"]);
    let stderr = text(&out.stderr);
    if !stderr.contains("permission denied") {
        skip(test, format_args!("root may read pid 1 here: {stderr}"));
        return;
    }
    assert_error(&out, "gilscope runs as root");
    assert!(!stderr.contains("sudo"), "{stderr}");
    assert!(!stderr.contains("Run it as root"), "{stderr}");
}

#[test]
fn the_unprivileged_hint_is_short_and_names_the_likeliest_fix() {
    if !require_nobody("the_unprivileged_hint_is_short_and_names_the_likeliest_fix") {
        return;
    }
    let _turn = exclusive();
    let py = python();
    let target = Running::start(py, "single_busy.py", &["--seconds", "30"]);
    let out = gilscope_as_nobody(&["attach", "-o", "/dev/null", &target.pid.to_string()]);
    assert_error(&out, "permission denied");
    let stderr = text(&out.stderr);
    let hint = stderr.split(". ").nth(1).unwrap_or_default();
    assert!(
        hint.starts_with("It runs as another user: run `sudo gilscope"),
        "{stderr}"
    );
    let words = hint.split_whitespace().count();
    assert!(words <= 35, "{words} words: {hint}");
}

/// A program that ignores SIGTERM and SIGINT and writes `ready` once it does.
const STUBBORN: &str = "import signal, sys, time\n\
signal.signal(signal.SIGTERM, signal.SIG_IGN)\n\
signal.signal(signal.SIGINT, signal.SIG_IGN)\n\
open(sys.argv[1] + '.tmp', 'w').write('ready\\n')\n\
import os; os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n\
while True:\n    sum(range(10000))\n";

/// `record` of [`STUBBORN`] in `dir`, its stderr in `dir/stderr`, once gilscope samples it.
fn start_stubborn(py: &Python, dir: &Path) -> Child {
    let ready = dir.join("ready");
    let mut command = Command::new(BIN);
    command
        .args(["record", "-f", "json", "-o", "out.json", "--"])
        .args(py.argv())
        .args(["-c", STUBBORN])
        .arg(py.inside(&ready));
    spawn_sampling(command, dir, || ready.exists())
}

#[test]
fn a_program_that_ignores_the_signal_is_killed_after_the_grace_or_at_a_second_signal() {
    let _turn = exclusive();
    let py = python();
    // One signal: the grace (5 s), SIGTERM, 2 s, then SIGKILL; the report is written.
    let dir = tempfile::tempdir().unwrap();
    let mut gilscope = start_stubborn(py, dir.path());
    let sent = Instant::now();
    kill(gilscope.id(), libc::SIGTERM);
    let status = gilscope.wait().unwrap();
    let took = sent.elapsed();
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(took >= Duration::from_secs(5), "{took:?}: {stderr}");
    assert!(took < Duration::from_secs(40), "{took:?}: {stderr}");
    assert!(stderr.contains("waiting up to 5 s"), "{stderr}");
    let json: Value = json_file(&dir.path().join("out.json"));
    assert_eq!(json["exit"]["signal"], "SIGKILL", "{}", json["exit"]);

    // A second signal kills it at once.
    let dir = tempfile::tempdir().unwrap();
    let mut gilscope = start_stubborn(py, dir.path());
    kill(gilscope.id(), libc::SIGINT);
    wait_until("gilscope to wait for the program", || {
        std::fs::read_to_string(dir.path().join("stderr")).is_ok_and(|s| s.contains("waiting up"))
    });
    let again = Instant::now();
    kill(gilscope.id(), libc::SIGINT);
    let status = gilscope.wait().unwrap();
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        again.elapsed() < Duration::from_secs(4),
        "{:?}",
        again.elapsed()
    );
    let json: Value = json_file(&dir.path().join("out.json"));
    assert_eq!(json["exit"]["signal"], "SIGKILL", "{}", json["exit"]);
}

/// `record -f json -o out.json -- PY count_signals.py` in `dir` as `argv` (after the
/// `record` options), and where the fixture writes its ready file and its count.
fn counting(py: &Python, dir: &Path) -> (Vec<String>, PathBuf, PathBuf) {
    let (ready, count) = (dir.join("ready"), dir.join("count"));
    let mut argv: Vec<String> = ["record", "-f", "json", "-o", "out.json", "--"]
        .map(String::from)
        .into();
    argv.extend(py.argv());
    argv.push(py.fixture("count_signals.py"));
    argv.extend(["--ready".into(), py.inside(&ready)]);
    argv.extend(["--count".into(), py.inside(&count)]);
    (argv, ready, count)
}

fn signals_counted(count: &Path) -> u32 {
    wait_until("the program's count", || {
        std::fs::read_to_string(count).is_ok_and(|s| s.ends_with('\n'))
    });
    std::fs::read_to_string(count)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_signal_sent_to_gilscope_alone_reaches_the_program_once() {
    let _turn = exclusive();
    let py = python();
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGHUP, 129), (libc::SIGINT, 0)] {
        let dir = py.tempdir();
        let (argv, ready, count) = counting(py, dir.path());
        let err = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let mut gilscope = Command::new(BIN)
            .args(&argv)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        wait_until("the program's ready file", || ready.exists());
        wait_until("gilscope to sample", || {
            std::fs::read_to_string(dir.path().join("stderr"))
                .is_ok_and(|s| s.contains("sampling pid"))
        });
        kill(gilscope.id(), signal);
        let status = gilscope.wait().unwrap();
        let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
        assert_eq!(status.code(), Some(code), "signal {signal}: {stderr}");
        assert_eq!(signals_counted(&count), 1, "signal {signal}: {stderr}");
        assert!(dir.path().join("out.json").exists(), "{stderr}");
    }
}

#[test]
fn ctrl_c_at_a_terminal_is_not_passed_on_twice() {
    let _turn = exclusive();
    // The terminal's driver runs on the host.
    let Some(py) = host_python("ctrl_c_at_a_terminal_is_not_passed_on_twice") else {
        return;
    };
    let dir = py.tempdir();
    let (argv, ready, count) = counting(py, dir.path());
    let out = Command::new(&py.program)
        .arg(fixtures_dir().join("_pty_driver.py"))
        .arg(&ready)
        .arg("sampling pid")
        .arg("--")
        .arg(BIN)
        .args(&argv)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown}{}", text(&out.stderr));
    assert!(shown.trim_end().ends_with("exit 0"), "{shown}");
    // The terminal sent SIGINT to the program itself; gilscope did not send another.
    assert_eq!(signals_counted(&count), 1, "{shown}");
    let json: Value = json_file(&dir.path().join("out.json"));
    assert_eq!(json["exit"]["code"], 0, "{}", json["exit"]);
}
