//! Messages to the user on standard error that never panic: `eprintln!` panics when stderr
//! is a closed pipe (`gilscope … 2>&1 | head -1`), which would lose the report. Every message
//! goes through [`say`]; a failed write is dropped, since there is nowhere left to tell.
//!
//! Knows nothing of what the messages say; reports go through [`crate::run::output`].

use std::io::Write;

/// Writes `args` to standard error as one write, ignoring any failure.
pub fn say(args: std::fmt::Arguments) {
    let text = args.to_string();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! sayln {
    ($($arg:tt)*) => {
        $crate::console::say(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that never panics.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::console::say(format_args!($($arg)*))
    };
}
