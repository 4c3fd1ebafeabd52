//! Strings from the target are hostile (issue #11, items 8 and 9): a real run of threads,
//! functions and files whose names hold escape sequences, control characters, bidi
//! overrides, non-characters, markup, separators, newlines and 5,000 characters
//! (fixtures/hostile_bytes.py), recorded once in every format. Each destination shows every
//! name, escaped its own way (`\x1b`, `\u{202e}`, entities, `\x3b` in folded stacks), and none
//! of them acts there: every SVG parses as XML, the terminal gets no control or bidi
//! character, each Markdown table row has its header's cells, each folded line its frames.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use gilscope::model::MAX_NAME_CHARS;
use serde_json::Value;

/// The fixture's kinds of hostile text, as in fixtures/hostile_bytes.py.
const KINDS: &[(&str, &str)] = &[
    ("esc", "\u{1b}[31mred\u{1b}[0m\u{1b}]0;pwned\u{7}"),
    ("c0", "\u{0}\u{1}\u{8}\u{7f}"),
    ("c1", "\u{85}\u{9b}2J"),
    ("bidi", "\u{202e}evil\u{2066}\u{200f}\u{61c}"),
    ("nonchar", "\u{fffe}\u{ffff}"),
    ("markup", "</svg><script>alert(1)</script>"),
    ("md", "pipe|tick`semi;"),
    ("newline", "line\nbreak\r\ttab"),
    ("long", ""), // 5,000 `L`s: see `text`
];

fn text_of(kind: &str) -> String {
    match kind {
        "long" => "L".repeat(5000),
        _ => KINDS
            .iter()
            .find(|(k, _)| *k == kind)
            .unwrap()
            .1
            .to_string(),
    }
}

/// The function every thread spins in: all kinds but the long one.
fn spin() -> String {
    let mut s = "spin".to_string();
    for (kind, text) in &KINDS[..8] {
        assert_ne!(*kind, "long");
        s.push_str(text);
    }
    s
}

/// What may not reach any destination as itself (the documented rule of src/report/text.rs).
fn hidden(c: char) -> bool {
    let u = c as u32;
    c.is_control()
        || matches!(
            c,
            '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
        )
        || matches!(c, '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
        || (0xfdd0..=0xfdef).contains(&u)
        || u & 0xfffe == 0xfffe
}

/// One character as the reports show it: itself, or its visible escape.
fn escape(c: char, semicolon: bool) -> String {
    match c {
        '\t' => "\\t".into(),
        '\n' => "\\n".into(),
        '\r' => "\\r".into(),
        ';' if semicolon => "\\x3b".into(),
        c if hidden(c) && c.is_ascii() => format!("\\x{:02x}", c as u32),
        c if hidden(c) => format!("\\u{{{:x}}}", c as u32),
        c => c.to_string(),
    }
}

/// `s` as a terminal shows it, uncut.
fn shown(s: &str) -> String {
    s.chars().map(|c| escape(c, false)).collect()
}

/// `s` as a frame of a folded stack: `;` escaped too, at most [`MAX_NAME_CHARS`] characters
/// with `…` last when cut, no escape split.
fn folded(s: &str) -> String {
    let pieces: Vec<String> = s.chars().map(|c| escape(c, true)).collect();
    let total: usize = pieces.iter().map(|p| p.chars().count()).sum();
    if total <= MAX_NAME_CHARS {
        return pieces.concat();
    }
    let mut out = String::new();
    let mut n = 0;
    for p in pieces {
        n += p.chars().count();
        if n > MAX_NAME_CHARS - 1 {
            break;
        }
        out.push_str(&p);
    }
    out.push('…');
    out
}

/// Where `s` holds a character that may not reach a terminal, a text file or XML as itself,
/// newlines (and, in XML, tabs and carriage returns of inferno's script) aside.
fn first_hidden(s: &str, allowed: &[char]) -> Option<(usize, char)> {
    s.char_indices()
        .find(|&(_, c)| hidden(c) && !allowed.contains(&c))
}

fn assert_clean(what: &str, s: &str, allowed: &[char]) {
    if let Some((at, c)) = first_hidden(s, allowed) {
        let before: String = s[..at].chars().rev().take(60).collect();
        let before: String = before.chars().rev().collect();
        panic!("{what}: raw {c:?} at byte {at}, after {before:?}");
    }
}

const FORMATS: &[(&str, &str)] = &[
    ("svg", ".svg"),
    ("flamegraph", ".flamegraph.svg"),
    ("holders", ".holders.svg"),
    ("blame", ".blame.svg"),
    ("waiters", ".waiters.svg"),
    ("json", ".json"),
    ("collapsed", ".collapsed.txt"),
    ("markdown", ".md"),
    ("speedscope", ".speedscope.json"),
    ("perfetto", ".perfetto.json"),
    ("pprof", ".pb.gz"),
];

/// Records the fixture in every format into `dir`; returns the files by format and stderr.
fn record_all(py: &Python, dir: &Path) -> (BTreeMap<&'static str, Vec<u8>>, String) {
    let formats: Vec<&str> = FORMATS.iter().map(|(f, _)| *f).collect();
    let formats = formats.join(",");
    let argv = py.argv();
    let fx = py.fixture("hostile_bytes.py");
    let mut args = vec!["record", "-f", &formats, "--"];
    args.extend(argv.iter().map(String::as_str));
    args.extend([fx.as_str(), "--seconds", "2"]);
    let out = gilscope(dir, &args);
    let stderr = String::from_utf8(out.stderr).expect("stderr is UTF-8");
    assert!(out.status.success(), "{}: {stderr}", py.label);
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut files = BTreeMap::new();
    for (format, suffix) in FORMATS {
        // `.svg` alone is the report: the flame graphs' names have a dot more.
        let name = names
            .iter()
            .find(|n| {
                n.starts_with("gilscope-")
                    && n.ends_with(suffix)
                    && n.matches('.').count() == suffix.matches('.').count()
            })
            .unwrap_or_else(|| panic!("{}: no {format} file in {names:?}", py.label));
        files.insert(*format, std::fs::read(dir.join(name)).unwrap());
    }
    (files, stderr)
}

/// Every string in a JSON document.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(o) => o.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out);
        }),
        _ => {}
    }
}

