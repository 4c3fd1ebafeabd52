//! A one-line progress display while a run goes, on stderr when it is a terminal: elapsed
//! time, samples so far, and what the GIL did over the last second (held share, waiters,
//! the function holding it). Silent when stderr is a file or a pipe (CI logs).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::model::{Sample, ThreadState};

const EVERY: Duration = Duration::from_secs(1);

pub struct Progress {
    started: Instant,
    last_print: Instant,
    samples: u64,
    /// Over the current second: ticks, ticks with the main GIL held, waiting threads.
    ticks: u64,
    held: u64,
    waiting: u64,
    holder: Option<String>,
    shown: bool,
}

impl Progress {
    /// `None` unless stderr is a terminal and the run is not quiet.
    pub fn on_terminal(quiet: bool) -> Option<Progress> {
        (!quiet && std::io::stderr().is_terminal()).then(Progress::new)
    }

    fn new() -> Progress {
        Progress {
            started: Instant::now(),
            last_print: Instant::now(),
            samples: 0,
            ticks: 0,
            held: 0,
            waiting: 0,
            holder: None,
            shown: false,
        }
    }

    pub fn sample(&mut self, sample: &Sample) {
        match sample {
            Sample::State(tick) => {
                self.samples += 1;
                self.ticks += 1;
                let main = tick.main_gil();
                self.held += u64::from(main.is_some_and(|g| g.holder.is_some()));
                self.waiting += tick
                    .threads
                    .iter()
                    .filter(|o| o.state == ThreadState::Waiting)
                    .count() as u64;
            }
            Sample::Stacks(tick) => {
                if let Some(s) = tick.stacks.iter().find(|s| s.state == ThreadState::Holding) {
                    self.holder = s.frames.last().map(|f| f.function.to_string());
                }
            }
            _ => {}
        }
    }

    /// Prints the line once a second.
    pub fn tick(&mut self) {
        if self.last_print.elapsed() < EVERY {
            return;
        }
        self.last_print = Instant::now();
        let line = self.line();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        self.shown = true;
        self.ticks = 0;
        self.held = 0;
        self.waiting = 0;
    }

    fn line(&self) -> String {
        let ticks = self.ticks.max(1) as f64;
        let holder: String = self
            .holder
            .as_deref()
            .map(|f| format!(", held by {}()", crate::report::text::terminal(f, 40)))
            .unwrap_or_default();
        format!(
            "gilscope: {:.0} s, {} samples; last second: GIL held {:.0}%, {:.1} threads \
             waiting{holder}",
            self.started.elapsed().as_secs_f64(),
            self.samples,
            100.0 * self.held as f64 / ticks,
            self.waiting as f64 / ticks
        )
    }

    /// Clears the line before the summary is printed.
    pub fn clear(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Frame, GilReading, StackTick, StateTick, ThreadObservation, ThreadStack};

    #[test]
    fn the_line_says_what_the_gil_did_lately() {
        let mut p = Progress::new();
        for holder in [Some(1), Some(1), None, Some(2)] {
            p.sample(&Sample::State(StateTick {
                at: Duration::ZERO,
                gils: vec![GilReading {
                    interpreter: 0,
                    locked: holder.is_some(),
                    holder,
                    switch_number: 0,
                    interval_us: 5000,
                    enabled: None,
                }],
                threads: vec![ThreadObservation {
                    tid: 3,
                    state: ThreadState::Waiting,
                    on_cpu: false,
                    gil: 0,
                    ..Default::default()
                }],
            }));
        }
        p.sample(&Sample::Stacks(StackTick {
            at: Duration::ZERO,
            waiters: 1,
            stacks: vec![ThreadStack {
                tid: 1,
                state: ThreadState::Holding,
                on_cpu: true,
                frames: vec![Frame {
                    function: "compute\u{1b}[31m".into(),
                    file: "app.py".into(),
                    line: 3,
                }]
                .into(),
                ..Default::default()
            }],
        }));
        let line = p.line();
        assert!(line.contains("4 samples"), "{line}");
        assert!(line.contains("GIL held 75%"), "{line}");
        assert!(line.contains("1.0 threads waiting"), "{line}");
        // A hostile function name cannot send escape sequences to the terminal.
        assert!(line.contains("held by compute\\x1b[31m()"), "{line}");
    }
}
