//! What a run needs around the sampling: where its reports go ([`output`]), the progress
//! line ([`progress`]), `--fail-if` thresholds ([`threshold`]), and the signals that end it
//! ([`signals`]).

pub mod output;
pub mod progress;
pub mod signals;
pub mod threshold;
