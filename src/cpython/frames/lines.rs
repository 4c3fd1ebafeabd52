//! Which line a frame is on: the three line-table formats CPython has had, decoded into runs
//! of bytecode that share a line.
//!
//! - 3.8, 3.9: `co_lnotab`, pairs of (bytecode bytes, signed line increment); the line
//!   changes after the bytes (`Objects/lnotab_notes.txt` of 3.9).
//! - 3.10: `co_linetable`, pairs of (bytecode bytes, signed line delta, -128 for none); the
//!   line applies to the bytes (`Objects/lnotab_notes.txt` of 3.10).
//! - 3.11+: the location table (`Objects/locations.md`), counted in 2-byte code units.
//!
//! A table is hostile input: garbage ends it, and every decoded run is kept.

/// The line table format of a CPython version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineFormat {
    /// 3.8, 3.9: `co_lnotab`, indexed by bytecode byte offset.
    Lnotab,
    /// 3.10: `co_linetable`, indexed by bytecode byte offset.
    Linetable310,
    /// 3.11+: the location table, indexed by code unit.
    Locations,
}

/// Decodes `table` of `format` into runs, indexed as [`line_at`] expects.
pub fn decode(format: LineFormat, table: &[u8], firstlineno: i32) -> Vec<LineRun> {
    match format {
        LineFormat::Lnotab => decode_lnotab(table, firstlineno),
        LineFormat::Linetable310 => decode_linetable_310(table, firstlineno),
        LineFormat::Locations => decode_linetable(table, firstlineno),
    }
}

/// 3.8/3.9: each pair moves the bytecode offset, then the line; the bytes before the move
/// are on the line before it. The last line runs to the end of the code.
fn decode_lnotab(table: &[u8], firstlineno: i32) -> Vec<LineRun> {
    let mut runs = Vec::new();
    let mut line = i64::from(firstlineno);
    let mut end = 0u64;
    for pair in table.chunks_exact(2) {
        if pair[0] > 0 {
            end += u64::from(pair[0]);
            runs.push(LineRun {
                end,
                line: Some(line),
            });
        }
        line += i64::from(pair[1] as i8);
    }
    runs.push(LineRun {
        end: u64::MAX,
        line: Some(line),
    });
    runs
}

/// 3.10: each pair's bytes are on the line moved by its delta; -128 marks bytes with no
/// line, which leave the line as it was.
fn decode_linetable_310(table: &[u8], firstlineno: i32) -> Vec<LineRun> {
    let mut runs = Vec::new();
    let mut line = i64::from(firstlineno);
    let mut end = 0u64;
    for pair in table.chunks_exact(2) {
        let delta = pair[1] as i8;
        if delta != -128 {
            line += i64::from(delta);
        }
        if pair[0] > 0 {
            end += u64::from(pair[0]);
            runs.push(LineRun {
                end,
                line: (delta != -128).then_some(line),
            });
        }
    }
    runs
}

/// Code units sharing one line: those from the previous run's `end` up to this `end`.
/// `line` is `None` for code with no location.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineRun {
    end: u64,
    line: Option<i64>,
}

/// Decodes a 3.11+ location table into runs of code units. Each entry starts with a byte
/// `1 cccc lll`: code `c`, covering `l + 1` code units. The line starts at `co_firstlineno`
/// and each entry's delta applies to it; an entry with no location leaves it unchanged.
/// Garbage ends the table: the runs decoded up to there are kept.
fn decode_linetable(table: &[u8], firstlineno: i32) -> Vec<LineRun> {
    let mut runs = Vec::new();
    let mut line = i64::from(firstlineno);
    let mut end = 0u64;
    let mut at = 0;
    while let Some((units, delta, next)) = entry(table, at) {
        end += units;
        runs.push(LineRun {
            end,
            line: delta.map(|d| {
                line = line.saturating_add(d);
                line
            }),
        });
        at = next;
    }
    runs
}

