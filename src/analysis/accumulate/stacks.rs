//! Stack samples: every stack interned once, counted per thread and state, and weighted
//! into the lists a profile shows — holders, waiters, blame, lock waits and holders, callers
//! of native code, stalls — and the code the verdict names from them (docs/DESIGN.md,
//! "Sites").

use std::collections::{BTreeMap, HashMap, HashSet};

use super::threads::ThreadCounts;
use crate::analysis::sites::{self, Rank, Weighted};
use crate::analysis::{waits, Blamed, Site, ThreadSummary, Timeline};
use crate::model::{Frame, StackId, StackTable, StackTick, ThreadState, Tid, IN_INTERPRETER};

#[derive(Debug, Default)]
pub(super) struct StackCounts {
    table: StackTable,
    counts: HashMap<(Tid, ThreadState, StackId), u64>,
    /// Holder stacks weighted by the number of waiters at their tick (weight, samples).
    blame: HashMap<StackId, (u64, u64)>,
    /// Holder stacks seen while the holder was off CPU and others waited.
    stalling: HashMap<StackId, u64>,
    /// Where threads waited for a lock held by another thread.
    lock_waits: HashMap<StackId, u64>,
    /// What the GIL's holder ran while threads waited for a lock, weighted by how many
    /// (weight, samples).
    lock_holders: HashMap<StackId, (u64, u64)>,
    /// Holder stacks seen in native code, weighted by the waiters at their tick (at least 1):
    /// where the Python code calls the module that keeps the GIL (weight, samples).
    native_callers: HashMap<StackId, (u64, u64)>,
}

/// The lists a profile shows, drawn from the stacks.
pub(super) struct Lists {
    /// Every stack sample: (thread, state, stack) and how many times it was seen, most first.
    pub(super) stack_counts: Vec<((Tid, ThreadState, StackId), u64)>,
    /// Holder stacks weighted by the number of waiters at their tick.
    pub(super) blame: Vec<(StackId, u64)>,
    /// The code the verdict names, and what the GIL's holder ran while threads waited for a
    /// lock.
    pub(super) blamed: Option<Blamed>,
    pub(super) lock_holder: Option<Blamed>,
    /// The thread seen running an asyncio event loop.
    pub(super) event_loop: Option<String>,
    pub(super) top_holders: Vec<Site>,
    pub(super) top_waiters: Vec<Site>,
    pub(super) top_running: Vec<Site>,
    pub(super) top_blame: Vec<Site>,
    pub(super) top_lock_waits: Vec<Site>,
    pub(super) top_lock_holders: Vec<Site>,
    pub(super) top_native_callers: Vec<Site>,
    /// Where holders stalled while others waited, imports left out.
    pub(super) off_cpu_sites: Vec<Site>,
    /// Stalls were seen, all inside imports.
    pub(super) stalls_in_imports_only: bool,
    pub(super) table: StackTable,
}

/// Adds a weighted sample of a stack to a (weight, samples) map.
fn add(map: &mut HashMap<StackId, (u64, u64)>, id: StackId, weight: u64) {
    let e = map.entry(id).or_default();
    e.0 += weight;
    e.1 += 1;
}

/// A map's stacks, heaviest first (ties by id, so that the order is reproducible).
fn weighted(map: HashMap<StackId, (u64, u64)>) -> Vec<Weighted> {
    let mut v: Vec<Weighted> = map
        .into_iter()
        .map(|(id, (weight, samples))| Weighted {
            id,
            weight,
            samples,
        })
        .collect();
    v.sort_by(|a, b| b.weight.cmp(&a.weight).then(a.id.cmp(&b.id)));
    v
}

/// asyncio's `BaseEventLoop._run_once`, which every event loop runs each iteration.
fn is_event_loop_frame(frame: &Frame) -> bool {
    frame.function.ends_with("_run_once")
        && (frame.file.ends_with("asyncio/base_events.py") || &*frame.file == "base_events.py")
}

