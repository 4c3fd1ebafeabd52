//! `gilscope report FILE`: a recording replayed through the same [`ProcessSet`] as a live
//! run, and reported as the live run would have been.

use std::path::Path;

use anyhow::Result;

use super::deliver::{deliver, file_output, prepare};
use crate::cli::OutputOptions;
use crate::error::UserError;
use crate::process::{ProcessSet, Profiles};
use crate::recording;
use crate::report::Report;
use crate::run::output;

/// What a recording holds, analysed as a live run would have been.
pub struct Replayed {
    pub profiles: Profiles,
    /// False when the file ends mid-stream (the run crashed or was killed): the profile covers
    /// what was written up to then.
    pub complete: bool,
    /// How it ends early, when it does: "its gzip stream stops early".
    pub cut_short: Option<String>,
    /// What the replay cut or dropped to stay within its bounds, a clause each.
    pub warnings: Vec<String>,
}

/// Reads the recording at `path` and analyses every process in it.
pub fn replay(path: &Path) -> Result<Replayed> {
    let mut reader = recording::open(path)?;
    let set = ProcessSet::replay(&mut reader)?;
    let (profiles, _) = set.finish();
    Ok(Replayed {
        profiles,
        complete: reader.cut_short().is_none(),
        cut_short: reader.cut_short().map(str::to_string),
        warnings: reader.warnings(),
    })
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
    let replayed = replay(file).map_err(|e| UserError::BadRecording {
        path: file.to_path_buf(),
        reason: format!("{e:#}"),
    })?;
    if out.output.is_none() {
        for &format in &out.formats {
            same_as_recording(&output::default_path(replayed.profiles.target.pid, format))?;
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
        target: &replayed.profiles.target,
        profile: &replayed.profiles.profile,
        subprocesses: &replayed.profiles.subprocesses,
    };
    let crossed = deliver(&report, outputs, out)?;
    Ok(if crossed { 1 } else { 0 })
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
