use super::*;
use crate::analysis::{Blamed, Site};
use crate::model::IoKind;

fn gil(held: f64, waiters: f64, contended: f64) -> GilMetrics {
    GilMetrics {
        interpreter: 0,
        interpreters: vec![0],
        enabled: true,
        free_threaded: false,
        enabled_share: 1.0,
        enabled_at_s: None,
        held,
        avg_waiters: waiters,
        contended,
        demand: held + waiters,
        speedup_ceiling: (held + waiters) / held.max(1e-9),
        switches_per_s: 200.0,
        switches: 2000,
        switch_interval_ms: 5.0,
        ticks: 1000,
    }
}

fn site(function: &str) -> Site {
    Site::example(function, "app.py", 12, 0.9)
}

fn blamed(function: &str) -> Blamed {
    Blamed {
        site: site(function),
        list: "blame",
        via: None,
    }
}

/// A 2-CPU run of 1000 samples judged on `g`, its top holder `site`; the rest quiet.
fn evidence<'a>(g: Option<&'a GilMetrics>, site: Option<&'a Blamed>) -> Evidence<'a> {
    Evidence {
        gil: g,
        busy_gils: 1,
        native_threads: 0.0,
        cpu_count: 2,
        top_holder: site,
        state_samples: 1000,
        stack_samples: 200,
        held_off_cpu: false,
        running_threads: 0.0,
        cores_used: None,
        event_loop: None,
        threads_in: [0.0; ThreadState::COUNT],
        contended_lock_threads: 0.0,
        lock_gil_threads: 0.0,
        queued_threads: 0.0,
        io_threads: [0.0; IoKind::ALL.len()],
        supply: None,
        top_lock_wait: None,
        top_lock_holder: None,
        duration_s: 10.0,
        native_module: None,
        native_caller: None,
    }
}

fn judge_with(g: &GilMetrics, native_threads: f64) -> Verdict {
    let site = blamed("compute");
    judge(&Evidence {
        native_threads,
        ..evidence(Some(g), Some(&site))
    })
}

#[test]
fn four_busy_threads_are_gil_bound_and_name_the_holder() {
    let v = judge_with(&gil(0.99, 2.9, 0.97), 0.0);
    assert_eq!(v.kind, VerdictKind::GilBound);
    assert!(
        v.summary.contains("compute() at app.py:12"),
        "{}",
        v.summary
    );
    assert!(v.summary.contains("3.9×"), "{}", v.summary);
    assert!(
        v.summary.contains("2.0× on this machine's 2 CPUs"),
        "{}",
        v.summary
    );
    assert!(v.rule.contains("contended ≥ 50%"));
}

#[test]
fn each_rule_in_turn() {
    assert_eq!(
        judge_with(&gil(0.95, 0.3, 0.25), 0.0).kind,
        VerdictKind::PartlyGilContended
    );
    assert_eq!(
        judge_with(&gil(0.2, 0.0, 0.0), 3.5).kind,
        VerdictKind::NativeParallel
    );
    assert_eq!(
        judge_with(&gil(0.98, 0.01, 0.01), 0.0).kind,
        VerdictKind::SingleThreadCpu
    );
    assert_eq!(
        judge_with(&gil(0.03, 0.0, 0.0), 0.0).kind,
        VerdictKind::MostlyIdle
    );
    // Contended but with nothing to gain is not GIL-bound.
    assert_ne!(
        judge_with(&gil(1.0, 0.2, 0.6), 0.0).kind,
        VerdictKind::GilBound
    );
}

#[test]
fn a_gil_held_off_cpu_comes_first_in_the_advice() {
    let g = gil(0.99, 2.9, 0.97);
    let site = blamed("compute");
    let v = judge(&Evidence {
        held_off_cpu: true,
        ..evidence(Some(&g), Some(&site))
    });
    assert!(v.advice[0].contains("held while blocked"), "{:?}", v.advice);
    assert_eq!(judge_with(&g, 0.0).advice.len() + 1, v.advice.len());
}