impl StackCounts {
    /// A stack tick: each thread's stack, counted and weighted into the lists; lock waits
    /// also counted per thread, and every stack placed on the timeline.
    pub(super) fn push(
        &mut self,
        tick: StackTick,
        threads: &mut BTreeMap<Tid, ThreadCounts>,
        timeline: &mut Timeline,
    ) {
        let mut lock_waiters = 0;
        let mut holders = Vec::new();
        for s in tick.stacks {
            let contended = s.state == ThreadState::Lock && !waits::is_signal_wait(&s.frames);
            let id = self.table.intern(s.frames);
            if s.state == ThreadState::Lock {
                let t = threads.entry(s.tid).or_default();
                t.lock_stacks += 1;
                if contended {
                    t.contended_stacks += 1;
                    lock_waiters += 1;
                    *self.lock_waits.entry(id).or_default() += 1;
                }
            }
            if s.state == ThreadState::Holding {
                holders.push(id);
                if s.native.is_some_and(|m| m != IN_INTERPRETER) {
                    add(&mut self.native_callers, id, u64::from(tick.waiters.max(1)));
                }
            }
            timeline.stack(tick.at, s.tid, s.state, id);
            *self.counts.entry((s.tid, s.state, id)).or_default() += 1;
            if s.state == ThreadState::Holding {
                if tick.waiters > 0 {
                    add(&mut self.blame, id, u64::from(tick.waiters));
                }
                if s.stalled && tick.waiters > 0 {
                    *self.stalling.entry(id).or_default() += 1;
                }
            }
        }
        if lock_waiters > 0 {
            for id in holders {
                add(&mut self.lock_holders, id, lock_waiters);
            }
        }
    }

    /// Per thread, its stack samples waiting for the GIL and those among them inside a
    /// lock's acquire.
    pub(super) fn gil_waits_at_locks(&self) -> HashMap<Tid, (u64, u64)> {
        // GIL waits inside a lock's acquire: stacks waiting for the GIL whose innermost frame
        // is a line where threads were also seen waiting for a lock held by another thread
        // (3.13+'s PyMutex, and every version's Lock once acquired, take the GIL back there).
        // A line counts once three lock-wait samples were seen there: a tick or two of a GIL
        // wait read as a lock wait must not turn every GIL wait at that line into a lock's.
        let mut lock_at: HashMap<&Frame, u64> = HashMap::new();
        for (&id, &n) in &self.lock_waits {
            if let Some(f) = self.table.get(id).last() {
                *lock_at.entry(f).or_default() += n;
            }
        }
        let lock_lines: HashSet<&Frame> = lock_at
            .into_iter()
            .filter(|&(_, n)| n >= 3)
            .map(|(f, _)| f)
            .collect();
        let mut gil_waits: HashMap<Tid, (u64, u64)> = HashMap::new();
        for (&(tid, state, id), &n) in &self.counts {
            if state == ThreadState::Waiting {
                let w = gil_waits.entry(tid).or_default();
                w.0 += n;
                if self
                    .table
                    .get(id)
                    .last()
                    .is_some_and(|f| lock_lines.contains(f))
                {
                    w.1 += n;
                }
            }
        }
        gil_waits
    }

