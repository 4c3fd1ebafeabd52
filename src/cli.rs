//! The command line: clap types at the edge, converted to plain [`RunOptions`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::UserError;
use crate::report::Format;
use crate::run::threshold::Threshold;
use crate::sampler::Rates;

#[derive(Debug, Parser)]
#[command(
    name = "gilscope",
    version,
    about = "Is the GIL your bottleneck? Samples a live CPython process from outside and \
             shows which threads hold the GIL, which wait for it, and which code makes them wait.",
    after_help = "Exit codes: 0 ok; 1 a --fail-if threshold was crossed; 2 usage or runtime \
                  error. `record` passes on the command's own status when it fails (its exit \
                  code, or 128+signal). SIGINT (Ctrl-C), SIGTERM and SIGHUP end a run: \
                  gilscope stops sampling, passes the signal on to the program it launched \
                  (SIGKILL after a few seconds), writes every report, then exits as usual \
                  after SIGINT, and 128+signal after SIGTERM (143) or SIGHUP (129). If \
                  gilscope is killed, the program it launched is killed with it. With -o -, \
                  the launched program's stdout goes to stderr, so stdout holds the report \
                  alone."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Launch a Python program and profile it until it exits, Ctrl-C or --duration.
    Record {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        out: OutputArgs,
        /// The command to run, after `--`: gilscope record -- python3 app.py --its-flags
        /// (passed on byte for byte, whatever their encoding).
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND",
            value_parser = clap::value_parser!(OsString)
        )]
        command: Vec<OsString>,
    },
    /// Profile a running Python process until Ctrl-C, --duration, or its exit.
    Attach {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        out: OutputArgs,
        /// The process id of the Python program.
        pid: i32,
    },
    /// Render the reports of a recording (made with --recording) as a live run would have.
    Report {
        #[command(flatten)]
        out: OutputArgs,
        /// The recording file.
        recording: PathBuf,
    },
    /// Print one snapshot of every Python thread of a running process: its GIL state and
    /// Python stack, innermost frame first.
    Dump {
        /// The process id of the Python program.
        pid: i32,
        /// Print one JSON document (schema gilscope-dump/1) instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// How `record` and `attach` sample.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Stack samples per second.
    #[arg(short, long, default_value_t = 100.0, value_name = "HZ")]
    pub rate: f64,
    /// GIL-state samples per second (cheap: one memory read per GIL and one /proc read per
    /// thread); metrics are counted from these.
    #[arg(long, default_value_t = 250.0, value_name = "HZ")]
    pub state_rate: f64,
    /// Stop after this many seconds, at most 30 days (record stops the program then).
    #[arg(short, long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Also profile the program's child processes as they start and end (a multiprocessing
    /// pool, a pre-fork server): a section per process, and all of them together.
    #[arg(long)]
    pub subprocesses: bool,
    /// Keep the raw samples in this file as the run goes (flushed every second), for
    /// `gilscope report FILE` later.
    #[arg(long, value_name = "FILE")]
    pub recording: Option<PathBuf>,
}

/// Where reports go and in which formats, for every command that writes them.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Where to write the report; `-` is standard output. Takes one --format. Default:
    /// gilscope-<pid>.<format suffix> in the current directory, one file per format.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Report formats, comma-separated or repeated. Default: svg, the report.
    #[arg(short, long, value_enum, value_delimiter = ',', value_name = "FORMAT")]
    pub format: Vec<FormatArg>,
    /// Do not print the summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Exit 1 (after writing every report) when a metric crosses a line, e.g.
    /// 'contended > 0.5' or 'avg_waiters >= 2'; names are the JSON keys (repeatable).
    #[arg(long = "fail-if", value_name = "EXPR")]
    pub fail_if: Vec<String>,
}

/// `--format`'s values, one per [`Format`]: the docs here are what `--help` says of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// The report: one self-contained SVG with the verdict, the metrics, per-thread state
    /// bars, a timeline and the wall and blame flame graphs.
    Svg,
    /// Flame graph SVG of every thread, its state as the top frame.
    Flamegraph,
    /// Flame graph SVG of the code that holds the GIL.
    Holders,
    /// Flame graph SVG of the code that holds the GIL weighted by how many threads wait
    /// meanwhile: the code that makes others wait.
    Blame,
    /// Flame graph SVG of where threads wait for the GIL.
    Waiters,
    /// The `gilscope/2` summary JSON.
    Json,
    /// Collapsed stacks (`frame;frame count`), the state as the top frame.
    Collapsed,
    /// A Markdown summary for CI job pages.
    Markdown,
    /// speedscope's JSON file format (a sampled profile per thread).
    Speedscope,
    /// Chrome trace / Perfetto JSON: a track per thread with state slices and stack samples.
    Perfetto,
    /// pprof's gzipped protocol buffer (go tool pprof, Pyroscope, Grafana), with thread,
    /// state, interpreter and process labels.
    Pprof,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Svg => Format::Svg,
            FormatArg::Flamegraph => Format::Flamegraph,
            FormatArg::Holders => Format::Holders,
            FormatArg::Blame => Format::Blame,
            FormatArg::Waiters => Format::Waiters,
            FormatArg::Json => Format::Json,
            FormatArg::Collapsed => Format::Collapsed,
            FormatArg::Markdown => Format::Markdown,
            FormatArg::Speedscope => Format::Speedscope,
            FormatArg::Perfetto => Format::Perfetto,
            FormatArg::Pprof => Format::Pprof,
        }
    }
}

