//! One profiling run for the command line: launch or attach, sample until the end, print the
//! summary, write the report, and decide the exit code.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::analysis::Accumulator;
use crate::attach;
use crate::cli::{OutputOptions, RunOptions};
use crate::error::UserError;
use crate::family::{self, Children, Followed, Gone};
use crate::model::TargetInfo;
use crate::output::{self, Output};
use crate::progress::Progress;
use crate::record::{failure_code, Program};
use crate::recording;
use crate::report::{terminal, Format, Report};
use crate::signals::{self, Stop};
use crate::threshold;

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

/// The file `-o` names, if it names one.
fn file_output(out: &OutputOptions) -> Option<&Path> {
    out.output.as_deref().filter(|p| *p != Path::new("-"))
}

/// `gilscope report FILE`: the reports of a recording, as the live run would have written
/// them.
pub fn report(file: &Path, out: &OutputOptions) -> Result<u8> {
    if file.is_dir() {
        return Err(UserError::BadRecording {
            path: file.to_path_buf(),
            reason: "it is a directory; give the file that --recording wrote".into(),
        }
        .into());
    }
    let same_as_recording = |report: &Path| {
        if output::same_file(file, report) {
            Err(UserError::Usage(format!(
                "the report would overwrite the recording {}: give -o another path",
                file.display()
            )))
        } else {
            Ok(())
        }
    };
    if let Some(report) = file_output(out) {
        same_as_recording(report)?;
    }
    let outputs = prepare(out)?;
    let replayed = recording::replay(file).map_err(|e| UserError::BadRecording {
        path: file.to_path_buf(),
        reason: format!("{e:#}"),
    })?;
    if out.output.is_none() {
        for &format in &out.formats {
            same_as_recording(&output::default_path(replayed.target.pid, format))?;
        }
    }
    // Printed even with -q: the report covers less than the run, or less than the file.
    if let Some(why) = &replayed.cut_short {
        crate::sayln!(
            "gilscope: warning: {} ends early ({why}: the run was cut short); reporting what \
             it holds",
            file.display()
        );
    }
    for warning in &replayed.warnings {
        crate::sayln!(
            "gilscope: warning: {}: {warning}, to keep the replay bounded",
            file.display()
        );
    }
    let report = Report {
        target: &replayed.target,
        profile: &replayed.profile,
        subprocesses: &replayed.subprocesses,
    };
    let crossed = deliver(&report, outputs, out)?;
    Ok(if crossed { 1 } else { 0 })
}

/// Every requested output, checked for writability.
fn prepare(out: &OutputOptions) -> Result<Vec<(Format, Output)>, UserError> {
    out.formats
        .iter()
        .map(|&f| Ok((f, Output::prepare(out.output.as_deref())?)))
        .collect()
}

