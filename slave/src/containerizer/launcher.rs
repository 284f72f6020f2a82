//! Starts containers off the agent's actor thread. Creating a container is blocking work
//! (cgroup directories and files, the sandbox's output files, `posix_spawn` and the `exec`
//! it waits for: 6–10 ms on a small VM), so the agent hands it to the blocking pool and keeps
//! answering the master, executors and HTTP meanwhile. At most `slots` launches run at once:
//! beyond the machine's cores more threads only queue in the kernel.
//!
//! The launcher also keeps the agent's table of live containers, so that a container whose
//! launch finishes after the agent began to stop is destroyed rather than leaked: whoever
//! removes a container from the table (the agent's shutdown or the late launch) destroys it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use protos::v1::CommandInfo;
use resources::Resources;
use tokio::sync::Semaphore;

use super::{Container, ContainerError, ContainerHandle, ContainerSpec, Containerizer};
use crate::task_process::LaunchError;

/// Every live container of an agent, by container id.
pub type ContainerTable = Arc<DashMap<String, Arc<dyn ContainerHandle>>>;

/// What to start, owned so that it can move to the blocking pool.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    /// The container's id: unique on the agent, safe as a path component.
    pub id: String,
    /// What to run.
    pub command: CommandInfo,
    /// The sandbox (working directory, stdout, stderr).
    pub sandbox: PathBuf,
    /// Variables added to the environment.
    pub env: Vec<(String, String)>,
    /// What the container may use.
    pub resources: Resources,
    /// The executor run's checkpoint directory (see [`ContainerSpec::checkpoint`]).
    pub checkpoint: Option<PathBuf>,
    /// The user the command runs as (see [`ContainerSpec::run_as`]).
    pub run_as: Option<crate::run_as::RunAs>,
}

/// Runs an agent's container launches on the blocking pool, a bounded number at once.
#[derive(Debug, Clone)]
pub struct Launcher {
    containerizer: Arc<dyn Containerizer>,
    containers: ContainerTable,
    slots: Arc<Semaphore>,
    stopping: Arc<AtomicBool>,
}

impl Launcher {
    /// A launcher for `containerizer` running at most `slots` launches at once.
    pub fn new(containerizer: Arc<dyn Containerizer>, slots: usize) -> Self {
        Launcher {
            containerizer,
            containers: Arc::new(DashMap::new()),
            slots: Arc::new(Semaphore::new(slots.max(1))),
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// One slot per core the process may use.
    pub fn default_slots() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }

    /// The live containers (shared with the metrics' gauges).
    pub fn containers(&self) -> &ContainerTable {
        &self.containers
    }

    /// Starts `request` when a slot is free; the container is in the table once this
    /// resolves with it.
    pub async fn launch(&self, request: LaunchRequest) -> Result<Container, LaunchError> {
        let _slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| LaunchError::Stopping)?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.launch_blocking(&request))
            .await
            .unwrap_or_else(|e| Err(LaunchError::Aborted(e.to_string())))
    }

    fn launch_blocking(&self, request: &LaunchRequest) -> Result<Container, LaunchError> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(LaunchError::Stopping);
        }
        let container = self.containerizer.launch(ContainerSpec {
            id: &request.id,
            command: &request.command,
            sandbox: &request.sandbox,
            env: &request.env,
            resources: &request.resources,
            checkpoint: request.checkpoint.as_deref(),
            run_as: request.run_as.as_ref(),
        })?;
        self.containers
            .insert(request.id.clone(), container.handle.clone());
        // The agent may have begun to stop while this launch ran: if it did not see the
        // container in the table, destroying it falls to this launch.
        if self.stopping.load(Ordering::SeqCst) {
            if let Some((_, handle)) = self.containers.remove(&request.id) {
                if let Err(e) = handle.destroy() {
                    tracing::error!(container = %request.id, error = %e, "container not destroyed after a launch during shutdown");
                }
            }
            return Err(LaunchError::Stopping);
        }
        Ok(container)
    }

    /// Adds a container an earlier run of the agent started and this run adopted.
    pub fn adopt(&self, handle: Arc<dyn ContainerHandle>) {
        self.containers.insert(handle.id().to_owned(), handle);
    }

    /// Forgets a container that ended (its supervisor destroyed it).
    pub fn forget(&self, id: &str) {
        self.containers.remove(id);
    }

    /// Refuses further launches and destroys every live container. Blocking.
    pub fn stop(&self) -> Vec<(String, ContainerError)> {
        self.stopping.store(true, Ordering::SeqCst);
        self.slots.close();
        let ids: Vec<String> = self.containers.iter().map(|e| e.key().clone()).collect();
        let mut failed = Vec::new();
        for id in ids {
            if let Some((id, handle)) = self.containers.remove(&id) {
                if let Err(e) = handle.destroy() {
                    failed.push((id, e));
                }
            }
        }
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containerizer::posix::PosixContainerizer;

    fn request(id: &str, sandbox: &std::path::Path) -> LaunchRequest {
        LaunchRequest {
            id: id.to_owned(),
            command: CommandInfo {
                value: "exec sleep 600".into(),
                ..Default::default()
            },
            sandbox: sandbox.join(id),
            env: Vec::new(),
            resources: Resources::default(),
            checkpoint: None,
            run_as: None,
        }
    }

    fn alive(pid: u32) -> bool {
        // SAFETY: signal 0 only asks whether the process exists.
        unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
    }

    #[tokio::test]
    async fn launches_in_parallel_and_stop_destroys_every_live_container() {
        let dir = tempfile::tempdir().unwrap();
        let launcher = Launcher::new(Arc::new(PosixContainerizer), 2);
        let launches: Vec<_> = (0..4)
            .map(|i| {
                let (launcher, request) = (launcher.clone(), request(&format!("c{i}"), dir.path()));
                tokio::spawn(async move { launcher.launch(request).await })
            })
            .collect();
        let mut containers = Vec::new();
        for launched in launches {
            containers.push(launched.await.unwrap().unwrap());
        }
        assert_eq!(launcher.containers().len(), 4);
        let pids: Vec<u32> = containers.iter().map(|c| c.process.pid()).collect();
        assert!(pids.iter().all(|&p| alive(p)));

        assert!(launcher.stop().is_empty());
        assert!(launcher.containers().is_empty());
        for mut c in containers {
            // Destroyed by `stop`: the process ends on its own.
            let ended = tokio::time::timeout(std::time::Duration::from_secs(10), c.process.wait())
                .await
                .expect("process killed by stop")
                .unwrap();
            assert_eq!(
                ended,
                crate::task_process::Termination::Signaled(libc::SIGKILL)
            );
        }

        let after = launcher.launch(request("late", dir.path())).await;
        assert!(matches!(after, Err(LaunchError::Stopping)), "{after:?}");
        assert!(launcher.containers().is_empty());
    }
}
