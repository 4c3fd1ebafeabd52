//! `gilscope dump <pid>`: one snapshot of every Python thread of a live process, with its GIL
//! state and its Python stack, as JSON (`gilscope-dump/1`) and as text.
//!
//! A snapshot is one state tick, so a single worker of a GIL-bound program can read `native`
//! or `handoff` at that instant (a thread between dropping the GIL and sleeping on it again,
//! runnable but not yet running on this busy 2-core machine; ACCURACY.md, "woken waiters").
//! The assertions on states are therefore over several dumps, with wide bounds.

mod common;

use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

/// How many dumps each interpreter is checked over.
const DUMPS: usize = 5;

fn dump_json(py: &Python, pid: i32) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["dump", "--json", &pid.to_string()]);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "{}: dump --json failed: {stderr}",
        py.label
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{}: JSON on stdout: {e}\n{}", py.label, text(&out.stdout)))
}

fn dump_text(py: &Python, pid: i32) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["dump", &pid.to_string()]);
    assert!(
        out.status.success(),
        "{}: dump failed: {}",
        py.label,
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Dumps until every worker has left the fixture's start barrier and runs `compute()`: the
/// ready file is written once all of them reached the barrier, but a released worker still
/// needs the GIL to leave `Condition.wait`, which takes a while when the others hold it.
fn wait_until_all_compute(py: &Python, pid: i32, workers: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let json = dump_json(py, pid);
        let computing = threads(&json)
            .iter()
            .filter(|t| t["frames"][0]["function"] == "compute")
            .count();
        if computing == workers {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}: the workers never all ran compute(): {}",
            py.label,
            json["threads"]
        );
    }
}

fn threads(json: &Value) -> &Vec<Value> {
    json["threads"].as_array().unwrap()
}

fn state(t: &Value) -> &str {
    t["state"].as_str().unwrap()
}

