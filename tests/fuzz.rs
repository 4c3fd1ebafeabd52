//! Fuzzing the recording reader and every renderer, within the test suite (there is no
//! nightly toolchain for cargo-fuzz here): for `GILSCOPE_FUZZ_SECS` seconds (60 by default),
//! mutate the real recordings in `fixtures/recordings/` — at the JSON-line level (lines
//! deleted, duplicated, swapped, blanked, cut; bytes flipped; numbers made huge; strings made
//! long or invalid; arrays repeated) and at the gzip level (bytes flipped, inserted, cut,
//! garbage appended) — and run each result through `replay` and every format into a sink.
//!
//! Each input must: not panic, make no single allocation above [`MAX_ALLOCATION`], keep the
//! peak of live memory within [`MAX_PEAK`] of where it started, and give outputs below
//! [`MAX_OUTPUT`]. A counting global allocator in this test binary measures the memory. The
//! seed is printed first (`GILSCOPE_FUZZ_SEED` replays it); every input is written to
//! `target/tmp/fuzz/current.gilscope` before it runs (what an abort leaves behind) and a
//! failing one to `target/tmp/fuzz/failed-*.gilscope`; `GILSCOPE_FUZZ_INPUT=FILE` runs one
//! file only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use gilscope::report::{terminal, Format, Report};

/// The largest single allocation an input may cause.
const MAX_ALLOCATION: usize = 64 << 20;
/// How far above the memory live before it an input may take the peak.
const MAX_PEAK: usize = 256 << 20;
/// The largest output of any format for one input.
const MAX_OUTPUT: u64 = 64 << 20;
/// Inputs larger than this when decompressed are not made: the bounds are about what a
/// small file can demand, and a big input only slows the search down.
const MAX_INPUT: usize = 8 << 20;

/// Counts live bytes, their peak, and the largest single request.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn grew(size: usize) {
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(live, Ordering::Relaxed);
        LARGEST.fetch_max(size, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on to the system allocator unchanged; the counters are atomics
// that never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Counting::grew(layout.size());
        // SAFETY: the caller's layout, as given.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Counting::grew(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from this allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        Counting::grew(new_size);
        // SAFETY: `ptr` came from this allocator with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// splitmix64: a small, deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/recordings")
}

fn work_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The seed recordings: their compressed bytes and their lines.
fn corpus() -> Vec<(Vec<u8>, Vec<Vec<u8>>)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "gilscope"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 3, "seed recordings in fixtures/recordings");
    paths
        .iter()
        .map(|p| {
            let gz = std::fs::read(p).unwrap();
            let mut raw = Vec::new();
            GzDecoder::new(&gz[..]).read_to_end(&mut raw).unwrap();
            let lines = raw
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
            (gz, lines)
        })
        .collect()
}

/// Numbers a forged recording might hold.
const NUMBERS: &[&str] = &[
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "4294967295",
    "4294967296",
    "-1",
    "0",
    "1e308",
    "-1e308",
    "1e999",
    "0.0000001",
    "2147483647",
    "65535",
];

/// Strings a forged recording might hold.
fn long_string(rng: &mut Rng) -> Vec<u8> {
    let unit: &[u8] = match rng.below(6) {
        0 => b"x",
        1 => "\u{202e}\u{fffe}".as_bytes(),
        2 => b"\\u0000\\u001b[31m",
        3 => b"</svg><script>",
        4 => b"\xff\xfe",
        _ => "é;|".as_bytes(),
    };
    let n = [1, 100, 5000, 300_000][rng.below(4)];
    unit.repeat(n)
}

/// Where a token is in a line: its start and end.
type Span = (usize, usize);

/// Positions of the numbers and strings in a JSON line.
fn tokens(line: &[u8]) -> (Vec<Span>, Vec<Span>) {
    let (mut numbers, mut strings) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < line.len() && line[i] != b'"' {
                    i += if line[i] == b'\\' { 2 } else { 1 };
                }
                let end = i.min(line.len());
                i += 1;
                // Values only: a key changed is only ever a missing field.
                if line.get(i) != Some(&b':') {
                    strings.push((start, end));
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < line.len()
                    && matches!(line[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                numbers.push((start, i));
            }
            _ => i += 1,
        }
    }
    (numbers, strings)
}

/// The first array in a line that holds an object or a number, repeated to `n` elements.
fn repeat_array(line: &[u8], n: usize) -> Option<Vec<u8>> {
    let open = line.iter().rposition(|&b| b == b'[')?;
    let close = open + line[open..].iter().position(|&b| b == b']')?;
    let inner = &line[open + 1..close];
    if inner.is_empty() {
        return None;
    }
    let mut out = line[..=open].to_vec();
    for k in 0..n {
        if k > 0 {
            out.push(b',');
        }
        out.extend_from_slice(inner);
        if out.len() > MAX_INPUT {
            break;
        }
    }
    out.extend_from_slice(&line[close..]);
    Some(out)
}

