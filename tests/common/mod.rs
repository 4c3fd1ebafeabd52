//! What every integration test binary shares: the interpreters under test, running fixtures,
//! and running gilscope.
//!
//! Interpreters: pyenv's builds (`~/.pyenv/versions/3.*`), `python3` on PATH, Debian's
//! `/usr/bin/python3.11`, those `scripts/test-pythons` provides (listed in its `pythons.txt`:
//! Debian sid's 3.13–3.15 run chrooted, a free-threaded 3.13t), and any listed in
//! `GILSCOPE_TEST_PYTHONS` (separated by `:`). Each test binary prints which it used and which
//! it skipped, and why.
#![allow(dead_code)] // each test binary uses its own part of this

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_gilscope");

/// Profiling tests measure CPU contention, so they take turns on this 2-core machine.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// One interpreter under test: a program, run directly or inside a chroot.
#[derive(Clone, Debug)]
pub struct Python {
    /// The interpreter's path as the process sees it (inside `root` when chrooted).
    pub program: PathBuf,
    /// The chroot it runs in, if any (`chroot ROOT PROGRAM`).
    pub root: Option<PathBuf>,
    pub version: (u32, u32),
    /// `3.14.10`
    pub full_version: String,
    pub free_threaded: bool,
    /// Where it came from, for the support matrix: "pyenv", "Debian", "Debian sid (chroot)".
    pub build: String,
    pub label: String,
}

impl Python {
    /// A command that runs this interpreter, before its arguments.
    pub fn command(&self) -> Command {
        match &self.root {
            Some(root) => {
                let mut c = Command::new("chroot");
                c.arg(root).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        }
    }

    /// The same command as words, for `gilscope record -- ...`.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = Vec::new();
        if let Some(root) = &self.root {
            argv.push("chroot".to_string());
            argv.push(root.display().to_string());
        }
        argv.push(self.program.display().to_string());
        argv
    }

    /// A fixture's path as this interpreter sees it.
    pub fn fixture(&self, name: &str) -> String {
        match &self.root {
            Some(_) => format!("/gilscope-fixtures/{name}"),
            None => fixtures_dir().join(name).display().to_string(),
        }
    }

    /// A fresh directory that both the host and this interpreter can reach.
    pub fn tempdir(&self) -> tempfile::TempDir {
        match &self.root {
            Some(root) => tempfile::tempdir_in(root.join("tmp")).unwrap(),
            None => tempfile::tempdir().unwrap(),
        }
    }

    /// A host path (under [`Python::tempdir`]) as this interpreter sees it.
    pub fn inside(&self, host: &Path) -> String {
        match &self.root {
            Some(root) => format!("/{}", host.strip_prefix(root).unwrap().display()),
            None => host.display().to_string(),
        }
    }
}

/// Where `scripts/test-pythons` keeps what it provides.
fn provided_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("GILSCOPE_PYTHONS_DIR") {
        return Some(dir.into());
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/gilscope/pythons"))
}

struct Candidate {
    program: PathBuf,
    root: Option<PathBuf>,
    build: String,
}

