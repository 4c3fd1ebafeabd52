//! The frame walk of every version against synthetic memory laid out as each CPython lays it.

use super::strings::read_str;
use super::*;
use crate::cpython::debug_offsets::{read_len, DebugOffsets, COOKIE};
use crate::model::{Frame, MAX_NAME_CHARS};

/// `_Py_DebugOffsets` after the cookie, as a free-threaded CPython 3.13.5 fills it in
/// (read from a live process).
const OFFSETS_3_13T: &[u64] = &[
    51185136, 1, 328320, 608, 632, 215616, 7272, 7264, 7344, 7400, 7664, 7648, 7656, 16, 7760, 0,
    7784, 7776, 304, 0, 8, 16, 72, 152, 160, 232, 32, 80, 8, 0, 56, 72, 70, 224, 128, 136, 144,
    152, 84, 68, 112, 120, 216, 32, 24, 432, 40, 104, 184, 48, 40, 32, 56, 40, 32, 64, 48, 56, 40,
    32, 48, 32, 40, 56, 32, 48, 80, 48, 32, 56,
];

/// The same for Debian's CPython 3.14.10.
const OFFSETS_3_14: &[u64] = &[
    51251952, 0, 316616, 784, 808, 225864, 7280, 7272, 7344, 7360, 7408, 7688, 7672, 7680, 16,
    7784, 0, 7800, 7792, 7992, 0, 832, 0, 8, 16, 72, 152, 160, 232, 32, 88, 8, 0, 56, 80, 74, 64,
    0, 216, 112, 120, 128, 136, 68, 52, 96, 104, 208, 0, 16, 8, 416, 24, 88, 168, 40, 32, 16, 40,
    24, 16, 200, 24, 40, 32, 48, 32, 40, 24, 16, 32, 16, 24, 40, 16, 32, 64, 32, 16, 40,
];

fn offsets(words: &[u64]) -> DebugOffsets {
    let mut bytes = COOKIE.to_vec();
    bytes.extend(words.iter().flat_map(|w| w.to_le_bytes()));
    bytes.resize(bytes.len().max(read_len()), 0);
    DebugOffsets::parse(&bytes).unwrap()
}

fn layout_3_13t() -> FrameLayout {
    FrameLayout::new(&offsets(OFFSETS_3_13T)).unwrap()
}

#[test]
fn layouts_come_from_the_published_offsets() {
    let l = layout_3_13t();
    assert_eq!((l.current_frame, l.previous, l.executable), (72, 8, 0));
    assert_eq!((l.instr_ptr, l.owner, l.frame_len()), (56, Some(70), 71));
    assert_eq!((l.co_filename, l.co_name, l.co_linetable), (128, 136, 152));
    assert_eq!(
        (l.co_firstlineno, l.co_code_adaptive, l.ob_type),
        (84, 216, 24)
    );
    assert_eq!((l.ascii_data, l.compact_data, l.kind_shift), (56, 72, 2));
    let l = FrameLayout::new(&offsets(OFFSETS_3_14)).unwrap();
    assert_eq!(
        (l.instr_ptr, l.owner, l.co_code_adaptive),
        (56, Some(74), 208)
    );
    assert_eq!((l.ascii_data, l.compact_data, l.kind_shift), (40, 56, 2));
}

#[test]
fn free_threaded_3_14_is_refused_for_its_thread_local_bytecode() {
    let mut words = OFFSETS_3_14.to_vec();
    words[1] = 1; // free_threaded
    words[48] = 224; // code_object.co_tlbc
    let err = FrameLayout::new(&offsets(&words)).unwrap_err();
    assert!(err.to_string().contains("thread-local bytecode"), "{err}");
}

/// Memory made of byte ranges at chosen addresses; the last range put that holds a read
/// answers it, and reading anything else fails.
#[derive(Default)]
struct Ranges(Vec<(u64, Vec<u8>)>);

impl Ranges {
    fn put(&mut self, addr: u64, bytes: Vec<u8>) {
        self.0.push((addr, bytes));
    }
}

impl Memory for Ranges {
    fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
        for (start, bytes) in self.0.iter().rev() {
            if let Some(from) = addr.checked_sub(*start) {
                if from + buf.len() as u64 <= bytes.len() as u64 {
                    let from = from as usize;
                    buf.copy_from_slice(&bytes[from..from + buf.len()]);
                    return Ok(());
                }
            }
        }
        Err(std::io::ErrorKind::InvalidData.into())
    }
}

/// `len` zero bytes with `fields` written at their offsets.
fn object(len: usize, fields: &[(usize, &[u8])]) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    for (at, value) in fields {
        bytes[*at..*at + value.len()].copy_from_slice(value);
    }
    bytes
}

