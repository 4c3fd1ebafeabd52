//! Thread-state classification (docs/DESIGN.md, "Thread states"): one pure function from what
//! the sampler read about a thread at this tick, and what this function concluded at the
//! previous one, to the thread's state. No I/O: the sampler reads, this decides.

use super::syscall::{off_cpu_state, Syscall};
use crate::cpython::layout::gil_struct;
use crate::model::{IoKind, ThreadState, Tid};

/// The address ranges inside one GIL struct that a blocked thread's futex may point into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GilAddresses {
    pub base: u64,
}

impl GilAddresses {
    fn region(&self, addr: u64) -> Option<usize> {
        let off = addr.checked_sub(self.base)? as usize;
        (off < gil_struct::SIZE).then_some(off)
    }

    /// The state of a thread that sleeps on futex `addr`, if that futex belongs to this GIL.
    pub fn futex_state(&self, addr: u64) -> Option<ThreadState> {
        match self.region(addr)? {
            off if (gil_struct::COND..gil_struct::SWITCH_COND).contains(&off) => {
                Some(ThreadState::Waiting)
            }
            off if off >= gil_struct::SWITCH_COND => Some(ThreadState::Handoff),
            _ => None,
        }
    }
}

/// One GIL as read at this tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GilView {
    pub addresses: GilAddresses,
    /// The thread that holds it now, if it is locked.
    pub holder: Option<Tid>,
    /// The thread `last_holder` names, locked or not.
    pub last_holder: Option<Tid>,
    pub switch_number: u64,
    /// A free-threaded build's GIL while it is disabled: nobody holds or waits for it.
    pub disabled: bool,
    /// Threads seen asleep on it at this tick (blocked in `futex()` on its `cond`/`mutex`).
    pub sleepers: u32,
}

/// The kernel's scheduler statistics of one thread (`/proc/<pid>/task/<tid>/schedstat`):
/// nanoseconds on a CPU and waiting on a run queue, since the thread started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedStat {
    pub on_cpu_ns: u64,
    pub queued_ns: u64,
}

impl SchedStat {
    /// Parses `on_cpu_ns queued_ns timeslices`.
    pub fn parse(text: &[u8]) -> Option<SchedStat> {
        let mut fields = std::str::from_utf8(text).ok()?.split_ascii_whitespace();
        Some(SchedStat {
            on_cpu_ns: fields.next()?.parse().ok()?,
            queued_ns: fields.next()?.parse().ok()?,
        })
    }
}

/// What the sampler read about one thread at this tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    pub tid: Tid,
    /// When the tick was taken, in nanoseconds on any steady clock.
    pub at_ns: u64,
    /// Index in the tick's GILs of the GIL its interpreter uses.
    pub own_gil: usize,
    pub syscall: Syscall,
    /// Read when [`wants_sched`] says so: it tells running from runnable.
    pub sched: Option<SchedStat>,
    /// What the descriptor of a blocked read/write is, when the sampler looked it up.
    pub fd_kind: Option<IoKind>,
}

/// Where a runnable thread is, by the kernel's account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cpu {
    On,
    Queued,
    /// Neither: the kernel has not charged it the time, so it slept nearly all along and the
    /// `running` read caught it waking up or going to sleep (a wait with a tiny timeout).
    Flapping,
}

/// What the classifier concluded about a thread, and remembers for the next tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Classified {
    pub state: ThreadState,
    /// On a CPU at this tick (running, as opposed to blocked or waiting on a run queue).
    pub on_cpu: bool,
    /// Runnable but waiting on a run queue (whatever its state: a holder preempted, a woken
    /// waiter not yet run).
    pub queued: bool,
    /// Holds the GIL while blocked in the kernel outside the GIL's own locks: every thread
    /// that waits for this GIL waits for a holder that is not running.
    pub stalled: bool,
    /// Index in the tick's GILs of the GIL its state is about: the one it holds or sleeps
    /// on, else its interpreter's.
    pub gil: usize,
    pub io: Option<IoKind>,
    /// Runnable without the GIL right after it held, waited for or handed off the GIL: it
    /// may be running C code, or still be inside the GIL's handoff; [`settle`] decides at
    /// the next tick.
    pub provisional: bool,
    /// Provisional right after holding the GIL: queued, it is still inside drop_gil().
    after_holding: bool,
    /// That GIL's `switch_number` at this tick.
    switch_number: u64,
    /// The last scheduler statistics read.
    sched: Option<SchedStat>,
    at_ns: u64,
    /// The time from the previous tick to this one.
    tick_ns: i64,
    /// Time the kernel says the thread ran (or waited on a run queue) that no tick has been
    /// counted for yet: a runnable tick is counted on a CPU only while the kernel's account
    /// has time for it, so the ticks add up to the kernel's own time.
    run_budget_ns: i64,
    queue_budget_ns: i64,
    /// What it was last seen blocked in: what a flapping thread really waits in.
    asleep: Option<Asleep>,
}

