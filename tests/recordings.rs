//! Recordings that are damaged, cut short, or forged to demand too much, all made from a real
//! recording of a real run: damage in the middle is an error naming the line; only a cut-off
//! end is "cut short", said even with -q; and what a small file asks for is bounded, so that
//! every format stays small and quick.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

/// The lines of one real recording of `gil_bound.py`, made once per test binary.
fn real_lines() -> &'static [String] {
    static LINES: OnceLock<Vec<String>> = OnceLock::new();
    LINES.get_or_init(|| {
        let _turn = exclusive();
        let py = pythons()[0];
        let dir = tempfile::tempdir().unwrap();
        let fx = py.fixture("gil_bound.py");
        let mut args = vec![
            "record",
            "-q",
            "--recording",
            "run.gilscope",
            "-o",
            "/dev/null",
        ];
        args.push("--");
        let argv = py.argv();
        args.extend(argv.iter().map(String::as_str));
        args.extend([fx.as_str(), "--threads", "2", "--seconds", "1.5"]);
        let out = gilscope(dir.path(), &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let gz = std::fs::read(dir.path().join("run.gilscope")).unwrap();
        let mut raw = String::new();
        GzDecoder::new(&gz[..]).read_to_string(&mut raw).unwrap();
        let lines: Vec<String> = raw.lines().map(str::to_string).collect();
        assert!(lines.len() > 100, "{} lines", lines.len());
        lines
    })
}

/// `lines` written as a recording `name` in `dir`; an unfinished gzip stream unless `finish`.
fn write(dir: &Path, name: &str, lines: &[String], finish: bool) -> PathBuf {
    let path = dir.join(name);
    let mut gz = GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        Compression::default(),
    );
    for line in lines {
        gz.write_all(line.as_bytes()).unwrap();
        gz.write_all(b"\n").unwrap();
    }
    if finish {
        gz.finish().unwrap();
    } else {
        gz.flush().unwrap();
        std::mem::forget(gz);
    }
    path
}

/// `report -q -f FORMAT -o OUT FILE` in `dir`.
fn report(dir: &Path, file: &str, format: &str, out: &str) -> std::process::Output {
    gilscope(dir, &["report", "-q", "-f", format, "-o", out, file])
}

#[test]
fn damage_in_the_middle_of_a_recording_is_an_error_naming_its_line() {
    let lines = real_lines();
    let dir = tempfile::tempdir().unwrap();
    let middle = lines.len() / 2;
    // Line numbers count from 1; the damaged line is the one after `middle`.
    let n = middle + 1;
    let cases: [(&str, Vec<u8>, String); 3] = [
        ("blank", Vec::new(), format!("line {n} is blank")),
        (
            "not-utf8",
            b"{\"t\":\"sample\",\"p\":0,\"x\":\"\xff\"}".to_vec(),
            format!("line {n} is not valid UTF-8"),
        ),
        (
            "not-json",
            lines[middle].as_bytes()[..lines[middle].len() / 2].to_vec(),
            format!("line {n} is not a recording line"),
        ),
    ];
    for (name, bad, expected) in cases {
        let mut raw = Vec::new();
        for (k, line) in lines.iter().enumerate() {
            if k == middle {
                raw.extend_from_slice(&bad);
                raw.push(b'\n');
            }
            raw.extend_from_slice(line.as_bytes());
            raw.push(b'\n');
        }
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&raw).unwrap();
        let file = format!("{name}.gilscope");
        std::fs::write(dir.path().join(&file), gz.finish().unwrap()).unwrap();
        let out = report(dir.path(), &file, "json", "-");
        assert_error(&out, &expected);
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&file), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one sentence: {stderr}");
        assert!(out.stdout.is_empty(), "no report of a damaged file");
    }
    // Compressed bytes damaged in the middle: not a cut-off end either.
    let whole = write(dir.path(), "whole.gilscope", lines, true);
    let mut gz = std::fs::read(&whole).unwrap();
    let at = gz.len() / 2;
    for b in &mut gz[at..at + 16] {
        *b ^= 0x5a;
    }
    std::fs::write(dir.path().join("flipped.gilscope"), &gz).unwrap();
    let out = report(dir.path(), "flipped.gilscope", "json", "-");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line "), "names where: {stderr}");
    assert!(!stderr.contains("ends early"), "{stderr}");
}

