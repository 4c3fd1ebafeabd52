//! What stops each thread, read from the kernel's own accounts, and the verdicts built on it:
//! a lock convoy, HTTP clients on their sockets, threads starved of CPUs by other processes
//! and by a cgroup's CPU quota, C code that keeps the GIL, a 1 µs switch interval, and the
//! sampled on-CPU time against the kernel's.
//!
//! Every test runs on every interpreter with a GIL that `common` finds, and holds on a busy
//! 2-CPU machine: where another process's load may legitimately turn a verdict into
//! `cpu-starved`, the test accepts that only when the run says other processes kept at least
//! half a CPU busy (the JSON's CPU supply, or the test's own reading of `/proc/stat`).

mod common;
#[path = "states/evidence.rs"]
mod evidence;
#[path = "states/from_memory.rs"]
mod from_memory;
#[path = "states/quota.rs"]
mod quota;

use std::process::Command;

use common::*;
use evidence::*;
use quota::QuotaCgroup;

// ---------------------------------------------------------------------------------------
// A lock convoy.

#[test]
fn a_lock_convoy_is_lock_bound_and_names_where_threads_wait() {
    let _turn = exclusive();
    let line = line_of("lock_convoy.py", "with lock:");
    // The file as the run shows it: relative to the program's working directory, or whole.
    let site = format!("lock_convoy.py:{line}");
    on_every_python(
        "a_lock_convoy_is_lock_bound_and_names_where_threads_wait",
        |py| {
            let who = py.label.as_str();
            let (json, summary, busy) =
                record_measured(py, &[], "lock_convoy.py", &["--seconds", "2.5"]);
            let kind = json["verdict"]["kind"].as_str().unwrap();
            assert!(
                !["gil-bound", "native-parallel", "partly-gil-contended"].contains(&kind),
                "{who}: a lock convoy is not about the GIL\n{}",
                evidence(&json)
            );
            assert_kind_or_starved_by_others(&json, who, "lock-bound", "Lock-bound", busy);
            let verdict = json["verdict"]["summary"].as_str().unwrap();
            assert!(
                verdict.contains("at convoy() in ") && verdict.contains(&site),
                "{who}: the verdict does not say where threads wait ({site})\n{}",
                evidence(&json)
            );
            assert_shares_sum_to_one(&json, who);
            let workers = threads_named(&json, "lock-");
            assert_eq!(workers.len(), 8, "{who}: {}", evidence(&json));
            for t in workers {
                let s = &t["states"];
                // Waiting for the lock, or (3.13+'s PyMutex parks with the GIL released and
                // takes it back before returning) for the GIL inside the lock's acquire.
                let inside = f(&t["lock_gil_wait"]);
                let lock = share(s, "lock") + inside;
                let contended = f(&t["contended_lock"]) + inside;
                let name = &t["name"];
                let all = evidence(&json);
                // Of the time it did not just wait for a CPU (a busy machine's share).
                let ran = 1.0 - share(s, "ready");
                assert!(lock >= 0.35 * ran, "{who}: {name} lock {lock}\n{all}");
                assert!(
                    contended >= 0.3 && contended >= 0.8 * lock,
                    "{who}: {name} waits for a lock another thread holds, not a signal: \
                 contended_lock {contended}, lock {lock}\n{all}"
                );
                assert!(share(s, "native") <= 0.25, "{who}: {name} {s}\n{all}");
            }
            assert!(summary.contains("Lock-bound"), "{who}: {summary}");
            passed(py, "lock convoy");
        },
    );
}

// ---------------------------------------------------------------------------------------
// HTTP clients.