/// The changes to lines that keep a recording readable (most of the time): numbers, strings
/// and arrays changed inside valid JSON, lines repeated. Half the inputs get only these, so
/// that the renderers see forged values rather than only the reader seeing damage.
const KEEPS_VALID: [usize; 5] = [1, 6, 7, 8, 9];

/// One change to the lines of a recording; with `valid`, one of [`KEEPS_VALID`].
fn mutate_lines(rng: &mut Rng, lines: &mut Vec<Vec<u8>>, donors: &[Vec<u8>], valid: bool) {
    if lines.is_empty() {
        lines.push(b"{}".to_vec());
    }
    // Never the header, when there is more: changing it only ever gives a refusal.
    let at = if lines.len() > 1 && valid {
        1 + rng.below(lines.len() - 1)
    } else {
        rng.below(lines.len())
    };
    let op = if valid {
        KEEPS_VALID[rng.below(KEEPS_VALID.len())]
    } else {
        rng.below(12)
    };
    match op {
        0 => {
            lines.remove(at);
        }
        // Frames and processes are numbered in order: a copy is only ever refused.
        1 if valid
            && (lines[at].starts_with(br#"{"t":"frame""#)
                || lines[at].starts_with(br#"{"t":"process""#)) => {}
        1 => {
            let copy = lines[at].clone();
            let times = [1, 2, 50][rng.below(3)];
            for _ in 0..times {
                lines.insert(at, copy.clone());
            }
        }
        2 => {
            let other = rng.below(lines.len());
            lines.swap(at, other);
        }
        3 => lines.insert(at, Vec::new()),
        4 => {
            let line = &mut lines[at];
            let cut = rng.below(line.len() + 1);
            line.truncate(cut);
        }
        5 => {
            let line = &mut lines[at];
            for _ in 0..=rng.below(4) {
                if !line.is_empty() {
                    let k = rng.below(line.len());
                    line[k] ^= 1 << rng.below(8);
                }
            }
        }
        6 | 7 => {
            let (numbers, _) = tokens(&lines[at]);
            if !numbers.is_empty() {
                let (s, e) = numbers[rng.below(numbers.len())];
                let n = NUMBERS[rng.below(NUMBERS.len())].as_bytes();
                lines[at].splice(s..e, n.iter().copied());
            }
        }
        8 => {
            let (_, strings) = tokens(&lines[at]);
            if !strings.is_empty() {
                let (s, e) = strings[rng.below(strings.len())];
                let long = long_string(rng);
                lines[at].splice(s..e, long);
            }
        }
        9 => {
            let n = [10, 1000, 100_000][rng.below(3)];
            if let Some(more) = repeat_array(&lines[at], n) {
                lines[at] = more;
            }
        }
        10 => {
            if !donors.is_empty() {
                lines.insert(at, donors[rng.below(donors.len())].clone());
            }
        }
        _ => {
            let keep = rng.below(lines.len() + 1);
            lines.truncate(keep);
        }
    }
}

/// One change to the compressed bytes.
fn mutate_gzip(rng: &mut Rng, gz: &mut Vec<u8>) {
    if gz.is_empty() {
        return;
    }
    match rng.below(5) {
        0 => {
            for _ in 0..=rng.below(8) {
                let k = rng.below(gz.len());
                gz[k] ^= 1 << rng.below(8);
            }
        }
        1 => {
            let cut = rng.below(gz.len());
            gz.truncate(cut);
        }
        2 => {
            let k = rng.below(gz.len());
            let bytes: Vec<u8> = (0..=rng.below(16)).map(|_| rng.next() as u8).collect();
            gz.splice(k..k, bytes);
        }
        3 => {
            let k = rng.below(gz.len());
            let len = rng.below(gz.len() - k).min(512);
            let chunk = gz[k..k + len].to_vec();
            gz.splice(k..k, chunk);
        }
        _ => gz.extend((0..=rng.below(64)).map(|_| rng.next() as u8)),
    }
}

fn gzip(lines: &[Vec<u8>], finish: bool) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    for line in lines {
        gz.write_all(line).unwrap();
        gz.write_all(b"\n").unwrap();
    }
    if finish {
        gz.finish().unwrap()
    } else {
        gz.flush().unwrap();
        gz.get_ref().clone()
    }
}

/// A mutated recording, compressed.
fn input(rng: &mut Rng, corpus: &[(Vec<u8>, Vec<Vec<u8>>)]) -> Vec<u8> {
    let (gz, lines) = &corpus[rng.below(corpus.len())];
    let donors = &corpus[rng.below(corpus.len())].1;
    if rng.chance(4) {
        let mut gz = gz.clone();
        for _ in 0..=rng.below(2) {
            mutate_gzip(rng, &mut gz);
        }
        return gz;
    }
    let mut lines = lines.clone();
    let valid = rng.chance(2);
    for _ in 0..=rng.below(4) {
        mutate_lines(rng, &mut lines, donors, valid);
        if lines.iter().map(Vec::len).sum::<usize>() > MAX_INPUT {
            break;
        }
    }
    let mut gz = gzip(&lines, valid || !rng.chance(5));
    if !valid && rng.chance(10) {
        mutate_gzip(rng, &mut gz);
    }
    gz
}

/// Counts what a format writes.
struct Sink(u64);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What one input did: replayed or refused, and the largest output.
struct Outcome {
    replayed: bool,
    largest_output: (u64, String),
}

/// Replays the recording at `path` and renders every format of it.
fn run_one(path: &Path) -> Outcome {
    let r = gilscope::command::replay::replay(path);
    if let (Err(e), Some(_)) = (&r, std::env::var_os("GILSCOPE_FUZZ_ERRORS")) {
        eprintln!("refused: {e:#}");
    }
    let Ok(r) = r else {
        return Outcome {
            replayed: false,
            largest_output: (0, String::new()),
        };
    };
    let report = Report {
        target: &r.profiles.target,
        profile: &r.profiles.profile,
        subprocesses: &r.profiles.subprocesses,
    };
    let mut largest = (terminal::summary(&report).len() as u64, "terminal".into());
    for format in Format::ALL {
        let mut sink = Sink(0);
        // An error (none is expected into a sink) is not a failure; a panic is.
        let _ = format.renderer().render(&report, &mut sink);
        if sink.0 > largest.0 {
            largest = (sink.0, format!("{format:?}"));
        }
    }
    Outcome {
        replayed: true,
        largest_output: largest,
    }
}

/// Runs one input: whether it replayed, or a description of what went wrong.
fn check(path: &Path) -> Result<bool, String> {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    LARGEST.store(0, Ordering::Relaxed);
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(|| run_one(path));
    let took = started.elapsed();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    let largest = LARGEST.load(Ordering::Relaxed);
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            let what = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return Err(format!("panicked: {what}"));
        }
    };
    if largest > MAX_ALLOCATION {
        return Err(format!("allocated {largest} bytes at once"));
    }
    if peak > MAX_PEAK {
        return Err(format!("took the peak {peak} bytes above its start"));
    }
    if outcome.largest_output.0 > MAX_OUTPUT {
        return Err(format!(
            "wrote {} bytes of {}",
            outcome.largest_output.0, outcome.largest_output.1
        ));
    }
    if took > Duration::from_secs(30) {
        return Err(format!("took {took:?}"));
    }
    Ok(outcome.replayed)
}

