//! `gilscope dump <pid>`: one snapshot of every Python thread of a live process, with its GIL
//! state and Python stack, as text or as one JSON document (`gilscope-dump/1`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::model::{Frame, GilEnabled, GilReading, ThreadState, Tid};
use crate::report::text;
use crate::sampler::{snapshot, Snapshot, ThreadSnapshot};

/// How long a process that is still starting is given to become readable.
const PATIENCE: Duration = Duration::from_secs(2);
/// The longest target-controlled string shown in text mode, in characters.
const MAX_TEXT: usize = 200;

/// Dumps `pid` to standard output; returns the exit code.
pub fn run(pid: i32, json: bool) -> Result<u8> {
    crate::process::attach::check(pid)?;
    let target = crate::process::attach::open(pid, PATIENCE)?;
    let snap = snapshot(target)?;
    let out = if json {
        let mut s = serde_json::to_string_pretty(&Document::new(&snap))?;
        s.push('\n');
        s
    } else {
        text(&snap, &crate::process::cmdline(pid))
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    Ok(0)
}

/// The `gilscope-dump/1` document.
#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    pid: i32,
    python: &'a str,
    free_threaded: bool,
    gils: Vec<JsonGil>,
    threads: Vec<JsonThread<'a>>,
}

#[derive(Serialize)]
struct JsonGil {
    interpreter: i64,
    locked: bool,
    holder_tid: Option<Tid>,
    switch_number: u64,
    /// Always true for builds with a GIL; a free-threaded build's GIL is enabled while
    /// something (`PYTHON_GIL=1`, an extension module) asked for it.
    enabled: bool,
}

#[derive(Serialize)]
struct JsonThread<'a> {
    tid: Tid,
    name: Option<&'a str>,
    interpreter: i64,
    state: ThreadState,
    on_cpu: bool,
    /// Innermost first.
    frames: &'a [Frame],
}

impl<'a> Document<'a> {
    fn new(snap: &'a Snapshot) -> Self {
        Document {
            schema: "gilscope-dump/1",
            pid: snap.pid,
            python: &snap.python,
            free_threaded: snap.free_threaded,
            gils: snap
                .gils
                .iter()
                .map(|g| JsonGil {
                    interpreter: g.interpreter,
                    locked: g.locked,
                    holder_tid: g.holder,
                    switch_number: g.switch_number,
                    enabled: g.enabled != Some(GilEnabled::Disabled),
                })
                .collect(),
            threads: snap
                .threads
                .iter()
                .map(|t| JsonThread {
                    tid: t.tid,
                    name: t.name.as_deref(),
                    interpreter: t.interpreter,
                    state: t.state,
                    on_cpu: t.on_cpu,
                    frames: &t.frames,
                })
                .collect(),
        }
    }
}

/// A hostile thread name, file name or command line made safe for the terminal
/// ([`text::terminal`]): control and bidi characters shown as escapes, at most [`MAX_TEXT`]
/// characters.
fn printable(s: &str) -> String {
    text::terminal(s, MAX_TEXT)
}

/// The text dump: the process, its GILs, then every thread with its stack.
fn text(snap: &Snapshot, command: &[String]) -> String {
    let mut s = String::new();
    let command = printable(&command.join(" "));
    let _ = if command.is_empty() {
        writeln!(s, "Process {}", snap.pid)
    } else {
        writeln!(s, "Process {}: {command}", snap.pid)
    };
    let build = if snap.free_threaded {
        " (free-threaded)"
    } else {
        ""
    };
    let _ = writeln!(s, "CPython {}{build}", printable(&snap.python));
    for g in &snap.gils {
        let _ = writeln!(s, "{}", gil_line(g, snap));
    }
    for t in &snap.threads {
        let name = match &t.name {
            Some(n) => format!(" \"{}\"", printable(n)),
            None => String::new(),
        };
        let _ = writeln!(
            s,
            "\nThread {}{name} (interpreter {}): {}",
            t.tid,
            t.interpreter,
            state_phrase(t)
        );
        if t.frames.is_empty() {
            let _ = writeln!(s, "    (no Python stack)");
        }
        for f in &t.frames {
            let file = f.file.rsplit('/').next().unwrap_or(&f.file);
            let _ = writeln!(
                s,
                "    {} ({}:{})",
                printable(&f.function),
                printable(file),
                f.line
            );
        }
    }
    s
}

/// `GIL (interpreter 0) held by "worker-2" (1237), switch number 4`
fn gil_line(g: &GilReading, snap: &Snapshot) -> String {
    let which = format!("GIL (interpreter {})", g.interpreter);
    let enabled = match g.enabled {
        None => "",
        Some(GilEnabled::Disabled) => return format!("{which} disabled"),
        Some(GilEnabled::Transiently) => " (enabled for now)",
        Some(GilEnabled::Permanently) => " (enabled for good)",
    };
    let holder = match (g.locked, g.holder) {
        (true, Some(tid)) => {
            let name = snap
                .threads
                .iter()
                .find(|t| t.tid == tid)
                .and_then(|t| t.name.as_deref());
            match name {
                Some(n) => format!("held by {} ({tid})", printable(n)),
                None => format!("held by thread {tid}"),
            }
        }
        (true, None) => "held".to_string(),
        (false, _) => "free".to_string(),
    };
    format!(
        "{which}{enabled} {holder}, switch number {}",
        g.switch_number
    )
}

