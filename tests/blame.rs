//! Which code gilscope names and the evidence it shows, on real CPython processes: the
//! user's hot function reached through a library (a module under `site-packages` calling
//! back, `sorted(key=…)`), and two files of the same name in different folders. Each runs on
//! every interpreter `tests/common` finds; the programs run in the fixtures directory, so
//! that their files show relative to it (chrooted ones run in `/`).

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// A fixture's file as reports show it: relative to the program's working directory.
fn shown(py: &Python, name: &str) -> String {
    match py.root {
        Some(_) => format!("gilscope-fixtures/{name}"),
        None => name.to_string(),
    }
}

/// `record` of `fixture` run in the fixtures directory, with a recording in `dir`: the
/// JSON, and the terminal summary.
fn record(py: &Python, fixture: &str, seconds: &str, dir: &Path) -> (Value, String) {
    let recording = dir.join("run.gilscope");
    let recording = recording.to_str().unwrap();
    let mut args = vec!["record", "-f", "json", "-o", "-", "--recording", recording];
    args.push("--");
    let argv = py.argv();
    args.extend(argv.iter().map(String::as_str));
    let fx = py.fixture(fixture);
    args.extend([fx.as_str(), "--seconds", seconds]);
    let out = gilscope(&fixtures_dir(), &args);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}: {fixture}: {stderr}", py.label);
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{}: JSON: {e}: {}", py.label, text(&out.stdout)));
    (json, stderr)
}

