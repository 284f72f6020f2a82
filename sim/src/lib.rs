//! A deterministic, seeded discrete-event simulator of cluster scheduling architectures —
//! monolithic, two-level (Mesos's offers) and shared state (Omega) — after the Omega paper's
//! lightweight simulator (Schwarzkopf et al., EuroSys 2013), with the experiments that
//! reproduce its headline findings (`keel-sim`, see [`experiments`]).
//!
//! ```
//! use keel_sim::simulation::{simulate, Architecture, SimConfig};
//! use keel_sim::workload::WorkloadConfig;
//!
//! let config = SimConfig {
//!     architecture: Architecture::SharedState,
//!     machines: 50,
//!     workload: WorkloadConfig { horizon: 600.0, ..Default::default() },
//!     ..Default::default()
//! };
//! let report = simulate(&config);
//! assert_eq!(report, simulate(&config), "a seed replays exactly");
//! assert!(report.batch.scheduled > 0);
//! ```
//!
//! Modules: [`rng`] (the seeded stream), [`workload`] (batch and service jobs), [`cell`] (the
//! machines), [`simulation`] (the event loop and the three architectures), [`experiments`]
//! (the paper's sweeps as tables), [`svg`] (their plots).

#![warn(missing_docs)]

pub mod cell;
pub mod experiments;
pub mod rng;
pub mod simulation;
pub mod svg;
pub mod workload;