#[test]
fn the_named_code_says_its_path_and_a_handful_of_stacks_names_none() {
    let g = gil(0.99, 2.9, 0.97);
    let mut b = blamed("report");
    b.site.path_shown = "web/app.py".into();
    b.via = Some(super::super::Via {
        function: "render".into(),
        package: "jinja2".into(),
        file: "/venv/lib/python3.12/site-packages/jinja2/environment.py".into(),
    });
    let v = judge(&evidence(Some(&g), Some(&b)));
    assert!(
        v.summary.contains(
            "report() at web/app.py:12, via jinja2's render(), holds it 90% of the time \
             others wait for it;"
        ),
        "{}",
        v.summary
    );
    let v = judge(&Evidence {
        stack_samples: 3,
        ..evidence(Some(&g), None)
    });
    assert!(
        v.summary
            .contains("3 stack samples: too few to name the code"),
        "{}",
        v.summary
    );
    assert!(v.advice[1].contains("Move the hot loop"), "{:?}", v.advice);
}

#[test]
fn no_samples_says_so() {
    let v = judge(&Evidence {
        busy_gils: 0,
        state_samples: 0,
        ..evidence(None, None)
    });
    assert!(v.summary.contains("No GIL samples"));
}

#[test]
fn a_busy_event_loop_gets_event_loop_advice_not_gil_advice() {
    let g = gil(0.98, 0.01, 0.01);
    let site = blamed("handle");
    let v = judge(&Evidence {
        cores_used: Some(1.0),
        event_loop: Some("event-loop".into()),
        ..evidence(Some(&g), Some(&site))
    });
    assert_eq!(v.kind, VerdictKind::SingleThreadCpu);
    assert!(
        v.advice[0].contains("event-loop runs an asyncio event loop"),
        "{:?}",
        v.advice
    );
    assert!(v.advice[1].contains("run_in_executor"), "{:?}", v.advice);
}

#[test]
fn a_free_threaded_run_without_its_gil_is_gil_disabled() {
    let mut g = gil(0.0, 0.0, 0.0);
    g.free_threaded = true;
    g.enabled_share = 0.0;
    g.enabled = false;
    let site = Blamed {
        site: Site::example("compute", "app.py", 12, 0.8),
        list: "running",
        via: None,
    };
    let evidence = Evidence {
        running_threads: 1.9,
        cores_used: Some(1.95),
        ..evidence(Some(&g), Some(&site))
    };
    let v = judge(&evidence);
    assert_eq!(v.kind, VerdictKind::GilDisabled);
    assert!(v.summary.contains("1.9 threads"), "{}", v.summary);
    assert!(
        v.summary.contains("compute() at app.py:12"),
        "{}",
        v.summary
    );
    // Enabled for most of the run, the GIL is judged as in any build with one.
    let mut enabled = gil(0.99, 2.9, 0.97);
    enabled.free_threaded = true;
    enabled.enabled_share = 0.6;
    let v = judge(&Evidence {
        gil: Some(&enabled),
        ..evidence
    });
    assert_eq!(v.kind, VerdictKind::GilBound);
}

/// Evidence with `threads` mean threads in each (state, count) pair.
fn with_threads<'a>(
    g: &'a GilMetrics,
    site: Option<&'a Blamed>,
    threads: &[(ThreadState, f64)],
) -> Evidence<'a> {
    let mut e = evidence(Some(g), site);
    for &(state, n) in threads {
        e.threads_in[state.index()] = n;
    }
    e
}

