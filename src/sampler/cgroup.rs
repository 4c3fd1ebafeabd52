//! The CPU quota of the target's cgroup (a container's CPU limit) and how often it throttled:
//! cgroup v2 `cpu.max` and `cpu.stat` (`nr_throttled`, `throttled_usec`), or v1
//! `cpu.cfs_quota_us`, `cpu.cfs_period_us` and `cpu.stat` (`nr_throttled`, `throttled_time`).
//! The tightest quota on the way from the target's cgroup up to the root is the one that
//! limits it. Read a few times a second, never per tick.

use std::path::{Path, PathBuf};

use crate::model::CpuQuota;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// The cgroup directory whose quota limits the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaSource {
    dir: PathBuf,
    version: Version,
}

impl QuotaSource {
    /// The cgroup with the tightest CPU quota among the target's cgroup and its ancestors;
    /// `None` when none has a quota or the files cannot be read.
    pub fn find(pid: i32) -> Option<QuotaSource> {
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let (version, mount, path) = cpu_cgroup(&cgroups, &mounts)?;
        let mut best: Option<(f64, PathBuf)> = None;
        let mut dir = mount.join(path.trim_start_matches('/'));
        loop {
            if let Some(cores) = quota_cores(&dir, version) {
                if best.as_ref().is_none_or(|(b, _)| cores < *b) {
                    best = Some((cores, dir.clone()));
                }
            }
            if dir == mount || !dir.pop() || !dir.starts_with(&mount) {
                break;
            }
        }
        best.map(|(_, dir)| QuotaSource { dir, version })
    }

    pub fn read(&self) -> Option<CpuQuota> {
        let cores = quota_cores(&self.dir, self.version)?;
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
        let field = |name: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        };
        let nr_throttled: u64 = field("nr_throttled").unwrap_or(0);
        let throttled_s = match self.version {
            Version::V2 => field("throttled_usec").unwrap_or(0) as f64 / 1e6,
            Version::V1 => field("throttled_time").unwrap_or(0) as f64 / 1e9,
        };
        Some(CpuQuota {
            cores,
            nr_throttled,
            throttled_s,
        })
    }
}

/// The CPUs' worth of time a cgroup directory may use per second, if it has a quota.
fn quota_cores(dir: &Path, version: Version) -> Option<f64> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let (quota, period) = match version {
        Version::V2 => {
            let max = read("cpu.max")?;
            let mut f = max.split_ascii_whitespace();
            (
                f.next()?.parse::<f64>().ok()?,
                f.next()?.parse::<f64>().ok()?,
            )
        }
        Version::V1 => (
            read("cpu.cfs_quota_us")?.trim().parse::<f64>().ok()?,
            read("cpu.cfs_period_us")?.trim().parse::<f64>().ok()?,
        ),
    };
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// Where the target's cgroup with the cpu controller is: its version, the hierarchy's mount
/// point, and its path inside that hierarchy. v1 wins where both have the controller (a
/// hybrid host mounts v2 without it).
fn cpu_cgroup(cgroups: &str, mountinfo: &str) -> Option<(Version, PathBuf, String)> {
    let mut v2 = None;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "cpu") {
            let mount = mount_point(mountinfo, Some("cpu"))?;
            return Some((Version::V1, mount, path.to_string()));
        }
        if controllers.is_empty() {
            v2 = Some(path.to_string());
        }
    }
    let path = v2?;
    Some((Version::V2, mount_point(mountinfo, None)?, path))
}

/// The mount point of the cgroup v1 hierarchy with `controller`, or of cgroup v2 (`None`),
/// from `/proc/self/mountinfo` (`id parent dev root mountpoint opts … - fstype src superopts`).
fn mount_point(mountinfo: &str, controller: Option<&str>) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mount = left.split_ascii_whitespace().nth(4)?;
        let mut right = right.split_ascii_whitespace();
        let fstype = right.next()?;
        let superopts = right.nth(1).unwrap_or("");
        let wanted = match controller {
            Some(c) => fstype == "cgroup" && superopts.split(',').any(|o| o == c),
            None => fstype == "cgroup2",
        };
        wanted.then(|| PathBuf::from(mount))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
31 25 0:27 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu
32 25 0:28 / /sys/fs/cgroup/cpuacct rw,nosuid - cgroup cgroup rw,cpuacct
";

    #[test]
    fn finds_the_cpu_hierarchy_in_v1_and_v2() {
        let v1 = "2:cpuacct:/\n1:cpu:/ci/job\n0::/\n";
        assert_eq!(
            cpu_cgroup(v1, MOUNTS),
            Some((
                Version::V1,
                PathBuf::from("/sys/fs/cgroup/cpu"),
                "/ci/job".into()
            ))
        );
        let v2_mounts = "25 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cpu_cgroup("0::/system.slice/app.service\n", v2_mounts),
            Some((
                Version::V2,
                PathBuf::from("/sys/fs/cgroup"),
                "/system.slice/app.service".into()
            ))
        );
        assert_eq!(cpu_cgroup("garbage", MOUNTS), None);
    }

    #[test]
    fn reads_quota_and_throttling_of_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = dir.path().join("v2");
        std::fs::create_dir(&v2).unwrap();
        std::fs::write(v2.join("cpu.max"), "50000 100000\n").unwrap();
        std::fs::write(
            v2.join("cpu.stat"),
            "usage_usec 10\nnr_periods 20\nnr_throttled 7\nthrottled_usec 1500000\n",
        )
        .unwrap();
        let q = QuotaSource {
            dir: v2.clone(),
            version: Version::V2,
        }
        .read()
        .unwrap();
        assert_eq!((q.cores, q.nr_throttled, q.throttled_s), (0.5, 7, 1.5));
        std::fs::write(v2.join("cpu.max"), "max 100000\n").unwrap();
        assert_eq!(quota_cores(&v2, Version::V2), None);

        let v1 = dir.path().join("v1");
        std::fs::create_dir(&v1).unwrap();
        std::fs::write(v1.join("cpu.cfs_quota_us"), "150000\n").unwrap();
        std::fs::write(v1.join("cpu.cfs_period_us"), "100000\n").unwrap();
        std::fs::write(
            v1.join("cpu.stat"),
            "nr_periods 9\nnr_throttled 3\nthrottled_time 250000000\n",
        )
        .unwrap();
        let q = QuotaSource {
            dir: v1.clone(),
            version: Version::V1,
        }
        .read()
        .unwrap();
        assert_eq!((q.cores, q.nr_throttled, q.throttled_s), (1.5, 3, 0.25));
        std::fs::write(v1.join("cpu.cfs_quota_us"), "-1\n").unwrap();
        assert_eq!(quota_cores(&v1, Version::V1), None);
    }
}