/// What a thread was last seen blocked in.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Asleep {
    state: ThreadState,
    gil: usize,
    io: Option<IoKind>,
    /// The futex it slept on, if any: the lock it waits for.
    futex: Option<u64>,
}

/// Classifies one thread at one tick from this tick's `reading`, every GIL as read now
/// (`gils`), and what this function returned for the thread at the previous tick.
///
/// - The GIL's holder is `holding`, on or off a CPU.
/// - Blocked in `futex()` inside a GIL's `cond`/`mutex`: `waiting`; inside its
///   `switch_cond`/`switch_mutex`: `handoff`.
/// - Otherwise blocked: by its system call, `lock` (any other futex, file locks), `io`,
///   `sleep` or `idle`.
/// - Runnable and provably still inside `take_gil()` (see [`still_waiting`], or it has not
///   run since it was seen asleep on the GIL): `waiting` (`handoff` likewise).
/// - Runnable after dropping the GIL while others sleep on it: `handoff`.
/// - Otherwise runnable: `native` (or `running` with the GIL disabled) when on a CPU,
///   `ready` when waiting on a run queue. The kernel's scheduler statistics decide: a tick
///   counts on a CPU (or queued) only while the time the kernel charged the thread since the
///   last reading has room for it. A thread the kernel charged neither (a wait with a tiny
///   timeout, caught waking) keeps the state it was last seen blocked in.
pub fn classify(r: &Reading, previous: Option<&Classified>, gils: &[GilView]) -> Classified {
    let own = r.own_gil;
    let disabled = gils.get(own).is_some_and(|g| g.disabled);
    let held = gils
        .iter()
        .position(|g| !g.disabled && g.holder == Some(r.tid));
    let runnable = r.syscall == Syscall::Running;
    let mut memo = account(r.at_ns, r.own_gil, r.sched, previous);
    let cpu = if runnable {
        memo.spend(r, previous)
    } else {
        Cpu::Flapping
    };
    let on_cpu = runnable && cpu == Cpu::On;
    let done = |state, gil: usize, io| Classified {
        state,
        on_cpu,
        queued: runnable && cpu == Cpu::Queued,
        stalled: false,
        provisional: false,
        after_holding: false,
        gil,
        io,
        switch_number: gils.get(gil).map_or(0, |g| g.switch_number),
        ..memo
    };
    if let Some(g) = held {
        // Blocked on a GIL's own futex while holding: inside take_gil()/drop_gil()'s
        // bookkeeping (switch_mutex), not C code that blocks.
        let stalled = match r.syscall {
            Syscall::Blocked { .. } => match r.syscall.futex_addr() {
                Some(addr) => gils.iter().all(|g| g.addresses.region(addr).is_none()),
                None => true,
            },
            _ => false,
        };
        return Classified {
            stalled,
            // Runnable and not charged the time: waiting for a CPU (a cgroup's quota
            // throttles a holder just so).
            queued: runnable && cpu != Cpu::On,
            ..done(ThreadState::Holding, g, None)
        };
    }
    if let Syscall::Blocked { nr, args } = r.syscall {
        let on_gil = gils
            .iter()
            .enumerate()
            .filter(|(_, g)| !g.disabled && r.syscall.futex_addr().is_some())
            .find_map(|(i, g)| Some((i, g.addresses.futex_state(args[0])?)));
        let (state, gil, io) = match on_gil {
            Some((g, state)) => (state, g, None),
            None => {
                let (state, io) = off_cpu_state(nr, args);
                let io = match io {
                    Some(IoKind::Other) => r.fd_kind.or(io),
                    io => io,
                };
                (state, own, io)
            }
        };
        return Classified {
            asleep: Some(Asleep {
                state,
                gil,
                io,
                futex: r.syscall.futex_addr(),
            }),
            ..done(state, gil, io)
        };
    }
    if !runnable {
        return Classified {
            asleep: Some(Asleep {
                state: ThreadState::Idle,
                gil: own,
                io: None,
                futex: None,
            }),
            ..done(ThreadState::Idle, own, None)
        };
    }
    let not_run = |p: &Classified| match (p.sched, r.sched) {
        (Some(then), Some(now)) => now.on_cpu_ns == then.on_cpu_ns,
        _ => false,
    };
    if let Some(p) = previous.filter(|p| p.state == ThreadState::Lock && not_run(p)) {
        // Woken from a lock wait and not run since: waking is no proof it got the lock
        // (the releaser may take it again first), so it still waits for it.
        return Classified {
            queued: true,
            on_cpu: false,
            ..done(ThreadState::Lock, p.gil, None)
        };
    }
    if let Some(p) = previous
        .filter(|p| matches!(p.state, ThreadState::Waiting | ThreadState::Handoff) && !disabled)
    {
        // A woken waiter is still about the GIL it waited for, and still waits for it
        // until it can have taken it: provably so while it has not run at all since it was
        // seen asleep, or while no handoff let it take the GIL.
        let not_run = not_run(p);
        if let Some(g) = gils.get(p.gil) {
            let handoffs = g.switch_number.wrapping_sub(p.switch_number);
            if not_run || still_waiting(p.state, handoffs, g.last_holder == Some(r.tid)) {
                return Classified {
                    switch_number: p.switch_number,
                    on_cpu: on_cpu && !not_run,
                    queued: not_run || cpu == Cpu::Queued,
                    ..done(p.state, p.gil, None)
                };
            }
        }
    }
    if gils.get(own).is_some_and(|g| {
        !g.disabled && g.holder.is_none() && g.last_holder == Some(r.tid) && g.sleepers > 0
    }) {
        // It dropped the GIL and nobody has taken it since, while others wait for it: it is
        // inside drop_gil(), handing the GIL to a waiter that has not run yet.
        return done(ThreadState::Handoff, own, None);
    }
    let after_wait = !disabled
        && previous.is_some_and(|p| {
            matches!(
                p.state,
                ThreadState::Holding
                    | ThreadState::Waiting
                    | ThreadState::Handoff
                    | ThreadState::Lock
            )
        });
    let after_holding = previous.is_some_and(|p| p.state == ThreadState::Holding);
    let state = match (cpu, disabled) {
        (Cpu::Flapping, _) => {
            // Caught waking from a wait with a tiny timeout, it still waits for the GIL or
            // the lock it slept on. Anything else the kernel has not charged yet waits on a
            // run queue: its wait is added to the statistics only once it runs.
            let still = memo.asleep.filter(|a| {
                matches!(
                    a.state,
                    ThreadState::Waiting | ThreadState::Handoff | ThreadState::Lock
                ) && previous.is_some_and(|p| p.state == a.state)
            });
            if let Some(a) = still {
                return done(a.state, a.gil, a.io);
            }
            let mut ready = done(ThreadState::Ready, own, None);
            ready.queued = true;
            ready.provisional = after_wait;
            ready.after_holding = after_holding;
            ready.queue_budget_ns = ready.queue_budget_ns.saturating_sub(tick_ns(r, previous));
            return ready;
        }
        (Cpu::Queued, _) => ThreadState::Ready,
        (Cpu::On, true) => ThreadState::Running,
        (Cpu::On, false) => ThreadState::Native,
    };
    Classified {
        provisional: after_wait,
        after_holding,
        ..done(state, own, None)
    }
}

