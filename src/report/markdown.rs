//! A Markdown summary for CI job pages (`>> $GITHUB_STEP_SUMMARY`, GitLab, Buildkite
//! annotations): the verdict, the GIL metrics, the threads, the findings and the code that
//! makes others wait, as tables.
//!
//! Markdown renders inline HTML, so every string from the target is escaped
//! ([`text::markdown`], [`text::markdown_code`]): `<`, `>` and `&` become entities, Markdown's
//! own punctuation is backslash-escaped, `|` cannot end a table cell, control and bidi
//! characters and newlines are shown as escapes, and long strings are cut.

use std::io::Write;

use anyhow::Result;

use super::{pct, text, Render, Report};
use crate::analysis::{Profile, Site};
use crate::model::TargetInfo;

pub struct Markdown;

/// A name from the target: a function, file, thread or command.
fn md(s: &str) -> String {
    text::markdown(s, 120)
}

/// gilscope's own sentences, which quote names from the target.
fn md_text(s: &str) -> String {
    text::markdown(s, 2000)
}

/// A row of a sites table: inclusive and self shares, the samples behind the inclusive
/// one, the function and its hottest line.
fn site(s: &Site) -> String {
    format!(
        "| {} | {} | {} | {} | {}:{} |",
        pct(s.inclusive_share),
        pct(s.share),
        s.inclusive_samples,
        text::markdown_code(&s.function, 120),
        md(&s.path_shown),
        s.line
    )
}

impl Render for Markdown {
    fn render(&self, report: &Report, out: &mut dyn Write) -> Result<()> {
        let (t, p) = (report.target, report.profile);
        writeln!(out, "## gilscope: {}\n", p.verdict.kind.title())?;
        let command = super::command::shorten(&t.command, |c| c.chars().count() <= 300);
        writeln!(
            out,
            "pid {}, CPython {}, {:.1} s, {} GIL-state and {} stack samples{}\n",
            t.pid,
            if t.python.is_empty() {
                "not read (it exited first)".to_string()
            } else {
                md(&t.python)
            },
            p.run.duration_s,
            p.run.state_samples,
            p.run.stack_samples,
            if t.command.is_empty() {
                String::new()
            } else {
                format!(": {}", md_text(&command))
            }
        )?;
        if let Some(exit) = p.exit.filter(|e| e.failed()) {
            let sentence = crate::analysis::exit_sentence(&t.command, &exit);
            writeln!(out, "**{}.**\n", md_text(&sentence))?;
        }
        if let Some(short) = super::rate_shortfall(t, &p.run) {
            writeln!(out, "{}.\n", md_text(&super::sentence_case(&short)))?;
        }
        process(out, t, p)?;
        if !report.subprocesses.is_empty() {
            writeln!(out, "\n### Subprocesses\n")?;
            writeln!(
                out,
                "| pid | verdict | GIL held | avg waiters | cores used |"
            )?;
            writeln!(out, "|---:|---|---:|---:|---:|")?;
            for s in report.subprocesses {
                let g = s.profile.main_gil();
                writeln!(
                    out,
                    "| {} | {} | {} | {:.2} | {:.2} |",
                    s.info.pid,
                    s.profile.verdict.kind.title(),
                    g.map_or("-".into(), |g| pct(g.held)),
                    g.map_or(0.0, |g| g.avg_waiters),
                    s.profile.cores_used.unwrap_or(0.0)
                )?;
            }
            for s in report.subprocesses {
                writeln!(out, "\n#### pid {}\n", s.info.pid)?;
                process(out, &s.info, &s.profile)?;
            }
        }
        Ok(())
    }
}

