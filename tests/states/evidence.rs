//! What the state tests read from a run's JSON and the fixtures, and the CPU hogs they run
//! beside them.

use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::common::*;

/// The CPU supply object, wherever the JSON has it at the time (`cpu_supply`, or under
/// `process`).
pub fn supply(json: &Value) -> Option<&Value> {
    [
        &json["cpu_supply"],
        &json["process"]["cpu_supply"],
        &json["process"]["supply"],
        &json["supply"],
        &json["process"],
    ]
    .into_iter()
    .find(|v| v.is_object() && v.get("others_cores").is_some())
}

/// CPUs other processes kept busy during the run: the JSON's own figure when it has one,
/// else the machine's busy time over the run (measured by the test) minus the process's.
pub fn others_cores(json: &Value, machine_busy: f64) -> f64 {
    if let Some(others) = supply(json).and_then(|s| s["others_cores"].as_f64()) {
        return others;
    }
    let own = json["process"]["cores_used"].as_f64().unwrap_or(0.0);
    (machine_busy - own).max(0.0)
}

/// A fixture recorded as `record_json_with` does, with the machine's busy CPUs over the run.
pub fn record_measured(
    py: &Python,
    opts: &[&str],
    fixture: &str,
    extra: &[&str],
) -> (Value, String, f64) {
    let before = machine_ticks();
    let (json, summary) = record_json_with(py, opts, fixture, extra);
    (json, summary, busy_cores_since(before))
}

/// `gilscope record -f json -o - OPTS -- ARGV`: the parsed JSON and stderr.
pub fn record_argv(who: &str, opts: &[&str], argv: &[String]) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["record", "-f", "json", "-o", "-"];
    args.extend(opts);
    args.push("--");
    args.extend(argv.iter().map(String::as_str));
    let out = gilscope(dir.path(), &args);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{who}: {argv:?} failed: {stderr}");
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{who}: JSON on stdout: {e}\n{}", text(&out.stdout)));
    (json, stderr)
}

pub fn share(states: &Value, key: &str) -> f64 {
    states[key].as_f64().unwrap_or(0.0)
}

/// What to read when an assertion fails: the verdict, the CPU supply, every thread's
/// states.
pub fn evidence(json: &Value) -> String {
    let mut s = format!(
        "verdict {}: {}\n  rule: {}\n  process {}\n  supply {}\n  gil held {} waiters {} \
         contended {}\n",
        json["verdict"]["kind"],
        json["verdict"]["summary"],
        json["verdict"]["rule"],
        json["process"],
        supply(json).map_or("none".into(), |v| v.to_string()),
        gil0(json)["held"],
        gil0(json)["avg_waiters"],
        gil0(json)["contended"],
    );
    for t in json["threads"].as_array().unwrap() {
        let states: Vec<String> = t["states"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| v.as_f64().unwrap_or(0.0) >= 0.005)
            .map(|(k, v)| format!("{k} {:.2}", v.as_f64().unwrap()))
            .collect();
        s += &format!(
            "  {:<12} {}  io {}  contended_lock {:.2}  cpu_s {:.3}  on_cpu_s {:.3}\n",
            t["name"].as_str().unwrap_or("?"),
            states.join(", "),
            t["io"],
            t["contended_lock"].as_f64().unwrap_or(f64::NAN),
            t["cpu_s"].as_f64().unwrap_or(f64::NAN),
            t["on_cpu_s"].as_f64().unwrap_or(f64::NAN),
        );
    }
    s
}

/// Every thread's state shares, whatever states the JSON has, sum to 1.
pub fn assert_shares_sum_to_one(json: &Value, who: &str) {
    for t in json["threads"].as_array().unwrap() {
        let total: f64 = t["states"].as_object().unwrap().values().map(f).sum();
        assert!(
            (total - 1.0).abs() < 1e-6,
            "{who}: {} shares sum to {total}: {}",
            t["name"],
            t["states"]
        );
    }
}

/// The verdict is `expected`, or `cpu-starved` by other processes around the expected one
/// (its summary goes on with `inner`) when they kept at least half a CPU busy.
pub fn assert_kind_or_starved_by_others(
    json: &Value,
    who: &str,
    expected: &str,
    inner: &str,
    machine_busy: f64,
) {
    let kind = json["verdict"]["kind"].as_str().unwrap();
    if kind == expected {
        return;
    }
    let others = others_cores(json, machine_busy);
    let summary = json["verdict"]["summary"].as_str().unwrap();
    // What the run is judged on the time it ran: `verdict.then` where the JSON has it.
    let then_ok = match json["verdict"]["then"].as_str() {
        Some(then) => then == expected,
        None => summary.contains(inner),
    };
    assert!(
        kind == "cpu-starved" && others >= 0.5 && then_ok,
        "{who}: expected {expected} (or cpu-starved by other processes using ≥ 0.5 CPUs, \
         then {inner}); others used {others:.2} CPUs\n{}",
        evidence(json)
    );
    eprintln!("{who}: {kind} (others used {others:.2} CPUs): {summary}");
}

/// A pure-Python run names no native module as holding the GIL.
pub fn assert_no_native_modules(json: &Value, who: &str) {
    let modules = json["native_modules"].as_array().unwrap();
    assert!(
        modules.iter().all(|m| f(&m["share"]) < 0.05),
        "{who}: pure Python, yet native modules hold the GIL: {modules:?}"
    );
}

/// The 1-based number of the first line of a fixture that, trimmed, starts with `code`.
pub fn line_of(fixture: &str, code: &str) -> usize {
    let text = std::fs::read_to_string(fixtures_dir().join(fixture)).unwrap();
    1 + text
        .lines()
        .position(|l| l.trim_start().starts_with(code))
        .unwrap_or_else(|| panic!("no {code:?} in {fixture}"))
}

/// Busy-loop processes beside the fixture, each wanting a whole CPU; killed on drop.
pub struct Hogs(Vec<Child>);

impl Hogs {
    pub fn start(n: usize) -> Hogs {
        Hogs(
            (0..n)
                .map(|_| {
                    Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .stdin(Stdio::null())
                        .spawn()
                        .expect("start a CPU hog")
                })
                .collect(),
        )
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for hog in &mut self.0 {
            let _ = hog.kill();
            let _ = hog.wait();
        }
    }
}
