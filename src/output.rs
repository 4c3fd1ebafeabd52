//! Where the report goes: checked before sampling starts, written after it ends.
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
    /// `-o PATH`, opened but not truncated, so an existing report survives a run that fails.
    File {
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
            Some(p) => {
                let file = File::options()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(p)
                    .map_err(|e| unwritable(p, e))?;
                Ok(Output::File {
                    path: p.to_path_buf(),
                    file,
                })
            }
            None => {
                let probe = PathBuf::from(format!(".gilscope-probe-{}", std::process::id()));
                File::create(&probe).map_err(|e| unwritable(Path::new("."), e))?;
                let _ = std::fs::remove_file(&probe);
                Ok(Output::Default)
            }
        }
    }

    /// Opens the destination once the pid is known.
    pub fn open(self, pid: i32, format: Format) -> Result<Destination, UserError> {
        match self {
            Output::Stdout => Ok(Destination::Stdout),
            Output::File { path, file } => Ok(Destination::File { path, file }),
            Output::Default => {
                let path = PathBuf::from(format!("gilscope-{pid}.{}", format.suffix()));
                let file = File::create(&path).map_err(|e| unwritable(&path, e))?;
                Ok(Destination::File { path, file })
            }
        }
    }
}

/// An open destination.
pub enum Destination {
    Stdout,
    File { path: PathBuf, file: File },
}

impl Destination {
    /// Renders the report into the destination; returns the path written, if a file.
    pub fn write(self, renderer: &dyn Render, report: &Report) -> Result<Option<PathBuf>> {
        match self {
            Destination::Stdout => {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                renderer.render(report, &mut out)?;
                out.flush()?;
                Ok(None)
            }
            Destination::File { path, file } => {
                let write = || -> Result<()> {
                    // Truncate now, not before the run; /dev/null and pipes have nothing to cut.
                    if file.metadata()?.is_file() {
                        file.set_len(0)?;
                    }
                    let mut out = std::io::BufWriter::new(&file);
                    renderer.render(report, &mut out)?;
                    out.flush()?;
                    Ok(())
                };
                write().with_context(|| format!("writing {}", path.display()))?;
                Ok(Some(path))
            }
        }
    }
}