/// One process's part: verdict, metrics, threads, findings, sites.
fn process(out: &mut dyn Write, _t: &TargetInfo, p: &Profile) -> Result<()> {
    let v = &p.verdict;
    writeln!(out, "**{}**\n", md_text(&v.summary))?;
    writeln!(out, "- rule: {}", md_text(&v.rule))?;
    for a in &v.advice {
        writeln!(out, "- next: {}", md_text(a))?;
    }
    if !p.gils.is_empty() {
        writeln!(
            out,
            "\n| GIL | held | avg waiters | contended | demand | ceiling | switches/s | interval |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
        for g in &p.gils {
            if !g.enabled {
                writeln!(
                    out,
                    "| interpreter {} | disabled (free-threaded) | | | | | | |",
                    g.interpreter
                )?;
                continue;
            }
            let [id, cells @ ..] = super::gil_row(g);
            writeln!(out, "| interpreter {id} | {} |", cells.join(" | "))?;
        }
        writeln!(
            out,
            "\n*held*: share of samples with the GIL taken; *avg waiters*: threads blocked on \
             it; *contended*: held with at least one waiter; *demand*: threads holding or \
             waiting; *ceiling*: demand / held, the most that removing the GIL could give."
        )?;
    }
    if let Some(c) = p.cores_used {
        writeln!(out, "\nCores used: {c:.2} of {}.", p.cpu_count)?;
    }
    if let Some(note) = super::supply_note(p) {
        writeln!(out, "\nCPU supply: {note}.")?;
    }
    if !p.threads.is_empty() {
        let states = super::state_columns(&[p]);
        write!(out, "\n| thread | tid |")?;
        for s in &states {
            write!(out, " {} |", s.key())?;
        }
        writeln!(out, " CPU s |")?;
        writeln!(out, "|---|---:|{}---:|", "---:|".repeat(states.len()))?;
        for t in &p.threads {
            write!(out, "| {} | {} |", md(&t.label()), t.tid)?;
            for &s in &states {
                write!(out, " {} |", pct(t.share(s)))?;
            }
            writeln!(out, " {:.2} |", t.cpu_s)?;
        }
        let definitions: Vec<String> = super::state_definitions(&states)
            .iter()
            .map(|d| match d.split_once(": ") {
                Some((key, meaning)) => format!("*{key}*: {meaning}"),
                None => d.clone(),
            })
            .collect();
        if !definitions.is_empty() {
            writeln!(
                out,
                "\nShares of each thread's samples; {}.",
                definitions.join("; ")
            )?;
        }
    }
    if !p.findings.is_empty() {
        writeln!(out, "\n### Findings\n")?;
        for f in &p.findings {
            writeln!(
                out,
                "- {} Next: {}",
                md_text(&f.summary),
                md_text(&f.advice)
            )?;
        }
    }
    let lists = super::site_lists(p);
    for (title, sites) in &lists {
        writeln!(out, "\n### {title}\n")?;
        match sites.first() {
            Some(first) if first.too_few() => {
                writeln!(out, "{} samples: too few to rank.", first.list_samples)?;
            }
            _ => {
                writeln!(out, "| incl. | self | samples | function | file:line |")?;
                writeln!(out, "|---:|---:|---:|---|---|")?;
                for s in sites.iter().take(5) {
                    writeln!(out, "{}", site(s))?;
                }
            }
        }
    }
    if !lists.is_empty() {
        let definitions: Vec<String> = super::site_definitions()
            .iter()
            .map(|d| match d.split_once(": ") {
                Some((key, meaning)) => format!("*{key}*: {meaning}"),
                None => d.to_string(),
            })
            .collect();
        writeln!(out, "\n{}.", definitions.join("; "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_table_has_a_column_per_state_used_and_says_what_they_mean() {
        let p = crate::report::fixtures::every_state(500);
        let mut out = Vec::new();
        process(&mut out, &TargetInfo::default(), &p).unwrap();
        let md = String::from_utf8(out).unwrap();
        assert!(
            md.contains(
                "| thread | tid | holding | waiting | handoff | native | ready | lock | io | \
                 sleep | idle | CPU s |"
            ),
            "{md}"
        );
        let db = md.lines().find(|l| l.starts_with("| db |")).unwrap();
        assert_eq!(db.matches('|').count(), 13, "{db}");
        assert!(md.contains("*lock*: blocked on a lock, condition, event, queue or join"));
        assert!(md.contains("| 500 µs |"), "{md}");
        assert!(md.contains("### Waits for a lock at"), "{md}");
    }

    #[test]
    fn a_rate_that_fell_short_is_said_under_the_run_line_and_a_met_one_is_not() {
        use crate::report::fixtures::{asking, every_state, render};
        let p = every_state(500);
        let md = |t| String::from_utf8(render(&Markdown, &t, &p, &[])).unwrap();
        let met = md(asking(250.0, 50.0));
        assert!(!met.contains("Asked for"), "{met}");
        let short = md(asking(10_000.0, 10_000.0));
        let para = short.lines().find(|l| l.starts_with("Asked for")).unwrap();
        assert!(
            para.starts_with(
                "Asked for 10000 GIL-state samples/s, took 250/s, and 10000 stack samples/s, \
                 took 50/s: the sampler could not keep up"
            ),
            "{para}"
        );
        assert!(para.ends_with("lets it."), "{para}");
        let run_line = short.find("250 GIL-state and 50 stack samples").unwrap();
        let verdict = short.find(&format!("**{}**", md_text(&p.verdict.summary)));
        assert!(run_line < short.find(para).unwrap());
        assert!(short.find(para).unwrap() < verdict.unwrap(), "{short}");
    }

    #[test]
    fn target_strings_cannot_break_out_of_a_cell_or_inject_html() {
        let hostile = "</td><script>alert(1)</script>|*x*\n`y`";
        let escaped = md(hostile);
        assert!(
            !escaped.contains('<') && !escaped.contains('>'),
            "{escaped}"
        );
        assert!(!escaped.contains('\n'));
        assert!(
            !escaped.contains(" | ") && escaped.contains("\\|"),
            "{escaped}"
        );
        assert!(
            escaped.contains("\\*x\\*") && escaped.contains("\\`y\\`"),
            "{escaped}"
        );
        let long = md(&"a".repeat(10_000));
        assert!(long.chars().count() <= 120);
        // A site's function is code that no backtick, pipe or markup can end.
        let mut p = crate::report::fixtures::every_state(500);
        p.top_holders[0].function = "a`b|c\u{202e}".into();
        let row = site(&p.top_holders[0]);
        assert!(
            row.contains("| <code>a\\`b\\|c\\\\u{202e}</code> |"),
            "{row}"
        );
        assert_eq!(row.replace("\\|", "").matches('|').count(), 6, "{row}");
    }
}