/// What a run needs, free of clap.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    pub rates: Rates,
    pub duration: Option<Duration>,
    pub subprocesses: bool,
    pub recording: Option<PathBuf>,
    pub out: OutputOptions,
    /// What the options changed from what was asked, to say at the start of the run.
    pub notes: Vec<String>,
}

/// Where reports go, free of clap.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputOptions {
    pub output: Option<PathBuf>,
    /// At least one, no repeats.
    pub formats: Vec<Format>,
    pub quiet: bool,
    /// `--fail-if`, parsed before the run.
    pub thresholds: Vec<Threshold>,
}

const MAX_RATE: f64 = 10_000.0;
/// The longest `--duration`: 30 days, far beyond any profile, and far from where the seconds
/// stop fitting a [`Duration`].
const MAX_DURATION_S: f64 = 30.0 * 24.0 * 3600.0;

impl RunArgs {
    pub fn options(&self, out: &OutputArgs) -> Result<RunOptions, UserError> {
        for (name, hz) in [("--rate", self.rate), ("--state-rate", self.state_rate)] {
            if !(hz > 0.0 && hz <= MAX_RATE) {
                return Err(UserError::Usage(format!(
                    "{name} must be above 0 and at most {MAX_RATE} samples per second, not {hz}"
                )));
            }
        }
        let duration = match self.duration {
            Some(s) if !(s > 0.0 && s <= MAX_DURATION_S) => {
                return Err(UserError::Usage(format!(
                    "--duration must be a positive number of seconds, at most \
                     {MAX_DURATION_S} (30 days), not {s}"
                )))
            }
            Some(s) => Some(Duration::from_secs_f64(s)),
            None => None,
        };
        // Stacks are taken at state ticks, so the state rate is at least the stack rate.
        let mut notes = Vec::new();
        if self.state_rate < self.rate {
            notes.push(format!(
                "--state-rate {} is below --rate {}: GIL states are sampled at {} Hz, since \
                 stacks are taken at state ticks",
                self.state_rate, self.rate, self.rate
            ));
        }
        Ok(RunOptions {
            rates: Rates {
                state_hz: self.state_rate.max(self.rate),
                stack_hz: self.rate,
            },
            duration,
            subprocesses: self.subprocesses,
            recording: self.recording.clone(),
            out: out.options()?,
            notes,
        })
    }
}