/// `report -f FORMAT` of the recording in `dir`.
fn rendered(dir: &Path, format: &str) -> String {
    let out = gilscope(
        dir,
        &["report", "-q", "-f", format, "-o", "-", "run.gilscope"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

fn sites<'a>(json: &'a Value, list: &str) -> &'a [Value] {
    json[list].as_array().map_or(&[], Vec::as_slice)
}

/// Every list's sites: shares in [0, 1], self ≤ inclusive, counts consistent with them.
fn assert_consistent(json: &Value, who: &str) {
    for list in [
        "top_holders",
        "top_waiters",
        "top_running",
        "top_blame",
        "top_lock_waits",
        "top_lock_holders",
        "top_native_callers",
    ] {
        for s in sites(json, list) {
            let (own, incl) = (f(&s["share"]), f(&s["inclusive_share"]));
            assert!(
                (0.0..=incl + 1e-9).contains(&own) && incl <= 1.0 + 1e-9,
                "{who}: {list}: {s}"
            );
            let n = |k: &str| {
                s[k].as_u64()
                    .unwrap_or_else(|| panic!("{who}: {list}.{k}: {s}"))
            };
            assert!(
                n("self_samples") <= n("inclusive_samples")
                    && n("inclusive_samples") <= n("list_samples"),
                "{who}: {list}: {s}"
            );
            assert!(n("inclusive_samples") > 0, "{who}: {list}: {s}");
        }
    }
}

/// The hot user function reached through a library is what the verdict names, with the
/// library call it goes through, and the number it states is the table's.
#[test]
fn the_verdict_names_the_users_function_reached_through_a_library() {
    let _turn = exclusive();
    for py in all_pythons() {
        let dir = tempfile::tempdir().unwrap();
        let (json, summary) = record(py, "via_library.py", "4", dir.path());
        let who = &py.label;
        let path = shown(py, "via_library.py");
        let verdict = json["verdict"]["summary"].as_str().unwrap();
        let code = &json["verdict"]["code"];
        assert_eq!(code["function"], "report", "{who}: {verdict}\n{code}");
        assert_eq!(code["origin"], "user", "{who}: {code}");
        assert_eq!(code["path_shown"], path.as_str(), "{who}: {code}");
        assert!(
            code["file"].as_str().unwrap().ends_with("/via_library.py"),
            "{who}: the JSON keeps the full path: {code}"
        );
        assert_eq!(code["via"]["package"], "minitemplate", "{who}: {code}");
        assert_eq!(code["via"]["function"], "render", "{who}: {code}");
        assert!(
            verdict.contains(&format!("report() at {path}:"))
                && verdict.contains("via minitemplate's render()"),
            "{who}: {verdict}"
        );
        // The verdict's number is the inclusive share in the table it was named from.
        let list = format!("top_{}", code["list"].as_str().unwrap());
        let row = sites(&json, &list)
            .iter()
            .find(|s| s["function"] == "report" && s["path_shown"] == path.as_str())
            .unwrap_or_else(|| panic!("{who}: report() not in {list}: {}", json[&list]));
        let share = f(&row["inclusive_share"]);
        assert!(
            verdict.contains(&format!("{:.0}%", 100.0 * share)),
            "{who}: {verdict} (table: {share})"
        );
        // Three of the four threads render: report() is on most holding stacks, though
        // the library's loop, not report() itself, is the innermost frame.
        assert!((0.45..=0.95).contains(&share), "{who}: {row}");
        assert!(f(&row["share"]) < 0.2, "{who}: {row}");
        // weight(), called by sorted() from C, is the ranker's: about a quarter.
        let holders = if py.free_threaded {
            "top_running"
        } else {
            "top_holders"
        };
        let weight = sites(&json, holders)
            .iter()
            .find(|s| s["function"] == "weight")
            .unwrap_or_else(|| panic!("{who}: weight() not in {holders}: {}", json[holders]));
        assert_eq!(weight["path_shown"], path.as_str(), "{who}: {weight}");
        assert!(
            (0.08..=0.5).contains(&f(&weight["inclusive_share"])),
            "{who}: {weight}"
        );
        assert_consistent(&json, who);
        // The terminal, the Markdown and the SVG show the counts and the same names.
        assert!(
            summary.contains("incl.   self  samples"),
            "{who}: {summary}"
        );
        let row_line = summary
            .lines()
            .find(|l| l.contains(" report  ") && l.contains(&format!("{path}:")))
            .unwrap_or_else(|| panic!("{who}: no report() row: {summary}"));
        let count = row["inclusive_samples"].as_u64().unwrap().to_string();
        assert!(row_line.contains(&count), "{who}: {row_line} ({count})");
        let markdown = rendered(dir.path(), "markdown");
        assert!(
            markdown.contains("| incl. | self | samples |"),
            "{who}: {markdown}"
        );
        assert!(
            markdown.contains("via minitemplate's render()"),
            "{who}: {markdown}"
        );
        // (The SVG report wraps the verdict into lines, so its words are looked for one
        // by one.)
        let svg = rendered(dir.path(), "svg");
        assert!(
            svg.contains("minitemplate&#39;s") && svg.contains(">samples</text>"),
            "{who}: the SVG report names the code and shows counts"
        );
        passed(py, "blame names the user's code through a library");
    }
}

/// Two files named util.py in different folders, both hot: every table tells them apart.
#[test]
fn two_files_of_the_same_name_are_told_apart() {
    let _turn = exclusive();
    for py in all_pythons() {
        let dir = tempfile::tempdir().unwrap();
        let (json, summary) = record(py, "twins.py", "3", dir.path());
        let who = &py.label;
        let list = if py.free_threaded {
            "top_running"
        } else {
            "top_holders"
        };
        for folder in ["a", "b"] {
            let path = shown(py, &format!("twins/{folder}/util.py"));
            let row = sites(&json, list)
                .iter()
                .find(|s| s["function"] == "crunch" && s["path_shown"] == path.as_str())
                .unwrap_or_else(|| panic!("{who}: no crunch() of {path}: {}", json[list]));
            assert!(
                (0.2..=0.8).contains(&f(&row["inclusive_share"])),
                "{who}: two threads of four run it: {row}"
            );
            assert!(
                summary.contains(&format!(" crunch  {path}:")),
                "{who}: {summary}"
            );
            assert!(
                rendered(dir.path(), "markdown").contains(&format!("| `crunch` | {path}:")),
                "{who}: the Markdown tells {path} apart"
            );
            // Pictures show the file as the tables do; collapsed stacks, which other tools
            // read, keep CPython's full path.
            assert!(
                rendered(dir.path(), "flamegraph").contains(&format!("crunch ({path}:")),
                "{who}: the flame graph tells {path} apart"
            );
            let full = format!("/twins/{folder}/util.py:");
            let collapsed = rendered(dir.path(), "collapsed");
            assert!(
                collapsed
                    .lines()
                    .any(|l| l.contains("crunch (/") && l.contains(&full)),
                "{who}: collapsed stacks name the full path of {full}: {collapsed}"
            );
        }
        let verdict = json["verdict"]["summary"].as_str().unwrap();
        assert!(
            verdict.contains("crunch() at ") && verdict.contains("/util.py:"),
            "{who}: {verdict}"
        );
        assert_consistent(&json, who);
        passed(py, "tables tell files of the same name apart");
    }
}
