//! A target followed where it goes: through an `exec` into another Python (`record` and
//! `attach`), or into a program that is not Python; and from a wrapper (a shell script,
//! `bash -c`) to the Python it runs, whose status is passed on. Real gilscope, real CPython.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use common::*;
use serde_json::Value;

/// The oldest and the newest interpreter that run without a chroot (the fixtures exec by
/// path, and the wrappers run the interpreter by its path): enough versions for speed. None,
/// once it said why `test` is skipped, when every one runs chrooted.
fn plain_pythons(test: &str) -> Vec<&'static Python> {
    if host_python(test).is_none() {
        return Vec::new();
    }
    let mut plain = host_pythons();
    plain.sort_by_key(|p| p.version);
    match (plain.first(), plain.last()) {
        (Some(a), Some(b)) if a.version != b.version => vec![*a, *b],
        (Some(a), _) => vec![*a],
        _ => Vec::new(),
    }
}

/// Every function a report names among the GIL's holders and waiters.
fn functions(json: &Value) -> HashSet<String> {
    ["top_holders", "top_waiters"]
        .iter()
        .flat_map(|k| json[k].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["function"].as_str().map(str::to_string))
        .collect()
}

/// The report's one exec, checked to go from `before` to `after` (command line words).
fn the_exec<'a>(json: &'a Value, before: &str, after: &str, who: &str) -> &'a Value {
    let execs = json["execs"]
        .as_array()
        .unwrap_or_else(|| panic!("{who}: no execs in the report: {}", json["run"]));
    assert_eq!(execs.len(), 1, "{who}: {execs:?}");
    let e = &execs[0];
    let words = |k: &str| {
        e[k].as_array()
            .unwrap()
            .iter()
            .map(|w| w.to_string())
            .collect::<String>()
    };
    assert!(words("before").contains(before), "{who}: {e}");
    assert!(words("after").contains(after), "{who}: {e}");
    e
}

/// Failed samples stay as few as in any run: the exec's own failed reads are not counted.
fn assert_few_failed(json: &Value, stderr: &str, who: &str) {
    let run = &json["run"];
    let failed = run["failed_samples"].as_u64().unwrap();
    let states = run["state_samples"].as_u64().unwrap();
    // A busy machine costs a few at each interpreter's start; a counted exec cost hundreds.
    assert!(
        failed <= 10 + states / 50,
        "{who}: {failed} failed of {states}: {stderr}"
    );
}

fn record_in(dir: &Path, opts: &[&str], command: &[&str]) -> (Option<i32>, String, Value) {
    let mut args = vec!["record", "-f", "json", "-o", "out.json"];
    args.extend(opts);
    args.push("--");
    args.extend(command);
    let out = gilscope(dir, &args);
    let stderr = text(&out.stderr);
    let report =
        std::fs::read(dir.join("out.json")).unwrap_or_else(|e| panic!("no report ({e}): {stderr}"));
    let json: Value =
        serde_json::from_slice(&report).unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"));
    (out.status.code(), stderr, json)
}

