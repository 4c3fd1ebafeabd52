//! The real binary against real CPython processes: every interpreter found on the machine,
//! every fixture, and every error a user can cause.
//!
//! Interpreters: pyenv's builds (`~/.pyenv/versions/3.*`), `python3` on PATH, Debian's
//! `/usr/bin/python3.11`, and any listed in `GILSCOPE_TEST_PYTHONS` (separated by `:`).
//! Each test prints which it used and which it skipped, and why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_gilscope");

/// Profiling tests measure CPU contention, so they take turns on this 2-core machine.
fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

#[derive(Clone, Debug)]
struct Python {
    path: PathBuf,
    version: (u32, u32),
    label: String,
}

/// Every distinct interpreter on the machine, with its version; `(path, reason)` for those
/// left out.
fn discover() -> (Vec<Python>, Vec<(String, String)>) {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(list) = std::env::var("GILSCOPE_TEST_PYTHONS") {
        candidates.extend(list.split(':').filter(|s| !s.is_empty()).map(PathBuf::from));
    }
    if let Some(home) = std::env::var_os("HOME") {
        let versions = Path::new(&home).join(".pyenv/versions");
        if let Ok(entries) = std::fs::read_dir(versions) {
            let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            dirs.sort();
            candidates.extend(dirs.into_iter().map(|d| d.join("bin/python")));
        }
    }
    candidates.push("/usr/bin/python3.11".into());
    if let Ok(out) = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
    {
        let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !exe.is_empty() {
            candidates.push(exe.into());
        }
    }
    let mut found: BTreeMap<PathBuf, Python> = BTreeMap::new();
    let mut skipped = Vec::new();
    for path in candidates {
        let shown = path.display().to_string();
        let Ok(real) = std::fs::canonicalize(&path) else {
            skipped.push((shown, "not found".into()));
            continue;
        };
        if found.contains_key(&real) {
            continue;
        }
        let probe =
            "import sys, sysconfig; sys.stdout.write('%d %d %s %s\\n' % (sys.version_info[0], \
                     sys.version_info[1], sys.version.split()[0], \
                     bool(sysconfig.get_config_var('Py_GIL_DISABLED'))))";
        let out = Command::new(&real).args(["-c", probe]).output();
        let Some(text) = out
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        else {
            skipped.push((shown, "does not run".into()));
            continue;
        };
        let f: Vec<&str> = text.split_whitespace().collect();
        let (Some(Ok(major)), Some(Ok(minor))) = (
            f.first().map(|s| s.parse::<u32>()),
            f.get(1).map(|s| s.parse::<u32>()),
        ) else {
            skipped.push((shown, format!("unexpected version output {text:?}")));
            continue;
        };
        if (major, minor) < (3, 8) {
            skipped.push((
                shown,
                format!("CPython {} is older than 3.8 (tested as unsupported)", f[2]),
            ));
            continue;
        }
        if (major, minor) > (3, 13) || f.get(3) == Some(&"True") {
            skipped.push((shown, format!("CPython {} is not supported yet", f[2])));
            continue;
        }
        let label = format!("{} ({})", f[2], real.display());
        found.insert(
            real.clone(),
            Python {
                path: real,
                version: (major, minor),
                label,
            },
        );
    }
    (found.into_values().collect(), skipped)
}

fn pythons() -> &'static [Python] {
    static FOUND: OnceLock<Vec<Python>> = OnceLock::new();
    FOUND.get_or_init(|| {
        let (found, skipped) = discover();
        eprintln!("interpreters under test:");
        for p in &found {
            eprintln!("  {}", p.label);
        }
        for (path, why) in &skipped {
            eprintln!("  skipped {path}: {why}");
        }
        assert!(
            !found.is_empty(),
            "no supported CPython found (need 3.8-3.13)"
        );
        found
    })
}

/// pyenv's CPythons older than 3.8 (2.7, 3.6, 3.7), for the unsupported-version test.
fn old_pythons() -> Vec<PathBuf> {
    let Some(home) = std::env::var_os("HOME") else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(Path::new(&home).join(".pyenv/versions")) else {
        return Vec::new();
    };
    let mut old: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            ["2.", "3.6.", "3.7."].iter().any(|v| name.starts_with(v))
        })
        .map(|e| e.path().join("bin/python"))
        .collect();
    old.sort();
    old
}

