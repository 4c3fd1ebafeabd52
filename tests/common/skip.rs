//! Skips: a test that cannot run here says why.
//!
//! A test that cannot run here (an interpreter or a tool missing, not root) says why on stderr
//! and returns: it never passes silently. What `.ci/run` guarantees — everything it and
//! `scripts/test-pythons` install (gdb, setpriv, pypy3, Debian sid's 3.13–3.15, 3.13t), what
//! they need to run (root, a C compiler for cargo) and the pyenv and Debian interpreters its
//! machine has beside them (a CPython with a GIL outside any chroot) — is never missing there:
//! it sets GILSCOPE_REQUIRE_ALL=1, and a test that would skip for want of one fails instead.

use super::*;

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
