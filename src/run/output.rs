//! Where the report goes: checked before sampling starts, written after it ends.
//!
//! A report file appears whole or not at all: it is written to a temporary file in the same
//! directory and renamed into place, so a run that fails, or a renderer that fails halfway,
//! leaves an existing report as it was and no empty or partial one. Files that are not
//! regular (`/dev/null`, a pipe, a terminal) are written directly.
//!
//! Knows paths and files, not formats: the bytes come from a [`Render`].

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::error::UserError;
use crate::report::{Format, Render, Report};

/// A destination checked for writability before the run.
pub enum Output {
    Stdout,
    /// `-o PATH` of a regular file, or of one that does not exist yet: replaced at the end.
    File {
        path: PathBuf,
    },
    /// `-o PATH` of something else (`/dev/null`, a named pipe), opened now and written as is.
    Special {
        path: PathBuf,
        file: File,
    },
    /// `gilscope-<pid>.<ext>` in the current directory, created once the pid is known.
    Default,
}

fn unwritable(path: &Path, e: std::io::Error) -> UserError {
    UserError::OutputNotWritable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

impl Output {
    /// Checks `path` (`-` is standard output, `None` the default name) now rather than after
    /// a long run.
    pub fn prepare(path: Option<&Path>) -> Result<Output, UserError> {
        match path {
            Some(p) if p == Path::new("-") => Ok(Output::Stdout),
            Some(p) => match std::fs::metadata(p) {
                Ok(m) if m.is_dir() => Err(UserError::OutputNotWritable {
                    path: p.to_path_buf(),
                    reason: "it is a directory".into(),
                }),
                Ok(m) if !m.is_file() => {
                    let file = File::options()
                        .write(true)
                        .open(p)
                        .map_err(|e| unwritable(p, e))?;
                    Ok(Output::Special {
                        path: p.to_path_buf(),
                        file,
                    })
                }
                Ok(_) => {
                    // The file itself must be writable (renaming over a read-only report
                    // would bypass its mode), and so must its directory.
                    File::options()
                        .write(true)
                        .open(p)
                        .map_err(|e| unwritable(p, e))?;
                    let real = std::fs::canonicalize(p).map_err(|e| unwritable(p, e))?;
                    probe(&real).map_err(|e| unwritable(p, e))?;
                    Ok(Output::File { path: real })
                }
                Err(_) => {
                    probe(p).map_err(|e| unwritable(p, e))?;
                    Ok(Output::File {
                        path: p.to_path_buf(),
                    })
                }
            },
            None => {
                let here = Path::new("gilscope-probe");
                probe(here).map_err(|e| unwritable(Path::new("."), e))?;
                Ok(Output::Default)
            }
        }
    }

    /// Opens the destination once the pid is known.
    pub fn open(self, pid: i32, format: Format) -> Result<Destination, UserError> {
        match self {
            Output::Stdout => Ok(Destination::Stdout),
            Output::File { path } => Ok(Destination::File { path }),
            Output::Special { path, file } => Ok(Destination::Special { path, file }),
            Output::Default => Ok(Destination::File {
                path: default_path(pid, format),
            }),
        }
    }
}

/// `gilscope-<pid>.<suffix>`, the report's name without `-o`.
pub fn default_path(pid: i32, format: Format) -> PathBuf {
    PathBuf::from(format!("gilscope-{pid}.{}", format.suffix()))
}

/// The temporary file that becomes `path`: beside it, so that the rename stays within one
/// file system, and hidden.
fn temporary(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    path.with_file_name(format!(".{name}.gilscope-{}.tmp", std::process::id()))
}

/// Checks that a temporary file for `path` can be created, and removes it.
fn probe(path: &Path) -> std::io::Result<()> {
    let tmp = temporary(path);
    File::create(&tmp)?;
    std::fs::remove_file(&tmp)
}

/// True when `a` and `b` name the same file: the same device and inode when both exist,
/// else the same absolute path (for a file that a run would create).
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        return x.dev() == y.dev() && x.ino() == y.ino();
    }
    match (absolute(a), absolute(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// `path` with its directory resolved (symbolic links, `..`), whether or not it exists.
fn absolute(path: &Path) -> Option<PathBuf> {
    if let Ok(real) = std::fs::canonicalize(path) {
        return Some(real);
    }
    let name = path.file_name()?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Some(std::fs::canonicalize(dir).ok()?.join(name))
}

/// An open destination.
pub enum Destination {
    Stdout,
    File { path: PathBuf },
    Special { path: PathBuf, file: File },
}

impl Destination {
    /// Renders the report into the destination; returns the path written, if a file.
    pub fn write(self, renderer: &dyn Render, report: &Report) -> Result<Option<PathBuf>> {
        match self {
            Destination::Stdout => {
                let stdout = std::io::stdout();
                let mut out = Watched::new(std::io::BufWriter::new(stdout.lock()));
                let result = renderer
                    .render(report, &mut out)
                    .and_then(|()| Ok(out.flush()?));
                out.result(result)?;
                Ok(None)
            }
            Destination::Special { path, file } => {
                let mut out = Watched::new(std::io::BufWriter::new(&file));
                let result = renderer
                    .render(report, &mut out)
                    .and_then(|()| Ok(out.flush()?));
                out.result(result)
                    .with_context(|| format!("writing {}", path.display()))?;
                Ok(Some(path))
            }
            Destination::File { path } => {
                let tmp = temporary(&path);
                let write = || -> Result<()> {
                    let file = File::create(&tmp)?;
                    let mut out = std::io::BufWriter::new(&file);
                    renderer.render(report, &mut out)?;
                    out.flush()?;
                    drop(out);
                    std::fs::rename(&tmp, &path)?;
                    Ok(())
                };
                if let Err(e) = write() {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e.context(format!("writing {}", path.display())));
                }
                Ok(Some(path))
            }
        }
    }
}

/// A writer that remembers a broken pipe, so that a renderer which turns write errors into
/// its own still ends the run quietly when the reader went away (`-o - | head`).
struct Watched<W: Write> {
    inner: W,
    broken: bool,
}

impl<W: Write> Watched<W> {
    fn new(inner: W) -> Self {
        Watched {
            inner,
            broken: false,
        }
    }

    fn watch<T>(&mut self, result: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &result {
            self.broken |= e.kind() == std::io::ErrorKind::BrokenPipe;
        }
        result
    }

    /// The render's result, as a broken pipe when one was seen on the way.
    fn result(mut self, result: Result<()>) -> Result<()> {
        let flushed = self.inner.flush();
        let _ = self.watch(flushed);
        match result {
            Err(_) if self.broken => {
                Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe).into())
            }
            other => other,
        }
    }
}

