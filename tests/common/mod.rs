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

mod busy;
mod pythons;
mod run;
mod skip;

pub use busy::*;
pub use pythons::*;
pub use run::*;
pub use skip::*;
