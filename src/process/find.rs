//! `record` of any command: finds the Python process it runs, the command itself or, when
//! the command is a wrapper (a shell script, `bash -c`, `make`, `uv run`), the first Python
//! process among its descendants. Waits as long as the command runs: a command is never
//! stopped for not being Python.

use std::time::{Duration, Instant};

use super::descendants::NewDescendants;
use super::program::{failure_code, Program};
use super::tree::{exe_name, looks_like_python};
use crate::error::UserError;
use crate::sampler::{OpenError, Target};

/// How often the command itself is tried while it runs something that is not Python yet:
/// soon after it starts or execs (its interpreter is loading), rarely after that.
const ROOT_SOON: Duration = Duration::from_millis(20);
const ROOT_LATER: Duration = Duration::from_millis(500);
/// How long after the command starts or execs it is tried at [`ROOT_SOON`].
const ROOT_FRESH: Duration = Duration::from_secs(2);
/// How often [`find`] looks.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// What the search came to.
enum Found {
    Python(Box<Target>),
    /// The command ended before a Python process could be read. `python_seen` when one
    /// seemed to run (an interpreter that failed at its start), which is then the program
    /// that failed rather than a command that ran no Python.
    Ended {
        python_seen: bool,
    },
    /// `stop` said to end the run first.
    Stopped,
}

/// Waits until the command `program` runs a Python process gilscope can read (and opens
/// it), the command ends, or `stop` returns true. A command that ended after running a
/// Python that could not be read is [`UserError::ExitedBeforeAttach`]; one that ran no
/// Python at all, or was stopped first, is [`UserError::NoPython`] with the status to pass
/// on. An unsupported CPython version in the command itself is an error; in a descendant
/// it is passed over.
pub fn find(
    program: &mut Program,
    command: &[String],
    stop: &dyn Fn() -> bool,
) -> Result<Target, UserError> {
    let no_python = |how: String, code: u8| UserError::NoPython {
        command: super::command_text(command),
        how,
        code,
    };
    match search(program, command, stop)? {
        Found::Python(target) => Ok(*target),
        Found::Ended { python_seen: true } => {
            Err(UserError::ExitedBeforeAttach { pid: program.pid() })
        }
        Found::Ended { python_seen: false } => {
            let exit = program.exit(false).expect("it ended");
            let how = format!("{} after {:.1} s", exit.status_text(), exit.after_s);
            Err(no_python(how, failure_code(&exit).unwrap_or(0)))
        }
        Found::Stopped => {
            let _ = program.stop();
            match crate::run::signals::received() {
                Some(stop) => Err(UserError::StoppedBeforeAttach {
                    pid: program.pid(),
                    signal: stop.name(),
                }),
                None => Err(no_python("still ran when the run was stopped".into(), 2)),
            }
        }
    }
}

fn search(
    program: &mut Program,
    command: &[String],
    stop: &dyn Fn() -> bool,
) -> Result<Found, UserError> {
    let mut finder = Finder::new(program.pid(), command);
    loop {
        if let Some(target) = finder.poll()? {
            return Ok(Found::Python(Box::new(target)));
        }
        if program.exited().is_some() {
            // What it started may have been read just now.
            return Ok(match finder.poll()? {
                Some(target) => Found::Python(Box::new(target)),
                None => Found::Ended {
                    python_seen: finder.python_seen,
                },
            });
        }
        if stop() {
            return Ok(Found::Stopped);
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// Whether a command names a Python interpreter anywhere in its words (`python3 app.py`,
/// `chroot ROOT /usr/bin/python3.13 app.py`, `bash -c "python3 app.py"`): a hint that a
/// command that ended unread was a Python that failed at its start.
fn names_python(command: &[String]) -> bool {
    command
        .iter()
        .flat_map(|w| w.split_ascii_whitespace())
        .any(looks_like_python)
}

/// The search, one step at a time.
struct Finder {
    root: i32,
    /// The executable the root runs now, and since when.
    root_exe: Option<String>,
    root_exe_since: Instant,
    root_next_try: Instant,
    found: NewDescendants,
    python_seen: bool,
}

impl Finder {
    fn new(root: i32, command: &[String]) -> Finder {
        let now = Instant::now();
        Finder {
            root,
            root_exe: None,
            root_exe_since: now,
            root_next_try: now,
            found: NewDescendants::new(root),
            python_seen: names_python(command),
        }
    }

    fn poll(&mut self) -> Result<Option<Target>, UserError> {
        let now = Instant::now();
        let exe = exe_name(self.root);
        if exe.is_some() && exe != self.root_exe {
            // Started or exec'd: try it soon.
            self.python_seen |= exe.as_deref().is_some_and(looks_like_python);
            self.root_exe = exe;
            self.root_exe_since = now;
            self.root_next_try = now;
        }
        if now >= self.root_next_try {
            match Target::open(self.root) {
                Ok(target) => return Ok(Some(target)),
                Err(OpenError::Unsupported(version)) => {
                    return Err(UserError::UnsupportedVersion {
                        pid: self.root,
                        version,
                    })
                }
                Err(OpenError::NotReady(_)) => {
                    self.python_seen = true;
                    self.root_next_try = now + ROOT_SOON;
                }
                Err(OpenError::NotPython(_)) => {
                    let fresh = now.duration_since(self.root_exe_since) < ROOT_FRESH;
                    self.root_next_try = now + if fresh { ROOT_SOON } else { ROOT_LATER };
                }
            }
        }
        for pid in self.found.scan() {
            self.python_seen |= exe_name(pid).is_some_and(|e| looks_like_python(&e));
        }
        for (_, opened) in self.found.opened() {
            match opened {
                Ok(target) => return Ok(Some(target)),
                Err(UserError::UnsupportedVersion { .. }) => self.python_seen = true,
                Err(_) => {}
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_names_python_in_any_of_its_words() {
        let words = |s: &[&str]| s.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert!(names_python(&words(&["python3", "app.py"])));
        assert!(names_python(&words(&[
            "chroot",
            "/srv/sid",
            "/usr/bin/python3.13",
            "a.py"
        ])));
        assert!(names_python(&words(&[
            "bash",
            "-c",
            "cd x && python3 app.py"
        ])));
        assert!(!names_python(&words(&["sh", "-c", "sleep 12; exit 3"])));
        assert!(!names_python(&words(&["sh", "run_python.sh"])));
    }
}
