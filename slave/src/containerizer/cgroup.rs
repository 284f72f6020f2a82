//! One container's cgroup, across the hierarchies of a [`CgroupLayout`]: created with its
//! limits before the container's process starts, joined by that process before it `exec`s
//! (so that every byte it ever allocates is charged to it), sampled for statistics, and
//! destroyed by killing every process in it until it is empty and removing its directories.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cgroups_rs::cpu::CpuController;
use cgroups_rs::memory::MemController;

use protos::v1::ResourceStatistics;

use super::cgroup_layout::{CgroupLayout, CgroupVersion, Hierarchy};
use super::limits::{ContainerLimits, CFS_PERIOD_US};
use super::ContainerError;

/// Rounds of "kill every pid, check the cgroup is empty" before destroy gives up.
pub const DESTROY_ROUNDS_MAX: u32 = 100;
/// Pause between destroy rounds (the kernel needs a moment to reap what was killed).
pub const DESTROY_ROUND_PAUSE: Duration = Duration::from_millis(5);

/// One container's cgroup directories.
#[derive(Debug, Clone)]
pub struct Cgroup {
    version: CgroupVersion,
    dirs: Vec<(Hierarchy, PathBuf)>,
}

impl Cgroup {
    /// The cgroup `rel` (relative to the agent's own) in `layout`, not created yet.
    pub fn at(layout: &CgroupLayout, rel: &Path) -> Cgroup {
        Cgroup {
            version: layout.version,
            dirs: layout.dirs(rel),
        }
    }

