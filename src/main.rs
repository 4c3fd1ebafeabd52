//! The `gilscope` binary: parse, run, print an error once, map it to an exit code.
//!
//! Exit codes: 0 ok; 1 a `--fail-if` threshold was crossed; 2 a usage or runtime error;
//! `record` passes on the status of a command that failed on its own (its exit code, or
//! 128 + the signal that killed it). A run that SIGTERM or SIGHUP ended writes its reports
//! and exits 128 + the signal (143, 129), as shells report a process a signal ended; one
//! that SIGINT (Ctrl-C) ended exits as if it had reached its end. A closed standard output
//! or error (`| head`) is not an error: the reports are written first, and gilscope exits
//! quietly.

use std::process::ExitCode;

use clap::Parser;
use gilscope::cli::{Cli, Command};
use gilscope::command::{self, Launch};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Record { run, out, command } => run
            .options(&out)
            .map_err(anyhow::Error::from)
            .and_then(|options| command::run(Launch::Record(command), &options)),
        Command::Attach { run, out, pid } => run
            .options(&out)
            .map_err(anyhow::Error::from)
            .and_then(|options| command::run(Launch::Attach(pid), &options)),
        Command::Report { out, recording } => out
            .options()
            .map_err(anyhow::Error::from)
            .and_then(|options| command::report(&recording, &options)),
        Command::Dump { pid, json } => command::dump::run(pid, json),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            gilscope::sayln!("gilscope: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// `gilscope … -o - | head` closing the pipe early is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
