//! One thread's stack as a reader gives it, before it is matched to the thread table: what
//! both stack readers ([`super::stacks`], through py-spy in [`super::python`]) produce.

use crate::model::Stack;

/// One thread's stack as read.
#[derive(Clone, Debug)]
pub struct RawStack {
    /// `PyThreadState.thread_id` (the `pthread_t`).
    pub pthread: u64,
    /// The OS thread id, when the reader knows it.
    pub tid: Option<i32>,
    pub name: Option<String>,
    /// Outermost frame first.
    pub frames: Stack,
}