#[test]
fn no_recording_panics_or_blows_up_replay_or_any_renderer() {
    let dir = work_dir();
    let current = dir.join("current.gilscope");
    if let Some(file) = std::env::var_os("GILSCOPE_FUZZ_INPUT") {
        if let Err(problem) = check(Path::new(&file)) {
            panic!("{}: {problem}", Path::new(&file).display());
        }
        return;
    }
    let seed = std::env::var("GILSCOPE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let secs: f64 = std::env::var("GILSCOPE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60.0);
    eprintln!("fuzz seed {seed} (GILSCOPE_FUZZ_SEED={seed} replays it), for {secs} s");
    let corpus = corpus();
    // The seeds themselves first: real recordings must replay, and cleanly.
    for (gz, _) in &corpus {
        std::fs::write(&current, gz).unwrap();
        assert_eq!(check(&current), Ok(true));
        let r = gilscope::command::replay::replay(&current).unwrap();
        assert!(r.complete, "a seed recording is whole");
        assert!(
            r.profiles.profile.run.state_samples > 0,
            "a seed recording has samples"
        );
    }
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let (mut runs, mut replayed) = (0u64, 0u64);
    let mut failures = Vec::new();
    while Instant::now() < deadline {
        let bytes = input(&mut rng, &corpus);
        // Written first: if the input aborts the process, it is there to replay.
        std::fs::write(&current, &bytes).unwrap();
        runs += 1;
        match check(&current) {
            Ok(ok) => replayed += u64::from(ok),
            Err(problem) => {
                let kept = dir.join(format!("failed-{seed}-{runs}.gilscope"));
                std::fs::write(&kept, &bytes).unwrap();
                eprintln!("{}: {problem}", kept.display());
                failures.push(format!("{}: {problem}", kept.display()));
                if failures.len() >= 5 {
                    break;
                }
            }
        }
    }
    eprintln!(
        "fuzz: {runs} inputs, {replayed} replayed, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "seed {seed}: {} inputs failed (GILSCOPE_FUZZ_INPUT=FILE runs one):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(runs >= 10, "only {runs} inputs ran in {secs} s");
}