/// `waiting for the GIL`, with whether it is on a CPU where the state does not say so.
fn state_phrase(t: &ThreadSnapshot) -> String {
    let cpu = if t.on_cpu { "on CPU" } else { "off CPU" };
    match t.state {
        ThreadState::Holding => format!("holding the GIL, {cpu}"),
        ThreadState::Waiting => format!("waiting for the GIL, {cpu}"),
        ThreadState::Handoff => format!("handing off the GIL, {cpu}"),
        ThreadState::Native => "running native code without the GIL".to_string(),
        ThreadState::Ready => "ready to run, waiting for a CPU".to_string(),
        ThreadState::Lock => "waiting on a lock".to_string(),
        ThreadState::Io => match t.io {
            Some(kind) => format!("waiting on I/O: {}", kind.description()),
            None => "waiting on I/O".to_string(),
        },
        ThreadState::Sleep => "sleeping".to_string(),
        ThreadState::Idle => "idle".to_string(),
        ThreadState::Running => "running".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, file: &str, line: u32) -> Frame {
        Frame {
            function: function.into(),
            file: file.into(),
            line,
        }
    }

    fn sample() -> Snapshot {
        Snapshot {
            pid: 1234,
            python: "3.12.1".into(),
            free_threaded: false,
            gils: vec![GilReading {
                interpreter: 0,
                locked: true,
                holder: Some(1237),
                switch_number: 4,
                interval_us: 5000,
                enabled: None,
            }],
            threads: vec![
                ThreadSnapshot {
                    tid: 1236,
                    name: Some("worker-\u{1b}[31m1".into()),
                    interpreter: 0,
                    state: ThreadState::Waiting,
                    on_cpu: false,
                    gil: 0,
                    frames: vec![
                        frame("compute", "/srv/app.py", 22),
                        frame("run", "/usr/lib/python3.12/threading.py", 1010),
                    ],
                    ..Default::default()
                },
                ThreadSnapshot {
                    tid: 1237,
                    name: Some("worker-2".into()),
                    interpreter: 0,
                    state: ThreadState::Holding,
                    on_cpu: true,
                    gil: 0,
                    frames: vec![frame("compute", "/srv/app.py", 23)],
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn text_shows_the_gil_and_each_stack_innermost_first() {
        let s = text(&sample(), &["python3".into(), "app.py".into()]);
        assert!(
            s.starts_with("Process 1234: python3 app.py\nCPython 3.12.1\n"),
            "{s}"
        );
        assert!(
            s.contains("GIL (interpreter 0) held by worker-2 (1237), switch number 4"),
            "{s}"
        );
        assert!(
            s.contains(
                "Thread 1236 \"worker-\\x1b[31m1\" (interpreter 0): waiting for the GIL, off CPU\n    \
                 compute (app.py:22)\n    run (threading.py:1010)\n"
            ),
            "{s}"
        );
        assert!(s.contains("holding the GIL, on CPU"), "{s}");
        assert!(!s.contains('\u{1b}'), "{s}");
    }

    #[test]
    fn printable_cuts_long_strings_and_drops_control_characters() {
        assert_eq!(printable("a\nb\u{7}c\u{202e}"), "a\\nb\\x07c\\u{202e}");
        let long = "x".repeat(500);
        let cut = printable(&long);
        assert_eq!(cut.chars().count(), MAX_TEXT);
        assert!(cut.ends_with('…'));
        assert_eq!(printable(&"y".repeat(MAX_TEXT)), "y".repeat(MAX_TEXT));
    }

    #[test]
    fn json_has_every_field_of_the_dump_contract() {
        let snap = sample();
        let doc = serde_json::to_value(Document::new(&snap)).unwrap();
        assert_eq!(doc["schema"], "gilscope-dump/1");
        assert_eq!(doc["pid"], 1234);
        assert_eq!(doc["python"], "3.12.1");
        assert_eq!(doc["free_threaded"], false);
        let gil = &doc["gils"][0];
        assert_eq!(gil["holder_tid"], 1237);
        assert_eq!(gil["enabled"], true);
        for key in ["interpreter", "locked", "switch_number"] {
            assert!(gil.get(key).is_some(), "gils[0].{key} missing");
        }
        let t = &doc["threads"][0];
        assert_eq!(t["state"], "waiting");
        assert_eq!(t["name"], "worker-\u{1b}[31m1");
        assert_eq!(t["on_cpu"], false);
        assert_eq!(t["interpreter"], 0);
        assert_eq!(t["frames"][0]["function"], "compute");
        assert_eq!(t["frames"][0]["file"], "/srv/app.py");
        assert_eq!(t["frames"][0]["line"], 22);
    }

    #[test]
    fn a_disabled_gil_says_so() {
        let mut snap = sample();
        snap.free_threaded = true;
        snap.gils[0].enabled = Some(GilEnabled::Disabled);
        snap.gils[0].locked = false;
        snap.gils[0].holder = None;
        let s = text(&snap, &[]);
        assert!(
            s.starts_with("Process 1234\nCPython 3.12.1 (free-threaded)\n"),
            "{s}"
        );
        assert!(s.contains("GIL (interpreter 0) disabled\n"), "{s}");
        let doc = serde_json::to_value(Document::new(&snap)).unwrap();
        assert_eq!(doc["gils"][0]["enabled"], false);
    }
}
