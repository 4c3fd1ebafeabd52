//! gilscope: is the GIL your bottleneck, and which code holds it while other threads wait?
//!
//! The pipeline, one module per stage: [`cpython`] knows where things live in a CPython
//! process, [`gil`] tells a thread's state, [`sampler`] reads a live process into [`model`]
//! samples; [`process`] gets hold of the run's processes (launched, attached, followed through
//! execs and into subprocesses) and holds them in one set with their accumulators;
//! [`analysis`] turns samples into metrics, a verdict and folded stacks; [`report`] renders
//! those. [`recording`] keeps the samples in a file; [`command`] runs each command of the CLI
//! ([`cli`]) with what a run needs around it ([`run`]).

pub mod analysis;
pub mod cli;
pub mod command;
pub mod console;
pub mod cpython;
pub mod error;
pub mod gil;
pub mod model;
pub mod process;
pub mod recording;
pub mod report;
pub mod run;
pub mod sampler;