#[test]
fn a_lock_convoy_is_lock_bound_not_gil_bound_and_names_where_threads_wait() {
    use ThreadState::*;
    // Seven threads wait for the lock, the holder holds the GIL, a little GIL waiting.
    let g = gil(0.9, 0.4, 0.35);
    let wait = site("worker");
    let e = Evidence {
        contended_lock_threads: 6.0,
        top_lock_wait: Some(&wait),
        ..with_threads(&g, None, &[(Holding, 0.9), (Waiting, 0.4), (Lock, 6.2)])
    };
    let v = judge(&e);
    assert_eq!(v.kind, VerdictKind::LockBound, "{}", v.summary);
    assert!(v.summary.contains("worker() in app.py:12"), "{}", v.summary);
    assert!(v.advice[0].contains("critical section"), "{:?}", v.advice);
    // 3.13+: the convoy's threads wait for the GIL inside the lock's acquire.
    let g = gil(0.9, 6.5, 0.9);
    let e = Evidence {
        contended_lock_threads: 0.2,
        lock_gil_threads: 6.0,
        top_lock_wait: Some(&wait),
        ..with_threads(&g, None, &[(Holding, 0.9), (Waiting, 6.5), (Lock, 0.2)])
    };
    let v = judge(&e);
    assert_eq!(v.kind, VerdictKind::LockBound, "{}", v.summary);
    assert!(
        v.summary.contains("inside the lock's acquire"),
        "{}",
        v.summary
    );
    // The same GIL waiting anywhere else is GIL-bound.
    let e = Evidence {
        lock_gil_threads: 0.0,
        ..e
    };
    assert_eq!(judge(&e).kind, VerdictKind::GilBound);
    let g = gil(0.9, 0.4, 0.35);
    // Threads that wait for a signal (join, Event, queue.get) are no convoy.
    let e = Evidence {
        contended_lock_threads: 0.0,
        ..with_threads(&g, None, &[(Holding, 0.9), (Waiting, 0.4), (Lock, 6.2)])
    };
    assert_ne!(judge(&e).kind, VerdictKind::LockBound);
}

#[test]
fn threads_waiting_on_sockets_are_io_bound_and_never_native_parallel() {
    use ThreadState::*;
    let g = gil(0.05, 0.0, 0.0);
    let mut e = with_threads(&g, None, &[(Io, 14.0), (Native, 0.6), (Sleep, 1.0)]);
    e.io_threads[crate::model::IoKind::Socket.index()] = 14.0;
    e.native_threads = 0.6;
    let v = judge(&e);
    assert_eq!(v.kind, VerdictKind::IoBound, "{}", v.summary);
    assert!(v.summary.contains("sockets"), "{}", v.summary);
    // Sleepers are mostly idle.
    let e = with_threads(&g, None, &[(Sleep, 4.0), (Io, 0.5)]);
    assert_eq!(judge(&e).kind, VerdictKind::MostlyIdle);
    // A kind with almost no share is left out rather than printed as 0%.
    let mut e = with_threads(&g, None, &[(Io, 14.0)]);
    e.io_threads[crate::model::IoKind::Socket.index()] = 14.0;
    e.io_threads[crate::model::IoKind::Pipe.index()] = 0.01;
    let v = judge(&e);
    assert!(!v.summary.contains("pipe"), "{}", v.summary);
}

#[test]
fn without_a_gil_threads_on_the_network_are_io_bound_not_parallel() {
    use ThreadState::*;
    let mut g = gil(0.0, 0.0, 0.0);
    g.free_threaded = true;
    g.enabled_share = 0.0;
    g.enabled = false;
    let mut e = with_threads(&g, None, &[(Io, 14.0), (Running, 0.3)]);
    e.io_threads[crate::model::IoKind::Socket.index()] = 14.0;
    e.running_threads = 0.3;
    let v = judge(&e);
    assert_eq!(v.kind, VerdictKind::IoBound, "{}", v.summary);
    assert!(v.summary.contains("no GIL"), "{}", v.summary);
    // Threads that run Python in parallel beside a few on I/O: GIL disabled.
    let mut e = with_threads(&g, None, &[(Io, 1.0), (Running, 1.8)]);
    e.io_threads[crate::model::IoKind::Socket.index()] = 1.0;
    e.running_threads = 1.8;
    assert_eq!(judge(&e).kind, VerdictKind::GilDisabled);
}

