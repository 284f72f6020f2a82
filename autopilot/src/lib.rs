//! Autopilot (seed 000): automatic data-center management on Keel's machines. The
//! [`device_manager`] holds the ground truth and decides; satellites such as the
//! [`watchdog`] service look at machines and report to it, never repairing on their own.
//!
//! ```no_run
//! # async fn demo(node: libactor::Node, agent: libactor::Node) -> Result<(), libactor::SpawnError> {
//! use autopilot::device_manager::{DeviceManager, DeviceManagerConfig, DEVICE_MANAGER_ID};
//! use autopilot::watchdog::{WatchdogConfig, WatchdogService};
//!
//! let dm = node.spawn(
//!     DEVICE_MANAGER_ID,
//!     DeviceManager::new(DeviceManagerConfig::default(), None, Default::default()),
//! )?;
//! let config = WatchdogConfig::new("host-1", dm, "/var/lib/keel".into());
//! agent.spawn("watchdog", WatchdogService::new(config))?;
//! # Ok(()) }
//! ```
//!
//! The [`repair_service`] carries the device manager's orders out through a
//! [`repair_driver`] (restarting supervised agent processes, or an operator's commands).
//!
//! Still to come (the Autopilot issue): manifests and rolling deployment, provisioning,
//! filesync, collection and the cockpit.

pub mod agent_checks;
pub mod app_manager;
pub mod bounded_command;
pub mod bounded_text;
pub mod cockpit;
pub mod collector;
pub mod deployment_server;
pub mod device_manager;
pub mod filesync;
pub mod ground_truth;
pub mod health;
pub mod json;
pub mod log_tail;
pub mod machine_gate;
pub mod manifest;
pub mod repair_driver;
pub mod repair_limits;
pub mod repair_service;
pub mod rollout;
pub mod watchdog;