/// A thread whose own thread state says, at this tick, that it is inside `take_gil()`:
/// CPython 3.15+ sets `PyThreadState.gil_requested` there and `holds_gil` once the GIL is
/// taken, so `gil_requested` set with `holds_gil` clear is a waiter, read from memory without
/// any `/proc` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requesting {
    pub tid: Tid,
    /// When the tick was taken, as [`Reading::at_ns`].
    pub at_ns: u64,
    /// Index in the tick's GILs of the GIL its interpreter uses: the one it waits for.
    pub own_gil: usize,
}

/// Classifies a [`Requesting`] thread: `waiting` on its interpreter's GIL, neither on a CPU
/// nor queued (inside take_gil() a waiter sleeps in a timed wait on the GIL's `cond` nearly
/// all the time; it runs only for the few microseconds of a timeout or a wake-up).
///
/// `None` when the thread needs its full reading at this tick after all ([`classify`]):
/// - no previous tick: the first reading is the scheduler statistics' baseline;
/// - at the previous tick it ran, waited for a CPU or was provisional: this tick's reading
///   measures that run ([`wants_sched`], [`settle`]), and a woken waiter the kernel runs is
///   told on a CPU only from `/proc`;
/// - the GIL names it as its holder (it took the GIL a moment ago), or the GIL is disabled.
///
/// The result carries the previous tick's scheduler statistics and budgets on, as a tick
/// blocked on the GIL does: the next full reading measures the time since the last one.
pub fn classify_requesting(
    r: &Requesting,
    previous: Option<&Classified>,
    gils: &[GilView],
) -> Option<Classified> {
    let p = previous?;
    let g = gils.get(r.own_gil)?;
    let ran = p.on_cpu || p.queued || p.provisional || p.state.is_on_cpu();
    if ran || g.disabled || g.holder == Some(r.tid) {
        return None;
    }
    let memo = account(r.at_ns, r.own_gil, None, previous);
    Some(Classified {
        state: ThreadState::Waiting,
        on_cpu: false,
        queued: false,
        stalled: false,
        gil: r.own_gil,
        io: None,
        provisional: false,
        after_holding: false,
        switch_number: g.switch_number,
        asleep: Some(Asleep {
            state: ThreadState::Waiting,
            gil: r.own_gil,
            io: None,
            futex: None,
        }),
        ..memo
    })
}

