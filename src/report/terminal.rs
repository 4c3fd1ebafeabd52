//! The plain-language summary printed at the end of every run.

use std::fmt::Write as _;

use super::{text, Report};
use crate::analysis::Site;

/// A share for a column: [`super::pct`] right-aligned in six characters, ` 87.0%`.
fn pct_column(share: f64) -> String {
    format!("{:>6}", super::pct(share))
}

/// A target string, or a sentence that quotes one, for the terminal ([`text::terminal`]): no
/// escape sequence, control or bidi character, no newline; at most `max` characters.
fn printable(s: &str, max: usize) -> String {
    text::terminal(s, max)
}

/// gilscope's sentences (verdicts, advice, findings) quote names from the target.
const SENTENCE: usize = 2000;

/// The columns of [`site_line`].
fn site_header() -> String {
    format!(
        "{:>6} {:>6} {:>8}  function  file:line",
        "incl.", "self", "samples"
    )
}

/// ` 87.0%   2.0%     1070  report  app.py:12`: the inclusive and self shares, the stack
/// samples behind the inclusive one, the function and its hottest line.
fn site_line(site: &Site) -> String {
    format!(
        "{} {} {:>8}  {}  {}:{}",
        pct_column(site.inclusive_share),
        pct_column(site.share),
        site.inclusive_samples,
        printable(&site.function, 40),
        printable(&site.path_shown, 60),
        site.line
    )
}

/// A table of sites under its title: a header and up to `rows` rows, or, when the list
/// rests on too few samples, a line that says so instead of shares.
fn site_table(sites: &[Site], rows: usize, indent: &str, s: &mut String) {
    match sites.first() {
        Some(first) if first.too_few() => {
            let _ = writeln!(s, "{indent}{} samples: too few to rank", first.list_samples);
        }
        Some(_) => {
            let _ = writeln!(s, "{indent}{}", site_header());
            for site in sites.iter().take(rows) {
                let _ = writeln!(s, "{indent}{}", site_line(site));
            }
        }
        None => {}
    }
}

/// `--subprocesses`: one line per process, and what they add up to.
fn subprocess_section(report: &Report, s: &mut String) {
    let p = report.profile;
    let _ = writeln!(
        s,
        "\nProcesses ({} Python subprocesses followed)\n  {:<8} {:<8} {:<26} {:>8} {:>12} {:>6}",
        report.subprocesses.len(),
        "pid",
        "python",
        "verdict",
        "GIL held",
        "avg waiters",
        "cores"
    );
    let all: Vec<(&crate::model::TargetInfo, &crate::analysis::Profile)> =
        std::iter::once((report.target, p))
            .chain(report.subprocesses.iter().map(|s| (&s.info, &s.profile)))
            .collect();
    for (info, profile) in &all {
        let gil = profile.main_gil();
        let _ = writeln!(
            s,
            "  {:<8} {:<8} {:<26} {:>8} {:>12.2} {:>6.2}",
            info.pid,
            printable(&info.python, 8),
            profile.verdict.kind.title(),
            gil.map_or("-".into(), |g| pct_column(g.held)),
            gil.map_or(0.0, |g| g.avg_waiters),
            profile.cores_used.unwrap_or(0.0)
        );
    }
    for (info, profile) in &all {
        let _ = writeln!(
            s,
            "  {}: {}",
            info.pid,
            printable(&profile.verdict.summary, 300)
        );
    }
    if let Some(c) = report.combined() {
        let _ = writeln!(
            s,
            "  all {} processes: {:.2} of {} cores used, {:.2} threads waiting for a GIL on \
             average; {}.",
            c.processes, c.cores_used, c.cpu_count, c.avg_waiters, c.reading
        );
    }
}

/// The summary stays within this many columns, whatever the number of state columns: the
/// thread names give way first.
const TERMINAL_WIDTH: usize = 100;
/// Each state column: a space and `100.0%`, right-aligned under a key of up to 7 letters.
const STATE_W: usize = 8;