    /// The lists, for a program running in `cwd`; `gil_disabled`: the main GIL stayed
    /// disabled (a free-threaded build), so the verdict names the code that runs most.
    pub(super) fn lists(
        self,
        threads: &[ThreadSummary],
        gil_disabled: bool,
        cwd: Option<&str>,
    ) -> Lists {
        let mut stack_counts: Vec<_> = self.counts.into_iter().collect();
        stack_counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let in_state = |state: ThreadState| -> Vec<Weighted> {
            stack_counts
                .iter()
                .filter(move |((_, s, _), _)| *s == state)
                .map(|((_, _, id), n)| Weighted::counted(*id, *n))
                .collect()
        };
        let table = &self.table;
        let top = |w: &[Weighted], rank, named| sites::top_sites(table, w, rank, cwd, named);
        let event_loop = stack_counts
            .iter()
            .find(|((_, _, id), _)| table.get(*id).iter().any(is_event_loop_frame))
            .and_then(|((tid, _, _), _)| threads.iter().find(|t| t.tid == *tid))
            .map(ThreadSummary::label);
        let holding = in_state(ThreadState::Holding);
        let running = in_state(ThreadState::Running);
        let blame_stacks = weighted(self.blame);
        let blame: Vec<(StackId, u64)> = blame_stacks.iter().map(|w| (w.id, w.weight)).collect();
        let lock_holder_stacks = weighted(self.lock_holders);
        // The verdict blames the code that makes others wait; with no waiters, the holder;
        // with no GIL, the code that runs most.
        let name = |w: &[Weighted], list| sites::blamed(table, w, list, cwd);
        let blamed = if gil_disabled {
            name(&running, "running")
        } else {
            name(&blame_stacks, "blame").or_else(|| name(&holding, "holders"))
        };
        let lock_holder = name(&lock_holder_stacks, "lock_holders");
        // Each list keeps the row of the code the verdict names from it.
        let named_in = |list: &str| blamed.as_ref().filter(|b| b.list == list).map(|b| &b.site);
        let top_holders = top(&holding, Rank::Inclusive, named_in("holders"));
        let top_waiters = top(&in_state(ThreadState::Waiting), Rank::Innermost, None);
        let top_running = top(&running, Rank::Inclusive, named_in("running"));
        let top_blame = top(&blame_stacks, Rank::Inclusive, named_in("blame"));
        // A stall seen only inside imports (start-up) is no finding: nobody can change it.
        let stalled_stacks = !self.stalling.is_empty();
        let stalls: Vec<Weighted> = self
            .stalling
            .into_iter()
            .filter(|(id, _)| !sites::is_import_stack(table.get(*id)))
            .map(|(id, n)| Weighted::counted(id, n))
            .collect();
        let off_cpu_sites = top(&stalls, Rank::Innermost, None);
        let lock_waits: Vec<Weighted> = weighted(
            self.lock_waits
                .into_iter()
                .map(|(id, n)| (id, (n, n)))
                .collect(),
        );
        let top_lock_waits = top(&lock_waits, Rank::Innermost, None);
        let top_lock_holders = top(
            &lock_holder_stacks,
            Rank::Inclusive,
            lock_holder.as_ref().map(|b| &b.site),
        );
        let top_native_callers = top(&weighted(self.native_callers), Rank::Innermost, None);
        Lists {
            blame,
            blamed,
            lock_holder,
            event_loop,
            top_holders,
            top_waiters,
            top_running,
            top_blame,
            top_lock_waits,
            top_lock_holders,
            top_native_callers,
            off_cpu_sites,
            stalls_in_imports_only: stalled_stacks && stalls.is_empty(),
            stack_counts,
            table: self.table,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::tick;
    use crate::analysis::{verdict, Accumulator};
    use crate::model::{Frame, Sample, StackTick, ThreadInfo, ThreadStack, ThreadState::*};
    use std::time::Duration;

    #[test]
    fn top_holders_rank_leaf_frames_of_holding_stacks() {
        let f = |name: &str, line| Frame {
            function: name.into(),
            file: "app.py".into(),
            line,
        };
        let mut acc = Accumulator::default();
        acc.push(Sample::Thread(ThreadInfo {
            tid: 1,
            name: Some("w".into()),
            interpreter: 0,
        }));
        for i in 0..4 {
            let hot = match i {
                0 | 1 => f("compute", 12),
                2 => f("compute", 13),
                _ => f("other", 30),
            };
            acc.push(Sample::Stacks(StackTick {
                at: Duration::from_millis(i),
                waiters: 1,
                stacks: vec![
                    ThreadStack {
                        tid: 1,
                        state: Holding,
                        on_cpu: true,
                        frames: vec![f("main", 1), hot].into(),
                        ..Default::default()
                    },
                    ThreadStack {
                        tid: 2,
                        state: Waiting,
                        on_cpu: false,
                        frames: vec![f("worker", 20)].into(),
                        ..Default::default()
                    },
                ],
            }));
        }
        let p = acc.finish(0, 2);
        // One row per function, named at its hottest line; main() is on every stack and
        // never innermost, so it says nothing.
        let rows: Vec<(&str, u32, f64, u64)> = p
            .top_holders
            .iter()
            .map(|s| (&*s.function, s.line, s.share, s.inclusive_samples))
            .collect();
        assert_eq!(rows, [("compute", 12, 0.75, 3), ("other", 30, 0.25, 1)]);
        assert_eq!(p.top_waiters[0].function, "worker");
        assert_eq!(p.top_waiters[0].share, 1.0);
        assert_eq!(p.threads.len(), 0, "no state ticks, no thread rows");
        assert_eq!(p.run.stack_samples, 4);
    }

    #[test]
    fn the_verdict_names_the_users_code_with_the_number_of_the_table_beside_it() {
        let frame = |function: &str, file: &str, line| Frame {
            function: function.into(),
            file: file.into(),
            line,
        };
        let lib = "/venv/lib/python3.12/site-packages/tmpl/render.py";
        let mut acc = Accumulator::with_cwd(Some("/srv/app".into()));
        for i in 0..40u64 {
            acc.push(tick(i, Some(1), i, &[(1, Holding), (2, Waiting)]));
            // The user's report() renders through the library, whose loop is innermost.
            let leaf = if i % 4 == 0 {
                frame("report", "/srv/app/web/app.py", 9)
            } else {
                frame("_loop", lib, 30)
            };
            let mut frames = vec![frame("main", "/srv/app/app.py", 1)];
            frames.push(frame("report", "/srv/app/web/app.py", 8));
            if &*leaf.function == "_loop" {
                frames.push(frame("render", lib, 20));
            }
            frames.push(leaf);
            acc.push(Sample::Stacks(StackTick {
                at: Duration::from_millis(i),
                waiters: 1,
                stacks: vec![ThreadStack {
                    tid: 1,
                    state: Holding,
                    on_cpu: true,
                    frames: frames.into(),
                    ..Default::default()
                }],
            }));
        }
        let p = acc.finish(0, 2);
        assert_eq!(p.verdict.kind, verdict::VerdictKind::GilBound);
        let named = p.blamed.as_ref().unwrap();
        assert_eq!(named.site.path_shown, "web/app.py");
        let row = p
            .top_blame
            .iter()
            .find(|s| &*s.function == "report")
            .unwrap();
        let share = format!("{:.0}%", 100.0 * row.inclusive_share);
        assert!(
            p.verdict.summary.contains(&format!(
                "report() at web/app.py:8, via tmpl's render(), holds it {share} of the time \
                 others wait"
            )),
            "{}",
            p.verdict.summary
        );
        assert!(
            p.verdict.advice[1].contains("Move report()"),
            "{:?}",
            p.verdict.advice
        );
    }
}

#[cfg(test)]
mod bounded {
    use super::super::testing::tick;
    use crate::analysis::timeline::{MAX_BUCKETS, MAX_TIMED_STACKS};
    use crate::analysis::Accumulator;
    use crate::model::{Frame, Sample, StackTick, ThreadStack, ThreadState::*};
    use std::time::Duration;

    #[test]
    fn a_long_run_of_the_same_stacks_keeps_one_entry_per_distinct_stack() {
        let frame = |function: &str| Frame {
            function: function.into(),
            file: "app.py".into(),
            line: 1,
        };
        let stack = |tid, state, leaf| ThreadStack {
            tid,
            state,
            on_cpu: state == Holding,
            frames: vec![frame("main"), frame(leaf)].into(),
            ..Default::default()
        };
        // 200 s at 1 kHz: one holder and three waiters, every tick alike.
        let ticks = 200_000u64;
        let mut acc = Accumulator::default();
        for i in 0..ticks {
            let states = [(1, Holding), (2, Waiting), (3, Waiting), (4, Waiting)];
            acc.push(tick(i, Some(1), i, &states));
            acc.push(Sample::Stacks(StackTick {
                at: Duration::from_millis(i),
                waiters: 3,
                stacks: states
                    .iter()
                    .map(|&(tid, s)| stack(tid, s, if s == Holding { "compute" } else { "wait" }))
                    .collect(),
            }));
        }
        let p = acc.finish(0, 2);
        assert_eq!(p.run.stack_samples, ticks);
        // What is kept per stack is per distinct stack (two) and per thread and stack
        // (four), not per sample.
        assert_eq!(p.stacks.len(), 2);
        assert_eq!(p.stack_counts.len(), 4);
        assert_eq!(
            p.stack_counts.iter().map(|(_, n)| n).sum::<u64>(),
            4 * ticks
        );
        // The timeline keeps slices and a thinned list of timed stacks, both capped.
        let t = &p.timeline;
        assert!(t.buckets <= MAX_BUCKETS, "{}", t.buckets);
        assert_eq!(t.lanes.len(), 4);
        assert!(t.lanes.iter().all(|l| l.counts.len() <= MAX_BUCKETS));
        assert!(t.stacks.len() < MAX_TIMED_STACKS, "{}", t.stacks.len());
    }
}