/// The previous tick's memory with this tick's scheduler statistics added to the budgets.
fn account(
    at_ns: u64,
    own_gil: usize,
    sched: Option<SchedStat>,
    previous: Option<&Classified>,
) -> Classified {
    let mut memo = previous.copied().unwrap_or(Classified {
        state: ThreadState::Idle,
        on_cpu: false,
        queued: false,
        stalled: false,
        gil: own_gil,
        io: None,
        provisional: false,
        after_holding: false,
        switch_number: 0,
        sched: None,
        at_ns,
        tick_ns: 0,
        run_budget_ns: 0,
        queue_budget_ns: 0,
        asleep: None,
    });
    if let Some(now) = sched {
        if let Some(then) = memo.sched {
            let gain = |a: u64, b: u64| i64::try_from(a.saturating_sub(b)).unwrap_or(i64::MAX);
            memo.run_budget_ns = memo
                .run_budget_ns
                .saturating_add(gain(now.on_cpu_ns, then.on_cpu_ns));
            memo.queue_budget_ns = memo
                .queue_budget_ns
                .saturating_add(gain(now.queued_ns, then.queued_ns));
        }
        memo.sched = Some(now);
    }
    memo.at_ns = at_ns;
    memo.tick_ns = ticked(at_ns, previous);
    memo
}

/// The time since the thread's previous tick.
fn tick_ns(r: &Reading, previous: Option<&Classified>) -> i64 {
    ticked(r.at_ns, previous)
}

/// The time from the thread's previous tick to `at_ns`.
fn ticked(at_ns: u64, previous: Option<&Classified>) -> i64 {
    let tick = previous.map_or(0, |p| at_ns.saturating_sub(p.at_ns));
    i64::try_from(tick).unwrap_or(i64::MAX / 16)
}

