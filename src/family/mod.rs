//! The processes a run follows: the target through its `exec`s ([`Followed`]), the Python
//! process a launched command runs when the command itself is a wrapper ([`find`]), and the
//! target's descendants with `--subprocesses` ([`Children`]). Knows processes, never GIL
//! states: the samples pass through untouched.

mod children;
mod follow;
mod launch;
mod tree;

pub use children::Children;
pub use follow::{Followed, Gone};
pub use launch::find;
pub use tree::{cmdline, command_text, working_dir};
