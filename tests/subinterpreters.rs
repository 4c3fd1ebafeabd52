//! Subinterpreters (CPython 3.13+): every interpreter is walked, each GIL gets its own
//! metrics, each thread is labelled with the interpreter it runs in, and interpreters that
//! share the main GIL are shown sharing it.
//!
//! 3.12 is left out: its private `_xxsubinterpreters` runs a subinterpreter's code on a thread
//! state that names the thread which created the interpreter, not the one running it, so no
//! reader outside the process can tell which OS thread runs there.

mod common;

use common::*;
use serde_json::Value;

fn thread<'a>(json: &'a Value, name: &str) -> &'a Value {
    threads_named(json, name)
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no thread {name}: {}", json["threads"]))
}

fn gil_of(json: &Value, interpreter: i64) -> &Value {
    json["gils"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| {
            g["interpreters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i.as_i64() == Some(interpreter))
        })
        .unwrap_or_else(|| panic!("no GIL used by interpreter {interpreter}: {}", json["gils"]))
}

#[test]
fn each_gil_has_its_own_metrics_and_threads_their_interpreter() {
    let _turn = exclusive();
    let mut tested = Vec::new();
    for py in require_from(
        "each_gil_has_its_own_metrics_and_threads_their_interpreter",
        13,
    ) {
        let who = &py.label;
        let (json, summary) = record_json(py, "subinterpreters.py", &["--seconds", "3"]);
        assert_eq!(
            json["gils"].as_array().unwrap().len(),
            2,
            "{who}: {summary}"
        );

        // The isolated interpreter's thread has a GIL to itself: held, nobody waits.
        let own = thread(&json, "own-1");
        let own_interp = own["interpreter"].as_i64().unwrap();
        assert_ne!(
            own_interp, 0,
            "{who}: own-1 is not labelled with its interpreter"
        );
        assert!(f(&own["states"]["holding"]) >= 0.8, "{who}: {own}");
        let own_gil = gil_of(&json, own_interp);
        assert_eq!(
            own_gil["interpreters"],
            serde_json::json!([own_interp]),
            "{who}"
        );
        assert!(f(&own_gil["held"]) >= 0.8, "{who}: {own_gil}");
        assert!(f(&own_gil["avg_waiters"]) <= 0.05, "{who}: {own_gil}");

        // The legacy interpreter shares the main GIL: its thread and the main one take turns.
        let shared = thread(&json, "shared-1");
        let shared_interp = shared["interpreter"].as_i64().unwrap();
        assert!(![0, own_interp].contains(&shared_interp), "{who}: {shared}");
        let main_gil = gil_of(&json, 0);
        let users = main_gil["interpreters"].as_array().unwrap();
        assert!(
            users.iter().any(|i| i.as_i64() == Some(shared_interp)),
            "{who}: the main GIL is not shown as shared: {main_gil}"
        );
        assert!(f(&main_gil["contended"]) >= 0.3, "{who}: {main_gil}");
        for t in [shared, thread(&json, "main-1")] {
            assert!(f(&t["states"]["waiting"]) >= 0.15, "{who}: {t}");
            assert!(f(&t["states"]["holding"]) >= 0.2, "{who}: {t}");
        }
        // Stacks come from inside the subinterpreters too.
        let holders: Vec<&str> = json["top_holders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["function"].as_str().unwrap())
            .collect();
        assert!(
            holders.contains(&"spin_in_subinterpreter") && holders.contains(&"spin_in_main"),
            "{who}: {holders:?}"
        );
        assert!(
            summary.contains("shared by interpreters"),
            "{who}: {summary}"
        );
        tested.push(py.full_version.clone());
        passed(py, "subinterpreters");
    }
    eprintln!("subinterpreters: tested {tested:?}");
}

#[test]
fn an_interpreter_pool_runs_each_task_under_a_gil_of_its_own() {
    let _turn = exclusive();
    let mut tested = Vec::new();
    for py in require_from(
        "an_interpreter_pool_runs_each_task_under_a_gil_of_its_own",
        14,
    ) {
        let who = &py.label;
        let (json, summary) = record_json(
            py,
            "subinterpreters.py",
            &["--own", "0", "--shared", "0", "--main", "0", "--pool", "2"],
        );
        let busy: Vec<&Value> = json["gils"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| f(&g["held"]) >= 0.8)
            .collect();
        assert_eq!(busy.len(), 2, "{who}: {summary}");
        for g in busy {
            assert_ne!(g["interpreter"], 0, "{who}: {g}");
            assert!(f(&g["avg_waiters"]) <= 0.05, "{who}: {g}");
        }
        assert_eq!(verdict_kind(&json), "single-thread-cpu", "{who}: {summary}");
        assert!(
            summary.contains("interpreters run Python in parallel"),
            "{who}: {summary}"
        );
        // The code named is the user's own, not the pool's machinery that calls it (which
        // may rank beside it by inclusive share).
        assert_eq!(
            json["verdict"]["code"]["function"], "spin",
            "{who}: {}",
            json["verdict"]
        );
        assert!(
            json["top_holders"]
                .as_array()
                .unwrap()
                .iter()
                .take(3)
                .any(|s| s["function"] == "spin"),
            "{who}: {}",
            json["top_holders"]
        );
        tested.push(py.full_version.clone());
        passed(py, "InterpreterPoolExecutor");
    }
    eprintln!("interpreter pool: tested {tested:?}");
}