/// Runs `gilscope` with `args` in `dir`.
fn gilscope(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run gilscope")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `record -f json -o -` on a fixture; returns the parsed JSON and stderr.
fn record_json(py: &Python, fixture_name: &str, extra: &[&str]) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixture(fixture_name);
    let mut args = vec![
        "record",
        "-f",
        "json",
        "-o",
        "-",
        "--",
        py.path.to_str().unwrap(),
    ];
    args.push(fx.to_str().unwrap());
    args.extend(extra);
    let out = gilscope(dir.path(), &args);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "{}: {fixture_name} failed: {stderr}",
        py.label
    );
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{}: JSON on stdout: {e}\n{}", py.label, text(&out.stdout)));
    (json, stderr)
}

fn gil0(json: &Value) -> &Value {
    &json["gils"][0]
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn finding_kinds(json: &Value) -> Vec<&str> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect()
}

/// Only the off-CPU fixture holds the GIL while blocked.
fn assert_not_held_off_cpu(json: &Value, who: &str) {
    assert!(
        !finding_kinds(json).contains(&"held-off-cpu"),
        "{who}: {}",
        json["findings"]
    );
}

fn threads_named<'a>(json: &'a Value, prefix: &str) -> Vec<&'a Value> {
    json["threads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .collect()
}

/// A fixture started by the test, killed on drop; `pid` once it wrote its ready file.
struct Running {
    child: Child,
    pid: i32,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(py: &Path, fixture_name: &str, args: &[&str]) -> Running {
        Running::start_as(Command::new(py), fixture_name, args)
    }

    fn start_as(mut command: Command, fixture_name: &str, args: &[&str]) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let mut child = command
            .arg(fixture(fixture_name))
            .args(args)
            .arg("--ready")
            .arg(&ready)
            .stdout(Stdio::null())
            .spawn()
            .expect("start fixture");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{fixture_name} exited before it was ready: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "{fixture_name} never wrote its ready file"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let pid = std::fs::read_to_string(&ready)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        Running {
            child,
            pid,
            _dir: dir,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// What a user checks, per fixture and interpreter.

#[test]
fn gil_bound_workers_hold_and_wait_on_every_interpreter() {
    let _turn = exclusive();
    for py in pythons() {
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
        assert_eq!(json["verdict"]["kind"], "gil-bound", "{who}: {summary}");
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
            let total: f64 = ["holding", "waiting", "handoff", "native", "idle"]
                .iter()
                .map(|k| f(&s[k]))
                .sum();
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
    }
}

#[test]
fn io_bound_threads_leave_the_gil_free() {
    let _turn = exclusive();
    for py in pythons() {
        let (json, _) = record_json(py, "io_bound.py", &["--seconds", "2"]);
        let who = &py.label;
        assert!(
            f(&gil0(&json)["held"]) <= 0.1,
            "{who}: held {}",
            gil0(&json)["held"]
        );
        assert_eq!(json["verdict"]["kind"], "mostly-idle", "{who}");
        assert_not_held_off_cpu(&json, who);
        for t in threads_named(&json, "io-") {
            assert!(
                f(&t["states"]["idle"]) >= 0.8,
                "{who}: {} idle {}",
                t["name"],
                t["states"]["idle"]
            );
        }
    }
}

#[test]
fn native_code_that_releases_the_gil_reads_native_not_gil_bound() {
    let _turn = exclusive();
    for py in pythons() {
        let (json, _) = record_json(py, "native_release.py", &["--seconds", "2"]);
        let who = &py.label;
        assert_ne!(json["verdict"]["kind"], "gil-bound", "{who}");
        assert_not_held_off_cpu(&json, who);
        let workers = threads_named(&json, "native-");
        assert_eq!(workers.len(), 4, "{who}");
        for t in workers {
            assert!(
                f(&t["states"]["native"]) >= 0.5,
                "{who}: {} native {}",
                t["name"],
                t["states"]["native"]
            );
        }
        assert!(
            f(&gil0(&json)["held"]) <= 0.5,
            "{who}: held {}",
            gil0(&json)["held"]
        );
    }
}

#[test]
fn a_single_busy_thread_is_single_thread_cpu_bound() {
    let _turn = exclusive();
    for py in pythons() {
        let (json, _) = record_json(py, "single_busy.py", &["--seconds", "2"]);
        let who = &py.label;
        let g = gil0(&json);
        assert!(f(&g["held"]) >= 0.9, "{who}: held {}", g["held"]);
        assert!(
            f(&g["avg_waiters"]) <= 0.05,
            "{who}: waiters {}",
            g["avg_waiters"]
        );
        assert_eq!(json["verdict"]["kind"], "single-thread-cpu", "{who}");
        assert_not_held_off_cpu(&json, who);
        let busy = threads_named(&json, "busy");
        assert!(f(&busy[0]["states"]["holding"]) >= 0.9, "{who}");
        assert_eq!(json["top_holders"][0]["function"], "spin", "{who}");
    }
}

#[test]
fn one_cpu_thread_with_bursty_threads_makes_them_wait() {
    let _turn = exclusive();
    for py in pythons() {
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
            assert!(f(&s["idle"]) >= 0.3, "{who}: {} {s}", t["name"]);
            assert!(f(&s["waiting"]) >= 0.02, "{who}: {} {s}", t["name"]);
            assert!(f(&s["holding"]) < f(&cpu[0]["states"]["holding"]), "{who}");
        }
        let kind = json["verdict"]["kind"].as_str().unwrap();
        assert!(
            ["gil-bound", "partly-gil-contended"].contains(&kind),
            "{who}: {kind}"
        );
    }
}

#[test]
fn a_gil_held_off_cpu_is_a_finding_with_its_stack() {
    let _turn = exclusive();
    for py in pythons() {
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
    }
}

#[test]
fn a_changed_switch_interval_is_read_from_the_gil_and_reported() {
    let _turn = exclusive();
    for py in pythons() {
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
    }
}

#[test]
fn attach_profiles_a_running_process_and_writes_the_flame_graph() {
    let _turn = exclusive();
    for py in pythons() {
        let target = Running::start(&py.path, "gil_bound.py", &["--seconds", "30"]);
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
            .unwrap_or_else(|e| panic!("{}: default flame graph: {e}", py.label));
        assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("[waiting for GIL]"), "{}", py.label);
        assert!(svg.contains("[holding GIL]"), "{}", py.label);
        assert!(svg.contains("compute (gil_bound.py:"), "{}", py.label);
        // Waiting is red, holding green: the state colours, not the palette's.
        assert!(
            svg.contains("rgb(220,50,47)") && svg.contains("rgb(60,170,80)"),
            "{}",
            py.label
        );
    }
}