impl OutputArgs {
    pub fn options(&self) -> Result<OutputOptions, UserError> {
        let mut formats: Vec<Format> = Vec::new();
        for f in self.format.iter().map(|&f| Format::from(f)) {
            if !formats.contains(&f) {
                formats.push(f);
            }
        }
        if formats.is_empty() {
            formats.push(Format::Svg);
        }
        if self.output.is_some() && formats.len() > 1 {
            return Err(UserError::Usage(
                "-o names one file, so it takes one --format; leave -o out to write \
                 gilscope-<pid>.<format> files for several formats"
                    .into(),
            ));
        }
        let thresholds = self
            .fail_if
            .iter()
            .map(|e| Threshold::parse(e))
            .collect::<Result<_, _>>()?;
        Ok(OutputOptions {
            output: self.output.clone(),
            formats,
            quiet: self.quiet,
            thresholds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("gilscope").chain(args.iter().copied()))
    }

    #[test]
    fn the_parser_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn record_keeps_the_program_flags_for_the_program() {
        let cli = parse(&[
            "record", "--rate", "250", "--", "python3", "app.py", "--rate", "-x",
        ])
        .unwrap();
        let Command::Record { run, command, .. } = cli.command else {
            panic!()
        };
        assert_eq!(run.rate, 250.0);
        assert_eq!(command, ["python3", "app.py", "--rate", "-x"]);
    }

    #[test]
    fn attach_takes_a_pid_and_options() {
        let cli = parse(&["attach", "-d", "2.5", "-f", "json", "-o", "-", "4242"]).unwrap();
        let Command::Attach { run, out, pid } = cli.command else {
            panic!()
        };
        assert_eq!(pid, 4242);
        let o = run.options(&out).unwrap();
        assert_eq!(o.duration, Some(Duration::from_millis(2500)));
        assert_eq!(o.out.formats, [Format::Json]);
        assert_eq!(o.out.output, Some(PathBuf::from("-")));
        assert_eq!(
            o.rates,
            Rates {
                state_hz: 250.0,
                stack_hz: 100.0
            }
        );
    }

    #[test]
    fn every_format_has_one_value_in_the_same_order() {
        let named: Vec<Format> = FormatArg::value_variants()
            .iter()
            .map(|&f| Format::from(f))
            .collect();
        assert_eq!(named, Format::ALL);
    }

    #[test]
    fn formats_default_to_the_svg_report() {
        let formats = |args: &[&str]| {
            let Command::Attach { out, .. } = parse(args).unwrap().command else {
                panic!()
            };
            out.options().map(|o| o.formats)
        };
        assert_eq!(formats(&["attach", "1"]).unwrap(), [Format::Svg]);
        assert_eq!(
            formats(&["attach", "-o", "x.svg", "1"]).unwrap(),
            [Format::Svg]
        );
        assert_eq!(
            formats(&["attach", "-f", "json,waiters", "-f", "json", "1"]).unwrap(),
            [Format::Json, Format::Waiters]
        );
        assert!(formats(&["attach", "-f", "json,blame", "-o", "x", "1"]).is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["record"]).is_err());
        assert!(parse(&["attach", "notapid"]).is_err());
        assert!(parse(&["attach", "-f", "png", "1"]).is_err());
        let Command::Attach { run, out, .. } =
            parse(&["attach", "--rate", "0", "1"]).unwrap().command
        else {
            panic!()
        };
        assert!(run.options(&out).is_err());
        let Command::Attach { run, out, .. } =
            parse(&["attach", "--rate", "5000", "1"]).unwrap().command
        else {
            panic!()
        };
        assert_eq!(run.options(&out).unwrap().rates.state_hz, 5000.0);
    }

    #[test]
    fn durations_are_bounded_and_arguments_are_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let duration = |d: &str| {
            let Command::Attach { run, out, .. } =
                parse(&["attach", "-d", d, "1"]).unwrap().command
            else {
                panic!()
            };
            run.options(&out).map(|o| o.duration)
        };
        assert_eq!(
            duration("2592000").unwrap(),
            Some(Duration::from_secs(2_592_000))
        );
        for bad in ["2592000.5", "1e20", "1e30", "inf", "NaN", "0"] {
            let err = duration(bad).unwrap_err().to_string();
            assert!(err.contains("at most 2592000 (30 days)"), "{bad}: {err}");
        }
        let bad = OsString::from(std::ffi::OsStr::from_bytes(b"bad\xff.py"));
        let cli = Cli::try_parse_from([
            OsString::from("gilscope"),
            "record".into(),
            "--".into(),
            "python3".into(),
            bad.clone(),
        ])
        .unwrap();
        let Command::Record { command, .. } = cli.command else {
            panic!()
        };
        assert_eq!(command, [OsString::from("python3"), bad]);
    }

    #[test]
    fn a_state_rate_below_the_rate_is_raised_and_said() {
        let options = |args: &[&str]| {
            let Command::Attach { run, out, .. } = parse(args).unwrap().command else {
                panic!()
            };
            run.options(&out).unwrap()
        };
        let o = options(&["attach", "--rate", "200", "--state-rate", "50", "1"]);
        assert_eq!(o.rates.state_hz, 200.0);
        assert_eq!(
            o.notes,
            [
                "--state-rate 50 is below --rate 200: GIL states are sampled at 200 Hz, since \
              stacks are taken at state ticks"
            ]
        );
        assert!(options(&["attach", "--rate", "50", "1"]).notes.is_empty());
    }

    #[test]
    fn report_takes_a_recording_and_output_options() {
        let cli = parse(&["report", "-f", "json", "-o", "-", "run.gilscope"]).unwrap();
        let Command::Report { out, recording } = cli.command else {
            panic!()
        };
        assert_eq!(recording, PathBuf::from("run.gilscope"));
        assert_eq!(out.options().unwrap().formats, [Format::Json]);
        assert!(parse(&["report"]).is_err());
        let cli = parse(&["report", "--fail-if", "contended > 0.5", "x"]).unwrap();
        let Command::Report { out, .. } = cli.command else {
            panic!()
        };
        assert_eq!(out.options().unwrap().thresholds.len(), 1);
        let cli = parse(&["report", "--fail-if", "contention > 0.5", "x"]).unwrap();
        let Command::Report { out, .. } = cli.command else {
            panic!()
        };
        assert!(out.options().is_err());
        assert!(parse(&["report", "--rate", "5", "x"]).is_err());
    }
}
