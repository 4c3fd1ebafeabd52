//! `--fail-if EXPR`: thresholds that fail a CI job when contention crosses a line.
//!
//! An expression is `NAME OP NUMBER` (`contended > 0.5`, `avg_waiters >= 2`, `held > 90%`),
//! where NAME is a key of the `gilscope/2` JSON: a GIL metric (checked on every GIL of every
//! profiled process) or a process one (`cores_used`, `failed_samples`, `late_ticks`,
//! `achieved_state_rate_hz`, `achieved_stack_rate_hz`), each
//! from one table ([`GIL_METRICS`], [`PROCESS_METRICS`]) that the JSON's tests check too.

use std::fmt;

use crate::analysis::{GilMetrics, Profile};
use crate::error::UserError;

/// A metric by its JSON key, with what it reads from `T`.
pub(crate) type Metric<T> = (&'static str, fn(&T) -> Option<f64>);

/// The GIL metrics an expression may test, each by its key in the `gilscope/2` JSON's `gils`
/// (the JSON's tests check every one is there), with what it reads.
pub(crate) const GIL_METRICS: [Metric<GilMetrics>; 7] = [
    ("held", |g| Some(g.held)),
    ("avg_waiters", |g| Some(g.avg_waiters)),
    ("contended", |g| Some(g.contended)),
    ("demand", |g| Some(g.demand)),
    ("speedup_ceiling", |g| Some(g.speedup_ceiling)),
    ("switches_per_s", |g| Some(g.switches_per_s)),
    ("switch_interval_ms", |g| Some(g.switch_interval_ms)),
];

/// The process metrics an expression may test, each by its key in the JSON's `process` or
/// `run`, with what it reads (`None`: not measured).
pub(crate) const PROCESS_METRICS: [Metric<Profile>; 5] = [
    ("cores_used", |p| p.cores_used),
    ("failed_samples", |p| Some(p.run.failed_samples as f64)),
    ("late_ticks", |p| Some(p.run.late_ticks as f64)),
    ("achieved_state_rate_hz", |p| {
        p.run.achieved().map(|a| a.state_hz)
    }),
    ("achieved_stack_rate_hz", |p| {
        p.run.achieved().map(|a| a.stack_hz)
    }),
];

/// Every name an expression may test, GIL metrics first.
fn names() -> impl Iterator<Item = &'static str> {
    GIL_METRICS
        .iter()
        .map(|&(name, _)| name)
        .chain(PROCESS_METRICS.iter().map(|&(name, _)| name))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// One parsed `--fail-if` expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    name: String,
    op: Op,
    value: f64,
    /// Written as a percentage (`50%`): the answer is in percent too.
    percent: bool,
    text: String,
}

impl Threshold {
    /// Parses `NAME OP NUMBER`; a number ending in `%` is a share (`50%` is 0.5).
    pub fn parse(expr: &str) -> Result<Threshold, UserError> {
        let bad = |why: &str| {
            UserError::Usage(format!(
                "--fail-if '{expr}': {why}; write NAME OP NUMBER (for example \
                 'contended > 0.5'), where OP is one of > >= < <= == != and NAME one of: {}",
                names().collect::<Vec<_>>().join(", ")
            ))
        };
        let ops = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            ("<", Op::Lt),
        ];
        let Some((at, text, op)) = ops
            .iter()
            .filter_map(|&(text, op)| expr.find(text).map(|at| (at, text, op)))
            .min_by_key(|&(at, text, _)| (at, std::cmp::Reverse(text.len())))
        else {
            return Err(bad("no comparison"));
        };
        let name = expr[..at].trim();
        let number = expr[at + text.len()..].trim();
        if !names().any(|n| n == name) {
            return Err(bad(&format!("unknown name '{name}'")));
        }
        let percent = number.ends_with('%');
        let value = match number.strip_suffix('%') {
            Some(pct) => pct.trim().parse::<f64>().map(|v| v / 100.0),
            None => number.parse::<f64>(),
        };
        let value = value
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| bad(&format!("'{number}' is not a number")))?;
        Ok(Threshold {
            name: name.to_string(),
            op,
            value,
            percent,
            text: format!("{name} {} {}", op.text(), number),
        })
    }
}

/// A threshold crossed, and where.
#[derive(Clone, Debug, PartialEq)]
pub struct Crossed {
    /// The expression as the user wrote it, spaced: `held > 50%`.
    pub threshold: String,
    pub name: String,
    pub op: &'static str,
    /// `pid 123, the GIL of interpreter 0`
    pub place: String,
    pub actual: f64,
    pub limit: f64,
    /// The limit was written in percent, so the answer is too.
    pub percent: bool,
}

impl fmt::Display for Crossed {
    /// `--fail-if 'held > 50%' crossed on pid 7, the GIL of interpreter 0: held 74% > 50%`,
    /// in the unit the expression was written in.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--fail-if '{}' crossed on {}: {} {} {} {}",
            self.threshold,
            self.place,
            self.name,
            figure(self.actual, self.limit, self.percent),
            self.op,
            figure(self.limit, self.limit, self.percent)
        )
    }
}

