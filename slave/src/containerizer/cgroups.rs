//! The `cgroups` containerizer: each container gets a cgroup
//! `{agent's own cgroup}/{--cgroups_root}/{agent key}/{container id}` in the cpu, cpuacct and
//! memory hierarchies (cgroup v1) or in the unified tree (v2), with cpu shares, an optional CFS
//! quota and a memory hard limit written before its process starts and joins.

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use protos::v1::task_status::Reason;
use protos::v1::ResourceStatistics;
use resources::Resources;

use super::cgroup::Cgroup;
use super::cgroup_layout::{CgroupLayout, CgroupVersion, Hierarchy};
use super::limits::ContainerLimits;
use super::oom_listener::OomListener;
use super::{
    ChosenContainerizer, Container, ContainerError, ContainerHandle, ContainerSpec, Containerizer,
    ContainerizerConfig, Limitation,
};
use crate::task_process::{LaunchError, TaskProcess};

/// Runs containers in cgroups.
#[derive(Debug)]
pub struct CgroupsContainerizer {
    layout: CgroupLayout,
    /// `{cgroups_root}/{agent key}`.
    agent: PathBuf,
    cfs: bool,
}

impl CgroupsContainerizer {
    /// Detects the hierarchies and creates this agent's cgroup in each; an error says why
    /// cgroups isolation is not possible here.
    pub fn create(
        config: &ContainerizerConfig,
        agent_key: &str,
    ) -> Result<ChosenContainerizer, ContainerError> {
        let root = PathBuf::from(path_component(&config.cgroups_root)?);
        let agent = root.join(path_component(agent_key)?);
        let layout = CgroupLayout::detect()?;
        if layout.version == CgroupVersion::V2 {
            // Children may use cpu and memory only where every ancestor delegates them.
            Cgroup::at(&layout, Path::new("")).delegate_controllers()?;
            let root_cgroup = Cgroup::at(&layout, &root);
            root_cgroup.create()?;
            root_cgroup.delegate_controllers()?;
        }
        let agent_cgroup = Cgroup::at(&layout, &agent);
        agent_cgroup.create().map_err(|e| match e {
            ContainerError::Io { path, source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                ContainerError::Unavailable(format!("{} is not writable: {source}", path.display()))
            }
            other => other,
        })?;
        agent_cgroup.delegate_controllers()?;
        let version = match layout.version {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        };
        let where_ = agent_cgroup
            .dirs()
            .next()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let cfs = if config.cgroups_enable_cfs {
            ", CFS quota"
        } else {
            ""
        };
        let description = format!(
            "cgroups {version} (cpu shares{cfs}, memory limit, OOM detection) under {where_}"
        );
        Ok(ChosenContainerizer {
            containerizer: Arc::new(CgroupsContainerizer {
                layout,
                agent,
                cfs: config.cgroups_enable_cfs,
            }),
            description,
        })
    }

    /// Kernel notifications of OOM kills in `cgroup` (cgroup v1 only; v2 counts them at exit).
    fn oom_listener(&self, cgroup: &Cgroup, id: &str) -> Option<OomListener> {
        match (self.layout.version, memory_dir(cgroup, &self.layout)) {
            (CgroupVersion::V1, Some(dir)) => match OomListener::register(&dir) {
                Ok(listener) => Some(listener),
                Err(e) => {
                    // The exit-time OOM count still classifies the kill.
                    tracing::warn!(container = %id, error = %e, "no OOM notifications");
                    None
                }
            },
            _ => None,
        }
    }

