//! gilscope's own stack reader on real CPython processes: a frame is never dropped for its
//! names. A function named with 5000 characters and one in a file whose name holds bytes
//! that are not UTF-8 (both of which py-spy dropped, blaming the caller) show with their
//! names capped or replaced, and the GIL is blamed on them, on every interpreter found. And
//! py-spy as the oracle: on every interpreter with a GIL, the own reader's stacks are
//! py-spy's frame for frame (`fixtures/still_stacks.py`: 900 frames deep, a generator, a
//! closure).

mod common;

use common::*;
use gilscope::model::MAX_NAME_CHARS;
use serde_json::Value;

/// The row of `list` for the function `is_it` accepts.
fn row<'a>(json: &'a Value, list: &str, is_it: impl Fn(&str) -> bool) -> Option<&'a Value> {
    json[list]
        .as_array()?
        .iter()
        .find(|s| s["function"].as_str().is_some_and(&is_it))
}

/// Every interpreter found, free-threaded builds included.
fn every_python() -> Vec<&'static Python> {
    let mut all = pythons();
    all.extend(free_threaded_pythons());
    all
}

fn is_long(name: &str) -> bool {
    name.starts_with("long_xxx")
}

#[test]
fn long_and_non_utf8_names_keep_their_frames_and_the_blame() {
    let _turn = exclusive();
    let mut tested = Vec::new();
    for py in every_python() {
        let who = &py.label;
        let (json, summary) = record_json(py, "hostile_frames.py", &["--seconds", "3"]);
        // Without a GIL (free-threaded), the same frames are what runs.
        let list = match py.free_threaded {
            true => "top_running",
            false => "top_holders",
        };

        // The long name: cut to the cap, ending in `…`, in its own file.
        let long = row(&json, list, is_long)
            .unwrap_or_else(|| panic!("{who}: no long-named frame: {}", json[list]));
        let name = long["function"].as_str().unwrap();
        assert_eq!(name.chars().count(), MAX_NAME_CHARS, "{who}");
        assert!(name.ends_with("x…"), "{who}: {}", &name[name.len() - 10..]);
        assert!(
            long["file"]
                .as_str()
                .unwrap()
                .ends_with("hostile_frames.py"),
            "{who}: {long}"
        );

        // The file name's two bad bytes: one U+FFFD each, the rest of the path intact.
        let bad = row(&json, list, |f| f == "hot_in_bad_file")
            .unwrap_or_else(|| panic!("{who}: no frame in the bad file: {}", json[list]));
        let file = bad["file"].as_str().unwrap();
        assert!(
            file.ends_with("/bad\u{fffd}\u{fffd}name.py") && file.contains("gilscope-frames-"),
            "{who}: {file:?}"
        );

        // Each holds the GIL about half the time (runs all the time, without a GIL), as its
        // own code (self), not its caller's.
        for (what, r) in [("long name", long), ("bad file", bad)] {
            assert!(
                (0.2..=0.85).contains(&f(&r["share"])),
                "{who}: {what}: {r}\n{summary}"
            );
        }
        for caller in ["calls_long_name", "calls_bad_file"] {
            let own = row(&json, list, |f| f.ends_with(caller)).map_or(0.0, |r| f(&r["share"]));
            assert!(
                own < 0.1,
                "{who}: {caller} blamed for {own}: {}",
                json[list]
            );
        }
        // And the verdict, when it names code, names one of the two.
        let code = &json["verdict"]["code"];
        if let Some(function) = code["function"].as_str() {
            assert!(
                is_long(function) || function == "hot_in_bad_file",
                "{who}: the verdict names {function}"
            );
        }
        passed(py, "frames with hostile names");
        tested.push(who.clone());
    }
    assert!(!tested.is_empty(), "no interpreter found");
    eprintln!("hostile frames read on: {}", tested.join(", "));
}

