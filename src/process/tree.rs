//! The process tree as `/proc` shows it: parents, descendants, and what each process runs.
//! Reads `/proc` only; never opens a process as a target.

use std::collections::HashMap;

/// The descendants of `root`, nearest first (then by pid), from remoteprocess's reading of
/// every `/proc/<pid>/stat` (it takes the parent after the command name's last `)`).
pub fn descendants(root: i32) -> Vec<i32> {
    let Ok(pairs) = remoteprocess::Process::new(root).and_then(|p| p.child_processes()) else {
        return Vec::new();
    };
    nearest_first(root, &pairs)
}

/// Descendants given as (child, parent) pairs, ordered by how many generations below `root`
/// each is, then by pid.
fn nearest_first(root: i32, pairs: &[(i32, i32)]) -> Vec<i32> {
    let parent: HashMap<i32, i32> = pairs.iter().copied().collect();
    let depth = |mut pid: i32| {
        let mut depth = 0;
        // At most one step per pair: a tree read while processes come and go may not be one.
        while let Some(&up) = parent.get(&pid).filter(|_| depth < parent.len()) {
            depth += 1;
            if up == root {
                break;
            }
            pid = up;
        }
        depth
    };
    let mut order: Vec<(usize, i32)> = pairs
        .iter()
        .filter(|&&(child, _)| child != root)
        .map(|&(child, _)| (depth(child), child))
        .collect();
    order.sort_unstable();
    order.dedup();
    order.into_iter().map(|(_, pid)| pid).collect()
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
    fn python_is_told_by_its_name_only_as_a_hint() {
        assert!(looks_like_python("/usr/bin/python3.12"));
        assert!(looks_like_python("python"));
        assert!(!looks_like_python("/bin/bash"));
        assert!(!looks_like_python("uv"));
    }

    #[test]
    fn descendants_come_nearest_first() {
        // 1 ─ 10 ─ 11 ─ 12, and 10 ─ 13.
        let pairs = [(12, 11), (13, 10), (11, 10), (10, 1)];
        assert_eq!(nearest_first(1, &pairs), [10, 11, 13, 12]);
        // A tree torn by processes that came and went while it was read still ends.
        assert_eq!(nearest_first(1, &[(5, 6), (6, 5)]), [5, 6]);
    }

    #[test]
    fn a_live_child_and_grandchild_are_descendants() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let grandchild: i32 = line.trim().parse().unwrap();
        let found = descendants(std::process::id() as i32);
        let _ = std::process::Command::new("kill")
            .arg(grandchild.to_string())
            .status();
        let _ = child.wait();
        let at = |pid| found.iter().position(|&p| p == pid);
        let (Some(c), Some(g)) = (at(child.id() as i32), at(grandchild)) else {
            panic!("{found:?} lacks {} or {grandchild}", child.id());
        };
        assert!(c < g, "the child comes before its child: {found:?}");
    }
}
