//! Which code to name: the functions on a list's weighted stacks, each with its *self* share
//! (it is the innermost frame) and its *inclusive* share (it is anywhere on the stack, once
//! per stack however deep the recursion), and the user's own function that the verdict
//! blames, with the library call it goes through (docs/DESIGN.md, "Sites").
//!
//! Pure: interned stacks and weights in, [`Site`]s out. Whose code a frame is and how its
//! file is shown come from [`super::code`].

use std::collections::HashMap;

use serde::Serialize;

use super::code::{self, Origin};
use super::{ratio, Site};
use crate::model::{Frame, StackId, StackTable};

/// A list resting on fewer stack samples than this is not ranked (its sites are kept for
/// the JSON, with their counts), and the verdict names no code from it.
pub const MIN_SAMPLES: u64 = 20;
/// Sites a list keeps.
const KEEP: usize = 10;
/// Ranked by inclusive share, a function never innermost on at least this share of the
/// list's weight is the root of the work (a worker loop, a server's plumbing), not where it
/// goes: left out, unless it is the code the verdict names.
const ROOT_SHARE: f64 = 0.9;

/// One stack of a list: its weight (a sample, or a sample times the threads waiting
/// meanwhile) and the stack samples behind that weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weighted {
    pub id: StackId,
    pub weight: u64,
    pub samples: u64,
}

impl Weighted {
    /// A stack counted once per sample.
    pub fn counted(id: StackId, samples: u64) -> Weighted {
        Weighted {
            id,
            weight: samples,
            samples,
        }
    }
}

/// How a list is ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rank {
    /// By inclusive share: who to blame (the holders, the blame, the lock's holders, the
    /// code running without a GIL).
    Inclusive,
    /// By self share: where threads stand (waiters, lock waits, callers of native code).
    Innermost,
}

/// The function the verdict names, with the library function it reaches the hot code
/// through, if any.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Blamed {
    /// The function, its shares and counts in the list it was chosen from.
    #[serde(flatten)]
    pub site: Site,
    /// `blame` (holder stacks weighted by waiters), `holders` or `running`: the list whose
    /// share `site` carries.
    pub list: &'static str,
    /// The outermost library function the named user function calls on its hottest path.
    pub via: Option<Via>,
}

/// A library function on the way from the user's code to the hot code.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Via {
    pub function: String,
    /// The package (or standard-library module) it belongs to: `jinja2`, `json`.
    pub package: String,
    pub file: String,
}

/// Import machinery: `<frozen importlib._bootstrap>` and its kin.
fn is_import_frame(f: &Frame) -> bool {
    f.file.starts_with("<frozen importlib") || f.file.ends_with("/importlib/_bootstrap.py")
}

/// A stack inside an import (start-up, or a lazy import): never the code a verdict or a
/// finding names, since the user cannot make `_compile_bytecode()` faster.
pub fn is_import_stack(frames: &[Frame]) -> bool {
    frames.iter().any(is_import_frame)
}

/// What one function gathers over a list's stacks.
struct Tally<'a> {
    frame: &'a Frame,
    self_weight: u64,
    self_samples: u64,
    weight: u64,
    samples: u64,
    /// Weight by line of the function's own frame (its outermost one on each stack).
    lines: HashMap<u32, u64>,
    /// A sum of hashes of the stacks it is on: functions on exactly the same stacks have
    /// the same one.
    signature: u64,
    /// How deep its outermost frame is on the first stack it was seen on.
    depth: usize,
}

/// A stack's contribution to [`Tally::signature`] (splitmix64 of its id).
fn stack_hash(id: StackId) -> u64 {
    let mut z = u64::from(id.0).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The line with the most weight; the lowest of equals.
fn hottest_line(lines: &HashMap<u32, u64>) -> u32 {
    lines
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map_or(0, |(&line, _)| line)
}

/// Every function on the stacks, with its tallies, and the list's total weight and samples.
fn tally<'a>(
    stacks: &'a StackTable,
    weighted: &[Weighted],
) -> (HashMap<(&'a str, &'a str), Tally<'a>>, u64, u64) {
    let mut by_function: HashMap<(&str, &str), Tally> = HashMap::new();
    let (mut total_weight, mut total_samples) = (0, 0);
    for w in weighted {
        total_weight += w.weight;
        total_samples += w.samples;
        let frames = stacks.get(w.id);
        let hash = stack_hash(w.id);
        for (depth, f) in frames.iter().enumerate() {
            let key = (&*f.function, &*f.file);
            // Once per stack: only the outermost frame of a recursive function counts.
            if frames[..depth]
                .iter()
                .any(|o| o.function == f.function && o.file == f.file)
            {
                continue;
            }
            let t = by_function.entry(key).or_insert_with(|| Tally {
                frame: f,
                self_weight: 0,
                self_samples: 0,
                weight: 0,
                samples: 0,
                lines: HashMap::new(),
                signature: 0,
                depth,
            });
            t.weight += w.weight;
            t.samples += w.samples;
            t.signature = t.signature.wrapping_add(hash);
            *t.lines.entry(f.line).or_default() += w.weight;
        }
        if let Some(leaf) = frames.last() {
            if let Some(t) = by_function.get_mut(&(&*leaf.function, &*leaf.file)) {
                t.self_weight += w.weight;
                t.self_samples += w.samples;
            }
        }
    }
    (by_function, total_weight, total_samples)
}

