//! The batched walk: frames on CPython 3.11+'s data-stack chunks are copied a chunk at a time,
//! a tick's reads are batched, code objects are known without a read once cached, and
//! garbage in a chunk costs the thread's sample, never a hang.

use std::cell::Cell;

use super::*;
use crate::cpython::Batch;
use crate::model::Frame;

/// Memory that counts what is asked of it: batches, and the ranges read.
struct Counting<'a> {
    mem: &'a Ranges,
    batches: Cell<usize>,
    ranges: Cell<usize>,
}

impl<'a> Counting<'a> {
    fn new(mem: &'a Ranges) -> Self {
        Counting {
            mem,
            batches: Cell::new(0),
            ranges: Cell::new(0),
        }
    }

    /// (batches, ranges) since the last call.
    fn take(&self) -> (usize, usize) {
        (self.batches.take(), self.ranges.take())
    }
}

impl Memory for Counting<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.ranges.set(self.ranges.get() + 1);
        self.mem.read(addr, buf)
    }

    fn read_batch(&self, batch: &mut Batch) {
        self.batches.set(self.batches.get() + 1);
        let (reads, data) = batch.parts();
        for r in reads {
            self.ranges.set(self.ranges.get() + 1);
            r.ok = self
                .mem
                .read(r.addr, &mut data[r.start..r.start + r.len])
                .is_ok();
        }
    }
}

/// Chunk header: `previous`, `size`, `top`.
const HEADER: usize = 24;

/// A chunk at `addr` after `previous` holding `n` frames of `f` (unit 2: line 11), each
/// pointing to the one below it, the first to `below`. The chunk's bytes and the address of
/// its newest frame.
fn chunk(l: &FrameLayout, addr: u64, previous: u64, n: usize, below: u64) -> (Vec<u8>, u64) {
    let mut bytes = object(HEADER, &[(0, &previous.to_le_bytes())]);
    let mut prev = below;
    for k in 0..n {
        let at = addr + (HEADER + k * FRAME_SIZE) as u64;
        bytes.extend(frame_bytes(l, prev, F, 2, 0));
        prev = at;
    }
    (bytes, prev)
}

const MAIN: u64 = 0x40_000;
const F: u64 = 0x50_000;
const OLDER: u64 = 0x100_000;
const NEWER: u64 = 0x200_000;
const GENERATOR_FRAME: u64 = 0xa0_000;

/// A thread 501 frames deep: `main` at the bottom of the older chunk, 199 frames of `f`
/// above it, 300 in the newer chunk, and the innermost in a generator, off the data stack.
fn deep(l: &FrameLayout, older_link: u64) -> (Ranges, Vec<Frame>) {
    let mut m = process(l);
    code(&mut m, l, MAIN, "main", 10, &TABLE);
    code(&mut m, l, F, "f", 10, &TABLE);
    let main_at = OLDER + HEADER as u64;
    let mut older = object(HEADER, &[]);
    older.extend(frame_bytes(l, 0, MAIN, 0, 0));
    let (rest, older_top) = chunk(l, OLDER, 0, 199, main_at);
    older.extend_from_slice(&rest[HEADER..]);
    // Frames after the first one sit one FRAME_SIZE further up.
    let older_top = older_top + FRAME_SIZE as u64;
    let older = relink(l, older, OLDER, main_at);
    m.put(OLDER, older);
    let (newer, newest) = chunk(l, NEWER, older_link, 300, older_top);
    let top = NEWER + newer.len() as u64;
    m.put(NEWER, newer);
    frame(&mut m, l, GENERATOR_FRAME, newest, F, 2, 0);
    tstate_with_chunk(&mut m, l, GENERATOR_FRAME, NEWER, top);
    let mut expected = vec![at_line("main", 10)];
    expected.extend(std::iter::repeat_n(at_line("f", 11), 500));
    (m, expected)
}

/// The frames of a chunk at `addr` linked each to the one below it, the first to 0.
fn relink(l: &FrameLayout, mut bytes: Vec<u8>, addr: u64, first: u64) -> Vec<u8> {
    let mut prev = 0u64;
    let mut at = first;
    while ((at - addr) as usize) + FRAME_SIZE <= bytes.len() {
        let off = (at - addr) as usize + l.previous;
        bytes[off..off + 8].copy_from_slice(&prev.to_le_bytes());
        prev = at;
        at += FRAME_SIZE as u64;
    }
    bytes
}

#[test]
fn a_deep_stack_is_read_a_chunk_at_a_time_and_then_without_a_read_per_frame() {
    let l = layout_3_13t();
    let (m, expected) = deep(&l, OLDER);
    let mem = Counting::new(&m);
    let mut reader = StackReader::new(l);
    assert_eq!(reader.read_stack(&mem, TSTATE).unwrap().to_vec(), expected);
    let (batches, ranges) = mem.take();
    // Heads, starts (the newer chunk), the generator's frame, the older chunk, code heads;
    // then the code objects' types, names and line tables once.
    assert_eq!(batches, 5, "batches");
    assert!(
        ranges < 40,
        "{ranges} reads for 501 frames of two code objects"
    );
    // Known code: the next tick makes the same five batches of six reads (the thread state,
    // two chunks, the generator's frame, two code heads) and nothing else.
    assert_eq!(reader.read_stack(&mem, TSTATE).unwrap().to_vec(), expected);
    assert_eq!(mem.take(), (5, 6));
}

