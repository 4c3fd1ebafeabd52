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
    let (_stderr, first) = first_stderr_line(&mut run);
    assert!(first.contains("sampling pid"), "{first}");
    let pid: u32 = first
        .split("sampling pid ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let path = dir.path().join("cut.gilscope");
    // At least two flushes (one a second) have happened once the file passed 2 kB.
    let grown = || std::fs::metadata(&path).map_or(0, |m| m.len()) >= 2048;
    assert!(
        within(std::time::Duration::from_secs(30), grown),
        "the recording never grew"
    );
    run.kill().unwrap();
    run.wait().unwrap();
    // The program is orphaned by SIGKILL.
    kill(pid, libc::SIGKILL);

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
    let pys = first_and_newest();
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
        // Whole, or capped where names are read (model::MAX_NAME_CHARS) — never lost.
        let capped = gilscope::model::bounded_name(long.clone());
        assert!(
            names.contains(&long.as_str()) || names.contains(&capped.as_str()),
            "{who}: the long name was lost or cut short"
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
            has(MARKUP.as_bytes()) && (has(long.as_bytes()) || has(capped.as_bytes())),
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

/// A fill as `#rrggbb`, whether written so or as inferno's `rgb(r,g,b)`.
fn hex_fill(fill: &str) -> String {
    match fill.strip_prefix("rgb(").and_then(|f| f.strip_suffix(')')) {
        Some(inner) => {
            let v: Vec<u8> = inner
                .split(',')
                .map(|c| c.trim().parse().unwrap())
                .collect();
            format!("#{:02x}{:02x}{:02x}", v[0], v[1], v[2])
        }
        None => fill.to_lowercase(),
    }
}

/// One picture of an SVG: its legend (label and colours of each key) and its frames or
/// shapes (the name a frame's title gives, or "" for a lane's shape, and its fill).
struct Picture {
    name: String,
    keys: Vec<(String, Vec<String>)>,
    drawn: Vec<(String, String)>,
}

/// The pictures of a report (`g.picture`: legend and `g.data`) or of a standalone flame graph
/// (inferno's `svg#frames` and the legend under it).
fn pictures(doc: &roxmltree::Document) -> Vec<Picture> {
    let class = |n: &roxmltree::Node, c: &str| n.attribute("class") == Some(c);
    let keys = |root: roxmltree::Node| -> Vec<(String, Vec<String>)> {
        root.descendants()
            .filter(|n| class(n, "key"))
            .map(|k| {
                let label = k.descendants().find(|n| n.has_tag_name("text"));
                let fills = k.descendants().filter(|n| n.has_tag_name("rect"));
                (
                    label.and_then(|t| t.text()).unwrap_or_default().to_string(),
                    fills
                        .filter_map(|r| r.attribute("fill"))
                        .map(hex_fill)
                        .collect(),
                )
            })
            .collect()
    };
    let shapes = |data: roxmltree::Node| -> Vec<(String, String)> {
        data.descendants()
            .filter(|n| n.has_tag_name("rect") || n.has_tag_name("path"))
            .filter_map(|n| {
                let fill = hex_fill(n.attribute("fill")?);
                let title = n
                    .parent()
                    .and_then(|g| g.children().find(|c| c.has_tag_name("title")))
                    .and_then(|t| t.text())
                    .unwrap_or_default();
                // `name — 12 samples, 3%` (the report), `name (12 samples, 3%)` (inferno).
                let name = title.split(" — ").next().unwrap_or(title);
                let name = match name.rsplit_once(" (") {
                    Some((n, rest)) if rest.contains("samples") => n,
                    _ => name,
                };
                Some((name.to_string(), fill))
            })
            .collect()
    };
    let report: Vec<Picture> = doc
        .descendants()
        .filter(|n| class(n, "picture"))
        .map(|p| Picture {
            name: p.attribute("id").unwrap_or("?").to_string(),
            keys: keys(p),
            drawn: p
                .descendants()
                .filter(|n| class(n, "data"))
                .flat_map(shapes)
                .collect(),
        })
        .collect();
    if !report.is_empty() {
        return report;
    }
    let frames = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("frames"))
        .expect("neither pictures nor inferno's frames");
    vec![Picture {
        name: "frames".into(),
        keys: keys(doc.root()),
        drawn: shapes(frames),
    }]
}

/// Every SVG of a real run speaks one colour language: each picture's legend lists exactly the
/// colours it drew, a state's colour is the same everywhere and drawn only for that state, and
/// the standalone flame graphs are not mostly empty (start-up towers folded away).
#[test]
fn every_svg_of_a_real_run_has_a_legend_of_exactly_what_it_draws() {
    use gilscope::model::ThreadState;
    let _turn = exclusive();
    let py = pythons()[0];
    let dir = tempfile::tempdir().unwrap();
    record_in(
        dir.path(),
        py,
        &["-f", "svg,flamegraph,blame,holders,waiters"],
        "lock_convoy.py",
        &["--threads", "4", "--seconds", "2"],
    );
    let mut svgs: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
        .collect();
    svgs.sort();
    assert_eq!(svgs.len(), 5, "{svgs:?}");
    let state_of_label = |label: &str| {
        ThreadState::ALL
            .into_iter()
            .find(|&s| gilscope::report::state_label(s) == label)
    };
    let state_of_frame = |name: &str| {
        ThreadState::ALL
            .into_iter()
            .find(|s| s.frame_label() == name)
    };
    // Each state's colour, as the legends say it, across every file.
    let mut colour_of: std::collections::BTreeMap<String, String> = Default::default();
    let mut all: Vec<(String, Picture)> = Vec::new();
    for path in &svgs {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let svg = std::fs::read_to_string(path).unwrap();
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        let doc = roxmltree::Document::parse_with_options(&svg, options)
            .unwrap_or_else(|e| panic!("{file}: not XML: {e}"));
        for picture in pictures(&doc) {
            let at = format!("{file} {}", picture.name);
            assert!(!picture.drawn.is_empty(), "{at}: nothing drawn");
            for (name, fill) in &picture.drawn {
                assert!(
                    picture.keys.iter().any(|(_, fills)| fills.contains(fill)),
                    "{at}: {name:?} drawn in {fill}, which the legend {:?} does not have",
                    picture.keys
                );
            }
            for (label, fills) in &picture.keys {
                assert!(
                    fills
                        .iter()
                        .any(|f| picture.drawn.iter().any(|(_, d)| d == f)),
                    "{at}: the legend has {label:?}, which is not drawn"
                );
                if state_of_label(label).is_some() {
                    let known = colour_of.entry(label.clone()).or_insert(fills[0].clone());
                    assert_eq!(known, &fills[0], "{at}: {label} in another colour");
                }
            }
            // In the standalone flame graphs the frames are at least a third of the picture:
            // no tall, empty tower of start-up imports.
            if picture.name == "frames" {
                let ys: Vec<f64> = svg
                    .split("<rect ")
                    .filter(|r| r.contains("fg:w="))
                    .filter_map(|r| r.split("y=\"").nth(1)?.split('"').next()?.parse().ok())
                    .collect();
                let widths: f64 = svg
                    .split("<rect ")
                    .filter(|r| r.contains("fg:w="))
                    .filter_map(|r| {
                        r.split("width=\"")
                            .nth(1)?
                            .split('%')
                            .next()?
                            .parse::<f64>()
                            .ok()
                    })
                    .sum();
                let levels: std::collections::BTreeSet<i64> =
                    ys.iter().map(|y| *y as i64).collect();
                let filled = widths / 100.0 / levels.len() as f64;
                assert!(
                    filled >= 0.34,
                    "{at}: frames fill {:.0}% of {} levels",
                    filled * 100.0,
                    levels.len()
                );
            }
            all.push((at, picture));
        }
    }
    // A lock convoy's picture shows its threads waiting on the lock.
    assert!(colour_of.contains_key("waiting on a lock"), "{colour_of:?}");
    let state_colours: Vec<&String> = colour_of.values().collect();
    for (at, picture) in &all {
        for (name, fill) in &picture.drawn {
            match state_of_frame(name) {
                Some(s) => assert_eq!(
                    Some(fill),
                    colour_of.get(gilscope::report::state_label(s)),
                    "{at}: {name}"
                ),
                // Frames of code, threads, processes: no state's colour. (The report's bars
                // and lanes have no frame names; their legend check above covers them.)
                None if !matches!(picture.name.as_str(), "threads" | "timeline") => {
                    assert!(!state_colours.contains(&fill), "{at}: {name:?} is {fill}")
                }
                None => {}
            }
        }
    }
    passed(py, "one colour language in every SVG");
}
