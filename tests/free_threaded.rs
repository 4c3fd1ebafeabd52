//! Free-threaded CPython (3.13t, from `scripts/test-pythons`): threads run Python in parallel
//! and gilscope says the GIL is disabled, or reads the GIL as usual once it is enabled and says
//! when that happened. Stacks come from gilscope's own reader of CPython's debug offsets.

mod common;

use common::*;
use serde_json::Value;

fn workers(json: &Value) -> Vec<&Value> {
    // Python 3.13 does not give OS threads their Python names, so workers are the threads
    // other than the main one, which started first.
    let threads = json["threads"].as_array().unwrap();
    let main = threads.iter().map(|t| f(&t["tid"]) as i64).min().unwrap();
    threads
        .iter()
        .filter(|t| f(&t["tid"]) as i64 != main && f(&t["cpu_s"]) > 0.2)
        .collect()
}

#[test]
fn threads_run_in_parallel_and_the_gil_reads_disabled() {
    let _turn = exclusive();
    on_free_threaded("threads_run_in_parallel_and_the_gil_reads_disabled", |py| {
        let who = &py.label;
        let (json, summary) =
            record_json(py, "gil_bound.py", &["--threads", "3", "--seconds", "3"]);
        assert_eq!(verdict_kind(&json), "gil-disabled", "{who}: {summary}");
        let g = gil0(&json);
        assert_eq!(g["free_threaded"], true, "{who}");
        // An import may enable the GIL for a tick or two while CPython checks the module.
        assert!(f(&g["enabled_share"]) < 0.02, "{who}: {g}");
        assert_eq!(
            g["enabled_at_s"],
            Value::Null,
            "{who}: never enabled for good: {g}"
        );
        // More than one core, as no GIL build gives; on a machine that other processes keep
        // busy, most of what they leave.
        let others = json["process"]["cpu_supply"]["others_cores"]
            .as_f64()
            .unwrap_or(0.0);
        let left = 2.0 - others;
        let cores = f(&json["process"]["cores_used"]);
        assert!(
            cores > 1.1_f64.min(0.8 * left),
            "{who}: {cores:.2} cores with {left:.2} left by others: one core at most, as with \
             a GIL: {summary}"
        );
        let busy = workers(&json);
        assert_eq!(busy.len(), 3, "{who}: {}", json["threads"]);
        for w in busy {
            let s = &w["states"];
            // Three threads on two CPUs: each runs about two thirds of the time and waits
            // for a CPU the rest.
            assert!(f(&s["running"]) + f(&s["ready"]) >= 0.8, "{who}: {s}");
            // Each gets its part of the CPUs other processes leave (two thirds of a CPU on
            // a quiet machine).
            let part = 0.4 * left / 3.0;
            assert!(
                f(&s["running"]) >= part.min(0.3),
                "{who}: {s} ({left:.2} CPUs left)"
            );
            assert_eq!(f(&s["holding"]) + f(&s["waiting"]), 0.0, "{who}: {s}");
        }
        // Stacks read through the debug offsets name the function and its lines.
        let top = &json["top_running"][0];
        assert_eq!(top["function"], "compute", "{who}: {}", json["top_running"]);
        assert!(
            top["file"].as_str().unwrap().ends_with("gil_bound.py"),
            "{who}: {top}"
        );
        let line = f(&top["line"]) as u32;
        assert!((19..=27).contains(&line), "{who}: compute() at line {line}");
        assert!(summary.contains("GIL disabled"), "{who}: {summary}");
        assert!(
            !finding_kinds(&json).contains(&"gil-enabled"),
            "{who}: {}",
            json["findings"]
        );
        passed(py, "GIL disabled: running/idle");
    })
}

