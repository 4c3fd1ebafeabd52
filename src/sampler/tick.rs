//! One state tick read: every GIL's head and every thread's `/proc` files, classified. The
//! sampling loop ([`super::run`]) and `gilscope dump` ([`super::snapshot`]) both read a tick
//! this way.

use std::time::Duration;

use super::threads::ThreadTable;
use crate::cpython::{GilHead, Memory};
use crate::gil::{classify, wants_sched, GilView, Reading, Syscall};
use crate::model::{GilEnabled, GilReading, StateTick, ThreadObservation, ThreadState};

/// One state tick: every GIL's head, then every thread's syscall file (and, for a thread that
/// reads runnable, its scheduler statistics), classified by [`classify`]. `None` when a read
/// failed or the GIL names a holder that is not in the thread table.
pub(super) fn read_state(
    mem: &dyn Memory,
    pid: i32,
    table: &mut ThreadTable,
    at: Duration,
) -> Option<StateTick> {
    let mut gils = Vec::with_capacity(table.gils.len());
    let mut views = Vec::with_capacity(table.gils.len());
    for (gil, addresses) in table.gils.iter().zip(table.gil_addresses()) {
        let enabled = match gil.enabled_at {
            Some(addr) => Some(gil_enabled(mem, addr)?),
            None => None,
        };
        let head = GilHead::read(mem, gil.address).ok()?;
        let last_holder = table.holder(head.last_holder);
        let disabled = enabled == Some(GilEnabled::Disabled);
        let holder = if head.locked && !disabled {
            Some(last_holder?)
        } else {
            None
        };
        views.push(GilView {
            addresses,
            holder,
            last_holder,
            switch_number: head.switch_number,
            disabled,
            sleepers: 0,
        });
        gils.push(GilReading {
            interpreter: gil.interpreter,
            locked: head.locked,
            holder,
            switch_number: head.switch_number,
            interval_us: head.interval_us,
            enabled,
        });
    }
    // Every thread's system call first: how many sleep on each GIL is part of what a
    // runnable thread is judged by.
    let syscalls: Vec<Option<Syscall>> = table.threads.iter().map(|t| t.files.syscall()).collect();
    for addr in syscalls.iter().flatten().filter_map(Syscall::futex_addr) {
        if let Some(v) = views
            .iter_mut()
            .find(|v| v.addresses.futex_state(addr) == Some(ThreadState::Waiting))
        {
            v.sleepers += 1;
        }
    }
    // A holder seen blocked may have dropped the GIL between the two reads (a lock's
    // acquire releases it, then blocks): read its GIL again, and believe the hold only if
    // the GIL still names it with no handoff since.
    for (view, gil) in views.iter_mut().zip(&table.gils) {
        let Some(tid) = view.holder else { continue };
        let blocked = table
            .threads
            .iter()
            .zip(&syscalls)
            .any(|(t, s)| t.tid == tid && matches!(s, Some(Syscall::Blocked { .. })));
        if !blocked {
            continue;
        }
        let still = GilHead::read(mem, gil.address).ok().is_some_and(|h| {
            h.locked
                && table.holder(h.last_holder) == Some(tid)
                && h.switch_number == view.switch_number
        });
        if !still {
            view.holder = None;
        }
    }
    let mut threads = Vec::with_capacity(table.threads.len());
    for (i, syscall) in syscalls.into_iter().enumerate() {
        let own_gil = table.gil_of(table.threads[i].interpreter);
        // A thread that ended between the refresh and now is simply left out of this tick.
        let Some(syscall) = syscall else {
            continue;
        };
        let fd_kind = syscall.io_fd().and_then(|fd| table.fd_kind(pid, fd));
        let t = &mut table.threads[i];
        let sched = wants_sched(syscall, t.previous.as_ref())
            .then(|| t.files.schedstat())
            .flatten();
        let reading = Reading {
            tid: t.tid,
            at_ns: at.as_nanos() as u64,
            own_gil,
            syscall,
            sched,
            fd_kind,
        };
        let c = classify(&reading, t.previous.as_ref(), &views);
        t.previous = Some(c);
        threads.push(ThreadObservation {
            tid: t.tid,
            state: c.state,
            on_cpu: c.on_cpu,
            queued: c.queued,
            stalled: c.stalled,
            gil: gils.get(c.gil).map_or(0, |r| r.interpreter),
            io: c.io,
            native: None,
        });
    }
    Some(StateTick { at, gils, threads })
}

/// A free-threaded GIL's `int enabled`: 0 while disabled, a count of transient requests or
/// `INT_MAX` once enabled for good. `None` when the read failed.
fn gil_enabled(mem: &dyn Memory, addr: u64) -> Option<GilEnabled> {
    let mut buf = [0u8; 4];
    mem.read(addr, &mut buf).ok()?;
    Some(GilEnabled::from_raw(i32::from_le_bytes(buf)))
}
