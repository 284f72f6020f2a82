//! The Keel agent (`slave`): agent process, containerizer (cgroups / posix), executor
//! supervision, status update manager, checkpointing and recovery.
//!
//! Modules:
//! - [`slave`]: the agent process (registration, launches, kills, executors, `/state`,
//!   `/monitor/statistics`);
//! - [`containerizer`]: isolation of each executor in a container (cgroups v1/v2: cpu
//!   shares, CFS quota, memory limit, OOM detection; or posix process groups), statistics,
//!   destruction of containers and of orphans a dead agent left;
//! - [`status_update_manager`]: delivers every task status update to the master at least
//!   once and in order per task, resending with backoff until acknowledged; its log
//!   ([`status_update_log`]) keeps the unacknowledged ones across agent restarts;
//! - [`checkpoint`]: what the agent writes under `{work_dir}/meta` so that a restarted agent
//!   recovers its executors (they run under a supervisor shell that outlives the agent);
//!   [`executor_reaper`] ends them if the agent does not come back in time;
//! - [`task_process`]: an executor's OS process (`sh -c` in its sandbox, output captured, its
//!   own process group, joined to its cgroups before `exec`, killed with a grace period);
//! - [`fetcher`]: URIs brought into a sandbox before launch (copy, http download, sha256,
//!   extraction, a shared cache); [`files`]: sandbox files over HTTP (`/files/read`);
//! - [`health_check`]: command, TCP and HTTP checks of command tasks and their state machine;
//!   [`http_get`]: the plain GET both the fetcher and HTTP checks use;
//! - [`executor`]: what the agent knows of one executor; [`monitor`]: usage reports;
//! - [`agent_resources`]: what the agent offers (detected, `--resources`, `--attributes`).
//!
//! ```no_run
//! # async fn demo(node: libactor::Node, master: libactor::Upid) {
//! use slave::status_update_manager::StatusUpdateManager;
//! let sum = node.spawn_ref("status-update-manager", StatusUpdateManager::new()).unwrap();
//! sum.dispatch(move |sum, ctx| sum.set_master(ctx, master));
//! # }
//! ```

#![warn(missing_docs)]

pub mod agent_resources;
pub mod checkpoint;
pub mod containerizer;
pub mod default_executor;
pub mod executor;
pub mod executor_api;
pub mod executor_reaper;
pub mod executor_tls;
pub mod fetcher;
pub mod files;
pub mod health_check;
pub mod http_get;
pub mod monitor;
pub mod run_as;
pub mod sandbox_gc;
pub mod sandbox_owner;
pub mod slave;
pub mod status_update_log;
pub mod status_update_manager;
pub mod task_process;
