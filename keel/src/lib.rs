//! Keel's binaries and what they share: `keel-master`, `keel-slave`, `keel-local` (a master
//! and N agents in one process, then an example framework) and `keelctl` (the ops CLI). The
//! binaries only parse flags and wire processes together; this library holds the rest.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use keel::local_cluster::{LocalCluster, LocalClusterConfig};
//! let cluster = LocalCluster::start(LocalClusterConfig::new(3, "/tmp/keel-demo")).await?;
//! cluster.wait_for_agents(std::time::Duration::from_secs(10)).await?;
//! println!("master at {}", cluster.master_pid());
//! cluster.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Modules:
//! - [`local_cluster`]: a master and N agents on their own loopback ports in one process.
//! - [`local_autopilot`]: `keel-local --autopilot`'s agent processes under the repair driver.
//! - [`example_runs`]: run the example frameworks and follow their progress; the particles
//!   executor's entry point.
//! - [`emulated_agent`], [`bench_scheduler`], [`container_bench`], [`autopilot_bench`]: the
//!   pieces of `keel-bench`'s cluster-scale runs.
//! - [`agent_daemon`]: an agent as a daemon (`keel-slave`, and `keel-local agent`).
//! - [`autopilot_services`]: the device manager beside the master, and its flags.
//! - [`http_client`]: minimal HTTP/1.1 requests to a node's port.
//! - [`send_message`]: `keelctl send` — JSON to protobuf by message name, posted to a process.
//! - [`tables`]: keelctl's tables over `/master/state`.
//! - [`machine_tables`]: keelctl's tables of Autopilot's machines and audit log.
//! - `allocator`: mimalloc as the global allocator of every binary.
//! - [`shutdown_signal`]: SIGINT or SIGTERM.
//! - [`logging`]: the binaries' tracing setup; [`master_address`]: `host:port` or a pid.
//! - [`zookeeper_server`]: a real ZooKeeper server on a free loopback port, for tests and
//!   `keel-bench failover`.

#![warn(missing_docs)]

pub mod agent_daemon;
mod allocator;
pub mod autopilot_bench;
pub mod autopilot_services;
pub mod bench_scheduler;
pub mod container_bench;
pub mod emulated_agent;
pub mod example_runs;
/// The HTTP client moved to libactor (filesync needs it too); the old path still works.
pub use libactor::http_client;
pub mod local_autopilot;
pub mod local_cluster;
pub mod logging;
pub mod machine_tables;
pub mod master_address;
pub mod send_message;
pub mod shutdown_signal;
pub mod tables;
pub mod zookeeper_server;