impl Classified {
    /// Counts this runnable tick on a CPU, queued, or neither, from the budgets: each tick
    /// stands for the time since the previous one.
    fn spend(&mut self, r: &Reading, previous: Option<&Classified>) -> Cpu {
        if r.sched.is_none() {
            // No scheduler statistics on this kernel: runnable counts as on a CPU.
            return Cpu::On;
        }
        let tick = tick_ns(r, previous);
        if previous.is_none_or(|p| p.sched.is_none()) {
            // The first reading: nothing to compare with yet.
            return Cpu::On;
        }
        // Time not spent within a few ticks was charged while the thread read blocked. A
        // few ticks of the usual length: a tick right after a late one comes at once (the
        // timer catches up), and capping by its length would throw the late one's time away.
        let usual = tick.max(previous.map_or(0, |p| p.tick_ns));
        let cap = usual.saturating_mul(8);
        self.run_budget_ns = self.run_budget_ns.min(cap);
        self.queue_budget_ns = self.queue_budget_ns.min(cap);
        let cpu = if self.run_budget_ns >= tick / 2 {
            self.run_budget_ns -= tick;
            Cpu::On
        } else if self.queue_budget_ns >= tick / 2 {
            self.queue_budget_ns -= tick;
            Cpu::Queued
        } else {
            Cpu::Flapping
        };
        // A queue wait counted before the kernel charged it is paid back when it does.
        self.run_budget_ns = self.run_budget_ns.max(-usual.saturating_mul(2));
        self.queue_budget_ns = self.queue_budget_ns.max(-cap);
        cpu
    }
}

/// Whether the sampler should read a thread's scheduler statistics at this tick: when it is
/// runnable (to tell on a CPU from waiting for one), and at the first tick it is seen blocked
/// after it ran, so that the next runnable tick measures its time since it woke.
pub fn wants_sched(syscall: Syscall, previous: Option<&Classified>) -> bool {
    syscall == Syscall::Running
        || previous.is_none_or(|p| p.on_cpu || p.queued || p.state.is_on_cpu())
}

/// What a [`Classified::provisional`] tick was, once the next tick is known: a thread that,
/// right after it dealt with the GIL or slept on a lock, read runnable, and by the next tick
/// sleeps on the GIL again (or holds it), or on the same lock, having run less than a
/// quarter of the interval in between, was inside the GIL's handoff (drop_gil, take_gil) or
/// the lock's acquire loop, not running C code: `handoff` right after holding the GIL (or
/// when handing off at the next tick), `waiting` after waiting for it, `lock` after the
/// lock. `None` leaves the tick as it was. `interval_ns` is the time
/// between the two ticks.
pub fn settle(
    provisional: &Classified,
    next: &Classified,
    interval_ns: u64,
) -> Option<ThreadState> {
    if !provisional.provisional || provisional.gil != next.gil {
        return None;
    }
    let same_lock = |a: &Classified| a.asleep.and_then(|a| a.futex);
    let state = match next.state {
        ThreadState::Handoff => ThreadState::Handoff,
        // Right after holding: inside drop_gil(), woken from switch_cond once the taker took
        // the GIL and waiting for a CPU to leave it, or leaving it (ACCURACY.md: a dropper
        // spends 4-5% of a GIL-bound run there, nearly all of it runnable).
        ThreadState::Waiting | ThreadState::Holding | ThreadState::Lock
            if provisional.after_holding =>
        {
            ThreadState::Handoff
        }
        ThreadState::Waiting | ThreadState::Holding => ThreadState::Waiting,
        ThreadState::Lock
            if same_lock(next).is_some() && same_lock(next) == same_lock(provisional) =>
        {
            ThreadState::Lock
        }
        _ => return None,
    };
    let ran = next
        .sched?
        .on_cpu_ns
        .checked_sub(provisional.sched?.on_cpu_ns)?;
    (ran.saturating_mul(4) < interval_ns).then_some(state)
}

/// Whether a thread that reads as running (not the holder, not asleep on the GIL) is in
/// fact still inside `take_gil()`, woken but waiting for a CPU or about to sleep again.
///
/// `take_gil()` is left only by taking the GIL, and a thread that takes it from another
/// thread increments `switch_number`; when it later drops the GIL, `last_holder` keeps naming
/// it until someone else takes it. So a thread seen waiting at the previous tick has provably
/// not taken the GIL since if no handoff happened at all (`handoffs == 0`), or exactly one
/// happened and `last_holder` is another thread. Without this, a woken waiter that the
/// scheduler has not run yet reads as not wanting the GIL (docs/DESIGN.md, "Woken waiters").
pub fn still_waiting(previous: ThreadState, handoffs: u64, last_holder_is_self: bool) -> bool {
    previous == ThreadState::Waiting && (handoffs == 0 || (handoffs == 1 && !last_holder_is_self))
}

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
