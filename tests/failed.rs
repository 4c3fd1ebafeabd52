//! A program that fails is said to have failed, and its exit status is told apart from a
//! crossed `--fail-if`; the command line and the options are shown as the user gave them.
//! Each run is a real CPython process launched by `gilscope record`.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// The name a summary gives the launched program: its executable's last component.
fn program_name(py: &Python) -> String {
    let argv = py.argv();
    argv[0].rsplit('/').next().unwrap().to_string()
}

/// A script of `source` in a fresh directory the interpreter can reach, as (directory, path
/// as the interpreter sees it).
fn script(py: &Python, name: &str, source: &str) -> (tempfile::TempDir, String) {
    let dir = py.tempdir();
    let path = dir.path().join(name);
    std::fs::write(&path, source).unwrap();
    let inside = py.inside(&path);
    (dir, inside)
}

/// `gilscope record OPTS -- PY ARGS` in `dir`.
fn record(dir: &Path, py: &Python, opts: &[&str], args: &[&str]) -> std::process::Output {
    let mut all = vec!["record"];
    all.extend(opts);
    all.push("--");
    let argv = py.argv();
    all.extend(argv.iter().map(String::as_str));
    all.extend(args);
    gilscope(dir, &all)
}

/// The one report of `suffix` gilscope wrote in `dir` (`gilscope-<pid>.<suffix>`).
fn report(dir: &Path, suffix: &str) -> String {
    let found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("gilscope-") && name.ends_with(&format!(".{suffix}"))
        })
        .collect();
    assert_eq!(found.len(), 1, "one .{suffix} report in {dir:?}: {found:?}");
    std::fs::read_to_string(&found[0]).unwrap()
}

/// The seconds in "… after 0.3 s", which must be there.
fn seconds_after(text: &str) -> f64 {
    let at = text.find(" after ").expect("an 'after N s'") + " after ".len();
    let rest = &text[at..];
    rest[..rest.find(" s").unwrap()].parse().unwrap()
}

/// What every format says of a program that failed before its code ran: the status and
/// the time, the program-failed verdict, and no advice anywhere.
fn assert_failed_before_its_code(py: &Python, dir: &Path, stderr: &str, status: &str) {
    let who = &py.label;
    let said = format!("{} {status} after ", program_name(py));
    let json: Value = serde_json::from_str(&report(dir, "json")).unwrap();
    let v = &json["verdict"];
    assert_eq!(v["kind"], "program-failed", "{who}: {v}\n{stderr}");
    let summary = v["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(&said) && summary.ends_with("(before any thread ran your code)."),
        "{who}: {summary}"
    );
    // Launched, failed and seen within the run: a wide bound for a busy machine.
    let after = seconds_after(summary);
    assert!((0.0..30.0).contains(&after), "{who}: {summary}");
    assert_eq!(v["advice"], serde_json::json!([]), "{who}: {v}");
    assert_eq!(json["exit"]["failed"], true, "{who}: {}", json["exit"]);
    assert_eq!(json["exit"]["stopped_by_gilscope"], false);
    assert!(
        (f(&json["exit"]["after_s"]) - after).abs() < 0.051,
        "{who}: {}",
        json["exit"]
    );

    // The terminal: the status up top, the verdict, no "next:" advice anywhere.
    assert!(stderr.contains(&format!("\n  {said}")), "{who}: {stderr}");
    assert!(stderr.contains(&format!("\n{said}")), "{who}: {stderr}");
    assert!(!stderr.contains("next:"), "{who}: advice in: {stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with("gilscope: exit status ") && last.contains("the program's own"),
        "{who}: {last}"
    );

    let md = report(dir, "md");
    assert!(
        md.starts_with("## gilscope: program failed"),
        "{who}: {md:.300}"
    );
    assert!(md.contains(&format!("**{said}")), "{who}: {md:.600}");
    assert!(!md.contains("- next:"), "{who}: {md}");
    let svg = report(dir, "svg");
    assert!(
        svg.contains(&said),
        "{who}: the SVG report does not say {said:?}"
    );
    assert!(!svg.contains("next:"), "{who}: advice in the SVG report");
}