#[test]
fn starvation_names_the_quota_or_the_other_processes_and_judges_the_rest() {
    use ThreadState::*;
    let g = gil(0.3, 0.0, 0.0);
    let quota = CpuSupply {
        machine_busy_cores: Some(0.6),
        others_cores: Some(0.1),
        quota_cores: Some(0.5),
        throttled_periods: 80,
        throttled_s: 4.0,
    };
    let busy = CpuSupply {
        machine_busy_cores: Some(2.0),
        others_cores: Some(1.4),
        quota_cores: None,
        throttled_periods: 0,
        throttled_s: 0.0,
    };
    let threads = [(Native, 0.6), (Ready, 1.4), (Holding, 0.3)];
    let e = Evidence {
        supply: Some(&quota),
        queued_threads: 1.4,
        native_threads: 0.6,
        cores_used: Some(0.9),
        ..with_threads(&g, None, &threads)
    };
    let v = judge(&e);
    assert_eq!(v.kind, VerdictKind::CpuStarved, "{}", v.summary);
    assert!(
        v.summary.contains("quota") && v.summary.contains("0.50 CPUs"),
        "{}",
        v.summary
    );
    assert!(
        v.summary.contains("Native-parallel"),
        "the rest is judged: {}",
        v.summary
    );
    let e = Evidence {
        supply: Some(&busy),
        ..e
    };
    let v = judge(&e);
    assert!(
        v.summary.contains("other processes kept 1.4"),
        "{}",
        v.summary
    );
    // Busy neighbours, but the process got the CPUs it wanted: no starvation.
    let e2 = Evidence {
        cores_used: Some(1.95),
        event_loop: None,
        ..e
    };
    assert_ne!(judge(&e2).kind, VerdictKind::CpuStarved);
    let e = Evidence {
        cores_used: Some(0.9),
        ..e2
    };
    // The process itself filling the CPUs is no starvation: native-parallel.
    let own = CpuSupply {
        others_cores: Some(0.1),
        ..busy
    };
    let e = Evidence {
        supply: Some(&own),
        ..e
    };
    assert_eq!(judge(&e).kind, VerdictKind::NativeParallel);
    // A lock convoy on a busy machine is still about the lock.
    let e = Evidence {
        supply: Some(&busy),
        contended_lock_threads: 5.0,
        ..with_threads(&g, None, &[(Lock, 5.0), (Ready, 1.5), (Holding, 0.3)])
    };
    assert_eq!(judge(&e).kind, VerdictKind::LockBound);
    // Starved above all (more wait for a CPU than for the lock), it is lock-bound on the
    // time the threads ran: those that only waited for a CPU do not dilute the lock.
    let e = Evidence {
        supply: Some(&busy),
        contended_lock_threads: 3.0,
        queued_threads: 3.6,
        cores_used: Some(0.4),
        ..with_threads(&g, None, &[(Lock, 3.0), (Ready, 3.6), (Holding, 0.9)])
    };
    let v = judge(&e);
    assert_eq!(v.kind, VerdictKind::CpuStarved, "{}", v.summary);
    assert_eq!(v.then, Some(VerdictKind::LockBound), "{}", v.summary);
}

#[test]
fn a_gil_held_in_an_extension_names_it_and_never_says_move_it_into_c() {
    let g = gil(0.99, 2.9, 0.97);
    let caller = site("validate");
    let holder = blamed("validate");
    let e = Evidence {
        native_module: Some(("pydantic_core._pydantic_core", 0.85)),
        native_caller: Some(&caller),
        ..evidence(Some(&g), Some(&holder))
    };
    let v = judge(&e);
    assert_eq!(v.kind, VerdictKind::GilBound);
    assert!(v.summary.contains("held in native code"), "{}", v.summary);
    assert!(
        v.summary
            .contains("pydantic_core._pydantic_core's native code 85%"),
        "{}",
        v.summary
    );
    assert!(
        v.summary.contains("validate() at app.py:12"),
        "{}",
        v.summary
    );
    assert!(
        v.advice.iter().all(|a| !a.contains("C or Rust extension")),
        "{:?}",
        v.advice
    );
    // A little time in a module is not the story.
    let e = Evidence {
        native_module: Some(("_json", 0.2)),
        ..e
    };
    assert!(judge(&e).advice[1].contains("C or Rust extension"));
}
