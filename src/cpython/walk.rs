//! Follows `_PyRuntime` to every interpreter, its GIL and its threads.

use anyhow::{bail, Context, Result};

use super::layout::{gil_struct, GilPlace, Layout};
use super::Memory;

/// Bounds on list walks: a garbage pointer must not send the walk round a loop for ever.
const MAX_INTERPRETERS: usize = 256;
const MAX_THREADS: usize = 16_384;

/// One interpreter and its GIL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interpreter {
    pub id: i64,
    /// Address of the fields of its `struct _gil_runtime_state` that [`super::GilHead`]
    /// reads (shared GILs have the same address); 0 when it has none yet.
    pub gil: u64,
    /// Free-threaded builds: address of the GIL's `int enabled` (0 while the GIL is disabled).
    pub gil_enabled: Option<u64>,
    pub threads: Vec<PyThread>,
}

/// One `PyThreadState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PyThread {
    /// The `PyThreadState*`, as `gil->last_holder` names it.
    pub tstate: u64,
    /// `tstate->thread_id`: the thread's `pthread_t`.
    pub pthread: u64,
    /// `tstate->native_thread_id` (3.11+): the OS thread id.
    pub native_tid: Option<i32>,
}

/// Reads every interpreter, its GIL address and its thread states.
pub fn walk(mem: &dyn Memory, runtime: u64, layout: &Layout) -> Result<Vec<Interpreter>> {
    let mut interpreters = Vec::new();
    let mut interp = mem
        .read_u64(runtime + layout.runtime_interpreters_head as u64)
        .context("reading _PyRuntime.interpreters.head")?;
    while interp != 0 {
        if interpreters.len() >= MAX_INTERPRETERS {
            bail!("more than {MAX_INTERPRETERS} interpreters: the list is garbage");
        }
        let id = mem.read_u64(interp + layout.interp_id as u64)? as i64;
        let gil_struct = match layout.gil {
            GilPlace::InRuntime(off) => runtime + off as u64,
            GilPlace::InterpreterPointer(off) => mem.read_u64(interp + off as u64)?,
        };
        let (gil, gil_enabled) = match (layout.free_threaded, gil_struct) {
            (_, 0) => (0, None),
            (true, at) => (at + gil_struct::FREE_THREADED_FIELDS_AT, Some(at)),
            (false, at) => (at, None),
        };
        let threads = walk_threads(mem, interp, layout)?;
        interpreters.push(Interpreter {
            id,
            gil,
            gil_enabled,
            threads,
        });
        interp = mem.read_u64(interp + layout.interp_next as u64)?;
    }
    Ok(interpreters)
}

fn walk_threads(mem: &dyn Memory, interp: u64, layout: &Layout) -> Result<Vec<PyThread>> {
    let mut threads = Vec::new();
    let mut tstate = mem.read_u64(interp + layout.interp_threads_head as u64)?;
    while tstate != 0 {
        if threads.len() >= MAX_THREADS {
            bail!("more than {MAX_THREADS} threads: the list is garbage");
        }
        let pthread = mem.read_u64(tstate + layout.tstate_thread_id as u64)?;
        let native_tid = match layout.tstate_native_thread_id {
            Some(off) => Some(mem.read_u64(tstate + off as u64)? as i32),
            None => None,
        };
        threads.push(PyThread {
            tstate,
            pthread,
            native_tid,
        });
        tstate = mem.read_u64(tstate + layout.tstate_next as u64)?;
    }
    Ok(threads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Memory made of 8-byte words at chosen addresses; reading anything else fails.
    #[derive(Default)]
    struct Words(HashMap<u64, u64>);

    impl Memory for Words {
        fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
            let w = self.0.get(&addr).ok_or(std::io::ErrorKind::InvalidData)?;
            buf.copy_from_slice(&w.to_le_bytes()[..buf.len()]);
            Ok(())
        }
    }

    #[test]
    fn walks_interpreters_and_threads_on_3_12() {
        let l = Layout::for_version(3, 12).unwrap();
        let (rt, interp, t1, t2) = (0x1000u64, 0x2000u64, 0x3000u64, 0x4000u64);
        let mut m = Words::default();
        m.0.insert(rt + l.runtime_interpreters_head as u64, interp);
        m.0.insert(interp + l.interp_id as u64, 0);
        m.0.insert(interp + 384, 0x9000);
        m.0.insert(interp + l.interp_threads_head as u64, t1);
        m.0.insert(interp + l.interp_next as u64, 0);
        for (t, next, tid) in [(t1, t2, 11u64), (t2, 0, 12)] {
            m.0.insert(t + l.tstate_thread_id as u64, 0x7f00 + tid);
            m.0.insert(t + l.tstate_native_thread_id.unwrap() as u64, tid);
            m.0.insert(t + l.tstate_next as u64, next);
        }
        let interps = walk(&m, rt, &l).unwrap();
        assert_eq!(interps.len(), 1);
        assert_eq!(interps[0].gil, 0x9000);
        let tids: Vec<_> = interps[0].threads.iter().map(|t| t.native_tid).collect();
        assert_eq!(tids, [Some(11), Some(12)]);
    }

    #[test]
    fn a_cyclic_thread_list_is_an_error_not_a_hang() {
        let l = Layout::for_version(3, 9).unwrap();
        let (rt, interp, t1) = (0x1000u64, 0x2000u64, 0x3000u64);
        let mut m = Words::default();
        m.0.insert(rt + l.runtime_interpreters_head as u64, interp);
        m.0.insert(interp + l.interp_id as u64, 0);
        m.0.insert(interp + l.interp_threads_head as u64, t1);
        m.0.insert(t1 + l.tstate_thread_id as u64, 1);
        m.0.insert(t1 + l.tstate_next as u64, t1);
        assert!(walk(&m, rt, &l).is_err());
    }
}