#[test]
fn record_follows_an_exec_into_another_python() {
    let _turn = exclusive();
    let all = plain_pythons("record_follows_an_exec_into_another_python");
    for (i, py) in all.iter().enumerate() {
        // Into the other interpreter of the sample, when there is one: another version.
        let into = all[(i + 1) % all.len()];
        let who = format!("{} → {}", py.label, into.label);
        let dir = tempfile::tempdir().unwrap();
        let then = dir.path().join("after-ready");
        let fx = py.fixture("follow_exec.py");
        let program = py.program.display().to_string();
        let into_program = into.program.display().to_string();
        let command = [
            program.as_str(),
            &fx,
            "--seconds",
            "1.5",
            "--python",
            &into_program,
            "--then",
            then.to_str().unwrap(),
        ];
        let (code, stderr, json) = record_in(dir.path(), &["--recording", "run.gz"], &command);
        assert_eq!(code, Some(0), "{who}: {stderr}");
        // The recording keeps the exec: its report says the same.
        let again = gilscope(dir.path(), &["report", "-f", "json", "-o", "-", "run.gz"]);
        assert!(again.status.success(), "{who}: {}", text(&again.stderr));
        let replayed: Value = serde_json::from_slice(&again.stdout).unwrap();
        assert_eq!(replayed["execs"], json["execs"], "{who}");
        assert!(
            then.exists(),
            "{who}: the program after the exec never got ready"
        );
        let seen = functions(&json);
        for f in ["before_exec_spin", "after_exec_work"] {
            assert!(seen.contains(f), "{who}: no {f} in {seen:?}\n{stderr}");
        }
        assert!(!threads_named(&json, "before-").is_empty(), "{who}");
        assert!(!threads_named(&json, "after-").is_empty(), "{who}");
        let e = the_exec(&json, "follow_exec.py", "follow_after.py", &who);
        assert_eq!(e["python"], into.full_version, "{who}: {e}");
        // Seconds into the run: after the 1.5 s before it, before the run's end.
        let at = f(&e["at_s"]);
        let duration = f(&json["run"]["duration_s"]);
        assert!(
            at >= 1.4 && at < duration,
            "{who}: exec at {at} of {duration} s"
        );
        // The run covers both programs: 1.5 s before the exec and 2 s after it (its
        // duration counts from the first sample, which a busy machine may delay).
        assert!(
            duration >= 2.5,
            "{who}: {duration} s, exec at {at}: {stderr}"
        );
        assert_few_failed(&json, &stderr, &who);
        assert!(
            stderr.contains(" exec'd at ") && stderr.contains("follow_after.py"),
            "{who}: {stderr}"
        );
        passed(py, "record through an exec");
    }
}

#[test]
fn attach_follows_an_exec_and_says_exited_only_at_the_end() {
    let _turn = exclusive();
    for py in plain_pythons("attach_follows_an_exec_and_says_exited_only_at_the_end") {
        let who = &py.label;
        let dir = tempfile::tempdir().unwrap();
        let then = dir.path().join("after-ready");
        let target = Running::start(
            py,
            "follow_exec.py",
            &["--seconds", "2", "--then", then.to_str().unwrap()],
        );
        let pid = target.pid.to_string();
        let started = Instant::now();
        let out = gilscope(dir.path(), &["attach", "-f", "json", "-o", "-", &pid]);
        let took = started.elapsed().as_secs_f64();
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{who}: {stderr}");
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            then.exists(),
            "{who}: the program after the exec never got ready"
        );
        let seen = functions(&json);
        for f in ["before_exec_spin", "after_exec_work"] {
            assert!(seen.contains(f), "{who}: no {f} in {seen:?}\n{stderr}");
        }
        the_exec(&json, "follow_exec.py", "follow_after.py", who);
        assert_few_failed(&json, &stderr, who);
        // It ran until the program after the exec ended: 2 s before, 2 s after.
        assert!(
            took >= 3.0,
            "{who}: attach ended after {took:.1} s: {stderr}"
        );
        let exited = stderr
            .find(&format!("process {pid} exited"))
            .unwrap_or_else(|| panic!("{who}: {stderr}"));
        assert!(
            stderr.find(" exec'd at ").is_some_and(|e| e < exited),
            "{who}: {stderr}"
        );
        passed(py, "attach through an exec");
    }
}

#[test]
fn an_exec_into_a_program_that_is_not_python_stops_sampling_with_a_sentence() {
    let _turn = exclusive();
    let Some(&py) =
        plain_pythons("an_exec_into_a_program_that_is_not_python_stops_sampling_with_a_sentence")
            .first()
    else {
        return;
    };
    let who = &py.label;
    let dir = tempfile::tempdir().unwrap();
    let fx = py.fixture("follow_exec.py");
    let program = py.program.display().to_string();
    let command = [
        program.as_str(),
        &fx,
        "--seconds",
        "1",
        "--into",
        "sleep",
        "4",
    ];
    let started = Instant::now();
    let (code, stderr, json) = record_in(dir.path(), &[], &command);
    // The program is not stopped for it: sleep ends on its own, and its status is passed on.
    assert_eq!(code, Some(0), "{who}: {stderr}");
    assert!(started.elapsed().as_secs_f64() >= 4.5, "{who}: {stderr}");
    let said = stderr
        .lines()
        .find(|l| l.contains(" exec'd at "))
        .unwrap_or_else(|| panic!("{who}: {stderr}"));
    assert!(
        said.contains("into `sleep 4`, which is not Python: sampling stopped there"),
        "{who}: {said}"
    );
    assert!(
        functions(&json).contains("before_exec_spin"),
        "{who}: {stderr}"
    );
    let e = the_exec(&json, "follow_exec.py", "sleep", who);
    assert_eq!(e["python"], Value::Null, "{who}: {e}");
    // The report covers the time before the exec only.
    assert!(
        f(&json["run"]["duration_s"]) <= f(&e["at_s"]) + 0.5,
        "{who}: {}",
        json["run"]
    );
    assert_few_failed(&json, &stderr, who);
    passed(py, "exec into a program that is not Python");
}