/// Prints the summary, writes every report, then checks the thresholds: true when one was
/// crossed (each is printed with where and by how much).
fn deliver(report: &Report, outputs: Vec<(Format, Output)>, out: &OutputOptions) -> Result<bool> {
    let quiet = out.quiet;
    let destinations = outputs
        .into_iter()
        .map(|(format, output)| Ok((format, output.open(report.target.pid, format)?)))
        .collect::<Result<Vec<_>, UserError>>()?;
    // The reports first: a terminal that went away must not cost them.
    let mut written = Vec::new();
    for (format, destination) in destinations {
        written.extend(destination.write(format.renderer().as_ref(), report)?);
    }
    if !quiet {
        crate::say!("{}", terminal::summary(report));
    }
    if !quiet && !written.is_empty() {
        let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        crate::sayln!("\nWrote {}", names.join(", "));
    }
    let processes: Vec<(i32, &crate::analysis::Profile)> =
        std::iter::once((report.target.pid, report.profile))
            .chain(report.subprocesses.iter().map(|s| (s.info.pid, &s.profile)))
            .collect();
    let crossed = threshold::check(&out.thresholds, &processes);
    for c in &crossed {
        // Printed even with -q: it is why the job fails.
        crate::sayln!("gilscope: {c}");
    }
    Ok(!crossed.is_empty())
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
            (pid, None, family::cmdline(pid))
        }
    };
    let opened = match program.as_mut() {
        // Whatever the command is: a wrapper is followed to the Python it starts.
        Some(p) => family::find(p, &command, &|| {
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
    let root = pid;
    let pid = target.pid;
    let command = if wrapped {
        family::cmdline(pid)
    } else {
        launched.clone()
    };
    if wrapped && !options.out.quiet {
        crate::sayln!(
            "gilscope: `{}` is not Python; profiling the Python process it started, pid {pid} \
             (and any other it starts)",
            family::command_text(&launched)
        );
    }
    let mut followed = Followed::start(target, options.rates, command.clone(), options.out.quiet)?;
    let info = TargetInfo {
        pid,
        python,
        command,
        state_hz: options.rates.state_hz,
        stack_hz: options.rates.stack_hz,
        monotonic_zero_ns: followed.monotonic_zero_ns,
        cwd: crate::family::working_dir(pid),
    };
    let cpu_count = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut tape = recording::Tape::new(recording.take());
    tape.process(0, &info, cpu_count);
    if !options.out.quiet {
        crate::sayln!(
            "gilscope: sampling pid {pid} (CPython {}{build}) at {:.0} Hz, stacks at {:.0} Hz; \
             Ctrl-C to stop",
            crate::report::text::terminal(&info.python, 64),
            info.state_hz,
            info.stack_hz
        );
    }
    let mut acc = Accumulator::with_cwd(info.cwd.clone());
    // A wrapper's other Python processes are profiled as with --subprocesses: a script
    // that runs several programs is profiled whole.
    let mut children = (options.subprocesses || wrapped).then(|| {
        let mut c = Children::new(root, options.rates, cpu_count);
        c.skip(pid);
        c
    });
    let started = Instant::now();
    let mut progress = Progress::on_terminal(options.out.quiet);
    let mut stopped_by_us = false;
    let mut batch = Vec::new();
    loop {
        let gone = followed.poll(Duration::from_millis(50), &mut batch)?;
        for s in batch.drain(..) {
            tape.sample(0, &s);
            if let Some(p) = progress.as_mut() {
                p.sample(&s);
            }
            acc.push(s);
        }
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
            children.poll(&mut tape);
        }
        if let Some(p) = progress.as_mut() {
            p.tick();
        }
        if signals::received().is_some() || options.duration.is_some_and(|d| started.elapsed() >= d)
        {
            stopped_by_us = true;
            break;
        }
        if program.as_mut().is_some_and(|p| p.exited().is_some()) {
            break;
        }
    }
    if let Some(p) = progress.as_mut() {
        p.clear();
    }
    let mut rest = Vec::new();
    let (gone, late_ticks) = followed.finish(&mut rest)?;
    for s in rest {
        tape.sample(0, &s);
        acc.push(s);
    }
    let subprocesses = children.map_or_else(Vec::new, |c| c.finish(&mut tape));
    let stop = signals::received();
    match (program.as_mut(), stop) {
        (Some(p), Some(stop)) => _ = after_signal(p, stop)?,
        (Some(p), None) => _ = p.stop()?,
        (None, _) => {}
    }
    let exit = program.as_mut().and_then(|p| p.exit(stopped_by_us));
    tape.end_with(0, late_ticks, exit);
    let recorded = tape.finish();

    let mut profile = acc.finish(late_ticks, cpu_count);
    if let Some(exit) = exit {
        crate::analysis::program_ended(&mut profile, &launched, exit);
    }
    let report = Report {
        target: &info,
        profile: &profile,
        subprocesses: &subprocesses,
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
    let cpu_count = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut tape = recording::Tape::new(recording);
    tape.process(0, &info, cpu_count);
    tape.end_with(0, 0, Some(exit));
    let recorded = tape.finish();
    let mut profile = Accumulator::default().finish(0, cpu_count);
    crate::analysis::program_ended(&mut profile, &info.command, exit);
    let report = Report {
        target: &info,
        profile: &profile,
        subprocesses: &[],
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
        &info.command,
        Some(exit),
    ))
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