fn candidates(skipped: &mut Vec<(String, String)>) -> Vec<Candidate> {
    let plain = |p: PathBuf, build: &str| Candidate {
        program: p,
        root: None,
        build: build.to_string(),
    };
    let mut found = Vec::new();
    if let Ok(list) = std::env::var("GILSCOPE_TEST_PYTHONS") {
        let listed = list.split(':').filter(|s| !s.is_empty());
        found.extend(listed.map(|p| plain(p.into(), "GILSCOPE_TEST_PYTHONS")));
    }
    if let Some(home) = std::env::var_os("HOME") {
        let versions = Path::new(&home).join(".pyenv/versions");
        if let Ok(entries) = std::fs::read_dir(versions) {
            let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            dirs.sort();
            found.extend(
                dirs.into_iter()
                    .map(|d| plain(d.join("bin/python"), "pyenv")),
            );
        }
    }
    found.push(plain("/usr/bin/python3.11".into(), "Debian"));
    if let Ok(out) = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
    {
        let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !exe.is_empty() {
            found.push(plain(exe.into(), "PATH"));
        }
    }
    let list = provided_dir().map(|d| d.join("pythons.txt"));
    match list.as_deref().map(std::fs::read_to_string) {
        Some(Ok(text)) => {
            for line in text.lines() {
                let f: Vec<&str> = line.split('\t').collect();
                let [label, root, program] = f[..] else {
                    continue;
                };
                let (root, build) = if root == "-" {
                    (None, format!("python-build ({label})"))
                } else {
                    (Some(PathBuf::from(root)), "Debian sid (chroot)".to_string())
                };
                found.push(Candidate {
                    program: program.into(),
                    root,
                    build,
                });
            }
        }
        _ if require_all() => panic!(
            "no {}: .ci/run runs scripts/test-pythons, and {REQUIRE_ALL} is set",
            list.map(|l| l.display().to_string()).unwrap_or_default()
        ),
        _ => skipped.push((
            "3.14, 3.15, 3.13t".into(),
            format!(
                "not provided: run scripts/test-pythons (no {})",
                list.map(|l| l.display().to_string()).unwrap_or_default()
            ),
        )),
    }
    found
}

const PROBE: &str = "import sys, sysconfig; sys.stdout.write('%d %d %s %s\\n' % \
    (sys.version_info[0], sys.version_info[1], sys.version.split()[0], \
    bool(sysconfig.get_config_var('Py_GIL_DISABLED'))))";

/// Every distinct interpreter on the machine that runs; `(what, reason)` for those left out.
fn discover() -> (Vec<Python>, Vec<(String, String)>) {
    let mut skipped = Vec::new();
    let mut found: BTreeMap<(Option<PathBuf>, PathBuf), Python> = BTreeMap::new();
    for c in candidates(&mut skipped) {
        let shown = match &c.root {
            Some(root) => format!("{} in chroot {}", c.program.display(), root.display()),
            None => c.program.display().to_string(),
        };
        let program = match &c.root {
            Some(_) => c.program.clone(),
            None => match std::fs::canonicalize(&c.program) {
                Ok(real) => real,
                Err(_) => {
                    skipped.push((shown, "not found".into()));
                    continue;
                }
            },
        };
        let key = (c.root.clone(), program.clone());
        if found.contains_key(&key) {
            continue;
        }
        let mut py = Python {
            program,
            root: c.root,
            version: (0, 0),
            full_version: String::new(),
            free_threaded: false,
            build: c.build,
            label: String::new(),
        };
        let out = py.command().args(["-c", PROBE]).output();
        let Some(text) = out
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        else {
            skipped.push((shown, "does not run".into()));
            continue;
        };
        let f: Vec<&str> = text.split_whitespace().collect();
        let (Some(Ok(major)), Some(Ok(minor)), Some(full), Some(ft)) = (
            f.first().map(|s| s.parse::<u32>()),
            f.get(1).map(|s| s.parse::<u32>()),
            f.get(2),
            f.get(3),
        ) else {
            skipped.push((shown, format!("unexpected version output {text:?}")));
            continue;
        };
        if (major, minor) < (3, 8) {
            skipped.push((
                shown,
                format!("CPython {full} is older than 3.8 (tested as unsupported)"),
            ));
            continue;
        }
        py.version = (major, minor);
        py.full_version = full.to_string();
        py.free_threaded = *ft == "True";
        let kind = if py.free_threaded {
            " free-threaded"
        } else {
            ""
        };
        py.label = format!("{full}{kind} ({shown})");
        if let Some(root) = &py.root {
            install_fixtures(root);
        }
        found.insert(key, py);
    }
    (found.into_values().collect(), skipped)
}

/// Copies the fixtures (their `.py` files, and those of their folders: `twins/a/util.py`,
/// `site-packages/…`) to `/gilscope-fixtures` inside a chroot.
fn install_fixtures(root: &Path) {
    copy_python_files(&fixtures_dir(), &root.join("gilscope-fixtures"));
}