/// Checks that a thread's innermost frame is `compute()` in `gil_bound.py`.
fn assert_in_compute(who: &str, t: &Value) {
    let top = &t["frames"][0];
    assert_eq!(top["function"], "compute", "{who}: innermost frame of {t}");
    assert!(
        top["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("gil_bound.py")),
        "{who}: {top}"
    );
    let line = top["line"].as_u64().unwrap();
    assert!((19..=27).contains(&line), "{who}: compute() at line {line}");
    // Innermost first: the thread's entry point is at the other end.
    let frames = t["frames"].as_array().unwrap();
    assert!(frames.len() >= 3, "{who}: {t}");
    assert_ne!(frames.last().unwrap()["function"], "compute", "{who}: {t}");
}

/// Checks the parts of the document that do not depend on the instant.
fn assert_document(who: &str, json: &Value, pid: i32, py: &Python, free_threaded: bool) {
    assert_eq!(json["schema"], "gilscope-dump/1", "{who}");
    assert_eq!(json["pid"], pid, "{who}");
    let minor = json["python"].as_str().unwrap().split('.').nth(1).unwrap();
    assert_eq!(minor, py.version.1.to_string(), "{who}: {}", json["python"]);
    assert_eq!(json["free_threaded"], free_threaded, "{who}");
    let gils = json["gils"].as_array().unwrap();
    assert_eq!(gils.len(), 1, "{who}: {gils:?}");
    for key in ["interpreter", "locked", "holder_tid", "switch_number"] {
        assert!(gils[0].get(key).is_some(), "{who}: gils[0].{key} missing");
    }
    assert_eq!(gils[0]["enabled"], !free_threaded, "{who}: {}", gils[0]);
    // The main thread (tid = pid) joins the workers.
    let main = threads(json)
        .iter()
        .find(|t| t["tid"] == pid)
        .unwrap_or_else(|| panic!("{who}: no main thread in {}", json["threads"]));
    assert_eq!(main["interpreter"], 0, "{who}");
    assert!(
        main["frames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["function"] == "main"),
        "{who}: {main}"
    );
}

#[test]
fn dump_shows_each_worker_holding_or_waiting_in_compute() {
    let _turn = exclusive();
    let mut tested = Vec::new();
    for py in pythons() {
        let who = py.label.as_str();
        let fixture = Running::start(py, "gil_bound.py", &["--threads", "3", "--seconds", "30"]);
        let pid = fixture.pid;
        wait_until_all_compute(py, pid, 3);
        // (holding or waiting, other) per worker, and waiting workers over all dumps.
        let mut gil_states: std::collections::BTreeMap<String, (u32, u32)> = Default::default();
        let mut waiting_seen = 0;
        let mut seen = Vec::new();
        for _ in 0..DUMPS {
            let json = dump_json(py, pid);
            assert_document(who, &json, pid, py, false);
            let gil = &json["gils"][0];
            let workers = threads_named(&json, "worker-");
            assert_eq!(workers.len(), 3, "{who}: {}", json["threads"]);
            for w in &workers {
                assert_in_compute(who, w);
                assert_eq!(w["interpreter"], 0, "{who}: {w}");
                let s = state(w);
                // At one instant a worker may be between dropping the GIL and sleeping on it
                // (handoff, native while on a CPU, ready while waiting for one); never
                // blocked outside the GIL, never running without one.
                assert!(
                    ["holding", "waiting", "handoff", "native", "ready"].contains(&s),
                    "{who}: {w}"
                );
                if s == "native" {
                    assert_eq!(w["on_cpu"], true, "{who}: {w}");
                }
                let name = w["name"].as_str().unwrap().to_string();
                let tally = gil_states.entry(name).or_default();
                match s {
                    "holding" | "waiting" => tally.0 += 1,
                    _ => tally.1 += 1,
                }
                waiting_seen += u32::from(s == "waiting");
                seen.push(s.to_string());
            }
            // One GIL: at most one thread holds it, and it is the one the GIL names.
            let holders: Vec<&Value> = threads(&json)
                .iter()
                .filter(|t| state(t) == "holding")
                .collect();
            assert!(holders.len() <= 1, "{who}: {}", json["threads"]);
            if let Some(h) = holders.first() {
                assert_eq!(gil["holder_tid"], h["tid"], "{who}: {gil}");
                assert_eq!(gil["locked"], true, "{who}: {gil}");
            }
        }
        eprintln!("{who}: worker states over {DUMPS} dumps: {seen:?}");
        assert!(
            waiting_seen >= 1,
            "{who}: no worker waiting in {DUMPS} dumps: {seen:?}"
        );
        // Every worker is seen about the GIL, and most readings are (about 90% on this
        // machine; the bound is wide for a loaded one).
        for (name, (gil, _)) in &gil_states {
            assert!(
                *gil >= 1,
                "{who}: {name} never held or waited for the GIL in {DUMPS} dumps: {seen:?}"
            );
        }
        let about_gil: u32 = gil_states.values().map(|(gil, _)| gil).sum();
        assert!(
            about_gil as usize * 3 >= seen.len(),
            "{who}: holding or waiting in only {about_gil} of {} readings: {seen:?}",
            seen.len()
        );

        let dump = dump_text(py, pid);
        assert!(
            dump.starts_with(&format!("Process {pid}: ")),
            "{who}: {dump}"
        );
        assert!(dump.contains("GIL (interpreter 0) "), "{who}: {dump}");
        assert!(
            dump.contains("waiting for the GIL") || dump.contains("holding the GIL"),
            "{who}: {dump}"
        );
        assert!(dump.contains("compute (gil_bound.py:"), "{who}: {dump}");
        assert!(dump.contains("\"worker-1\""), "{who}: {dump}");
        drop(fixture);
        tested.push(py.full_version.clone());
        passed(py, "dump");
    }
    eprintln!("dump: tested {tested:?}");
}

#[test]
fn dump_of_a_free_threaded_build_shows_running_threads_and_their_stacks() {
    let _turn = exclusive();
    for py in require_free_threaded(
        "dump_of_a_free_threaded_build_shows_running_threads_and_their_stacks",
    ) {
        let who = py.label.as_str();
        let fixture = Running::start(py, "gil_bound.py", &["--threads", "3", "--seconds", "30"]);
        let pid = fixture.pid;
        wait_until_all_compute(py, pid, 3);
        // Until some worker is seen on a CPU: on a busy machine most snapshots find them all
        // waiting for one.
        let (mut running, mut dumps) = (0, 0);
        while dumps < 3 || (running == 0 && dumps < 30) {
            dumps += 1;
            let json = dump_json(py, pid);
            assert_document(who, &json, pid, py, true);
            assert_eq!(json["gils"][0]["holder_tid"], Value::Null, "{who}");
            // No GIL states: workers run or wait for a CPU, the main thread joins them.
            for t in threads(&json) {
                assert!(
                    ["running", "ready", "lock", "idle"].contains(&state(t)),
                    "{who}: {t}"
                );
            }
            // 3.13 does not give OS threads their Python names: workers are the threads in
            // compute().
            let workers: Vec<&Value> = threads(&json)
                .iter()
                .filter(|t| t["frames"][0]["function"] == "compute")
                .collect();
            assert_eq!(workers.len(), 3, "{who}: {}", json["threads"]);
            for w in &workers {
                assert_in_compute(who, w);
                running += u32::from(state(w) == "running");
                // Pure-Python workers want a CPU all the time: on one, or waiting for one.
                assert!(["running", "ready"].contains(&state(w)), "{who}: {w}");
            }
        }
        eprintln!("{who}: workers read running {running} times in {dumps} snapshots");
        assert!(
            running >= 1,
            "{who}: workers read running {running} times in {dumps} snapshots"
        );
        let dump = dump_text(py, pid);
        assert!(dump.contains("(free-threaded)"), "{who}: {dump}");
        assert!(
            dump.contains("GIL (interpreter 0) disabled"),
            "{who}: {dump}"
        );
        // A worker runs, or waits for a CPU when the machine is busy.
        assert!(
            dump.contains("): running") || dump.contains("): ready to run"),
            "{who}: {dump}"
        );
        assert!(dump.contains("compute (gil_bound.py:"), "{who}: {dump}");
        drop(fixture);
        passed(py, "dump");
    }
}

#[test]
fn dump_of_a_finished_process_says_there_is_none() {
    let mut child = Command::new("true").spawn().expect("run true");
    let pid = child.id().to_string();
    child.wait().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["dump", &pid]);
    assert_error(&out, "no process has pid");
    let out = gilscope(dir.path(), &["dump", "--json", &pid]);
    assert_error(&out, "no process has pid");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

#[test]
fn dump_of_a_process_without_python_says_so() {
    let mut sleeper = Command::new("sleep")
        .arg("30")
        .stdout(Stdio::null())
        .spawn()
        .expect("run sleep");
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["dump", "--json", &sleeper.id().to_string()]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_error(&out, "is not a CPython process");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}
