//! Reports people keep: recordings rendered again later, exactly as the live run rendered
//! them, and what happens when a recording is cut short or is not one.

mod common;

use std::process::{Command, Stdio};

use common::*;

/// `record` on a fixture with extra gilscope options; panics unless it succeeds.
fn record_in(dir: &std::path::Path, py: &Python, opts: &[&str], fixture: &str, extra: &[&str]) {
    let argv = py.argv();
    let fx = py.fixture(fixture);
    let mut args = vec!["record", "-q"];
    args.extend(opts);
    args.push("--");
    args.extend(argv.iter().map(String::as_str));
    args.push(&fx);
    args.extend(extra);
    let out = gilscope(dir, &args);
    assert!(out.status.success(), "{}: {}", py.label, text(&out.stderr));
}

#[test]
fn a_recording_renders_every_format_exactly_as_the_live_run() {
    let _turn = exclusive();
    let py = pythons()[0];
    let dir = tempfile::tempdir().unwrap();
    let live_formats = ["json", "flamegraph", "blame"];
    record_in(
        dir.path(),
        py,
        &["--recording", "run.gilscope", "-f", "json,flamegraph,blame"],
        "gil_bound.py",
        &["--threads", "3", "--seconds", "2"],
    );
    let live: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("gilscope-")
        })
        .collect();
    assert_eq!(live.len(), live_formats.len(), "{live:?}");
    for format in live_formats {
        let out = gilscope(
            dir.path(),
            &["report", "-q", "-f", format, "-o", "again", "run.gilscope"],
        );
        assert!(out.status.success(), "{format}: {}", text(&out.stderr));
        let again = std::fs::read(dir.path().join("again")).unwrap();
        let suffix = match format {
            "json" => ".json",
            "flamegraph" => ".svg",
            _ => ".blame.svg",
        };
        let original = live
            .iter()
            .find(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.ends_with(suffix) && (suffix != ".svg" || !name.ends_with(".blame.svg"))
            })
            .unwrap();
        assert!(
            std::fs::read(original).unwrap() == again,
            "{format}: the report of the recording differs from the live one"
        );
    }
    // The summary is printed again too.
    let out = gilscope(
        dir.path(),
        &["report", "-f", "json", "-o", "x.json", "run.gilscope"],
    );
    assert!(
        text(&out.stderr).contains("GIL-bound"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_run_killed_mid_way_leaves_a_recording_of_all_but_the_last_second() {
    let _turn = exclusive();
    let py = pythons()[0];
    let dir = tempfile::tempdir().unwrap();
    let mut run = Command::new(BIN)
        .args([
            "record",
            "--recording",
            "cut.gilscope",
            "-o",
            "/dev/null",
            "--",
        ])
        .args(py.argv())
        .arg(py.fixture("gil_bound.py"))
        .args(["--seconds", "30"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until gilscope samples, then let it record for a while before killing it hard.
    let mut stderr = std::io::BufReader::new(run.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    assert!(first.contains("sampling pid"), "{first}");
    let pid: i32 = first
        .split("sampling pid ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let path = dir.path().join("cut.gilscope");
    // At least two flushes (one a second) have happened once the file passed 2 kB.
    while std::fs::metadata(&path).map_or(0, |m| m.len()) < 2048 {
        assert!(
            std::time::Instant::now() < deadline,
            "the recording never grew"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    run.kill().unwrap();
    run.wait().unwrap();
    // SAFETY: kill has no memory-safety preconditions; the program is orphaned by SIGKILL.
    unsafe { libc::kill(pid, libc::SIGKILL) };

    let out = gilscope(
        dir.path(),
        &["report", "-f", "json", "-o", "-", "cut.gilscope"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("ends early"),
        "{}",
        text(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(f(&json["run"]["state_samples"]) >= 100.0, "{}", json["run"]);
    assert_eq!(json["target"]["pid"], pid);
}

#[test]
fn what_is_not_a_recording_is_refused_in_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a recording").unwrap();
    let out = gilscope(dir.path(), &["report", "notes.txt"]);
    assert_error(&out, "is not a gilscope recording");
    let out = gilscope(dir.path(), &["report", "missing.gilscope"]);
    assert_error(&out, "cannot read the recording missing.gilscope");
    let out = gilscope(
        dir.path(),
        &[
            "record",
            "--recording",
            "/nonexistent/r.gilscope",
            "--",
            "true",
        ],
    );
    assert_error(&out, "choose a writable path for --recording");
}

#[test]
fn subprocesses_are_recorded_and_reported_again() {
    let _turn = exclusive();
    let py = pythons()[0];
    let dir = tempfile::tempdir().unwrap();
    record_in(
        dir.path(),
        py,
        &[
            "--subprocesses",
            "--recording",
            "pool.gilscope",
            "-o",
            "/dev/null",
        ],
        "process_pool.py",
        &["--seconds", "1.5"],
    );
    let out = gilscope(
        dir.path(),
        &["report", "-f", "json", "-o", "-", "pool.gilscope"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let busy = json["subprocesses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| f(&p["gils"][0]["held"]) >= 0.8)
        .count();
    assert_eq!(busy, 2, "{}", json["subprocesses"]);
}
