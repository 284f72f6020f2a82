//! The containerizer: how the agent starts an executor's OS process inside a container, limits
//! what it may use, samples what it uses, notices when the kernel enforces a limit, and
//! destroys the container with everything in it when the executor ends.
//!
//! Two implementations, chosen by `--isolation` (Mesos's `--isolation` with its `cgroups/*`
//! and `posix/*` isolators):
//! - [`cgroups`]: a cgroup per container under the agent's own, with cpu shares, an optional
//!   CFS quota and a memory hard limit; the process joins before it `exec`s; OOM kills are
//!   heard from the kernel and reported as `REASON_CONTAINER_LIMITATION_MEMORY`.
//! - [`posix`]: a process group, no limits, usage from `/proc`.
//!
//! `auto` picks cgroups where the kernel offers writable cpu and memory controllers and says
//! why it fell back otherwise.
//!
//! ```no_run
//! use slave::containerizer::{self, ContainerizerConfig, IsolationMode};
//! let config = ContainerizerConfig { isolation: IsolationMode::Auto, ..Default::default() };
//! let chosen = containerizer::create(&config, "agent-1").unwrap();
//! println!("isolation: {}", chosen.description);
//! ```

pub mod cgroup;
pub mod cgroup_layout;
pub mod cgroups;
pub mod launcher;
pub mod limits;
pub mod oom_listener;
pub mod posix;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use libactor::Clock;
use protos::v1::task_status::Reason;
use protos::v1::{CommandInfo, ResourceStatistics};
use resources::Resources;
use tokio::sync::oneshot;

use crate::task_process::{LaunchError, TaskProcess, Termination};

/// Which containerizer the agent uses (`--isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationMode {
    /// cgroups where the kernel offers them, posix otherwise.
    #[default]
    Auto,
    /// cgroups, or the agent does not start.
    Cgroups,
    /// Process groups only.
    Posix,
}

impl FromStr for IsolationMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(IsolationMode::Auto),
            "cgroups" => Ok(IsolationMode::Cgroups),
            "posix" => Ok(IsolationMode::Posix),
            other => Err(format!(
                "unknown isolation {other:?}: expected auto, cgroups or posix"
            )),
        }
    }
}

impl fmt::Display for IsolationMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IsolationMode::Auto => "auto",
            IsolationMode::Cgroups => "cgroups",
            IsolationMode::Posix => "posix",
        })
    }
}

/// How the agent isolates its containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerizerConfig {
    /// `--isolation`.
    pub isolation: IsolationMode,
    /// `--cgroups_root`: the directory, under the agent's own cgroup, that holds its containers.
    pub cgroups_root: String,
    /// `--cgroups_enable_cfs`: cap each container's cpu time at its cpus with a CFS quota.
    pub cgroups_enable_cfs: bool,
}

impl Default for ContainerizerConfig {
    fn default() -> Self {
        ContainerizerConfig {
            isolation: IsolationMode::Auto,
            cgroups_root: DEFAULT_CGROUPS_ROOT.to_owned(),
            cgroups_enable_cfs: false,
        }
    }
}

/// Default `--cgroups_root`.
pub const DEFAULT_CGROUPS_ROOT: &str = "keel";

/// Why isolation could not be set up or torn down.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The kernel does not offer what the isolation needs.
    #[error("cgroups isolation is not available: {0}")]
    Unavailable(String),
    /// A cgroup file or directory operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// To which path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A limit could not be written.
    #[error("cannot {action} in {path}: {message}")]
    Cgroup {
        /// What was being done.
        action: &'static str,
        /// In which cgroup.
        path: PathBuf,
        /// What cgroups-rs said.
        message: String,
    },
    /// Processes survived every round of kills.
    #[error("processes {pids:?} remain in {path} after destroy")]
    Remaining {
        /// The cgroup.
        path: PathBuf,
        /// Who is left.
        pids: Vec<i32>,
    },
}

impl ContainerError {
    fn io(action: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        ContainerError::Io {
            action,
            path: path.as_ref().to_owned(),
            source,
        }
    }

    fn cgroup(action: &'static str, path: &Path, e: cgroups_rs::error::Error) -> Self {
        ContainerError::Cgroup {
            action,
            path: path.to_owned(),
            message: format!("{e}"),
        }
    }
}

/// A limit the kernel enforced on a container, and what the task's status should say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limitation {
    /// The status reason (`REASON_CONTAINER_LIMITATION_MEMORY`, …).
    pub reason: Reason,
    /// What happened, with the limit.
    pub message: String,
}

/// What to start in a new container.
#[derive(Debug, Clone, Copy)]
pub struct ContainerSpec<'a> {
    /// The container's id: unique on the agent, safe as a path component.
    pub id: &'a str,
    /// What to run.
    pub command: &'a CommandInfo,
    /// The sandbox (working directory, stdout, stderr).
    pub sandbox: &'a Path,
    /// Variables added to the environment.
    pub env: &'a [(String, String)],
    /// What the container may use.
    pub resources: &'a Resources,
    /// The executor run's checkpoint directory: its process then runs under the supervisor
    /// that outlives the agent (see [`crate::task_process::SUPERVISOR_SCRIPT`]).
    pub checkpoint: Option<&'a Path>,
    /// The user the command runs as (`None`: the agent's).
    pub run_as: Option<&'a crate::run_as::RunAs>,
}

/// A started container: its main process and its isolation.
#[derive(Debug)]
pub struct Container {
    /// The executor's OS process (leader of its process group).
    pub process: TaskProcess,
    /// The isolation around it, shared with the agent for statistics and updates.
    pub handle: Arc<dyn ContainerHandle>,
}

