//! Finds `_PyRuntime` in a process whose Python py-spy does not recognise by name — a
//! free-threaded build's `libpython3.13t.so` — from `/proc/<pid>/maps` and the mapped file's
//! dynamic symbols. The file is opened through `/proc/<pid>/root`, so a target in a chroot or
//! a container is read from outside.

use anyhow::{anyhow, Result};

use super::python;

/// One executable mapping of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Mapping {
    start: u64,
    end: u64,
    path: String,
}

/// The executable, file-backed mappings in a `/proc/<pid>/maps` text.
fn executable_mappings(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_ascii_whitespace();
            let range = f.next()?;
            let perms = f.next()?;
            let path = f.nth(3)?;
            if !perms.contains('x') || !path.starts_with('/') {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                path: path.to_string(),
            })
        })
        .collect()
}

/// Whether `path` names a CPython shared library of any build: `libpython3.13.so.1.0`,
/// `libpython3.13t.so`, `libpython3.14d.so`.
fn is_libpython(path: &str) -> bool {
    let Some(name) = path.rsplit('/').next() else {
        return false;
    };
    let Some(rest) = name.strip_prefix("libpython3.") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0
        && rest[digits..]
            .trim_start_matches(['t', 'd', 'm'])
            .starts_with(".so")
}

/// The address of `_PyRuntime` in process `pid`: from libpython if one is mapped, else from
/// the main executable.
pub fn find_runtime(pid: i32) -> Result<u64> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let mappings = executable_mappings(&maps);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let candidates = mappings
        .iter()
        .filter(|m| is_libpython(&m.path))
        .chain(mappings.iter().filter(|m| m.path == exe));
    for m in candidates {
        let file = format!("/proc/{pid}/root{}", m.path);
        if let Some(addr) = python::elf_symbol(&file, m.start, m.end - m.start, "_PyRuntime") {
            return Ok(addr);
        }
    }
    Err(anyhow!(
        "no _PyRuntime symbol in its Python binary or library"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_executable_file_mappings() {
        let text = "\
5581c000-5581d000 r--p 00000000 fe:01 123 /usr/bin/python3.13t
5581d000-5581e000 r-xp 00001000 fe:01 123 /usr/bin/python3.13t
7f00a000-7f10a000 r-xp 00100000 fe:01 456 /opt/py/lib/libpython3.13t.so.1.0
7f20a000-7f20b000 rw-p 00000000 00:00 0 
7ffd0000-7ffd1000 r-xp 00000000 00:00 0 [vdso]
";
        let maps = executable_mappings(text);
        assert_eq!(maps.len(), 2);
        assert_eq!(maps[1].start, 0x7f00a000);
        assert_eq!(maps[1].path, "/opt/py/lib/libpython3.13t.so.1.0");
    }

    #[test]
    fn names_every_libpython_build() {
        for yes in [
            "/usr/lib/libpython3.13.so.1.0",
            "/x/libpython3.13t.so",
            "/x/libpython3.8d.so",
            "/x/libpython3.14t.so.1.0",
        ] {
            assert!(is_libpython(yes), "{yes}");
        }
        for no in [
            "/usr/bin/python3.13",
            "/x/libpython3.so",
            "/x/libpythonista.so",
        ] {
            assert!(!is_libpython(no), "{no}");
        }
    }
}
