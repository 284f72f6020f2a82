//! Autopilot (Autopilot, Isard 2007): automatic data-center management on Keel's machines. The
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
//! The pieces, by Autopilot's services (Autopilot, Isard 2007):
//! - device manager: [`device_manager`] (decides; its ground truth in [`ground_truth`]),
//!   [`health`] (the failure/recovery state machine), [`repair_limits`], [`rollout`] (scale
//!   units, threshold, rollback), [`machine_gate`] (how it drains machines through the master).
//! - repair: [`repair_service`] and its [`repair_driver`]s (`process`, `command`).
//! - deployment: [`manifest`] (TOML), [`deployment_server`], [`filesync`], [`app_manager`]
//!   (with [`leftover_processes`]: what a dead agent's manifest left running is stopped).
//! - monitoring: [`watchdog`] (with [`agent_checks`] and custom executables run through
//!   [`bounded_command`]), [`collector`], [`log_tail`], the [`cockpit`] page.

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
pub mod leftover_processes;
pub mod log_tail;
pub mod machine_gate;
pub mod manifest;
pub mod reliability;
pub mod repair_driver;
pub mod repair_limits;
pub mod repair_service;
pub mod rollout;
pub mod watchdog;