// ---------------------------------------------------------------------------------------
// Errors a user can cause: one sentence, exit 2 (or the command's own status).

fn assert_error(out: &Output, needle: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn attaching_to_a_pid_that_does_not_exist() {
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["attach", &gone.id().to_string()]);
    assert_error(&out, "no process has pid");
    // A failed run leaves an existing report alone and creates no empty one.
    std::fs::write(dir.path().join("old.svg"), "old report").unwrap();
    for name in ["old.svg", "new.svg"] {
        let out = gilscope(dir.path(), &["attach", "-o", name, &gone.id().to_string()]);
        assert_error(&out, "no process has pid");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("old.svg")).unwrap(),
        "old report"
    );
    assert!(!dir.path().join("new.svg").exists());
}

#[test]
fn attaching_to_a_process_that_is_not_python() {
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["attach", &sleeper.id().to_string()]);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    assert_error(&out, "is not a CPython process");
}

#[test]
fn a_too_old_python_gets_the_list_of_supported_versions() {
    let old = old_pythons();
    if old.is_empty() {
        eprintln!("skipped: no pyenv CPython 2.7, 3.6 or 3.7 on this machine");
    }
    for py in old {
        let dir = tempfile::tempdir().unwrap();
        let script = "import time\nwhile True: time.sleep(0.01)";
        let out = gilscope(
            dir.path(),
            &["record", "--", py.to_str().unwrap(), "-c", script],
        );
        assert_error(&out, "supported: 3.8, 3.9, 3.10, 3.11, 3.12 and 3.13");
        assert!(
            text(&out.stderr).contains("runs CPython"),
            "{}: {}",
            py.display(),
            text(&out.stderr)
        );
    }
}

#[test]
fn pypy_is_not_cpython() {
    let Ok(pypy) = which("pypy3") else {
        eprintln!("skipped: pypy3 is not installed (apt-get install pypy3)");
        return;
    };
    let mut child = Command::new(&pypy)
        .args(["-c", "import time\nwhile True: time.sleep(0.01)"])
        .spawn()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["attach", &child.id().to_string()]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_error(&out, "is not a CPython process");
    assert!(text(&out.stderr).contains("pypy"), "{}", text(&out.stderr));
}

