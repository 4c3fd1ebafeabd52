//! Reports people keep: recordings rendered again later, exactly as the live run rendered
//! them, and what happens when a recording is cut short or is not one.

mod common;

use std::process::{Command, Stdio};

use common::*;

/// `record` on a fixture with extra gilscope options; panics unless it succeeds.
fn record_in(dir: &std::path::Path, py: &Python, opts: &[&str], fixture: &str, extra: &[&str]) {
    let argv = py.argv();
    let fx = py.fixture(fixture);
    let mut args = vec!["record", "-q"];
    args.extend(opts);
    args.push("--");
    args.extend(argv.iter().map(String::as_str));
    args.push(&fx);
    args.extend(extra);
    let out = gilscope(dir, &args);
    assert!(out.status.success(), "{}: {}", py.label, text(&out.stderr));
}

#[test]
fn a_recording_renders_every_format_exactly_as_the_live_run() {
    let _turn = exclusive();
    let py = pythons()[0];
    let dir = tempfile::tempdir().unwrap();
    let live_formats = ["json", "flamegraph", "blame"];
    record_in(
        dir.path(),
        py,
        &["--recording", "run.gilscope", "-f", "json,flamegraph,blame"],
        "gil_bound.py",
        &["--threads", "3", "--seconds", "2"],
    );
    let live: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("gilscope-")
        })
        .collect();
    assert_eq!(live.len(), live_formats.len(), "{live:?}");
    for format in live_formats {
        let out = gilscope(
            dir.path(),
            &["report", "-q", "-f", format, "-o", "again", "run.gilscope"],
        );
        assert!(out.status.success(), "{format}: {}", text(&out.stderr));
        let again = std::fs::read(dir.path().join("again")).unwrap();
        let suffix = match format {
            "json" => ".json",
            "flamegraph" => ".svg",
            _ => ".blame.svg",
        };
        let original = live
            .iter()
            .find(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.ends_with(suffix) && (suffix != ".svg" || !name.ends_with(".blame.svg"))
            })
            .unwrap();
        assert!(
            std::fs::read(original).unwrap() == again,
            "{format}: the report of the recording differs from the live one"
        );
    }
    // The summary is printed again too.
    let out = gilscope(
        dir.path(),
        &["report", "-f", "json", "-o", "x.json", "run.gilscope"],
    );
    assert!(
        text(&out.stderr).contains("GIL-bound"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_run_killed_mid_way_leaves_a_recording_of_all_but_the_last_second() {
    let _turn = exclusive();
    let py = pythons()[0];
    let dir = tempfile::tempdir().unwrap();
    let mut run = Command::new(BIN)
        .args([
            "record",
            "--recording",
            "cut.gilscope",
            "-o",
            "/dev/null",
            "--",
        ])
        .args(py.argv())
        .arg(py.fixture("gil_bound.py"))
        .args(["--seconds", "30"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until gilscope samples, then let it record for a while before killing it hard.
    let mut stderr = std::io::BufReader::new(run.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    assert!(first.contains("sampling pid"), "{first}");
    let pid: i32 = first
        .split("sampling pid ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let path = dir.path().join("cut.gilscope");
    // At least two flushes (one a second) have happened once the file passed 2 kB.
    while std::fs::metadata(&path).map_or(0, |m| m.len()) < 2048 {
        assert!(
            std::time::Instant::now() < deadline,
            "the recording never grew"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    run.kill().unwrap();
    run.wait().unwrap();
    // SAFETY: kill has no memory-safety preconditions; the program is orphaned by SIGKILL.
    unsafe { libc::kill(pid, libc::SIGKILL) };

    let out = gilscope(
        dir.path(),
        &["report", "-f", "json", "-o", "-", "cut.gilscope"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("ends early"),
        "{}",
        text(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(f(&json["run"]["state_samples"]) >= 100.0, "{}", json["run"]);
    assert_eq!(json["target"]["pid"], pid);
}

#[test]
fn what_is_not_a_recording_is_refused_in_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a recording").unwrap();
    let out = gilscope(dir.path(), &["report", "notes.txt"]);
    assert_error(&out, "is not a gilscope recording");
    let out = gilscope(dir.path(), &["report", "missing.gilscope"]);
    assert_error(&out, "cannot read the recording missing.gilscope");
    let out = gilscope(
        dir.path(),
        &[
            "record",
            "--recording",
            "/nonexistent/r.gilscope",
            "--",
            "true",
        ],
    );
    assert_error(&out, "choose a writable path for --recording");
    // A run that fails leaves no recording behind.
    let out = gilscope(
        dir.path(),
        &[
            "record",
            "--recording",
            "r.gilscope",
            "--",
            "/nonexistent/program",
        ],
    );
    assert_error(&out, "cannot start");
    assert!(!dir.path().join("r.gilscope").exists());
}

#[test]
fn subprocesses_are_recorded_and_reported_again() {
    let _turn = exclusive();
    let py = pythons()[0];
    let dir = tempfile::tempdir().unwrap();
    record_in(
        dir.path(),
        py,
        &[
            "--subprocesses",
            "--recording",
            "pool.gilscope",
            "-o",
            "/dev/null",
        ],
        "process_pool.py",
        &["--seconds", "1.5"],
    );
    let out = gilscope(
        dir.path(),
        &["report", "-f", "json", "-o", "-", "pool.gilscope"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let busy = json["subprocesses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| f(&p["gils"][0]["held"]) >= 0.8)
        .count();
    assert_eq!(busy, 2, "{}", json["subprocesses"]);
}

const MARKUP: &str = "</svg><script>alert(1)</script>|;*`[x]&\"";

/// Every format from one real run of threads and a function with hostile names: each one
/// renders, parses as what it claims to be, keeps the names, and lets none of them act.
#[test]
fn every_format_renders_a_real_run_and_hostile_names_stay_inert() {
    let _turn = exclusive();
    let all = pythons();
    let newest = all.iter().max_by_key(|p| p.version).copied().unwrap();
    let mut pys = vec![all[0]];
    if newest.label != all[0].label {
        pys.push(newest);
    }
    let long: String = "a;b c|d\t".repeat(500).chars().take(4000).collect();
    for py in pys {
        let who = &py.label;
        let dir = tempfile::tempdir().unwrap();
        record_in(
            dir.path(),
            py,
            &["--recording", "h.gilscope", "-o", "/dev/null"],
            "hostile_names.py",
            &["--seconds", "1.5"],
        );
        let render = |format: &str| -> Vec<u8> {
            let out = gilscope(
                dir.path(),
                &["report", "-q", "-f", format, "-o", "-", "h.gilscope"],
            );
            assert!(
                out.status.success(),
                "{who}: {format}: {}",
                text(&out.stderr)
            );
            assert!(!out.stdout.is_empty(), "{who}: {format} is empty");
            out.stdout
        };

        let json: serde_json::Value = serde_json::from_slice(&render("json")).unwrap();
        let names: Vec<&str> = json["threads"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert!(names.contains(&MARKUP), "{who}: {names:?}");
        assert!(
            names.contains(&long.as_str()),
            "{who}: the long name was cut"
        );
        assert_eq!(json["top_holders"][0]["function"], MARKUP, "{who}");

        for format in ["speedscope", "perfetto"] {
            let doc: serde_json::Value = serde_json::from_slice(&render(format))
                .unwrap_or_else(|e| panic!("{who}: {format} is not JSON: {e}"));
            assert!(
                doc.to_string().contains("alert(1)"),
                "{who}: {format} lost the name"
            );
        }

        let collapsed = String::from_utf8(render("collapsed")).unwrap();
        for line in collapsed.lines() {
            let (stack, count) = line.rsplit_once(' ').unwrap();
            assert!(count.parse::<u64>().is_ok(), "{who}: {line:.200}");
            assert!(!stack.is_empty());
        }
        assert!(collapsed.contains("[holding GIL]"), "{who}");
        assert!(
            collapsed.contains("</svg><script>alert(1)</script>"),
            "{who}"
        );

        let markdown = String::from_utf8(render("markdown")).unwrap();
        assert!(
            !markdown.contains("<script"),
            "{who}: raw markup in Markdown"
        );
        assert!(markdown.contains("&lt;/svg&gt;&lt;script&gt;"), "{who}");

        let flamegraph = String::from_utf8(render("flamegraph")).unwrap();
        assert!(
            !flamegraph.contains("<script>alert"),
            "{who}: injected into the SVG"
        );
        assert!(
            flamegraph.contains("&lt;/svg&gt;&lt;script&gt;alert(1)"),
            "{who}"
        );

        let svg = String::from_utf8(render("svg")).unwrap();
        let doc = roxmltree::Document::parse(&svg)
            .unwrap_or_else(|e| panic!("{who}: the SVG report is not well-formed: {e}"));
        assert!(
            !doc.descendants().any(|n| n.tag_name().name() == "script"),
            "{who}: a script element in the SVG report"
        );
        let texts: String = doc.descendants().filter_map(|n| n.text()).collect();
        assert!(
            texts.contains("</svg><script>alert(1)</script>"),
            "{who}: name lost"
        );

        let pprof = render("pprof");
        assert_eq!(&pprof[..2], &[0x1f, 0x8b], "{who}: pprof is not gzip");
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&pprof[..]), &mut raw)
            .unwrap();
        let has = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
        assert!(
            has(MARKUP.as_bytes()) && has(long.as_bytes()),
            "{who}: pprof lost a name"
        );
        passed(py, "every format + hostile names");
    }
}

#[test]
fn a_crossed_threshold_fails_the_job_after_every_report_is_written() {
    let _turn = exclusive();
    let py = pythons()[0];
    let dir = tempfile::tempdir().unwrap();
    let argv = py.argv();
    let fx = py.fixture("gil_bound.py");
    let run = |opts: &[&str]| {
        let mut args = vec!["record", "-q", "-f", "json,markdown"];
        args.extend(opts);
        args.push("--");
        args.extend(argv.iter().map(String::as_str));
        args.extend([fx.as_str(), "--threads", "3", "--seconds", "1.5"]);
        gilscope(dir.path(), &args)
    };
    let out = run(&[
        "--fail-if",
        "contended > 0.5",
        "--fail-if",
        "avg_waiters >= 100",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--fail-if 'contended > 0.5' crossed on pid")
            && stderr.contains(": contended 0.")
            && stderr.contains(" > 0.5\n"),
        "{stderr}"
    );
    assert!(!stderr.contains("avg_waiters >= 100"), "{stderr}");
    let written: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        written.iter().any(|n| n.ends_with(".json")) && written.iter().any(|n| n.ends_with(".md")),
        "{written:?}"
    );

    // A threshold that holds leaves the exit code alone.
    let out = run(&["--fail-if", "contended < 0.01"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // A bad expression fails before the program starts, naming the valid names.
    let marker = dir.path().join("started");
    let script = format!("open({:?}, 'w')", marker.to_str().unwrap());
    let out = gilscope(
        dir.path(),
        &[
            "record",
            "--fail-if",
            "waiters > 1",
            "--",
            "python3",
            "-c",
            &script,
        ],
    );
    assert_error(&out, "unknown name 'waiters'");
    assert!(text(&out.stderr).contains("avg_waiters, contended"));
    assert!(
        !marker.exists(),
        "the program ran although --fail-if was wrong"
    );

    // The same thresholds work on a recording.
    let mut args = vec![
        "record",
        "-q",
        "--recording",
        "t.gilscope",
        "-o",
        "/dev/null",
        "--",
    ];
    args.extend(argv.iter().map(String::as_str));
    args.extend([fx.as_str(), "--threads", "3", "--seconds", "1"]);
    assert!(gilscope(dir.path(), &args).status.success());
    let out = gilscope(
        dir.path(),
        &[
            "report",
            "-q",
            "-o",
            "/dev/null",
            "--fail-if",
            "held > 50%",
            "t.gilscope",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}