#[test]
fn a_script_that_does_not_exist_fails_without_advice() {
    let _turn = exclusive();
    for py in pythons() {
        let dir = tempfile::tempdir().unwrap();
        let out = record(
            dir.path(),
            py,
            &["-f", "json,markdown,svg", "--recording", "run.gz"],
            &["nosuchfile.py"],
        );
        let stderr = text(&out.stderr);
        // CPython's own status for a file it cannot open, passed on.
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", py.label);
        assert_failed_before_its_code(py, dir.path(), &stderr, "exited with status 2");

        // The recording keeps how the program ended: its report says the same.
        let again = gilscope(dir.path(), &["report", "-f", "json", "-o", "-", "run.gz"]);
        assert!(again.status.success(), "{}", text(&again.stderr));
        let replayed: Value = serde_json::from_slice(&again.stdout).unwrap();
        let live: Value = serde_json::from_str(&report(dir.path(), "json")).unwrap();
        assert_eq!(replayed["verdict"], live["verdict"], "{}", py.label);
        assert_eq!(replayed["exit"], live["exit"], "{}", py.label);
        passed(py, "a missing script is a failed program");
    }
}

#[test]
fn a_script_that_exits_at_once_or_is_killed_fails_without_advice() {
    let _turn = exclusive();
    for py in pythons() {
        // Neither imports anything: the script's own frame lives for microseconds.
        for (source, code, status) in [
            ("import sys\nsys.exit(5)\n", 5, "exited with status 5"),
            (
                "import os\nos.kill(os.getpid(), 9)\n",
                128 + 9,
                "was killed by SIGKILL",
            ),
        ] {
            let (dir, path) = script(py, "quits.py", source);
            let opts = ["-f", "json,markdown,svg", "--recording", "run.gz"];
            let out = record(dir.path(), py, &opts, &[&path]);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(code), "{}: {stderr}", py.label);
            let json: Value = serde_json::from_str(&report(dir.path(), "json")).unwrap();
            if json["verdict"]["kind"] != "program-failed" {
                // A stack sample may catch the script's own frame in its few microseconds:
                // then it did run its code, and the verdict rightly stands. Nothing else may
                // keep it.
                let stacks = gilscope(
                    dir.path(),
                    &["report", "-f", "collapsed", "-o", "-", "run.gz"],
                );
                let stacks = text(&stacks.stdout);
                assert!(
                    // Collapsed stacks name files in full.
                    stacks.contains("/quits.py:"),
                    "{}: not program-failed, yet no stack ran quits.py:\n{stacks}\n{stderr}",
                    py.label
                );
                eprintln!(
                    "{}: a stack sample caught quits.py itself:\n{stacks}",
                    py.label
                );
                let said = format!("\n  {} {status} after ", program_name(py));
                assert!(stderr.contains(&said), "{}: {stderr}", py.label);
                continue;
            }
            assert_failed_before_its_code(py, dir.path(), &stderr, status);
        }
        passed(py, "a program failing at start is said to have failed");
    }
}

/// Runs its own code for a second, then exits with `code`.
const BUSY_THEN_EXIT: &str = "import sys, time\n\
    t = time.monotonic()\n\
    while time.monotonic() - t < 1.0:\n    pass\n\
    sys.exit(int(sys.argv[1]))\n";