/// The cell separators of a Markdown table row: each `|` without a backslash before it (as
/// GitHub reads a row: `\|` is a pipe inside a cell, even after another backslash).
fn cells(row: &str) -> usize {
    let mut n = 0;
    let mut prev = ' ';
    for c in row.chars() {
        if c == '|' && prev != '\\' {
            n += 1;
        }
        prev = c;
    }
    n
}

#[test]
fn hostile_names_reach_every_format_escaped_for_it_and_act_nowhere() {
    let _turn = exclusive();
    let pys = first_and_newest();
    let spin = spin();
    for py in pys {
        let who = &py.label;
        let dir = tempfile::tempdir().unwrap();
        let (files, stderr) = record_all(py, dir.path());
        let utf8 = |format: &str| {
            String::from_utf8(files[format].clone())
                .unwrap_or_else(|e| panic!("{who}: {format} is not UTF-8: {e}"))
        };
        let json: Value = serde_json::from_slice(&files["json"]).unwrap();
        let threads: Vec<(i64, String)> = json["threads"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| Some((t["tid"].as_i64()?, t["name"].as_str()?.to_string())))
            .collect();
        // A thread's name as the fixture set it (4,000 characters at most), or cut.
        let thread = |kind: &str| {
            let mut want = format!("t_{kind}{}", text_of(kind).replace('\u{0}', ""));
            want = want.chars().take(4000).collect();
            threads.iter().find(move |(_, n)| {
                *n == want || n.strip_suffix('…').is_some_and(|cut| want.starts_with(cut))
            })
        };
        // The names were read: every kind's thread, as JSON keeps it (raw, capped).
        for (kind, _) in KINDS {
            let (_, name) = thread(kind).unwrap_or_else(|| {
                panic!(
                    "{who}: no thread t_{kind}: {:.2000}",
                    format!("{threads:?}")
                )
            });
            if *kind == "long" {
                assert_eq!(name.chars().count(), MAX_NAME_CHARS, "{who}");
            }
        }

        // The terminal: no control, bidi or non-character reaches it; names visible, each
        // on its own line.
        assert_clean(&format!("{who}: stderr"), &stderr, &['\n']);
        let verdict = &json["verdict"];
        let mut sentences = vec![verdict["summary"].as_str().unwrap().to_string()];
        sentences.extend(
            verdict["advice"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string()),
        );
        assert!(
            sentences.iter().any(|s| s.contains(&spin)),
            "{who}: the verdict does not name spin(): {sentences:?}"
        );
        for s in &sentences {
            assert!(
                stderr.contains(&shown(s)),
                "{who}: {:?} not in\n{stderr}",
                shown(s)
            );
        }
        let spin_shown = shown(&spin);
        assert!(spin_shown.contains("spin\\x1b[31mred\\x1b[0m\\x1b]0;pwned\\x07\\x00"));
        assert!(spin_shown.contains("\\u{202e}evil\\u{2066}\\u{200f}\\u{61c}\\u{fffe}\\u{ffff}"));
        assert!(spin_shown.contains("line\\nbreak\\r\\ttab"));
        for (kind, _) in KINDS {
            let (tid, name) = thread(kind).unwrap();
            let row = stderr
                .lines()
                .find(|l| l.starts_with("  t_") && l.contains(&format!(" ({tid}) ")))
                .unwrap_or_else(|| panic!("{who}: no row for thread {tid}:\n{stderr}"));
            // The label is the name as shown, whole or cut with `…`, and then the tid.
            let label = &row[2..row.find(&format!(" ({tid}) ")).unwrap()];
            let name = shown(name);
            assert!(
                label == name
                    || label
                        .strip_suffix('…')
                        .is_some_and(|cut| cut.chars().count() >= 4 && name.starts_with(cut)),
                "{who}: {label:?} for {name:?}"
            );
        }

        // Every SVG is well-formed XML with no character XML forbids; the names read as
        // themselves, visibly escaped where they cannot.
        for format in ["svg", "flamegraph", "holders", "blame", "waiters"] {
            let svg = utf8(format);
            assert_clean(&format!("{who}: {format}"), &svg, &['\n', '\t', '\r']);
            let options = roxmltree::ParsingOptions {
                allow_dtd: true,
                ..Default::default()
            };
            let doc = roxmltree::Document::parse_with_options(&svg, options)
                .unwrap_or_else(|e| panic!("{who}: {format} is not XML: {e}"));
            let scripts = doc
                .descendants()
                .filter(|n| n.has_tag_name("script"))
                .count();
            // inferno's flame graphs have one script of their own; the report none.
            assert!(scripts <= usize::from(format != "svg"), "{who}: {format}");
            let texts: String = doc.descendants().filter_map(|n| n.text()).collect();
            for needle in [
                "spin\\x1b[31mred",
                "\\u{202e}evil",
                "\\u{fffe}\\u{ffff}",
                "</svg><script>alert(1)</script>",
            ] {
                assert!(texts.contains(needle), "{who}: {format} lost {needle:?}");
            }
        }

        // Markdown: inert, every row of a table has its header's cells.
        let markdown = utf8("markdown");
        assert_clean(&format!("{who}: markdown"), &markdown, &['\n']);
        assert!(
            !markdown.contains("<script") && !markdown.contains("</svg"),
            "{who}"
        );
        assert!(markdown.contains("\\\\x1b\\[31mred"), "{who}: {markdown}");
        assert!(markdown.contains("\\\\u{202e}evil"), "{who}");
        assert!(
            markdown.contains("<code>spin\\\\x1b\\[31mred"),
            "{who}: a code span: {markdown}"
        );
        let mut tables = 0;
        let mut header: Option<usize> = None;
        for line in markdown.lines() {
            if !line.starts_with('|') {
                header = None;
                continue;
            }
            match header {
                None => {
                    header = Some(cells(line));
                    tables += 1;
                }
                Some(n) => assert_eq!(cells(line), n, "{who}: {line}"),
            }
        }
        assert!(tables >= 3, "{who}: {tables} tables in\n{markdown}");

        // Collapsed stacks: each line is frames and a count; a hostile thread's stacks end in
        // its function, spin() and its state, whatever their names hold.
        let collapsed = utf8("collapsed");
        assert_clean(&format!("{who}: collapsed"), &collapsed, &['\n']);
        let mut stacks: Vec<Vec<&str>> = Vec::new();
        for line in collapsed.lines() {
            let (stack, count) = line.rsplit_once(' ').unwrap();
            assert!(
                count.parse::<u64>().is_ok_and(|n| n > 0),
                "{who}: {line:.300}"
            );
            let frames: Vec<&str> = stack.split(';').collect();
            let top = frames.last().unwrap();
            assert!(
                top.starts_with('[') && top.ends_with(']'),
                "{who}: {line:.300}"
            );
            stacks.push(frames);
        }
        let spin_frame = format!("{} (", folded(&spin));
        let mut missing = Vec::new();
        for (kind, _) in KINDS {
            let (_, name) = thread(kind).unwrap();
            let root = folded(name);
            assert!(root.chars().count() <= MAX_NAME_CHARS, "{who}");
            let function = folded(&format!("f_{kind}{}", text_of(kind)));
            let file = folded(&format!("/hostile/{kind}{}.py", text_of(kind)));
            let frame = format!("{function} ({file}:");
            let found = stacks.iter().any(|f| {
                f[0] == root
                    && f.len() >= 4
                    && f[f.len() - 3].starts_with(&frame)
                    && f[f.len() - 2].starts_with(&spin_frame)
            });
            if *kind == "long" {
                assert!(root.ends_with('…') && function.ends_with('…'));
                assert_eq!(function.chars().count(), MAX_NAME_CHARS);
            }
            if !found {
                missing.push(*kind);
            }
        }
        // py-spy dropped the frame of a 5,000-character function name; gilscope's reader
        // keeps every frame.
        assert!(
            missing.is_empty(),
            "{who}: no stack of {missing:?} ends in its frames:\n{:.3000}",
            collapsed
        );
        // The file whose name is not UTF-8: its frame, decoded lossily.
        let bytes = stacks.iter().any(|f| {
            f[0] == "t_bytes" && f.iter().any(|fr| fr.starts_with("f_bytes (/hostile/bad"))
        });
        assert!(bytes, "{who}: f_bytes was dropped");

        // JSON and the data formats keep the names raw; they parse whatever they hold.
        for format in ["speedscope", "perfetto"] {
            let doc: Value = serde_json::from_slice(&files[format])
                .unwrap_or_else(|e| panic!("{who}: {format} is not JSON: {e}"));
            let mut all = Vec::new();
            strings(&doc, &mut all);
            for needle in [
                "\u{1b}[31mred",
                "\u{202e}evil",
                "\u{fffe}\u{ffff}",
                "line\nbreak",
            ] {
                assert!(
                    all.iter().any(|s| s.contains(needle)),
                    "{who}: {format} lost {needle:?}"
                );
            }
        }
        let mut functions = Vec::new();
        strings(&json["top_blame"], &mut functions);
        strings(&json["top_holders"], &mut functions);
        strings(&json["top_waiters"], &mut functions);
        for f in functions.iter().filter(|f| f.starts_with("f_longL")) {
            let capped = f.chars().count() == MAX_NAME_CHARS && f.ends_with('…');
            assert!(
                capped,
                "{who}: the long name is {} characters",
                f.chars().count()
            );
        }
        let pprof = &files["pprof"];
        assert_eq!(&pprof[..2], &[0x1f, 0x8b], "{who}: pprof is not gzip");
        passed(py, "hostile names escaped in every format");
    }
}

