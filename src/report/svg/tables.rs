//! The report's tables, the same facts as the terminal summary: the GIL metrics, each thread's
//! states and CPU time, and the processes followed.

use super::canvas::{
    clean, dim, fit, hex, ink_on, state_fill, Canvas, Font, CONTENT, MARGIN, WIDTH,
};
use super::summary::{command_line, verdict_ink, verdict_rgb};
use crate::analysis::{GilMetrics, Profile, ThreadSummary};
use crate::model::{TargetInfo, ThreadState};
use crate::report::{pct, text, Paint, Report};

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
