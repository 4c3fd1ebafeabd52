//! The report's text sections that say what happened, the same facts as the terminal summary:
//! the title and run, the verdict, findings and the code that holds or waits for the GIL. The
//! tables (GILs, threads, processes) are in `tables`.

use super::canvas::{clean, count, dim, duration, fit, hex, Canvas, Font, CONTENT, MARGIN};
use crate::analysis::{Profile, Site, VerdictKind};
use crate::model::TargetInfo;
use crate::report::{pct, Report};

/// The colour a verdict is drawn in, and a darker one for text.
pub fn verdict_rgb(kind: VerdictKind) -> (u8, u8, u8) {
    match kind {
        VerdictKind::GilBound => (220, 50, 47),
        VerdictKind::PartlyGilContended => (240, 150, 40),
        VerdictKind::LockBound => (150, 90, 190),
        VerdictKind::CpuStarved => (200, 160, 20),
        VerdictKind::SingleThreadCpu => (60, 170, 80),
        VerdictKind::NativeParallel => (70, 130, 200),
        VerdictKind::IoBound => (150, 110, 70),
        VerdictKind::MostlyIdle => (120, 120, 120),
        VerdictKind::GilDisabled => (30, 160, 150),
        VerdictKind::ProgramFailed => (90, 90, 90),
    }
}

pub fn verdict_ink(kind: VerdictKind) -> String {
    let (r, g, b) = verdict_rgb(kind);
    let dark = |c: u8| (f64::from(c) * 0.7) as u8;
    hex((dark(r), dark(g), dark(b)))
}

/// The command line, for a title, the interpreter by its name only: `python3 app.py --flag`.
pub fn command_line(info: &TargetInfo) -> String {
    let mut words: Vec<&str> = info.command.iter().map(String::as_str).collect();
    if let Some(first) = words.first_mut() {
        *first = first.rsplit('/').next().unwrap_or(first);
    }
    clean(&words.join(" "))
}

/// The script a process runs, for a heading: `app.py`.
pub fn program(info: &TargetInfo) -> String {
    clean(crate::report::program_name(info))
}

/// The document's title: what a browser tab shows.
pub fn title(report: &Report) -> String {
    format!(
        "gilscope — pid {}: {}",
        report.target.pid,
        report.profile.verdict.kind.title()
    )
}

fn free_threaded(p: &Profile) -> bool {
    p.gils.iter().any(|g| g.free_threaded)
}

