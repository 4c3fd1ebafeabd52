//! Chrome's JSON trace event format, which ui.perfetto.dev and chrome://tracing open: per
//! thread, a track of its GIL states over time with its stack samples on it, and per process
//! a counter of GIL handoffs per second.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{Render, Report};
use crate::analysis::{Profile, Timeline};
use crate::model::{TargetInfo, ThreadState, Tid};

pub struct Perfetto;

/// The name of the per-process counter track.
pub const HANDOFFS: &str = "GIL handoffs/s";

/// One trace event; the fields a phase does not use are left out.
#[derive(Serialize)]
struct Event {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cat: Option<&'static str>,
    ph: &'static str,
    /// Microseconds from the target's time zero.
    ts: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<f64>,
    pid: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    tid: Option<Tid>,
    /// Scope of an instant event.
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<&'static str>,
    #[serde(skip_serializing_if = "Value::is_null")]
    args: Value,
}

impl Event {
    fn metadata(name: &str, pid: i32, tid: Option<Tid>, args: Value) -> Event {
        Event {
            name: name.into(),
            cat: None,
            ph: "M",
            ts: 0.0,
            dur: None,
            pid,
            tid,
            s: None,
            args,
        }
    }
}

/// One process on the trace's time axis.
struct Process<'a> {
    info: &'a TargetInfo,
    profile: &'a Profile,
    /// Its time zero minus the target's, in ns: subprocesses count from their own.
    offset_ns: i128,
}

impl Process<'_> {
    /// Microseconds from the target's time zero.
    fn ts(&self, at: Duration) -> f64 {
        (at.as_nanos() as i128 + self.offset_ns) as f64 / 1000.0
    }
}

impl Render for Perfetto {
    /// Streamed: each event is written as it is made, in time order (a merge of the
    /// per-thread tracks, each already in order), so memory stays that of one event per track.
    fn render(&self, report: &Report, out: &mut dyn Write) -> Result<()> {
        let zero = report.target.monotonic_zero_ns;
        let processes: Vec<Process> = std::iter::once((report.target, report.profile))
            .chain(report.subprocesses.iter().map(|s| (&s.info, &s.profile)))
            .map(|(info, profile)| Process {
                info,
                profile,
                offset_ns: if zero == 0 || info.monotonic_zero_ns == 0 {
                    0
                } else {
                    i128::from(info.monotonic_zero_ns) - i128::from(zero)
                },
            })
            .collect();
        out.write_all(b"{\"traceEvents\":[")?;
        let mut first = true;
        let mut put = |out: &mut dyn Write, e: &Event| -> Result<()> {
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            serde_json::to_writer(&mut *out, e)?;
            Ok(())
        };
        for (rank, p) in processes.iter().enumerate() {
            metadata(p, rank, &mut |e| put(out, &e))?;
        }
        let limits = Limits::of(&processes);
        // The tracks, in the order the events were once built and sorted stably in: per
        // process, its threads' state slices, its stack samples, its handoff counter.
        let mut tracks: Vec<Box<dyn Iterator<Item = Event> + '_>> = Vec::new();
        let mut lanes_left = MAX_STATE_TRACKS;
        for p in &processes {
            for lane in &p.profile.timeline.lanes {
                if lanes_left == 0 {
                    break;
                }
                lanes_left -= 1;
                tracks.push(Box::new(state_slices(p, lane)));
            }
            tracks.push(Box::new(stack_samples(p, limits.stack_stride)));
            tracks.push(Box::new(handoffs(p)));
        }
        let mut heads: std::collections::BinaryHeap<std::cmp::Reverse<Head>> = tracks
            .iter_mut()
            .enumerate()
            .filter_map(|(track, t)| t.next().map(|e| std::cmp::Reverse(Head::of(e, track))))
            .collect();
        while let Some(std::cmp::Reverse(head)) = heads.pop() {
            put(out, &head.event)?;
            if let Some(e) = tracks[head.track].next() {
                heads.push(std::cmp::Reverse(Head::of(e, head.track)));
            }
        }
        out.write_all(b"],\"displayTimeUnit\":\"ms\",\"otherData\":")?;
        serde_json::to_writer(&mut *out, &other_data(report, &limits))?;
        writeln!(out, "}}")?;
        Ok(())
    }
}