/// The full path of a program on PATH.
fn which(program: &str) -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}

#[test]
fn permission_denied_explains_what_to_do() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run gilscope as `nobody` against a root process");
        return;
    }
    let _turn = exclusive();
    let py = &pythons()[0];
    let target = Running::start(&py.path, "single_busy.py", &["--seconds", "30"]);
    // The binary must be reachable by `nobody`: copy it somewhere world-readable.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("gilscope");
    std::fs::copy(BIN, &bin).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(&bin)
        .args(["attach", &target.pid.to_string()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_error(&out, "permission denied");
    let stderr = text(&out.stderr);
    for hint in ["sudo", "ptrace_scope", "CAP_SYS_PTRACE", "SYS_PTRACE"] {
        assert!(stderr.contains(hint), "no {hint} in: {stderr}");
    }
}

#[test]
fn a_target_that_exits_mid_run_still_gets_its_report() {
    let _turn = exclusive();
    let py = &pythons()[0];
    let target = Running::start(&py.path, "gil_bound.py", &["--seconds", "1.5"]);
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(
        dir.path(),
        &[
            "attach",
            "-f",
            "json",
            "-o",
            "out.json",
            &target.pid.to_string(),
        ],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("exited; reporting what was collected"),
        "{stderr}"
    );
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out.json")).unwrap()).unwrap();
    assert!(f(&json["run"]["state_samples"]) > 100.0, "{json}");
    assert_eq!(json["verdict"]["kind"], "gil-bound");
}

#[test]
fn an_unwritable_output_fails_before_the_program_starts() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let script = format!("open({:?}, 'w')", marker.to_str().unwrap());
    let out = gilscope(
        dir.path(),
        &[
            "record",
            "-o",
            "/nonexistent-dir/report.svg",
            "--",
            "python3",
            "-c",
            &script,
        ],
    );
    assert_error(&out, "cannot write /nonexistent-dir/report.svg");
    assert!(
        !marker.exists(),
        "the program ran although the report could not be written"
    );
}

#[test]
fn a_command_that_cannot_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["record", "--", "/nonexistent/program", "arg"]);
    assert_error(&out, "cannot start `/nonexistent/program arg`");
}

#[test]
fn a_failing_program_is_not_turned_into_a_pass() {
    let _turn = exclusive();
    let py = &pythons()[0];
    let dir = tempfile::tempdir().unwrap();
    // An older, longer report in the way: it must be replaced, not partly overwritten.
    std::fs::write(dir.path().join("r.svg"), "x".repeat(1 << 20)).unwrap();
    let script =
        "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass\nraise SystemExit(3)";
    let out = gilscope(
        dir.path(),
        &[
            "record",
            "-q",
            "-o",
            "r.svg",
            "--",
            py.path.to_str().unwrap(),
            "-c",
            script,
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    // The report is still written, in full and alone.
    let svg = std::fs::read_to_string(dir.path().join("r.svg")).unwrap();
    assert!(
        svg.trim_end().ends_with("</svg>") && svg.contains("[holding GIL]"),
        "{svg:.200}"
    );
}

#[test]
fn bad_options_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = gilscope(dir.path(), &["attach", "--rate", "0", "1"]);
    assert_error(&out, "--rate must be above 0");

    let out = gilscope(dir.path(), &["attach", "--format", "png", "1"]);
    assert_eq!(out.status.code(), Some(2));
}

// ---------------------------------------------------------------------------------------
// The offset tables against each installed version's own debug information.

/// `offsetof(type, field)` as gdb computes it from the library's DWARF.
fn gdb_offsets(lib: &Path, exprs: &[String]) -> Option<Vec<usize>> {
    let mut cmd = Command::new("gdb");
    cmd.args(["-q", "-batch", "-nx"]);
    for e in exprs {
        cmd.arg("-ex").arg(format!("p/d {e}"));
    }
    let out = cmd.arg(lib).output().ok()?;
    let values: Vec<usize> = text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(" = ").and_then(|(_, v)| v.trim().parse().ok()))
        .collect();
    (values.len() == exprs.len()).then_some(values)
}