pub fn header(c: &mut Canvas, report: &Report) {
    let (t, p, r) = (report.target, report.profile, &report.profile.run);
    let build = if free_threaded(p) {
        " free-threaded"
    } else {
        ""
    };
    let big = Font::sans(22.0).bold();
    let head = format!("gilscope — pid {}", t.pid);
    let python = if t.python.is_empty() {
        "not read (it exited first)".to_string()
    } else {
        clean(&t.python)
    };
    let tail = format!(", CPython {python}{build}");
    let room = CONTENT - big.width(&head) - big.width(&tail) - big.width(" ()");
    // The whole command, or its middle shortened: the script's name stays in sight.
    let words: Vec<String> = t
        .command
        .iter()
        .enumerate()
        .map(|(i, w)| {
            clean(if i == 0 {
                w.rsplit('/').next().unwrap_or(w)
            } else {
                w
            })
        })
        .collect();
    let command = crate::report::command::shorten(&words, |c| big.width(c) <= room);
    let title = match fit(&command, room, big) {
        cmd if cmd.is_empty() => format!("{head}{tail}"),
        cmd => format!("{head} ({cmd}){tail}"),
    };
    c.line(MARGIN, big, "", &title);
    if let Some(exit) = p.exit.filter(|e| e.failed()) {
        // The program's own failure, said before anything else about the run.
        let sentence = crate::analysis::exit_sentence(&t.command, &exit);
        c.para(
            MARGIN,
            CONTENT,
            Font::sans(14.0).bold(),
            r##" fill="#b03020""##,
            &format!("{}.", clean(&sentence)),
        );
    }
    let achieved = r.achieved();
    let mut facts = vec![
        format!("{} run", duration(r.duration_s)),
        format!(
            "{} GIL-state samples ({:.0}/s, {:.0} Hz asked)",
            r.state_samples,
            achieved.map_or(0.0, |a| a.state_hz),
            t.state_hz
        ),
        format!(
            "{} stack samples ({:.0}/s, {:.0} Hz asked)",
            r.stack_samples,
            achieved.map_or(0.0, |a| a.stack_hz),
            t.stack_hz
        ),
    ];
    if r.state_samples > 0 {
        // The 95% half-width of a share from n samples at its widest, as the terminal says.
        let half_width = 1.96 * (0.25 / r.state_samples as f64).sqrt();
        facts.push(format!(
            "shares within ±{:.1} points (95%) from sampling alone",
            100.0 * half_width
        ));
    }
    if !report.subprocesses.is_empty() {
        facts.push(format!(
            "{} followed",
            count(
                report.subprocesses.len() as u64,
                "Python subprocess",
                "Python subprocesses"
            )
        ));
    }
    c.para(
        MARGIN,
        CONTENT,
        Font::sans(13.0),
        &dim(),
        &facts.join("  ·  "),
    );
    let mut trouble = Vec::new();
    if r.failed_samples > 0 {
        trouble.push(format!(
            "{} ({} state, {} stack): torn reads or threads ending mid-read, each cost one sample",
            count(r.failed_samples, "failed sample", "failed samples"),
            r.failed_state_samples,
            r.failed_stack_samples
        ));
    }
    if r.late_ticks > 0 {
        trouble.push(format!(
            "{} skipped: the sampler fell behind (no CPU in time, or ticks longer than their period)",
            count(r.late_ticks, "tick", "ticks")
        ));
    }
    if !trouble.is_empty() {
        c.para(
            MARGIN,
            CONTENT,
            Font::sans(12.0),
            &dim(),
            &trouble.join("  ·  "),
        );
    }
    if let Some(short) = crate::report::rate_shortfall(t, r) {
        c.para(
            MARGIN,
            CONTENT,
            Font::sans(12.0).bold(),
            r##" fill="#b06000""##,
            &format!("{}.", crate::report::sentence_case(&short)),
        );
    }
    if let Some(late) = crate::report::scarce_cpu_late_percent(r) {
        c.para(
            MARGIN,
            CONTENT,
            Font::sans(12.0).bold(),
            r##" fill="#b06000""##,
            &format!(
                "Warning: CPUs were scarce ({:.0}% of ticks came late), so holding shares may be \
                 off by a few percentage points; fewer busy threads or a lower --state-rate help.",
                late
            ),
        );
    }
}

