//! The timeline: one lane per thread, each slice of the run coloured by the state the thread
//! spent most of it in (equal neighbours merged into one rectangle), a track of GIL handoffs
//! per second above each process's lanes, and a time axis. Subprocesses follow the target, each
//! under its own heading, on the same time axis. A slice without a sample of the thread is
//! drawn as what it is — the thread did not exist then (light grey), or the sampler took no
//! sample at all (hatched) — and the legend names exactly what the lanes drew.

use std::collections::BTreeSet;

use super::canvas::{fit, paint_fills, rate, Canvas, Font, CONTENT, DIM, MARGIN, WIDTH};
use super::summary::program;
use super::tables::{thread_label, LABEL_W};
use crate::analysis::{Lane, Profile};
use crate::model::{TargetInfo, ThreadState, Tid};
use crate::report::{pct, text, Paint, Report};

const LANES_X: f64 = MARGIN + LABEL_W + 10.0;
/// Room at the right for the handoff track's scale.
pub(super) const LANES_W: f64 = WIDTH - MARGIN - 70.0 - LANES_X;
const TRACK_H: f64 = 22.0;
const HANDOFF_FILL: &str = "#5a5a78";
/// Lanes drawn, over all processes: beyond, a process's other threads are one row that says
/// how many were left out, so the picture stays readable and small however many threads ran.
const MAX_LANES: usize = 64;

/// One process's part of the timeline.
struct Block<'a> {
    info: &'a TargetInfo,
    profile: &'a Profile,
    /// Seconds from the target's time zero to this process's.
    offset: f64,
}

impl Block<'_> {
    /// Start and end of its slices, in seconds on the common axis.
    fn span(&self) -> Option<(f64, f64)> {
        let tl = &self.profile.timeline;
        (tl.buckets > 0).then(|| {
            let start = self.offset + tl.start.as_secs_f64();
            (start, start + tl.width.as_secs_f64() * tl.buckets as f64)
        })
    }

    /// Its lanes in the order of the thread table, each with its label drawn in `font`.
    fn lanes(&self, font: Font) -> Vec<(String, &Lane)> {
        let p = self.profile;
        let interp = p.threads.iter().any(|t| t.interpreter != 0);
        let label = |tid: Tid| {
            p.threads
                .iter()
                .find(|t| t.tid == tid)
                .map_or(format!("thread {tid}"), |t| {
                    thread_label(t, interp, LABEL_W, font)
                })
        };
        let lanes = &p.timeline.lanes;
        let mut ordered: Vec<&Lane> = p
            .threads
            .iter()
            .filter_map(|t| lanes.iter().find(|l| l.tid == t.tid))
            .collect();
        ordered.extend(
            lanes
                .iter()
                .filter(|l| !p.threads.iter().any(|t| t.tid == l.tid)),
        );
        ordered.into_iter().map(|l| (label(l.tid), l)).collect()
    }
}

/// Maps run time (seconds on the common axis) to x.
struct Axis {
    t0: f64,
    t1: f64,
}

impl Axis {
    fn x(&self, t: f64) -> f64 {
        LANES_X + (t - self.t0) / (self.t1 - self.t0) * LANES_W
    }
}