fn copy_python_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() && entry.file_name() != "__pycache__" {
            copy_python_files(&path, &to.join(entry.file_name()));
        } else if path.extension().is_some_and(|e| e == "py") {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Skips.
//
// A test that cannot run here (an interpreter or a tool missing, not root) says why on stderr
// and returns: it never passes silently. What `.ci/run` guarantees — everything it and
// `scripts/test-pythons` install (gdb, setpriv, pypy3, Debian sid's 3.13–3.15, 3.13t), what
// they need to run (root, a C compiler for cargo) and the pyenv and Debian interpreters its
// machine has beside them (a CPython with a GIL outside any chroot) — is never missing there:
// it sets GILSCOPE_REQUIRE_ALL=1, and a test that would skip for want of one fails instead.

/// The variable `.ci/run` sets: a need it guarantees that is missing fails the test.
pub const REQUIRE_ALL: &str = "GILSCOPE_REQUIRE_ALL";

/// Whether [`REQUIRE_ALL`] is set (to anything but empty or `0`).
pub fn require_all() -> bool {
    std::env::var_os(REQUIRE_ALL).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Says on stderr that `test` (or a part of it) is skipped here, and why: for a need that CI
/// does not guarantee either (an old pyenv CPython, a kernel feature).
pub fn skip(test: &str, reason: impl std::fmt::Display) {
    eprintln!("{test}: skipped: {reason}");
}

/// [`skip`] for a need `.ci/run` guarantees: under [`REQUIRE_ALL`] it panics instead.
pub fn skip_unless_required(test: &str, reason: impl std::fmt::Display) {
    assert!(
        !require_all(),
        "{test}: {reason}; .ci/run provides it, and {REQUIRE_ALL} is set"
    );
    skip(test, reason);
}

/// Whether gilscope runs as root; says why `test` is skipped when not.
pub fn require_root(test: &str, why: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        skip_unless_required(test, format!("needs root {why}"));
    }
    root
}

/// The full path of `program` on PATH (a tool CI installs), or `None` once it said why `test`
/// is skipped; `install` says how to get it.
pub fn require_program(test: &str, program: &str, install: &str) -> Option<PathBuf> {
    let found = which(program).ok();
    if found.is_none() {
        skip_unless_required(test, format!("{program} is not on PATH ({install})"));
    }
    found
}

/// Whether [`gilscope_as_nobody`] can run against a root process (root, and setpriv); says
/// why `test` is skipped when not.
pub fn require_nobody(test: &str) -> bool {
    require_root(test, "to run gilscope as `nobody` against a root process")
        && require_program(test, "setpriv", "apt-get install util-linux").is_some()
}

/// The free-threaded interpreters; when there is none, says why `test` is skipped.
pub fn require_free_threaded(test: &str) -> Vec<&'static Python> {
    let found = free_threaded_pythons();
    if found.is_empty() {
        skip_unless_required(
            test,
            "no free-threaded CPython (run scripts/test-pythons to build 3.13t)",
        );
    }
    found
}

/// The interpreters with a GIL from `3.minor` on; when there is none, says why `test` is
/// skipped (Debian sid's 3.13–3.15 come from `scripts/test-pythons`).
pub fn require_from(test: &str, minor: u32) -> Vec<&'static Python> {
    let found: Vec<_> = pythons()
        .into_iter()
        .filter(|p| p.version >= (3, minor))
        .collect();
    if found.is_empty() {
        skip_unless_required(
            test,
            format!("no CPython 3.{minor}+ found (run scripts/test-pythons)"),
        );
    }
    found
}

/// The interpreters with a GIL that run without a chroot (for a fixture that execs by path,
/// a terminal driver on the host).
pub fn host_pythons() -> Vec<&'static Python> {
    pythons().into_iter().filter(|p| p.root.is_none()).collect()
}

/// The first of [`host_pythons`], or `None` once it said why `test` is skipped.
pub fn host_python(test: &str) -> Option<&'static Python> {
    let first = host_pythons().first().copied();
    if first.is_none() {
        skip_unless_required(
            test,
            "every CPython found runs chrooted; it needs one on the host (pyenv's or Debian's)",
        );
    }
    first
}