#[test]
fn a_stack_read_again_is_the_same_stack_until_its_code_changes() {
    let l = layout_3_13t();
    let (mut m, expected) = deep(&l, OLDER);
    let mut reader = StackReader::new(l);
    let first = reader.read_stack(&m, TSTATE).unwrap();
    let again = reader.read_stack(&m, TSTATE).unwrap();
    // The same allocation: no frame built, and the stack table knows it by its address.
    assert!(std::sync::Arc::ptr_eq(&first, &again));
    assert_eq!(*again, *expected);
    // Other code at f's address (a function defined where a freed one was): the frames are
    // the same code addresses at the same instructions, and still read again from the code.
    code(&mut m, &l, F, "g", 20, &TABLE);
    let after = reader.read_stack(&m, TSTATE).unwrap();
    assert!(!std::sync::Arc::ptr_eq(&first, &after));
    assert_eq!(after.len(), expected.len());
    assert_eq!(after[0], at_line("main", 10));
    assert!(after[1..].iter().all(|f| *f == at_line("g", 21)));
    // And the stack built from the new code is the one known from then on.
    let later = reader.read_stack(&m, TSTATE).unwrap();
    assert!(std::sync::Arc::ptr_eq(&after, &later));
}

#[test]
fn a_chunk_that_cannot_be_followed_is_read_frame_by_frame() {
    let l = layout_3_13t();
    // The newer chunk's link to the older one is garbage: the older frames are read alone.
    let (m, expected) = deep(&l, 0x7000_0000);
    let mem = Counting::new(&m);
    assert_eq!(
        StackReader::new(l)
            .read_stack(&mem, TSTATE)
            .unwrap()
            .to_vec(),
        expected
    );
    // A top past what a copy may read: every frame alone, and still the same stack.
    let (mut m, expected) = deep(&l, OLDER);
    tstate_with_chunk(&mut m, &l, GENERATOR_FRAME, NEWER, NEWER + (1 << 30));
    assert_eq!(
        StackReader::new(l).read_stack(&m, TSTATE).unwrap().to_vec(),
        expected
    );
}

#[test]
fn garbage_on_a_data_stack_fails_the_thread_not_the_reader() {
    let l = layout_3_13t();
    let mut m = process(&l);
    code(&mut m, &l, F, "f", 10, &TABLE);
    // A chunk whose two frames point at each other.
    let a = NEWER + HEADER as u64;
    let b = a + FRAME_SIZE as u64;
    let mut bytes = object(HEADER, &[]);
    bytes.extend(frame_bytes(&l, b, F, 0, 0));
    bytes.extend(frame_bytes(&l, a, F, 0, 0));
    let top = NEWER + bytes.len() as u64;
    m.put(NEWER, bytes);
    tstate_with_chunk(&mut m, &l, b, NEWER, top);
    let mut reader = StackReader::new(l);
    let err = reader.read_stack(&m, TSTATE).unwrap_err();
    assert!(format!("{err:#}").contains("garbage"), "{err:#}");
    // A second thread with a good stack, read in the same batch, is unharmed.
    let good = 0x95_000;
    m.put(
        good,
        object(1024, &[(l.current_frame, &0xa5_000u64.to_le_bytes())]),
    );
    frame(&mut m, &l, 0xa5_000, 0, F, 2, 0);
    let stacks = reader.read_stacks(&m, &[TSTATE, good]);
    assert!(stacks[0].is_err());
    assert_eq!(**stacks[1].as_ref().unwrap(), [at_line("f", 11)]);
}

/// 3.14's layout, with `PyThreadState.interp` and the interpreter's code generation.
fn layout_3_14() -> FrameLayout {
    FrameLayout::new(&offsets(OFFSETS_3_14)).unwrap()
}

const INTERP: u64 = 0x300_000;

#[test]
fn while_no_code_object_is_freed_known_code_costs_no_read() {
    let l = layout_3_14();
    let (gen, interp) = (l.code_generation.unwrap(), l.tstate_interp.unwrap());
    let mut m = process(&l);
    code(&mut m, &l, F, "f", 10, &TABLE);
    frame(&mut m, &l, 0xa0_000, 0, F, 2, 0);
    let put_tstate = |m: &mut Ranges| {
        m.put(
            TSTATE,
            object(
                1024,
                &[
                    (l.current_frame, &0xa0_000u64.to_le_bytes()),
                    (interp, &INTERP.to_le_bytes()),
                ],
            ),
        )
    };
    put_tstate(&mut m);
    let generation =
        |m: &mut Ranges, n: u64| m.put(INTERP, object(gen + 8, &[(gen, &n.to_le_bytes())]));
    generation(&mut m, 7);
    let mut reader = StackReader::new(l);
    assert_eq!(
        reader.read_stack(&m, TSTATE).unwrap().to_vec(),
        [at_line("f", 11)]
    );
    let counted = Counting::new(&m);
    reader.read_stack(&counted, TSTATE).unwrap().to_vec();
    // The thread state, then its frame and the generation: no code object read.
    assert_eq!(counted.take(), (3, 3));
    // A code object is freed (the generation moves) and new code takes its address.
    code(&mut m, &l, F, "g", 20, &TABLE);
    generation(&mut m, 8);
    assert_eq!(
        reader.read_stack(&m, TSTATE).unwrap().to_vec(),
        [at_line("g", 21)]
    );
}