/// The location entry at `at`: the code units it covers, its line delta (`None`: no
/// location) and where the next entry starts. `None` at the end or on a malformed entry.
fn entry(table: &[u8], at: usize) -> Option<(u64, Option<i64>, usize)> {
    let first = *table.get(at)?;
    if first & 0x80 == 0 {
        return None;
    }
    let units = u64::from(first & 7) + 1;
    let mut next = at + 1;
    let delta = match (first >> 3) & 15 {
        // No location.
        15 => None,
        // Long form: line delta, end line delta, column + 1, end column + 1.
        14 => {
            let delta = svarint(table, &mut next)?;
            for _ in 0..3 {
                varint(table, &mut next)?;
            }
            Some(delta)
        }
        // No column: line delta.
        13 => Some(svarint(table, &mut next)?),
        // One line: the code is the line delta + 10, then column and end column.
        code @ 10..=12 => {
            skip(table, &mut next, 2)?;
            Some(i64::from(code) - 10)
        }
        // Short form: same line, one byte of columns.
        _ => {
            skip(table, &mut next, 1)?;
            Some(0)
        }
    };
    Some((units, delta, next))
}

/// Steps over `n` bytes, if the table has them.
fn skip(table: &[u8], at: &mut usize, n: usize) -> Option<()> {
    *at += n;
    (*at <= table.len()).then_some(())
}

/// An unsigned varint: 6-bit chunks, least significant first, bit 6 set when another
/// chunk follows.
fn varint(table: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = *table.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 63) << shift;
        if byte & 64 == 0 {
            return Some(value);
        }
        shift += 6;
        if shift >= 64 {
            return None;
        }
    }
}

/// A signed varint: a varint whose lowest bit is the sign.
fn svarint(table: &[u8], at: &mut usize) -> Option<i64> {
    let v = varint(table, at)?;
    let magnitude = (v >> 1) as i64;
    Some(if v & 1 == 1 { -magnitude } else { magnitude })
}