#[test]
fn python_gil_1_enables_the_gil_from_the_start_and_gilscope_says_so() {
    let _turn = exclusive();
    on_free_threaded(
        "python_gil_1_enables_the_gil_from_the_start_and_gilscope_says_so",
        |py| {
            let who = &py.label;
            let (json, summary) = record_json_env(
                py,
                &[],
                &[("PYTHON_GIL", "1")],
                "gil_bound.py",
                &["--threads", "3", "--seconds", "3"],
            );
            assert_eq!(verdict_kind(&json), "gil-bound", "{who}: {summary}");
            let g = gil0(&json);
            assert!(f(&g["enabled_share"]) > 0.95, "{who}: {g}");
            assert!(f(&g["enabled_at_s"]) < 0.001, "{who}: {g}");
            for w in workers(&json) {
                let s = &w["states"];
                assert!(f(&s["waiting"]) >= 0.3, "{who}: {s}");
                assert_eq!(f(&s["running"]), 0.0, "{who}: {s}");
            }
            let finding = json["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["kind"] == "gil-enabled")
                .unwrap_or_else(|| panic!("{who}: no gil-enabled finding: {summary}"));
            assert!(
                finding["summary"]
                    .as_str()
                    .unwrap()
                    .contains("from the first sample on"),
                "{who}: {finding}"
            );
            passed(py, "PYTHON_GIL=1");
        },
    )
}

#[test]
fn an_unsafe_extension_enables_the_gil_mid_run_and_the_moment_is_named() {
    let test = "an_unsafe_extension_enables_the_gil_mid_run_and_the_moment_is_named";
    if require_program(
        test,
        "cc",
        "a C compiler, to build the unsafe extension module",
    )
    .is_none()
    {
        return;
    }
    let _turn = exclusive();
    on_free_threaded(
        "an_unsafe_extension_enables_the_gil_mid_run_and_the_moment_is_named",
        |py| {
            let who = &py.label;
            let (json, summary) = record_json(
                py,
                "gil_reenabled.py",
                &["--seconds", "4", "--enable-after", "2"],
            );
            let g = gil0(&json);
            // Enabled for good two seconds after the importer thread started (later when the
            // machine is busy compiling the module first), and from then to the end: the moment
            // named must agree with the share of the run the GIL was enabled.
            let at = f(&g["enabled_at_s"]);
            let duration = f(&json["run"]["duration_s"]);
            assert!(
                at >= 1.5 && at < duration,
                "{who}: enabled at {at} of {duration}: {g}"
            );
            let share = f(&g["enabled_share"]);
            let after = (duration - at) / duration;
            assert!(
                share >= after - 0.05 && share <= after + 0.15,
                "{who}: enabled {share} of the run, but from {at} s of {duration} s: {g}"
            );
            for w in workers(&json) {
                let s = &w["states"];
                assert!(f(&s["running"]) >= 0.2, "{who}: ran in parallel first: {s}");
                assert!(
                    f(&s["holding"]) + f(&s["waiting"]) >= 0.2,
                    "{who}: took turns after: {s}"
                );
            }
            assert!(
                summary.contains("for good from"),
                "{who}: the moment is not named: {summary}"
            );
            passed(py, "GIL re-enabled mid-run");
        },
    )
}

#[test]
fn http_clients_without_a_gil_are_io_bound_on_their_sockets() {
    let _turn = exclusive();
    for py in require_free_threaded("http_clients_without_a_gil_are_io_bound_on_their_sockets") {
        let who = &py.label;
        let (json, summary) = record_json(py, "io_client.py", &["--seconds", "2.5"]);
        // Waiting on the network is not running in parallel: no "GIL disabled, more threads
        // help" here. On a machine that other processes keep busy, start-up (imports waiting
        // for a CPU) can be most of the run: CPU-starved is right then.
        let others = json["process"]["cpu_supply"]["others_cores"]
            .as_f64()
            .unwrap_or(0.0);
        if json["verdict"]["kind"] == "cpu-starved" && others >= 0.5 {
            // Starved that much, the clients spend the run getting started, not on I/O.
            eprintln!("{who}: CPU-starved, other processes used {others:.2} CPUs: {summary}");
            continue;
        } else {
            assert_eq!(verdict_kind(&json), "io-bound", "{who}: {summary}");
            let verdict = json["verdict"]["summary"].as_str().unwrap();
            assert!(verdict.contains("socket"), "{who}: {verdict}");
            assert!(!verdict.contains("GIL is held"), "{who}: {verdict}");
        }
        let threads = json["threads"].as_array().unwrap();
        let main = threads.iter().map(|t| f(&t["tid"]) as i64).min().unwrap();
        let clients: Vec<_> = threads
            .iter()
            .filter(|t| f(&t["tid"]) as i64 != main && f(&t["states"]["io"]) > 0.0)
            .collect();
        // 16 clients and the local server's threads in its own process.
        assert!(clients.len() >= 16, "{who}: {}", json["threads"]);
        let io: f64 = clients.iter().map(|t| f(&t["states"]["io"])).sum::<f64>();
        assert!(
            io / clients.len() as f64 >= 0.75,
            "{who}: clients wait on I/O {:.2} of the time: {}",
            io / clients.len() as f64,
            json["threads"]
        );
        for t in &clients {
            let s = &t["states"];
            assert_eq!(f(&s["holding"]) + f(&s["waiting"]), 0.0, "{who}: {s}");
        }
        eprintln!("{who}: passed: HTTP clients without a GIL are I/O-bound");
    }
}

#[test]
fn running_threads_on_cpu_time_agrees_with_the_kernels() {
    let _turn = exclusive();
    on_free_threaded(
        "running_threads_on_cpu_time_agrees_with_the_kernels",
        |py| {
            let who = &py.label;
            // Four threads on two CPUs: each runs about half the time and waits for a CPU the rest.
            let (json, summary) =
                record_json(py, "gil_bound.py", &["--threads", "4", "--seconds", "2"]);
            let mut compared = 0;
            let threads = json["threads"].as_array().unwrap();
            let main = threads.iter().map(|t| f(&t["tid"]) as i64).min().unwrap();
            // The workers want a CPU all the time (however little of one a busy machine gives).
            let workers = threads.iter().filter(|t| {
                f(&t["tid"]) as i64 != main
                    && f(&t["states"]["running"]) + f(&t["states"]["ready"]) >= 0.5
            });
            for t in workers {
                let (kernel, sampled) = (f(&t["cpu_s"]), f(&t["on_cpu_s"]));
                let allowed = (0.1 * kernel).max(0.05);
                assert!(
                (kernel - sampled).abs() <= allowed,
                "{who}: {} cpu_s {kernel:.3} but on_cpu_s {sampled:.3} (allowed ±{allowed:.3})\n{summary}",
                t["name"]
            );
                assert!(f(&t["states"]["ready"]) >= 0.1, "{who}: {}", t["states"]);
                compared += 1;
            }
            assert_eq!(compared, 4, "{who}: {}", json["threads"]);
            eprintln!("{who}: passed: running threads' on-CPU time agrees with the kernel's");
        },
    )
}
