//! How the launched program ended, and the `program-failed` verdict: a program that failed
//! before any thread ran its own code (docs/DESIGN.md, "Verdicts").

use super::super::{code, Profile};
use super::{Verdict, VerdictKind};
use crate::model::ProgramExit;

/// `python3 exited with status 2 after 0.3 s`: how the launched program ended, named by its
/// executable (`command[0]`'s last component).
pub fn exit_sentence(command: &[String], exit: &ProgramExit) -> String {
    let program = command
        .first()
        .map_or("the program", |c| c.rsplit('/').next().unwrap_or(c));
    format!(
        "{program} {} after {:.1} s",
        exit.status_text(),
        exit.after_s
    )
}

/// Whether any stack sample ran the program's own code: a frame of the user's files (not
/// the standard library's, a package's or a frozen module's), the module of `python -m`
/// (whatever runpy's `_run_code` calls), or, when the command gives its code inline (`-c`,
/// or a script on standard input), that code: the outermost frame, in `<string>` or
/// `<stdin>`. Only then, since site's `.pth` lines run as `<string>` too, and a stack read
/// in a hurry can lose its outer frames.
fn ran_program_code(p: &Profile, command: &[String]) -> bool {
    let inline = command.len() == 1 || command.iter().any(|w| w == "-c" || w == "-");
    p.stack_counts.iter().any(|((_, _, stack), _)| {
        let frames = p.stacks.get(*stack);
        let inline = inline
            && frames
                .first()
                .is_some_and(|f| &*f.file == "<string>" || &*f.file == "<stdin>");
        let run_module = frames
            .iter()
            .rev()
            .skip(1)
            .any(|f| &*f.function == "_run_code" && f.file.ends_with("runpy.py"));
        inline || run_module || frames.iter().any(|f| code::origin(&f.file).is_user())
    })
}

/// Tells `p` how its program ended. A program that failed on its own before any thread ran
/// its code (no stack sample had a frame of it: it died in start-up or imports) gets that as
/// its verdict, with no advice: the GIL has nothing to do with it. Otherwise the verdict
/// stands and the reports say the status beside it.
pub fn program_ended(p: &mut Profile, command: &[String], exit: ProgramExit) {
    p.exit = Some(exit);
    if !exit.failed() || ran_program_code(p, command) {
        return;
    }
    p.verdict = Verdict {
        kind: VerdictKind::ProgramFailed,
        then: None,
        summary: format!(
            "{} (before any thread ran your code).",
            exit_sentence(command, &exit)
        ),
        rule: match (p.run.state_samples, p.run.stack_samples) {
            (0, 0) => "it failed on its own before gilscope could read its interpreter".into(),
            (_, 0) => "it failed on its own before gilscope took a stack sample".into(),
            (_, 1) => "it failed on its own and its one stack sample has no frame of its own \
                       code (only the standard library's, packages' and start-up's)"
                .into(),
            (_, n) => format!(
                "it failed on its own and none of its {n} stack samples has a frame of its own \
                 code (only the standard library's, packages' and start-up's)"
            ),
        },
        advice: Vec::new(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ThreadState;

    fn profile_with(stacks: &[&[(&str, &str)]]) -> Profile {
        use crate::model::{Frame, Sample, StackTick, ThreadStack};
        let mut acc = crate::analysis::Accumulator::default();
        for (i, frames) in stacks.iter().enumerate() {
            acc.push(Sample::Stacks(StackTick {
                at: std::time::Duration::from_millis(i as u64),
                waiters: 0,
                stacks: vec![ThreadStack {
                    tid: 1,
                    state: ThreadState::Holding,
                    on_cpu: true,
                    frames: frames
                        .iter()
                        .map(|&(function, file)| Frame {
                            function: function.into(),
                            file: file.into(),
                            line: 1,
                        })
                        .collect(),
                    ..Default::default()
                }],
            }));
        }
        acc.finish(0, 2)
    }

    #[test]
    fn a_program_that_failed_before_its_code_ran_is_said_to_have_failed() {
        let command = ["/usr/bin/python3".to_string(), "nosuchfile.py".to_string()];
        let exit = |code, signal| ProgramExit {
            code,
            signal,
            after_s: 0.31,
            stopped: false,
        };
        let start_up: &[(&str, &str)] = &[
            ("<module>", "<frozen site>"),
            ("_find_spec", "<frozen importlib._bootstrap>"),
            ("<module>", "/usr/lib/python3.12/zipfile/__init__.py"),
        ];
        let mut p = profile_with(&[start_up]);
        program_ended(&mut p, &command, exit(Some(2), None));
        assert_eq!(p.verdict.kind, VerdictKind::ProgramFailed);
        assert_eq!(
            p.verdict.summary,
            "python3 exited with status 2 after 0.3 s (before any thread ran your code)."
        );
        assert!(p.verdict.advice.is_empty(), "{:?}", p.verdict.advice);
        assert!(p.verdict.rule.contains("its one stack sample has no frame"));
        let mut p = profile_with(&[start_up]);
        program_ended(&mut p, &command, exit(None, Some(9)));
        assert!(p
            .verdict
            .summary
            .starts_with("python3 was killed by SIGKILL after 0.3 s"));

        // Code of the program's own: a file of the user's, `-c`, `-m`.
        let inline = [
            "python3".to_string(),
            "-c".to_string(),
            "work()".to_string(),
        ];
        let pth_line: &[(&str, &str)] = &[
            ("<module>", "<string>"),
            ("_find_and_load", "<frozen importlib._bootstrap>"),
        ];
        for (command, ran) in [
            (
                &command[..],
                &[("<module>", "/srv/app/app.py"), ("work", "/srv/app/app.py")][..],
            ),
            (&inline[..], pth_line),
            (
                &command[..],
                &[
                    ("_run_module_as_main", "/usr/lib/python3.12/runpy.py"),
                    ("_run_code", "/usr/lib/python3.12/runpy.py"),
                    ("<module>", "/usr/lib/python3.12/http/server.py"),
                ][..],
            ),
        ] {
            let mut p = profile_with(&[start_up, ran]);
            let before = p.verdict.clone();
            program_ended(&mut p, command, exit(Some(1), None));
            assert_eq!(p.verdict, before, "{ran:?}");
            assert_eq!(p.exit.unwrap().code, Some(1));
        }
        // Without -c, `<string>` is a `.pth` line of site's start-up, not the program.
        let mut p = profile_with(&[start_up, pth_line]);
        program_ended(&mut p, &command, exit(Some(1), None));
        assert_eq!(p.verdict.kind, VerdictKind::ProgramFailed);
        // A success, or a program gilscope stopped, keeps its verdict too.
        for (code, signal, stopped) in [(Some(0), None, false), (None, Some(15), true)] {
            let mut p = profile_with(&[start_up]);
            let e = ProgramExit {
                stopped,
                ..exit(code, signal)
            };
            program_ended(&mut p, &command, e);
            assert_ne!(p.verdict.kind, VerdictKind::ProgramFailed);
        }
    }
}
