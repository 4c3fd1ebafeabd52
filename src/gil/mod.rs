//! How a thread's GIL state is told from what the sampler read: one pure classifier
//! ([`classify`]) and the system calls it knows ([`syscall`]).
//!
//! Reads nothing itself: the sampler hands it every reading.

pub mod classify;
pub mod syscall;

pub use classify::{
    classify, classify_requesting, settle, still_waiting, wants_sched, Classified, GilAddresses,
    GilView, Reading, Requesting, SchedStat,
};
pub use syscall::Syscall;