/// Threads with a track of state slices, over all processes: each has at most one slice per
/// timeline bucket, so the slices stay a few hundred thousand events at most.
const MAX_STATE_TRACKS: usize = 512;
/// Stack samples drawn as instants, over all processes; beyond, every n-th is kept.
const MAX_INSTANTS: usize = 100_000;

/// What the trace leaves out to stay within its bounds.
struct Limits {
    /// Keep one stack sample in this many.
    stack_stride: usize,
    /// Threads without a state track.
    untracked: usize,
}

impl Limits {
    fn of(processes: &[Process]) -> Limits {
        let lanes: usize = processes
            .iter()
            .map(|p| p.profile.timeline.lanes.len())
            .sum();
        let stacks: usize = processes
            .iter()
            .map(|p| p.profile.timeline.stacks.len())
            .sum();
        Limits {
            stack_stride: stacks.div_ceil(MAX_INSTANTS).max(1),
            untracked: lanes.saturating_sub(MAX_STATE_TRACKS),
        }
    }
}

/// The next event of a track, ordered as a stable sort by time, process and thread would
/// order it: ties go to the track built first.
struct Head {
    event: Event,
    track: usize,
}

impl Head {
    fn of(event: Event, track: usize) -> Head {
        Head { event, track }
    }

    fn key(&self) -> (f64, i32, Option<Tid>, usize) {
        (self.event.ts, self.event.pid, self.event.tid, self.track)
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Head {}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (a, b) = (self.key(), other.key());
        a.0.total_cmp(&b.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3))
    }
}

/// Every thread of a process, by tid: seen in state ticks or in stack samples.
fn tids(profile: &Profile) -> BTreeSet<Tid> {
    let timeline = &profile.timeline;
    profile
        .threads
        .iter()
        .map(|t| t.tid)
        .chain(timeline.lanes.iter().map(|l| l.tid))
        .chain(timeline.stacks.iter().map(|s| s.tid))
        .chain(profile.stack_counts.iter().map(|((tid, _, _), _)| *tid))
        .collect()
}

/// Names and order of the process and its threads.
fn metadata(p: &Process, rank: usize, put: &mut dyn FnMut(Event) -> Result<()>) -> Result<()> {
    let pid = p.info.pid;
    put(Event::metadata(
        "process_name",
        pid,
        None,
        json!({ "name": process_name(p.info) }),
    ))?;
    put(Event::metadata(
        "process_sort_index",
        pid,
        None,
        json!({ "sort_index": rank }),
    ))?;
    for (i, tid) in tids(p.profile).into_iter().enumerate() {
        let label = p
            .profile
            .threads
            .iter()
            .find(|t| t.tid == tid)
            .map(|t| t.label())
            .unwrap_or_else(|| format!("thread {tid}"));
        put(Event::metadata(
            "thread_name",
            pid,
            Some(tid),
            json!({ "name": label }),
        ))?;
        put(Event::metadata(
            "thread_sort_index",
            pid,
            Some(tid),
            json!({ "sort_index": i }),
        ))?;
    }
    Ok(())
}

fn process_name(info: &TargetInfo) -> String {
    match (info.command.is_empty(), info.python.is_empty()) {
        (false, _) => info.command.join(" "),
        (true, false) => format!("python {}", info.python),
        (true, true) => "python".into(),
    }
}

/// A thread's track: one complete event for each run of slices with the same dominant
/// state, in time order; slices the thread was not seen in make none.
fn state_slices<'a>(
    p: &'a Process<'a>,
    lane: &'a crate::analysis::Lane,
) -> impl Iterator<Item = Event> + 'a {
    let timeline = &p.profile.timeline;
    let mut run: Option<(ThreadState, usize)> = None;
    let mut i = 0;
    std::iter::from_fn(move || {
        while i <= timeline.buckets {
            let at = i;
            i += 1;
            let state = (at < timeline.buckets).then(|| lane.dominant(at)).flatten();
            let ended = match run {
                Some((current, from)) if state != Some(current) => {
                    Some(slice(p, timeline, lane, current, from, at))
                }
                _ => None,
            };
            if ended.is_some() || run.is_none() {
                run = state.map(|s| (s, at));
            }
            if ended.is_some() {
                return ended;
            }
        }
        None
    })
}

