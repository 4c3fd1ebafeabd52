//! gilscope: is the GIL your bottleneck, and which code holds it while other threads wait?
//!
//! The pipeline, one module per stage: [`sampler`] reads a live CPython process into
//! [`model`] samples; [`analysis`] turns them into metrics, a verdict and folded stacks;
//! [`report`] renders those; [`session`] runs the whole thing for the command line, with
//! [`attach`] and [`record`] getting hold of the target, [`family`] following its child
//! processes, and [`cli`] parsing the arguments.

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
