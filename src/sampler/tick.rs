//! One state tick read: every GIL's head and every thread's `/proc` files, classified. The
//! sampling loop ([`super::run`]) and `gilscope dump` ([`super::snapshot`]) both read a tick
//! this way.
//!
//! On CPython 3.15+, whose thread states say whether their thread holds or waits for the GIL
//! ([`GilFlags`]), those words are read with the GIL heads in one batch, and a thread inside
//! `take_gil()` is classified from them alone ([`classify_requesting`]): no `/proc` file is
//! read for it. Every other thread, and every thread of earlier versions, is read in full.

use std::time::Duration;

use super::threads::{ThreadTable, Tracked};
use crate::cpython::layout::{gil_struct, GilFlags};
use crate::cpython::{Batch, GilHead, Layout, Memory, ReadId};
use crate::gil::{
    classify, classify_requesting, wants_sched, Classified, GilView, Reading, Requesting, Syscall,
};
use crate::model::{GilEnabled, GilReading, StateTick, ThreadObservation, ThreadState, Tid};

/// Reads state ticks; keeps its batch of reads from one tick to the next, so that a tick
/// allocates nothing for them.
#[derive(Debug, Default)]
pub(super) struct StateReader {
    batch: Batch,
}

/// Thread states closer than this are read as one range: CPython allocates them one after
/// another (1120 bytes apart in 3.15), and one range of a few pages costs the kernel less than
/// a range per thread (`process_vm_readv` pins each range's pages on its own).
const MERGE_GAP: u64 = 4096;
/// The longest range merged thread states are read in.
const MERGE_MAX: u64 = 64 << 10;

/// Where one thread's GIL words land in the batch: in read `range`, at these offsets of its
/// bytes.
#[derive(Clone, Copy, Debug)]
struct FlagReads {
    range: ReadId,
    holds_gil: usize,
    gil_requested: usize,
    native_tid: usize,
}

/// What one thread was read as at this tick.
enum Read {
    /// Inside take_gil(), from its thread state: classified already.
    Memory(Classified),
    /// Its `/proc` system call file.
    Proc(Syscall),
    /// It ended since the last refresh.
    Gone,
}

