//! The speedscope file format (<https://www.speedscope.app/file-format-schema.json>): one
//! sampled profile per thread, every stack topped by a frame naming the thread's state, so
//! that speedscope shows who waited for the GIL where.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use super::{Render, Report};
use crate::analysis::Profile;
use crate::model::{Frame, TargetInfo, ThreadState, Tid};

pub const SCHEMA_URL: &str = "https://www.speedscope.app/file-format-schema.json";

pub struct Speedscope;

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    shared: Shared<'a>,
    profiles: Vec<SampledProfile>,
    name: String,
    #[serde(rename = "activeProfileIndex")]
    active_profile_index: usize,
    exporter: String,
}

#[derive(Serialize)]
struct Shared<'a> {
    frames: Vec<FrameDoc<'a>>,
}

/// A frame as speedscope wants it; the state pseudo-frames have no file or line.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize)]
struct FrameDoc<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
}

impl<'a> FrameDoc<'a> {
    fn python(f: &'a Frame) -> Self {
        FrameDoc {
            name: &f.function,
            file: (!f.file.is_empty()).then_some(&*f.file),
            line: (f.line > 0).then_some(f.line),
        }
    }

    fn state(state: ThreadState) -> Self {
        FrameDoc {
            name: state.frame_label(),
            file: None,
            line: None,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SampledProfile {
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
    unit: &'static str,
    start_value: u64,
    end_value: u64,
    /// Frame indexes of each sample, outermost first.
    samples: Vec<Vec<usize>>,
    weights: Vec<u64>,
}

/// The shared frame list: each distinct frame once, numbered in the order first used.
#[derive(Default)]
struct Frames<'a> {
    list: Vec<FrameDoc<'a>>,
    index: HashMap<FrameDoc<'a>, usize>,
}

impl<'a> Frames<'a> {
    fn intern(&mut self, frame: FrameDoc<'a>) -> usize {
        *self.index.entry(frame).or_insert_with(|| {
            self.list.push(frame);
            self.list.len() - 1
        })
    }
}

impl Render for Speedscope {
    fn render(&self, report: &Report, out: &mut dyn Write) -> Result<()> {
        let many = !report.subprocesses.is_empty();
        let processes = std::iter::once((report.target, report.profile))
            .chain(report.subprocesses.iter().map(|s| (&s.info, &s.profile)));
        let mut frames = Frames::default();
        let mut profiles = Vec::new();
        for (info, profile) in processes {
            for tid in tids(profile) {
                let mut name = format!("{} (tid {tid})", label(profile, tid));
                if many {
                    name = format!("pid {}: {name}", info.pid);
                }
                profiles.push(thread_profile(profile, tid, name, &mut frames));
            }
        }
        let doc = Document {
            schema: SCHEMA_URL,
            shared: Shared {
                frames: frames.list,
            },
            profiles,
            name: document_name(report),
            active_profile_index: 0,
            exporter: format!("gilscope {}", env!("CARGO_PKG_VERSION")),
        };
        serde_json::to_writer(&mut *out, &doc)?;
        writeln!(out)?;
        Ok(())
    }
}

/// Every thread of a process, by tid: those seen in state ticks and those with stacks.
fn tids(profile: &Profile) -> BTreeSet<Tid> {
    profile
        .threads
        .iter()
        .map(|t| t.tid)
        .chain(profile.stack_counts.iter().map(|((tid, _, _), _)| *tid))
        .collect()
}

fn label(profile: &Profile, tid: Tid) -> String {
    profile
        .threads
        .iter()
        .find(|t| t.tid == tid)
        .map(|t| t.label())
        .unwrap_or_else(|| format!("thread {tid}"))
}

/// One thread's samples, each stack with its state frame innermost, ordered by frame names
/// so that equal prefixes sit together in speedscope's time-order view.
fn thread_profile<'a>(
    profile: &'a Profile,
    tid: Tid,
    name: String,
    frames: &mut Frames<'a>,
) -> SampledProfile {
    let mut stacks: Vec<(&'a [Frame], ThreadState, u64)> = profile
        .stack_counts
        .iter()
        .filter(|((t, _, _), _)| *t == tid)
        .map(|((_, state, id), n)| (profile.stacks.get(*id), *state, *n))
        .collect();
    let key = |f: &'a Frame| (&*f.function, &*f.file, f.line);
    stacks.sort_by(|a, b| {
        a.0.iter()
            .map(key)
            .cmp(b.0.iter().map(key))
            .then(a.1.cmp(&b.1))
    });
    let mut samples = Vec::with_capacity(stacks.len());
    let mut weights = Vec::with_capacity(stacks.len());
    for (stack, state, n) in stacks {
        let mut sample: Vec<usize> = stack
            .iter()
            .map(|f| frames.intern(FrameDoc::python(f)))
            .collect();
        sample.push(frames.intern(FrameDoc::state(state)));
        samples.push(sample);
        weights.push(n);
    }
    SampledProfile {
        kind: "sampled",
        name,
        unit: "none",
        start_value: 0,
        end_value: weights.iter().sum(),
        samples,
        weights,
    }
}

/// `gilscope: python3 app.py (pid 42)`.
fn document_name(report: &Report) -> String {
    let what = process_name(report.target);
    match report.subprocesses.len() {
        0 => format!("gilscope: {what}"),
        n => format!("gilscope: {what} and {n} subprocesses"),
    }
}

fn process_name(info: &TargetInfo) -> String {
    if info.command.is_empty() {
        format!("pid {}", info.pid)
    } else {
        format!("{} (pid {})", info.command.join(" "), info.pid)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::report::fixtures::{self, HOSTILE};
    use crate::report::Subprocess;

    fn render(target: &TargetInfo, profile: &Profile, subprocesses: &[Subprocess]) -> Value {
        let out = fixtures::render(&Speedscope, target, profile, subprocesses);
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(
            !text.contains('\u{1}'),
            "control characters are escaped: JSON's escaping"
        );
        serde_json::from_str(&text).expect("valid JSON, whatever the threads are called")
    }

    fn frame_names(doc: &Value) -> Vec<&str> {
        doc["shared"]["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect()
    }

    fn profile_named<'a>(doc: &'a Value, name: &str) -> &'a Value {
        doc["profiles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no profile {name:?}"))
    }

    /// The frame names of each sample of a profile, outermost first.
    fn samples<'a>(doc: &'a Value, profile: &Value) -> Vec<Vec<&'a str>> {
        let names = frame_names(doc);
        profile["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                s.as_array()
                    .unwrap()
                    .iter()
                    .map(|i| names[i.as_u64().unwrap() as usize])
                    .collect()
            })
            .collect()
    }

    #[test]
    fn has_the_speedscope_file_shape() {
        let (target, profile) = fixtures::target();
        let doc = render(&target, &profile, &[]);
        assert_eq!(doc["$schema"], SCHEMA_URL);
        assert_eq!(doc["activeProfileIndex"], 0);
        assert_eq!(
            doc["exporter"],
            format!("gilscope {}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(doc["name"], "gilscope: python3 app.py (pid 42)");
        let profiles = doc["profiles"].as_array().unwrap();
        assert_eq!(profiles.len(), 3, "one profile per thread");
        for p in profiles {
            assert_eq!(p["type"], "sampled");
            assert_eq!(p["unit"], "none");
            assert_eq!(p["startValue"], 0);
            let weights: Vec<u64> = p["weights"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_u64().unwrap())
                .collect();
            assert_eq!(weights.len(), p["samples"].as_array().unwrap().len());
            assert_eq!(p["endValue"], weights.iter().sum::<u64>());
        }
        assert_eq!(profiles[0]["name"], "MainThread (tid 1)");
        for f in doc["shared"]["frames"].as_array().unwrap() {
            let keys: Vec<&String> = f.as_object().unwrap().keys().collect();
            assert!(keys
                .iter()
                .all(|k| ["name", "file", "line"].contains(&k.as_str())));
        }
    }

    #[test]
    fn weights_add_up_to_each_threads_stack_samples() {
        let (target, profile) = fixtures::target();
        let sub = fixtures::subprocess();
        let doc = render(&target, &profile, std::slice::from_ref(&sub));
        let profiles = doc["profiles"].as_array().unwrap();
        assert_eq!(profiles.len(), 4, "the subprocess's thread too");
        for (pid, p, tid) in [
            (42, &profile, 1),
            (42, &profile, 2),
            (42, &profile, 3),
            (43, &sub.profile, 100),
        ] {
            let expected: u64 = p
                .stack_counts
                .iter()
                .filter(|((t, _, _), _)| *t == tid)
                .map(|(_, n)| n)
                .sum();
            let name = format!("pid {pid}: {} (tid {tid})", label(p, tid));
            let doc_profile = profile_named(&doc, &name);
            let total: u64 = doc_profile["weights"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_u64().unwrap())
                .sum();
            assert_eq!(total, expected, "{name}");
            assert_eq!(doc_profile["endValue"], expected);
        }
        // 10 stack ticks over the run: thread 3 is unseen at 3 of them.
        let main = profile_named(&doc, "pid 42: MainThread (tid 1)");
        assert_eq!(main["endValue"], 10);
        assert_eq!(profiles[2]["endValue"], 7);
    }

    #[test]
    fn frames_are_shared_and_the_state_is_innermost() {
        let (target, profile) = fixtures::target();
        let sub = fixtures::subprocess();
        let doc = render(&target, &profile, std::slice::from_ref(&sub));
        let names = frame_names(&doc);
        // Each frame once, whichever threads and processes use it.
        let frames = doc["shared"]["frames"].as_array().unwrap();
        for (i, f) in frames.iter().enumerate() {
            assert!(!frames[..i].contains(f), "{f} twice");
        }
        assert_eq!(names.iter().filter(|n| **n == "main").count(), 1);
        assert_eq!(
            names
                .iter()
                .filter(|n| **n == ThreadState::Holding.frame_label())
                .count(),
            1
        );
        let main = profile_named(&doc, "pid 42: MainThread (tid 1)");
        assert_eq!(
            samples(&doc, main),
            [
                vec!["main", "compute", "[holding GIL]"],
                vec!["main", "compute", "[waiting for GIL]"],
            ]
        );
        assert_eq!(main["weights"], serde_json::json!([5, 5]));
        let labels: Vec<&str> = ThreadState::ALL.iter().map(|s| s.frame_label()).collect();
        for p in doc["profiles"].as_array().unwrap() {
            for sample in samples(&doc, p) {
                let (last, rest) = sample.split_last().unwrap();
                assert!(labels.contains(last), "{sample:?}");
                assert!(rest.iter().all(|f| !labels.contains(f)), "{sample:?}");
            }
        }
        // A thread without frames still shows its state.
        let idle = &doc["profiles"][2];
        assert_eq!(samples(&doc, idle), [vec!["[idle]"]]);
        // State frames have no file; Python frames keep theirs.
        let state = frames
            .iter()
            .find(|f| f["name"] == "[holding GIL]")
            .unwrap();
        assert!(state.get("file").is_none());
        let compute = frames.iter().find(|f| f["name"] == "compute").unwrap();
        assert_eq!(compute["file"], "app.py");
        assert_eq!(compute["line"], 12);
    }

    #[test]
    fn hostile_names_survive() {
        let (target, profile) = fixtures::target();
        let doc = render(&target, &profile, &[]);
        let profiles = doc["profiles"].as_array().unwrap();
        assert_eq!(profiles[1]["name"], format!("{HOSTILE} (tid 2)"));
        assert_eq!(
            profiles[2]["name"],
            format!("{} (tid 3)", fixtures::long_name())
        );
        assert!(frame_names(&doc).contains(&HOSTILE));
        assert_eq!(
            samples(&doc, &profiles[1]),
            [
                vec!["main", HOSTILE, "[holding GIL]"],
                vec!["main", HOSTILE, "[waiting for GIL]"],
            ]
        );
    }

    #[test]
    fn is_deterministic() {
        let bytes = || {
            let (target, profile) = fixtures::target();
            fixtures::render(&Speedscope, &target, &profile, &[fixtures::subprocess()])
        };
        assert_eq!(bytes(), bytes());
    }

    #[test]
    fn an_empty_profile_is_valid() {
        let (target, profile) = fixtures::empty();
        let doc = render(&target, &profile, &[]);
        assert_eq!(doc["$schema"], SCHEMA_URL);
        assert!(doc["profiles"].as_array().unwrap().is_empty());
        assert!(doc["shared"]["frames"].as_array().unwrap().is_empty());
        assert_eq!(doc["name"], "gilscope: pid 7");
    }
}
