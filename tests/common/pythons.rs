//! The interpreters under test: found once per test binary, with what each is, and which
//! were skipped and why; and the support-matrix lines a passing test leaves.

use super::*;

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
