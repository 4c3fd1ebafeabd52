//! Runs on a busy machine.
//!
//! An accuracy bound holds for a target that got the CPUs it asked for. When other processes
//! starve it (the README's test command beside other work: a CI neighbour, two CPU hogs), a
//! bound may fail for a reason that is not gilscope's. [`on_every_python`] then says so and
//! retries that interpreter once with every fixture run twice as long; a second starved failure
//! is reported as not judged, not as a failure. A failure on a machine that left the target its
//! CPUs is always a failure.

use super::*;

/// Other processes' CPUs at or above which a run counts as starved, on this 2-CPU machine.
pub const STARVED_BY_OTHERS: f64 = 0.5;

thread_local! {
    /// How much longer than asked fixtures run (1 normally, 2 on a retry).
    static RUN_SCALE: Cell<f64> = const { Cell::new(1.0) };
    /// The most CPUs other processes used during any run since the attempt began.
    static OTHERS: Cell<Option<f64>> = const { Cell::new(None) };
}

/// `args` with the value after `--seconds` multiplied by the current run scale.
pub fn longer(args: &[&str]) -> Vec<String> {
    let scale = RUN_SCALE.with(Cell::get);
    let mut out: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    for i in 1..out.len() {
        if out[i - 1] == "--seconds" {
            if let Ok(s) = out[i].parse::<f64>() {
                out[i] = format!("{}", s * scale);
            }
        }
    }
    out
}

/// Remembers what a run's JSON says other processes used (`process.cpu_supply.others_cores`).
pub fn note_others(json: &Value) {
    if let Some(others) = json["process"]["cpu_supply"]["others_cores"].as_f64() {
        note_others_cores(others);
    }
}

/// Remembers a measured figure of the CPUs other processes used during a run.
pub fn note_others_cores(others: f64) {
    OTHERS.with(|o| o.set(Some(o.get().map_or(others, |m: f64| m.max(others)))));
}

/// Runs `check`; on a panic, `Some(others)` when a run inside it was starved by others.
fn attempt(check: &dyn Fn()) -> Result<(), Option<f64>> {
    OTHERS.with(|o| o.set(None));
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
    let others = OTHERS.with(Cell::get).filter(|&o| o >= STARVED_BY_OTHERS);
    run.map_err(|_| others)
}

/// How one interpreter's check came out.
pub enum Outcome {
    Passed,
    /// Starved by other processes twice: the bounds could not be judged.
    Unjudged,
    Failed,
}

/// Runs `check` for `who`; when it fails on a run that other processes starved, says so and
/// retries once with fixture runs twice as long.
pub fn judged(test: &str, who: &str, check: impl Fn()) -> Outcome {
    let Err(starved) = attempt(&check) else {
        return Outcome::Passed;
    };
    let Some(others) = starved else {
        return Outcome::Failed;
    };
    eprintln!(
        "{test}: {who}: other processes used {others:.2} CPUs, so the target was starved; \
         retrying once with runs twice as long"
    );
    RUN_SCALE.with(|s| s.set(2.0));
    let again = attempt(&check);
    RUN_SCALE.with(|s| s.set(1.0));
    match again {
        Ok(()) => Outcome::Passed,
        Err(Some(others)) => {
            eprintln!(
                "{test}: {who}: NOT JUDGED: starved again (other processes used {others:.2} \
                 CPUs); its bounds need the CPUs the machine did not give"
            );
            Outcome::Unjudged
        }
        Err(None) => Outcome::Failed,
    }
}

/// Runs `check` on every interpreter with a GIL, going on past one that fails so a run says
/// which pass and which fail; a check that fails only because other processes starved its
/// target is retried once ([`judged`]). Panics at the end naming the failures (each one's
/// message is printed when it happens).
pub fn on_every_python(test: &str, check: impl Fn(&'static Python)) {
    on_each(test, pythons(), check)
}

/// [`on_every_python`] over the given interpreters.
pub fn on_each(test: &str, pys: Vec<&'static Python>, check: impl Fn(&'static Python)) {
    let (mut failed, mut not_judged) = (Vec::new(), Vec::new());
    let all = pys.len();
    for py in pys {
        match judged(test, &py.label, || check(py)) {
            Outcome::Passed => {}
            Outcome::Unjudged => not_judged.push(py.label.clone()),
            Outcome::Failed => failed.push(py.label.clone()),
        }
    }
    eprintln!(
        "{test}: passed on {} of {all} interpreters{}",
        all - failed.len() - not_judged.len(),
        if not_judged.is_empty() {
            String::new()
        } else {
            format!(
                "; not judged on {} (starved by other processes): {}",
                not_judged.len(),
                not_judged.join(", ")
            )
        }
    );
    assert!(
        failed.is_empty(),
        "{test} failed on:\n  {}",
        failed.join("\n  ")
    );
}

/// [`on_each`] over the free-threaded interpreters ([`require_free_threaded`]).
pub fn on_free_threaded(test: &str, check: impl Fn(&'static Python)) {
    on_each(test, require_free_threaded(test), check)
}

/// Runs `check` on every interpreter with a GIL with no retry: for tests that starve their
/// target on purpose (CPU hogs, a CPU quota), where starvation is what they judge.
pub fn on_every_python_strict(test: &str, check: impl Fn(&'static Python)) {
    let mut failed = Vec::new();
    for py in pythons() {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(py)));
        if run.is_err() {
            failed.push(py.label.clone());
        }
    }
    let all = pythons().len();
    eprintln!(
        "{test}: passed on {} of {all} interpreters",
        all - failed.len()
    );
    assert!(
        failed.is_empty(),
        "{test} failed on:\n  {}",
        failed.join("\n  ")
    );
}
