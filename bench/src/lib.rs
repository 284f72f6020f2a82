//! Keel's cluster-scale benchmarks, one module per `keel-bench` subcommand. Each runs the real
//! code (a real `keel-master` child process, real agents or emulated ones speaking the real
//! protocol over TCP on 127.0.0.1) and, in the same run, its baseline: bare libactor round
//! trips, bare `posix_spawn`s, the same fleet idle, the agents' first registration.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! // 1,000 tasks on 10 emulated agents, beside 4,500 bare libactor round trips (neither on
//! // mutual TLS nor again with an HTTP framework).
//! keel_bench::launch::run(10, 1_000, "cpus:100;mem:100000", "cpus:0.01;mem:1", false, false)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Scenarios:
//! - [`launch`]: task launches per second through the master (by the driver, and with
//!   [`http_launch`] over the v1 scheduler HTTP API).
//! - [`agents`]: 100,000 emulated agents; a job's overhead; master memory per agent and task.
//! - [`containers`]: one real agent starting isolated containers (cgroups, posix).
//! - [`failover`]: a new leader taking back every agent and task after a SIGKILL.
//! - [`autopilot`]: a rollout by scale units, and repair decisions per second.
//! - [`flood`]: `/master/health` while thousands of half-open connections are held.
//! - [`omega`]: shared-state placements per second with 1, 4, 16 parallel schedulers, beside
//!   the offer path on the same fleet.
//! - [`omega_validation`]: the Omega simulator and the real master on the same workload, side
//!   by side (with [`job_stream`], the simulator's scheduler run for real).
//! - [`state`]: `/master/state` and `GET_STATE` on a large cluster, launches/s while state is
//!   polled, and an operator event stream keeping up.
//!
//! Their pieces: [`emulated_agent`] and [`emulated_fleet`] (the Mesos paper's emulated
//! slaves), [`launch_scheduler`], [`container_scheduler`] and [`latency_probe`] (frameworks
//! that count or time),
//! [`master_child`] (the master as a child process) and [`phase`] (bounded waiting).

#![warn(missing_docs)]

pub mod agents;
pub mod autopilot;
pub mod container_scheduler;
pub mod containers;
pub mod emulated_agent;
pub mod emulated_fleet;
pub mod failover;
pub mod flood;
pub mod http_launch;
pub mod job_stream;
pub mod latency_probe;
pub mod launch;
pub mod launch_scheduler;
pub mod master_child;
pub mod omega;
pub mod omega_validation;
pub mod phase;
pub mod soak;
pub mod state;
