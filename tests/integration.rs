//! The real binary against real CPython processes: every interpreter found on the machine,
//! every fixture: what a user checks of each verdict. (Errors a user can cause are in
//! `errors.rs`, the offset tables against debug information in `layouts.rs`.)
//!
//! The interpreters are those `common` finds (pyenv's, Debian's, and what
//! `scripts/test-pythons` provides: sid's 3.13–3.15 in a chroot); it prints which it used and
//! which it skipped, and why.

mod common;

use std::process::{Command, Stdio};

use common::*;
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

#[test]
fn a_rate_the_sampler_cannot_keep_up_with_is_said_with_the_rate_taken() {
    let test = "a_rate_the_sampler_cannot_keep_up_with_is_said_with_the_rate_taken";
    let _turn = exclusive();
    let py = pythons()[0];
    // Sixteen threads' stacks 10 000 times a second: more than a sampler can read.
    let target = Running::start(py, "gil_bound.py", &["--threads", "16", "--seconds", "30"]);
    let dir = tempfile::tempdir().unwrap();
    let pid = target.pid.to_string();
    let out = gilscope(
        dir.path(),
        &[
            "attach",
            "--duration",
            "2",
            "--rate",
            "10000",
            "--state-rate",
            "10000",
            "-f",
            "json",
            "-o",
            "out.json",
            &pid,
        ],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", py.label);
    let json = json_file(&dir.path().join("out.json"));
    let run = &json["run"];
    let duration = f(&run["duration_s"]);
    let per_s = |key: &str| (f(&run[key]) - 1.0).max(0.0) / duration;
    let (state_hz, stack_hz) = (per_s("state_samples"), per_s("stack_samples"));
    if state_hz >= 9000.0 {
        skip(
            test,
            format!("this machine kept up: {state_hz:.0} samples/s of 10000"),
        );
        return;
    }
    assert_eq!(run["rate_fell_short"], true, "{run}");
    assert!(
        (f(&run["achieved_state_rate_hz"]) - state_hz).abs() <= 0.05 * state_hz + 2.0,
        "{run}"
    );
    // The summary says what it took, and that number is the JSON's samples over its length.
    let line = stderr
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with("asked for 10000 GIL-state samples/s")
        })
        .unwrap_or_else(|| panic!("{}: no shortfall said: {stderr}", py.label));
    let took = |after: &str| -> f64 {
        let rest = &line[line.find(after).unwrap() + after.len()..];
        let rest = rest.trim_start_matches(", took ");
        rest[..rest.find("/s").unwrap()].parse().unwrap()
    };
    let (said_state, said_stack) = (took("GIL-state samples/s"), took("stack samples/s"));
    for (said, json_hz) in [(said_state, state_hz), (said_stack, stack_hz)] {
        assert!(
            (said - json_hz).abs() <= 0.15 * json_hz + 2.0,
            "{}: said {said}/s, the JSON's counts give {json_hz:.0}/s: {line}",
            py.label
        );
    }
    assert!(said_state < 9000.0, "{line}");
    assert!(
        line.contains("could not keep up") && line.contains("a lower --rate"),
        "{line}"
    );
    passed(py, "a rate not kept up with");
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
        .args(["--seconds", "60", "--ready"])
        .arg(py.inside(&dir.path().join("ready")))
        .current_dir(dir.path())
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until gilscope says it samples (its first line on stderr).
    let (mut stderr, first) = first_stderr_line(&mut run);
    assert!(first.contains("sampling pid"), "{first}");
    // And until the program runs its own code: Ctrl-C while CPython still starts up makes
    // it fail on its own (status 1), which is not what this test is about.
    let ready = dir.path().join("ready");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ready.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the fixture never got ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
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