fn site(t: &Tally, total_weight: u64, total_samples: u64, cwd: Option<&str>) -> Site {
    Site {
        function: t.frame.function.to_string(),
        file: t.frame.file.to_string(),
        path_shown: code::display_path(&t.frame.file, cwd).to_string(),
        origin: code::origin(&t.frame.file),
        line: hottest_line(&t.lines),
        share: ratio(t.self_weight, total_weight),
        inclusive_share: ratio(t.weight, total_weight),
        self_samples: t.self_samples,
        inclusive_samples: t.samples,
        list_samples: total_samples,
    }
}

/// The functions of a list, ranked by `rank`, at most [`KEEP`] of them.
///
/// Ranked by inclusive share, functions that say nothing of their own are left out: of
/// functions on exactly the same stacks (a chain of calls with no branch), only the
/// innermost and the innermost of the user's own are kept, and a function on at least
/// [`ROOT_SHARE`] of the weight that is never the innermost frame (`<module>`, `main()`, a
/// worker loop, a thread's bootstrap) is left out — but never `named`, the code the verdict
/// names from this list, so that the table beside the verdict has its row. Ranked by self
/// share, functions never innermost are left out.
pub fn top_sites(
    stacks: &StackTable,
    weighted: &[Weighted],
    rank: Rank,
    cwd: Option<&str>,
    named: Option<&Site>,
) -> Vec<Site> {
    let (by_function, total_weight, total_samples) = tally(stacks, weighted);
    let kept: Vec<&Tally> = match rank {
        Rank::Innermost => by_function.values().filter(|t| t.self_weight > 0).collect(),
        Rank::Inclusive => {
            // The innermost member, and the innermost user member, of each chain.
            let mut chains: HashMap<(u64, u64), (usize, Option<usize>)> = HashMap::new();
            for t in by_function.values() {
                let c = chains.entry((t.signature, t.weight)).or_insert((0, None));
                c.0 = c.0.max(t.depth);
                if code::origin(&t.frame.file).is_user() {
                    c.1 = Some(c.1.map_or(t.depth, |d| d.max(t.depth)));
                }
            }
            by_function
                .values()
                .filter(|t| {
                    let is_named = named.is_some_and(|n| {
                        *n.function == *t.frame.function && *n.file == *t.frame.file
                    });
                    let (deepest, user) = chains[&(t.signature, t.weight)];
                    let own = t.depth == deepest || Some(t.depth) == user;
                    let root =
                        t.self_weight == 0 && t.weight as f64 >= ROOT_SHARE * total_weight as f64;
                    is_named || (own && !root)
                })
                .collect()
        }
    };
    let mut sites: Vec<Site> = kept
        .into_iter()
        .map(|t| site(t, total_weight, total_samples, cwd))
        .collect();
    sites.sort_by(|a, b| {
        let (ka, kb) = match rank {
            Rank::Inclusive => ((a.inclusive_share, a.share), (b.inclusive_share, b.share)),
            Rank::Innermost => ((a.share, a.inclusive_share), (b.share, b.inclusive_share)),
        };
        kb.0.total_cmp(&ka.0)
            .then(kb.1.total_cmp(&ka.1))
            .then_with(|| (&a.file, a.line, &a.function).cmp(&(&b.file, b.line, &b.function)))
    });
    sites.truncate(KEEP);
    sites
}

/// The package a library file belongs to, from its shown path: `jinja2` for
/// `jinja2/environment.py`, `json` for `json/decoder.py`, `threading` for `threading.py`.
fn package(shown: &str) -> String {
    let first = shown.split('/').next().unwrap_or(shown);
    first.strip_suffix(".py").unwrap_or(first).to_string()
}

/// The key with the most weight; of equals, the first by name.
fn best<'a>(m: &HashMap<(&'a str, &'a str), u64>) -> Option<(&'a str, &'a str)> {
    m.iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(k, _)| *k)
}

fn frame_key(f: Option<&Frame>) -> Option<(&str, &str, u32)> {
    f.map(|f| (&*f.function, &*f.file, f.line))
}

