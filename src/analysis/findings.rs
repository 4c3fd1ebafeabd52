//! Findings: specific things worth a user's attention beside the verdict, each with the
//! stacks that earned it.

use serde::Serialize;

use super::verdict::GIL_DISABLED_BELOW;
use super::{GilMetrics, Site, ThreadSummary};

/// A holder off CPU while others wait for the GIL, for at least this share of the run…
const STALL_SHARE: f64 = 0.01;
/// …and at least this many samples, so that a stray page fault is not a finding. (Off CPU
/// with nobody waiting, as while importing at start-up, costs no other thread anything.)
const STALL_MIN_TICKS: u64 = 5;
/// CPython's default switch interval.
const DEFAULT_INTERVAL_MS: f64 = 5.0;
/// Handoffs per second above which switching itself is a cost…
const SWITCHES_PER_S: f64 = 1000.0;
/// …when threads also wait for the GIL this often.
const SWITCHING_CONTENDED: f64 = 0.2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// The GIL was held by a thread blocked in the kernel.
    HeldOffCpu,
    /// `sys.setswitchinterval` changed the switch interval.
    SwitchInterval,
    /// The GIL changes hands so often that switching is the cost (a convoy).
    SwitchingCost,
    /// A free-threaded build ran with its GIL enabled.
    GilEnabled,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub summary: String,
    pub advice: String,
    /// Where it happens: innermost frames and their share of the evidence.
    pub sites: Vec<Site>,
}

/// What findings are judged on.
pub struct Evidence<'a> {
    pub gil: Option<&'a GilMetrics>,
    pub threads: &'a [ThreadSummary],
    /// Holder stacks sampled while the holder was off CPU and others waited.
    pub off_cpu_sites: &'a [Site],
    /// Every stack sampled while a holder stalled was inside an import (start-up): no
    /// finding is drawn from imports alone.
    pub stalls_in_imports_only: bool,
    /// GIL-state samples in the run.
    pub ticks: u64,
}

