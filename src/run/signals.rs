//! The signals that end a run: SIGINT (Ctrl-C), SIGTERM (`kill`, `timeout`, `docker stop`, a
//! CI job's timeout) and SIGHUP (a closed terminal). Each one asks the run to stop; the run
//! then stops the program it launched and writes every report (see [`crate::command::profile`]).
//!
//! The handler only stores numbers in atomics, which is all a signal handler may safely do;
//! it never touches the sampler or the reports. A third signal gives up on a clean end and
//! lets the signal's default action end gilscope at once.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

/// The signals that end a run.
pub const ENDING: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

static FIRST: AtomicI32 = AtomicI32::new(0);
static FROM_TERMINAL: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicU32 = AtomicU32::new(0);

/// A request to end the run: the first signal that came, and how many came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop {
    pub signal: libc::c_int,
    /// Sent by the terminal (Ctrl-C, a hang-up) to the whole foreground process group, so a
    /// program that gilscope launched got it too; otherwise someone sent it to gilscope alone
    /// (`kill`, `timeout`) and it must be passed on.
    pub from_terminal: bool,
    pub count: u32,
}

impl Stop {
    /// `SIGTERM`, for messages.
    pub fn name(&self) -> &'static str {
        name(self.signal)
    }

    /// gilscope's exit status for a run this signal ended: 0 for SIGINT, the usual way to end
    /// a run at a terminal; 128 + the signal for SIGTERM and SIGHUP, as shells report a
    /// process that a signal ended, so that a supervisor sees the run was cut short.
    pub fn exit_code(&self) -> Option<u8> {
        (self.signal != libc::SIGINT).then(|| (128 + self.signal).clamp(0, 255) as u8)
    }
}

pub fn name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        libc::SIGKILL => "SIGKILL",
        _ => "a signal",
    }
}

extern "C" fn on_signal(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    let count = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    if FIRST
        .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler; si_code is
        // read without touching the union.
        let code = if info.is_null() {
            0
        } else {
            unsafe { (*info).si_code }
        };
        FROM_TERMINAL.store(code == libc::SI_KERNEL, Ordering::SeqCst);
    }
    if count >= 3 {
        // SAFETY: signal and raise are async-signal-safe. The signal is blocked while this
        // handler runs, so the default action ends gilscope when the handler returns.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
}

/// Installs the handler for [`ENDING`]; from now on those signals end the run instead of
/// gilscope. Call it before the program is launched, so that no signal is lost in between.
pub fn install() -> std::io::Result<()> {
    for signal in ENDING {
        // SAFETY: a zeroed sigaction is valid; the handler only touches atomics and calls
        // async-signal-safe functions.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// The request to end the run, once a signal came.
pub fn received() -> Option<Stop> {
    let signal = FIRST.load(Ordering::SeqCst);
    (signal != 0).then(|| Stop {
        signal,
        from_terminal: FROM_TERMINAL.load(Ordering::SeqCst),
        count: COUNT.load(Ordering::SeqCst),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_as_documented() {
        let stop = |signal| Stop {
            signal,
            from_terminal: false,
            count: 1,
        };
        assert_eq!(stop(libc::SIGINT).exit_code(), None);
        assert_eq!(stop(libc::SIGTERM).exit_code(), Some(143));
        assert_eq!(stop(libc::SIGHUP).exit_code(), Some(129));
        assert_eq!(stop(libc::SIGHUP).name(), "SIGHUP");
    }
}
