//! The new descendants of a process as they appear, each opened as a target on a thread of
//! its own: a process that was just forked needs time to start its interpreter, and the run
//! must not wait for it. Shared by [`super::find`] (the Python process a wrapper runs) and
//! [`super::Children`] (`--subprocesses`).

use std::collections::HashSet;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

use super::attach;
use super::tree::descendants;
use crate::error::UserError;
use crate::sampler::Target;

/// How often `/proc` is scanned for new descendants.
const SCAN_EVERY: Duration = Duration::from_millis(100);
/// How long a new descendant may take before its interpreter can be read (a `spawn`ed
/// worker starts a fresh interpreter).
const PATIENCE: Duration = Duration::from_secs(10);

/// What the opening of one descendant came to.
pub type Opened = (i32, Result<Target, UserError>);

/// The descendants of one process, each opened once.
pub struct NewDescendants {
    root: i32,
    seen: HashSet<i32>,
    last_scan: Option<Instant>,
    opened_tx: Sender<Opened>,
    opened: Receiver<Opened>,
}

impl NewDescendants {
    pub fn new(root: i32) -> NewDescendants {
        let (opened_tx, opened) = channel();
        NewDescendants {
            root,
            seen: HashSet::from([root]),
            last_scan: None,
            opened_tx,
            opened,
        }
    }

    /// Leaves `pid` out: it is profiled already (the target a wrapper started).
    pub fn skip(&mut self, pid: i32) {
        self.seen.insert(pid);
    }

    /// Opens `pid` again at the next scan that finds it (it exec'd into another program).
    pub fn forget(&mut self, pid: i32) {
        self.seen.remove(&pid);
    }

    /// Scans `/proc`, at most every [`SCAN_EVERY`], and starts opening each descendant not
    /// seen before; returns those, nearest first.
    pub fn scan(&mut self) -> Vec<i32> {
        if self.last_scan.is_some_and(|t| t.elapsed() < SCAN_EVERY) {
            return Vec::new();
        }
        self.last_scan = Some(Instant::now());
        let new: Vec<i32> = descendants(self.root)
            .into_iter()
            .filter(|&pid| self.seen.insert(pid))
            .collect();
        for &pid in &new {
            let tx = self.opened_tx.clone();
            std::thread::spawn(move || {
                let _ = tx.send((pid, attach::open(pid, PATIENCE)));
            });
        }
        new
    }

    /// The descendants whose opening has ended since the last call, as Python or not.
    pub fn opened(&mut self) -> Vec<Opened> {
        self.opened.try_iter().collect()
    }
}
