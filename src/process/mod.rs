//! Getting hold of the processes a run profiles: launching a command ([`program`]), checking
//! and opening a pid ([`attach`]), the Python process a launched command runs when the
//! command itself is a wrapper ([`find`]), the target through its `exec`s ([`Followed`]),
//! the target's descendants with `--subprocesses` ([`Children`]), found as they appear
//! ([`descendants`]) in the process tree of `/proc` ([`tree`]), and the [`ProcessSet`] they all
//! go into, live or replayed, whose accumulators take every sample once. Knows processes,
//! never GIL states: the samples pass through untouched.

pub mod attach;
mod children;
mod descendants;
mod find;
mod follow;
pub mod program;
pub mod set;
mod tree;

pub use children::Children;
pub use find::find;
pub use follow::{Followed, Gone};
pub use set::{ProcessId, ProcessSet, Profiles, TARGET};
pub use tree::{cmdline, command_text, working_dir};