/// `x` in percent or as a number, with the fewest decimals (at least 2 for a number) that
/// keep it apart from `limit` unless it equals it: `74%`, `50.04%`, `0.74`, `2`.
fn figure(x: f64, limit: f64, percent: bool) -> String {
    let (scale, suffix, least) = if percent {
        (100.0, "%", 0)
    } else {
        (1.0, "", 2)
    };
    let (x, limit) = (x * scale, limit * scale);
    let text = |d: usize| {
        let s = format!("{x:.d$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        if s == "-0" {
            "0".to_string()
        } else {
            s
        }
    };
    let decimals = (least..=6)
        .find(|&d| x == limit || text(d).parse::<f64>().is_ok_and(|v| v != limit))
        .unwrap_or(6);
    format!("{}{suffix}", text(decimals))
}

fn gil_value(g: &GilMetrics, name: &str) -> Option<f64> {
    GIL_METRICS
        .iter()
        .find(|&&(n, _)| n == name)
        .and_then(|(_, read)| read(g))
}

fn process_value(p: &Profile, name: &str) -> Option<f64> {
    PROCESS_METRICS
        .iter()
        .find(|&&(n, _)| n == name)
        .and_then(|(_, read)| read(p))
}

/// Every threshold crossed by any of `processes` (pid, profile); GIL metrics are checked on
/// every GIL that was enabled.
pub fn check(thresholds: &[Threshold], processes: &[(i32, &Profile)]) -> Vec<Crossed> {
    let mut crossed = Vec::new();
    for t in thresholds {
        for &(pid, profile) in processes {
            let mut values: Vec<(String, f64)> = Vec::new();
            if let Some(v) = process_value(profile, &t.name) {
                values.push((format!("pid {pid}"), v));
            }
            for g in profile.gils.iter().filter(|g| g.enabled) {
                if let Some(v) = gil_value(g, &t.name) {
                    values.push((
                        format!("pid {pid}, the GIL of interpreter {}", g.interpreter),
                        v,
                    ));
                }
            }
            for (place, actual) in values {
                if t.op.holds(actual, t.value) {
                    crossed.push(Crossed {
                        threshold: t.text.clone(),
                        name: t.name.clone(),
                        op: t.op.text(),
                        place,
                        actual,
                        limit: t.value,
                        percent: t.percent,
                    });
                }
            }
        }
    }
    crossed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_operators_and_shares() {
        let t = Threshold::parse("contended > 0.5").unwrap();
        assert_eq!((t.name.as_str(), t.op, t.value), ("contended", Op::Gt, 0.5));
        let t = Threshold::parse("avg_waiters>=2").unwrap();
        assert_eq!((t.op, t.value), (Op::Ge, 2.0));
        let t = Threshold::parse(" held <= 90% ").unwrap();
        assert_eq!((t.op, t.value), (Op::Le, 0.9));
        assert_eq!(Threshold::parse("cores_used != 1").unwrap().op, Op::Ne);
    }

    #[test]
    fn a_bad_expression_lists_the_valid_names() {
        for bad in [
            "contention > 0.5",
            "held 0.5",
            "held > lots",
            "held > inf",
            "",
        ] {
            let err = Threshold::parse(bad).unwrap_err().to_string();
            assert!(err.contains("avg_waiters, contended"), "{bad}: {err}");
            assert!(err.contains("NAME OP NUMBER"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_crossing_says_where_in_the_unit_the_user_wrote() {
        let crossed = |expr: &str, actual: f64| {
            let t = Threshold::parse(expr).unwrap();
            Crossed {
                threshold: t.text.clone(),
                name: t.name.clone(),
                op: t.op.text(),
                place: "pid 7, the GIL of interpreter 0".into(),
                actual,
                limit: t.value,
                percent: t.percent,
            }
            .to_string()
        };
        assert_eq!(
            crossed("contended > 0.5", 0.96),
            "--fail-if 'contended > 0.5' crossed on pid 7, the GIL of interpreter 0: \
             contended 0.96 > 0.5"
        );
        assert_eq!(
            crossed("held > 50%", 0.7412),
            "--fail-if 'held > 50%' crossed on pid 7, the GIL of interpreter 0: held 74% > 50%"
        );
        // Never "50% > 50%": as many decimals as tell it from the limit.
        assert!(crossed("held>50%", 0.500_42).ends_with("held 50.04% > 50%"));
        assert!(crossed("held > 0.5", 0.5004).ends_with("held 0.5004 > 0.5"));
        assert!(crossed("avg_waiters >= 2", 2.0).ends_with("avg_waiters 2 >= 2"));
        assert!(crossed("late_ticks > 0", 17.0).ends_with("late_ticks 17 > 0"));
    }
}
