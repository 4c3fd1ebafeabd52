//! The classifier against the readings of each situation it tells apart.

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

/// A thread whose thread state says it is inside take_gil(), at tick `k` of 100 µs.
fn requesting(k: u64) -> Requesting {
    Requesting {
        tid: 7,
        at_ns: 100_000 * k,
        own_gil: 0,
    }
}

#[test]
fn a_thread_known_from_memory_to_be_in_take_gil_waits_off_any_cpu() {
    let gils = [gil(Some(1), 4)];
    let asleep = classify(
        &reading(Syscall::futex(BASE + 40), Some((5_000_000, 100))),
        None,
        &gils,
    );
    let c = classify_requesting(&requesting(1), Some(&asleep), &gils).unwrap();
    assert_eq!(
        (c.state, c.gil, c.on_cpu, c.queued),
        (Waiting, 0, false, false)
    );
    assert!(!c.stalled && !c.provisional && c.io.is_none());
    // It carries the scheduler statistics of the last reading on, for the next one.
    assert_eq!(c.sched, asleep.sched);
    // Seen waiting at this tick's switch count: a runnable reading with no handoff since is
    // still in take_gil().
    let woken = classify(&reading(Syscall::Running, None), Some(&c), &gils);
    assert_eq!(woken.state, Waiting);
    // Once the GIL is disabled, held by it, or at its first sight, its full reading decides.
    let disabled = [GilView {
        disabled: true,
        ..gils[0]
    }];
    assert_eq!(
        classify_requesting(&requesting(1), Some(&asleep), &disabled),
        None
    );
    let its_own = [gil(Some(7), 5)];
    assert_eq!(
        classify_requesting(&requesting(1), Some(&asleep), &its_own),
        None
    );
    assert_eq!(classify_requesting(&requesting(1), None, &gils), None);
    // Another interpreter's GIL it does not have.
    let elsewhere = Requesting {
        own_gil: 3,
        ..requesting(1)
    };
    assert_eq!(classify_requesting(&elsewhere, Some(&asleep), &gils), None);
}

#[test]
fn a_thread_that_ran_at_the_previous_tick_is_read_in_full() {
    let gils = [gil(Some(1), 4)];
    // On a CPU (it held the GIL, or a woken waiter ran): this tick measures that run.
    let held = classify(
        &reading(Syscall::Running, Some((1_000_000, 0))),
        None,
        &[gil(Some(7), 3)],
    );
    assert!(held.on_cpu);
    assert_eq!(
        classify_requesting(&requesting(1), Some(&held), &gils),
        None
    );
    // Waiting for a CPU.
    let first = classify(&reading(Syscall::Running, Some((0, 0))), None, &gils);
    let queued = classify(
        &Reading {
            at_ns: 4_000_000,
            ..reading(Syscall::Running, Some((0, 4_000_000)))
        },
        Some(&first),
        &gils,
    );
    assert!(queued.queued);
    assert_eq!(
        classify_requesting(&requesting(1), Some(&queued), &gils),
        None
    );
    // Provisional: the next full reading settles it.
    let provisional = Classified {
        provisional: true,
        on_cpu: false,
        queued: false,
        state: Waiting,
        ..held
    };
    assert_eq!(
        classify_requesting(&requesting(1), Some(&provisional), &gils),
        None
    );
}

#[test]
fn holder_then_waiter_from_memory_then_holder_keeps_the_kernels_account() {
    let at = |k: u64, syscall, sched: (u64, u64)| Reading {
        at_ns: 100_000 * k,
        ..reading(syscall, Some(sched))
    };
    let held_by_us = [gil(Some(7), 10)];
    let held_by_other = [gil(Some(1), 11)];
    // Tick 0 and 1: it holds the GIL and runs the whole 100 µs tick.
    let t0 = classify(&at(0, Syscall::Running, (1_000_000, 0)), None, &held_by_us);
    let t1 = classify(
        &at(1, Syscall::Running, (1_100_000, 0)),
        Some(&t0),
        &held_by_us,
    );
    assert_eq!((t1.state, t1.on_cpu), (Holding, true));
    // Tick 2: it dropped the GIL right after tick 1 and sleeps in take_gil(); read in full
    // (it ran at tick 1).
    let t2 = classify(
        &at(2, Syscall::futex(BASE + 40), (1_100_000, 0)),
        Some(&t1),
        &held_by_other,
    );
    assert_eq!((t2.state, t2.on_cpu), (Waiting, false));
    // Ticks 3 to 9: from memory, no /proc file read.
    let mut previous = t2;
    for k in 3..10 {
        previous = classify_requesting(&requesting(k), Some(&previous), &held_by_other)
            .unwrap_or_else(|| panic!("tick {k} needed a full reading"));
        assert_eq!(
            (previous.state, previous.on_cpu),
            (Waiting, false),
            "tick {k}"
        );
    }
    // Tick 10: it holds the GIL again, ran 100 µs since tick 2 (the wake-up and this
    // tick's hold): one tick on a CPU...
    let held_again = [gil(Some(7), 12)];
    let t10 = classify(
        &at(10, Syscall::Running, (1_200_000, 0)),
        Some(&previous),
        &held_again,
    );
    assert_eq!((t10.state, t10.on_cpu, t10.queued), (Holding, true, false));
    // ... and if it had not run at all since tick 2 (woken, waiting for a CPU), it holds
    // the GIL queued, as it would after blocked ticks read in full.
    let t10 = classify(
        &at(10, Syscall::Running, (1_100_000, 100_000)),
        Some(&previous),
        &held_again,
    );
    assert_eq!((t10.state, t10.on_cpu, t10.queued), (Holding, false, true));
    // The same ticks read in full give the same answers.
    let mut full = t2;
    for k in 3..10 {
        full = classify(
            &at(k, Syscall::futex(BASE + 40), (1_100_000, 0)),
            Some(&full),
            &held_by_other,
        );
        assert_eq!(full.state, Waiting);
    }
    for sched in [(1_200_000, 0), (1_100_000, 100_000)] {
        let a = classify(&at(10, Syscall::Running, sched), Some(&full), &held_again);
        let b = classify(
            &at(10, Syscall::Running, sched),
            Some(&previous),
            &held_again,
        );
        assert_eq!((a.state, a.on_cpu, a.queued), (b.state, b.on_cpu, b.queued));
    }
}
