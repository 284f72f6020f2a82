//! Where this agent's cgroups live: which hierarchies the kernel mounts (cgroup v1's `cpu`,
//! `cpuacct` and `memory`, or v2's unified tree with the `cpu` and `memory` controllers), and
//! the agent's own cgroup in each.
//!
//! Containers nest under the agent's own cgroup (`{own}/{cgroups_root}/…`) rather than at the
//! hierarchy's root: a limit placed on the agent (by systemd, or by a parent container) then
//! bounds its tasks too, and an agent never creates cgroups outside what it was given.

use std::path::{Path, PathBuf};

use cgroups_rs::hierarchies::{is_cgroup2_unified_mode, UNIFIED_MOUNTPOINT, V1};
use cgroups_rs::Controllers;

use super::ContainerError;

/// Which cgroup interface the kernel offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// One hierarchy per controller (`/sys/fs/cgroup/{cpu,cpuacct,memory}`).
    V1,
    /// The unified hierarchy.
    V2,
}

/// A controller the containerizer uses, or v2's single directory holding them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hierarchy {
    /// v1 `cpu`: shares and CFS quota.
    Cpu,
    /// v1 `cpuacct`: cpu time.
    CpuAcct,
    /// v1 `memory`: limit, usage, OOM.
    Memory,
    /// v2: every controller in one directory.
    Unified,
}

/// The hierarchies the containerizer uses, each with the agent's own cgroup directory.
#[derive(Debug, Clone)]
pub struct CgroupLayout {
    /// v1 or v2.
    pub version: CgroupVersion,
    /// Each hierarchy with the agent's own cgroup directory in it.
    pub bases: Vec<(Hierarchy, PathBuf)>,
}

impl CgroupLayout {
    /// Finds the hierarchies this kernel mounts and the agent's place in each; an error says
    /// why cgroups isolation is not available.
    pub fn detect() -> Result<CgroupLayout, ContainerError> {
        let own = own_cgroups(Path::new("/proc/self/cgroup"))?;
        if is_cgroup2_unified_mode() {
            let rel = own
                .iter()
                .find(|(controllers, _)| controllers.is_empty())
                .map(|(_, path)| path.clone())
                .unwrap_or_default();
            let base = join_relative(Path::new(UNIFIED_MOUNTPOINT), &rel);
            let available = std::fs::read_to_string(base.join("cgroup.controllers"))
                .map_err(|e| ContainerError::io("read", base.join("cgroup.controllers"), e))?;
            for needed in ["cpu", "memory"] {
                if !available.split_whitespace().any(|c| c == needed) {
                    return Err(ContainerError::Unavailable(format!(
                        "the cgroup v2 tree at {} does not delegate the {needed} controller",
                        base.display()
                    )));
                }
            }
            return Ok(CgroupLayout {
                version: CgroupVersion::V2,
                bases: vec![(Hierarchy::Unified, base)],
            });
        }
        let v1 = V1::new();
        let mut bases = Vec::new();
        for (hierarchy, controller, name) in [
            (Hierarchy::Cpu, Controllers::Cpu, "cpu"),
            (Hierarchy::CpuAcct, Controllers::CpuAcct, "cpuacct"),
            (Hierarchy::Memory, Controllers::Mem, "memory"),
        ] {
            let mount = v1.get_mount_point(controller).ok_or_else(|| {
                ContainerError::Unavailable(format!(
                    "no cgroup v1 hierarchy has the {name} controller"
                ))
            })?;
            let rel = own
                .iter()
                .find(|(controllers, _)| controllers.iter().any(|c| c == name))
                .map(|(_, path)| path.clone())
                .unwrap_or_default();
            bases.push((hierarchy, join_relative(&mount, &rel)));
        }
        Ok(CgroupLayout {
            version: CgroupVersion::V1,
            bases,
        })
    }

    /// The directories of the cgroup `rel` (relative to the agent's own) in every hierarchy.
    pub fn dirs(&self, rel: &Path) -> Vec<(Hierarchy, PathBuf)> {
        self.bases
            .iter()
            .map(|(h, base)| (*h, base.join(rel)))
            .collect()
    }
}

/// `/proc/<pid>/cgroup` as (controllers, path) pairs; v2's line has no controllers.
fn own_cgroups(file: &Path) -> Result<Vec<(Vec<String>, String)>, ContainerError> {
    let text = std::fs::read_to_string(file).map_err(|e| ContainerError::io("read", file, e))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let controllers = controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            Some((controllers, path.to_owned()))
        })
        .collect())
}

/// `mount` joined with a cgroup path that starts with `/`.
fn join_relative(mount: &Path, rel: &str) -> PathBuf {
    mount.join(rel.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cgroups_are_read_per_controller() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cgroup");
        std::fs::write(
            &file,
            "4:memory:/outer/inner\n2:cpu,cpuacct:/\n9:name=systemd:/\n0::/unified\n",
        )
        .unwrap();
        let own = own_cgroups(&file).unwrap();
        assert_eq!(
            own[0],
            (vec!["memory".to_owned()], "/outer/inner".to_owned())
        );
        assert_eq!(own[1].0, vec!["cpu".to_owned(), "cpuacct".to_owned()]);
        assert_eq!(own[3], (vec![], "/unified".to_owned()));
        assert_eq!(
            join_relative(Path::new("/sys/fs/cgroup/memory"), "/outer/inner"),
            PathBuf::from("/sys/fs/cgroup/memory/outer/inner")
        );
    }
}