/// The code the verdict names from a list: the user's own function that is the innermost
/// user frame on the most weight (so `compute()`, not the `main()` that calls it), stated
/// with its inclusive share of the list; library code only when no stack of the list has a
/// user frame. Stacks inside an import are never named. `None` when the list rests on
/// fewer than [`MIN_SAMPLES`] stack samples, or holds only imports.
pub fn blamed(
    stacks: &StackTable,
    weighted: &[Weighted],
    list: &'static str,
    cwd: Option<&str>,
) -> Option<Blamed> {
    let total_samples: u64 = weighted.iter().map(|w| w.samples).sum();
    if total_samples < MIN_SAMPLES {
        return None;
    }
    // Per candidate: its weight, and per library function it calls next, that weight.
    type Key<'a> = (&'a str, &'a str);
    let mut user: HashMap<Key, (u64, HashMap<Option<&Frame>, u64>)> = HashMap::new();
    let mut library: HashMap<Key, u64> = HashMap::new();
    for w in weighted {
        let frames = stacks.get(w.id);
        if is_import_stack(frames) {
            continue;
        }
        match frames
            .iter()
            .rposition(|f| code::origin(&f.file) == Origin::User)
        {
            Some(at) => {
                let f = &frames[at];
                let c = user.entry((&f.function, &f.file)).or_default();
                c.0 += w.weight;
                *c.1.entry(frames.get(at + 1)).or_default() += w.weight;
            }
            None => {
                if let Some(leaf) = frames.last() {
                    *library.entry((&leaf.function, &leaf.file)).or_default() += w.weight;
                }
            }
        }
    }
    let user_weights: HashMap<Key, u64> = user.iter().map(|(k, v)| (*k, v.0)).collect();
    let (key, via) = match best(&user_weights) {
        Some(key) => {
            let via = user[&key]
                .1
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(frame_key(*b.0).cmp(&frame_key(*a.0))))
                .and_then(|(f, _)| *f)
                .map(|f| Via {
                    function: f.function.to_string(),
                    package: package(code::display_path(&f.file, cwd)),
                    file: f.file.to_string(),
                });
            (key, via)
        }
        None => (best(&library)?, None),
    };
    let (by_function, total_weight, total_samples) = tally(stacks, weighted);
    let t = by_function.get(&key)?;
    Some(Blamed {
        site: site(t, total_weight, total_samples, cwd),
        list,
        via,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(function: &str, file: &str, line: u32) -> Frame {
        Frame {
            function: function.into(),
            file: file.into(),
            line,
        }
    }

    const APP: &str = "/srv/app/app.py";
    const LIB: &str = "/venv/lib/python3.12/site-packages/jinja2/environment.py";
    const ESCAPE: &str = "/venv/lib/python3.12/site-packages/markupsafe/__init__.py";
    const THREADING: &str = "/usr/lib/python3.12/threading.py";

    /// Stacks and their sample counts, interned.
    fn table(stacks: &[(Vec<Frame>, u64)]) -> (StackTable, Vec<Weighted>) {
        let mut t = StackTable::default();
        let w = stacks
            .iter()
            .map(|(frames, n)| Weighted::counted(t.intern(frames.clone()), *n))
            .collect();
        (t, w)
    }

    /// A web handler: the user's `report()` renders a template through jinja2, whose
    /// `escape()` in markupsafe is the hottest innermost frame.
    fn web() -> (StackTable, Vec<Weighted>) {
        let root = || vec![f("_bootstrap", THREADING, 1), f("serve", APP, 5)];
        let with = |tail: Vec<Frame>| root().into_iter().chain(tail).collect::<Vec<_>>();
        table(&[
            (
                with(vec![
                    f("report", APP, 12),
                    f("render", LIB, 40),
                    f("escape", ESCAPE, 7),
                ]),
                40,
            ),
            (
                with(vec![
                    f("report", APP, 12),
                    f("render", LIB, 41),
                    f("_loop", LIB, 90),
                ]),
                30,
            ),
            (with(vec![f("report", APP, 13)]), 17),
            (with(vec![f("health", APP, 30)]), 13),
        ])
    }

    #[test]
    fn inclusive_shares_count_a_function_once_per_stack_and_rank_who_to_blame() {
        let (t, w) = web();
        let sites = top_sites(&t, &w, Rank::Inclusive, Some("/srv/app"), None);
        let names: Vec<&str> = sites.iter().map(|s| &*s.function).collect();
        // serve() and the bootstrap are on every stack and never innermost: left out.
        assert_eq!(names[0], "report", "{names:?}");
        let report = &sites[0];
        assert_eq!(report.inclusive_share, 0.87);
        assert_eq!(report.share, 0.17);
        assert_eq!((report.inclusive_samples, report.self_samples), (87, 17));
        assert_eq!(report.list_samples, 100);
        assert_eq!(report.path_shown, "app.py");
        assert_eq!(report.line, 12, "the hottest line");
        assert!(!names.contains(&"serve") && !names.contains(&"_bootstrap"));
        let render = sites.iter().find(|s| &*s.function == "render").unwrap();
        assert_eq!(render.inclusive_share, 0.7);
        assert_eq!(render.path_shown, "jinja2/environment.py");
        for s in &sites {
            assert!(
                s.inclusive_share >= s.share && s.inclusive_share <= 1.0,
                "{s:?}"
            );
        }
        // Ranked by self share, the innermost frames lead.
        let inner = top_sites(&t, &w, Rank::Innermost, None, None);
        assert_eq!(inner[0].function, "escape");
        assert_eq!(inner[0].share, 0.4);
        assert!(inner.iter().all(|s| s.share > 0.0));
    }

    #[test]
    fn recursion_counts_once_and_a_chain_keeps_its_innermost_and_user_frames() {
        let fib = |n: usize| {
            let mut frames = vec![f("main", APP, 1)];
            frames.extend((0..n).map(|k| f("fib", APP, 3 + k as u32 % 2)));
            frames
        };
        let (t, w) = table(&[(fib(5), 30), (fib(2), 10)]);
        let sites = top_sites(&t, &w, Rank::Inclusive, None, None);
        let fib_site = sites.iter().find(|s| &*s.function == "fib").unwrap();
        assert_eq!(fib_site.inclusive_share, 1.0);
        assert_eq!(fib_site.inclusive_samples, 40);
        // A thread that runs one function under the bootstrap: one row, not five.
        let (t, w) = table(&[(
            vec![
                f("_bootstrap", THREADING, 1),
                f("run", THREADING, 2),
                f("body", "/srv/app/_ready.py", 3),
                f("compute", APP, 22),
            ],
            50,
        )]);
        let sites = top_sites(&t, &w, Rank::Inclusive, None, None);
        assert_eq!(sites.len(), 1, "{sites:?}");
        assert_eq!(sites[0].function, "compute");
        // A worker loop on nearly every stack, never innermost, is the root of the work:
        // left out, unless the verdict names it.
        let (t, w) = table(&[
            (vec![f("loop", APP, 1), f("parse", APP, 5)], 50),
            (vec![f("loop", APP, 1), f("loads", LIB, 9)], 45),
            (vec![f("<module>", APP, 30)], 5),
        ]);
        let sites = top_sites(&t, &w, Rank::Inclusive, None, None);
        assert!(sites.iter().all(|s| s.function != "loop"), "{sites:?}");
        let named = Site::example("loop", APP, 1, 0.95);
        let sites = top_sites(&t, &w, Rank::Inclusive, None, Some(&named));
        assert_eq!(sites[0].function, "loop", "{sites:?}");
        assert_eq!(sites[0].inclusive_share, 0.95);
    }

    #[test]
    fn the_verdict_names_the_users_function_and_the_library_call_it_goes_through() {
        let (t, w) = web();
        let b = blamed(&t, &w, "holders", Some("/srv/app")).unwrap();
        assert_eq!(b.site.function, "report");
        assert_eq!(b.site.inclusive_share, 0.87);
        let via = b.via.unwrap();
        assert_eq!((&*via.function, via.package.as_str()), ("render", "jinja2"));
        // No user frame anywhere: the library's hottest innermost code.
        let (t, w) = table(&[
            (
                vec![f("loads", "/usr/lib/python3.12/json/__init__.py", 3)],
                30,
            ),
            (
                vec![f("dumps", "/usr/lib/python3.12/json/__init__.py", 9)],
                10,
            ),
        ]);
        let b = blamed(&t, &w, "holders", None).unwrap();
        assert_eq!((&*b.site.function, b.via), ("loads", None));
        // A handful of samples names nothing.
        let (t, w) = table(&[(vec![f("compute", APP, 3)], MIN_SAMPLES - 1)]);
        assert_eq!(blamed(&t, &w, "holders", None), None);
    }

    #[test]
    fn imports_at_start_up_are_never_named() {
        let import = vec![
            f("<module>", "<string>", 1),
            f("_find_and_load", "<frozen importlib._bootstrap>", 1165),
            f(
                "_compile_bytecode",
                "<frozen importlib._bootstrap_external>",
                729,
            ),
        ];
        assert!(is_import_stack(&import));
        let (t, w) = table(&[(import, 40)]);
        assert_eq!(blamed(&t, &w, "holders", None), None);
        assert_eq!(package("threading.py"), "threading");
    }
}
