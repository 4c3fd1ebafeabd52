//! The process tree as `/proc` shows it: parents, descendants, and what each process runs.
//! Reads `/proc` only; never opens a process as a target.

use std::collections::HashMap;

/// Every process's parent, from `/proc/<pid>/stat`.
pub fn parents() -> HashMap<i32, i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read(e.path().join("stat")).ok()?;
            Some((pid, parent_in_stat(&stat)?))
        })
        .collect()
}

/// The parent pid in a `/proc/<pid>/stat` line, counted from the last `)` since the command
/// name may hold anything.
fn parent_in_stat(stat: &[u8]) -> Option<i32> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    rest.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// The descendants of `root` in a pid → parent map, nearest first.
pub fn descendants(root: i32, parents: &HashMap<i32, i32>) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (&pid, &parent) in parents {
        children.entry(parent).or_default().push(pid);
    }
    let mut out = Vec::new();
    let mut queue = vec![root];
    while let Some(pid) = queue.pop() {
        if let Some(kids) = children.get(&pid) {
            let mut kids = kids.clone();
            kids.sort_unstable();
            for kid in kids {
                if kid != root && !out.contains(&kid) {
                    out.push(kid);
                    queue.push(kid);
                }
            }
        }
    }
    out
}

/// The working directory of process `pid` as the process sees it: `/proc/<pid>/cwd`, made
/// relative to `/proc/<pid>/root` when it runs in a chroot or container.
pub fn working_dir(pid: i32) -> Option<String> {
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let root = std::fs::read_link(format!("/proc/{pid}/root")).ok()?;
    let inside = cwd.strip_prefix(&root).ok()?;
    Some(format!("/{}", inside.display()))
}

/// The command line of a process, for the report.
pub fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A command line for one line of the terminal: words joined by spaces, escaped as every
/// name from the target is (it comes from the target), at most 200 characters.
pub fn command_text(words: &[String]) -> String {
    crate::report::text::terminal(&words.join(" "), 200)
}

/// The file name of the executable a process runs (`python3.12`, `bash`), if readable.
pub fn exe_name(pid: i32) -> Option<String> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    Some(exe.file_name()?.to_string_lossy().into_owned())
}

/// Whether a program's name says it is a Python interpreter (`python`, `python3.12`,
/// `python3.13t`): only a hint for wording, never a reason to open or skip a process.
pub fn looks_like_python(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.starts_with("python")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_is_read_after_the_command_name() {
        assert_eq!(parent_in_stat(b"42 (a) b (c)) S 7 42 42 0"), Some(7));
        assert_eq!(parent_in_stat(b"garbage"), None);
    }

    #[test]
    fn python_is_told_by_its_name_only_as_a_hint() {
        assert!(looks_like_python("/usr/bin/python3.12"));
        assert!(looks_like_python("python"));
        assert!(!looks_like_python("/bin/bash"));
        assert!(!looks_like_python("uv"));
    }

    #[test]
    fn descendants_are_found_through_every_generation() {
        // 1 ─ 10 ─ 11 ─ 12, and 10 ─ 13; 20 is not ours.
        let parents = HashMap::from([(10, 1), (11, 10), (12, 11), (13, 10), (20, 2), (1, 0)]);
        let mut found = descendants(1, &parents);
        found.sort_unstable();
        assert_eq!(found, [10, 11, 12, 13]);
        assert!(descendants(12, &parents).is_empty());
    }
}