/// The line at `index` (a code unit, or a byte offset before 3.11) as CPython's `PyCode_Addr2Line` gives it: `co_firstlineno`
/// before the code, 0 for code with no location (where CPython says `None`; py-spy reports
/// the line before it) or past the table's end.
pub fn line_at(runs: &[LineRun], index: i64, firstlineno: i32) -> u32 {
    let line = if index < 0 {
        Some(i64::from(firstlineno))
    } else {
        let i = runs.partition_point(|r| r.end <= index as u64);
        runs.get(i).and_then(|r| r.line)
    };
    line.and_then(|l| u32::try_from(l).ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_six_bit_chunks_least_significant_first() {
        let read = |bytes: &[u8]| varint(bytes, &mut 0);
        assert_eq!(read(&[5]), Some(5));
        assert_eq!(read(&[0x41, 0x02]), Some(1 | 2 << 6));
        assert_eq!(read(&[0x7f, 0x7f, 0x01]), Some(63 | 63 << 6 | 1 << 12));
        assert_eq!(read(&[0x41]), None, "truncated");
        assert_eq!(read(&[0x7f; 20]), None, "longer than 64 bits");
        let mut at = 0;
        assert_eq!(varint(&[0x41, 0x02, 7], &mut at), Some(129));
        assert_eq!(at, 2);
        let signed = |bytes: &[u8]| svarint(bytes, &mut 0);
        assert_eq!(signed(&[7]), Some(-3));
        assert_eq!(signed(&[8]), Some(4));
        assert_eq!(signed(&[0]), Some(0));
        assert_eq!(signed(&[0x41, 0x02]), Some(-64));
    }

    /// The first byte of an entry: code `code`, covering `units` code units.
    fn head(code: u8, units: u8) -> u8 {
        0x80 | code << 3 | (units - 1)
    }

    fn lines_of(table: &[u8], firstlineno: i32, units: i64) -> Vec<u32> {
        let runs = decode_linetable(table, firstlineno);
        (0..units).map(|i| line_at(&runs, i, firstlineno)).collect()
    }

    #[test]
    fn every_entry_form_decodes() {
        let table = [
            vec![head(0, 2), 0x00],               // short: same line
            vec![head(11, 1), 5, 9],              // one line: +1
            vec![head(13, 1), 6],                 // no column: +3
            vec![head(15, 2)],                    // no location
            vec![head(14, 3), 11, 0, 0x46, 1, 0], // long: -5, column 69
            vec![head(12, 1), 0, 1],              // one line: +2
            vec![head(9, 1), 0x7f],               // short, last column group
        ]
        .concat();
        assert_eq!(
            lines_of(&table, 10, 12),
            [10, 10, 11, 14, 0, 0, 9, 9, 9, 11, 11, 0]
        );
        let runs = decode_linetable(&table, 10);
        assert_eq!(
            line_at(&runs, -1, 10),
            10,
            "before the code: co_firstlineno"
        );
        assert_eq!(line_at(&runs, i64::MAX, 10), 0, "past the table");
    }

    #[test]
    fn a_real_table_gives_the_lines_cpython_gives() {
        // `co_linetable` and `[p[0] for p in co_positions()]` of this function in 3.13t:
        //   1 def f(a,
        //   2       b):
        //   3     x = (a +
        //   4          b)
        //   5     if x:
        //   6         try:
        //   7             return [i for i in range(x)]
        //   8         except ValueError:
        //   9             pass
        //  10     return None
        let hex = "8000e0090ad8090af103010a0b8041e60708f002030911dc1f24a0519c78d313289a78982192\
                   419978d11328d00c28f006000c10f9f207001429f8dc0f19f300010911d80c10d80b0ff005010911fa";
        let table: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let expected = [
            1, 3, 4, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
            7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 10, 0, 0, 7, 7, 7, 0, 8, 8, 8, 8, 8, 8, 8, 8, 8, 9,
            10, 8, 0, 0, 0,
        ];
        assert_eq!(lines_of(&table, 1, 63), expected);
    }

    #[test]
    fn garbage_tables_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as u32
        };
        for _ in 0..5000 {
            let len = next() as usize % 48;
            // Mostly entry heads, so that decoding goes deep.
            let table: Vec<u8> = (0..len)
                .map(|_| next() as u8 | if next() % 4 == 0 { 0 } else { 0x80 })
                .collect();
            let firstlineno = next() as i32;
            let runs = decode_linetable(&table, firstlineno);
            assert!(runs.len() <= table.len());
            for index in [-1, 0, 1, 7, 100, i64::MAX] {
                line_at(&runs, index, firstlineno);
            }
        }
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The line at every instruction (every 2 bytes) of a table indexed by byte offset.
    fn lines_by_byte(format: LineFormat, table: &[u8], firstlineno: i32, bytes: i64) -> Vec<u32> {
        let runs = decode(format, table, firstlineno);
        (0..bytes)
            .step_by(2)
            .map(|i| line_at(&runs, i, firstlineno))
            .collect()
    }

    // The tables below are of this function (line 2 of its file), with the lines
    // `dis.findlinestarts` (3.8, 3.9) and `co_lines()` (3.10) give for each instruction:
    //   2 def f(a,
    //   3       b):
    //   4     x = (a +
    //   5          b)
    //   6     if x:
    //   7         try:
    //   8             return [i for i in range(x)]
    //   9         except ValueError:
    //  10             pass
    //  11     while x:
    //  12         x -= 1
    //  13     return None

    #[test]
    fn a_real_lnotab_gives_the_lines_cpython_3_8_gives() {
        let table = hex("0002020102ff04020401020114010e01060104010a01");
        let expected = [
            4, 5, 4, 4, 6, 6, 7, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 10, 10, 10, 11,
            11, 12, 12, 12, 12, 12, 13, 13,
        ];
        assert_eq!(lines_by_byte(LineFormat::Lnotab, &table, 2, 72), expected);
        let runs = decode(LineFormat::Lnotab, &table, 2);
        assert_eq!(line_at(&runs, -1, 2), 2, "before the first instruction");
    }

    #[test]
    fn a_real_3_10_linetable_gives_the_lines_cpython_gives() {
        let table = hex("0202020104ff0402020114010c01040102ff0402080104ff0402");
        let expected = [
            4, 5, 4, 4, 6, 6, 7, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 10, 10, 9, 11, 11,
            12, 12, 12, 12, 11, 11, 13, 13,
        ];
        assert_eq!(
            lines_by_byte(LineFormat::Linetable310, &table, 2, 72),
            expected
        );
    }

    #[test]
    fn a_3_10_range_with_no_line_is_skipped_but_counted() {
        // 4 bytes on line 11, 2 bytes with no line, then 2 bytes on line 12.
        let table = [4, 1, 2, 0x80, 2, 1];
        assert_eq!(
            lines_by_byte(LineFormat::Linetable310, &table, 10, 10),
            [11, 11, 0, 12, 0]
        );
    }

    #[test]
    fn odd_and_garbage_old_tables_never_panic() {
        for format in [LineFormat::Lnotab, LineFormat::Linetable310] {
            for table in [&[][..], &[7], &[255, 127, 255, 128, 0, 0x80], &[0xff; 33]] {
                let runs = decode(format, table, i32::MAX);
                for index in [-1, 0, 1, 500, i64::MAX] {
                    line_at(&runs, index, i32::MAX);
                }
            }
        }
    }
}