impl StateReader {
    /// One state tick: every GIL's head (and, on 3.15+, every thread's GIL words) in one
    /// batch, then the syscall file of every thread not known to be inside take_gil() (and,
    /// for a thread that reads runnable, its scheduler statistics), classified by
    /// [`classify`]. `None` when a read failed or the GIL names a holder that is not in the
    /// thread table.
    pub(super) fn read(
        &mut self,
        mem: &dyn Memory,
        pid: i32,
        layout: &Layout,
        table: &mut ThreadTable,
        at: Duration,
    ) -> Option<StateTick> {
        let at_ns = at.as_nanos() as u64;
        let batch = &mut self.batch;
        batch.clear();
        let heads: Vec<(ReadId, Option<ReadId>)> = table
            .gils
            .iter()
            .map(|g| {
                let head = batch.push(g.address, gil_struct::HEAD);
                (head, g.enabled_at.map(|addr| batch.push(addr, 4)))
            })
            .collect();
        let words = layout.tstate_gil_flags.zip(layout.tstate_native_thread_id);
        let flags = match words {
            Some((f, tid_at)) => push_flags(batch, &table.threads, f, tid_at),
            None => Vec::new(),
        };
        batch.run(mem);

        let mut gils = Vec::with_capacity(table.gils.len());
        let mut views = Vec::with_capacity(table.gils.len());
        for ((gil, addresses), (head, enabled)) in
            table.gils.iter().zip(table.gil_addresses()).zip(heads)
        {
            let enabled = match enabled {
                Some(id) => Some(GilEnabled::from_raw(i32_at(batch.get(id)?, 0))),
                None => None,
            };
            let head = GilHead::parse(batch.get(head)?)?;
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
        // Every thread's reading first: how many sleep on each GIL is part of what a
        // runnable thread is judged by. A thread inside take_gil() counts as one of its GIL's
        // sleepers, as it would if its futex had been read.
        let reads: Vec<Read> = table
            .threads
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let own_gil = table.gil_of(t.interpreter);
                let from_memory = flags
                    .get(i)
                    .copied()
                    .flatten()
                    .filter(|r| requesting(batch, r, t.tid))
                    .and_then(|_| {
                        let r = Requesting {
                            tid: t.tid,
                            at_ns,
                            own_gil,
                        };
                        classify_requesting(&r, t.previous.as_ref(), &views)
                    });
                match from_memory {
                    Some(c) => Read::Memory(c),
                    None => t.files.syscall().map_or(Read::Gone, Read::Proc),
                }
            })
            .collect();
        for read in &reads {
            let view = match read {
                Read::Memory(c) => views.get_mut(c.gil),
                Read::Proc(s) => s.futex_addr().and_then(|addr| {
                    views
                        .iter_mut()
                        .find(|v| v.addresses.futex_state(addr) == Some(ThreadState::Waiting))
                }),
                Read::Gone => None,
            };
            if let Some(v) = view {
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
                .zip(&reads)
                .any(|(t, r)| t.tid == tid && matches!(r, Read::Proc(Syscall::Blocked { .. })));
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
        for (i, read) in reads.into_iter().enumerate() {
            let own_gil = table.gil_of(table.threads[i].interpreter);
            let c = match read {
                Read::Memory(c) => c,
                Read::Proc(syscall) => {
                    let fd_kind = syscall.io_fd().and_then(|fd| table.fd_kind(pid, fd));
                    let t = &table.threads[i];
                    let sched = wants_sched(syscall, t.previous.as_ref())
                        .then(|| t.files.schedstat())
                        .flatten();
                    let reading = Reading {
                        tid: t.tid,
                        at_ns,
                        own_gil,
                        syscall,
                        sched,
                        fd_kind,
                    };
                    classify(&reading, t.previous.as_ref(), &views)
                }
                // A thread that ended between the refresh and now is simply left out of this
                // tick.
                Read::Gone => continue,
            };
            let t = &mut table.threads[i];
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
}

/// Adds the reads of every thread's GIL words to the batch: those of its thread state in the
/// interpreter it runs in (the newest), the one whose GIL it would wait for; thread states
/// near each other in one range.
fn push_flags(
    batch: &mut Batch,
    threads: &[Tracked],
    f: GilFlags,
    tid_at: usize,
) -> Vec<Option<FlagReads>> {
    let fields = [(f.holds_gil, 4), (f.gil_requested, 4), (tid_at, 8)];
    let first = fields.iter().map(|&(off, _)| off).min().unwrap_or(0) as u64;
    let end = fields
        .iter()
        .map(|&(off, len)| off + len)
        .max()
        .unwrap_or(0) as u64;
    // (thread, start of its words, their end), by address.
    let mut spans: Vec<(usize, u64, u64)> = threads
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let &(_, tstate) = t.tstates.last()?;
            Some((i, tstate.checked_add(first)?, tstate.checked_add(end)?))
        })
        .collect();
    spans.sort_unstable_by_key(|&(_, lo, _)| lo);
    let mut out = vec![None; threads.len()];
    let mut k = 0;
    while k < spans.len() {
        let (lo, mut hi) = (spans[k].1, spans[k].2);
        let mut j = k + 1;
        while j < spans.len()
            && spans[j].1 <= hi.saturating_add(MERGE_GAP)
            && spans[j].2 - lo <= MERGE_MAX
        {
            hi = hi.max(spans[j].2);
            j += 1;
        }
        let range = batch.push(lo, (hi - lo) as usize);
        for &(i, start, _) in &spans[k..j] {
            // Where the thread state would start in the range: `first` bytes before its words.
            let at = |off: usize| (start - lo) as usize + (off - first as usize);
            out[i] = Some(FlagReads {
                range,
                holds_gil: at(f.holds_gil),
                gil_requested: at(f.gil_requested),
                native_tid: at(tid_at),
            });
        }
        k = j;
    }
    out
}

/// Whether a thread's words, as read, say it is inside take_gil() waiting for the GIL:
/// `gil_requested` 1 and `holds_gil` 0, in the thread state of this very thread (its
/// `native_thread_id`: a thread state freed and reused by another thread since the last
/// refresh does not speak for the thread the table has). Anything else — a failed read,
/// other values (a torn or freed thread state) — sends the thread through its full reading.
fn requesting(batch: &Batch, r: &FlagReads, tid: Tid) -> bool {
    let Some(bytes) = batch.get(r.range) else {
        return false;
    };
    let field = |at: usize, len: usize| bytes.get(at..at.checked_add(len)?);
    let int = |at| field(at, 4).map(|b| i32_at(b, 0));
    let native_tid = field(r.native_tid, 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
    int(r.holds_gil) == Some(0)
        && int(r.gil_requested) == Some(1)
        && native_tid == u64::try_from(tid).ok()
}

/// The little-endian `int` at `at` of `bytes` (at least `at + 4` long).
fn i32_at(bytes: &[u8], at: usize) -> i32 {
    i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}