/// One row per thread: its share of samples in each state ([`super::state_columns`]) and
/// the CPU seconds it used, then what the less obvious state names mean.
fn thread_table(p: &crate::analysis::Profile, s: &mut String) {
    let columns = super::state_columns(&[p]);
    // With subinterpreters, each thread is labelled with the one it runs in.
    let interp = p.threads.iter().any(|t| t.interpreter != 0);
    let fixed = 2 + STATE_W * columns.len() + 8 + if interp { 12 } else { 0 };
    let label_w = TERMINAL_WIDTH.saturating_sub(fixed).clamp(14, 26);
    let _ = write!(s, "\n{:<w$}", "Thread", w = label_w + 2);
    if interp {
        let _ = write!(s, "{:>12}", "interpreter");
    }
    for state in &columns {
        let _ = write!(s, "{:>STATE_W$}", state.key());
    }
    let _ = writeln!(s, "   CPU s");
    for th in &p.threads {
        // A long name is cut, never the tid.
        let tid = format!(" ({})", th.tid);
        let name = printable(&th.label(), label_w.saturating_sub(tid.len()).max(1));
        let label = format!("{name}{tid}");
        let _ = write!(s, "  {label:<label_w$}");
        if interp {
            let _ = write!(s, "{:>12}", th.interpreter);
        }
        for &state in &columns {
            let _ = write!(s, "{:>STATE_W$}", pct_column(th.share(state)));
        }
        let _ = writeln!(s, "  {:6.2}", th.cpu_s);
    }
    definitions(&super::state_definitions(&columns), s);
}

/// `name: meaning` items joined by `; ` on indented lines of at most [`TERMINAL_WIDTH`]
/// columns, an item never split.
fn definitions(items: &[String], s: &mut String) {
    let mut line = String::new();
    for item in items {
        if !line.is_empty() && 2 + line.chars().count() + 2 + item.chars().count() > TERMINAL_WIDTH
        {
            let _ = writeln!(s, "  {line};");
            line.clear();
        }
        if !line.is_empty() {
            line.push_str("; ");
        }
        line.push_str(item);
    }
    if !line.is_empty() {
        let _ = writeln!(s, "  {line}");
    }
}

