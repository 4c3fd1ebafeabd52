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
    let mut memo = account(r, previous);
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

/// The previous tick's memory with this tick's scheduler statistics added to the budgets.
fn account(r: &Reading, previous: Option<&Classified>) -> Classified {
    let mut memo = previous.copied().unwrap_or(Classified {
        state: ThreadState::Idle,
        on_cpu: false,
        queued: false,
        stalled: false,
        gil: r.own_gil,
        io: None,
        provisional: false,
        after_holding: false,
        switch_number: 0,
        sched: None,
        at_ns: r.at_ns,
        tick_ns: 0,
        run_budget_ns: 0,
        queue_budget_ns: 0,
        asleep: None,
    });
    if let Some(now) = r.sched {
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
    memo.at_ns = r.at_ns;
    memo.tick_ns = tick_ns(r, previous);
    memo
}

/// The time since the thread's previous tick.
fn tick_ns(r: &Reading, previous: Option<&Classified>) -> i64 {
    let tick = previous.map_or(0, |p| r.at_ns.saturating_sub(p.at_ns));
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
mod tests {
    use super::*;
    use ThreadState::*;

    const BASE: u64 = 0x7f00_0000_1000;

    fn gil(holder: Option<Tid>, switch_number: u64) -> GilView {
        GilView {
            addresses: GilAddresses { base: BASE },
            holder,
            last_holder: holder,
            switch_number,
            disabled: false,
            sleepers: 0,
        }
    }

    fn blocked(nr: i64, args: [u64; 6]) -> Syscall {
        Syscall::Blocked { nr, args }
    }

    fn reading(syscall: Syscall, sched: Option<(u64, u64)>) -> Reading {
        Reading {
            tid: 7,
            own_gil: 0,
            syscall,
            sched: sched.map(|(on_cpu_ns, queued_ns)| SchedStat {
                on_cpu_ns,
                queued_ns,
            }),
            fd_kind: None,
            at_ns: 0,
        }
    }

    fn state_of(syscall: Syscall) -> ThreadState {
        classify(&reading(syscall, None), None, &[gil(Some(1), 0)]).state
    }

    #[test]
    fn parses_schedstat() {
        assert_eq!(
            SchedStat::parse(b"191229040 14399000 362\n"),
            Some(SchedStat {
                on_cpu_ns: 191229040,
                queued_ns: 14399000
            })
        );
        assert_eq!(SchedStat::parse(b"12"), None);
    }

    #[test]
    fn futex_inside_cond_or_mutex_is_waiting_and_switch_cond_is_handoff() {
        for off in [32, 40, 79, 80, 119] {
            assert_eq!(state_of(Syscall::futex(BASE + off)), Waiting, "+{off}");
        }
        for off in [120, 160, 168, 207] {
            assert_eq!(state_of(Syscall::futex(BASE + off)), Handoff, "+{off}");
        }
    }

    #[test]
    fn other_futexes_are_locks_and_syscalls_say_what_a_thread_waits_on() {
        assert_eq!(state_of(Syscall::futex(BASE + 208)), Lock);
        assert_eq!(state_of(Syscall::futex(BASE + 8)), Lock);
        assert_eq!(state_of(Syscall::futex(0x1234)), Lock);
        assert_eq!(state_of(blocked(230, [0, 0, 0x7ffd, 0, 0, 0])), Sleep);
        assert_eq!(state_of(blocked(35, [0x7ffd, 0, 0, 0, 0, 0])), Sleep);
        // 3.9's time.sleep: pselect6 with no descriptors; with descriptors it is I/O.
        assert_eq!(state_of(blocked(270, [0, 0, 0, 0, 0x7ffd, 0])), Sleep);
        assert_eq!(state_of(blocked(270, [4, 0x7ffd, 0, 0, 0x7ffd, 0])), Io);
        assert_eq!(state_of(blocked(7, [0x7ffd, 0, 100, 0, 0, 0])), Sleep);
        assert_eq!(state_of(blocked(7, [0x7ffd, 2, 100, 0, 0, 0])), Io);
        for nr in [0, 1, 17, 43, 45, 232, 281, 288, 42] {
            assert_eq!(
                state_of(blocked(nr, [3, 0, 0, 0, 0, 0])),
                Io,
                "syscall {nr}"
            );
        }
        assert_eq!(state_of(blocked(73, [3, 2, 0, 0, 0, 0])), Lock, "flock");
        assert_eq!(state_of(blocked(72, [3, 7, 0, 0, 0, 0])), Lock, "F_SETLKW");
        assert_eq!(state_of(blocked(72, [3, 1, 0, 0, 0, 0])), Idle, "F_GETFD");
        assert_eq!(state_of(blocked(61, [0; 6])), Idle, "wait4");
        assert_eq!(state_of(Syscall::NotInSyscall), Idle);
    }

    #[test]
    fn io_says_what_it_waits_on() {
        let io = |syscall, fd_kind| {
            let r = Reading {
                fd_kind,
                ..reading(syscall, None)
            };
            classify(&r, None, &[gil(None, 0)]).io
        };
        assert_eq!(io(blocked(45, [3; 6]), None), Some(IoKind::Socket));
        assert_eq!(io(blocked(232, [3; 6]), None), Some(IoKind::Poll));
        assert_eq!(io(blocked(0, [3; 6]), None), Some(IoKind::Other));
        assert_eq!(
            io(blocked(0, [3; 6]), Some(IoKind::Pipe)),
            Some(IoKind::Pipe)
        );
        assert_eq!(io(Syscall::futex(0x10), None), None);
        assert_eq!(blocked(0, [5; 6]).io_fd(), Some(5));
        assert_eq!(blocked(45, [5; 6]).io_fd(), None);
        assert_eq!(Syscall::Running.io_fd(), None);
    }

    #[test]
    fn the_holder_is_holding_on_or_off_cpu() {
        let gils = [gil(Some(7), 0)];
        let c = classify(&reading(Syscall::Running, None), None, &gils);
        assert_eq!((c.state, c.on_cpu), (Holding, true));
        let c = classify(&reading(blocked(0, [3; 6]), None), None, &gils);
        assert_eq!((c.state, c.on_cpu), (Holding, false));
    }

    #[test]
    fn runnable_is_native_on_a_cpu_and_ready_on_a_run_queue() {
        let gils = [gil(Some(1), 0)];
        let at = |k: u64, sched: (u64, u64)| Reading {
            at_ns: 4_000_000 * k,
            ..reading(Syscall::Running, Some(sched))
        };
        let run = |per_tick: (u64, u64), ticks: u64| {
            let mut previous = classify(&at(0, (0, 0)), None, &gils);
            let mut counts = [0; ThreadState::COUNT];
            for k in 1..=ticks {
                let r = at(k, (per_tick.0 * k, per_tick.1 * k));
                previous = classify(&r, Some(&previous), &gils);
                counts[previous.state.index()] += 1;
                assert_eq!(previous.on_cpu, previous.state == Native);
                assert_eq!(previous.queued, previous.state == Ready);
            }
            counts
        };
        // Ran 3 ms and waited 1 ms of every 4 ms tick: three ticks in four on a CPU.
        let c = run((3_000_000, 1_000_000), 400);
        assert_eq!((c[Native.index()], c[Ready.index()]), (300, 100));
        // Only queued: ready every time.
        let c = run((0, 4_000_000), 10);
        assert_eq!(c[Ready.index()], 10);
        // Charged neither (asleep nearly all along, caught waking): the state it slept in.
        let gils = [gil(Some(1), 0)];
        let asleep = classify(
            &Reading {
                at_ns: 0,
                ..reading(Syscall::futex(0x9000), Some((0, 0)))
            },
            None,
            &gils,
        );
        let mut previous = asleep;
        for k in 1..=5u64 {
            let r = at(k, (10_000 * k, 1_000 * k));
            previous = classify(&r, Some(&previous), &gils);
            assert_eq!((previous.state, previous.on_cpu), (Lock, false), "tick {k}");
        }
        // Without scheduler statistics, runnable is on a CPU.
        assert_eq!(state_of(Syscall::Running), Native);
    }

    #[test]
    fn a_woken_waiter_stays_waiting_until_it_can_have_taken_the_gil() {
        let waiting = classify(
            &reading(Syscall::futex(BASE + 40), None),
            None,
            &[gil(Some(1), 10)],
        );
        assert_eq!(waiting.state, Waiting);
        let now = |switch_number, last_holder| {
            let g = GilView {
                last_holder,
                ..gil(Some(1), switch_number)
            };
            classify(&reading(Syscall::Running, None), Some(&waiting), &[g]).state
        };
        // No handoff since it was seen waiting: it cannot have left take_gil().
        assert_eq!(now(10, Some(1)), Waiting);
        // One handoff, to another thread.
        assert_eq!(now(11, Some(1)), Waiting);
        // One handoff and it is the last holder: it took the GIL and dropped it again.
        assert_eq!(now(11, Some(7)), Native);
        // Two or more handoffs: it may have taken the GIL in between.
        assert_eq!(now(12, Some(1)), Native);
        assert!(!still_waiting(Native, 0, false));
        assert!(!still_waiting(Holding, 0, false));
    }

    #[test]
    fn a_woken_waiter_that_has_not_run_since_it_slept_is_still_waiting() {
        let gils = |switch_number| [gil(Some(1), switch_number)];
        let asleep = classify(
            &reading(Syscall::futex(BASE + 40), Some((5_000_000, 100))),
            None,
            &gils(10),
        );
        // Ten handoffs later it is runnable but has not run a nanosecond: still in take_gil.
        let woken = classify(
            &reading(Syscall::Running, Some((5_000_000, 900_000))),
            Some(&asleep),
            &gils(20),
        );
        assert_eq!((woken.state, woken.on_cpu), (Waiting, false));
        // Once it has run, the switch count decides, and ten handoffs prove nothing.
        let ran = classify(
            &reading(Syscall::Running, Some((6_000_000, 900_000))),
            Some(&woken),
            &gils(20),
        );
        assert_eq!(ran.state, Native);
        // The same for a thread woken from a handoff.
        let handing = classify(
            &reading(Syscall::futex(BASE + 130), Some((5_000_000, 100))),
            None,
            &gils(10),
        );
        let woken = classify(
            &reading(Syscall::Running, Some((5_000_000, 200))),
            Some(&handing),
            &gils(12),
        );
        assert_eq!(woken.state, Handoff);
        assert!(wants_sched(Syscall::Running, Some(&handing)));
        assert!(!wants_sched(Syscall::futex(BASE + 40), Some(&asleep)));
        assert!(wants_sched(Syscall::futex(BASE + 40), Some(&ran)));
    }

    #[test]
    fn a_thread_that_dropped_the_gil_while_others_wait_is_handing_it_off() {
        let dropped = |sleepers| GilView {
            holder: None,
            last_holder: Some(7),
            sleepers,
            ..gil(None, 3)
        };
        let c = classify(&reading(Syscall::Running, None), None, &[dropped(2)]);
        assert_eq!(c.state, Handoff);
        // Nobody waits: it released the GIL to run C code.
        let c = classify(&reading(Syscall::Running, None), None, &[dropped(0)]);
        assert_eq!(c.state, Native);
        // Someone took it since.
        let taken = GilView {
            holder: Some(1),
            last_holder: Some(1),
            ..dropped(2)
        };
        let c = classify(&reading(Syscall::Running, None), None, &[taken]);
        assert_eq!(c.state, Native);
    }

    #[test]
    fn runnable_right_after_the_gil_is_settled_by_the_next_tick() {
        let gils = [gil(Some(1), 10)];
        let held = classify(
            &reading(Syscall::Running, Some((1_000_000, 0))),
            None,
            &[gil(Some(7), 9)],
        );
        assert_eq!(held.state, Holding);
        // It dropped the GIL (a forced switch) and reads runnable: native for now.
        let after = classify(
            &reading(Syscall::Running, Some((4_000_000, 0))),
            Some(&held),
            &gils,
        );
        assert_eq!((after.state, after.provisional), (Native, true));
        // 4 ms later it sleeps on the GIL having run 0.1 ms: it was leaving drop_gil.
        let asleep = classify(
            &reading(Syscall::futex(BASE + 40), Some((4_100_000, 0))),
            Some(&after),
            &gils,
        );
        assert_eq!(settle(&after, &asleep, 4_000_000), Some(Handoff));
        // The same after a GIL wait: it was in take_gil.
        let waited = Classified {
            state: Waiting,
            ..held
        };
        // (Many handoffs since, so no proof that it still waits.)
        let busy = [gil(Some(1), 20)];
        let woken = classify(
            &reading(Syscall::Running, Some((4_000_000, 0))),
            Some(&waited),
            &busy,
        );
        assert!(woken.provisional && !woken.after_holding, "{woken:?}");
        let asleep_again = classify(
            &reading(Syscall::futex(BASE + 40), Some((4_100_000, 0))),
            Some(&woken),
            &busy,
        );
        assert_eq!(settle(&woken, &asleep_again, 4_000_000), Some(Waiting));
        // Woken from switch_cond but queued for a CPU: still inside drop_gil.
        let queued = Classified {
            queued: true,
            on_cpu: false,
            ..after
        };
        let asleep_soon = classify(
            &reading(Syscall::futex(BASE + 40), Some((4_000_000, 0))),
            Some(&queued),
            &gils,
        );
        assert_eq!(settle(&queued, &asleep_soon, 4_000_000), Some(Handoff));
        // Having run 3 ms first, it ran C code.
        let asleep = classify(
            &reading(Syscall::futex(BASE + 40), Some((7_000_000, 0))),
            Some(&after),
            &gils,
        );
        assert_eq!(settle(&after, &asleep, 4_000_000), None);
        // Still running at the next tick: C code.
        let still = classify(
            &reading(Syscall::Running, Some((4_100_000, 0))),
            Some(&after),
            &gils,
        );
        assert_eq!(settle(&after, &still, 4_000_000), None);
        // Asleep on a lock soon after dropping the GIL: it was leaving drop_gil on its way to
        // the lock (Lock.acquire releases the GIL before it blocks).
        let on_lock = classify(
            &reading(Syscall::futex(0x9000), Some((4_100_000, 0))),
            Some(&after),
            &gils,
        );
        assert_eq!(on_lock.state, Lock);
        assert_eq!(settle(&after, &on_lock, 4_000_000), Some(Handoff));
        // A thread that was idle before is not provisional.
        let idle = classify(&reading(blocked(230, [0; 6]), Some((0, 0))), None, &gils);
        let woke = classify(
            &reading(Syscall::Running, Some((10, 0))),
            Some(&idle),
            &gils,
        );
        assert!(!woke.provisional);
    }

    #[test]
    fn on_cpu_ticks_add_up_to_the_kernels_time_when_ticks_come_late_and_catch_up() {
        // A thread runnable throughout that gets a third of a CPU, sampled by a timer that
        // is often late (7.9 ms) and then fires at once to catch up (0.1 ms): the ticks read
        // on a CPU must add up to what the kernel charged.
        let gils = [gil(Some(1), 0)];
        let (mut at, mut ran, mut counted) = (0u64, 0u64, 0u64);
        let mut previous: Option<Classified> = None;
        for i in 0..2000 {
            let step = if i % 2 == 0 { 7_900_000 } else { 100_000 };
            at += step;
            ran += step / 3;
            let r = Reading {
                at_ns: at,
                ..reading(Syscall::Running, Some((ran, at - ran)))
            };
            let c = classify(&r, previous.as_ref(), &gils);
            if c.on_cpu && previous.is_some() {
                counted += step;
            }
            previous = Some(c);
        }
        let share = counted as f64 / ran as f64;
        assert!(
            (0.97..1.03).contains(&share),
            "counted {counted} of {ran} ns on a CPU"
        );
    }

    #[test]
    fn a_woken_lock_waiter_waits_for_the_lock_until_it_has_run_and_left() {
        let gils = [gil(Some(1), 0)];
        let at = |k: u64, syscall, sched| Reading {
            at_ns: 4_000_000 * k,
            ..reading(syscall, Some(sched))
        };
        let asleep = classify(&at(0, Syscall::futex(0x9000), (1_000_000, 0)), None, &gils);
        assert_eq!(asleep.state, Lock);
        // Woken (runnable, queued 3 ms) but not run: still waiting for the lock.
        let woken = classify(
            &at(1, Syscall::Running, (1_000_000, 3_000_000)),
            Some(&asleep),
            &gils,
        );
        assert_eq!((woken.state, woken.queued), (Lock, true));
        // It ran: provisional, and asleep on the same lock soon after, it was retrying.
        let ran = classify(
            &at(2, Syscall::Running, (4_000_000, 3_000_000)),
            Some(&woken),
            &gils,
        );
        assert!(ran.provisional, "{ran:?}");
        let again = classify(
            &at(3, Syscall::futex(0x9000), (4_100_000, 3_000_000)),
            Some(&ran),
            &gils,
        );
        assert_eq!(settle(&ran, &again, 4_000_000), Some(Lock));
        let other = classify(
            &at(3, Syscall::futex(0x7000), (4_100_000, 3_000_000)),
            Some(&ran),
            &gils,
        );
        assert_eq!(settle(&ran, &other, 4_000_000), None);
    }

    #[test]
    fn a_holder_blocked_in_the_gils_own_bookkeeping_is_no_stall() {
        let gils = [gil(Some(7), 0)];
        let c = classify(&reading(Syscall::futex(BASE + 170), None), None, &gils);
        assert_eq!((c.state, c.stalled), (Holding, false));
        let c = classify(&reading(blocked(230, [0; 6]), None), None, &gils);
        assert_eq!((c.state, c.stalled), (Holding, true));
        let c = classify(&reading(Syscall::futex(0x4242), None), None, &gils);
        assert!(c.stalled);
        let c = classify(&reading(Syscall::Running, None), None, &gils);
        assert!(!c.stalled);
    }

    #[test]
    fn any_interpreter_gil_counts() {
        let other = GilView {
            addresses: GilAddresses { base: 0x5000 },
            ..gil(None, 0)
        };
        let c = classify(
            &reading(Syscall::futex(0x5000 + 40), None),
            None,
            &[gil(Some(1), 0), other],
        );
        assert_eq!((c.state, c.gil), (Waiting, 1));
        let c = classify(
            &reading(Syscall::futex(BASE + 40), None),
            None,
            &[gil(Some(1), 0), other],
        );
        assert_eq!((c.state, c.gil), (Waiting, 0));
        let c = classify(
            &reading(Syscall::futex(0x9000), None),
            None,
            &[gil(Some(1), 0), other],
        );
        assert_eq!((c.state, c.gil), (Lock, 0));
    }

    #[test]
    fn with_the_gil_disabled_threads_run_or_wait_for_a_cpu_or_block() {
        let off = GilView {
            disabled: true,
            ..gil(None, 0)
        };
        let c = classify(&reading(Syscall::Running, None), None, &[off]);
        assert_eq!((c.state, c.on_cpu), (Running, true));
        let first = classify(&reading(Syscall::Running, Some((0, 0))), None, &[off]);
        let queued = classify(
            &Reading {
                at_ns: 4_000_000,
                ..reading(Syscall::Running, Some((0, 5_000_000)))
            },
            Some(&first),
            &[off],
        );
        assert_eq!(queued.state, Ready);
        // A futex inside the disabled GIL's struct is no GIL wait.
        let c = classify(&reading(Syscall::futex(BASE + 40), None), None, &[off]);
        assert_eq!(c.state, Lock);
        let c = classify(&reading(blocked(45, [3; 6]), None), None, &[off]);
        assert_eq!(c.state, Io);
    }
}