/// The verdict in a tinted box: its kind, the summary in large type, the rule, the advice.
pub fn verdict(c: &mut Canvas, p: &Profile) {
    let v = &p.verdict;
    let (inner_x, inner_w) = (MARGIN + 20.0, CONTENT - 36.0);
    let (kind_font, big, small) = (
        Font::sans(13.0).bold(),
        Font::sans(20.0).bold(),
        Font::sans(13.0),
    );
    let summary = super::canvas::wrap(&v.summary, inner_w, big);
    let rule = super::canvas::wrap(&format!("rule: {}", v.rule), inner_w, small);
    let advice: Vec<Vec<String>> = v
        .advice
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let lead = if i == 0 { "next:" } else { "then:" };
            super::canvas::wrap(&format!("{lead} {a}"), inner_w, small)
        })
        .collect();
    let lines_h = kind_font.size * 1.45
        + big.size * 1.45 * summary.len() as f64
        + 6.0
        + small.size * 1.45 * (rule.len() + advice.iter().map(Vec::len).sum::<usize>()) as f64;
    c.y += 14.0;
    let top = c.y;
    let height = lines_h + 24.0;
    let colour = hex(verdict_rgb(v.kind));
    c.raw(&format!(
        r#"<rect x="{MARGIN:.1}" y="{top:.1}" width="{CONTENT:.1}" height="{height:.1}" fill="{colour}" fill-opacity="0.09"/>
"#
    ));
    c.rect(MARGIN, top, 6.0, height, &colour);
    c.y += 12.0;
    let ink = format!(r#" fill="{}""#, verdict_ink(v.kind));
    c.line(
        inner_x,
        kind_font,
        &ink,
        &format!("VERDICT: {}", v.kind.title().to_uppercase()),
    );
    for l in &summary {
        c.line(inner_x, big, r##" fill="#111111""##, l);
    }
    c.y += 6.0;
    for l in &rule {
        c.line(inner_x, small, &dim(), l);
    }
    for block in &advice {
        for l in block {
            c.line(inner_x, small, "", l);
        }
    }
    c.y = top + height;
}

/// Where the numbers of a site row end, right-aligned, from the column's left edge: the
/// inclusive share, the self share, the samples; the function starts after them.
const SITE_COLUMNS: [(f64, &str); 3] = [(44.0, "incl."), (92.0, "self"), (148.0, "samples")];
const SITE_FUNCTION_X: f64 = 158.0;

/// Up to `rows` sites in a column `w` wide at `x`: a header, then per site its inclusive and
/// self shares, the samples behind the inclusive one and the function, with its hottest line
/// beneath (`app.py:12`); or a line saying the list rests on too few samples to rank.
fn site_column(c: &mut Canvas, x: f64, w: f64, sites: &[Site], rows: usize) {
    let font = Font::mono(12.0);
    let end = r#" text-anchor="end""#;
    match sites.first() {
        Some(first) if first.too_few() => {
            let note = format!("{} samples: too few to rank", first.list_samples);
            c.line(
                x,
                Font::sans(12.0),
                &dim(),
                &fit(&note, w, Font::sans(12.0)),
            );
        }
        Some(_) => {
            let base = c.y + font.size;
            for (right, name) in SITE_COLUMNS {
                c.text(x + right, base, font, &format!("{end}{}", dim()), name);
            }
            c.text(x + SITE_FUNCTION_X, base, font, &dim(), "function, line");
            c.y += font.size * 1.45;
            for site in sites.iter().take(rows) {
                let base = c.y + font.size;
                let numbers = [
                    pct(site.inclusive_share),
                    pct(site.share),
                    site.inclusive_samples.to_string(),
                ];
                for ((right, _), n) in SITE_COLUMNS.iter().zip(numbers) {
                    c.text(x + right, base, font, end, &n);
                }
                let function = fit(&clean(&site.function), w - SITE_FUNCTION_X, font);
                c.text(x + SITE_FUNCTION_X, base, font, "", &function);
                c.y += font.size * 1.45;
                let place = format!("{}:{}", clean(&site.path_shown), site.line);
                let place = fit(&place, w - SITE_FUNCTION_X, font);
                c.line(x + SITE_FUNCTION_X, font, &dim(), &place);
            }
        }
        None => {}
    }
}

pub fn findings(c: &mut Canvas, p: &Profile) {
    if p.findings.is_empty() {
        return;
    }
    c.heading("Findings", "");
    let text_x = MARGIN + 18.0;
    let w = CONTENT - 18.0;
    for f in &p.findings {
        c.y += 4.0;
        c.raw(&format!(
            r##"<circle cx="{:.1}" cy="{:.1}" r="5" fill="#f09628"/>
"##,
            MARGIN + 6.0,
            c.y + 8.0
        ));
        c.para(text_x, w, Font::sans(14.0).bold(), "", &f.summary);
        c.para(
            text_x,
            w,
            Font::sans(13.0),
            "",
            &format!("next: {}", f.advice),
        );
        site_column(c, text_x, w, &f.sites, 3);
    }
}

/// Where the GIL is held, waited for, or not needed: the top sites of each, side by side.
pub fn sites(c: &mut Canvas, p: &Profile) {
    let lists = crate::report::site_lists(p);
    if lists.is_empty() {
        return;
    }
    let about = format!(
        "Functions with their hottest line beneath; holders weighted by the number of threads \
         waiting meanwhile when anyone waited. {}.",
        crate::report::site_definitions().join("; ")
    );
    c.heading("Hot code", &about);
    let col = CONTENT / lists.len() as f64;
    let top = c.y;
    let mut bottom = top;
    for (k, (title, sites)) in lists.iter().enumerate() {
        let x = MARGIN + col * k as f64;
        c.y = top;
        c.line(x, Font::sans(13.0).bold(), "", title);
        site_column(c, x, col - 16.0, sites, 5);
        bottom = bottom.max(c.y);
    }
    c.y = bottom;
}