/// The complete event of slices `from..to` of a lane, all with `state` dominant.
fn slice(
    p: &Process,
    timeline: &Timeline,
    lane: &crate::analysis::Lane,
    state: ThreadState,
    from: usize,
    to: usize,
) -> Event {
    let mut ticks = [0u64; ThreadState::COUNT];
    for counts in &lane.counts[from..to.min(lane.counts.len())] {
        for (sum, n) in ticks.iter_mut().zip(counts) {
            *sum += u64::from(*n);
        }
    }
    let ticks: Map<String, Value> = ThreadState::ALL
        .iter()
        .filter(|s| ticks[s.index()] > 0)
        .map(|s| (s.key().to_string(), json!(ticks[s.index()])))
        .collect();
    let ts = p.ts(timeline.bucket_start(from));
    Event {
        name: state.key().into(),
        cat: Some("gil"),
        ph: "X",
        ts,
        dur: Some(p.ts(timeline.bucket_start(to)) - ts),
        pid: p.info.pid,
        tid: Some(lane.tid),
        s: None,
        args: json!({ "ticks": ticks }),
    }
}

/// An instant event on its thread for every `stride`-th timed stack sample, ordered by time
/// and then thread.
fn stack_samples<'a>(p: &'a Process<'a>, stride: usize) -> impl Iterator<Item = Event> + 'a {
    let all = &p.profile.timeline.stacks;
    let mut order: Vec<u32> = (0..all.len() as u32).step_by(stride.max(1)).collect();
    order.sort_by_key(|&k| (all[k as usize].at, all[k as usize].tid));
    order.into_iter().map(move |k| {
        let sample = &all[k as usize];
        let frames = p.profile.stacks.get(sample.stack);
        let mut args = json!({
            "stack": frames
                .iter()
                .map(|f| &*f.function)
                .collect::<Vec<_>>()
                .join(";"),
            "state": sample.state.key(),
        });
        if let Some(f) = frames.last() {
            args["location"] = json!(format!("{}:{}", f.file, f.line));
        }
        Event {
            name: match frames.last() {
                Some(f) => f.function.to_string(),
                None => sample.state.frame_label().into(),
            },
            cat: Some("stack"),
            ph: "i",
            ts: p.ts(sample.at),
            dur: None,
            pid: p.info.pid,
            tid: Some(sample.tid),
            s: Some("t"),
            args,
        }
    })
}

/// The process's counter: GIL handoffs per second in each slice.
fn handoffs<'a>(p: &'a Process<'a>) -> impl Iterator<Item = Event> + 'a {
    let timeline = &p.profile.timeline;
    let width = timeline.width.as_secs_f64();
    (0..timeline.buckets).map(move |i| {
        let n = timeline.handoffs.get(i).copied().unwrap_or(0);
        Event {
            name: HANDOFFS.into(),
            cat: Some("gil"),
            ph: "C",
            ts: p.ts(timeline.bucket_start(i)),
            dur: None,
            pid: p.info.pid,
            tid: None,
            s: None,
            args: json!({ "value": if width > 0.0 { n as f64 / width } else { 0.0 } }),
        }
    })
}

/// Facts about the run, as strings (some viewers show `otherData` as text).
fn other_data(report: &Report, limits: &Limits) -> Map<String, Value> {
    let t = report.target;
    let mut data = Map::new();
    let mut put = |k: &str, v: String| {
        data.insert(k.into(), Value::String(v));
    };
    put(
        "exporter",
        format!("gilscope {}", env!("CARGO_PKG_VERSION")),
    );
    put("pid", t.pid.to_string());
    put("python", t.python.clone());
    put("command", t.command.join(" "));
    put("state_hz", t.state_hz.to_string());
    put("stack_hz", t.stack_hz.to_string());
    put("monotonic_zero_ns", t.monotonic_zero_ns.to_string());
    put(
        "time_zero",
        "ts counts microseconds from monotonic_zero_ns (CLOCK_MONOTONIC)".into(),
    );
    if !report.subprocesses.is_empty() {
        put(
            "subprocesses",
            report
                .subprocesses
                .iter()
                .map(|s| s.info.pid.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    if limits.untracked > 0 {
        put(
            "untracked_threads",
            format!(
                "{} threads have no state track: the trace draws at most {MAX_STATE_TRACKS}",
                limits.untracked
            ),
        );
    }
    if limits.stack_stride > 1 {
        put(
            "stack_samples",
            format!(
                "one stack sample in {} is shown: the trace holds at most {MAX_INSTANTS}",
                limits.stack_stride
            ),
        );
    }
    data
}

#[cfg(test)]
mod tests;