pub fn find(e: &Evidence) -> Vec<Finding> {
    let mut findings = Vec::new();
    let stalls: u64 = e.threads.iter().map(|t| t.stalling).sum();
    if stalls >= STALL_MIN_TICKS
        && stalls as f64 >= STALL_SHARE * e.ticks as f64
        && !e.stalls_in_imports_only
    {
        let mut who: Vec<(u64, String)> = e
            .threads
            .iter()
            .filter(|t| t.stalling > 0)
            .map(|t| (t.stalling, t.label()))
            .collect();
        who.sort_by_key(|w| std::cmp::Reverse(w.0));
        let names: Vec<String> = who.into_iter().take(3).map(|(_, n)| n).collect();
        findings.push(Finding {
            kind: FindingKind::HeldOffCpu,
            summary: format!(
                "For {:.0}% of the run the GIL was held by a thread blocked off CPU while \
                 others waited for it (held by {}): C code that blocks without releasing the \
                 GIL stalls every thread that wants to run Python.",
                100.0 * stalls as f64 / e.ticks.max(1) as f64,
                names.join(", ")
            ),
            advice: "Release the GIL around the blocking call (Py_BEGIN_ALLOW_THREADS in C, \
                     ctypes.CDLL rather than PyDLL, `with nogil` in Cython), or move it out of \
                     the process."
                .into(),
            sites: e.off_cpu_sites.iter().take(5).cloned().collect(),
        });
    }
    let Some(g) = e.gil else { return findings };
    if g.free_threaded && (g.enabled_at_s.is_some() || g.enabled_share >= GIL_DISABLED_BELOW) {
        let when = match g.enabled_at_s {
            Some(at) if at < 0.001 => "for good from the first sample on".to_string(),
            Some(at) => format!("for good from {at:.2} s after sampling began"),
            None => "while modules were imported, not for good".to_string(),
        };
        findings.push(Finding {
            kind: FindingKind::GilEnabled,
            summary: format!(
                "This free-threaded CPython ran with its GIL enabled for {:.0}% of the run, \
                 {when}: either PYTHON_GIL=1 (or -X gil=1) asked for it, or an extension \
                 module not marked as free-threading-safe was imported, which enables the \
                 GIL (CPython then prints a RuntimeWarning naming the module). The GIL \
                 metrics cover the part of the run with the GIL enabled.",
                100.0 * g.enabled_share
            ),
            advice: "Find the module in the RuntimeWarning and upgrade it to a release built \
                     for free-threading; PYTHON_GIL=0 forces the GIL off, at the risk of the \
                     module's own thread-safety."
                .into(),
            sites: Vec::new(),
        });
    }
    if g.enabled && g.ticks > 0 && (g.switch_interval_ms - DEFAULT_INTERVAL_MS).abs() > 0.001 {
        let effect = if g.switch_interval_ms < DEFAULT_INTERVAL_MS {
            "more handoffs, each a wake-up and a context switch, for quicker turns"
        } else {
            "fewer handoffs, but a thread that wants the GIL back (an I/O thread) waits longer"
        };
        findings.push(Finding {
            kind: FindingKind::SwitchInterval,
            summary: format!(
                "The switch interval is {}, not the default {} (sys.setswitchinterval): \
                 {effect}.",
                super::interval_text(g.switch_interval_ms),
                super::interval_text(DEFAULT_INTERVAL_MS)
            ),
            advice: "Keep the change only if measurements with and without it favour it.".into(),
            sites: Vec::new(),
        });
    }
    if g.switches_per_s >= SWITCHES_PER_S && g.contended >= SWITCHING_CONTENDED {
        findings.push(Finding {
            kind: FindingKind::SwitchingCost,
            summary: format!(
                "The GIL changes hands {:.0} times a second (every {:.0} µs on average) while \
                 threads wait for it {:.0}% of the time: switching itself is a cost here.",
                g.switches_per_s,
                1e6 / g.switches_per_s,
                100.0 * g.contended
            ),
            advice: "When I/O or native threads take the GIL back after every short call (a \
                     convoy behind a CPU-bound thread), batch their work per acquisition, or \
                     give the CPU-bound work a process of its own."
                .into(),
            sites: Vec::new(),
        });
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ThreadState;

    fn thread(holding: f64, stalling: u64) -> ThreadSummary {
        ThreadSummary {
            tid: 1,
            name: Some("blocker".into()),
            interpreter: 0,
            cpu_s: 0.0,
            shares: {
                let mut s = [0.0; ThreadState::COUNT];
                s[ThreadState::Holding.index()] = holding;
                s[ThreadState::Idle.index()] = 1.0 - holding;
                s
            },
            ticks: 1000,
            held_off_cpu: stalling,
            stalling,
            ..Default::default()
        }
    }

    fn gil(interval_ms: f64, switches_per_s: f64, contended: f64) -> GilMetrics {
        GilMetrics {
            interpreter: 0,
            interpreters: vec![0],
            enabled: true,
            free_threaded: false,
            enabled_share: 1.0,
            enabled_at_s: None,
            held: 0.5,
            avg_waiters: 1.0,
            contended,
            demand: 1.5,
            speedup_ceiling: 3.0,
            switches_per_s,
            switches: 0,
            switch_interval_ms: interval_ms,
            ticks: 1000,
        }
    }

    fn kinds(threads: &[ThreadSummary], g: &GilMetrics) -> Vec<FindingKind> {
        let sites = [Site::example("usleep", "app.py", 3, 1.0)];
        find(&Evidence {
            gil: Some(g),
            threads,
            off_cpu_sites: &sites,
            stalls_in_imports_only: false,
            ticks: 1000,
        })
        .into_iter()
        .map(|f| f.kind)
        .collect()
    }

    #[test]
    fn a_holder_off_cpu_for_long_is_a_finding_with_its_stack() {
        let g = gil(5.0, 100.0, 0.5);
        assert_eq!(kinds(&[thread(0.5, 300)], &g), [FindingKind::HeldOffCpu]);
        let sites = [Site::example("usleep", "app.py", 3, 1.0)];
        let f = find(&Evidence {
            gil: Some(&g),
            threads: &[thread(0.5, 300)],
            off_cpu_sites: &sites,
            stalls_in_imports_only: false,
            ticks: 1000,
        });
        assert!(
            f[0].summary.contains("30%") && f[0].summary.contains("blocker"),
            "{}",
            f[0].summary
        );
        assert_eq!(f[0].sites[0].function, "usleep");
        // Stalls seen only inside imports are not drawn on.
        let f = find(&Evidence {
            gil: Some(&g),
            threads: &[thread(0.5, 300)],
            off_cpu_sites: &[],
            stalls_in_imports_only: true,
            ticks: 1000,
        });
        assert!(f.is_empty(), "{f:?}");
        // A few stray samples (a page fault, a brief syscall) are not a finding.
        assert!(kinds(&[thread(0.5, 4)], &g).is_empty());
        assert!(kinds(&[thread(0.9, 9)], &g).is_empty());
    }

    #[test]
    fn a_tiny_switch_interval_reads_in_microseconds() {
        let f = find(&Evidence {
            gil: Some(&gil(0.001, 7000.0, 0.6)),
            threads: &[],
            off_cpu_sites: &[],
            stalls_in_imports_only: false,
            ticks: 1000,
        });
        assert!(
            f[0].summary.contains("is 1 µs, not the default 5 ms"),
            "{}",
            f[0].summary
        );
        assert_eq!(super::super::interval_text(0.5), "500 µs");
        assert_eq!(super::super::interval_text(12.5), "12.5 ms");
    }

    #[test]
    fn a_changed_switch_interval_and_a_handoff_storm_are_findings() {
        assert_eq!(
            kinds(&[], &gil(1.0, 100.0, 0.5)),
            [FindingKind::SwitchInterval]
        );
        assert_eq!(
            kinds(&[], &gil(5.0, 3000.0, 0.5)),
            [FindingKind::SwitchingCost]
        );
        assert!(kinds(&[], &gil(5.0, 3000.0, 0.05)).is_empty());
        assert!(kinds(&[], &gil(5.0, 190.0, 0.97)).is_empty());
    }
}
