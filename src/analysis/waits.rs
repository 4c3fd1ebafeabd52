//! Which lock waits are contention: a thread blocked in `futex()` on something that is not a
//! GIL may wait for a lock another thread holds (`with lock:`), or for a signal: a
//! `Condition`/`Event`, a queue's next item, a thread to finish. Only the first costs the
//! program parallelism; the second is a thread with nothing to do. The Python stack tells
//! them apart: waits for a signal go through the standard library's waiting functions.

use crate::model::Frame;

/// Whether a stack sampled in the `lock` state waits for a signal rather than for a lock
/// held by another thread: its innermost frame is `threading`'s `Condition.wait` (under
/// `Event.wait`, `Barrier.wait`, `Queue.get`, a future's `result`), `Thread.join`, a queue's
/// `get`, or an idle `concurrent.futures` worker, and not a `Semaphore`'s `acquire` (a
/// semaphore limits concurrency: waiting on it is contention).
pub fn is_signal_wait(stack: &[Frame]) -> bool {
    let Some(leaf) = stack.last() else {
        return false;
    };
    let caller = stack.len().checked_sub(2).map(|i| &stack[i]);
    let in_module =
        |f: &Frame, module: &str| &*f.file == module || f.file.ends_with(&format!("/{module}"));
    // py-spy names methods by their qualified name (`Thread.join`) on 3.11+.
    let name = |f: &Frame| f.function.rsplit('.').next().unwrap_or("").to_string();
    let caller_is_acquire = caller.is_some_and(|c| name(c) == "acquire");
    match name(leaf).as_str() {
        "wait" | "_wait" if in_module(leaf, "threading.py") => {
            !(caller_is_acquire && caller.is_some_and(|c| in_module(c, "threading.py")))
        }
        "join" | "_wait_for_tstate_lock" => in_module(leaf, "threading.py"),
        "get" => in_module(leaf, "queue.py") || in_module(leaf, "queues.py"),
        "_worker" => in_module(leaf, "concurrent/futures/thread.py"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(frames: &[(&str, &str)]) -> Vec<Frame> {
        frames
            .iter()
            .map(|(function, file)| Frame {
                function: (*function).into(),
                file: (*file).into(),
                line: 1,
            })
            .collect()
    }

    #[test]
    fn waits_for_a_signal_are_told_from_lock_contention() {
        let lib = "/usr/lib/python3.12/threading.py";
        let signal = [
            stack(&[("main", "app.py"), ("join", lib)]),
            stack(&[
                ("main", "app.py"),
                ("join", lib),
                ("_wait_for_tstate_lock", lib),
            ]),
            stack(&[
                ("main", "app.py"),
                ("Thread.join", lib),
                ("Thread._wait_for_tstate_lock", lib),
            ]),
            stack(&[
                ("worker", "app.py"),
                ("get", "/usr/lib/python3.12/queue.py"),
                ("wait", lib),
            ]),
            stack(&[("worker", "app.py"), ("wait", lib), ("wait", lib)]),
            stack(&[(
                "_worker",
                "/usr/lib/python3.12/concurrent/futures/thread.py",
            )]),
        ];
        for s in &signal {
            assert!(is_signal_wait(s), "{s:?}");
        }
        let contention = [
            stack(&[("worker", "app.py"), ("critical", "app.py")]),
            stack(&[("worker", "app.py"), ("acquire", lib), ("wait", lib)]),
            stack(&[
                ("worker", "app.py"),
                ("Semaphore.acquire", lib),
                ("Condition.wait", lib),
            ]),
            stack(&[("wait", "app.py")]),
            stack(&[]),
        ];
        for s in &contention {
            assert!(!is_signal_wait(s), "{s:?}");
        }
    }
}
