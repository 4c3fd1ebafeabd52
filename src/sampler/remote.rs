//! The target's memory as [`Memory`]: one read through remoteprocess (which falls back to
//! `/proc/<pid>/mem` where `process_vm_readv` is not allowed), and a batch of reads through
//! `process_vm_readv` with up to [`IOV_MAX`] ranges per call.

use std::mem::MaybeUninit;

use remoteprocess::{Process, ProcessMemory};

use crate::cpython::{Batch, Memory, Range};

/// Ranges one `process_vm_readv` takes at most (Linux's `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

pub(crate) struct Remote<'a>(pub(crate) &'a Process);

impl Memory for Remote<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.0
            .read(addr as usize, buf)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    /// As few `process_vm_readv` calls as the batch allows. The kernel reads the ranges in
    /// order and stops at the first it cannot read: that one is tried alone (to tell a
    /// range that fails from one cut at a page it could not read) and the call goes on
    /// after it. Where the call is not allowed at all, every range is read one by one.
    fn read_batch(&self, batch: &mut Batch) {
        let pid = self.0.pid;
        let (reads, data) = batch.parts();
        let mut next = 0;
        while next < reads.len() {
            let end = (next + IOV_MAX).min(reads.len());
            let done = readv(pid, &reads[next..end], data);
            let Some(read) = done else {
                // Not allowed (EPERM, ENOSYS): one by one, through the fallback.
                for r in &mut reads[next..] {
                    r.ok = self
                        .read(r.addr, &mut data[r.start..r.start + r.len])
                        .is_ok();
                }
                return;
            };
            // The ranges wholly read.
            let mut left = read;
            let mut k = next;
            while k < end && left >= reads[k].len {
                left -= reads[k].len;
                reads[k].ok = true;
                k += 1;
            }
            if k < end {
                // The range the kernel stopped at.
                let r = &mut reads[k];
                r.ok = self
                    .read(r.addr, &mut data[r.start..r.start + r.len])
                    .is_ok();
                k += 1;
            }
            next = k;
        }
    }
}

/// One `process_vm_readv` of `reads` into their places in `data`: the bytes read (0 when
/// the first range fails), or `None` when the call itself is not allowed.
fn readv(pid: i32, reads: &[Range], data: &mut [u8]) -> Option<usize> {
    assert!(reads.len() <= IOV_MAX);
    let base = data.as_mut_ptr();
    // On the stack and left uninitialised beyond what is used: no allocation, no clearing.
    let mut local = [const { MaybeUninit::<libc::iovec>::uninit() }; IOV_MAX];
    let mut remote = [const { MaybeUninit::<libc::iovec>::uninit() }; IOV_MAX];
    for (k, r) in reads.iter().enumerate() {
        assert!(
            r.start + r.len <= data.len(),
            "a range outside the batch's buffer"
        );
        local[k].write(libc::iovec {
            // SAFETY: inside `data`, checked above.
            iov_base: unsafe { base.add(r.start) }.cast(),
            iov_len: r.len,
        });
        remote[k].write(libc::iovec {
            iov_base: r.addr as *mut libc::c_void,
            iov_len: r.len,
        });
    }
    // SAFETY: the first `reads.len()` iovecs of each array are written above; every local
    // one points into `data`, which outlives the call; the remote ones are only read by the
    // kernel from the other process.
    let n = unsafe {
        libc::process_vm_readv(
            pid,
            local.as_ptr().cast(),
            reads.len() as libc::c_ulong,
            remote.as_ptr().cast(),
            reads.len() as libc::c_ulong,
            0,
        )
    };
    if n >= 0 {
        return Some(n as usize);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EPERM) | Some(libc::ENOSYS) => None,
        // EFAULT, ESRCH, ...: nothing was read.
        _ => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_this_process_and_a_bad_range_fails_alone() {
        let words: Vec<u64> = (0..4096).collect();
        let me = Process::new(std::process::id() as i32).unwrap();
        let mem = Remote(&me);
        let mut b = Batch::default();
        let at = |k: usize| &words[k] as *const u64 as u64;
        let ids: Vec<_> = (0..3000).map(|k| b.push(at(k), 8)).collect();
        let bad = b.push(8, 16);
        let after = b.push(at(7), 16);
        b.run(&mem);
        for (k, &id) in ids.iter().enumerate() {
            assert_eq!(b.get(id), Some(&(k as u64).to_le_bytes()[..]), "read {k}");
        }
        assert_eq!(b.get(bad), None);
        let mut both = 7u64.to_le_bytes().to_vec();
        both.extend(8u64.to_le_bytes());
        assert_eq!(b.get(after), Some(&both[..]));
    }
}
