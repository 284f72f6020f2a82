//! What a container may use, computed from the resources of the executor and its tasks the way
//! Mesos's cgroups isolators do: 1024 cpu shares per cpu, a CFS quota of `cpus` periods when
//! asked, and a hard memory limit of `mem` MiB, each with a floor so that a tiny allocation still
//! leaves a process able to start.

use resources::Resources;

/// CPU shares per whole cpu (the kernel's default weight of one cgroup).
pub const CPU_SHARES_PER_CPU: u64 = 1024;
/// Fewest shares a container gets (the kernel's own minimum).
pub const MIN_CPU_SHARES: u64 = 2;
/// The CFS period the quota is measured against (100 ms, as Mesos).
pub const CFS_PERIOD_US: u64 = 100_000;
/// Smallest CFS quota a container gets (1 ms, the kernel's minimum).
pub const MIN_CFS_QUOTA_US: u64 = 1_000;
/// Smallest memory limit a container gets (Mesos: 32 MiB).
pub const MIN_MEMORY_BYTES: u64 = 32 * 1024 * 1024;

/// The limits one container runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerLimits {
    /// `cpu.shares`.
    pub cpu_shares: u64,
    /// `cpu.cfs_quota_us` against [`CFS_PERIOD_US`]; none: no quota.
    pub cfs_quota_us: Option<u64>,
    /// The memory hard limit; none: the task asked for no memory and gets no limit.
    pub memory_bytes: Option<u64>,
}

impl ContainerLimits {
    /// The limits for `resources`; `cfs` adds a CFS quota (`--cgroups_enable_cfs`).
    pub fn from_resources(resources: &Resources, cfs: bool) -> ContainerLimits {
        let cpus = resources.scalar("cpus").max(0.0);
        let cpu_shares = ((cpus * CPU_SHARES_PER_CPU as f64) as u64).max(MIN_CPU_SHARES);
        let cfs_quota_us = (cfs && cpus > 0.0)
            .then(|| ((cpus * CFS_PERIOD_US as f64) as u64).max(MIN_CFS_QUOTA_US));
        let mem_mib = resources.scalar("mem").max(0.0);
        let memory_bytes =
            (mem_mib > 0.0).then(|| ((mem_mib * 1024.0 * 1024.0) as u64).max(MIN_MEMORY_BYTES));
        ContainerLimits {
            cpu_shares,
            cfs_quota_us,
            memory_bytes,
        }
    }

    /// The cpus these limits grant (shares as cpus).
    pub fn cpus(&self) -> f64 {
        self.cpu_shares as f64 / CPU_SHARES_PER_CPU as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(text: &str, cfs: bool) -> ContainerLimits {
        ContainerLimits::from_resources(&text.parse().unwrap(), cfs)
    }

    #[test]
    fn shares_quota_and_memory_follow_the_resources() {
        let l = limits("cpus:1.5;mem:64", true);
        assert_eq!(l.cpu_shares, 1536);
        assert_eq!(l.cfs_quota_us, Some(150_000));
        assert_eq!(l.memory_bytes, Some(64 * 1024 * 1024));
        assert_eq!(limits("cpus:1.5;mem:64", false).cfs_quota_us, None);
    }

    #[test]
    fn tiny_allocations_get_the_floors() {
        let l = limits("cpus:0.001;mem:1", true);
        assert_eq!(l.cpu_shares, MIN_CPU_SHARES);
        assert_eq!(l.cfs_quota_us, Some(MIN_CFS_QUOTA_US));
        assert_eq!(l.memory_bytes, Some(MIN_MEMORY_BYTES));
        let none = limits("disk:10", true);
        assert_eq!(none.memory_bytes, None);
        assert_eq!(none.cfs_quota_us, None);
    }
}
