//! Running gilscope and fixtures, waiting for what they do, and reading what they wrote.

use super::*;

/// Runs `gilscope` with `args` in `dir`.
pub fn gilscope(dir: &Path, args: &[&str]) -> Output {
    gilscope_env(dir, args, &[])
}

/// Runs `gilscope` with `args` in `dir`, with `env` added to its environment (which the
/// program it records inherits).
pub fn gilscope_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("run gilscope")
}

/// Runs `gilscope` with `args` as `nobody` (setpriv), from a copy of the binary in a fresh
/// directory that `nobody` may enter and write in.
pub fn gilscope_as_nobody(args: &[&str]) -> Output {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("gilscope");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(&bin)
        .args(args)
        .current_dir(dir.path())
        .output()
        .unwrap()
}

/// The first line a gilscope started with its stderr piped writes there (once it samples,
/// `sampling pid …`), and the reader of the rest.
pub fn first_stderr_line(child: &mut Child) -> (BufReader<ChildStderr>, String) {
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr piped"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    (stderr, first)
}

/// The JSON report written to `path`.
pub fn json_file(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("no report {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Whether `done` holds within `timeout` (checked every 10 ms).
pub fn within(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Waits until `what` holds, for at most a minute (a busy machine is slow to start Python).
pub fn wait_until(what: &str, done: impl FnMut() -> bool) {
    assert!(
        within(Duration::from_secs(60), done),
        "timed out waiting for {what}"
    );
}

/// True once `pid` is gone, or a zombie left for its new parent to reap.
pub fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rfind(')')
            .is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z')),
    }
}

/// Sends `signal` to `pid`.
pub fn kill(pid: u32, signal: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, signal) };
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `record -f json -o -` on a fixture, with gilscope options `opts` before the `--`; returns
/// the parsed JSON and stderr.
pub fn record_json_with(
    py: &Python,
    opts: &[&str],
    fixture_name: &str,
    extra: &[&str],
) -> (Value, String) {
    record_json_env(py, opts, &[], fixture_name, extra)
}

/// [`record_json_with`], with `env` added to the recorded program's environment.
pub fn record_json_env(
    py: &Python,
    opts: &[&str],
    env: &[(&str, &str)],
    fixture_name: &str,
    extra: &[&str],
) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["record", "-f", "json", "-o", "-"];
    args.extend(opts);
    args.push("--");
    let argv = py.argv();
    args.extend(argv.iter().map(String::as_str));
    let fx = py.fixture(fixture_name);
    args.push(&fx);
    let extra = longer(extra);
    args.extend(extra.iter().map(String::as_str));
    let out = gilscope_env(dir.path(), &args, env);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "{}: {fixture_name} failed: {stderr}",
        py.label
    );
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{}: JSON on stdout: {e}\n{}", py.label, text(&out.stdout)));
    note_others(&json);
    (json, stderr)
}

pub fn record_json(py: &Python, fixture_name: &str, extra: &[&str]) -> (Value, String) {
    record_json_with(py, &[], fixture_name, extra)
}

pub fn gil0(json: &Value) -> &Value {
    &json["gils"][0]
}

pub fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

pub fn finding_kinds(json: &Value) -> Vec<&str> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect()
}

pub fn threads_named<'a>(json: &'a Value, prefix: &str) -> Vec<&'a Value> {
    json["threads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .collect()
}

/// A fixture started by the test, killed on drop; `pid` once it wrote its ready file.
pub struct Running {
    child: Child,
    pub pid: i32,
    _dir: tempfile::TempDir,
}

impl Running {
    pub fn start(py: &Python, fixture_name: &str, args: &[&str]) -> Running {
        Running::start_as(py.command(), py, fixture_name, args)
    }

    /// Starts `command` (which runs `py`, perhaps under another user) on a fixture.
    pub fn start_as(
        mut command: Command,
        py: &Python,
        fixture_name: &str,
        args: &[&str],
    ) -> Running {
        let dir = py.tempdir();
        let ready = dir.path().join("ready");
        let mut child = command
            .arg(py.fixture(fixture_name))
            .args(longer(args))
            .arg("--ready")
            .arg(py.inside(&ready))
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

pub fn assert_error(out: &Output, needle: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The full path of a program on PATH.
pub fn which(program: &str) -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}

/// Only the off-CPU fixture holds the GIL while blocked.
pub fn assert_not_held_off_cpu(json: &Value, who: &str) {
    assert!(
        !finding_kinds(json).contains(&"held-off-cpu"),
        "{who}: {}",
        json["findings"]
    );
}

/// The verdict a run gets, judged on the time its threads ran: `verdict.kind`, or, when a
/// busy machine or a CPU quota starved the run (`cpu-starved`, as when the tests run beside
/// other work), the verdict it gives for the time the threads did run (`verdict.then`).
pub fn verdict_kind(json: &Value) -> &str {
    let v = &json["verdict"];
    match v["kind"].as_str() {
        Some("cpu-starved") => v["then"].as_str().unwrap_or("cpu-starved"),
        kind => kind.unwrap_or(""),
    }
}

/// The machine's busy and total CPU time (in clock ticks, all CPUs) from `/proc/stat`.
pub fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|x| x.parse().unwrap())
        .collect();
    let total: u64 = v.iter().sum();
    (total - v[3] - v[4], total)
}

/// CPUs' worth of time the whole machine was busy since `since` (from [`machine_ticks`]).
pub fn busy_cores_since(since: (u64, u64)) -> f64 {
    let now = machine_ticks();
    let total = (now.1 - since.1).max(1) as f64;
    (now.0 - since.0) as f64 / total * cpu_count() as f64
}

pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
