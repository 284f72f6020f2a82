//! The Keel agent (`slave`): agent process, containerizer (cgroups / posix), executor
//! supervision, status update manager, checkpointing and recovery.
//!
//! Built so far: [`status_update_manager`], the process that delivers every task status update
//! to the master at least once and in order per task, resending with exponential backoff until
//! the framework's acknowledgement comes back; and [`task_process`], a task's OS process (`sh -c`
//! in its sandbox, output captured, its own process group, killed with a grace period); and
//! [`agent_resources`], what the agent offers (detected, `--resources`, `--attributes`).
//!
//! ```no_run
//! # async fn demo(node: libactor::Node, master: libactor::Upid) {
//! use slave::status_update_manager::StatusUpdateManager;
//! let sum = node.spawn_ref("status-update-manager", StatusUpdateManager::new()).unwrap();
//! sum.dispatch(move |sum, ctx| sum.set_master(ctx, master));
//! # }
//! ```
//!
//! Still to come (the Mesos core and containerizer issues): the agent process, executors,
//! the containerizer, checkpointing.

#![warn(missing_docs)]

pub mod agent_resources;
pub mod executor;
pub mod slave;
pub mod status_update_manager;
pub mod task_process;
