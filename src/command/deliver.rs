//! What every command that reports ends with: the reports written, the summary printed, and
//! the `--fail-if` thresholds checked.

use std::path::Path;

use anyhow::Result;

use crate::cli::OutputOptions;
use crate::error::UserError;
use crate::report::{terminal, Format, Report};
use crate::run::output::Output;
use crate::run::threshold;

/// The file `-o` names, if it names one.
pub(super) fn file_output(out: &OutputOptions) -> Option<&Path> {
    out.output.as_deref().filter(|p| *p != Path::new("-"))
}

/// Every requested output, checked for writability.
pub(super) fn prepare(out: &OutputOptions) -> Result<Vec<(Format, Output)>, UserError> {
    out.formats
        .iter()
        .map(|&f| Ok((f, Output::prepare(out.output.as_deref())?)))
        .collect()
}

/// Prints the summary, writes every report, then checks the thresholds: true when one was
/// crossed (each is printed with where and by how much).
pub(super) fn deliver(
    report: &Report,
    outputs: Vec<(Format, Output)>,
    out: &OutputOptions,
) -> Result<bool> {
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