#[test]
fn only_a_cut_off_end_is_cut_short_and_said_even_with_q() {
    let lines = real_lines();
    let dir = tempfile::tempdir().unwrap();
    // The run was killed: the gzip stream stops after a flush, in the middle of a line.
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    for line in &lines[..lines.len() - 3] {
        writeln!(gz, "{line}").unwrap();
    }
    let last = &lines[lines.len() - 3];
    gz.write_all(&last.as_bytes()[..last.len() / 2]).unwrap();
    gz.flush().unwrap();
    std::fs::write(dir.path().join("killed.gilscope"), gz.get_ref()).unwrap();
    // The file was copied while the run went on: its bytes stop anywhere.
    let whole = write(dir.path(), "whole.gilscope", lines, true);
    let gz = std::fs::read(&whole).unwrap();
    std::fs::write(dir.path().join("copied.gilscope"), &gz[..gz.len() * 2 / 3]).unwrap();
    for file in ["killed.gilscope", "copied.gilscope"] {
        let out = report(dir.path(), file, "json", "-");
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{file}: {stderr}");
        assert!(
            stderr.contains("warning") && stderr.contains("ends early"),
            "{file}: the note is not hidden by -q: {stderr}"
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(f(&json["run"]["state_samples"]) >= 50.0, "{}", json["run"]);
    }
    // The whole file is not cut short.
    let out = report(dir.path(), "whole.gilscope", "json", "-");
    assert!(out.status.success());
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
}

/// Every format of `file`, each written under `limit` bytes within a few seconds.
fn every_format_stays_small(dir: &Path, file: &str, limit: u64) {
    for format in [
        "svg",
        "flamegraph",
        "holders",
        "blame",
        "waiters",
        "json",
        "collapsed",
        "markdown",
        "speedscope",
        "perfetto",
        "pprof",
    ] {
        let started = Instant::now();
        let out = report(dir, file, format, "out");
        let took = started.elapsed();
        assert!(
            out.status.success(),
            "{file} {format}: {}",
            text(&out.stderr)
        );
        let size = std::fs::metadata(dir.join("out")).unwrap().len();
        assert!(size < limit, "{file} {format}: {size} bytes");
        assert!(took < Duration::from_secs(20), "{file} {format}: {took:?}");
    }
}

#[test]
fn megabyte_names_are_cut_and_every_format_stays_small() {
    let lines = real_lines();
    let dir = tempfile::tempdir().unwrap();
    // 20 frames named with a million characters each.
    let mut named = 0;
    let forged: Vec<String> = lines
        .iter()
        .map(|line| {
            if named < 20 && line.starts_with(r#"{"t":"frame","#) {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let old = serde_json::to_string(&v["function"]).unwrap();
                let new = ((b'a' + named as u8) as char).to_string().repeat(1_000_000);
                named += 1;
                line.replacen(
                    &format!("\"function\":{old}"),
                    &format!("\"function\":\"{new}\""),
                    1,
                )
            } else {
                line.clone()
            }
        })
        .collect();
    assert!(named >= 5, "{named} frames");
    let path = write(dir.path(), "names.gilscope", &forged, true);
    assert!(std::fs::metadata(&path).unwrap().len() < 100_000);
    // Uncapped, each format was 555 MB; capped at 1024 characters, a format that writes a
    // stack sample's names inline (perfetto) grows with the samples the run took, which load
    // changes: a few MB.
    every_format_stays_small(dir.path(), "names.gilscope", 8 << 20);
    let out = gilscope(
        dir.path(),
        &["report", "-q", "-f", "json", "-o", "-", "names.gilscope"],
    );
    assert!(
        text(&out.stderr).contains(&format!(
            "{named} names longer than 1024 characters were cut"
        )),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_sample_of_100k_threads_makes_a_small_report() {
    let lines = real_lines();
    let dir = tempfile::tempdir().unwrap();
    let at = lines
        .iter()
        .position(|l| l.contains(r#""sample":{"State""#))
        .unwrap();
    let threads: Vec<String> = (0..100_000)
        .map(|k| {
            format!(
                r#"{{"tid":{},"state":"idle","on_cpu":false,"gil":0}}"#,
                1_000_000 + k
            )
        })
        .collect();
    let mut forged = lines.to_vec();
    forged.insert(
        at + 1,
        format!(
            r#"{{"t":"sample","p":0,"sample":{{"State":{{"at":1000,"gils":[],"threads":[{}]}}}}}}"#,
            threads.join(",")
        ),
    );
    write(dir.path(), "threads.gilscope", &forged, true);
    let out = report(dir.path(), "threads.gilscope", "svg", "report.svg");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let svg = std::fs::read_to_string(dir.path().join("report.svg")).unwrap();
    assert!(svg.len() < 3 << 20, "{} bytes", svg.len());
    roxmltree::Document::parse(&svg).expect("valid SVG");
    assert!(
        svg.contains("more threads not drawn"),
        "the timeline says what it left out"
    );
    assert!(
        text(&out.stderr).contains("samples of threads beyond the first 2048 were dropped"),
        "{}",
        text(&out.stderr)
    );
    every_format_stays_small(dir.path(), "threads.gilscope", 8 << 20);
}

#[test]
fn a_timestamp_of_u64_max_is_dropped_and_said() {
    let lines = real_lines();
    let dir = tempfile::tempdir().unwrap();
    let mut forged = lines.to_vec();
    let states: Vec<usize> = (0..forged.len())
        .filter(|&k| forged[k].contains(r#""sample":{"State":{"at":"#))
        .collect();
    let k = states[states.len() / 2];
    let line = &forged[k];
    let start = line.find(r#""at":"#).unwrap() + 5;
    let end = start + line[start..].find(',').unwrap();
    forged[k] = format!("{}{}{}", &line[..start], u64::MAX, &line[end..]);
    write(dir.path(), "time.gilscope", &forged, true);
    let out = report(dir.path(), "time.gilscope", "svg", "report.svg");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let size = std::fs::metadata(dir.path().join("report.svg"))
        .unwrap()
        .len();
    assert!(size < 1 << 20, "{size} bytes");
    assert!(
        text(&out.stderr).contains("1 samples with implausible times"),
        "{}",
        text(&out.stderr)
    );
    every_format_stays_small(dir.path(), "time.gilscope", 2 << 20);
    // The run's length is the real one, not five centuries.
    let out = gilscope(
        dir.path(),
        &["report", "-q", "-f", "json", "-o", "-", "time.gilscope"],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(f(&json["run"]["duration_s"]) < 60.0, "{}", json["run"]);
}