pub fn draw(c: &mut Canvas, report: &Report) {
    let zero = report.target.monotonic_zero_ns;
    let blocks: Vec<Block> = std::iter::once((report.target, report.profile))
        .chain(report.subprocesses.iter().map(|s| (&s.info, &s.profile)))
        .map(|(info, profile)| Block {
            info,
            profile,
            // A time zero that is not known (0) is taken to be the target's.
            offset: if info.monotonic_zero_ns == 0 || zero == 0 {
                0.0
            } else {
                (i128::from(info.monotonic_zero_ns) - i128::from(zero)) as f64 / 1e9
            },
        })
        .collect();
    c.heading(
        "Timeline",
        "Each thread's lane shows the state it spent most of each slice of the run in; the \
         track above the lanes shows GIL handoffs per second. Hover a lane for its thread.",
    );
    let spans: Vec<(f64, f64)> = blocks.iter().filter_map(Block::span).collect();
    let t0 = spans.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
    let t1 = spans.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
    if spans.is_empty() || t1 <= t0 {
        c.line(
            MARGIN,
            Font::sans(13.0),
            &format!(r#" fill="{DIM}""#),
            "No GIL-state samples were taken: there is no timeline to draw.",
        );
        return;
    }
    let axis = Axis { t0, t1 };
    // How many lanes each process draws: in order, until MAX_LANES are.
    let mut left = MAX_LANES;
    let shown: Vec<usize> = blocks
        .iter()
        .map(|b| {
            let n = b.profile.timeline.lanes.len().min(left);
            left -= n;
            n
        })
        .collect();
    let drawn: BTreeSet<Paint> = blocks
        .iter()
        .zip(&shown)
        .flat_map(|(b, &n)| {
            b.lanes(Font::sans(12.0))
                .into_iter()
                .take(n)
                .flat_map(|(_, lane)| runs(b, lane, &axis).into_iter().map(|r| r.0))
                .collect::<Vec<_>>()
        })
        .collect();
    c.begin_picture("timeline");
    c.legend(&drawn.into_iter().collect::<Vec<_>>());
    let total_lanes: usize = shown.iter().sum();
    let lane_h = (360.0 / total_lanes.max(1) as f64).clamp(6.0, 18.0).floor();
    let top = c.y;
    let multi = blocks.len() > 1;
    for (block, &n) in blocks.iter().zip(&shown) {
        if multi {
            c.y += 6.0;
            let p = block.profile;
            let title = format!(
                "process {} ({}) — {}",
                block.info.pid,
                program(block.info),
                p.verdict.kind.title()
            );
            let font = Font::sans(13.0).bold();
            c.line(MARGIN, font, "", &fit(&title, CONTENT, font));
        }
        handoff_track(c, block, &axis);
        lanes(c, block, &axis, lane_h, n);
    }
    time_axis(c, &axis, top);
    c.end_picture();
}

/// What a lane draws, left to right: runs of slices of one paint, from x to x. Slices with a
/// sample of the thread are its dominant state's; without, the thread did not exist then
/// (absent) or no sample at all was taken (skipped); before and after the process's own run
/// (a subprocess that started later or ended earlier), absent.
fn runs(block: &Block, lane: &Lane, axis: &Axis) -> Vec<(Paint, f64, f64)> {
    let tl = &block.profile.timeline;
    let width_s = tl.width.as_secs_f64();
    let start = block.offset + tl.start.as_secs_f64();
    let paint = |i: usize| match lane.dominant(i) {
        Some(state) => Paint::State(state),
        None if tl.ticks.get(i).copied().unwrap_or(0) == 0 => Paint::Skipped,
        None => Paint::Absent,
    };
    let mut out = Vec::new();
    let (left, right) = (axis.x(axis.t0), axis.x(axis.t1));
    let first = axis.x(start);
    if first - left >= 0.5 {
        out.push((Paint::Absent, left, first));
    }
    let mut i = 0;
    while i < tl.buckets {
        let p = paint(i);
        let mut j = i + 1;
        while j < tl.buckets && paint(j) == p {
            j += 1;
        }
        let x0 = axis.x(start + width_s * i as f64);
        let x1 = axis.x(start + width_s * j as f64).min(right);
        out.push((p, x0, x1.max(x0 + 0.5)));
        i = j;
    }
    let last = axis.x(start + width_s * tl.buckets as f64);
    if right - last >= 0.5 {
        out.push((Paint::Absent, last, right));
    }
    out
}

/// GIL handoffs per second in each slice, as bars scaled to the busiest slice.
fn handoff_track(c: &mut Canvas, block: &Block, axis: &Axis) {
    let tl = &block.profile.timeline;
    let width_s = tl.width.as_secs_f64().max(1e-9);
    let start = block.offset + tl.start.as_secs_f64();
    let max = tl.handoffs.iter().copied().max().unwrap_or(0);
    let small = Font::sans(10.5);
    let dim = format!(r#" fill="{DIM}""#);
    c.text(
        MARGIN,
        c.y + TRACK_H / 2.0 + 4.0,
        small,
        &dim,
        "GIL handoffs/s",
    );
    c.rect(LANES_X, c.y + TRACK_H - 0.5, LANES_W, 0.5, "#bbbbbb");
    if max == 0 {
        c.text(
            LANES_X + 4.0,
            c.y + TRACK_H - 5.0,
            small,
            &dim,
            "no GIL handoffs",
        );
        c.y += TRACK_H + 3.0;
        return;
    }
    let max_rate = max as f64 / width_s;
    c.raw(&format!(
        "<g fill=\"{HANDOFF_FILL}\"><title>GIL handoffs per second in each slice of {:.0} ms; \
         the busiest slice had {}/s</title>\n",
        width_s * 1000.0,
        rate(max_rate)
    ));
    // Bars of equal height in a row are one rectangle; all of them one path.
    let height =
        |i: usize| (tl.handoffs[i] as f64 / max as f64 * (TRACK_H - 2.0) * 2.0).round() / 2.0;
    let mut d = String::new();
    let mut i = 0;
    while i < tl.handoffs.len() {
        let h = height(i);
        let mut j = i + 1;
        while j < tl.handoffs.len() && height(j) == h {
            j += 1;
        }
        if h > 0.0 {
            let x0 = axis.x(start + width_s * i as f64);
            let x1 = axis.x(start + width_s * j as f64);
            box_path(&mut d, x0, c.y + TRACK_H - h, (x1 - x0).max(0.5), h);
        }
        i = j;
    }
    c.raw(&format!("<path d=\"{d}\"/>\n"));
    c.raw("</g>\n");
    c.text(
        LANES_X + LANES_W + 4.0,
        c.y + 9.0,
        small,
        &dim,
        &format!("{}/s", rate(max_rate)),
    );
    c.y += TRACK_H + 3.0;
}

/// One lane per thread, the first `shown` of them: runs of slices with the same dominant state
/// as one rectangle each; then one row that says how many threads were left out.
fn lanes(c: &mut Canvas, block: &Block, axis: &Axis, lane_h: f64, shown: usize) {
    let gap = if lane_h >= 8.0 { 1.0 } else { 0.0 };
    // Labels on every lane when they can be read, else on every few.
    let stride = (9.0 / lane_h).ceil().max(1.0) as usize;
    let font = Font::sans((lane_h * stride as f64 - 2.0).min(12.0));
    c.raw("<g class=\"data\">\n");
    let all = block.lanes(font);
    for (k, (label, lane)) in all.iter().take(shown).enumerate() {
        let y = c.y;
        if k % stride == 0 {
            c.text(
                MARGIN,
                y + (lane_h - gap) / 2.0 + font.size * 0.35,
                font,
                "",
                label,
            );
        }
        let seen: u32 = lane.counts.iter().flatten().sum();
        let mut totals = [0u32; ThreadState::COUNT];
        for counts in &lane.counts {
            for (t, n) in totals.iter_mut().zip(counts) {
                *t += n;
            }
        }
        let shares: Vec<String> = ThreadState::ALL
            .iter()
            .filter(|s| totals[s.index()] > 0)
            .map(|s| {
                format!(
                    "{} {}",
                    s.key(),
                    pct(f64::from(totals[s.index()]) / f64::from(seen.max(1)))
                )
            })
            .collect();
        c.raw(&format!(
            "<g class=\"lane\"><title>{}: {}</title>\n",
            text::xml(label),
            shares.join(", ")
        ));
        // One path per paint, a rectangle in it for each run of slices in that paint.
        let mut paths: std::collections::BTreeMap<Paint, String> = Default::default();
        for (paint, x0, x1) in runs(block, lane, axis) {
            box_path(
                paths.entry(paint).or_default(),
                x0,
                y,
                x1 - x0,
                lane_h - gap,
            );
        }
        for (paint, d) in &paths {
            c.raw(&format!(
                "<path fill=\"{}\" d=\"{d}\"/>\n",
                paint_fills(*paint)[0]
            ));
        }
        c.raw("</g>\n");
        c.y += lane_h;
    }
    c.raw("</g>\n");
    let hidden = all.len() - shown.min(all.len());
    if hidden > 0 {
        let font = Font::sans(11.0);
        c.text(
            MARGIN,
            c.y + 12.0,
            font,
            &format!(r#" fill="{DIM}""#),
            &format!(
                "… {hidden} more thread{} not drawn: the timeline shows {MAX_LANES} lanes at \
                 most (the JSON report lists every thread)",
                if hidden == 1 { "" } else { "s" }
            ),
        );
        c.y += 16.0;
    }
}

/// Appends a rectangle to a path's data: `M x y h w v h h -w z`.
fn box_path(d: &mut String, x: f64, y: f64, w: f64, h: f64) {
    use std::fmt::Write as _;
    let _ = write!(d, "M{x:.1} {y:.1}h{w:.1}v{h:.1}h-{w:.1}z");
}

/// A step between ticks that gives at most about eight of them, for any span: past the
/// steps a clock reads (seconds to days), a day times a power of ten.
fn tick_step(span: f64) -> f64 {
    const STEPS: [f64; 26] = [
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0,
        60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 43200.0, 86400.0,
    ];
    if let Some(step) = STEPS.into_iter().find(|&s| span / s <= 8.0) {
        return step;
    }
    let mut step = 86400.0;
    while span / step > 8.0 && step.is_finite() {
        step *= 10.0;
    }
    step
}

/// `1.5 s`, `45 s`, `5 min`, `2 h`, `3 d`.
fn tick_label(t: f64, step: f64) -> String {
    let unit = |value: f64, name: &str| {
        if (value - value.round()).abs() < 1e-9 {
            format!("{value:.0} {name}")
        } else {
            format!("{value:.1} {name}")
        }
    };
    if step >= 86400.0 {
        unit(t / 86400.0, "d")
    } else if step >= 7200.0 {
        unit(t / 3600.0, "h")
    } else if step >= 60.0 {
        unit(t / 60.0, "min")
    } else {
        let decimals = if step >= 1.0 {
            0
        } else if step >= 0.1 {
            1
        } else if step >= 0.01 {
            2
        } else {
            3
        };
        format!("{t:.decimals$} s")
    }
}

/// Ticks under the lanes, with light lines up through them.
fn time_axis(c: &mut Canvas, axis: &Axis, top: f64) {
    let span = axis.t1 - axis.t0;
    let step = tick_step(span);
    let bottom = c.y;
    c.rect(LANES_X, bottom, LANES_W, 1.0, "#888888");
    let font = Font::sans(11.0);
    let mut k = 0u32;
    loop {
        let t = step * f64::from(k);
        if t > span + 1e-9 {
            break;
        }
        let x = LANES_X + t / span * LANES_W;
        c.raw(&format!(
            "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"0.6\" height=\"{:.1}\" fill=\"#000000\" \
             fill-opacity=\"0.12\"/>\n",
            x - 0.3,
            bottom - top
        ));
        c.rect(x - 0.5, bottom, 1.0, 5.0, "#888888");
        c.text(
            x,
            bottom + 17.0,
            font,
            r#" text-anchor="middle""#,
            &tick_label(t, step),
        );
        k += 1;
    }
    c.y = bottom + 22.0;
    c.text(
        LANES_X + LANES_W,
        c.y + 10.0,
        Font::sans(11.0),
        &format!(r#" fill="{DIM}" text-anchor="end""#),
        "time since the first sample",
    );
    c.y += 14.0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_few_and_in_a_readable_unit() {
        assert_eq!(tick_step(3.0), 0.5);
        assert_eq!(tick_label(1.5, 0.5), "1.5 s");
        assert_eq!(tick_step(3600.0), 600.0);
        assert_eq!(tick_label(600.0, 600.0), "10 min");
        assert_eq!(tick_label(90.0, 30.0), "90 s");
        assert!(3600.0 / tick_step(3600.0) <= 8.0);
        assert_eq!(tick_label(7200.0, 7200.0), "2 h");
        // Any span gives a few ticks, even five centuries.
        for span in [1e5, 1e7, 1e9, 1.8e10, 1e300] {
            let step = tick_step(span);
            assert!(span / step <= 8.0, "{span}: {step}");
        }
    }
}