#[test]
fn http_clients_are_io_bound_on_their_sockets() {
    let _turn = exclusive();
    on_every_python("http_clients_are_io_bound_on_their_sockets", |py| {
        let who = py.label.as_str();
        let (json, _, busy) = record_measured(py, &[], "io_client.py", &["--seconds", "2.5"]);
        let kind = json["verdict"]["kind"].as_str().unwrap();
        assert!(
            !["native-parallel", "gil-bound", "lock-bound"].contains(&kind),
            "{who}\n{}",
            evidence(&json)
        );
        assert_kind_or_starved_by_others(&json, who, "io-bound", "I/O-bound", busy);
        let verdict = json["verdict"]["summary"].as_str().unwrap();
        assert!(
            verdict.contains("socket"),
            "{who}: socket I/O is not named\n{}",
            evidence(&json)
        );
        assert!(
            f(&gil0(&json)["held"]) <= 0.35,
            "{who}: held {}",
            gil0(&json)["held"]
        );
        assert_not_held_off_cpu(&json, who);
        assert_shares_sum_to_one(&json, who);
        let clients = threads_named(&json, "client-");
        assert_eq!(clients.len(), 16, "{who}: {}", evidence(&json));
        for t in clients {
            let io = share(&t["states"], "io");
            let socket = share(&t["io"], "socket") + share(&t["io"], "poll");
            let name = &t["name"];
            let all = evidence(&json);
            assert!(io >= 0.75, "{who}: {name} io {io}\n{all}");
            assert!(
                socket >= 0.9 * io,
                "{who}: {name} waits on sockets: io {io}, by kind {}\n{all}",
                t["io"]
            );
        }
        passed(py, "HTTP clients (I/O)");
    });
}

// ---------------------------------------------------------------------------------------
// CPUs taken by other processes.

#[test]
fn cpu_hogs_beside_native_threads_starve_them_and_are_named() {
    let _turn = exclusive();
    on_every_python_strict(
        "cpu_hogs_beside_native_threads_starve_them_and_are_named",
        |py| {
            let who = py.label.as_str();
            let hogs = Hogs::start(3);
            let (json, summary, busy) =
                record_measured(py, &[], "native_release.py", &["--seconds", "2.5"]);
            drop(hogs);
            let others = others_cores(&json, busy);
            let verdict = json["verdict"]["summary"].as_str().unwrap();
            let all = evidence(&json);
            assert_eq!(json["verdict"]["kind"], "cpu-starved", "{who}\n{all}");
            assert!(
                verdict.contains("other processes"),
                "{who}: the cause is not named\n{all}"
            );
            // Three hogs and four threads on two CPUs: the hogs get about 3/7 of it (0.86 CPUs).
            assert!(others >= 0.7, "{who}: others used {others:.2} CPUs\n{all}");
            if let Some(s) = supply(&json) {
                assert!(f(&s["machine_busy_cores"]) >= 1.6, "{who}: {s}");
            }
            let workers = threads_named(&json, "native-");
            assert_eq!(workers.len(), 4, "{who}\n{all}");
            let mut ready_sum = 0.0;
            for t in workers {
                let s = &t["states"];
                let name = &t["name"];
                // Queued for a CPU, or for the GIL while its holder or its own wake-up waits
                // for one: about 5/7 of the time.
                let queued = share(s, "ready") + share(s, "waiting");
                assert!(queued >= 0.3, "{who}: {name} ready+waiting {queued}\n{all}");
                // It never blocks: never idle.
                assert!(share(s, "idle") <= 0.1, "{who}: {name} idle: {s}\n{all}");
                ready_sum += share(s, "ready");
            }
            let mean_ready = ready_sum / 4.0;
            assert!(mean_ready >= 0.25, "{who}: mean ready {mean_ready}\n{all}");
            assert!(summary.contains("CPU-starved"), "{who}: {summary}");
            passed(py, "CPU-starved: other processes");
        },
    );
}

