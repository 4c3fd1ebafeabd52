//! A cgroup with a CPU quota, for the test of threads starved by one.

use std::path::{Path, PathBuf};

/// A cgroup with a CPU quota of half a CPU, removed on drop.
pub struct QuotaCgroup {
    dir: PathBuf,
    /// Where its processes go back to before it is removed.
    parent: PathBuf,
}

impl QuotaCgroup {
    /// Under the cgroup v1 `cpu` controller, else cgroup v2 with `cpu.max`; `Err` says why
    /// neither is there to write.
    pub fn create() -> Result<QuotaCgroup, String> {
        let name = format!("gilscope-test-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        if v1.join("cpu.cfs_quota_us").exists() {
            let dir = v1.join(&name);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let cg = QuotaCgroup {
                dir: dir.clone(),
                parent: v1.into(),
            };
            for (file, value) in [
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "50000"),
            ] {
                std::fs::write(dir.join(file), value)
                    .map_err(|e| format!("cannot write {}/{file}: {e}", dir.display()))?;
            }
            return Ok(cg);
        }
        let v2 = Path::new("/sys/fs/cgroup");
        let controllers = std::fs::read_to_string(v2.join("cgroup.controllers"))
            .map_err(|_| "no cgroup v1 cpu controller and no cgroup v2 at /sys/fs/cgroup")?;
        if !controllers.split_whitespace().any(|c| c == "cpu") {
            return Err("cgroup v2 at /sys/fs/cgroup has no cpu controller".into());
        }
        let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+cpu");
        let dir = v2.join(&name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let cg = QuotaCgroup {
            dir: dir.clone(),
            parent: v2.into(),
        };
        std::fs::write(dir.join("cpu.max"), "50000 100000")
            .map_err(|e| format!("cannot write {}/cpu.max: {e}", dir.display()))?;
        Ok(cg)
    }

    /// `argv` run inside this cgroup: a shell moves itself in, then execs it.
    pub fn wrap(&self, argv: Vec<String>) -> Vec<String> {
        let procs = self.dir.join("cgroup.procs");
        let mut wrapped = vec![
            "sh".to_string(),
            "-c".to_string(),
            format!("echo $$ > {} && exec \"$@\"", procs.display()),
            "sh".to_string(),
        ];
        wrapped.extend(argv);
        wrapped
    }
}

impl Drop for QuotaCgroup {
    fn drop(&mut self) {
        // Anything left inside goes back to the parent; a cgroup whose last task has just
        // exited may be busy for a moment.
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in procs.lines() {
                let _ = std::fs::write(self.parent.join("cgroup.procs"), pid);
            }
        }
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        eprintln!("could not remove {}", self.dir.display());
    }
}
