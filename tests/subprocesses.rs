//! `--subprocesses`: a multiprocessing pool is followed process by process, and the advice
//! "use processes" shows as working: each worker's GIL busy, nobody waiting, more than one
//! core used in all.

mod common;

use common::*;
use serde_json::Value;

fn subprocesses(json: &Value) -> &Vec<Value> {
    json["subprocesses"]
        .as_array()
        .unwrap_or_else(|| panic!("no subprocesses in the report: {json}"))
}

#[test]
fn a_process_pool_runs_in_parallel_each_worker_with_its_own_gil() {
    let _turn = exclusive();
    let test = "a_process_pool_runs_in_parallel_each_worker_with_its_own_gil";
    on_every_python(test, |py| {
        let who = &py.label;
        let before = machine_ticks();
        let (json, summary) = record_json_with(
            py,
            &["--subprocesses"],
            "process_pool.py",
            &["--processes", "2", "--seconds", "2.5"],
        );
        let busy = busy_cores_since(before);
        let workers: Vec<&Value> = subprocesses(&json)
            .iter()
            .filter(|p| f(&p["gils"][0]["held"]) >= 0.8)
            .collect();
        assert_eq!(workers.len(), 2, "{who}: {summary}");
        for w in &workers {
            let g = &w["gils"][0];
            assert!(f(&g["avg_waiters"]) <= 0.1, "{who}: {g}");
            assert_eq!(
                verdict_kind(w),
                "single-thread-cpu",
                "{who}: {}",
                w["verdict"]
            );
            assert_eq!(w["top_holders"][0]["function"], "compute", "{who}");
        }
        let combined = &json["combined"];
        // More than one core, as one GIL never gives; on a machine other processes keep
        // busy, most of what they leave.
        let cores = f(&combined["cores_used"]);
        let left = cpu_count() as f64 - (busy - cores).max(0.0);
        assert!(
            cores > 1.2_f64.min(0.6 * left),
            "{who}: {cores:.2} cores with {left:.2} left by other processes: {combined}"
        );
        assert!(f(&combined["avg_waiters"]) <= 0.2, "{who}: {combined}");
        assert!(
            summary.contains("runs in parallel across processes"),
            "{who}: {summary}"
        );
        passed(py, "subprocesses");
    });
}

#[test]
fn without_the_flag_children_are_left_alone_and_with_it_the_flame_graph_names_each() {
    let _turn = exclusive();
    let py = pythons()[0];
    let (json, _) = record_json(py, "process_pool.py", &["--seconds", "1"]);
    assert!(json.get("subprocesses").is_none(), "{json}");
    assert!(json.get("combined").is_none(), "{json}");

    let dir = tempfile::tempdir().unwrap();
    let argv = py.argv();
    let fx = py.fixture("process_pool.py");
    let mut args = vec![
        "record",
        "--subprocesses",
        "-q",
        "-f",
        "flamegraph",
        "-o",
        "pool.svg",
        "--",
    ];
    args.extend(argv.iter().map(String::as_str));
    args.extend([fx.as_str(), "--seconds", "1.5"]);
    let out = gilscope(dir.path(), &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let svg = std::fs::read_to_string(dir.path().join("pool.svg")).unwrap();
    let roots = svg.matches(">process ").count();
    assert!(roots >= 3, "{roots} process frames in the flame graph");
    assert!(svg.contains("compute"), "no worker stacks");
}