#[test]
fn four_native_threads_on_two_cpus_are_native_parallel_and_wait_for_cpus() {
    let _turn = exclusive();
    on_every_python(
        "four_native_threads_on_two_cpus_are_native_parallel_and_wait_for_cpus",
        |py| {
            let who = py.label.as_str();
            let (json, _, busy) =
                record_measured(py, &[], "native_release.py", &["--seconds", "2"]);
            assert_kind_or_starved_by_others(
                &json,
                who,
                "native-parallel",
                "Native-parallel",
                busy,
            );
            assert_shares_sum_to_one(&json, who);
            let workers = threads_named(&json, "native-");
            assert_eq!(workers.len(), 4, "{who}");
            let all = evidence(&json);
            let starved = json["verdict"]["kind"] == "cpu-starved";
            // Other processes' load takes CPU time from the threads' native share.
            let quiet = others_cores(&json, busy) < 0.5;
            for t in workers {
                let s = &t["states"];
                let name = &t["name"];
                let (native, ready) = (share(s, "native"), share(s, "ready"));
                // Four threads want two CPUs: on a CPU about half the time, ready the other half.
                // Starved by other processes, part of that shows as woken GIL waiters.
                let queued = ready + if starved { share(s, "waiting") } else { 0.0 };
                if cpu_count() <= 2 {
                    assert!(queued > 0.2, "{who}: {name} ready {ready}\n{all}");
                }
                if !starved && quiet {
                    assert!(native >= 0.2, "{who}: {name} native {native}\n{all}");
                }
                // It wants to run all the time (OpenSSL's own locks aside); it never blocks,
                // so it is never idle.
                let wanting: f64 = ["holding", "waiting", "handoff", "native", "ready"]
                    .iter()
                    .map(|k| share(s, k))
                    .sum();
                assert!(wanting >= 0.7, "{who}: {name} wants to run: {s}\n{all}");
                assert!(share(s, "idle") <= 0.1, "{who}: {name} idle: {s}\n{all}");
            }
            passed(py, "native: ready for a CPU");
        },
    );
}

// ---------------------------------------------------------------------------------------
// A CPU quota.

#[test]
fn a_cpu_quota_starves_threads_and_the_summary_names_the_quota() {
    let _turn = exclusive();
    let cgroup = match QuotaCgroup::create() {
        Ok(cg) => cg,
        Err(why) => {
            skip(
                "a_cpu_quota_starves_threads_and_the_summary_names_the_quota",
                why,
            );
            return;
        }
    };
    on_every_python_strict(
        "a_cpu_quota_starves_threads_and_the_summary_names_the_quota",
        |py| {
            let who = py.label.as_str();
            for (fixture, extra, inner) in [
                (
                    "native_release.py",
                    &["--threads", "2", "--seconds", "2.5"][..],
                    "",
                ),
                ("single_busy.py", &["--seconds", "2.5"][..], "Single-thread"),
            ] {
                let mut argv = py.argv();
                argv.push(py.fixture(fixture));
                argv.extend(extra.iter().map(|s| s.to_string()));
                let (json, summary) = record_argv(who, &[], &cgroup.wrap(argv));
                let all = evidence(&json);
                let verdict = json["verdict"]["summary"].as_str().unwrap();
                assert_eq!(
                    json["verdict"]["kind"], "cpu-starved",
                    "{who}: {fixture} under a 0.5-CPU quota\n{all}"
                );
                // The quota is named; only when other processes left the cgroup too little
                // CPU to reach it (throttled < 5% of the run) may they be named instead.
                let s = supply(&json);
                let throttled = s.map_or(1.0, |s| {
                    f(&s["throttled_s"]) / f(&json["run"]["duration_s"]).max(1e-9)
                });
                let others = s.map_or(0.0, |s| s["others_cores"].as_f64().unwrap_or(0.0));
                assert!(
                    verdict.contains("quota")
                        || (throttled < 0.05
                            && others >= 0.5
                            && verdict.contains("other processes")),
                    "{who}: {fixture}: the quota is not named (throttled {throttled:.2} of the \
                     run, others {others:.2} CPUs)\n{all}"
                );
                assert!(verdict.contains(inner), "{who}: {fixture}\n{all}");
                if let Some(s) = s {
                    let quota = f(&s["quota_cores"]);
                    assert!((quota - 0.5).abs() < 1e-6, "{who}: {fixture}: {s}");
                    // Wanting one or two CPUs with half of one: throttled about half the run
                    // on an idle machine, less when other processes take CPUs too.
                    if others < 0.5 {
                        assert!(f(&s["throttled_periods"]) >= 5.0, "{who}: {fixture}: {s}");
                        assert!(
                            throttled >= 0.2,
                            "{who}: {fixture}: throttled {throttled}: {s}"
                        );
                    }
                }
                for t in threads_named(&json, "native-") {
                    // Throttled, not blocked: ready, never idle.
                    let s = &t["states"];
                    assert!(
                        share(s, "idle") <= 0.1,
                        "{who}: {fixture}: {} idle: {s}\n{all}",
                        t["name"]
                    );
                }
                let cores = f(&json["process"]["cores_used"]);
                assert!(cores <= 0.65, "{who}: {fixture} used {cores} CPUs\n{all}");
                assert!(summary.contains("CPU-starved"), "{who}: {summary}");
                eprintln!("{who}: {fixture} under the quota: {verdict}");
            }
            passed(py, "CPU-starved: quota");
        },
    );
}