#[test]
fn layout_matches_debug_info() {
    use gilscope::gil::layout::{gil_struct, GilPlace, Layout};
    if Command::new("gdb").arg("--version").output().is_err() {
        eprintln!("skipped: gdb is not installed");
        return;
    }
    let mut checked = 0;
    for py in pythons() {
        let (major, minor) = py.version;
        let lib = py
            .path
            .parent()
            .unwrap()
            .join(format!("../lib/libpython{major}.{minor}.so.1.0"));
        if !lib.exists() {
            eprintln!(
                "layout: skipped {}: no shared libpython with debug info",
                py.label
            );
            continue;
        }
        let layout = Layout::for_version(major.into(), minor.into()).unwrap();
        let off = |ty: &str, field: &str| format!("(long)&(({ty}*)0)->{field}");
        let threads = if minor >= 11 {
            "threads.head"
        } else {
            "tstate_head"
        };
        let mut exprs = vec![
            off("_PyRuntimeState", "interpreters.head"),
            off("PyInterpreterState", "next"),
            off("PyInterpreterState", "id"),
            off("PyInterpreterState", threads),
            off("PyThreadState", "next"),
            off("PyThreadState", "thread_id"),
            match layout.gil {
                GilPlace::InRuntime(_) => off("_PyRuntimeState", "ceval.gil"),
                GilPlace::InterpreterPointer(_) => off("PyInterpreterState", "ceval.gil"),
            },
        ];
        for field in [
            "interval",
            "last_holder",
            "locked",
            "switch_number",
            "cond",
            "mutex",
            "switch_cond",
            "switch_mutex",
        ] {
            exprs.push(off("struct _gil_runtime_state", field));
        }
        exprs.push("sizeof(struct _gil_runtime_state)".into());
        if minor >= 11 {
            exprs.push(off("PyThreadState", "native_thread_id"));
        }
        let Some(v) = gdb_offsets(&lib, &exprs) else {
            eprintln!(
                "layout: skipped {}: gdb found no debug information",
                py.label
            );
            continue;
        };
        let gil_at = match layout.gil {
            GilPlace::InRuntime(o) | GilPlace::InterpreterPointer(o) => o,
        };
        let ours = [
            layout.runtime_interpreters_head,
            layout.interp_next,
            layout.interp_id,
            layout.interp_threads_head,
            layout.tstate_next,
            layout.tstate_thread_id,
            gil_at,
            gil_struct::INTERVAL,
            gil_struct::LAST_HOLDER,
            gil_struct::LOCKED,
            gil_struct::SWITCH_NUMBER,
            gil_struct::COND,
            gil_struct::MUTEX,
            gil_struct::SWITCH_COND,
            gil_struct::SWITCH_MUTEX,
            gil_struct::SIZE,
        ];
        let mut ours = ours.to_vec();
        ours.extend(layout.tstate_native_thread_id);
        for ((expr, theirs), ours) in exprs.iter().zip(&v).zip(&ours) {
            assert_eq!(theirs, ours, "{}: {expr}", py.label);
        }
        checked += 1;
    }
    eprintln!("layout: checked {checked} interpreters against their debug information");
}

#[test]
fn cpython_3_13_is_read_through_its_published_debug_offsets() {
    let _turn = exclusive();
    let mut checked = 0;
    for py in pythons().iter().filter(|p| p.version >= (3, 13)) {
        let target = Running::start(&py.path, "single_busy.py", &["--seconds", "30"]);
        let opened = gilscope::attach::open(target.pid, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{}: {e}", py.label));
        assert!(
            opened.layout_from_debug_offsets,
            "{}: fell back to the table",
            py.label
        );
        checked += 1;
    }
    if checked == 0 {
        eprintln!("skipped: no CPython 3.13 found");
    }
}

#[test]
fn ctrl_c_ends_a_record_run_with_its_report() {
    use std::os::unix::process::CommandExt;
    let _turn = exclusive();
    let py = &pythons()[0];
    let dir = tempfile::tempdir().unwrap();
    let mut run = Command::new(BIN)
        .args(["record", "-f", "json", "-o", "out.json", "--"])
        .arg(&py.path)
        .arg(fixture("single_busy.py"))
        .args(["--seconds", "60"])
        .current_dir(dir.path())
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until gilscope says it samples (its first line on stderr).
    let mut stderr = std::io::BufReader::new(run.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    assert!(first.contains("sampling pid"), "{first}");
    // What a terminal does on Ctrl-C: SIGINT to the whole foreground process group.
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(-(run.id() as i32), libc::SIGINT) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(rest.contains("GIL-state samples"), "no summary: {rest}");
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out.json")).unwrap()).unwrap();
    assert!(f(&json["run"]["state_samples"]) > 0.0, "{json}");
}