impl<W: Write> Write for Watched<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let result = self.inner.write(buf);
        self.watch(result)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let result = self.inner.flush();
        self.watch(result)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let result = self.inner.write_all(buf);
        self.watch(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_file_is_found_by_inode_and_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.rec");
        std::fs::write(&a, "x").unwrap();
        let link = dir.path().join("link.rec");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        assert!(same_file(&a, &link));
        assert!(same_file(&a, &dir.path().join("./a.rec")));
        let new = dir.path().join("new.json");
        assert!(same_file(&new, &dir.path().join(".").join("new.json")));
        assert!(!same_file(&a, &new));
    }

    #[test]
    fn a_file_that_cannot_be_written_is_refused_before_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let err = Output::prepare(Some(dir.path())).err().unwrap();
        assert!(err.to_string().contains("it is a directory"), "{err}");
        let missing = dir.path().join("no/such/dir/r.json");
        assert!(Output::prepare(Some(&missing)).is_err());
        // Nothing was created by the checks.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let new = dir.path().join("r.json");
        assert!(matches!(
            Output::prepare(Some(&new)).unwrap(),
            Output::File { .. }
        ));
        assert!(!new.exists());
        assert!(matches!(
            Output::prepare(Some(Path::new("/dev/null"))).unwrap(),
            Output::Special { .. }
        ));
    }
}