// ---------------------------------------------------------------------------------------
// C code that keeps the GIL while it computes.

const SPIN_C: &str = r#"
#include <time.h>
/* Computes on the CPU for `us` microseconds of this thread's CPU time. */
unsigned long spin_us(unsigned long us) {
    struct timespec t0, t;
    volatile unsigned long x = 0;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (;;) {
        for (int i = 0; i < 1000; i++) x += i * i;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000000L + (t.tv_nsec - t0.tv_nsec) / 1000 >= (long)us)
            return x;
    }
}
"#;

#[test]
fn c_code_that_keeps_the_gil_while_computing_is_gil_bound() {
    let test = "c_code_that_keeps_the_gil_while_computing_is_gil_bound";
    if require_program(test, "cc", "a C compiler, to build spin_us()").is_none() {
        return;
    }
    let _turn = exclusive();
    on_every_python(
        "c_code_that_keeps_the_gil_while_computing_is_gil_bound",
        |py| {
            let who = py.label.as_str();
            // Where the interpreter can load it (inside its chroot when it has one).
            let dir = py.tempdir();
            std::fs::write(dir.path().join("spin.c"), SPIN_C).unwrap();
            let lib = dir.path().join("spin.so");
            let cc = Command::new("cc")
                .args(["-O2", "-shared", "-fPIC", "-o"])
                .arg(&lib)
                .arg(dir.path().join("spin.c"))
                .output()
                .unwrap();
            assert!(cc.status.success(), "cc: {}", text(&cc.stderr));
            let inside = py.inside(&lib);
            let before = machine_ticks();
            let (json, summary) = record_json(
                py,
                "native_hold.py",
                &["--lib", &inside, "--seconds", "2.5", "--spin-ms", "3"],
            );
            let all = evidence(&json);
            let busy = busy_cores_since(before);
            assert_kind_or_starved_by_others(&json, who, "gil-bound", "GIL-bound", busy);
            let g = gil0(&json);
            assert!(f(&g["held"]) >= 0.75, "{who}: held {}\n{all}", g["held"]);
            assert_shares_sum_to_one(&json, who);
            let workers = threads_named(&json, "hold-");
            assert_eq!(workers.len(), 4, "{who}\n{all}");
            for t in workers {
                let s = &t["states"];
                assert!(
                    share(s, "holding") + share(s, "waiting") + share(s, "handoff") >= 0.8
                        && share(s, "native") <= 0.1,
                    "{who}: {} {s}\n{all}",
                    t["name"]
                );
                assert!(
                    share(s, "waiting") >= 0.4,
                    "{who}: {} {s}\n{all}",
                    t["name"]
                );
            }
            assert_eq!(json["top_holders"][0]["function"], "crunch", "{who}\n{all}");
            // Where the kernel lets gilscope sample instruction pointers, the verdict names the
            // module that keeps the GIL and does not advise moving the code into C.
            let modules = json["native_modules"].as_array().unwrap();
            if modules.is_empty() {
                skip(
                    &format!("c_code_that_keeps_the_gil_while_computing_is_gil_bound: {who}"),
                    "the module check: no instruction-pointer samples (perf_event_open refused)",
                );
            } else {
                assert_eq!(modules[0]["module"], "spin", "{who}: {modules:?}\n{all}");
                assert!(f(&modules[0]["share"]) >= 0.5, "{who}: {modules:?}\n{all}");
                let verdict = json["verdict"]["summary"].as_str().unwrap();
                assert!(
                    verdict.contains("held in native code") && verdict.contains("spin"),
                    "{who}: {verdict}"
                );
                let advice = json["verdict"]["advice"].to_string();
                assert!(!advice.contains("C or Rust extension"), "{who}: {advice}");
            }
            eprintln!(
                "{who}: native_hold verdict: {}\n  advice: {}",
                json["verdict"]["summary"], json["verdict"]["advice"]
            );
            assert!(summary.contains("GIL-bound"), "{who}: {summary}");
            passed(py, "C code holding the GIL");
        },
    );
}

