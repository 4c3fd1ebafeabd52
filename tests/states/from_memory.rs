//! CPython 3.15+ says in each thread state whether its thread holds or waits for the GIL: a
//! state tick classifies a thread inside take_gil() from that word, without reading its
//! `/proc` files. The picture must be the one the full reading gives, and the `/proc` reads
//! must really be gone (counted by the kernel: `perf stat` on the `pread64` system call).

use std::process::Command;

use serde_json::Value;

use crate::common::*;
use crate::evidence::*;

/// GIL-bound workers: all but the holder wait inside take_gil() at any instant.
const WORKERS: usize = 16;

#[test]
fn on_3_15_gil_waiters_are_read_from_memory_and_tell_the_same_story() {
    let _turn = exclusive();
    let test = "on_3_15_gil_waiters_are_read_from_memory_and_tell_the_same_story";
    if !require_root(test, "to count gilscope's system calls with perf") {
        return;
    }
    let Ok(perf) = which("perf") else {
        skip_unless_required(test, "perf is not on PATH (apt-get install linux-perf)");
        return;
    };
    let pys: Vec<_> = require_from(test, 15)
        .into_iter()
        .filter(|p| !p.free_threaded)
        .collect();
    on_each(test, pys, |py| {
        let who = py.label.as_str();
        let workers = WORKERS.to_string();
        let target = Running::start(
            py,
            "gil_bound.py",
            &["--threads", &workers, "--seconds", "60"],
        );
        let dir = tempfile::tempdir().unwrap();
        let counts = dir.path().join("perf.csv");
        let pid = target.pid.to_string();
        let out = Command::new(&perf)
            .args(["stat", "-x,", "-e", "syscalls:sys_enter_pread64", "-o"])
            .arg(&counts)
            .args([
                "--",
                BIN,
                "attach",
                &pid,
                "--rate",
                "1",
                "--state-rate",
                "5000",
            ])
            .args(["-d", "3", "-f", "json", "-o", "-"])
            .output()
            .expect("run perf stat");
        let stderr = text(&out.stderr);
        if !out.status.success() && stderr.contains("syscalls:sys_enter_pread64") {
            skip(
                test,
                format!("perf cannot count system calls here: {stderr}"),
            );
            return;
        }
        assert!(out.status.success(), "{who}: {stderr}");
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        let all = evidence(&json);
        let preads = pread_count(&std::fs::read_to_string(&counts).unwrap())
            .unwrap_or_else(|| panic!("{who}: no pread64 count from perf"));
        let ticks = json["run"]["state_samples"].as_f64().unwrap();
        assert!(ticks >= 1000.0, "{who}: {} ticks\n{all}", ticks);
        // Read in full, every thread costs a pread of its syscall file at every tick (17 with
        // main); from memory only the holder, the main thread and a waiter at its first tick
        // do.
        let per_tick = preads as f64 / ticks;
        eprintln!("{who}: {per_tick:.2} /proc reads per state tick, {ticks} ticks");
        assert!(
            per_tick <= (WORKERS + 1) as f64 / 2.0,
            "{who}: {per_tick:.2} /proc reads per state tick: the waiters were read in full"
        );
        // The picture: each worker waits for the GIL most of the time and holds it about
        // 1/N of it (wide bounds: a busy machine preempts the holder, which still holds).
        let ws = threads_named(&json, "worker-");
        assert_eq!(ws.len(), WORKERS, "{who}\n{all}");
        let n = WORKERS as f64;
        let mut held = 0.0;
        for t in &ws {
            let s = &t["states"];
            let (waiting, holding) = (share(s, "waiting"), share(s, "holding"));
            held += holding;
            assert!(
                waiting >= 0.6 * (n - 1.0) / n,
                "{who}: {} {s}\n{all}",
                t["name"]
            );
            assert!(holding <= 3.0 / n, "{who}: {} {s}\n{all}", t["name"]);
            assert!(
                share(s, "native") + share(s, "idle") <= 0.1,
                "{who}: {s}\n{all}"
            );
        }
        assert!(
            held >= 0.5,
            "{who}: the workers held the GIL {held:.2}\n{all}"
        );
        assert!(f(&gil0(&json)["held"]) >= 0.5, "{who}\n{all}");
        assert!(
            f(&gil0(&json)["avg_waiters"]) >= 0.5 * (n - 1.0),
            "{who}\n{all}"
        );
        passed(py, "GIL waiters read from memory");
    });
}

/// The count of `perf stat -x,`'s `syscalls:sys_enter_pread64` line.
fn pread_count(csv: &str) -> Option<u64> {
    csv.lines()
        .find(|l| l.contains("sys_enter_pread64"))
        .and_then(|l| l.split(',').next()?.trim().parse().ok())
}