/// Every interpreter found, printed once per test binary.
pub fn all_pythons() -> &'static [Python] {
    static FOUND: OnceLock<Vec<Python>> = OnceLock::new();
    FOUND.get_or_init(|| {
        let (found, skipped) = discover();
        eprintln!("interpreters found:");
        for p in &found {
            eprintln!("  {}", p.label);
        }
        for (what, why) in &skipped {
            eprintln!("  skipped {what}: {why}");
        }
        found
    })
}

/// The first interpreter found and the newest (when it is another): two versions, for a test
/// whose runs are long.
pub fn first_and_newest() -> Vec<&'static Python> {
    let all = pythons();
    let newest = all.iter().max_by_key(|p| p.version).copied().unwrap();
    let mut pys = vec![all[0]];
    if newest.label != all[0].label {
        pys.push(newest);
    }
    pys
}

/// The interpreters with a GIL, which every profiling test runs on.
pub fn pythons() -> Vec<&'static Python> {
    let with_gil: Vec<_> = all_pythons().iter().filter(|p| !p.free_threaded).collect();
    assert!(
        !with_gil.is_empty(),
        "no supported CPython found (need 3.8+)"
    );
    with_gil
}

/// The free-threaded interpreters (3.13t and later).
pub fn free_threaded_pythons() -> Vec<&'static Python> {
    all_pythons().iter().filter(|p| p.free_threaded).collect()
}