/// `gilscope dump` prints a live process's threads and stacks to a terminal: the same names,
/// escaped, each thread's name and each frame on one line of its own.
#[test]
fn dump_prints_hostile_names_escaped() {
    let _turn = exclusive();
    let py = pythons()[0];
    let target = Running::start(py, "hostile_bytes.py", &["--seconds", "60"]);
    let pid = target.pid.to_string();
    let dir = tempfile::tempdir().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let names: Vec<(&str, String)> = KINDS
        .iter()
        .map(|(kind, _)| {
            let name = shown(&format!("t_{kind}{}", text_of(kind).replace('\u{0}', "")));
            (*kind, name.chars().take(20).collect())
        })
        .collect();
    let missing = |dump: &str| -> Vec<&str> {
        names
            .iter()
            .filter(|(_, name)| {
                !dump
                    .lines()
                    .any(|l| l.starts_with("Thread ") && l.contains(&format!(" \"{name}")))
            })
            .map(|(kind, _)| *kind)
            .collect()
    };
    // The ready file is written at the start barrier; the workers reach spin() soon after,
    // and a thread's name may be read a dump later than its stack.
    let dump = loop {
        let out = gilscope(dir.path(), &["dump", &pid]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let dump = String::from_utf8(out.stdout).expect("dump is UTF-8");
        assert_clean(&format!("{}: dump", py.label), &dump, &['\n']);
        let spinning = dump.matches("    spin\\x1b[31mred").count();
        if spinning >= 9 && missing(&dump).is_empty() {
            break dump;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}: {spinning} threads in spin(), no line for the threads {:?}:\n{dump:.4000}",
            py.label,
            missing(&dump)
        );
    };
    let frame = dump
        .lines()
        .find(|l| l.starts_with("    f_bidi"))
        .unwrap_or_else(|| panic!("{}: no f_bidi frame:\n{dump:.4000}", py.label));
    assert!(
        frame.starts_with("    f_bidi\\u{202e}evil\\u{2066}\\u{200f}\\u{61c} (bidi\\u{202e}evil"),
        "{frame}"
    );
    // The JSON keeps the names as read.
    let out = gilscope(dir.path(), &["dump", "--json", &pid]);
    let json: Value = serde_json::from_slice(&out.stdout).expect("dump --json is JSON");
    let mut all = Vec::new();
    strings(&json, &mut all);
    assert!(
        all.iter().any(|s| s.contains("\u{1b}[31mred")),
        "{}",
        py.label
    );
    passed(py, "dump escapes hostile names");
}
