//! One profiling run for the command line: launch or attach, sample until the end, print the
//! summary, write the report, and decide the exit code.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::analysis::Accumulator;
use crate::cli::RunOptions;
use crate::error::UserError;
use crate::model::TargetInfo;
use crate::report::{terminal, Format, Report};
use crate::sampler::{End, Sampler};
use crate::{attach, record};

/// How long a just-launched program may take before its interpreter can be read.
const LAUNCH_PATIENCE: Duration = Duration::from_secs(10);
/// How long `attach` retries a process whose interpreter is not readable yet.
const ATTACH_PATIENCE: Duration = Duration::from_secs(2);
/// How long a program stopped by --duration gets between SIGTERM and SIGKILL.
const TERMINATE_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for a program that got Ctrl-C along with gilscope before stopping it.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);

/// What to profile.
pub enum Launch {
    Record(Vec<String>),
    Attach(i32),
}

/// Where the report goes, checked before sampling starts.
enum Output {
    Stdout,
    File(PathBuf, File),
    /// `gilscope-<pid>.<ext>` in the current directory, created once the pid is known.
    Default,
}

impl Output {
    fn prepare(path: Option<&Path>) -> Result<Output, UserError> {
        let unwritable = |path: &Path, e: std::io::Error| UserError::OutputNotWritable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        match path {
            Some(p) if p == Path::new("-") => Ok(Output::Stdout),
            Some(p) => {
                // Opened, not truncated: an existing report survives a run that fails early.
                let file = File::options()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(p)
                    .map_err(|e| unwritable(p, e))?;
                Ok(Output::File(p.to_path_buf(), file))
            }
            None => {
                // Probe the current directory now rather than after a long run.
                let probe = PathBuf::from(format!(".gilscope-probe-{}", std::process::id()));
                File::create(&probe).map_err(|e| unwritable(Path::new("."), e))?;
                let _ = std::fs::remove_file(&probe);
                Ok(Output::Default)
            }
        }
    }

