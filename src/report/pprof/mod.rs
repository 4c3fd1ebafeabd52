//! The pprof format: a gzipped `perftools.profiles.Profile` protocol buffer
//! (github.com/google/pprof, `proto/profile.proto`), as `go tool pprof`, Pyroscope and Grafana
//! read it.
//!
//! Every stack sample of the target and of each subprocess becomes one pprof `Sample`, its
//! frames leaf first, labelled with its process, thread and GIL state: in pprof the state is a
//! label (`-tagfocus state=waiting`), never a frame. `proto.rs` holds the messages, encoded by
//! prost; `builder.rs` stores each string, function and location once.

mod builder;
mod proto;

use std::collections::HashMap;
use std::io::Write;

use anyhow::{Context, Result};
use flate2::{Compression, GzBuilder};
use prost::Message;

use super::{Render, Report};
use crate::analysis::Profile;
use crate::model::TargetInfo;
use builder::Builder;

/// Renders the analysis as a gzipped pprof profile.
pub struct Pprof;

/// Nanoseconds between two stack samples at `hz`, or 0 when the rate is unknown.
fn period_ns(hz: f64) -> f64 {
    if hz.is_finite() && hz > 0.0 {
        1e9 / hz
    } else {
        0.0
    }
}

/// Adds one `Sample` per (thread, state, stack) of one process.
fn samples(b: &mut Builder, info: &TargetInfo, profile: &Profile) {
    let threads: HashMap<_, _> = profile
        .threads
        .iter()
        .map(|th| (th.tid, (th.label(), th.interpreter)))
        .collect();
    let process = super::program_name(info);
    let period = period_ns(info.stack_hz);
    for &((tid, state, id), count) in &profile.stack_counts {
        // pprof lists a sample's frames leaf first; gilscope's stacks are outermost first.
        let location_id = profile
            .stacks
            .get(id)
            .iter()
            .rev()
            .map(|frame| {
                let function = b.function(&frame.function, &frame.file);
                b.location(function, i64::from(frame.line))
            })
            .collect();
        let wall = (count as f64 * period).round() as i64;
        let (thread, interpreter) = match threads.get(&tid) {
            Some((label, interpreter)) => (label.clone(), Some(*interpreter)),
            None => (format!("thread {tid}"), None),
        };
        let mut label = vec![
            b.str_label("thread", &thread),
            b.num_label("tid", i64::from(tid)),
            b.str_label("state", state.key()),
        ];
        // Interpreter 0 is written as an absent `num`, protobuf's default; `go tool pprof`
        // drops a numeric label of 0 that has no unit, so there it shows no interpreter tag.
        if let Some(interpreter) = interpreter {
            label.push(b.num_label("interpreter", interpreter));
        }
        label.push(b.num_label("pid", i64::from(info.pid)));
        label.push(b.str_label("process", process));
        b.profile.sample.push(proto::Sample {
            location_id,
            value: vec![count as i64, wall],
            label,
        });
    }
}

/// The `Profile` message of a report.
fn profile(report: &Report) -> proto::Profile {
    let mut b = Builder::new();
    let sample_type = vec![
        b.value_type("samples", "count"),
        b.value_type("wall", "nanoseconds"),
    ];
    b.profile.sample_type = sample_type;
    let processes = std::iter::once((report.target, report.profile))
        .chain(report.subprocesses.iter().map(|s| (&s.info, &s.profile)));
    let mut duration_s: f64 = 0.0;
    for (info, p) in processes {
        samples(&mut b, info, p);
        duration_s = duration_s.max(p.run.duration_s);
    }
    let comment = match report.subprocesses.len() {
        0 => format!(
            "gilscope {}: pid {}, CPython {}",
            env!("CARGO_PKG_VERSION"),
            report.target.pid,
            report.target.python
        ),
        n => format!(
            "gilscope {}: pid {}, CPython {}, and {n} subprocesses",
            env!("CARGO_PKG_VERSION"),
            report.target.pid,
            report.target.python
        ),
    };
    let comment = b.string(&comment);
    let default_sample_type = b.string("wall");
    let period_type = b.value_type("wall", "nanoseconds");
    let mut p = b.finish();
    p.duration_nanos = (duration_s * 1e9).round() as i64;
    p.period_type = Some(period_type);
    p.period = period_ns(report.target.stack_hz).round() as i64;
    p.comment = vec![comment];
    p.default_sample_type = default_sample_type;
    p
}

impl Render for Pprof {
    fn render(&self, report: &Report, out: &mut dyn Write) -> Result<()> {
        let bytes = profile(report).encode_to_vec();
        // mtime 0 and no file name: the same profile gives the same file.
        let mut gz = GzBuilder::new()
            .mtime(0)
            .write(&mut *out, Compression::default());
        gz.write_all(&bytes).context("writing the pprof profile")?;
        gz.finish().context("writing the pprof profile")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
