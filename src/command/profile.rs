//! `record` and `attach`: one profiling run for the command line. Launch or attach, sample
//! until the end, deliver the summary and reports, and decide the exit code.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::deliver::{deliver, file_output, prepare};
use crate::cli::RunOptions;
use crate::error::UserError;
use crate::model::TargetInfo;
use crate::process::program::{failure_code, Program};
use crate::process::{self, attach, Children, Followed, Gone, ProcessSet, TARGET};
use crate::recording;
use crate::report::{Format, Report};
use crate::run::output::{self, Output};
use crate::run::progress::Progress;
use crate::run::signals::{self, Stop};

/// How long `attach` retries a process whose interpreter is not readable yet.
const ATTACH_PATIENCE: Duration = Duration::from_secs(2);
/// How long a program that got the signal which ended the run (from the terminal, or passed
/// on by gilscope) may take to exit before gilscope stops it.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);

/// What to profile.
pub enum Launch {
    /// The command line, as raw bytes: arguments need not be UTF-8.
    Record(Vec<OsString>),
    Attach(i32),
}

/// Runs one profiling session; returns the process exit code.
pub fn run(launch: Launch, options: &RunOptions) -> Result<u8> {
    let out = &options.out;
    if !out.quiet {
        for note in &options.notes {
            crate::sayln!("gilscope: note: {note}");
        }
    }
    // Checked before the program starts, not after a long run.
    if let (Some(rec), Some(report)) = (&options.recording, file_output(out)) {
        if output::same_file(rec, report) {
            return Err(UserError::Usage(format!(
                "--recording and -o both name {}: give the report another path",
                rec.display()
            ))
            .into());
        }
    }
    let outputs = prepare(out)?;
    let recording =
        match &options.recording {
            Some(path) => Some(recording::Writer::create(path).map_err(|e| {
                UserError::RecordingNotWritable {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?),
            None => None,
        };
    let new_recording = options.recording.as_deref().filter(|_| recording.is_some());
    let result = profile(launch, options, outputs, recording);
    if result.is_err() {
        // Leave no empty recording behind a run that produced none (a report file appears
        // only once it is written whole).
        if let Some(path) = new_recording {
            let _ = std::fs::remove_file(path);
        }
    }
    match result {
        // A command that ran no Python: said, and its own status passed on.
        Err(e) => match e.downcast_ref::<UserError>() {
            Some(UserError::NoPython { code, .. }) => {
                crate::sayln!("gilscope: {e}");
                Ok(*code)
            }
            _ => Err(e),
        },
        ok => ok,
    }
}

fn profile(
    launch: Launch,
    options: &RunOptions,
    outputs: Vec<(Format, Output)>,
    mut recording: Option<recording::Writer>,
) -> Result<u8> {
    // SIGINT, SIGTERM and SIGHUP end the run with its reports instead of killing gilscope;
    // installed before the program starts, so that none is lost in between.
    signals::install()?;

    let launched_at = Instant::now();
    let (pid, mut program, command) = match launch {
        Launch::Record(argv) => {
            let to_stderr = options.out.output.as_deref() == Some(Path::new("-"));
            let program = Program::spawn(&argv, to_stderr)?;
            let command = argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            (program.pid(), Some(program), command)
        }
        Launch::Attach(pid) => {
            attach::check(pid)?;
            (pid, None, process::cmdline(pid))
        }
    };
    let opened = match program.as_mut() {
        // Whatever the command is: a wrapper is followed to the Python it starts.
        Some(p) => process::find(p, &command, &|| {
            signals::received().is_some()
                || options.duration.is_some_and(|d| launched_at.elapsed() >= d)
        }),
        None => attach::open(pid, ATTACH_PATIENCE),
    };
    let target = match opened {
        Ok(target) => target,
        Err(e @ UserError::ExitedBeforeAttach { .. }) => {
            // A program that failed before it could be read is reported as failed, and its
            // failure passed on.
            return match program.as_mut().and_then(|p| p.exit(false)) {
                Some(exit) if exit.failed() => {
                    let info = TargetInfo {
                        pid,
                        python: String::new(),
                        command,
                        state_hz: options.rates.state_hz,
                        stack_hz: options.rates.stack_hz,
                        monotonic_zero_ns: 0,
                        cwd: None,
                    };
                    unread(info, exit, options, outputs, recording)
                }
                _ => Err(e.into()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    let python = target.python.version.clone();
    let build = if target.free_threaded {
        " free-threaded"
    } else {
        ""
    };
    // A wrapper's Python: the target is its process, the exit status the wrapper's.
    let launched = command;
    let wrapped = target.pid != pid;
    let target_started = crate::sampler::procfs::start_time(target.pid);
    let root = pid;
    let pid = target.pid;
    let command = if wrapped {
        process::cmdline(pid)
    } else {
        launched.clone()
    };
    if wrapped && !options.out.quiet {
        crate::sayln!(
            "gilscope: `{}` is not Python; profiling the Python process it started, pid {pid} \
             (and any other it starts)",
            process::command_text(&launched)
        );
    }
    let (mut followed, sampler) =
        Followed::start(target, options.rates, command.clone(), options.out.quiet)?;
    let info = TargetInfo {
        pid,
        python,
        command,
        state_hz: options.rates.state_hz,
        stack_hz: options.rates.stack_hz,
        monotonic_zero_ns: followed.monotonic_zero_ns,
        cwd: process::working_dir(pid),
    };
    if !options.out.quiet {
        crate::sayln!(
            "gilscope: sampling pid {pid} (CPython {}{build}) at {:.0} Hz, stacks at {:.0} Hz; \
             Ctrl-C to stop",
            crate::report::text::terminal(&info.python, 64),
            info.state_hz,
            info.stack_hz
        );
    }
    let cpu_count = cpu_count();
    let tape = recording::Tape::new(recording.take());
    let mut set = ProcessSet::new(tape, Progress::on_terminal(options.out.quiet));
    set.add(info, cpu_count, Some(sampler));
    if program.is_some() {
        set.launched(launched.clone());
    }
    // A wrapper's other Python processes are profiled as with --subprocesses: a script
    // that runs several programs is profiled whole.
    let mut children = (options.subprocesses || wrapped).then(|| {
        let mut c = Children::new(root, options.rates, cpu_count);
        c.skip(pid);
        c
    });
    let started = Instant::now();
    let mut stopped_by_us = false;
    loop {
        let gone = followed.poll(&mut set, Duration::from_millis(50))?;
        if gone == Some(Gone::LeftPython) && program.is_some() && children.is_none() {
            // Its program runs on: what it starts may be Python, and it ends the run.
            children = Some(Children::new(root, options.rates, cpu_count));
        }
        // The target's end ends the run, unless the launched command runs on and what it
        // starts is followed.
        if gone.is_some() && (program.is_none() || children.is_none()) {
            break;
        }
        if let Some(children) = children.as_mut() {
            children.poll(&mut set);
        }
        set.show_progress();
        if signals::received().is_some() || options.duration.is_some_and(|d| started.elapsed() >= d)
        {
            stopped_by_us = true;
            break;
        }
        if program.as_mut().is_some_and(|p| p.exited().is_some()) {
            break;
        }
    }
    set.hide_progress();
    let gone = followed.finish(&mut set)?;
    if let Some(children) = children.as_mut() {
        children.poll(&mut set);
    }
    // Sampling ends with the run, before the program is given its time to exit.
    set.stop_sampling();
    let stop = signals::received();
    match (program.as_mut(), stop) {
        (Some(p), Some(stop)) => _ = after_signal(p, stop)?,
        (Some(p), None) => _ = p.stop()?,
        (None, _) => {}
    }
    if let (true, Some(started)) = (wrapped && stopped_by_us, target_started) {
        // The wrapper is stopped; the Python it started must not run on without it.
        process::program::stop_followed(pid, started);
    }
    let exit = program.as_mut().and_then(|p| p.exit(stopped_by_us));
    set.end(TARGET, exit);
    let (profiles, recorded) = set.finish();
    let report = Report {
        target: &profiles.target,
        profile: &profiles.profile,
        subprocesses: &profiles.subprocesses,
    };
    if !options.out.quiet && gone == Gone::Exited && program.is_none() {
        crate::sayln!("gilscope: process {pid} exited; reporting what was collected");
    }
    let crossed = deliver(&report, outputs, &options.out)?;
    if let (Some(path), false) = (recorded, options.out.quiet) {
        crate::sayln!(
            "Recorded {} (gilscope report {0} renders it again)",
            path.display()
        );
    }

    // A program that failed on its own passes its status on; one gilscope stopped does not.
    // A crossed threshold fails an otherwise good run.
    let failed = exit.as_ref().and_then(failure_code);
    let code = exit_code(failed, crossed, &launched, exit);
    Ok(match stop.and_then(|s| s.exit_code()) {
        // A run that SIGTERM or SIGHUP ended says so in its status, as shells expect.
        Some(signalled) => signalled,
        None => code,
    })
}

/// gilscope's exit code: the program's own failure status, else 1 for a crossed threshold.
/// When the program failed, says so in one line (even with -q, like a crossed threshold: it
/// is why the job fails), so that its exit 1 is not taken for a crossed `--fail-if`.
fn exit_code(
    failed: Option<u8>,
    crossed: bool,
    command: &[String],
    exit: Option<crate::model::ProgramExit>,
) -> u8 {
    let (Some(code), Some(exit)) = (failed, exit) else {
        return if crossed { 1 } else { 0 };
    };
    let why = crate::analysis::exit_sentence(command, &exit);
    let threshold = if crossed {
        "; the --fail-if crossed above would have exited 1"
    } else {
        ""
    };
    crate::sayln!("gilscope: exit status {code}, the program's own: {why}{threshold}");
    code
}

/// `record` of a program that failed before its interpreter could be read: the reports of
/// an empty run, which say so, and its status passed on.
fn unread(
    info: TargetInfo,
    exit: crate::model::ProgramExit,
    options: &RunOptions,
    outputs: Vec<(Format, Output)>,
    recording: Option<recording::Writer>,
) -> Result<u8> {
    let mut set = ProcessSet::new(recording::Tape::new(recording), None);
    set.add(info, cpu_count(), None);
    set.end(TARGET, Some(exit));
    let (profiles, recorded) = set.finish();
    let report = Report {
        target: &profiles.target,
        profile: &profiles.profile,
        subprocesses: &profiles.subprocesses,
    };
    let crossed = deliver(&report, outputs, &options.out)?;
    if let (Some(path), false) = (recorded, options.out.quiet) {
        crate::sayln!(
            "Recorded {} (gilscope report {0} renders it again)",
            path.display()
        );
    }
    Ok(exit_code(
        failure_code(&exit),
        crossed,
        &profiles.target.command,
        Some(exit),
    ))
}

/// The machine's CPUs, for the CPU supply.
fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A signal ended the run: the program got it from the terminal too (Ctrl-C, a hang-up: the
/// terminal signals the foreground process group, which the program is in unless it left
/// it), or gets it passed on now (`kill`, `timeout`, `docker stop` signalled gilscope alone).
/// It may finish its own way for [`INTERRUPT_GRACE`]; then it is stopped (SIGTERM, then
/// SIGKILL). A second signal stops it at once.
fn after_signal(program: &mut Program, stop: Stop) -> std::io::Result<std::process::ExitStatus> {
    // SAFETY: getpgid and getpgrp have no memory-safety preconditions.
    let same_group = unsafe { libc::getpgid(program.pid()) == libc::getpgrp() };
    if !(stop.from_terminal && same_group) {
        program.signal(stop.signal);
    }
    if let Some(status) = program.wait_for(Duration::from_millis(200)) {
        return Ok(status);
    }
    crate::sayln!(
        "gilscope: {}; waiting up to {} s for the program to exit (again to stop it now)",
        stop.name(),
        INTERRUPT_GRACE.as_secs()
    );
    let deadline = Instant::now() + INTERRUPT_GRACE;
    while Instant::now() < deadline {
        if let Some(status) = program.wait_for(Duration::from_millis(50)) {
            return Ok(status);
        }
        if signals::received().is_some_and(|s| s.count > stop.count) {
            return program.kill();
        }
    }
    program.stop()
}