/// pyenv's CPythons older than 3.8 (2.7, 3.6, 3.7), for the unsupported-version test.
pub fn old_pythons() -> Vec<PathBuf> {
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

/// Records that `feature` was tested and passed on `py`, for the README's support matrix
/// (`scripts/support-matrix` assembles these lines). Call it after the assertions.
pub fn passed(py: &Python, feature: &str) {
    let build = if py.free_threaded {
        format!("{} free-threaded", py.build)
    } else {
        py.build.clone()
    };
    passed_as(&py.full_version, &build, feature);
}

/// [`passed`] for an interpreter that is not a [`Python`] under test (one gilscope refuses).
pub fn passed_as(version: &str, build: &str, feature: &str) {
    use std::io::Write;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("support");
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(format!("{}.tsv", std::process::id()));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
    {
        let _ = writeln!(f, "{version}\t{build}\t{feature}");
    }
}

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

// ---------------------------------------------------------------------------------------
// Runs on a busy machine.
//
// An accuracy bound holds for a target that got the CPUs it asked for. When other processes
// starve it (the README's test command beside other work: a CI neighbour, two CPU hogs), a
// bound may fail for a reason that is not gilscope's. [`on_every_python`] then says so and
// retries that interpreter once with every fixture run twice as long; a second starved failure
// is reported as not judged, not as a failure. A failure on a machine that left the target its
// CPUs is always a failure.

/// Other processes' CPUs at or above which a run counts as starved, on this 2-CPU machine.
pub const STARVED_BY_OTHERS: f64 = 0.5;

thread_local! {
    /// How much longer than asked fixtures run (1 normally, 2 on a retry).
    static RUN_SCALE: Cell<f64> = const { Cell::new(1.0) };
    /// The most CPUs other processes used during any run since the attempt began.
    static OTHERS: Cell<Option<f64>> = const { Cell::new(None) };
}

/// `args` with the value after `--seconds` multiplied by the current run scale.
pub fn longer(args: &[&str]) -> Vec<String> {
    let scale = RUN_SCALE.with(Cell::get);
    let mut out: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    for i in 1..out.len() {
        if out[i - 1] == "--seconds" {
            if let Ok(s) = out[i].parse::<f64>() {
                out[i] = format!("{}", s * scale);
            }
        }
    }
    out
}

/// Remembers what a run's JSON says other processes used (`process.cpu_supply.others_cores`).
pub fn note_others(json: &Value) {
    if let Some(others) = json["process"]["cpu_supply"]["others_cores"].as_f64() {
        note_others_cores(others);
    }
}

/// Remembers a measured figure of the CPUs other processes used during a run.
pub fn note_others_cores(others: f64) {
    OTHERS.with(|o| o.set(Some(o.get().map_or(others, |m: f64| m.max(others)))));
}

/// Runs `check`; on a panic, `Some(others)` when a run inside it was starved by others.
fn attempt(check: &dyn Fn()) -> Result<(), Option<f64>> {
    OTHERS.with(|o| o.set(None));
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
    let others = OTHERS.with(Cell::get).filter(|&o| o >= STARVED_BY_OTHERS);
    run.map_err(|_| others)
}

/// How one interpreter's check came out.
pub enum Outcome {
    Passed,
    /// Starved by other processes twice: the bounds could not be judged.
    Unjudged,
    Failed,
}

/// Runs `check` for `who`; when it fails on a run that other processes starved, says so and
/// retries once with fixture runs twice as long.
pub fn judged(test: &str, who: &str, check: impl Fn()) -> Outcome {
    let Err(starved) = attempt(&check) else {
        return Outcome::Passed;
    };
    let Some(others) = starved else {
        return Outcome::Failed;
    };
    eprintln!(
        "{test}: {who}: other processes used {others:.2} CPUs, so the target was starved; \
         retrying once with runs twice as long"
    );
    RUN_SCALE.with(|s| s.set(2.0));
    let again = attempt(&check);
    RUN_SCALE.with(|s| s.set(1.0));
    match again {
        Ok(()) => Outcome::Passed,
        Err(Some(others)) => {
            eprintln!(
                "{test}: {who}: NOT JUDGED: starved again (other processes used {others:.2} \
                 CPUs); its bounds need the CPUs the machine did not give"
            );
            Outcome::Unjudged
        }
        Err(None) => Outcome::Failed,
    }
}

/// Runs `check` on every interpreter with a GIL, going on past one that fails so a run says
/// which pass and which fail; a check that fails only because other processes starved its
/// target is retried once ([`judged`]). Panics at the end naming the failures (each one's
/// message is printed when it happens).
pub fn on_every_python(test: &str, check: impl Fn(&'static Python)) {
    on_each(test, pythons(), check)
}

/// [`on_every_python`] over the given interpreters.
pub fn on_each(test: &str, pys: Vec<&'static Python>, check: impl Fn(&'static Python)) {
    let (mut failed, mut not_judged) = (Vec::new(), Vec::new());
    let all = pys.len();
    for py in pys {
        match judged(test, &py.label, || check(py)) {
            Outcome::Passed => {}
            Outcome::Unjudged => not_judged.push(py.label.clone()),
            Outcome::Failed => failed.push(py.label.clone()),
        }
    }
    eprintln!(
        "{test}: passed on {} of {all} interpreters{}",
        all - failed.len() - not_judged.len(),
        if not_judged.is_empty() {
            String::new()
        } else {
            format!(
                "; not judged on {} (starved by other processes): {}",
                not_judged.len(),
                not_judged.join(", ")
            )
        }
    );
    assert!(
        failed.is_empty(),
        "{test} failed on:\n  {}",
        failed.join("\n  ")
    );
}

/// [`on_each`] over the free-threaded interpreters ([`require_free_threaded`]).
pub fn on_free_threaded(test: &str, check: impl Fn(&'static Python)) {
    on_each(test, require_free_threaded(test), check)
}

/// Runs `check` on every interpreter with a GIL with no retry: for tests that starve their
/// target on purpose (CPU hogs, a CPU quota), where starvation is what they judge.
pub fn on_every_python_strict(test: &str, check: impl Fn(&'static Python)) {
    let mut failed = Vec::new();
    for py in pythons() {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(py)));
        if run.is_err() {
            failed.push(py.label.clone());
        }
    }
    let all = pythons().len();
    eprintln!(
        "{test}: passed on {} of {all} interpreters",
        all - failed.len()
    );
    assert!(
        failed.is_empty(),
        "{test} failed on:\n  {}",
        failed.join("\n  ")
    );
}