/// `dump --json` reads the same frames from a running program, innermost first.
#[test]
fn dump_shows_the_frames_py_spy_dropped() {
    let _turn = exclusive();
    for py in every_python() {
        let who = &py.label;
        let run = Running::start(py, "hostile_frames.py", &["--seconds", "20"]);
        let dir = tempfile::tempdir().unwrap();
        let dump = || {
            let out = gilscope(dir.path(), &["dump", "--json", &run.pid.to_string()]);
            assert!(out.status.success(), "{who}: {}", text(&out.stderr));
            let json: Value = serde_json::from_slice(&out.stdout).unwrap();
            // Threads by what they run, not their names: free-threaded 3.13t names no threads.
            let stacks: Vec<Vec<(String, String)>> = json["threads"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    t["frames"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|f| {
                            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
                            (s("function"), s("file"))
                        })
                        .collect()
                })
                .collect();
            (json, stacks)
        };
        // The ready file is written at the workers' start barrier: on a busy machine a worker
        // may not have reached its caller at the first dump.
        let in_callers = |stacks: &[Vec<(String, String)>]| {
            ["calls_long_name", "calls_bad_file"]
                .iter()
                .all(|c| stacks.iter().any(|s| s.iter().any(|(f, _)| f.ends_with(c))))
        };
        let mut taken = dump();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !in_callers(&taken.1) && std::time::Instant::now() < deadline {
            taken = dump();
        }
        let (json, stacks) = taken;
        let stack_of = |caller: &str| -> &Vec<(String, String)> {
            stacks
                .iter()
                .find(|s| s.iter().any(|(f, _)| f.ends_with(caller)))
                .unwrap_or_else(|| panic!("{who}: no thread in {caller}: {json}"))
        };
        let long = stack_of("calls_long_name");
        assert!(is_long(&long[0].0), "{who}: {long:?}");
        assert!(long[1].0.ends_with("calls_long_name"), "{who}: {long:?}");
        let bad = stack_of("calls_bad_file");
        assert_eq!(bad[0].0, "hot_in_bad_file", "{who}: {bad:?}");
        assert!(
            bad[0].1.ends_with("/bad\u{fffd}\u{fffd}name.py"),
            "{who}: {bad:?}"
        );
        assert!(bad[1].0.ends_with("calls_bad_file"), "{who}: {bad:?}");
    }
}

/// `(function, file, line)` of each frame, innermost first.
type Frames = Vec<(String, String, u32)>;

/// Every thread's stack as py-spy reads it, in order. (Threads are compared by their stacks:
/// py-spy does not know every thread's OS id before 3.11.)
fn py_spy_stacks(pid: i32) -> Result<Vec<Frames>, String> {
    use py_spy::config::{Config, LockingStrategy};
    let config = Config {
        blocking: LockingStrategy::NonBlocking,
        include_idle: true,
        ..Config::default()
    };
    let mut spy = py_spy::PythonSpy::new(pid, &config).map_err(|e| format!("{e:#}"))?;
    let traces = spy.get_stack_traces().map_err(|e| format!("{e:#}"))?;
    let mut stacks: Vec<Frames> = traces
        .into_iter()
        .map(|t| {
            t.frames
                .into_iter()
                .map(|f| (f.name, f.filename, f.line.max(0) as u32))
                .collect()
        })
        .collect();
    stacks.sort();
    Ok(stacks)
}

/// Every thread's stack as gilscope's own reader reads it, in order.
fn own_stacks(pid: i32) -> Vec<Frames> {
    let target = gilscope::sampler::Target::open(pid).expect("gilscope opens the fixture");
    let snapshot = gilscope::sampler::snapshot(target).expect("gilscope reads the fixture");
    let mut stacks: Vec<Frames> = snapshot
        .threads
        .into_iter()
        .map(|t| {
            t.frames
                .into_iter()
                .map(|f| (f.function.to_string(), f.file.to_string(), f.line))
                .collect()
        })
        .collect();
    stacks.sort();
    stacks
}

#[test]
fn the_own_reader_reads_the_stacks_py_spy_reads_frame_for_frame() {
    let test = "the_own_reader_reads_the_stacks_py_spy_reads_frame_for_frame";
    let _turn = exclusive();
    let mut compared = Vec::new();
    // py-spy cannot read free-threaded builds: those have no oracle.
    for py in pythons() {
        let who = &py.label;
        let run = Running::start(py, "still_stacks.py", &["--seconds", "60"]);
        if let Err(e) = py_spy_stacks(run.pid) {
            skip(test, format!("{who}: py-spy cannot read it ({e})"));
            continue;
        }
        // Threads may still be between the event they set and the wait they park in: take
        // both readings again until they agree, or give up and show the difference.
        let mut last = None;
        for _ in 0..50 {
            let spy = py_spy_stacks(run.pid).unwrap();
            let own = own_stacks(run.pid);
            if spy == own {
                last = None;
                let depths: Vec<usize> = own.iter().map(Vec::len).collect();
                assert!(
                    depths.iter().any(|&d| d > 900),
                    "{who}: no thread 900 frames deep: {depths:?}"
                );
                break;
            }
            last = Some((spy, own));
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if let Some((spy, own)) = last {
            for (a, b) in spy.iter().zip(&own) {
                if a != b {
                    let at = a.iter().zip(b).position(|(x, y)| x != y);
                    panic!(
                        "{who}: a thread differs (py-spy {} frames, gilscope {}) first at \
                         frame {at:?}: py-spy {:?} / gilscope {:?}",
                        a.len(),
                        b.len(),
                        at.map(|k| &a[k]),
                        at.map(|k| &b[k])
                    );
                }
            }
            panic!("{who}: the threads differ: py-spy {spy:?}\ngilscope {own:?}");
        }
        compared.push(who.clone());
    }
    assert!(!compared.is_empty(), "no interpreter was compared");
    eprintln!("same stacks as py-spy on: {compared:?}");
}