// ---------------------------------------------------------------------------------------
// A 1 µs switch interval.

#[test]
fn a_one_microsecond_switch_interval_is_gil_bound_and_shown_in_microseconds() {
    let _turn = exclusive();
    on_every_python(
        "a_one_microsecond_switch_interval_is_gil_bound_and_shown_in_microseconds",
        |py| {
            let who = py.label.as_str();
            let before = machine_ticks();
            let (json, summary) = record_json(
                py,
                "gil_bound.py",
                &[
                    "--threads",
                    "4",
                    "--seconds",
                    "2",
                    "--switch-interval-ms",
                    "0.001",
                ],
            );
            let busy = busy_cores_since(before);
            let g = gil0(&json);
            let all = evidence(&json);
            assert_kind_or_starved_by_others(&json, who, "gil-bound", "GIL-bound", busy);
            assert!(f(&g["contended"]) >= 0.35, "{who}: {g}\n{all}");
            // Pure Python: the interpreter's own code is never reported as an extension that
            // keeps the GIL (on 3.8/3.9 `_PyRuntime` lies in libpython's .bss).
            assert_no_native_modules(&json, who);
            let interval = f(&g["switch_interval_ms"]);
            assert!(
                (interval - 0.001).abs() < 1e-9,
                "{who}: interval {interval} ms"
            );
            assert!(
                finding_kinds(&json).contains(&"switch-interval"),
                "{who}: {}",
                json["findings"]
            );
            // The GIL's row in the terminal summary shows the interval in µs, not "0.0 ms".
            let row = summary
                .lines()
                .find(|l| l.trim_start().starts_with("interpreter "))
                .unwrap_or_else(|| panic!("{who}: no GIL row in: {summary}"));
            assert!(
                ["1 µs", "1.0 µs", "1µs"].iter().any(|s| row.contains(s)),
                "{who}: the interval is not shown in µs: {row:?}"
            );
            passed(py, "1 µs switch interval");
        },
    );
}

// ---------------------------------------------------------------------------------------
// Sampled on-CPU time against the kernel's.

#[test]
fn each_threads_sampled_on_cpu_time_agrees_with_the_kernels() {
    let _turn = exclusive();
    on_every_python(
        "each_threads_sampled_on_cpu_time_agrees_with_the_kernels",
        |py| {
            let who = py.label.as_str();
            for (fixture, extra) in [
                ("gil_bound.py", &["--threads", "4", "--seconds", "2"][..]),
                ("single_busy.py", &["--seconds", "2"][..]),
                ("native_release.py", &["--seconds", "2"][..]),
            ] {
                let (json, _) = record_json(py, fixture, extra);
                let mut compared = 0;
                for t in json["threads"].as_array().unwrap() {
                    let (kernel, sampled) = (f(&t["cpu_s"]), f(&t["on_cpu_s"]));
                    if kernel < 0.05 && sampled < 0.05 {
                        continue;
                    }
                    let allowed = (0.1 * kernel).max(0.05);
                    assert!(
                        (kernel - sampled).abs() <= allowed,
                        "{who}: {fixture}: {} cpu_s {kernel:.3} but on_cpu_s {sampled:.3} \
                     (allowed ±{allowed:.3})\n{}",
                        t["name"],
                        evidence(&json)
                    );
                    compared += 1;
                }
                assert!(compared >= 1, "{who}: {fixture}\n{}", evidence(&json));
            }
            passed(py, "on-CPU time");
        },
    );
}