/// Starts containers under one isolation.
pub trait Containerizer: Send + Sync + fmt::Debug {
    /// `cgroups` or `posix`.
    fn isolation(&self) -> &'static str;
    /// Isolates and starts `spec`. On failure nothing is left behind.
    fn launch(&self, spec: ContainerSpec<'_>) -> Result<Container, LaunchError>;
    /// Destroys containers an earlier run of this agent left that are not in `known`;
    /// returns their ids.
    fn recover(&self, known: &HashSet<String>) -> Vec<String>;
    /// The isolation of container `id`, which an earlier run of this agent started and whose
    /// main process (leading group `pgid`) the agent now adopts; its limits are taken to be
    /// `resources`'.
    fn reattach(
        &self,
        id: &str,
        pgid: i32,
        resources: &Resources,
    ) -> Result<Arc<dyn ContainerHandle>, ContainerError>;
    /// Removes what the agent itself created (its cgroup directory) once its containers are
    /// gone.
    fn shutdown(&self);
    /// The directories the agent's containers live under (its cgroup in each hierarchy), for
    /// the executor reaper to remove once a dead agent's executors are ended; none without
    /// cgroups.
    fn agent_dirs(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }
}

/// One container's isolation, as the agent sees it while the container runs.
pub trait ContainerHandle: Send + Sync + fmt::Debug {
    /// The container's id.
    fn id(&self) -> &str;
    /// `cgroups` or `posix`.
    fn isolation(&self) -> &'static str;
    /// What it used so far.
    /// (Its `timestamp` is left for the caller to stamp from its clock.)
    fn statistics(&self) -> ResourceStatistics;
    /// Changes its limits to fit `resources` (an executor gained or lost tasks).
    fn update(&self, resources: &Resources) -> Result<(), ContainerError>;
    /// Resolves when the kernel enforces a limit on the container; at most one caller.
    fn limitation(&self) -> Pin<Box<dyn Future<Output = Limitation> + Send>>;
    /// After the main process ended: whether a limit is what ended it.
    fn limitation_after_exit(&self) -> Option<Limitation>;
    /// Kills everything in the container and removes its isolation. Blocking.
    fn destroy(&self) -> Result<(), ContainerError>;
}

/// How a container ended.
#[derive(Debug)]
pub struct ContainerExit {
    /// How its main process ended.
    pub termination: std::io::Result<Termination>,
    /// The limit the kernel enforced, when that is what ended it.
    pub limitation: Option<Limitation>,
}

/// The containerizer `config` asks for, with a sentence saying what was chosen and why.
#[derive(Debug, Clone)]
pub struct ChosenContainerizer {
    /// The containerizer.
    pub containerizer: Arc<dyn Containerizer>,
    /// E.g. `cgroups v1 (cpu shares, memory limit) under …` or `posix: <why not cgroups>`.
    pub description: String,
}

/// Builds the containerizer `config` asks for; `agent_key` names this agent's directory under
/// `--cgroups_root` so that agents sharing a machine (as `keel-local`'s do) never touch each
/// other's containers.
pub fn create(
    config: &ContainerizerConfig,
    agent_key: &str,
) -> Result<ChosenContainerizer, ContainerError> {
    let posix = |why: String| ChosenContainerizer {
        containerizer: Arc::new(posix::PosixContainerizer),
        description: format!("posix ({why})"),
    };
    match config.isolation {
        IsolationMode::Posix => Ok(posix("--isolation posix".into())),
        IsolationMode::Cgroups => cgroups::CgroupsContainerizer::create(config, agent_key),
        IsolationMode::Auto => match cgroups::CgroupsContainerizer::create(config, agent_key) {
            Ok(chosen) => Ok(chosen),
            Err(e) => {
                tracing::info!(error = %e, "cgroups isolation unavailable; using posix");
                Ok(posix(e.to_string()))
            }
        },
    }
}

/// Runs a container until its main process ends: a kill request through `kill` ends it with
/// that grace period (SIGTERM, grace, SIGKILL), a limitation ends it at once. Whatever is left
/// in it is then destroyed.
pub async fn supervise(
    container: Container,
    kill: oneshot::Receiver<Duration>,
    clock: Clock,
) -> ContainerExit {
    let Container {
        mut process,
        handle,
    } = container;
    let limitation = handle.limitation();
    let (termination, mut limitation) = tokio::select! {
        ended = process.wait() => (ended, None),
        grace = kill => match grace {
            Ok(grace) => (process.kill(grace, &clock).await, None),
            // The agent dropped the request side: it no longer cares, but the process runs on.
            Err(_) => (process.wait().await, None),
        },
        limit = limitation => {
            tracing::warn!(container = %handle.id(), message = %limit.message, "container limitation; killing it");
            process.signal_group(libc::SIGKILL);
            (process.wait().await, Some(limit))
        }
    };
    let termination =
        termination.map_err(|e| std::io::Error::other(format!("cannot wait for the process: {e}")));
    // The OOM killer may end the main process itself: its exit and the notification race.
    if limitation.is_none() {
        limitation = handle.limitation_after_exit();
    }
    let destroyer = handle.clone();
    let destroyed = tokio::task::spawn_blocking(move || destroyer.destroy()).await;
    match destroyed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(container = %handle.id(), error = %e, "container not destroyed")
        }
        Err(e) => {
            tracing::error!(container = %handle.id(), error = %e, "container destroy panicked")
        }
    }
    ContainerExit {
        termination,
        limitation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_modes_parse_and_print() {
        for mode in ["auto", "cgroups", "posix"] {
            assert_eq!(mode.parse::<IsolationMode>().unwrap().to_string(), mode);
        }
        let err = "docker".parse::<IsolationMode>().unwrap_err();
        assert!(err.contains("expected auto, cgroups or posix"), "{err}");
    }
}
