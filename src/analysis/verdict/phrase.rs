//! How the verdicts' sentences read code and numbers: `compute() at app.py:22`, `87%`, the
//! holder clause of the GIL verdicts.

use super::super::{Blamed, GilMetrics, Site};
use super::evidence::Evidence;
use crate::analysis::sites::MIN_SAMPLES;

/// `compute() at app.py:22`: a function at its hottest line, its file as reports show it
/// (the JSON keeps the whole path).
pub(super) fn at(s: &Site) -> String {
    format!("{}() at {}:{}", s.function, s.path_shown, s.line)
}

/// `report() at app.py:12, via jinja2's render()`: the named code and the library call it
/// goes through on its hottest path.
pub(super) fn named(b: &Blamed) -> String {
    match &b.via {
        Some(via) => format!("{}, via {}'s {}()", at(&b.site), via.package, via.function),
        None => at(&b.site),
    }
}

/// [`named`] as the subject of a clause: with a comma after the `via` part.
pub(super) fn subject(b: &Blamed) -> String {
    match b.via {
        Some(_) => format!("{},", named(b)),
        None => named(b),
    }
}

/// `; report() at app.py:12, via jinja2's render(), holds it 87% of the time others wait
/// for it`: the holder clause of the GIL verdicts, its share the one in the table of that
/// list (blame when anyone waited, else holders); or why no code is named.
pub(super) fn holder_clause(e: &Evidence) -> String {
    match e.top_holder {
        Some(b) => {
            let of = if b.list == "blame" {
                "of the time others wait for it"
            } else {
                "of the time it is held"
            };
            format!(
                "; {} holds it {} {of}",
                subject(b),
                pct(b.site.inclusive_share)
            )
        }
        None if e.stack_samples < MIN_SAMPLES => format!(
            "; {} stack samples: too few to name the code",
            e.stack_samples
        ),
        None => String::new(),
    }
}

pub(super) fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// "not the GIL (held 12%)", or on a free-threaded build without its GIL "no GIL".
pub(super) fn gil_not_the_limit(g: &GilMetrics) -> String {
    if g.ran_without_gil() {
        "not a GIL (a free-threaded CPython, its GIL disabled)".into()
    } else {
        format!("not the GIL (held {})", pct(g.held))
    }
}