    /// Its directories, one per hierarchy.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|(_, d)| d.as_path())
    }

    fn dir(&self, want: Hierarchy) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(h, _)| *h == want || *h == Hierarchy::Unified)
            .map(|(_, d)| d.as_path())
    }

    fn v2(&self) -> bool {
        self.version == CgroupVersion::V2
    }

    /// Creates the directories (and their parents).
    pub fn create(&self) -> Result<(), ContainerError> {
        for dir in self.dirs() {
            std::fs::create_dir_all(dir).map_err(|e| ContainerError::io("create", dir, e))?;
        }
        Ok(())
    }

    /// On v2, lets this cgroup's children use the cpu and memory controllers.
    pub fn delegate_controllers(&self) -> Result<(), ContainerError> {
        if let (true, Some(dir)) = (self.v2(), self.dir(Hierarchy::Unified)) {
            write_file(&dir.join("cgroup.subtree_control"), "+cpu +memory")?;
        }
        Ok(())
    }

    /// Writes `limits` to the cgroup's files. Lowering a memory limit below what the
    /// container uses fails in the kernel; that is reported, the old limit stays.
    pub fn apply(&self, limits: &ContainerLimits) -> Result<(), ContainerError> {
        let v2 = self.v2();
        if let Some(dir) = self.dir(Hierarchy::Cpu) {
            let cpu = CpuController::new(dir.to_owned(), v2);
            let shares = if v2 {
                shares_to_weight(limits.cpu_shares)
            } else {
                limits.cpu_shares
            };
            cpu.set_shares(shares)
                .map_err(|e| ContainerError::cgroup("set cpu shares", dir, e))?;
            let quota = limits.cfs_quota_us.map_or(-1, |q| q as i64);
            cpu.set_cfs_quota_and_period(Some(quota), Some(CFS_PERIOD_US))
                .map_err(|e| ContainerError::cgroup("set cfs quota", dir, e))?;
        }
        if let Some(dir) = self.dir(Hierarchy::Memory) {
            let memory = MemController::new(dir.to_owned(), v2);
            let limit = limits.memory_bytes.map_or(-1, |b| b as i64);
            memory
                .set_limit(limit)
                .map_err(|e| ContainerError::cgroup("set memory limit", dir, e))?;
        }
        Ok(())
    }

    /// Every hierarchy's `cgroup.procs`, checked writable now so that a launch fails here
    /// with a clear error rather than in the child.
    pub fn procs_files(&self) -> Result<Vec<PathBuf>, ContainerError> {
        self.dirs()
            .map(|dir| {
                let path = dir.join("cgroup.procs");
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map(|_| path.clone())
                    .map_err(|e| ContainerError::io("open", &path, e))
            })
            .collect()
    }

    /// The pids in the cgroup (over every hierarchy, without repeats).
    pub fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .dirs()
            .flat_map(|dir| read_lines(&dir.join("cgroup.procs")))
            .filter_map(|line| line.trim().parse().ok())
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// How many processes the kernel's OOM killer ended in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let Some(dir) = self.dir(Hierarchy::Memory) else {
            return 0;
        };
        let file = if self.v2() {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        keyed_value(&read_string(&dir.join(file)), "oom_kill").unwrap_or(0)
    }

    /// The memory limit in force, in bytes (none: unlimited).
    pub fn memory_limit(&self) -> Option<u64> {
        let dir = self.dir(Hierarchy::Memory)?;
        let file = if self.v2() {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        let limit: u64 = read_string(&dir.join(file)).trim().parse().ok()?;
        // v1 reports "no limit" as a huge page-aligned number.
        (limit < i64::MAX as u64 / 2).then_some(limit)
    }

    /// The most memory the cgroup used, in bytes.
    pub fn memory_max_usage(&self) -> Option<u64> {
        let dir = self.dir(Hierarchy::Memory)?;
        let file = if self.v2() {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        read_string(&dir.join(file)).trim().parse().ok()
    }

    /// What the container used so far.
    pub fn statistics(&self) -> ResourceStatistics {
        let mut s = ResourceStatistics {
            ..Default::default()
        };
        let pids = self.pids();
        s.processes = Some(pids.len() as u32);
        let threads = self
            .dir(Hierarchy::Cpu)
            .map(|d| {
                let file = if self.v2() { "cgroup.threads" } else { "tasks" };
                read_lines(&d.join(file)).len()
            })
            .unwrap_or_default();
        s.threads = Some(threads as u32);
        if let Some(dir) = self.dir(Hierarchy::Cpu) {
            let cpu_stat = read_string(&dir.join("cpu.stat"));
            if self.v2() {
                let weight = read_string(&dir.join("cpu.weight")).trim().parse().ok();
                s.cpus_limit = weight.map(|w| weight_to_shares(w) as f64 / 1024.0);
                s.cpus_user_time_secs =
                    keyed_value(&cpu_stat, "user_usec").map(|us| us as f64 / 1e6);
                s.cpus_system_time_secs =
                    keyed_value(&cpu_stat, "system_usec").map(|us| us as f64 / 1e6);
                s.cpus_throttled_time_secs =
                    keyed_value(&cpu_stat, "throttled_usec").map(|us| us as f64 / 1e6);
                let max = read_string(&dir.join("cpu.max"));
                let mut parts = max.split_whitespace();
                if let (Some(q), Some(p)) = (parts.next(), parts.next()) {
                    if let (Ok(q), Ok(p)) = (q.parse::<f64>(), p.parse::<f64>()) {
                        s.cpus_quota = Some(q / p);
                    }
                }
            } else {
                let shares: Option<f64> = read_string(&dir.join("cpu.shares")).trim().parse().ok();
                s.cpus_limit = shares.map(|v| v / 1024.0);
                let quota: Option<i64> = read_string(&dir.join("cpu.cfs_quota_us"))
                    .trim()
                    .parse()
                    .ok();
                let period: Option<i64> = read_string(&dir.join("cpu.cfs_period_us"))
                    .trim()
                    .parse()
                    .ok();
                if let (Some(q), Some(p)) = (quota, period) {
                    if q > 0 && p > 0 {
                        s.cpus_quota = Some(q as f64 / p as f64);
                    }
                }
                s.cpus_throttled_time_secs =
                    keyed_value(&cpu_stat, "throttled_time").map(|ns| ns as f64 / 1e9);
            }
            s.cpus_nr_periods = keyed_value(&cpu_stat, "nr_periods").map(|v| v as u32);
            s.cpus_nr_throttled = keyed_value(&cpu_stat, "nr_throttled").map(|v| v as u32);
        }
        if !self.v2() {
            if let Some(dir) = self.dir(Hierarchy::CpuAcct) {
                let ns = |file: &str| -> Option<f64> {
                    read_string(&dir.join(file))
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .map(|ns| ns as f64 / 1e9)
                };
                s.cpus_user_time_secs = ns("cpuacct.usage_user");
                s.cpus_system_time_secs = ns("cpuacct.usage_sys");
            }
        }
        if let Some(dir) = self.dir(Hierarchy::Memory) {
            let stat = read_string(&dir.join("memory.stat"));
            let (rss, cache) = if self.v2() {
                (keyed_value(&stat, "anon"), keyed_value(&stat, "file"))
            } else {
                (
                    keyed_value(&stat, "total_rss"),
                    keyed_value(&stat, "total_cache"),
                )
            };
            s.mem_rss_bytes = rss;
            s.mem_cache_bytes = cache;
            s.mem_limit_bytes = self.memory_limit();
            s.mem_max_usage_bytes = self.memory_max_usage();
            s.mem_oom_kills = Some(self.oom_kills());
        }
        s
    }

    /// Kills every process in the cgroup until none is left, then removes its directories.
    /// Blocking: it waits for the kernel between rounds, so callers run it off the actor.
    pub fn destroy(&self) -> Result<(), ContainerError> {
        if self.dirs().all(|d| !d.exists()) {
            return Ok(());
        }
        // v2 kills the whole tree atomically where the kernel has `cgroup.kill` (5.14+).
        if let Some(dir) = self.dir(Hierarchy::Unified) {
            let kill = dir.join("cgroup.kill");
            if kill.exists() {
                let _ = std::fs::write(kill, "1");
            }
        }
        let mut last = Vec::new();
        for _ in 0..DESTROY_ROUNDS_MAX {
            last = self.pids();
            if last.is_empty() {
                break;
            }
            for pid in &last {
                // SAFETY: kill(2) with a pid read from the container's own cgroup.
                unsafe {
                    libc::kill(*pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(DESTROY_ROUND_PAUSE);
        }
        if !self.pids().is_empty() {
            return Err(ContainerError::Remaining {
                path: self.dirs().next().map(Path::to_owned).unwrap_or_default(),
                pids: last,
            });
        }
        for dir in self.dirs() {
            remove_dir(dir)?;
        }
        Ok(())
    }
}

/// Removes an empty cgroup directory; one that is gone already is fine. A just-emptied
/// cgroup can refuse for a moment (EBUSY) while the kernel finishes with its last process.
pub fn remove_dir(dir: &Path) -> Result<(), ContainerError> {
    let mut tries = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if tries < DESTROY_ROUNDS_MAX && e.raw_os_error() == Some(libc::EBUSY) => {
                tries += 1;
                std::thread::sleep(DESTROY_ROUND_PAUSE);
            }
            Err(e) => return Err(ContainerError::io("remove", dir, e)),
        }
    }
}

/// cgroup v1 shares (2..262144) as a v2 weight (1..10000), the conversion runc and systemd use.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// The inverse of [`shares_to_weight`], for reporting.
pub fn weight_to_shares(weight: u64) -> u64 {
    let weight = weight.clamp(1, 10_000);
    2 + ((weight - 1) * 262_142) / 9999
}

fn write_file(path: &Path, value: &str) -> Result<(), ContainerError> {
    std::fs::write(path, value).map_err(|e| ContainerError::io("write", path, e))
}

fn read_string(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

fn read_lines(path: &Path) -> Vec<String> {
    read_string(path)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// The number after `key` in a `key value` per line file (`memory.stat`, `cpu.stat`, …).
pub fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next()? == key).then(|| parts.next()?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_values_are_found_by_their_whole_key() {
        let text = "rss 10\ntotal_rss 4096\noom_kill 2\n";
        assert_eq!(keyed_value(text, "total_rss"), Some(4096));
        assert_eq!(keyed_value(text, "rss"), Some(10));
        assert_eq!(keyed_value(text, "oom_kill"), Some(2));
        assert_eq!(keyed_value(text, "cache"), None);
    }

    #[test]
    fn shares_and_weights_convert_both_ways_at_the_ends() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10_000), 262_144);
    }
}