#[test]
fn a_shell_script_and_bash_c_are_followed_to_their_python_and_pass_its_status_on() {
    let _turn = exclusive();
    let wrapper = fixtures_dir().join("follow_wrapper.sh");
    for py in plain_pythons(
        "a_shell_script_and_bash_c_are_followed_to_their_python_and_pass_its_status_on",
    ) {
        let who = &py.label;
        let program = py.program.display().to_string();
        let fx = py.fixture("follow_after.py");
        let inline = format!("{program} {fx} --seconds 1.5 --exit 5");
        let script = wrapper.display().to_string();
        for (command, code) in [
            // A script that runs Python as its child, and says so around it.
            (
                vec![
                    "sh",
                    &script,
                    &program,
                    &fx,
                    "--seconds",
                    "1.5",
                    "--exit",
                    "4",
                ],
                4,
            ),
            // bash -c with one command execs into it: the same pid runs Python.
            (vec!["bash", "-c", &inline], 5),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (got, stderr, json) = record_in(dir.path(), &[], &command);
            assert_eq!(got, Some(code), "{who}: {command:?}: {stderr}");
            let seen = functions(&json);
            assert!(
                seen.contains("after_exec_work"),
                "{who}: {command:?}: {seen:?}\n{stderr}"
            );
            assert_eq!(json["exit"]["code"], code, "{who}: {}", json["exit"]);
            assert!(
                json["target"]["command"]
                    .to_string()
                    .contains("follow_after.py"),
                "{who}: {}",
                json["target"]
            );
            assert!(
                !stderr.contains("exited before gilscope could attach"),
                "{stderr}"
            );
        }
        passed(py, "wrappers followed to their Python");
    }
}

#[test]
fn a_wrapper_with_subprocesses_profiles_every_python_it_runs() {
    let _turn = exclusive();
    let Some(&py) =
        plain_pythons("a_wrapper_with_subprocesses_profiles_every_python_it_runs").first()
    else {
        return;
    };
    let who = &py.label;
    let program = py.program.display().to_string();
    let fx = py.fixture("follow_after.py");
    // Two Pythons one after the other, then the script's own status.
    let script = format!("{program} {fx} --seconds 1; {program} {fx} --seconds 1; exit 6");
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr, json) = record_in(dir.path(), &["--subprocesses"], &["sh", "-c", &script]);
    assert_eq!(code, Some(6), "{who}: {stderr}");
    assert!(
        functions(&json).contains("after_exec_work"),
        "{who}: {stderr}"
    );
    let others = json["subprocesses"]
        .as_array()
        .unwrap_or_else(|| panic!("{who}: no subprocesses: {stderr}"));
    assert!(
        others
            .iter()
            .any(|p| functions(p).contains("after_exec_work")),
        "{who}: the second Python is not in the report: {others:?}"
    );
    passed(py, "a wrapper's every Python with --subprocesses");
}