    /// The container ids that have a cgroup under this agent.
    fn existing(&self) -> Vec<String> {
        let Some((_, base)) = self.layout.bases.first() else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(base.join(&self.agent)) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Containerizer for CgroupsContainerizer {
    fn isolation(&self) -> &'static str {
        "cgroups"
    }

    fn launch(&self, spec: ContainerSpec<'_>) -> Result<Container, LaunchError> {
        let id = path_component(spec.id).map_err(LaunchError::Isolation)?;
        let cgroup = Cgroup::at(&self.layout, &self.agent.join(id));
        let limits = ContainerLimits::from_resources(spec.resources, self.cfs);
        let prepared = cgroup
            .create()
            .and_then(|()| cgroup.apply(&limits))
            .and_then(|()| cgroup.procs_files());
        let procs = match prepared {
            Ok(procs) => procs,
            Err(e) => {
                let _ = cgroup.destroy();
                return Err(LaunchError::Isolation(e));
            }
        };
        let oom = self.oom_listener(&cgroup, id);
        let process = match TaskProcess::spawn_joined(
            spec.command,
            spec.sandbox,
            spec.env,
            procs,
            spec.checkpoint,
            spec.run_as,
        ) {
            Ok(p) => p,
            Err(e) => {
                let _ = cgroup.destroy();
                return Err(e);
            }
        };
        let handle = CgroupContainer {
            id: id.to_owned(),
            cgroup,
            cfs: self.cfs,
            oom: Mutex::new(oom),
            requested: Mutex::new(limits),
        };
        Ok(Container {
            process,
            handle: Arc::new(handle),
        })
    }

    fn recover(&self, known: &HashSet<String>) -> Vec<String> {
        let mut destroyed = Vec::new();
        for id in self.existing() {
            if known.contains(&id) {
                continue;
            }
            let cgroup = Cgroup::at(&self.layout, &self.agent.join(&id));
            match cgroup.destroy() {
                Ok(()) => {
                    tracing::info!(container = %id, "destroyed an orphaned container");
                    destroyed.push(id);
                }
                Err(e) => {
                    tracing::error!(container = %id, error = %e, "orphaned container not destroyed")
                }
            }
        }
        destroyed
    }

    fn reattach(
        &self,
        id: &str,
        _pgid: i32,
        resources: &Resources,
    ) -> Result<Arc<dyn ContainerHandle>, ContainerError> {
        let id = path_component(id)?;
        let cgroup = Cgroup::at(&self.layout, &self.agent.join(id));
        let oom = self.oom_listener(&cgroup, id);
        Ok(Arc::new(CgroupContainer {
            id: id.to_owned(),
            cgroup,
            cfs: self.cfs,
            oom: Mutex::new(oom),
            requested: Mutex::new(ContainerLimits::from_resources(resources, self.cfs)),
        }))
    }

    fn agent_dirs(&self) -> Vec<PathBuf> {
        self.layout
            .dirs(&self.agent)
            .into_iter()
            .map(|(_, dir)| dir)
            .collect()
    }

    fn shutdown(&self) {
        self.recover(&HashSet::new());
        // The root stays (as Mesos leaves its `mesos` cgroup): other agents on the machine
        // may be creating theirs in it right now.
        for (_, dir) in self.layout.dirs(&self.agent) {
            if let Err(e) = super::cgroup::remove_dir(&dir) {
                tracing::warn!(error = %e, "agent cgroup not removed");
            }
        }
    }
}

fn memory_dir(cgroup: &Cgroup, layout: &CgroupLayout) -> Option<PathBuf> {
    let index = layout
        .bases
        .iter()
        .position(|(h, _)| matches!(h, Hierarchy::Memory | Hierarchy::Unified))?;
    cgroup.dirs().nth(index).map(Path::to_owned)
}

/// A name used as one cgroup path component: no separators, no `.`/`..`, not empty.
fn path_component(name: &str) -> Result<&str, ContainerError> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(name)
    } else {
        Err(ContainerError::Unavailable(format!(
            "{name:?} cannot name a cgroup (letters, digits, '-', '_' and '.' only)"
        )))
    }
}

/// One container's cgroup while it runs.
#[derive(Debug)]
struct CgroupContainer {
    id: String,
    cgroup: Cgroup,
    cfs: bool,
    oom: Mutex<Option<OomListener>>,
    requested: Mutex<ContainerLimits>,
}

/// The memory limitation that ended processes in `cgroup`, if the OOM killer ended any.
fn memory_limitation(cgroup: &Cgroup) -> Option<Limitation> {
    if cgroup.oom_kills() == 0 {
        return None;
    }
    let mib = |b: u64| b / (1024 * 1024);
    let limit = cgroup
        .memory_limit()
        .map_or("none".into(), |b| format!("{} MiB", mib(b)));
    let used = cgroup
        .memory_max_usage()
        .map_or("unknown".into(), |b| format!("{} MiB", mib(b)));
    Some(Limitation {
        reason: Reason::ContainerLimitationMemory,
        message: format!("Memory limit exceeded: requested {limit}, maximum used {used}"),
    })
}

impl ContainerHandle for CgroupContainer {
    fn id(&self) -> &str {
        &self.id
    }

    fn isolation(&self) -> &'static str {
        "cgroups"
    }

    fn statistics(&self) -> ResourceStatistics {
        self.cgroup.statistics()
    }

    fn update(&self, resources: &Resources) -> Result<(), ContainerError> {
        let mut limits = ContainerLimits::from_resources(resources, self.cfs);
        let mut requested = self.requested.lock().unwrap_or_else(|p| p.into_inner());
        // A running container's memory limit only grows (as in Mesos): lowering it below
        // what the container holds would make the kernel OOM-kill to meet it.
        limits.memory_bytes = match (limits.memory_bytes, requested.memory_bytes) {
            (Some(new), Some(old)) => Some(new.max(old)),
            (None, old) => old,
            (Some(_), None) => None,
        };
        if *requested == limits {
            return Ok(());
        }
        self.cgroup.apply(&limits)?;
        *requested = limits;
        Ok(())
    }

    fn limitation(&self) -> Pin<Box<dyn Future<Output = Limitation> + Send>> {
        let listener = self.oom.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(listener) = listener else {
            return Box::pin(std::future::pending());
        };
        let cgroup = self.cgroup.clone();
        Box::pin(async move {
            listener.notified().await;
            match memory_limitation(&cgroup) {
                Some(limitation) => limitation,
                // Signalled without an OOM kill (the cgroup went away): nothing to report.
                None => std::future::pending().await,
            }
        })
    }

    fn limitation_after_exit(&self) -> Option<Limitation> {
        memory_limitation(&self.cgroup)
    }

    fn destroy(&self) -> Result<(), ContainerError> {
        self.cgroup.destroy()
    }
}