/// The summary, ending with a newline.
pub fn summary(report: &Report) -> String {
    let (t, p) = (report.target, report.profile);
    let mut s = String::new();
    let r = &p.run;
    let achieved = r.achieved();
    let build = if p.gils.iter().any(|g| g.free_threaded) {
        " free-threaded"
    } else {
        ""
    };
    let python = if t.python.is_empty() {
        "not read (it exited first)".to_string()
    } else {
        printable(&t.python, 40)
    };
    let _ = writeln!(
        s,
        "gilscope: pid {}, CPython {python}{build}, {:.1} s: {} GIL-state samples ({:.0}/s, \
         {:.0} Hz asked), {} stack samples ({:.0}/s, {:.0} Hz asked)",
        t.pid,
        r.duration_s,
        r.state_samples,
        achieved.map_or(0.0, |a| a.state_hz),
        t.state_hz,
        r.stack_samples,
        achieved.map_or(0.0, |a| a.stack_hz),
        t.stack_hz
    );
    if let Some(exit) = p.exit.filter(|e| e.failed()) {
        // Said first: the program's own failure, not a crossed --fail-if, is what went wrong.
        let _ = writeln!(
            s,
            "  {}",
            printable(&crate::analysis::exit_sentence(&t.command, &exit), 200)
        );
    }
    for exec in &p.execs {
        let _ = writeln!(s, "  {}", printable(&exec.sentence(), 300));
    }
    if r.state_samples > 0 {
        // The 95% half-width of a share estimated from n independent samples, at its widest
        // (a share of one half): what sampling alone can be off by.
        let half_width = 1.96 * (0.25 / r.state_samples as f64).sqrt();
        let _ = writeln!(
            s,
            "  shares below are within ±{:.1} percentage points (95%) from sampling alone; \
             a longer run narrows it",
            100.0 * half_width
        );
    }
    if r.failed_samples > 0 {
        let _ = writeln!(
            s,
            "  {} failed samples ({} state, {} stack): torn reads or threads ending mid-read, \
             each cost one sample",
            r.failed_samples, r.failed_state_samples, r.failed_stack_samples
        );
    }
    if r.late_ticks > 0 {
        let _ = writeln!(
            s,
            "  {} ticks skipped: the sampler fell behind (it got no CPU in time, or its ticks took \
             longer than their period)",
            r.late_ticks
        );
    }
    if let Some(short) = super::rate_shortfall(t, r) {
        let _ = writeln!(s, "  {short}");
    }
    if let Some(late) = super::scarce_cpu_late_percent(r) {
        let _ = writeln!(
            s,
            "  warning: CPUs were scarce ({:.0}% of ticks came late), so holding shares may be \
             off by a few percentage points; fewer busy threads or a lower --state-rate help",
            late
        );
    }
    let v = &p.verdict;
    let _ = writeln!(s, "\n{}", printable(&v.summary, SENTENCE));
    let _ = writeln!(s, "  rule: {}", printable(&v.rule, SENTENCE));
    for (i, a) in v.advice.iter().enumerate() {
        let next = if i == 0 { "next:" } else { "     " };
        let _ = writeln!(s, "  {next} {}", printable(a, SENTENCE));
    }

    if !p.gils.is_empty() {
        let _ = writeln!(
            s,
            "\nGIL                 held  avg waiters  contended  demand  ceiling  switches/s  \
             interval"
        );
        for g in &p.gils {
            if !g.enabled {
                let _ = writeln!(
                    s,
                    "  interpreter {:<3} disabled for the whole run (free-threaded build)",
                    g.interpreter
                );
                continue;
            }
            let [id, held, waiters, contended, demand, ceiling, switches, interval] =
                super::gil_row(g);
            let _ = write!(
                s,
                "  interpreter {id:<3} {held:>6}  {waiters:>11}     {contended:>6}  {demand:>6}  \
                 {ceiling:>7}  {switches:>10}  {interval:>8}",
            );
            if g.free_threaded {
                let _ = write!(s, "  (enabled {} of the run)", super::pct(g.enabled_share));
            }
            if g.interpreters.len() > 1 {
                let ids: Vec<String> = g.interpreters.iter().map(i64::to_string).collect();
                let _ = write!(s, "  shared by interpreters {}", ids.join(", "));
            }
            let _ = writeln!(s);
        }
        let items = [
            "held: share of samples with the GIL taken",
            "avg waiters: threads blocked on it",
            "contended: held with ≥1 waiter",
            "demand: threads holding or waiting",
            "ceiling: demand/held, the most removing the GIL could give",
            "switches/s: handoffs CPython counted",
        ];
        definitions(&items.map(String::from), &mut s);
    }
    if let Some(cores) = p.cores_used {
        let _ = writeln!(s, "  cores used: {cores:.2} of {}", p.cpu_count);
    }
    if let Some(note) = super::supply_note(p) {
        let parts: Vec<String> = note.split("; ").map(String::from).collect();
        definitions(&parts, &mut s);
    }

    if !p.threads.is_empty() {
        thread_table(p, &mut s);
    }
    if !p.findings.is_empty() {
        let _ = writeln!(s, "\nFindings");
        for f in &p.findings {
            let _ = writeln!(s, "  - {}", printable(&f.summary, SENTENCE));
            let _ = writeln!(s, "    next: {}", printable(&f.advice, SENTENCE));
            site_table(&f.sites, 3, "    ", &mut s);
        }
    }
    if !report.subprocesses.is_empty() {
        subprocess_section(report, &mut s);
    }
    let lists = super::site_lists(p);
    for (title, sites) in &lists {
        // Blame, when anyone waited, counts each holder sample once per waiting thread.
        let weighted = if std::ptr::eq(*sites, &p.top_blame[..]) {
            " (weighted by waiting threads)"
        } else {
            ""
        };
        let _ = writeln!(s, "\n{title}{weighted}");
        site_table(sites, 5, "  ", &mut s);
    }
    if !lists.is_empty() {
        definitions(&super::site_definitions().map(String::from), &mut s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Accumulator;
    use crate::model::{GilReading, Sample, StateTick, TargetInfo};
    use std::time::Duration;

    fn summary_with(late_ticks: u64) -> String {
        let mut acc = Accumulator::default();
        for ms in 0..100 {
            acc.push(Sample::State(StateTick {
                at: Duration::from_millis(ms),
                gils: vec![GilReading {
                    interpreter: 0,
                    locked: false,
                    holder: None,
                    switch_number: 0,
                    interval_us: 5000,
                    enabled: None,
                }],
                threads: Vec::new(),
            }));
        }
        summary_of(&acc.finish(late_ticks, 2))
    }

    fn summary_of(profile: &crate::analysis::Profile) -> String {
        let target = TargetInfo {
            pid: 1,
            python: "3.12.1".into(),
            ..TargetInfo::default()
        };
        summary(&Report {
            target: &target,
            profile,
            subprocesses: &[],
        })
    }

    #[test]
    fn every_state_gets_a_column_within_100_columns_and_the_odd_ones_a_meaning() {
        let s = summary_of(&crate::report::fixtures::every_state(500));
        let header = s.lines().find(|l| l.starts_with("Thread")).unwrap();
        let keys: Vec<&str> = header.split_whitespace().collect();
        assert_eq!(
            keys,
            [
                "Thread", "holding", "waiting", "handoff", "native", "ready", "lock", "io",
                "sleep", "idle", "CPU", "s"
            ],
            "{s}"
        );
        let table: Vec<&str> = s
            .lines()
            .skip_while(|l| !l.starts_with("Thread"))
            .take_while(|l| !l.is_empty())
            .collect();
        assert!(table.len() > 9, "{s}");
        for line in &table {
            assert!(
                line.chars().count() <= 100,
                "{} columns: {line}",
                line.len()
            );
        }
        assert!(table.iter().any(|l| l.starts_with("  db (14) ")), "{s}");
        let db = table.iter().find(|l| l.starts_with("  db (14)")).unwrap();
        assert!(db.contains(" 100.0%"), "{db}");
        assert!(s.contains("lock: blocked on a lock, condition, event, queue or join"));
        assert!(s.contains("io: blocked on a socket, file, pipe or poll"));
        assert!(!s.contains("holding: "), "holding explains itself: {s}");
        // The switch interval below a millisecond is in microseconds.
        let gil = s
            .lines()
            .find(|l| l.starts_with("  interpreter 0"))
            .unwrap();
        assert!(gil.ends_with("  500 µs"), "{gil}");
    }

    #[test]
    fn unused_states_have_no_column_but_holding_and_waiting_stay() {
        let mut p = crate::report::fixtures::every_state(5000);
        p.threads.retain(|t| t.label() == "fetcher");
        let s = summary_of(&p);
        let header = s.lines().find(|l| l.starts_with("Thread")).unwrap();
        assert_eq!(
            header.split_whitespace().collect::<Vec<_>>(),
            ["Thread", "holding", "waiting", "io", "CPU", "s"],
            "{s}"
        );
        assert!(s.contains("  fetcher (15) "), "{s}");
    }

    #[test]
    fn scarce_cpus_are_a_warning_and_the_sampling_bound_is_stated() {
        let calm = summary_with(1);
        assert!(!calm.contains("warning"), "{calm}");
        assert!(
            calm.contains("within ±9.8 percentage points (95%)"),
            "{calm}"
        );
        let busy = summary_with(20);
        assert!(
            busy.contains("warning: CPUs were scarce (17% of ticks came late)"),
            "{busy}"
        );
    }

    #[test]
    fn a_rate_that_fell_short_is_said_with_what_was_taken_and_a_met_one_is_not() {
        use crate::report::fixtures::{asking, every_state};
        // 250 GIL-state and 50 stack samples a second for a second.
        let p = every_state(500);
        let of = |t: &TargetInfo| {
            summary(&Report {
                target: t,
                profile: &p,
                subprocesses: &[],
            })
        };
        let met = of(&asking(250.0, 50.0));
        assert!(!met.contains("asked for"), "{met}");
        assert!(
            met.contains("250 GIL-state samples (250/s, 250 Hz asked), 50 stack samples (50/s"),
            "{met}"
        );
        let short = of(&asking(10_000.0, 10_000.0));
        let line = short.lines().find(|l| l.contains("asked for")).unwrap();
        assert_eq!(
            line,
            "  asked for 10000 GIL-state samples/s, took 250/s, and 10000 stack samples/s, \
             took 50/s: the sampler could not keep up, so shares rest on fewer samples; a \
             lower --rate and --state-rate, or fewer threads in the target, lets it"
        );
        // Under the run's counts, before the verdict.
        let verdict = short.find(&p.verdict.summary).unwrap();
        assert!(short.find(line).unwrap() < verdict, "{short}");
        // Stacks alone short: the lever is --rate.
        let stacks = of(&asking(250.0, 100.0));
        assert!(
            stacks.contains(
                "  asked for 100 stack samples/s, took 50/s: the sampler could not keep up, so \
                 shares rest on fewer samples; a lower --rate, or fewer threads"
            ),
            "{stacks}"
        );
    }

    #[test]
    fn a_failed_program_is_said_under_the_header_and_a_good_exit_is_not() {
        use crate::model::ProgramExit;
        let mut acc = Accumulator::default();
        acc.push(Sample::State(StateTick::default()));
        let mut p = acc.finish(0, 2);
        let command = ["/usr/bin/python3".to_string(), "app.py".to_string()];
        let exit = |code| ProgramExit {
            code: Some(code),
            signal: None,
            after_s: 4.24,
            stopped: false,
        };
        crate::analysis::program_ended(&mut p, &command, exit(0));
        let target = TargetInfo {
            command: command.to_vec(),
            ..TargetInfo::default()
        };
        let text = |p: &crate::analysis::Profile| {
            summary(&Report {
                target: &target,
                profile: p,
                subprocesses: &[],
            })
        };
        assert!(!text(&p).contains("status"), "{}", text(&p));
        crate::analysis::program_ended(&mut p, &command, exit(1));
        let s = text(&p);
        assert_eq!(
            s.lines().nth(1),
            Some("  python3 exited with status 1 after 4.2 s"),
            "{s}"
        );
        // Exited before its interpreter was read: the header says so rather than "CPython ,".
        assert!(
            s.starts_with("gilscope: pid 0, CPython not read (it exited first), "),
            "{s}"
        );
    }
}