#[test]
fn a_command_that_runs_no_python_is_not_killed_and_its_status_is_passed_on() {
    let _turn = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = gilscope(
        dir.path(),
        &[
            "record",
            "-f",
            "json",
            "-o",
            "out.json",
            "--",
            "sh",
            "-c",
            "sleep 12; exit 3",
        ],
    );
    let took = started.elapsed().as_secs_f64();
    let stderr = text(&out.stderr);
    // Past the 10 s gilscope once gave a program to become Python, and its own status.
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(took >= 11.5, "ended after {took:.1} s: {stderr}");
    assert!(
        stderr.contains(
            "no Python process appeared under `sh -c sleep 12; exit 3`, which exited with \
             status 3 after 12"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("error"), "{stderr}");
    // No report for a run that profiled nothing, not even an empty file.
    assert!(!dir.path().join("out.json").exists(), "{stderr}");
}

#[test]
fn attach_to_a_program_that_execs_into_one_that_is_not_python_ends_with_the_sentence() {
    let _turn = exclusive();
    let Some(&py) = plain_pythons(
        "attach_to_a_program_that_execs_into_one_that_is_not_python_ends_with_the_sentence",
    )
    .first() else {
        return;
    };
    let who = &py.label;
    let dir = tempfile::tempdir().unwrap();
    let target = Running::start(
        py,
        "follow_exec.py",
        &["--seconds", "1.5", "--into", "sleep", "30"],
    );
    let pid = target.pid.to_string();
    let started = Instant::now();
    let out = gilscope(dir.path(), &["attach", "-f", "json", "-o", "-", &pid]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{who}: {stderr}");
    // It ends when sampling stops, not when sleep does.
    assert!(started.elapsed().as_secs_f64() < 20.0, "{who}: {stderr}");
    assert!(
        stderr.contains("into `sleep 30`, which is not Python: sampling stopped there"),
        "{who}: {stderr}"
    );
    assert!(
        !stderr.contains(&format!("process {pid} exited")),
        "{who}: {stderr}"
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        functions(&json).contains("before_exec_spin"),
        "{who}: {stderr}"
    );
    assert_eq!(
        the_exec(&json, "follow_exec.py", "sleep", who)["python"],
        Value::Null
    );
    assert_few_failed(&json, &stderr, who);
}

#[test]
fn a_subprocess_that_execs_is_profiled_before_and_after() {
    let _turn = exclusive();
    let Some(&py) = plain_pythons("a_subprocess_that_execs_is_profiled_before_and_after").first()
    else {
        return;
    };
    let who = &py.label;
    let program = py.program.display().to_string();
    let fx = py.fixture("follow_exec.py");
    let parent = format!(
        "import subprocess, sys; subprocess.run([sys.executable, {fx:?}, '--seconds', '1.5'])"
    );
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr, json) =
        record_in(dir.path(), &["--subprocesses"], &[&program, "-c", &parent]);
    assert_eq!(code, Some(0), "{who}: {stderr}");
    let others = json["subprocesses"]
        .as_array()
        .unwrap_or_else(|| panic!("{who}: no subprocesses: {stderr}"));
    for f in ["before_exec_spin", "after_exec_work"] {
        assert!(
            others.iter().any(|p| functions(p).contains(f)),
            "{who}: no subprocess ran {f}: {others:?}"
        );
    }
    for p in others {
        assert_few_failed(p, &stderr, who);
    }
}

#[test]
fn a_wrappers_python_does_not_outlive_a_stopped_run() {
    let _turn = exclusive();
    for py in plain_pythons("a_wrappers_python_does_not_outlive_a_stopped_run") {
        let who = &py.label;
        let dir = tempfile::tempdir().unwrap();
        // A shell with a second command after Python does not exec into it, and does not pass
        // SIGTERM on to it.
        let inline = format!(
            "{} {} --seconds 60; exit 0",
            py.program.display(),
            py.fixture("gil_bound.py")
        );
        let started = std::time::Instant::now();
        let (_, stderr, json) = record_in(dir.path(), &["-d", "2"], &["sh", "-c", &inline]);
        // A Python left running keeps gilscope's output pipes open until its 60 s are over.
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_secs(40),
            "{who}: the run took {took:?}: its Python ran on after the wrapper was stopped"
        );
        let pid = json["target"]["pid"]
            .as_i64()
            .unwrap_or_else(|| panic!("{who}: no target pid: {stderr}"));
        assert!(
            within(std::time::Duration::from_secs(10), || gone(pid as i32)),
            "{who}: the wrapper's Python {pid} runs on: {stderr}"
        );
    }
}