    /// Opens the destination; `None` for standard output.
    fn open(self, pid: i32, format: Format) -> Result<Option<(PathBuf, File)>, UserError> {
        match self {
            Output::Stdout => Ok(None),
            Output::File(path, file) => Ok(Some((path, file))),
            Output::Default => {
                let path = PathBuf::from(format!("gilscope-{pid}.{}", format.extension()));
                let file = File::create(&path).map_err(|e| UserError::OutputNotWritable {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                Ok(Some((path, file)))
            }
        }
    }
}

/// Runs one profiling session; returns the process exit code.
pub fn run(launch: Launch, options: &RunOptions) -> Result<u8> {
    let new_file = options
        .output
        .as_deref()
        .filter(|p| *p != Path::new("-") && !p.exists());
    let output = Output::prepare(options.output.as_deref())?;
    let result = profile(launch, options, output);
    if let (Err(_), Some(path)) = (&result, new_file) {
        // Leave no empty report behind a run that produced none.
        let _ = std::fs::remove_file(path);
    }
    result
}

fn profile(launch: Launch, options: &RunOptions, output: Output) -> Result<u8> {
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // Ctrl-C ends the run with a report instead of killing gilscope; a second handler
        // cannot be installed, which only matters to tests that run twice in one process.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));
    }

    let (pid, mut child, command) = match launch {
        Launch::Record(command) => {
            let child = record::spawn(&command)?;
            (child.id() as i32, Some(child), command)
        }
        Launch::Attach(pid) => {
            attach::check(pid)?;
            (pid, None, cmdline(pid))
        }
    };
    let patience = if child.is_some() {
        LAUNCH_PATIENCE
    } else {
        ATTACH_PATIENCE
    };
    let target = match attach::open(pid, patience) {
        Ok(target) => target,
        Err(e) => {
            if let Some(child) = child.as_mut() {
                if let Some(status) = child
                    .try_wait()?
                    .filter(|_| matches!(e, UserError::ExitedBeforeAttach { .. }))
                {
                    // A program that ended before it could be read still passes on a failure.
                    if let Some(code) = record::failure_code(status) {
                        eprintln!("gilscope: {e}");
                        return Ok(code);
                    }
                } else {
                    let _ = record::terminate(child, TERMINATE_GRACE);
                }
            }
            return Err(e.into());
        }
    };
    let destination = output.open(pid, options.format)?;
    let info = TargetInfo {
        pid,
        python: target.python.version.clone(),
        command,
        state_hz: options.rates.state_hz,
        stack_hz: options.rates.stack_hz,
    };

    let sampler = Sampler::start(target, options.rates)?;
    if !options.quiet {
        eprintln!(
            "gilscope: sampling pid {pid} (CPython {}) at {:.0} Hz, stacks at {:.0} Hz; Ctrl-C to stop",
            info.python, info.state_hz, info.stack_hz
        );
    }
    let mut acc = Accumulator::default();
    let started = Instant::now();
    let mut child_status = None;
    let mut stopped_by_us = false;
    loop {
        match sampler.samples.recv_timeout(Duration::from_millis(50)) {
            Ok(batch) => batch.into_iter().for_each(|s| acc.push(s)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if interrupted.load(Ordering::Relaxed)
            || options.duration.is_some_and(|d| started.elapsed() >= d)
        {
            stopped_by_us = true;
            break;
        }
        if let Some(child) = child.as_mut() {
            if let Some(status) = child.try_wait()? {
                child_status = Some(status);
                break;
            }
        }
    }
    let (end, counters, rest) = sampler.finish()?;
    rest.into_iter().for_each(|s| acc.push(s));

    if let Some(child) = child.as_mut() {
        if child_status.is_none() {
            child_status = if interrupted.load(Ordering::Relaxed) {
                // The terminal sent Ctrl-C to the program too: let it finish its own way.
                match record::wait_for(child, Duration::from_millis(200)) {
                    Some(status) => Some(status),
                    None => {
                        eprintln!(
                            "gilscope: interrupted; waiting up to {} s for the program to exit",
                            INTERRUPT_GRACE.as_secs()
                        );
                        match record::wait_for(child, INTERRUPT_GRACE) {
                            Some(status) => Some(status),
                            None => Some(record::terminate(child, TERMINATE_GRACE)?),
                        }
                    }
                }
            } else {
                Some(record::terminate(child, TERMINATE_GRACE)?)
            };
        }
    }

    let cpu_count = std::thread::available_parallelism().map_or(1, |n| n.get());
    let profile = acc.finish(counters.late_ticks, cpu_count);
    let report = Report {
        target: &info,
        profile: &profile,
    };
    if !options.quiet {
        let mut summary = terminal::summary(&report);
        if end == End::TargetExited && child.is_none() {
            summary.insert_str(
                0,
                &format!("gilscope: process {pid} exited; reporting what was collected\n"),
            );
        }
        eprint!("{summary}");
    }
    write_report(&report, options.format, destination, options.quiet)?;

    // A program that failed on its own passes its status on; one gilscope stopped does not.
    let code = match child_status {
        Some(status) if !stopped_by_us => record::failure_code(status).unwrap_or(0),
        _ => 0,
    };
    Ok(code)
}

fn write_report(
    report: &Report,
    format: Format,
    destination: Option<(PathBuf, File)>,
    quiet: bool,
) -> Result<()> {
    let renderer = format.renderer();
    match destination {
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            renderer.render(report, &mut out)?;
            out.flush()?;
        }
        Some((path, file)) => {
            file.set_len(0)
                .with_context(|| format!("truncating {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            renderer
                .render(report, &mut out)
                .and_then(|_| out.flush().map_err(Into::into))
                .with_context(|| format!("writing {}", path.display()))?;
            if !quiet {
                eprintln!("\nWrote {}", path.display());
            }
        }
    }
    Ok(())
}

/// The command line of a running process, for the report.
fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}
