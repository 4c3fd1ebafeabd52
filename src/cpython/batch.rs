//! Many reads of another process's memory done as one: the stack reader asks for every
//! thread's frames, chunks and code objects of a step at once, and the target's [`Memory`]
//! answers them in as few system calls as it can (`process_vm_readv` takes up to 1024
//! ranges per call).
//!
//! A batch owns one buffer for every range it holds and is cleared, not dropped, between
//! steps: after the first ticks, reading costs no allocation.

use super::Memory;

/// Reads to do together, and what they read.
#[derive(Debug, Default)]
pub struct Batch {
    /// Each read's address, length and where its bytes start in `data`.
    reads: Vec<Range>,
    data: Vec<u8>,
}

/// One read of a batch.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub addr: u64,
    pub len: usize,
    pub start: usize,
    /// Whether all of it was read.
    pub ok: bool,
}

/// Which read of a batch: what [`Batch::push`] returned.
pub type ReadId = usize;

impl Batch {
    /// Forgets every read, keeping the memory for the next.
    pub fn clear(&mut self) {
        self.reads.clear();
        self.data.clear();
    }

    /// Adds a read of `len` bytes at `addr`.
    pub fn push(&mut self, addr: u64, len: usize) -> ReadId {
        let start = self.data.len();
        self.data.resize(start + len, 0);
        self.reads.push(Range {
            addr,
            len,
            start,
            ok: false,
        });
        self.reads.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.reads.is_empty()
    }

    /// The bytes of read `id`, if it succeeded.
    pub fn get(&self, id: ReadId) -> Option<&[u8]> {
        let r = self.reads[id];
        r.ok.then(|| &self.data[r.start..r.start + r.len])
    }

    /// Does every read, through `mem`.
    pub fn run(&mut self, mem: &dyn Memory) {
        mem.read_batch(self);
    }

    /// The reads and the buffer they land in, for a [`Memory`] that reads them.
    pub fn parts(&mut self) -> (&mut [Range], &mut [u8]) {
        (&mut self.reads, &mut self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Low;

    impl Memory for Low {
        /// Answers below 0x1000 with the low byte of each address; fails above.
        fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
            if addr + buf.len() as u64 > 0x1000 {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
            for (k, b) in buf.iter_mut().enumerate() {
                *b = (addr + k as u64) as u8;
            }
            Ok(())
        }
    }

    #[test]
    fn each_read_lands_in_its_own_bytes_and_a_failed_one_says_so() {
        let mut b = Batch::default();
        let first = b.push(0x10, 4);
        let bad = b.push(0xfff, 2);
        let last = b.push(0x20, 2);
        b.run(&Low);
        assert_eq!(b.get(first), Some(&[0x10, 0x11, 0x12, 0x13][..]));
        assert_eq!(b.get(bad), None);
        assert_eq!(b.get(last), Some(&[0x20, 0x21][..]));
        b.clear();
        assert!(b.is_empty());
    }
}
