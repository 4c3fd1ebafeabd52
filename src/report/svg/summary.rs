//! The report's text sections, the same facts as the terminal summary: the title and run, the
//! verdict, findings, the GIL metrics, each thread's states, the processes followed and the
//! code that holds or waits for the GIL.

use super::canvas::{
    clean, count, duration, fit, hex, ink_on, state_fill, Canvas, Font, CONTENT, DIM, MARGIN, WIDTH,
};
use crate::analysis::{GilMetrics, Profile, Site, ThreadSummary, VerdictKind};
use crate::model::{TargetInfo, ThreadState};
use crate::report::{pct, text, Paint, Report};

fn dim() -> String {
    format!(r#" fill="{DIM}""#)
}

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

fn verdict_ink(kind: VerdictKind) -> String {
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
    let per_s = |n: u64| n as f64 / r.duration_s.max(1e-9);
    let mut facts = vec![
        format!("{} run", duration(r.duration_s)),
        format!(
            "{} GIL-state samples ({:.0}/s, {:.0} Hz asked)",
            r.state_samples,
            per_s(r.state_samples),
            t.state_hz
        ),
        format!(
            "{} stack samples ({:.0}/s, {:.0} Hz asked)",
            r.stack_samples,
            per_s(r.stack_samples),
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
            "{} skipped: the sampler got no CPU in time",
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

/// The GIL metrics table, one row per GIL, and what each metric means.
pub fn gils(c: &mut Canvas, p: &Profile) {
    c.heading("GIL", "");
    let font = Font::mono(13.0);
    if p.gils.is_empty() {
        c.line(
            MARGIN,
            Font::sans(13.0),
            &dim(),
            "No GIL was read during the run.",
        );
    } else {
        // Right edges of the number columns, after the GIL's name.
        let cols: [(&str, f64); 7] = [
            ("held", 205.0),
            ("avg waiters", 320.0),
            ("contended", 425.0),
            ("demand", 505.0),
            ("ceiling", 590.0),
            ("switches/s", 700.0),
            ("interval", 800.0),
        ];
        let head = Font::mono(12.0).bold();
        if p.gils.iter().any(|g| g.enabled) {
            let base = c.y + head.size;
            c.text(MARGIN, base, head, "", "GIL");
            for (name, right) in cols {
                c.text(MARGIN + right, base, head, r#" text-anchor="end""#, name);
            }
            c.y += head.size * 1.6;
        }
        for g in &p.gils {
            let base = c.y + font.size;
            c.text(
                MARGIN,
                base,
                font,
                "",
                &format!("interpreter {}", g.interpreter),
            );
            if !g.enabled {
                c.text(
                    MARGIN + 150.0,
                    base,
                    font,
                    "",
                    "disabled for the whole run (free-threaded build)",
                );
                c.y += font.size * 1.5;
                continue;
            }
            // The terminal's and the Markdown's cells, without the interpreter's id.
            let values = crate::report::gil_row(g).into_iter().skip(1);
            for ((_, right), value) in cols.iter().zip(values) {
                c.text(MARGIN + right, base, font, r#" text-anchor="end""#, &value);
            }
            let notes = gil_notes(g, p.cpu_count);
            if !notes.is_empty() {
                let x = MARGIN + 820.0;
                let line = fit(&notes, WIDTH - MARGIN - x, Font::sans(12.0));
                c.text(x, base, Font::sans(12.0), &dim(), &line);
            }
            c.y += font.size * 1.5;
        }
    }
    if let Some(cores) = p.cores_used {
        c.y += 2.0;
        c.line(
            MARGIN,
            Font::sans(13.0).bold(),
            "",
            &format!("cores used: {cores:.2} of {}", p.cpu_count),
        );
    }
    if let Some(note) = crate::report::supply_note(p) {
        c.line(MARGIN, Font::sans(13.0), &dim(), &note);
    }
    c.y += 4.0;
    let mut definitions = vec![
        "held: share of samples with the GIL taken",
        "avg waiters: mean number of threads blocked on it",
        "contended: share of samples held with ≥ 1 waiter",
        "demand: mean threads holding or waiting (wanting to run Python)",
        "ceiling: demand / held, the most removing the GIL could give",
        "switches/s: GIL handoffs between threads, counted by CPython",
        "interval: the switch interval (sys.getswitchinterval())",
        "cores used: CPU seconds of the process per wall second",
    ];
    if !p.gils.iter().any(|g| g.enabled) {
        // No metric of a GIL that stayed off means anything.
        definitions.retain(|d| d.starts_with("cores used"));
    }
    let font = Font::sans(11.5);
    let half = CONTENT / 2.0;
    for pair in definitions.chunks(2) {
        let base = c.y + font.size;
        for (k, d) in pair.iter().enumerate() {
            c.text(MARGIN + half * k as f64, base, font, &dim(), d);
        }
        c.y += font.size * 1.45;
    }
}

/// What the table's columns leave out: the ceiling on this machine, a free-threaded GIL's
/// share enabled, the interpreters that share it.
fn gil_notes(g: &GilMetrics, cpu_count: usize) -> String {
    let mut notes = Vec::new();
    if cpu_count > 0 && g.speedup_ceiling > cpu_count as f64 {
        notes.push(format!("ceiling {cpu_count}× on {cpu_count} CPUs"));
    }
    if g.free_threaded {
        notes.push(format!("enabled {} of the run", pct(g.enabled_share)));
    }
    if g.interpreters.len() > 1 {
        let ids: Vec<String> = g.interpreters.iter().map(i64::to_string).collect();
        notes.push(format!("shared by interpreters {}", ids.join(", ")));
    }
    notes.join("; ")
}

/// `worker-1 (4243)`, with the interpreter when there are subinterpreters, drawn within
/// `px`: a long name is cut, never the tid.
pub fn thread_label(t: &ThreadSummary, interpreters: bool, px: f64, font: Font) -> String {
    let mut suffix = format!(" ({})", t.tid);
    if interpreters {
        suffix.push_str(&format!(" · interp {}", t.interpreter));
    }
    let name = fit(&t.label(), px - font.width(&suffix), font);
    format!("{name}{suffix}")
}

/// Label column and bar geometry, shared with the timeline so the two line up.
pub const LABEL_W: f64 = 230.0;
const BAR_X: f64 = MARGIN + LABEL_W + 10.0;
const BAR_W: f64 = 780.0;

/// One stacked bar per thread: the share of its samples in each state, and its CPU time.
pub fn threads(c: &mut Canvas, report: &Report) {
    let p = report.profile;
    c.heading(
        "Threads",
        "Share of each thread's samples in each state, and the CPU time it used.",
    );
    if p.threads.is_empty() {
        c.line(
            MARGIN,
            Font::sans(13.0),
            &dim(),
            "No Python thread was seen.",
        );
        return;
    }
    // The legend names the colours the bars draw: the states some thread was seen in.
    let drawn: Vec<Paint> = ThreadState::ALL
        .into_iter()
        .filter(|&s| p.threads.iter().any(|t| t.share(s) > 0.0))
        .map(Paint::State)
        .collect();
    c.begin_picture("threads");
    c.legend(&drawn);
    let n = p.threads.len().min(MAX_ROWS);
    let row = (320.0 / n as f64).clamp(12.0, 22.0).floor();
    let label_font = Font::sans((row - 3.0).min(13.0));
    let cell_font = Font::sans((row - 5.0).clamp(8.0, 11.0));
    let interp = p.threads.iter().any(|t| t.interpreter != 0);
    c.text(
        BAR_X + BAR_W + 10.0,
        c.y + 10.0,
        Font::sans(11.0).bold(),
        "",
        "CPU s",
    );
    c.y += 15.0;
    c.raw("<g class=\"data\">\n");
    for t in p.threads.iter().take(MAX_ROWS) {
        let label = thread_label(t, interp, LABEL_W, label_font);
        let bar_h = row - 3.0;
        let base = c.y + bar_h / 2.0 + label_font.size * 0.35;
        c.text(MARGIN, base, label_font, "", &label);
        let mut x = BAR_X;
        for state in ThreadState::ALL {
            let share = t.share(state);
            if share <= 0.0 {
                continue;
            }
            let w = share * BAR_W;
            c.raw(&format!(
                r#"<g><title>{}: {} {}</title><rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{bar_h:.1}" fill="{}"/>"#,
                text::xml(&label),
                state.key(),
                pct(share),
                c.y,
                state_fill(state)
            ));
            let text = format!("{:.0}%", share * 100.0);
            if cell_font.width(&text) + 6.0 <= w {
                c.raw(&format!(
                    r#"<text x="{:.1}" y="{base:.1}" font-size="{}" text-anchor="middle" fill="{}">{text}</text>"#,
                    x + w / 2.0,
                    cell_font.size,
                    ink_on(state)
                ));
            }
            c.raw("</g>\n");
            x += w;
        }
        c.text(
            BAR_X + BAR_W + 10.0,
            base,
            Font::mono(label_font.size.min(12.0)),
            "",
            &format!("{:.2}", t.cpu_s),
        );
        c.y += row;
    }
    c.raw("</g>\n");
    left_out(c, p.threads.len(), ("thread", "threads"));
    c.end_picture();
}

/// Rows a table draws at most (threads, processes): the rest are one line that says how many
/// were left out, so that the report stays small however many ran.
const MAX_ROWS: usize = 64;

/// The line under a table of `all` rows (of `one`, or `many`) that drew [`MAX_ROWS`] of them.
fn left_out(c: &mut Canvas, all: usize, (one, many): (&str, &str)) {
    let hidden = all.saturating_sub(MAX_ROWS);
    if hidden == 0 {
        return;
    }
    c.text(
        MARGIN,
        c.y + 12.0,
        Font::sans(11.0),
        &dim(),
        &format!(
            "… {hidden} more {} not shown: the table shows {MAX_ROWS} at most (the JSON report \
             lists them all)",
            if hidden == 1 { one } else { many }
        ),
    );
    c.y += 16.0;
}

/// `--subprocesses`: one row per process, and what they add up to.
pub fn processes(c: &mut Canvas, report: &Report) {
    let all: Vec<(&TargetInfo, &Profile)> = std::iter::once((report.target, report.profile))
        .chain(report.subprocesses.iter().map(|s| (&s.info, &s.profile)))
        .collect();
    c.heading(
        "Processes",
        &format!(
            "The target and the {} Python subprocesses followed, each with a GIL of its own.",
            report.subprocesses.len()
        ),
    );
    let head = Font::mono(12.0).bold();
    let font = Font::mono(12.0);
    // Left edges (text) and right edges (numbers) of the columns.
    let (pid_x, cmd_x, verdict_x) = (MARGIN, MARGIN + 80.0, MARGIN + 520.0);
    let (held_r, waiters_r, cores_r) = (MARGIN + 860.0, MARGIN + 980.0, MARGIN + 1060.0);
    let base = c.y + head.size;
    let end = r#" text-anchor="end""#;
    c.text(pid_x, base, head, "", "pid");
    c.text(cmd_x, base, head, "", "command");
    c.text(verdict_x, base, head, "", "verdict");
    c.text(held_r, base, head, end, "GIL held");
    c.text(waiters_r, base, head, end, "avg waiters");
    c.text(cores_r, base, head, end, "cores");
    c.y += head.size * 1.6;
    for (info, p) in all.iter().take(MAX_ROWS) {
        let base = c.y + font.size;
        let gil = p.main_gil();
        c.raw(&format!(
            "<g><title>{}</title>\n",
            text::xml(&format!("pid {}: {}", info.pid, clean(&p.verdict.summary)))
        ));
        c.text(pid_x, base, font, "", &info.pid.to_string());
        let cmd = fit(&command_line(info), verdict_x - cmd_x - 12.0, font);
        c.text(cmd_x, base, font, "", &cmd);
        c.rect(
            verdict_x,
            c.y + 1.0,
            4.0,
            font.size + 2.0,
            &hex(verdict_rgb(p.verdict.kind)),
        );
        c.text(
            verdict_x + 10.0,
            base,
            font,
            &format!(r#" fill="{}""#, verdict_ink(p.verdict.kind)),
            p.verdict.kind.title(),
        );
        let held = gil.map_or("-".into(), |g| {
            if g.enabled {
                pct(g.held)
            } else {
                "disabled".into()
            }
        });
        c.text(held_r, base, font, end, &held);
        let waiters = gil.map_or("-".into(), |g| format!("{:.2}", g.avg_waiters));
        c.text(waiters_r, base, font, end, &waiters);
        let cores = p.cores_used.map_or("-".into(), |x| format!("{x:.2}"));
        c.text(cores_r, base, font, end, &cores);
        c.raw("</g>\n");
        c.y += font.size * 1.5;
    }
    left_out(c, all.len(), ("process", "processes"));
    let Some(combined) = report.combined() else {
        return;
    };
    c.y += 4.0;
    c.para(
        MARGIN,
        CONTENT,
        Font::sans(13.0).bold(),
        "",
        &format!(
            "All {} processes: {:.2} of {} cores used, {:.2} threads waiting for a GIL on \
             average; {}.",
            combined.processes,
            combined.cores_used,
            combined.cpu_count,
            combined.avg_waiters,
            combined.reading
        ),
    );
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