/// A compact `str` in the 3.13t layout: `state` as CPython sets it, `units` its
/// characters in their kind's width.
fn str_object(l: &FrameLayout, state: u32, length: i64, units: &[u8]) -> Vec<u8> {
    let data = if state & ASCII_ONLY != 0 {
        l.ascii_data
    } else {
        l.compact_data
    };
    let mut bytes = object(
        data,
        &[
            (l.str_state, &state.to_le_bytes()),
            (l.str_length, &length.to_le_bytes()),
        ],
    );
    bytes.extend_from_slice(units);
    bytes
}

/// Bits of a 3.13 `state`: interned:2, kind:3, compact:1, ascii:1.
const INTERNED: u32 = 1;
const KIND: u32 = 1 << 2;
const COMPACT: u32 = 1 << 5;
const ASCII_ONLY: u32 = 1 << 6;
const ASCII: u32 = INTERNED | KIND | COMPACT | ASCII_ONLY; // interned, as names are
const LATIN1: u32 = KIND | COMPACT;
const UCS2: u32 = (2 * KIND) | COMPACT;
const UCS4: u32 = (4 * KIND) | COMPACT;

fn ucs2(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

#[test]
fn strings_of_every_kind_decode() {
    let l = layout_3_13t();
    let mut m = Ranges::default();
    m.put(0x1000, str_object(&l, ASCII, 4, b"spin"));
    m.put(
        0x2000,
        str_object(
            &l,
            LATIN1,
            3,
            "ünï"
                .chars()
                .map(|c| c as u8)
                .collect::<Vec<_>>()
                .as_slice(),
        ),
    );
    m.put(0x3000, str_object(&l, UCS2, 6, &ucs2("спин_λ")));
    m.put(
        0x4000,
        str_object(&l, UCS4, 2, &[0x30, 0xd5, 1, 0, 0, 0xd8, 0, 0]),
    );
    assert_eq!(read_str(&m, &l, 0x1000).unwrap(), "spin");
    assert_eq!(read_str(&m, &l, 0x2000).unwrap(), "ünï");
    assert_eq!(read_str(&m, &l, 0x3000).unwrap(), "спин_λ");
    // U+1D530, then a surrogate, which no char can hold.
    assert_eq!(read_str(&m, &l, 0x4000).unwrap(), "\u{1d530}\u{fffd}");
}

#[test]
fn strings_that_are_not_compact_or_too_long_are_refused_or_cut() {
    let l = layout_3_13t();
    let mut m = Ranges::default();
    m.put(0x1000, str_object(&l, KIND, 4, b"spin")); // not compact
    m.put(0x2000, str_object(&l, ASCII, -1, b""));
    m.put(0x3000, str_object(&l, (3 * KIND) | COMPACT, 1, b"xxx")); // kind 3
    m.put(
        0x4000,
        str_object(&l, ASCII, 1 << 40, &[b'a'; MAX_NAME_CHARS + 1]),
    );
    m.put(0x5000, str_object(&l, ASCII, 4, b"sp")); // characters not readable
    for addr in [0x1000, 0x2000, 0x3000, 0x5000, 0x9000] {
        assert!(read_str(&m, &l, addr).is_err(), "{addr:#x}");
    }
    let long = read_str(&m, &l, 0x4000).unwrap();
    assert_eq!(long.chars().count(), MAX_NAME_CHARS);
    assert!(long.ends_with("a…"), "{}", &long[long.len() - 8..]);
}

const CODE_TYPE: u64 = 0x10_000;
const NONE_TYPE: u64 = 0x11_000;

/// A process holding the types, a code object at `addr` named `name` in file.py with
/// `table` as its line table, and the frames put by [`frame`].
fn process(l: &FrameLayout) -> Ranges {
    let mut m = Ranges::default();
    for (ty, name) in [(CODE_TYPE, 0x10_800u64), (NONE_TYPE, 0x11_800)] {
        m.put(ty, object(432, &[(l.tp_name, &name.to_le_bytes())]));
    }
    m.put(0x10_800, b"code\0".to_vec());
    m.put(0x11_800, b"NoneType\0".to_vec());
    m.put(0x20_000, str_object(l, ASCII, 7, b"file.py"));
    // None: like every object, readable for as many bytes as a code object's head.
    m.put(
        0x30_000,
        object(256, &[(l.ob_type, &NONE_TYPE.to_le_bytes())]),
    );
    m
}

fn code(m: &mut Ranges, l: &FrameLayout, addr: u64, name: &str, firstlineno: i32, table: &[u8]) {
    let (name_at, table_at) = (addr + 0x1000, addr + 0x2000);
    m.put(
        name_at,
        str_object(l, ASCII, name.len() as i64, name.as_bytes()),
    );
    let mut bytes = object(
        l.bytes_data,
        &[(l.bytes_size, &(table.len() as u64).to_le_bytes())],
    );
    bytes.extend_from_slice(table);
    m.put(table_at, bytes);
    m.put(
        addr,
        object(
            l.co_code_adaptive + 64,
            &[
                (l.ob_type, &CODE_TYPE.to_le_bytes()),
                (l.co_filename, &0x20_000u64.to_le_bytes()),
                (l.co_name, &name_at.to_le_bytes()),
                (l.co_linetable, &table_at.to_le_bytes()),
                (l.co_firstlineno, &firstlineno.to_le_bytes()),
            ],
        ),
    );
}

/// A frame at `addr` running code unit `unit` of `executable`.
fn frame(
    m: &mut Ranges,
    l: &FrameLayout,
    addr: u64,
    previous: u64,
    executable: u64,
    unit: u64,
    owner: u8,
) {
    m.put(addr, frame_bytes(l, previous, executable, unit, owner));
}

/// The bytes of a frame as [`frame`] puts them.
fn frame_bytes(l: &FrameLayout, previous: u64, executable: u64, unit: u64, owner: u8) -> Vec<u8> {
    let instr_ptr = (executable & !3) + l.co_code_adaptive as u64 + 2 * unit;
    object(
        FRAME_SIZE,
        &[
            (l.previous, &previous.to_le_bytes()),
            (l.executable, &executable.to_le_bytes()),
            (l.instr_ptr, &instr_ptr.to_le_bytes()),
            (l.owner.unwrap(), &[owner]),
        ],
    )
}

/// What a frame takes in the synthetic memory, and on a synthetic data stack.
const FRAME_SIZE: usize = 80;

const TSTATE: u64 = 0x90_000;

fn tstate(m: &mut Ranges, l: &FrameLayout, current_frame: u64) {
    tstate_with_chunk(m, l, current_frame, 0, 0);
}

/// A thread state whose newest data-stack chunk is at `chunk`, used up to `top`.
fn tstate_with_chunk(m: &mut Ranges, l: &FrameLayout, current_frame: u64, chunk: u64, top: u64) {
    let ds = l.datastack.unwrap();
    m.put(
        TSTATE,
        object(
            1024,
            &[
                (l.current_frame, &current_frame.to_le_bytes()),
                (ds, &chunk.to_le_bytes()),
                (ds + 8, &top.to_le_bytes()),
            ],
        ),
    );
}

/// Line 10 for units 0-1, 11 for 2-3.
const TABLE: [u8; 5] = [0x81, 0, 0xd9, 0, 0];

fn at_line(function: &str, line: u32) -> Frame {
    Frame {
        function: function.into(),
        file: "file.py".into(),
        line,
    }
}

#[test]
fn a_stack_is_read_outermost_first_without_shims_or_non_code() {
    let l = layout_3_13t();
    let mut m = process(&l);
    code(&mut m, &l, 0x40_000, "main", 10, &TABLE);
    code(&mut m, &l, 0x50_000, "spin", 20, &TABLE);
    // Innermost first: a frame running None, spin, a C-stack shim, main.
    tstate(&mut m, &l, 0xa0_000);
    frame(&mut m, &l, 0xa0_000, 0xa1_000, 0x30_000, 0, 0);
    frame(&mut m, &l, 0xa1_000, 0xa2_000, 0x50_002, 2, 0); // a tagged reference
    frame(&mut m, &l, 0xa2_000, 0xa3_000, 0x30_000, 0, 3);
    frame(&mut m, &l, 0xa3_000, 0, 0x40_000, 1, 1);
    let mut reader = StackReader::new(l);
    let expected = [at_line("main", 10), at_line("spin", 21)];
    assert_eq!(reader.read_stack(&m, TSTATE).unwrap().to_vec(), expected);
    assert_eq!(reader.codes.len(), 2);

    // spin's code object is freed and another takes its address.
    code(&mut m, &l, 0x50_000, "work", 30, &TABLE);
    let stack = reader.read_stack(&m, TSTATE).unwrap().to_vec();
    assert_eq!(stack[1], at_line("work", 31));

    tstate(&mut m, &l, 0);
    assert!(reader.read_stack(&m, TSTATE).unwrap().is_empty());
}

#[test]
fn a_cyclic_frame_list_is_an_error_not_a_hang() {
    let l = layout_3_13t();
    let mut m = process(&l);
    code(&mut m, &l, 0x40_000, "main", 10, &TABLE);
    tstate(&mut m, &l, 0xa0_000);
    frame(&mut m, &l, 0xa0_000, 0xa1_000, 0x40_000, 0, 0);
    frame(&mut m, &l, 0xa1_000, 0xa0_000, 0x40_000, 0, 0);
    assert!(StackReader::new(l).read_stack(&m, TSTATE).is_err());
}

#[test]
fn garbage_frames_are_errors() {
    let l = layout_3_13t();
    let mut m = process(&l);
    code(&mut m, &l, 0x40_000, "main", 10, &TABLE);
    tstate(&mut m, &l, 0xa0_000);
    // An owner no CPython has.
    frame(&mut m, &l, 0xa0_000, 0, 0x40_000, 0, 9);
    assert!(StackReader::new(l).read_stack(&m, TSTATE).is_err());
    // An executable that cannot be read.
    frame(&mut m, &l, 0xa0_000, 0, 0x7000_0000, 0, 0);
    assert!(StackReader::new(l).read_stack(&m, TSTATE).is_err());
    // A previous frame that cannot be read.
    frame(&mut m, &l, 0xa0_000, 0x7000_0000, 0x40_000, 0, 0);
    assert!(StackReader::new(l).read_stack(&m, TSTATE).is_err());
    // A line table of a negative size.
    code(&mut m, &l, 0x40_000, "main", 10, &TABLE);
    m.put(
        0x42_000,
        object(l.bytes_data, &[(l.bytes_size, &(-1i64).to_le_bytes())]),
    );
    frame(&mut m, &l, 0xa0_000, 0, 0x40_000, 0, 0);
    assert!(StackReader::new(l).read_stack(&m, TSTATE).is_err());
}

#[test]
fn a_name_that_is_not_a_string_keeps_its_frame_as_a_placeholder() {
    let l = layout_3_13t();
    let mut m = process(&l);
    code(&mut m, &l, 0x40_000, "main", 10, &TABLE);
    m.put(0x41_000, object(128, &[]));
    tstate(&mut m, &l, 0xa0_000);
    frame(&mut m, &l, 0xa0_000, 0, 0x40_000, 2, 0);
    let mut reader = StackReader::new(l);
    let stack = reader.read_stack(&m, TSTATE).unwrap().to_vec();
    assert_eq!(
        stack,
        [Frame {
            function: UNREADABLE_NAME.into(),
            ..at_line("main", 11)
        }]
    );
    assert_eq!(reader.codes.len(), 0, "a placeholder is not remembered");
    // Readable at the next sample: the name shows.
    code(&mut m, &l, 0x40_000, "main", 10, &TABLE);
    assert_eq!(
        reader.read_stack(&m, TSTATE).unwrap().to_vec(),
        [at_line("main", 11)]
    );
}

#[test]
fn long_and_surrogate_names_are_kept_capped_and_replaced() {
    let l = layout_3_13t();
    let mut m = process(&l);
    let long = "f".repeat(5000);
    code(&mut m, &l, 0x40_000, &long, 10, &TABLE);
    // A file name as `surrogateescape` makes it of b"bad\xff.py".
    m.put(
        0x20_000,
        str_object(
            &l,
            UCS2,
            8,
            &ucs2_units(&[0x62, 0x61, 0x64, 0xdcff, 0x2e, 0x70, 0x79, 0x21]),
        ),
    );
    tstate(&mut m, &l, 0xa0_000);
    frame(&mut m, &l, 0xa0_000, 0, 0x40_000, 0, 0);
    let stack = StackReader::new(l).read_stack(&m, TSTATE).unwrap().to_vec();
    assert_eq!(stack.len(), 1);
    assert_eq!(stack[0].function.chars().count(), MAX_NAME_CHARS);
    assert!(stack[0].function.ends_with("f…"));
    assert_eq!(&*stack[0].file, "bad\u{fffd}.py!");
}

#[test]
fn the_function_is_the_qualified_name_where_there_is_one() {
    let l = layout_3_13t();
    let mut m = process(&l);
    code(&mut m, &l, 0x40_000, "meth", 10, &TABLE);
    m.put(0x48_000, str_object(&l, ASCII, 6, b"K.meth"));
    let mut head = object(l.co_code_adaptive + 64, &[]);
    if let Some((_, bytes)) = m.0.iter().rev().find(|(at, _)| *at == 0x40_000) {
        head.copy_from_slice(bytes);
    }
    let q = l.co_qualname.unwrap();
    head[q..q + 8].copy_from_slice(&0x48_000u64.to_le_bytes());
    m.put(0x40_000, head);
    tstate(&mut m, &l, 0xa0_000);
    frame(&mut m, &l, 0xa0_000, 0, 0x40_000, 0, 0);
    let stack = StackReader::new(l).read_stack(&m, TSTATE).unwrap().to_vec();
    assert_eq!(stack, [at_line("K.meth", 10)]);
    // Without a readable qualified name, `co_name`.
    m.put(0x48_000, object(64, &[]));
    assert_eq!(
        StackReader::new(l).read_stack(&m, TSTATE).unwrap().to_vec(),
        [at_line("meth", 10)]
    );
}

fn ucs2_units(units: &[u16]) -> Vec<u8> {
    units.iter().flat_map(|u| u.to_le_bytes()).collect()
}

mod chunks;
