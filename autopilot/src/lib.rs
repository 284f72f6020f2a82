//! Autopilot: device manager, watchdogs, failure/repair state machine, deployment by scale units,
//! provisioning, filesync, collection and the cockpit. (Filled in by the Autopilot issue.)