#[test]
fn a_program_that_ran_and_failed_keeps_its_verdict_and_is_told_from_a_threshold() {
    let _turn = exclusive();
    let py = pythons()[0];
    let (dir, path) = script(py, "busy_then_exit.py", BUSY_THEN_EXIT);
    let said = format!("{} exited with status 1 after ", program_name(py));
    let run = |code: &str, fail_if: &[&str]| {
        let mut opts = vec!["-f", "json", "-o", "out.json"];
        opts.extend(fail_if);
        let out = record(dir.path(), py, &opts, &[&path, code]);
        let json: Value = json_file(&dir.path().join("out.json"));
        (out.status.code(), text(&out.stderr), json)
    };

    // Its own exit 1, no threshold crossed: the status is said, and whose it is.
    let (code, stderr, json) = run("1", &["--fail-if", "held < 1%"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_ne!(
        json["verdict"]["kind"], "program-failed",
        "{}",
        json["verdict"]
    );
    assert_eq!(json["exit"]["code"], 1, "{}", json["exit"]);
    assert!(stderr.contains(&format!("\n  {said}")), "{stderr}");
    assert!(!stderr.contains("crossed"), "{stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with("gilscope: exit status 1, the program's own: ") && last.contains(&said),
        "{last}"
    );
    assert!(!last.contains("--fail-if"), "{last}");

    // Its own exit 1 and a crossed threshold: both said, apart, in the user's unit.
    let (code, stderr, _) = run("1", &["--fail-if", "held > 50%"]);
    assert_eq!(code, Some(1), "{stderr}");
    let crossed = stderr
        .lines()
        .find(|l| l.starts_with("gilscope: --fail-if 'held > 50%' crossed on pid "))
        .unwrap_or_else(|| panic!("no crossed threshold in: {stderr}"));
    let answer = crossed.rsplit(": ").next().unwrap();
    let held: f64 = answer
        .strip_prefix("held ")
        .and_then(|a| a.strip_suffix("% > 50%"))
        .unwrap_or_else(|| panic!("not in percent: {crossed}"))
        .parse()
        .unwrap();
    assert!(held > 50.0 && held <= 100.0, "{crossed}");
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with("gilscope: exit status 1, the program's own")
            && last.ends_with("the --fail-if crossed above would have exited 1"),
        "{last}"
    );

    // A good exit and a crossed threshold: the threshold alone, no program status.
    let (code, stderr, json) = run("0", &["--fail-if", "held > 0.5"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(json["exit"]["failed"], false, "{}", json["exit"]);
    assert!(!stderr.contains("the program's own"), "{stderr}");
    assert!(!stderr.contains("exited with status"), "{stderr}");
    let crossed = stderr
        .lines()
        .find(|l| l.contains("--fail-if 'held > 0.5' crossed"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let held: f64 = crossed
        .rsplit(": held ")
        .next()
        .and_then(|a| a.strip_suffix(" > 0.5"))
        .unwrap_or_else(|| panic!("not in fractions: {crossed}"))
        .parse()
        .unwrap();
    assert!(held > 0.5 && held <= 1.0, "{crossed}");
    passed(py, "a failed program's status told from --fail-if");
}

#[test]
fn a_state_rate_below_the_rate_is_said_at_the_start() {
    let _turn = exclusive();
    let py = pythons()[0];
    let (dir, path) = script(py, "busy_then_exit.py", BUSY_THEN_EXIT);
    let opts = [
        "--rate",
        "120",
        "--state-rate",
        "40",
        "-f",
        "json",
        "-o",
        "out.json",
    ];
    let out = record(dir.path(), py, &opts, &[&path, "0"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let note = "gilscope: note: --state-rate 40 is below --rate 120: GIL states are sampled at \
                120 Hz";
    assert_eq!(stderr.matches(note).count(), 1, "{stderr}");
    assert!(
        stderr.find(note) < stderr.find("gilscope: sampling pid"),
        "the note comes first: {stderr}"
    );
    let json: Value = json_file(&dir.path().join("out.json"));
    assert_eq!(json["run"]["state_rate_hz"], 120.0);

    let opts = [
        "--rate",
        "40",
        "--state-rate",
        "120",
        "-f",
        "json",
        "-o",
        "out.json",
    ];
    let out = record(dir.path(), py, &opts, &[&path, "0"]);
    assert!(
        !text(&out.stderr).contains("note:"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_long_command_line_keeps_its_script_name_in_the_titles() {
    let _turn = exclusive();
    // chroot's own arguments would come first: a plain interpreter shows the case.
    let Some(py) = host_python("a_long_command_line_keeps_its_script_name_in_the_titles") else {
        return;
    };
    let (dir, path) = script(py, "keep_my_name.py", BUSY_THEN_EXIT);
    let mut args = vec![path.clone(), "0".to_string()];
    args.extend((0..200).map(|i| format!("--option-{i:03}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = record(dir.path(), py, &["-f", "svg,markdown"], &args);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let md = report(dir.path(), "md");
    let header = md.lines().find(|l| l.starts_with("pid ")).unwrap();
    assert!(header.contains(&path.replace('_', "\\_")), "{header}");
    assert!(header.contains(" … "), "{header}");
    assert!(header.ends_with("--option-199"), "{header}");

    let svg = report(dir.path(), "svg");
    let title = svg
        .lines()
        .find(|l| l.starts_with("<text") && l.contains(">gilscope — pid "))
        .unwrap_or_else(|| panic!("no title in {svg:.2000}"));
    assert!(title.contains("keep_my_name.py"), "{title}");
    assert!(
        title.contains('…') && title.contains(", CPython "),
        "{title}"
    );
    passed(py, "a long command line keeps its script name");
}
